//! kops habits through the binary (issue 31, item 3): `--network-cidr` as a list, `get`
//! without a kind, the cluster name from the kubeconfig's current context, and kops flags
//! kopsrs does not have.

mod support;

use std::process::Output;

use support::kopsrs;

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn fails(output: Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn network_cidr_takes_a_list_as_kops_does() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let spec = ok(kopsrs(&state)
        .args(["create", "cluster", "cidrs.example.com", "--zones"])
        .args(["eu-west-1a,eu-west-1b", "--dry-run", "-o", "json"])
        .args([
            "--network-cidr",
            "10.0.0.0/16,10.1.0.0/16",
            "--network-cidr",
        ])
        .arg("10.2.0.0/16")
        .output()
        .unwrap());
    let documents: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let cluster = &documents[0]["spec"];
    assert_eq!(cluster["networkCIDR"], "10.0.0.0/16", "{spec}");
    assert_eq!(
        cluster["additionalNetworkCIDRs"],
        serde_json::json!(["10.1.0.0/16", "10.2.0.0/16"]),
        "{spec}"
    );

    // Written and completed: the spec validates and its model builds.
    ok(kopsrs(&state)
        .args([
            "create",
            "cluster",
            "cidrs.example.com",
            "--zones",
            "eu-west-1a",
        ])
        .args(["--network-cidr", "10.0.0.0/16,10.1.0.0/16"])
        .output()
        .unwrap());
    ok(kopsrs(&state)
        .args([
            "update",
            "cluster",
            "cidrs.example.com",
            "--target",
            "terraform",
        ])
        .arg("--out")
        .arg(dir.path().join("tf"))
        .output()
        .unwrap());
    let tf = std::fs::read_to_string(dir.path().join("tf/kubernetes.tf")).unwrap();
    assert!(tf.contains("\"10.1.0.0/16\""), "{tf}");

    // Each item of the list is still checked, and named.
    let error = fails(
        kopsrs(&state)
            .args([
                "create",
                "cluster",
                "bad.example.com",
                "--zones",
                "eu-west-1a",
            ])
            .args(["--network-cidr", "10.0.0.0/16,10.1.0.1/16"])
            .output()
            .unwrap(),
    );
    assert!(error.contains("--network-cidr 10.1.0.1/16"), "{error}");
    assert!(!dir.path().join("state/bad.example.com").exists());
}

#[test]
fn get_without_a_kind_prints_all_of_one_cluster() {
    let (_dir, state) = support::file_store_with_cluster();
    let key = support::repo_root().join("examples/id_ed25519.pub");
    let public = std::fs::read_to_string(&key).unwrap();
    let material = public.split_whitespace().nth(1).unwrap();
    ok(kopsrs(&state)
        .args(["create", "sshpublickey", "--name", "test.example.com", "-i"])
        .arg(&key)
        .output()
        .unwrap());
    let yaml = ok(kopsrs(&state)
        .args(["get", "--name", "test.example.com", "-o", "yaml"])
        .output()
        .unwrap());
    let kinds: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        ["Cluster", "InstanceGroup", "InstanceGroup", "SSHCredential"],
        "{yaml}"
    );
    assert!(yaml.contains(material), "{yaml}");
    // The table lists every object by kind and name.
    let table = ok(kopsrs(&state)
        .args(["get", "--name", "test.example.com"])
        .output()
        .unwrap());
    assert!(
        table.contains("SSHCredential") && table.contains("admin"),
        "{table}"
    );
    // Without a name (and no kubeconfig context) the error names the flags.
    let error = fails(kopsrs(&state).args(["get", "-o", "yaml"]).output().unwrap());
    assert!(error.contains("--name NAME"), "{error}");
}

#[test]
fn cluster_name_from_the_kubeconfig_current_context() {
    let (dir, state) = support::file_store_with_cluster();
    // No context: the error names the flags, as before.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let error = fails(
        kopsrs(&state)
            .env("KUBECONFIG", &kubeconfig)
            .args(["get", "instancegroups"])
            .output()
            .unwrap(),
    );
    assert!(
        error.contains("no cluster name given") && error.contains("KOPS_CLUSTER_NAME"),
        "{error}"
    );

    // The current context of the first file that sets one names the cluster (KUBECONFIG
    // is a list, merged as kubectl merges it); stderr says where the name came from.
    let context = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n    server: https://127.0.0.1:1\n\
             contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\nusers:\n- name: {name}\n  user: {{}}\n"
        )
    };
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(&first, context("test.example.com")).unwrap();
    std::fs::write(&second, context("other.example.com")).unwrap();
    let list = std::env::join_paths([&dir.path().join("missing"), &first, &second]).unwrap();
    let output = kopsrs(&state)
        .env("KUBECONFIG", &list)
        .args(["get", "instancegroups"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let groups = ok(output);
    assert!(groups.contains("nodes"), "{groups}");
    assert!(
        stderr.contains("Using cluster from kubectl context: test.example.com"),
        "{stderr}"
    );

    // --name and KOPS_CLUSTER_NAME come first, and then nothing is said.
    let output = kopsrs(&state)
        .env("KUBECONFIG", &second)
        .env("KOPS_CLUSTER_NAME", "test.example.com")
        .args(["get", "instancegroups"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).is_empty(),
        "{output:?}"
    );
    ok(output);
    // A context naming a cluster the store does not have: the store's own error.
    let error = fails(
        kopsrs(&state)
            .env("KUBECONFIG", &second)
            .args(["get", "instancegroups"])
            .output()
            .unwrap(),
    );
    assert!(error.contains("other.example.com"), "{error}");
}

#[test]
fn kops_flags_kopsrs_lacks_say_what_to_use() {
    let (_dir, state) = support::file_store_with_cluster();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "update",
                "cluster",
                "test.example.com",
                "--phase",
                "network",
            ],
            "--instance-group-roles",
        ),
        (
            &[
                "update",
                "cluster",
                "test.example.com",
                "--lifecycle-overrides=x=Ignore",
            ],
            "--target terraform",
        ),
        (
            &[
                "update",
                "cluster",
                "test.example.com",
                "--reconcile",
                "--yes",
            ],
            "kopsrs reconcile cluster",
        ),
        (
            &[
                "rolling-update",
                "cluster",
                "test.example.com",
                "--interactive",
            ],
            "--instance-group NAME",
        ),
        (
            &[
                "create",
                "cluster",
                "x.example.com",
                "--zones",
                "eu-west-1a",
                "--api-ssl-certificate",
                "arn:x",
            ],
            "spec.api.loadBalancer.sslCertificate",
        ),
    ];
    for (argv, hint) in cases {
        let output = kopsrs(&state).args(*argv).output().unwrap();
        let error = fails(output);
        let flag = argv
            .iter()
            .find(|a| a.starts_with("--") && !["--zones", "--yes"].contains(a))
            .unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(
            error.contains(&format!(
                "error: {flag} is a kops flag kopsrs does not have"
            )),
            "{argv:?}: {error}"
        );
        assert!(error.contains(hint), "{argv:?}: {error}");
        assert!(!error.contains("similar argument"), "{error}");
    }
    // A flag neither has keeps clap's error (exit 2).
    let output = kopsrs(&state)
        .args(["update", "cluster", "test.example.com", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
