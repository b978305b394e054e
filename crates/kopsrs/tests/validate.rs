//! `validate cluster` through the binary: a cluster applied to moto, its Nodes and pods from
//! scripts/fake_kube.py (whose node simulator registers every running instance of the
//! cluster as a Node), reached through a kubeconfig context named after the cluster.

mod support;

use std::process::Command;
use std::time::Duration;

use support::kube::FakeKube;
use support::Moto;

const NAME: &str = "valid.example.com";
const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";

fn validate(moto: &Moto, kube: &FakeKube, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["validate", "cluster", NAME, "-o", "json", "--kubeconfig"])
        .arg(&kube.kubeconfig)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn messages(json: &serde_json::Value) -> Vec<String> {
    json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn validate_cluster_reports_what_kops_reports() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args([
            "create",
            "cluster",
            "--name",
            NAME,
            "--dns-zone",
            "example.com",
        ])
        .args([
            "--zones",
            "eu-west-1a",
            "--node-count",
            "2",
            "--image",
            IMAGE,
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kube = FakeKube::start(dir.path(), &moto, NAME, &["--ready-after", "0"]);

    // Healthy: every instance joined, Ready, the control plane's pods running.
    let (code, json, stderr) = validate(&moto, &kube, &["--wait", "60s", "--interval", "1s"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert!(messages(&json).is_empty());
    assert!(!stderr.contains("etcd backup"), "{stderr}");
    // The control plane's backups stopped two hours ago (every 15 minutes by default): a
    // warning, the cluster still valid.
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    moto.python(&format!(
        "aws('s3').put_object(Bucket='state', Key='clusters/{NAME}/backups/etcd/main/latest', Body=json.dumps({{'name': 'x', 'takenAt': {two_hours_ago}, 'etcdVersion': '3.6.4', 'revision': 1, 'members': 1, 'kubernetesVersion': '1.34.1', 'size': 1, 'sha256': '0'}}))"
    ));
    let (code, _, stderr) = validate(&moto, &kube, &["--wait", "60s", "--interval", "1s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the newest etcd backup of valid.example.com is 2h")
            && stderr.contains("backups are failing"),
        "{stderr}"
    );
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{json}");
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n["role"] == "control-plane")
            .count(),
        1
    );
    assert!(nodes
        .iter()
        .all(|n| n["status"] == "True" && n["zone"] == "eu-west-1a"));
    let cp = nodes.iter().find(|n| n["role"] == "control-plane").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let worker = nodes.iter().find(|n| n["role"] == "node").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();

    // A missing control-plane pod and a NotReady node: exit 1, each named.
    kube.control(
        "POST",
        &format!("/__fake/static-pods/{cp}/kube-scheduler"),
        r#"{"present": false}"#,
    );
    kube.control(
        "POST",
        &format!("/__fake/nodes/{worker}/condition"),
        r#"{"Ready": "False"}"#,
    );
    std::thread::sleep(Duration::from_millis(800));
    let (code, json, _) = validate(&moto, &kube, &[]);
    assert_eq!(code, 1, "{json}");
    let m = messages(&json);
    assert!(
        m.contains(&format!(
            "control-plane node \"{cp}\" is missing kube-scheduler pod"
        )),
        "{m:?}"
    );
    assert!(
        m.contains(&format!("node \"{worker}\" of role \"node\" is not ready")),
        "{m:?}"
    );
    let f = json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "Node" && f["name"] == worker.as_str())
        .unwrap();
    assert_eq!(f["instanceGroup"], "nodes-eu-west-1a", "{f}");
    // One NotReady worker is allowed with --max-unready-nodes 1 (its DaemonSet pod, not ready
    // with it, still counts); the control plane's missing pod is not.
    let (code, json, _) = validate(&moto, &kube, &["--max-unready-nodes", "1"]);
    assert_eq!(code, 1);
    let m = messages(&json);
    assert!(!m.iter().any(|m| m.starts_with("node ")), "{m:?}");
    assert!(
        m.iter().any(|m| m.contains("missing kube-scheduler pod")),
        "{m:?}"
    );
    kube.control(
        "POST",
        &format!("/__fake/static-pods/{cp}/kube-scheduler"),
        r#"{"present": true}"#,
    );
    kube.control(
        "POST",
        &format!("/__fake/nodes/{worker}/condition"),
        r#"{"Ready": null}"#,
    );

    // An instance whose Node is gone (the fake re-registers it only much later).
    kube.control("POST", "/__fake/config", r#"{"reregister_after": 600}"#);
    let status = Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", "-X", "DELETE"])
        .arg(format!("{}/api/v1/nodes/{worker}", kube.url))
        .status()
        .unwrap();
    assert!(status.success());
    let (code, json, _) = validate(&moto, &kube, &[]);
    assert_eq!(code, 1, "{json}");
    let m = messages(&json);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("machine \"i-") && m[0].ends_with("has not yet joined cluster"),
        "{m:?}"
    );

    // No context for the cluster: an error that says how to get one.
    let empty = support::kube::empty_kubeconfig(dir.path());
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args(["validate", "cluster", NAME, "--kubeconfig"])
        .arg(&empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("no kubeconfig context named \"{NAME}\""))
            && stderr.contains("export kubeconfig"),
        "{stderr}"
    );
}

