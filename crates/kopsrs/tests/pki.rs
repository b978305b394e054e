//! The cluster PKI through the binary: keysets created once in kops's layout, rotation
//! (create, promote, distrust, trust), and `export kubeconfig` checked with kubectl and openssl.

mod support;

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use support::{kopsrs, snapshot, CLUSTER};

const NAME: &str = "test.example.com";

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}/state", dir.path().display());
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, CLUSTER).unwrap();
    kopsrs(&state)
        .args(["create", "-f"])
        .arg(&spec)
        .assert()
        .success();
    (dir, state)
}

fn pki_files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    snapshot(&dir.join("state").join(NAME).join("pki"))
}

fn keypairs(state: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let output = kopsrs(state)
        .args(["get", "keypairs", "--name", NAME, "-o", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn keysets_are_created_once_in_kops_layout() {
    let (dir, state) = setup();
    let out = dir.path().join("tf");
    let terraform = |state: &str| {
        kopsrs(state)
            .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
            .arg(&out)
            .assert()
            .success();
    };
    terraform(&state);
    let first = pki_files(dir.path());
    for keyset in [
        "kubernetes-ca",
        "etcd-ca",
        "apiserver-aggregator-ca",
        "service-account",
    ] {
        let private = dir
            .path()
            .join(format!("state/{NAME}/pki/private/{keyset}/keyset.yaml"));
        let issued = dir
            .path()
            .join(format!("state/{NAME}/pki/issued/{keyset}/keyset.yaml"));
        let private = std::fs::read_to_string(private).unwrap();
        assert!(private.contains("kind: Keyset") && private.contains("privateMaterial"));
        assert!(!std::fs::read_to_string(issued)
            .unwrap()
            .contains("privateMaterial"));
    }
    terraform(&state);
    assert_eq!(
        pki_files(dir.path()),
        first,
        "keysets are never regenerated"
    );

    // Listing never shows private material.
    let listed = kopsrs(&state)
        .args(["get", "keypairs", "--name", NAME, "-o", "yaml"])
        .output()
        .unwrap();
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains("kubernetes-ca") && text.contains("subject: CN=kubernetes-ca"));
    assert!(
        !text.contains("PRIVATE") && !text.contains("privateMaterial"),
        "{text}"
    );
}

/// CA certificates in a kubeconfig's cluster entry.
fn trusted_cas(kubeconfig: &Path) -> usize {
    let config: serde_json::Value = serde_json::from_slice(
        &Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(kubeconfig)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cluster = named(&config["clusters"]);
    let data = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    let pem = base64_decode(data);
    pem.matches("BEGIN CERTIFICATE").count()
}

fn base64_decode(text: &str) -> String {
    let output = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn rotation_round_trip_and_the_trust_bundle() {
    let (dir, state) = setup();
    let kubeconfig = dir.path().join("kubeconfig");
    let export = || {
        kopsrs(&state)
            .args(["export", "kubeconfig", NAME, "--kubeconfig"])
            .arg(&kubeconfig)
            .assert()
            .success();
    };
    // Rotation verbs create the keysets when a cluster has none yet.
    kopsrs(&state)
        .args(["create", "keypair", "kubernetes-ca", "--name", NAME])
        .assert()
        .success();
    let keys = keypairs(&state, &[]);
    let ca: Vec<_> = keys
        .iter()
        .filter(|k| k["keyset"] == "kubernetes-ca")
        .collect();
    assert_eq!(ca.len(), 2);
    let (old, new) = (ca[0]["id"].clone(), ca[1]["id"].clone());
    assert_eq!(ca[0]["primary"], true, "a new key is not primary");
    export();
    assert_eq!(
        trusted_cas(&kubeconfig),
        2,
        "both keys trusted while rotating"
    );

    kopsrs(&state)
        .args(["promote", "keypair", "kubernetes-ca", "--name", NAME])
        .assert()
        .success();
    kopsrs(&state)
        .args(["distrust", "keypair", "kubernetes-ca", "--name", NAME])
        .assert()
        .success();
    let visible = keypairs(&state, &[]);
    let ca: Vec<_> = visible
        .iter()
        .filter(|k| k["keyset"] == "kubernetes-ca")
        .collect();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0]["id"], new);
    assert_eq!(ca[0]["primary"], true);
    let all = keypairs(&state, &["--distrusted"]);
    assert!(all
        .iter()
        .any(|k| k["id"] == old && k["distrusted"] == true));
    export();
    assert_eq!(
        trusted_cas(&kubeconfig),
        1,
        "the distrusted CA left the bundle"
    );

    // The primary cannot be distrusted; trusting the old key brings it back.
    let refused = kopsrs(&state)
        .args([
            "distrust",
            "keypair",
            "kubernetes-ca",
            new.as_str().unwrap(),
            "--name",
            NAME,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is primary"));
    kopsrs(&state)
        .args([
            "trust",
            "keypair",
            "kubernetes-ca",
            old.as_str().unwrap(),
            "--name",
            NAME,
        ])
        .assert()
        .success();
    export();
    assert_eq!(trusted_cas(&kubeconfig), 2);

    let unknown = kopsrs(&state)
        .args(["create", "keypair", "nope", "--name", NAME])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"nope\" is not a keyset"));
}

#[test]
fn export_kubeconfig_admin_merges_and_verifies() {
    let (dir, state) = setup();
    let kubeconfig = dir.path().join("kube").join("config");
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://other:6443'}\nusers:\n- name: other\n  user: {token: secret}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n",
    )
    .unwrap();
    // No PKI yet: a clear error.
    let early = kopsrs(&state)
        .args(["export", "kubeconfig", NAME, "--admin", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("update cluster"));
    kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(dir.path().join("tf"))
        .assert()
        .success();
    kopsrs(&state)
        .args(["export", "kubeconfig", NAME, "--admin", "--kubeconfig"])
        .arg(&kubeconfig)
        .assert()
        .success();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let view = Command::new("kubectl")
        .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
    assert_eq!(config["current-context"], NAME);
    assert_eq!(
        config["contexts"].as_array().unwrap().len(),
        2,
        "the other context survives"
    );
    let user = named(&config["users"]);
    let cluster = named(&config["clusters"]);
    assert_eq!(cluster["cluster"]["server"], format!("https://api.{NAME}"));
    let ca = dir.path().join("ca.pem");
    let cert = dir.path().join("client.pem");
    std::fs::write(
        &ca,
        base64_decode(
            cluster["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        ),
    )
    .unwrap();
    std::fs::write(
        &cert,
        base64_decode(user["user"]["client-certificate-data"].as_str().unwrap()),
    )
    .unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca)
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&subject.stdout);
    assert!(
        subject.contains("O = system:masters") && subject.contains("CN = kubecfg"),
        "{subject}"
    );
    // Valid for 18 hours (kops's default): still valid in 17h59m, expired in 18h05m.
    let valid_for = |seconds: u32| {
        Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in"])
            .arg(&cert)
            .status()
            .unwrap()
            .success()
    };
    assert!(valid_for(18 * 3600 - 60));
    assert!(!valid_for(18 * 3600 + 300));

    let bad = kopsrs(&state)
        .args(["export", "kubeconfig", NAME, "--admin=soon", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--admin \"soon\": not a duration"));
}

/// The entry named after the cluster in a kubeconfig list (`clusters`, `contexts`, `users`).
fn named(list: &serde_json::Value) -> &serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == NAME)
        .unwrap_or_else(|| panic!("no {NAME} in {list}"))
}

