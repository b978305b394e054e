//! Addon pins through the binary: `update cluster` records the sha256 of each download it
//! can make, stops on a channel pin that does not match (before anything changes), and
//! offline says per addon that it publishes the entry unpinned. Files are served by a local
//! HTTP server; the cluster's `spec.channel` names a channel file pointing at it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{free_port, hex, kopsrs, ok, FileServer, Moto};

const NAME: &str = "pins.example.com";

/// The files the channel names: helm per architecture, a chart and a manifest.
fn serve_files(dir: &Path) -> PathBuf {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("helm-amd64.tgz"), "helm for amd64").unwrap();
    std::fs::write(files.join("helm-arm64.tgz"), "helm for arm64").unwrap();
    std::fs::write(files.join("cilium.tgz"), "cilium chart").unwrap();
    std::fs::write(files.join("ms.yaml"), "kind: Deployment # metrics-server").unwrap();
    files
}

/// A channel for Kubernetes 1.34 with three addons at `server`; `pins` adds lines under
/// an addon's entry (by name).
fn channel(server: &str, pins: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "kubernetes:\n  recommended: 1.34.1\n  minors:\n    \"1.34\": 1.34.1\naddons:\n",
    );
    for (name, kind, file) in [
        ("helm", "helm", "helm-@ARCH@.tgz"),
        ("cilium", "chart", "cilium.tgz"),
        ("metrics-server", "manifest", "ms.yaml"),
    ] {
        text.push_str(&format!(
            "- name: {name}\n  version: '1'\n  kind: {kind}\n  url: {server}/files/{file}\n"
        ));
        for (pinned, line) in pins {
            if *pinned == name {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    text
}

/// A cluster whose spec.channel is `channel_file`, in a new `file://` store.
fn cluster_with_channel(dir: &Path, channel_file: &Path) -> String {
    let state = format!("file://{}", dir.join("state").display());
    ok(kopsrs(&state)
        .args(["create", "cluster", NAME, "--zones", "eu-west-1a"])
        .args(["--kubernetes-version", "1.34.1", "--networking", "cilium"]));
    ok(kopsrs(&state)
        .args(["edit", "cluster", NAME, "--set"])
        .arg(format!("spec.channel={}", channel_file.display())));
    state
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The published channel (`None` when nothing is published).
fn published(dir: &Path) -> Option<serde_yaml_ng::Value> {
    let path = dir.join(format!("state/{NAME}/addons/bootstrap-channel.yaml"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_yaml_ng::from_str(&text).unwrap())
}

fn addon<'a>(channel: &'a serde_yaml_ng::Value, name: &str) -> &'a serde_yaml_ng::Value {
    channel["addons"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|a| a["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{name} not published: {channel:?}"))
}

#[test]
fn update_records_the_sha256_of_each_download_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = serve_files(dir.path());
    let server = FileServer::start(dir.path());
    let channel_file = dir.path().join("channel.yaml");
    std::fs::write(&channel_file, channel(&server.url, &[])).unwrap();
    let state = cluster_with_channel(dir.path(), &channel_file);
    let out = dir.path().join("tf");
    let run = || {
        ok(kopsrs(&state)
            .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
            .arg(&out)
            .env("KOPSRS_DOWNLOAD_ADDONS", "true"))
    };
    let first = stderr(&run());
    let channel = published(dir.path()).expect("published");
    let read = |file: &str| std::fs::read(files.join(file)).unwrap();
    assert_eq!(
        addon(&channel, "metrics-server")["sha256"].as_str(),
        Some(hex(&read("ms.yaml")).as_str())
    );
    assert_eq!(
        addon(&channel, "cilium")["sha256"].as_str(),
        Some(hex(&read("cilium.tgz")).as_str())
    );
    // helm's URL differs per architecture: pinned for the control plane's (t3: amd64).
    let helm = addon(&channel, "helm");
    assert_eq!(helm["sha256"], serde_yaml_ng::Value::Null);
    assert_eq!(
        helm["sha256ByArch"]["amd64"].as_str(),
        Some(hex(&read("helm-amd64.tgz")).as_str())
    );
    assert!(
        first.contains(&format!(
            "addon metrics-server: pinned: sha256 {} of the download",
            &hex(&read("ms.yaml"))[..12]
        )),
        "{first}"
    );
    // The next run keeps the published pins without downloading: the server is gone.
    drop(server);
    let again = stderr(&run());
    assert!(!again.contains("addon "), "{again}");
    assert_eq!(published(dir.path()).unwrap(), channel);
    // Those pins came from the operator's own download, not from the channel:
    // --require-pinned-addons does not take them.
    let refused = kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&out)
        .arg("--require-pinned-addons")
        .output()
        .unwrap();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("addon metrics-server 1")
            && err.contains("no sha256 pin in the channel (--require-pinned-addons takes no pin from a download)"),
        "{err}"
    );
}

