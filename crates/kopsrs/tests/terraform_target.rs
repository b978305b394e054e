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

/// A store holding the harness's cluster renamed to `name`, with the node group renamed to
/// `group`.
fn store_with(name: &str, group: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let file = dir.path().join("cluster.yaml");
    let spec = support::CLUSTER
        .replace("test.example.com", name)
        .replace("  name: nodes\n", &format!("  name: {group}\n"));
    std::fs::write(&file, spec).unwrap();
    ok(kopsrs(&state)
        .args(["create", "-f"])
        .arg(&file)
        .output()
        .unwrap());
    (dir, state)
}

/// The value of every `name = "..."` of a resource of `kind` in `tf`.
fn names_of(tf: &str, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in tf.lines() {
        if line.starts_with("resource ") {
            inside = line.starts_with(&format!("resource \"{kind}\" "));
        } else if inside && line.trim_start().starts_with("name ") {
            let value = line.split('"').nth(1).unwrap_or_default();
            out.push(value.to_string());
        }
    }
    out
}

/// A 71-character cluster name (common: team-product-environment-region under a company
/// zone): every name kopsrs writes is within AWS's limit for its kind, shortened as kops
/// shortens it (the expected names were computed by a separate implementation of kops's
/// rule, see `kopsrs_model::names`).
#[test]
fn long_cluster_names_stay_within_aws_limits_as_kops_names_them() {
    let name = "payments-checkout-production-eu-west-1a.platform.k8s.example-corp.co.uk";
    let (dir, state) = store_with(name, "nodes");
    let out = dir.path().join("tf");
    ok(kopsrs(&state)
        .args(["update", "cluster", name, "--target", "terraform", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let tf = std::fs::read_to_string(out.join("kubernetes.tf")).unwrap();
    let roles = names_of(&tf, "aws_iam_role");
    assert!(
        roles.contains(&"masters.payments-checkout-production-eu-west-1a.platform.-o9alb2".into())
            && roles.contains(
                &"nodes.payments-checkout-production-eu-west-1a.platform.k8-u6pc9k".into()
            ),
        "{roles:?}"
    );
    assert!(
        tf.contains(
            "resource \"aws_iam_instance_profile\" \"masters-payments-checkout-production-eu-west-1a-platform--o9alb2\""
        ),
        "the address follows the shortened name, as kops's does"
    );
    let rules = names_of(&tf, "aws_cloudwatch_event_rule");
    assert!(
        rules.contains(&"payments-checkout-production-eu-w-9hotea-ASGLifecycle".into()),
        "{rules:?}"
    );
    for (kind, limit) in [
        ("aws_iam_role", 64),
        ("aws_iam_instance_profile", 64),
        ("aws_iam_role_policy", 128),
        ("aws_cloudwatch_event_rule", 64),
        ("aws_sqs_queue", 80),
        ("aws_lb", 32),
        ("aws_lb_target_group", 32),
        ("aws_launch_template", 128),
        ("aws_autoscaling_group", 255),
    ] {
        for value in names_of(&tf, kind) {
            assert!(value.len() <= limit, "{kind} {value:?} is over {limit}");
        }
    }
}

/// A name that is still too long after kops's shortening (a launch template named after a
/// long group and a long cluster) is refused before anything is written, naming the field.
#[test]
fn a_name_over_an_aws_limit_is_refused_before_anything_is_written() {
    let name = "payments-checkout-production-eu-west-1a.platform.k8s.example-corp.co.uk";
    let group = "nodes-for-the-batch-processing-workloads-of-the-payments-team-1";
    let (dir, state) = store_with(name, group);
    let out = dir.path().join("tf");
    let before = snapshot(dir.path());
    let output = kopsrs(&state)
        .args(["update", "cluster", name, "--target", "terraform", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("metadata.name")
            && stderr.contains("aws_launch_template")
            && stderr.contains("over the 128 AWS allows"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(before, snapshot(dir.path()), "nothing written");
}

/// The writer removes the data files it wrote that the output no longer has, and nothing
/// else: a file someone put into `data/` stays.
#[test]
fn only_the_data_files_kopsrs_wrote_are_removed() {
    let (dir, state) = support::file_store_with_cluster();
    let out = dir.path().join("tf");
    let update = || {
        ok(kopsrs(&state)
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
            .unwrap())
    };
    update();
    let user_data = out.join("data/aws_launch_template_nodes.test.example.com_user_data");
    assert!(user_data.exists());
    std::fs::write(out.join("data/notes.txt"), "ours").unwrap();
    ok(kopsrs(&state)
        .args([
            "delete",
            "ig",
            "nodes",
            "--name",
            "test.example.com",
            "--yes",
        ])
        .output()
        .unwrap());
    update();
    assert!(!user_data.exists(), "the removed group's user-data goes");
    assert_eq!(
        std::fs::read_to_string(out.join("data/notes.txt")).unwrap(),
        "ours",
        "a file kopsrs did not write stays"
    );
}
