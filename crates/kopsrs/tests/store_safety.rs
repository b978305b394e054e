//! Cloud applies that would leave a cluster that cannot work are refused before anything
//! changes: a state store the nodes cannot read (anything but S3), and a cluster kops built
//! (its nodes are nodeup's, not kubeadm's). Reading verbs keep working on both.

mod support;

use std::process::{Command, Output};

use support::boot::IMAGE;
use support::{kopsrs, ok, snapshot, Moto, CLUSTER};

const NAME: &str = "test.example.com";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `command` against moto's AWS APIs (credentials and endpoint), whatever its state store.
fn with_aws(mut command: Command, moto: &Moto) -> Command {
    command
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .env_remove("AWS_PROFILE");
    command
}

/// The calls made to moto since the last reset, by service and action, EC2's and the
/// other cloud services' only (S3 is the state store; its bucket's region is asked
/// unsigned).
fn cloud_calls(moto: &Moto) -> Vec<String> {
    let calls = moto.calls();
    calls["by_action"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with("s3:") && !k.starts_with("unsigned:"))
        .cloned()
        .collect()
}

/// Every key and its ETag under `prefix` of bucket `state`, to prove a run wrote nothing.
fn s3_objects(moto: &Moto, prefix: &str) -> String {
    moto.python(&format!(
        "for o in aws('s3', 'us-east-1').list_objects_v2(Bucket='state', Prefix='{prefix}').get('Contents', []):\n    print(o['Key'], o['ETag'])"
    ))
}