#[test]
fn a_pin_that_does_not_match_the_download_stops_update_before_any_change() {
    let moto = Moto::start();
    moto.create_bucket("state");
    let dir = tempfile::tempdir().unwrap();
    serve_files(dir.path());
    let server = FileServer::start(dir.path());
    let wrong = hex(b"something else");
    let channel_file = dir.path().join("channel.yaml");
    std::fs::write(
        &channel_file,
        channel(
            &server.url,
            &[("metrics-server", &format!("sha256: {wrong}"))],
        ),
    )
    .unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("KOPSRS_DOWNLOAD_ADDONS", "true");
        c
    };
    ok(k()
        .args(["create", "cluster", NAME, "--zones", "us-east-1a"])
        .args(["--kubernetes-version", "1.34.1", "--dns", "none"])
        .args([
            "--image",
            "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721",
        ]));
    ok(k()
        .args(["edit", "cluster", NAME, "--set"])
        .arg(format!("spec.channel={}", channel_file.display())));
    for yes in [false, true] {
        let output = k()
            .args(["update", "cluster", NAME, &format!("--yes={yes}")])
            .output()
            .unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(
            err.contains("addon metrics-server 1")
                && err.contains(&format!("{}/files/ms.yaml", server.url))
                && err.contains(&hex(b"kind: Deployment # metrics-server"))
                && err.contains(&format!("the channel pins {wrong}"))
                && err.contains("nothing was changed"),
            "{err}"
        );
    }
    // Nothing in AWS; neither addons nor keys written.
    let inventory = moto.python(
        "print(len(aws('ec2', 'us-east-1').describe_vpcs(Filters=[{'Name':'tag-key','Values':['kubernetes.io/cluster/pins.example.com']}])['Vpcs']))\n\
         for prefix in ['addons/', 'pki/']:\n    \
             print(aws('s3').list_objects_v2(Bucket='state', Prefix='clusters/pins.example.com/' + prefix).get('KeyCount'))",
    );
    assert_eq!(
        inventory.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0"]
    );
}

#[test]
fn offline_terraform_output_publishes_unpinned_entries_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: every download fails at once, as on an air-gapped runner.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let channel_file = dir.path().join("channel.yaml");
    let helm_pin = hex(b"helm for amd64");
    std::fs::write(
        &channel_file,
        channel(
            &nowhere,
            &[("helm", &format!("sha256ByArch: {{amd64: {helm_pin}}}"))],
        ),
    )
    .unwrap();
    let state = cluster_with_channel(dir.path(), &channel_file);
    let out = dir.path().join("tf");
    let update = |extra: &[&str]| {
        kopsrs(&state)
            .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
            .arg(&out)
            .args(extra)
            .env("KOPSRS_DOWNLOAD_ADDONS", "true")
            .output()
            .unwrap()
    };
    // --require-pinned-addons refuses, naming each unpinned addon; nothing is written.
    let refused = update(&["--require-pinned-addons"]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    for name in ["cilium 1", "metrics-server 1"] {
        assert!(
            err.contains(&format!("addon {name}")) && err.contains("has no sha256 pin"),
            "{err}"
        );
    }
    assert!(!err.contains("addon helm"), "helm is pinned: {err}");
    assert!(!out.exists() && published(dir.path()).is_none());
    // Without it: the output is written and each unpinned entry is named.
    let written = update(&[]);
    let err = stderr(&written);
    assert!(written.status.success(), "{err}");
    assert!(out.join("kubernetes.tf").exists());
    for name in ["cilium", "metrics-server"] {
        assert!(
            err.contains(&format!("addon {name}: UNPINNED: cannot download it"))
                && err.contains("trust on first use"),
            "{err}"
        );
    }
    assert!(
        err.contains("addon helm: pinned (amd64) by the channel, not checked"),
        "{err}"
    );
    let channel = published(dir.path()).unwrap();
    assert_eq!(
        addon(&channel, "cilium")["sha256"],
        serde_yaml_ng::Value::Null
    );
    assert_eq!(
        addon(&channel, "helm")["sha256ByArch"]["amd64"].as_str(),
        Some(helm_pin.as_str())
    );
}