/// `update cluster --yes` exports the kubeconfig as kops does, but an entry the user already
/// has keeps its server and the context's user (a tunnel, an SSO user): the next
/// `rolling-update` still reaches the cluster. `--admin` and `--user` ask for new credentials.
#[test]
fn the_export_of_update_yes_keeps_the_users_server_and_credentials() {
    let moto = support::Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1")
            .env("KUBECONFIG", &kubeconfig);
        c
    };
    k().args(["create", "cluster", "--name", NAME, "--zones", "eu-west-1a"])
        .args([
            "--dns-zone",
            "example.com",
            "--image",
            support::boot::IMAGE,
            "--yes",
        ])
        .assert()
        .success();
    let view = || -> serde_json::Value {
        let out = Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = view();
    assert_eq!(
        first["clusters"][0]["cluster"]["server"],
        format!("https://api.{NAME}")
    );
    // The user reaches the API through a tunnel, as an SSO user.
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    kubectl(&[
        "config",
        "set-cluster",
        NAME,
        "--server",
        "https://127.0.0.1:16443",
    ]);
    kubectl(&[
        "config",
        "set-credentials",
        "sso",
        "--token",
        "secret-token",
    ]);
    kubectl(&[
        "config",
        "set-context",
        NAME,
        "--user",
        "sso",
        "--namespace",
        "team",
    ]);

    let out = k()
        .args(["update", "cluster", NAME, "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keeping the server and credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = view();
    let cluster = named(&kept["clusters"]);
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:16443");
    assert_eq!(
        cluster["cluster"]["certificate-authority-data"],
        first["clusters"][0]["cluster"]["certificate-authority-data"]
    );
    let context = named(&kept["contexts"]);
    assert_eq!(context["context"]["user"], "sso");
    assert_eq!(context["context"]["namespace"], "team");
    assert_eq!(kept["current-context"], NAME);

    // --admin: an admin certificate for the context; the server stays.
    k().args(["update", "cluster", NAME, "--yes", "--admin=1h"])
        .assert()
        .success();
    let admin = view();
    let context = named(&admin["contexts"]);
    assert_eq!(context["context"]["user"], NAME);
    let user = named(&admin["users"]);
    assert!(
        user["user"]["client-certificate-data"].is_string(),
        "{admin}"
    );
    let cluster = named(&admin["clusters"]);
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:16443");
    // --user: that existing user.
    k().args(["update", "cluster", NAME, "--yes", "--user", "sso"])
        .assert()
        .success();
    let back = view();
    let context = named(&back["contexts"]);
    assert_eq!(context["context"]["user"], "sso");
    // An explicit export writes kops's entry.
    k().args(["export", "kubeconfig", NAME]).assert().success();
    let explicit = view();
    let cluster = named(&explicit["clusters"]);
    assert_eq!(cluster["cluster"]["server"], format!("https://api.{NAME}"));
}