/// `toolbox dump`: the cluster's instances from AWS and its Nodes and pods from the API as
/// one JSON document; with the API gone, the cloud's part and the reason.
#[test]
fn toolbox_dump_has_the_cloud_and_the_api() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let out = moto
        .kopsrs("state")
        .env("AWS_REGION", "eu-west-1")
        .args([
            "create",
            "cluster",
            "--name",
            NAME,
            "--dns-zone",
            "example.com",
        ])
        .args([
            "--zones",
            "eu-west-1a",
            "--node-count",
            "2",
            "--image",
            IMAGE,
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kube = FakeKube::start(dir.path(), &moto, NAME, &["--ready-after", "0"]);
    let dump = |kubeconfig: &std::path::Path| {
        let out = moto
            .kopsrs("state")
            .env("AWS_REGION", "eu-west-1")
            .args([
                "toolbox",
                "dump",
                "--name",
                NAME,
                "-o",
                "json",
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, stderr)
    };
    // The node simulator registers the instances as Nodes within a few syncs.
    let started = std::time::Instant::now();
    let (json, _) = loop {
        let (json, stderr) = dump(&kube.kubeconfig);
        if json["kubernetes"]["nodes"].as_array().unwrap().len() == 3 {
            break (json, stderr);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{json}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(json["cluster"], NAME);
    assert!(json["kubernetes"]["error"].is_null(), "{json}");
    let instances = json["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{json}");
    // What boto3 says the cluster's instances are, with their private IPs.
    let listed = moto.python(&format!(
        "r = aws('ec2').describe_instances(Filters=[{{'Name': 'tag:KubernetesCluster', 'Values': ['{NAME}']}}, {{'Name': 'instance-state-name', 'Values': ['running']}}])\n\
         print(json.dumps(sorted([i['InstanceId'] + ' ' + i['PrivateIpAddress'] for x in r['Reservations'] for i in x['Instances']])))"
    ));
    let expected: Vec<String> = serde_json::from_str(listed.trim()).unwrap();
    let mut dumped: Vec<String> = instances
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["id"].as_str().unwrap(),
                i["internalIp"].as_str().unwrap()
            )
        })
        .collect();
    dumped.sort();
    assert_eq!(dumped, expected);
    for instance in instances {
        assert!(
            !instance["instanceGroup"].as_str().unwrap().is_empty()
                && instance["state"] == "InService"
                && !instance["launchTemplateVersion"]
                    .as_str()
                    .unwrap()
                    .is_empty(),
            "{instance}"
        );
    }
    let node_instances: Vec<&str> = json["kubernetes"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["instanceId"].as_str().unwrap())
        .collect();
    assert!(
        instances
            .iter()
            .all(|i| node_instances.contains(&i["id"].as_str().unwrap())),
        "{json}"
    );
    assert!(
        !json["kubernetes"]["pods"].as_array().unwrap().is_empty(),
        "{json}"
    );

    // The API gone: the cloud's part, the reason in the document and on stderr.
    let kubeconfig = kube.kubeconfig.clone();
    drop(kube);
    let (json, stderr) = dump(&kubeconfig);
    assert_eq!(json["instances"].as_array().unwrap().len(), 3, "{json}");
    assert!(json["kubernetes"]["nodes"].as_array().unwrap().is_empty());
    let error = json["kubernetes"]["error"].as_str().unwrap();
    assert!(error.contains("did not answer"), "{error}");
    assert!(
        stderr.contains("warning:") && stderr.contains("cloud's part only"),
        "{stderr}"
    );
}

/// The documented way to try day two on a laptop: scripts/local_day_two.sh starts the local
/// AWS API and the stand-in Kubernetes API, applies a cluster to them and (here, with
/// --validate-once) validates it with this binary.
#[test]
fn the_local_day_two_script_brings_up_a_cluster_that_validates() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(support::repo_root().join("scripts/local_day_two.sh"))
        .args(["trial.example.com", "--validate-once"])
        .env("KOPSRS_BIN", env!("CARGO_BIN_EXE_kopsrs"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("KOPS_STATE_STORE")
        .env_remove("KOPS_CLUSTER_NAME")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Your cluster trial.example.com is ready"),
        "{stdout}"
    );
}