#[test]
fn spec_channel_names_a_channel_kopsrs_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}", dir.path().join("state").display());
    ok(kopsrs(&state).args(["create", "cluster", NAME, "--zones", "eu-west-1a"]));
    // A file that is not a channel (a key given by mistake) is named, not echoed; a
    // download far bigger than a channel is not read whole.
    let not_a_channel = dir.path().join("key.pem");
    std::fs::write(
        &not_a_channel,
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBsecretsecret\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("huge.yaml"), "#".repeat(3 << 20)).unwrap();
    let server = FileServer::start(&served);
    let huge = format!("{}/huge.yaml", server.url);
    for (channel, expect) in [
        ("alpha", "\"alpha\" is not a channel kopsrs has"),
        (
            "/nonexistent/channel.yaml",
            "cannot read /nonexistent/channel.yaml",
        ),
        (not_a_channel.to_str().unwrap(), "invalid type"),
        (huge.as_str(), "over 1024 KB, not a channel"),
    ] {
        ok(kopsrs(&state)
            .args(["edit", "cluster", NAME, "--set"])
            .arg(format!("spec.channel={channel}")));
        let output = kopsrs(&state)
            .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
            .arg(dir.path().join("tf"))
            .output()
            .unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(
            err.contains("spec.channel") && err.contains(expect),
            "{err}"
        );
        assert!(!err.contains("secret") && !err.contains("BEGIN"), "{err}");
        assert!(!dir.path().join("tf").exists());
    }
}

