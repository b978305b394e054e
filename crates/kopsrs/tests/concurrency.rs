//! No lost updates: 8 processes make 50 edits each to one cluster, against `file://` and
//! against S3 (moto_server on loopback); every edit must survive. And the cluster lock refuses
//! a second holder.

mod support;

use std::process::Command;

use support::{kopsrs, Moto, CLUSTER};

const WRITERS: usize = 8;
const EDITS: usize = 50;

/// Runs the writers; each edit adds its own cloud label with `edit cluster --set`.
fn race(make: impl Fn() -> Command + Sync) {
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let make = &make;
            scope.spawn(move || {
                for edit in 0..EDITS {
                    let output = make()
                        .args(["edit", "cluster", "test.example.com", "--set"])
                        .arg(format!("spec.cloudLabels.w{writer}-e{edit}=v"))
                        .output()
                        .unwrap();
                    assert!(
                        output.status.success(),
                        "writer {writer} edit {edit}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            });
        }
    });
}

fn labels(make: impl Fn() -> Command) -> usize {
    let output = make()
        .args(["get", "clusters", "test.example.com", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value[0]["spec"]["cloudLabels"]
        .as_object()
        .map(|m| m.len())
        .unwrap_or(0)
}

fn create(make: impl Fn() -> Command, dir: &std::path::Path) {
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    let output = make().args(["create", "-f"]).arg(&file).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn file_store_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let make = || kopsrs(&state);
    create(make, dir.path());
    race(make);
    assert_eq!(labels(make), WRITERS * EDITS);
}

#[test]
fn s3_store_loses_no_update() {
    let moto = Moto::start();
    moto.create_bucket("kopsrs-state");
    let dir = tempfile::tempdir().unwrap();
    let make = || moto.kopsrs("kopsrs-state");
    create(make, dir.path());
    race(make);
    assert_eq!(labels(make), WRITERS * EDITS);
}

#[test]
fn lock_refuses_a_second_holder_and_force_unlock_needs_the_id() {
    let moto = Moto::start();
    moto.create_bucket("kopsrs-lock");
    let dir = tempfile::tempdir().unwrap();
    let file_state = format!("file://{}/state", dir.path().display());
    let stores: Vec<Box<dyn Fn() -> Command>> = vec![
        Box::new(|| kopsrs(&file_state)),
        Box::new(|| moto.kopsrs("kopsrs-lock")),
    ];
    for make in stores {
        create(&make, dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Take the lock as another process would, through the library and the same store.
        let url = make()
            .get_envs()
            .find(|(k, _)| *k == "KOPS_STATE_STORE")
            .and_then(|(_, v)| v)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (key, value) in make().get_envs() {
            if let (Some(k), Some(v)) = (key.to_str(), value) {
                if k.starts_with("AWS_") {
                    std::env::set_var(k, v);
                }
            }
        }
        let access = kopsrs_state::StoreAccess {
            s3_endpoint: std::env::var("AWS_ENDPOINT_URL").ok(),
            user: Some("someone-else".into()),
            ..Default::default()
        };
        let store = runtime
            .block_on(kopsrs_state::StateStore::open(&url, &access))
            .unwrap();
        let held = runtime
            .block_on(store.lock("test.example.com", "update cluster --yes"))
            .unwrap();
        let second = runtime.block_on(store.lock("test.example.com", "rolling-update"));
        assert!(
            matches!(second, Err(kopsrs_state::StateStoreError::Locked { .. })),
            "{:?}",
            second.err()
        );

        let output = make()
            .args([
                "delete",
                "cluster",
                "test.example.com",
                "--unregister",
                "--yes",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains("is locked by")
                && stderr.contains(&held.info.id)
                && stderr.contains("someone-else"),
            "{stderr}"
        );

        let wrong = make()
            .args(["force-unlock", "nope", "--cluster", "test.example.com"])
            .output()
            .unwrap();
        assert!(!wrong.status.success());
        let right = make()
            .args([
                "force-unlock",
                &held.info.id,
                "--cluster",
                "test.example.com",
            ])
            .output()
            .unwrap();
        assert!(
            right.status.success(),
            "{}",
            String::from_utf8_lossy(&right.stderr)
        );
        let deleted = make()
            .args([
                "delete",
                "cluster",
                "test.example.com",
                "--unregister",
                "--yes",
            ])
            .output()
            .unwrap();
        assert!(
            deleted.status.success(),
            "{}",
            String::from_utf8_lossy(&deleted.stderr)
        );
        let listed = make()
            .args(["get", "clusters", "-o", "json"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&listed.stdout).trim().is_empty()
                || String::from_utf8_lossy(&listed.stdout).trim() == "[]"
        );
    }
}

#[test]
fn s3_conditional_writes_are_enforced() {
    let moto = Moto::start();
    moto.create_bucket("kopsrs-cas");
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(kopsrs_state::StateStore::open(
            "s3://kopsrs-cas/p",
            &kopsrs_state::StoreAccess {
                s3_endpoint: Some(moto.endpoint.clone()),
                ..Default::default()
            },
        ))
        .unwrap();
    runtime.block_on(async {
        let v1 = store.put("a/config", "one".into(), None).await.unwrap();
        let again = store.put("a/config", "two".into(), None).await;
        assert!(
            matches!(again, Err(kopsrs_state::StateStoreError::AlreadyExists(_))),
            "{again:?}"
        );
        let v2 = store
            .put("a/config", "two".into(), Some(&v1))
            .await
            .unwrap();
        let stale = store.put("a/config", "three".into(), Some(&v1)).await;
        assert!(
            matches!(stale, Err(kopsrs_state::StateStoreError::Conflict(_))),
            "{stale:?}"
        );
        assert_ne!(v1, v2);
        assert_eq!(store.get("a/config").await.unwrap().unwrap().value, "two");
    });
}