fn vpcs_of(moto: &Moto, cluster: &str) -> usize {
    moto.python(&format!(
        "print(len(aws('ec2').describe_vpcs(Filters=[{{'Name':'tag-key','Values':['kubernetes.io/cluster/{cluster}']}}])['Vpcs']))"
    ))
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn a_cloud_apply_with_a_store_the_nodes_cannot_read_is_refused_before_any_call() {
    let moto = Moto::start();
    moto.create_bucket("state");
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = format!("file://{}", state_dir.display());
    // Offline work with the local store: create without --yes.
    ok(kopsrs(&state)
        .args(["create", "cluster", NAME, "--zones", "eu-west-1a"])
        .args(["--image", IMAGE, "--dns", "none"]));

    // Each apply, also with the flags that skip other checks: refused, naming the store, why
    // and the fix; nothing written, no AWS call.
    let applies: &[&[&str]] = &[
        &["update", "cluster", NAME, "--yes"],
        &[
            "update",
            "cluster",
            NAME,
            "--yes",
            "--skip-network-checks",
            "--prune",
            "--instance-group-roles",
            "node",
        ],
        &["reconcile", "cluster", NAME, "--yes"],
        &[
            "create",
            "cluster",
            "new.example.com",
            "--zones",
            "eu-west-1a",
            "--dns",
            "none",
            "--yes",
        ],
    ];
    for args in applies {
        let before = snapshot(&state_dir);
        moto.faults(serde_json::json!({}));
        let output = with_aws(kopsrs(&state), &moto)
            .args(*args)
            .output()
            .unwrap();
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("refused")
                && err.contains(&state)
                && err.contains("nodes read")
                && err.contains("KOPS_STATE_STORE=s3://")
                && err.contains("--state s3://"),
            "{args:?}: {err}"
        );
        assert_eq!(snapshot(&state_dir), before, "{args:?} wrote to the store");
        assert_eq!(moto.calls()["total"], 0, "{args:?} called AWS");
    }
    assert_eq!(vpcs_of(&moto, NAME), 0);

    // The embedded default store (no KOPS_STATE_STORE) is refused the same way.
    moto.faults(serde_json::json!({}));
    let data = dir.path().join("data");
    let output = with_aws(kopsrs(&state), &moto)
        .env_remove("KOPS_STATE_STORE")
        .env("XDG_DATA_HOME", &data)
        .args(["update", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(
        !output.status.success()
            && err.contains("refused")
            && err.contains(&format!("file://{}", data.join("kopsrs/state").display())),
        "{err}"
    );
    assert_eq!(moto.calls()["total"], 0);

    // A dry run plans, and says the plan could not boot nodes.
    let output = ok(with_aws(kopsrs(&state), &moto).args(["update", "cluster", NAME]));
    let err = stderr(&output);
    assert!(
        err.contains("warning: this plan cannot boot nodes") && err.contains(&state),
        "{err}"
    );
    // Terraform output is written, with the same warning.
    let out = dir.path().join("tf");
    let output = ok(kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&out));
    assert!(
        stderr(&output).contains("warning: the Terraform output cannot boot nodes"),
        "{}",
        stderr(&output)
    );
    assert!(out.join("kubernetes.tf").exists());

    // An S3 store still applies. A spec carrying a local configBase (made in a local store,
    // then created in S3) is refused there too, naming the field; nothing written.
    let s3 = || with_aws(moto.kopsrs("state"), &moto);
    ok(s3()
        .args([
            "create",
            "cluster",
            "s3.example.com",
            "--zones",
            "eu-west-1a",
        ])
        .args(["--image", IMAGE, "--dns", "none"]));
    ok(s3().args([
        "edit",
        "cluster",
        "s3.example.com",
        "--set",
        &format!("spec.configBase={state}/s3.example.com"),
    ]));
    let before = s3_objects(&moto, "clusters/");
    moto.faults(serde_json::json!({}));
    let output = s3()
        .args(["update", "cluster", "s3.example.com", "--yes"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(
        !output.status.success()
            && err.contains("spec.configBase")
            && err.contains("--unset spec.configBase"),
        "{err}"
    );
    assert_eq!(s3_objects(&moto, "clusters/"), before);
    assert!(cloud_calls(&moto).is_empty(), "{:?}", cloud_calls(&moto));
    ok(s3().args([
        "edit",
        "cluster",
        "s3.example.com",
        "--unset",
        "spec.configBase",
    ]));
    ok(s3().args(["update", "cluster", "s3.example.com", "--yes"]));
    assert_eq!(vpcs_of(&moto, "s3.example.com"), 1);
}

/// `kops-version.txt` as kops writes it into a cluster's folder.
const KOPS_MARKER: &str = "1.30.1";

#[test]
fn a_cluster_kops_built_is_refused_by_every_verb_that_changes_its_instances() {
    let moto = Moto::start();
    moto.create_bucket("state");
    let k = || with_aws(moto.kopsrs("state"), &moto);
    // Applied by kopsrs, so there are instances to roll and resources to delete; then kops
    // writes its marker, as if kops had built it.
    ok(k()
        .args([
            "create",
            "cluster",
            NAME,
            "--zones",
            "eu-west-1a",
            "--node-count",
            "1",
        ])
        .args(["--image", IMAGE, "--dns", "none", "--yes"]));
    assert_eq!(vpcs_of(&moto, NAME), 1);
    moto.python(&format!(
        "aws('s3', 'us-east-1').put_object(Bucket='state', Key='clusters/{NAME}/kops-version.txt', Body=b'{KOPS_MARKER}')"
    ));
    let instances = || {
        moto.python(
            "print(sorted(i['InstanceId'] for r in aws('ec2').describe_instances()['Reservations'] for i in r['Instances'] if i['State']['Name'] == 'running'))",
        )
    };
    let running = instances();
    // Something to change, so a refusal is not "nothing to do".
    ok(k().args(["edit", "cluster", NAME, "--set", "spec.cloudLabels=team=a"]));

    let mutating: &[&[&str]] = &[
        &["update", "cluster", NAME, "--yes"],
        &["update", "cluster", NAME, "--yes", "--skip-network-checks"],
        &[
            "rolling-update",
            "cluster",
            NAME,
            "--yes",
            "--cloudonly",
            "--force",
        ],
        &["reconcile", "cluster", NAME, "--yes"],
        &["delete", "cluster", NAME, "--yes"],
        &["delete", "cluster", NAME, "--unregister", "--yes"],
    ];
    for args in mutating {
        let before = s3_objects(&moto, "clusters/");
        moto.faults(serde_json::json!({}));
        let output = k().args(*args).output().unwrap();
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains("refused")
                && err.contains("built by kops")
                && err.contains(KOPS_MARKER)
                && err.contains("kops-version.txt")
                && err.contains("kops delete cluster")
                && err.contains("docs/compatibility.md"),
            "{args:?}: {err}"
        );
        assert_eq!(s3_objects(&moto, "clusters/"), before, "{args:?} wrote");
        // Nothing changed in the cloud: no call that is not a read.
        let writes: Vec<String> = cloud_calls(&moto)
            .into_iter()
            .filter(|a| {
                let action = a.split(':').nth(1).unwrap_or("");
                !action.starts_with("Describe")
                    && !action.starts_with("List")
                    && !action.starts_with("Get")
            })
            .collect();
        assert!(writes.is_empty(), "{args:?}: {writes:?}");
    }
    assert_eq!(instances(), running);
    assert_eq!(vpcs_of(&moto, NAME), 1);

    // Reading verbs work; the plan and the dry runs say that applying is refused.
    let before = s3_objects(&moto, "clusters/");
    ok(k().args(["get", "all", NAME, "-o", "yaml"]));
    ok(k().args(["get", "instances", NAME]));
    let plan = ok(k().args(["update", "cluster", NAME]));
    assert!(
        stderr(&plan).contains("built by kops")
            && stderr(&plan).contains("`update cluster --yes` is refused"),
        "{}",
        stderr(&plan)
    );
    let roll = ok(k().args(["rolling-update", "cluster", NAME, "--cloudonly", "--force"]));
    assert!(stderr(&roll).contains("`rolling-update cluster --yes` is refused"));
    ok(k().args(["delete", "cluster", NAME]));
    ok(k().args(["export", "kubeconfig", NAME, "--admin"]));
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("tf");
    let output = ok(k()
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    assert!(stderr(&output).contains("left as kops wrote it"));
    assert!(tf.join("kubernetes.tf").exists());
    // None of them wrote to the store (the Terraform target leaves kops's addon channel and
    // completed spec alone).
    assert_eq!(s3_objects(&moto, "clusters/"), before);
}

#[test]
fn a_cluster_kops_built_in_a_local_store_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = format!("file://{}", state_dir.display());
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    ok(kopsrs(&state).args(["create", "-f"]).arg(&file));
    std::fs::write(state_dir.join(NAME).join("kops-version.txt"), "1.29.0\n").unwrap();
    let before = snapshot(&state_dir);

    // delete cluster --yes: refused before AWS is read (nothing listens at this endpoint).
    let output = kopsrs(&state)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["delete", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(
        !output.status.success() && err.contains("built by kops") && err.contains("1.29.0"),
        "{err}"
    );
    // Nor is its folder removed: kops's nodes read it.
    let output = kopsrs(&state)
        .args(["delete", "cluster", NAME, "--unregister", "--yes"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(
        !output.status.success() && err.contains("built by kops") && err.contains("nodeup"),
        "{err}"
    );
    // Terraform output is written; the store is left as it was.
    let tf = dir.path().join("tf");
    ok(kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    ok(kopsrs(&state).args(["get", "all", NAME, "-o", "yaml"]));
    assert_eq!(snapshot(&state_dir), before);

    // Without the marker, the same Terraform run writes the completed spec as before.
    std::fs::remove_file(state_dir.join(NAME).join("kops-version.txt")).unwrap();
    ok(kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    assert!(state_dir.join(NAME).join("cluster-completed.spec").exists());
}