/// `spec.clusterAutoscaler`: the channel's optional cluster-autoscaler is published only when
/// the spec turns it on, with the spec's values (the worker groups it scales, not
/// `autoscale: false`; the expander and its priorities from the groups; kops's defaults; the
/// image of the cluster's minor); the control plane's role may scale then, not before; a
/// channel without it is an error naming the addon, with nothing written.
#[test]
fn the_cluster_autoscaler_is_published_with_the_specs_values_when_turned_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}", dir.path().join("state").display());
    ok(kopsrs(&state)
        .args([
            "create",
            "cluster",
            NAME,
            "--zones",
            "eu-west-1a,eu-west-1b",
        ])
        .args(["--kubernetes-version", "1.34.1", "--node-count", "2"]));
    let out = dir.path().join("tf");
    let update = || {
        kopsrs(&state)
            .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let policy = || {
        std::fs::read_to_string(out.join(format!("data/aws_iam_role_policy_masters.{NAME}_policy")))
            .unwrap()
    };
    let written = update();
    assert!(written.status.success(), "{}", stderr(&written));
    let first = published(dir.path()).unwrap();
    assert!(
        !first["addons"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a["name"].as_str() == Some("cluster-autoscaler")),
        "off by default"
    );
    assert!(!policy().contains("autoscaling:SetDesiredCapacity"));
    // The termination handler, on by default: written by kopsrs into the state store, pinned,
    // valid for the cluster's minor.
    let nth = addon(&first, "node-termination-handler");
    assert_eq!(
        nth["url"].as_str(),
        Some("state:addons/node-termination-handler.aws/manifest.yaml")
    );
    let manifest = dir.path().join(format!(
        "state/{NAME}/addons/node-termination-handler.aws/manifest.yaml"
    ));
    assert_eq!(
        nth["sha256"].as_str(),
        Some(hex(&std::fs::read(&manifest).unwrap()).as_str())
    );
    let checked = kopsrs(&state)
        .args(["manifests", "check", "--kubernetes-version", "1.34.1"])
        .arg(&manifest)
        .output()
        .unwrap();
    let report = stderr(&checked) + &String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(
        report.contains("4 objects checked against Kubernetes 1.34: 0 errors, 0 warnings"),
        "{report}"
    );

    ok(kopsrs(&state).args(["edit", "cluster", NAME]).args([
        "--set",
        "spec.clusterAutoscaler.enabled=true",
        "--set",
        "spec.clusterAutoscaler.expander=priority",
        "--set",
        "spec.clusterAutoscaler.scaleDownUtilizationThreshold=0.6",
    ]));
    ok(kopsrs(&state)
        .args(["edit", "instancegroup", "nodes-eu-west-1a", "--name", NAME])
        .args([
            "--set",
            "spec.autoscalePriority=100",
            "--set",
            "spec.maxSize=5",
        ]));
    ok(kopsrs(&state)
        .args(["edit", "instancegroup", "nodes-eu-west-1b", "--name", NAME])
        .args(["--set", "spec.autoscale=false"]));
    let written = update();
    assert!(written.status.success(), "{}", stderr(&written));
    let selection = published(dir.path()).unwrap();
    let ca = addon(&selection, "cluster-autoscaler");
    assert_eq!(ca["kind"].as_str(), Some("chart"));
    assert!(
        ca.get("optional").is_none(),
        "the selection's flag stays out"
    );
    let values = serde_json::to_value(&ca["values"]).unwrap();
    assert_eq!(
        values["autoscalingGroups"],
        serde_json::json!([{"name": format!("nodes-eu-west-1a.{NAME}"), "minSize": 1, "maxSize": 5}])
    );
    assert_eq!(values["awsRegion"], "eu-west-1");
    assert_eq!(values["extraArgs"]["expander"], "priority");
    assert_eq!(
        values["extraArgs"]["scale-down-utilization-threshold"],
        "0.6"
    );
    assert_eq!(
        values["extraArgs"]["scale-down-unneeded-time"], "10m0s",
        "kops's default"
    );
    assert_eq!(values["extraArgs"]["skip-nodes-with-local-storage"], true);
    assert_eq!(values["image"]["tag"], "v1.34.4");
    assert_eq!(
        values["expanderPriorities"],
        serde_json::json!({"100": [format!("^nodes-eu-west-1a\\.{}$", NAME.replace('.', "\\."))]})
    );
    assert_eq!(
        values["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert!(policy().contains("autoscaling:SetDesiredCapacity"));
    // `get assets` lists the images the spec chose: the autoscaler's and the handler's.
    let assets = kopsrs(&state)
        .args(["get", "assets", NAME, "-o", "json", "--offline"])
        .output()
        .unwrap();
    let listed: serde_json::Value =
        serde_json::from_slice(&assets.stdout).unwrap_or_else(|_| panic!("{}", stderr(&assets)));
    let images: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    for image in [
        "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.4",
        "public.ecr.aws/aws-ec2/aws-node-termination-handler:v1.25.5",
    ] {
        assert!(images.contains(&image), "{image}: {images:?}");
    }
    // The completed spec carries kops's defaults.
    let completed = std::fs::read_to_string(
        dir.path()
            .join(format!("state/{NAME}/cluster-completed.spec")),
    )
    .unwrap();
    assert!(
        completed.contains("createPriorityExpanderConfig: true"),
        "{completed}"
    );
    assert!(
        completed.contains("maxNodeProvisionTime: 15m0s"),
        "{completed}"
    );

    // A channel without it: the spec would promise an autoscaler nothing runs.
    let channel_file = dir.path().join("channel.yaml");
    std::fs::write(
        &channel_file,
        channel(&format!("http://127.0.0.1:{}", free_port()), &[]),
    )
    .unwrap();
    ok(kopsrs(&state)
        .args(["edit", "cluster", NAME, "--set"])
        .arg(format!("spec.channel={}", channel_file.display())));
    let before = std::fs::read_to_string(
        dir.path()
            .join(format!("state/{NAME}/addons/bootstrap-channel.yaml")),
    )
    .unwrap();
    let refused = update();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the spec turns on the addon cluster-autoscaler, but channel"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(
            dir.path()
                .join(format!("state/{NAME}/addons/bootstrap-channel.yaml"))
        )
        .unwrap(),
        before,
        "nothing published"
    );
}
