//! `update cluster --target terraform` through the binary: files written, nothing rewritten
//! on a second run, fmt-clean, and bad input writes nothing.

mod support;

use support::{kopsrs, snapshot};

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn writes_terraform_once_and_only_on_change() {
    let (dir, state) = support::file_store_with_cluster();
    let out = dir.path().join("tf");
    let update = |state: &str| {
        kopsrs(state)
            .args([
                "update",
                "cluster",
                "test.example.com",
                "--target",
                "terraform",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = ok(update(&state));
    assert!(first.contains("file(s) changed"), "{first}");
    let main = std::fs::read_to_string(out.join("kubernetes.tf")).unwrap();
    assert!(main.contains("resource \"aws_vpc\" \"test-example-com\""));
    assert!(
        main.contains("resource \"aws_autoscaling_group\" \"nodes-test-example-com\""),
        "{main}"
    );
    // kops writes the completed spec on update.
    assert!(dir
        .path()
        .join("state/test.example.com/cluster-completed.spec")
        .exists());

    let before = snapshot(&out);
    let second = ok(update(&state));
    assert!(second.contains("(0 file(s) changed)"), "{second}");
    assert_eq!(before, snapshot(&out), "a second run rewrites nothing");

    if let Ok(fmt) = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-recursive"])
        .arg(&out)
        .output()
    {
        assert!(
            fmt.status.success(),
            "terraform fmt -check: {}",
            String::from_utf8_lossy(&fmt.stdout)
        );
    }
}

#[test]
fn unknown_cluster_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // An existing, empty store (a missing one is an error of its own).
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let out = dir.path().join("tf");
    let output = kopsrs(&state)
        .args([
            "update",
            "cluster",
            "missing.example.com",
            "--target",
            "terraform",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cluster \"missing.example.com\" not found"),
        "{stderr}"
    );
    assert!(!out.exists());
}
