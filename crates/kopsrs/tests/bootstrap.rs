//! Node bootstrap: the rendered user-data of several cluster shapes passes shellcheck, its
//! kubeadm documents decode strictly (v1beta4) and it fits EC2's 16 KB gzip-compressed; and a
//! simulated boot of two control-plane nodes and a worker, with stub commands on PATH, a fake
//! instance metadata service and moto as S3 and EC2, gives exactly one `kubeadm init`.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use kopsrs_bootstrap::kubeadm::{self, Document};
use support::boot::{
    applied_with, calls, count, finish, run, sha256_hex, start_node, write_stubs, Node,
};
use support::kube::FakeKube;
use support::{kopsrs, Moto};

fn shellcheck() -> Command {
    let probe = Command::new("shellcheck").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "shellcheck is not installed: run scripts/test.sh, which installs it"
    );
    Command::new("shellcheck")
}

/// User-data files of a Terraform rendering, by instance group.
fn user_data(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let group = name
                .strip_prefix("aws_launch_template_")?
                .strip_suffix("_user_data")?
                .to_string();
            Some((group, std::fs::read_to_string(e.path()).unwrap()))
        })
        .collect()
}

/// `text` passes shellcheck as bash.
fn check_script(label: &str, text: &str) {
    let path = std::env::temp_dir().join(format!("kopsrs-ud-{}-{label}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = shellcheck()
        .args(["-s", "bash"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{label}: shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn check_user_data(group: &str, text: &str) {
    check_script(group, text);
    let size = kopsrs_bootstrap::gzip(text).len();
    assert!(
        size < kopsrs_bootstrap::MAX_USER_DATA,
        "{group}: {size} bytes gzip-compressed"
    );
    let docs = kopsrs_bootstrap::embedded_kubeadm_documents(text);
    let decoded: Vec<Document> = docs
        .iter()
        .flat_map(|d| kubeadm::decode(d).unwrap_or_else(|e| panic!("{group}: {e}\n{d}")))
        .collect();
    if group.starts_with("bastions") {
        assert!(decoded.is_empty(), "{group}");
    } else if group.starts_with("control-plane") {
        assert!(matches!(
            &decoded[..],
            [Document::Init(_), Document::Cluster(_), Document::Join(j)] if j.control_plane.is_some()
        ));
    } else {
        assert!(
            matches!(&decoded[..], [Document::Join(j)] if j.control_plane.is_none()),
            "{group}"
        );
    }
    assert!(
        !text.contains("PRIVATE KEY"),
        "{group}: no key material in user-data"
    );
}

#[test]
fn rendered_user_data_passes_shellcheck_and_decodes_strictly() {
    let shapes: [(&str, &[&str]); 4] = [
        (
            "ha.example.com",
            &[
                "--zones",
                "eu-west-1a,eu-west-1b,eu-west-1c",
                "--control-plane-count",
                "3",
            ],
        ),
        (
            "private.example.com",
            &[
                "--zones",
                "eu-west-1a",
                "--topology",
                "private",
                "--bastion",
            ],
        ),
        (
            "calico.example.com",
            &["--zones", "eu-west-1a", "--networking", "calico"],
        ),
        ("gossip.k8s.local", &["--zones", "eu-west-1a,eu-west-1b"]),
    ];
    let mut checked = 0;
    for (name, flags) in shapes {
        let dir = tempfile::tempdir().unwrap();
        let state = format!("file://{}", dir.path().join("state").display());
        kopsrs(&state)
            .args(["create", "cluster", "--name", name])
            .args(flags)
            .assert_ok();
        let out = dir.path().join("tf");
        kopsrs(&state)
            .args(["update", "cluster", name, "--target", "terraform", "--out"])
            .arg(&out)
            .assert_ok();
        let files = user_data(&out);
        assert!(files.len() >= 2, "{name}: {files:?}");
        for (group, text) in &files {
            check_user_data(group, text);
            checked += 1;
        }
        let tf = std::fs::read_to_string(out.join("kubernetes.tf")).unwrap();
        assert!(tf.contains("user_data = base64gzip(file("), "{name}");
        if name.ends_with(".k8s.local") {
            // No DNS: nodes find the API load balancer's name at boot.
            assert!(files.values().all(|t| t.contains("API_DNS_NAME=''")));
            assert!(files
                .values()
                .all(|t| t.contains("API_LB_NAME='api-gossip-k8s-local")));
        }
    }
    assert!(checked >= 9, "{checked}");
}

#[test]
fn nodes_reach_the_state_store_and_apis_in_their_partition_whatever_the_bucket_name() {
    // A bucket with dots in China: virtual-hosted `my.dotted.bucket.s3.amazonaws.com` fails
    // TLS (the certificate covers one label) and is in the wrong partition.
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}", dir.path().join("state").display());
    let name = "cn.example.com";
    kopsrs(&state)
        .args([
            "create",
            "cluster",
            "--name",
            name,
            "--zones",
            "cn-north-1a",
        ])
        .arg(format!(
            "--set=spec.configBase=s3://my.dotted.bucket/clusters/{name}"
        ))
        .assert_ok();
    let out = dir.path().join("tf");
    kopsrs(&state)
        .args(["update", "cluster", name, "--target", "terraform", "--out"])
        .arg(&out)
        .assert_ok();
    let files = user_data(&out);
    assert!(files.len() >= 2);
    for (group, text) in &files {
        assert!(
            text.contains(&format!(
                "STATE_URL='https://s3.cn-north-1.amazonaws.com.cn/my.dotted.bucket/clusters/{name}'"
            )),
            "{group}"
        );
        assert!(
            text.contains("EC2_URL='https://ec2.cn-north-1.amazonaws.com.cn'"),
            "{group}"
        );
    }
    let policy =
        std::fs::read_to_string(out.join(format!("data/aws_iam_role_policy_nodes.{name}_policy")))
            .unwrap();
    assert!(
        policy.contains(&format!(
            "arn:aws-cn:s3:::my.dotted.bucket/clusters/{name}/pki/issued/kubernetes-ca/*"
        )),
        "{policy}"
    );
}

#[test]
fn the_aws_target_refuses_versions_kubeadm_v1beta4_cannot_serve() {
    // An S3 store (a cloud apply needs one), in moto.
    let moto = Moto::start();
    moto.create_bucket("state");
    let dir = tempfile::tempdir().unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    k().args([
        "create",
        "cluster",
        "--name",
        "old.example.com",
        "--zones",
        "eu-west-1a",
    ])
    .args(["--kubernetes-version", "1.30.4"])
    .assert_ok();
    // Terraform output is written (kops specs of old versions still render), with user-data
    // that stops with the reason; the AWS target refuses before reading AWS.
    let out = dir.path().join("tf");
    k().args([
        "update",
        "cluster",
        "old.example.com",
        "--target",
        "terraform",
        "--out",
    ])
    .arg(&out)
    .assert_ok();
    assert!(user_data(&out)
        .values()
        .all(|t| t.contains("cannot bootstrap") && t.contains("1.30.4")));
    moto.faults(serde_json::json!({}));
    let refused = k()
        .args(["update", "cluster", "old.example.com", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("spec.kubernetesVersion")
            && stderr.contains("1.30.4")
            && stderr.contains("upgrade cluster"),
        "{stderr}"
    );
    // Only the state store was read: no call to EC2 or any other cloud API.
    let calls = moto.calls();
    let cloud: Vec<&String> = calls["by_action"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with("s3:") && !k.starts_with("unsigned:"))
        .collect();
    assert!(cloud.is_empty(), "{cloud:?}");
}

/// assert_cmd's success check (it prints the command, stdout and stderr on failure),
/// keeping the output for the assertions that follow.
trait AssertOk {
    fn assert_ok(&mut self) -> std::process::Output;
}

impl AssertOk for Command {
    fn assert_ok(&mut self) -> std::process::Output {
        use assert_cmd::prelude::OutputAssertExt as _;
        self.assert().success().get_output().clone()
    }
}

// ---------------------------------------------------------------------------------------
// Simulated boot.

const NAME: &str = "boot.example.com";

#[test]
fn two_control_planes_and_a_worker_boot_into_one_cluster() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    k().args([
        "create",
        "cluster",
        "--name",
        NAME,
        "--dns-zone",
        "example.com",
    ])
    .args([
        "--zones",
        "eu-west-1a,eu-west-1b,eu-west-1c",
        "--control-plane-count",
        "3",
    ])
    .args([
        "--image",
        "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721",
    ])
    .arg("--yes")
    .assert_ok();
    // A second service-account key, not yet primary: the API servers verify tokens with both.
    k().args(["create", "keypair", "service-account", "--name", NAME])
        .assert_ok();
    let tf = dir.path().join("tf");
    k().args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf)
        .assert_ok();
    let ud = user_data(&tf);
    // The launch templates in AWS carry the same script, gzip-compressed.
    let in_aws = moto.python(&format!(
        "import base64, gzip\n\
         e=aws('ec2')\n\
         lt=e.describe_launch_templates(LaunchTemplateNames=['control-plane-eu-west-1a.masters.{NAME}'])['LaunchTemplates'][0]\n\
         v=e.describe_launch_template_versions(LaunchTemplateId=lt['LaunchTemplateId'])['LaunchTemplateVersions'][0]\n\
         print(gzip.decompress(base64.b64decode(v['LaunchTemplateData']['UserData'])).decode(), end='')"
    ));
    let cp_script_text = &ud[&format!("control-plane-eu-west-1a.masters.{NAME}")];
    assert_eq!(&in_aws, cp_script_text);
    assert!(cp_script_text.contains(&format!(
        "STATE_URL='{}/state/clusters/{NAME}'",
        moto.endpoint
    )));
    // Nodes name the bucket's owner (moto's account, recorded by the first command) in every
    // state-store request, as kopsrs does; moto_server.py refuses another owner.
    assert!(cp_script_text.contains("\nSTATE_OWNER='123456789012'\n"));

    // Instances and zones moto started for the groups.
    let instances: serde_json::Value = serde_json::from_str(moto.python(
        "a=aws('autoscaling'); e=aws('ec2')\n\
         out={}\n\
         for g in a.describe_auto_scaling_groups()['AutoScalingGroups']:\n    \
             i=g['Instances'][0]\n    \
             ip=e.describe_instances(InstanceIds=[i['InstanceId']])['Reservations'][0]['Instances'][0]['PrivateIpAddress']\n    \
             out[g['AutoScalingGroupName']]=[i['InstanceId'], i['AvailabilityZone'], ip]\n\
         print(json.dumps(out))",
    ).trim()).unwrap();
    let inst = |group: &str| {
        let v = &instances[group];
        (
            v[0].as_str().unwrap().to_string(),
            v[1].as_str().unwrap().to_string(),
            v[2].as_str().unwrap().to_string(),
        )
    };

    // Addons served locally: the test publishes a channel pointing at them (the real one
    // names upstream URLs, which this machine cannot reach).
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("Release.key"), "fake key").unwrap();
    let d = dir.path().join("helm-src/linux-amd64");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("helm"), "#!/bin/sh\n").unwrap();
    let status = Command::new("tar")
        .arg("-czf")
        .arg(files.join("helm-1"))
        .arg("-C")
        .arg(dir.path().join("helm-src"))
        .arg("linux-amd64")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(files.join("cni-1"), "kind: DaemonSet # cni 1").unwrap();
    std::fs::write(
        files.join("metrics-server-1"),
        "kind: Deployment # metrics-server 1",
    )
    .unwrap();
    std::fs::write(
        files.join("metrics-server-2"),
        "kind: Deployment # metrics-server 2",
    )
    .unwrap();
    std::fs::write(files.join("ebs-csi-1"), "chart ebs-csi 1").unwrap();
    // (name, version, kind): the file served is files/<name>-<version>, pinned by its sha256.
    let channel = |server: &str, entries: &[(&str, &str, &str)]| {
        let mut text = String::from("kubernetesVersion: 1.34.1\naddons:\n");
        for (name, version, kind) in entries {
            let file = match *name {
                "cni" => "cni-1".to_string(),
                _ => format!("{name}-{version}"),
            };
            let sum = sha256_hex(&std::fs::read(files.join(&file)).unwrap());
            text.push_str(&format!(
                "- name: {name}\n  version: '{version}'\n  kind: {kind}\n  url: {server}/files/{file}\n  sha256: {sum}\n"
            ));
        }
        text
    };
    let stubs = write_stubs(dir.path());
    // From here on every node signs with its own instance role, which moto checks.
    moto.enforce_iam();

    let (a_id, a_zone, a_ip) = inst(&format!("control-plane-eu-west-1a.masters.{NAME}"));
    let (b_id, b_zone, b_ip) = inst(&format!("control-plane-eu-west-1b.masters.{NAME}"));
    let (w_id, w_zone, w_ip) = inst(&format!("nodes-eu-west-1a.{NAME}"));
    let cp_a = start_node(&moto, dir.path(), "cp-a", &a_id, &a_ip, &a_zone, &files);
    let cp_b = start_node(&moto, dir.path(), "cp-b", &b_id, &b_ip, &b_zone, &files);
    let worker = start_node(&moto, dir.path(), "worker", &w_id, &w_ip, &w_zone, &files);
    let cp_ips = dir.path().join("cp-ips");
    std::fs::write(&cp_ips, format!("{a_ip} {b_ip}")).unwrap();
    // The channel, with this test's file server, where update cluster publishes it.
    let publish = |text: String| {
        moto.python(&format!(
            "aws('s3').put_object(Bucket='state', Key='clusters/{NAME}/addons/bootstrap-channel.yaml', Body={text:?})"
        ));
    };
    let server = cp_a.imds_url.clone();
    publish(channel(
        &server,
        &[
            ("helm", "1", "helm"),
            ("cni", "1", "manifest"),
            ("ebs-csi", "1", "chart"),
            ("metrics-server", "1", "manifest"),
        ],
    ));

    // The dry-run plan shows what `--yes` would publish over the test's channel.
    let plan = k().args(["update", "cluster", NAME]).assert_ok();
    let plan = String::from_utf8(plan.stdout).unwrap();
    assert!(plan.contains("+ addon cilium 1.18.2"), "{plan}");
    assert!(plan.contains("~ addon metrics-server 1 -> 0.8.0"), "{plan}");
    assert!(plan.contains("- addon cni 1"), "{plan}");

    let scripts: Vec<PathBuf> = [
        format!("control-plane-eu-west-1a.masters.{NAME}"),
        format!("control-plane-eu-west-1b.masters.{NAME}"),
        format!("nodes-eu-west-1a.{NAME}"),
    ]
    .iter()
    .map(|g| {
        let p = dir.path().join(format!("{g}.sh"));
        std::fs::write(&p, &ud[g]).unwrap();
        p
    })
    .collect();
    let nodes = [&cp_a, &cp_b, &worker];

    // All three at once: the two control planes race for the election.
    let children: Vec<Child> = nodes
        .iter()
        .zip(&scripts)
        .map(|(n, s)| run(n, s, "boot", &stubs, &cp_ips))
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .zip(["cp-a", "cp-b", "worker"])
        .map(|(c, what)| finish(c, what))
        .collect();

    let all: Vec<Vec<String>> = nodes.iter().map(|n| calls(n)).collect();
    let inits: Vec<usize> = (0..3)
        .filter(|i| count(&all[*i], "kubeadm init") == 1)
        .collect();
    assert_eq!(inits.len(), 1, "exactly one node initialises: {all:?}");
    let init = inits[0];
    assert!(init < 2, "a control-plane node initialises");
    let joiner = 1 - init;
    assert_eq!(count(&all[joiner], "kubeadm join"), 1, "{:?}", all[joiner]);
    assert_eq!(count(&all[2], "kubeadm join"), 1, "{:?}", all[2]);
    assert_eq!(count(&all[init], "kubeadm join"), 0);

    // Secrets at rest and in flight: the instance role's credentials never appear on a
    // command line (curl reads them from stdin), and the private keys and the kubeadm file
    // with the join token are owner-only.
    for node in &nodes {
        let args = std::fs::read_to_string(node.root.join("curl-args.log")).unwrap();
        assert!(args.contains("--aws-sigv4"), "{args}");
        for secret in ["SecretAccessKey", "Token"].map(|k| node.credentials[k].as_str().unwrap()) {
            assert!(
                !args.contains(secret),
                "{secret} on a curl command line:\n{args}"
            );
        }
        let kubeadm_file = node.root.join("etc/kopsrs/kubeadm.yaml");
        let mode = std::fs::metadata(&kubeadm_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", kubeadm_file.display());
    }
    for node in [&cp_a, &cp_b] {
        for key in ["ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key"] {
            let path = node.root.join("etc/kubernetes/pki").join(key);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    // The election record names the initialising instance (and when it took the election).
    let lock = moto.python(&format!(
        "print(aws('s3').get_object(Bucket='state', Key='clusters/{NAME}/bootstrap/init-lock')['Body'].read().decode().strip())"
    ));
    assert_eq!(
        lock.split_whitespace().next(),
        Some(nodes[init].instance_id.as_str())
    );

    // The rendered kubeadm files: strict v1beta4, placeholders filled, the init node's token.
    let read = |n: &Node, verb: &str| {
        std::fs::read_to_string(n.root.join(format!("kubeadm-{verb}.yaml"))).unwrap()
    };
    let init_docs = kubeadm::decode(&read(nodes[init], "init")).unwrap();
    let cp_join = kubeadm::decode(&read(nodes[joiner], "join")).unwrap();
    let w_join = kubeadm::decode(&read(&worker, "join")).unwrap();
    let (Document::Init(i), Document::Cluster(c)) = (&init_docs[0], &init_docs[1]) else {
        panic!("{init_docs:?}")
    };
    let (Document::Join(cj), Document::Join(wj)) = (&cp_join[0], &w_join[0]) else {
        panic!()
    };
    // Control planes share the initialiser's token; the worker joins with its own, which it
    // asked a control plane to make valid for its instance (tests/node_iam.rs).
    let token = &i.bootstrap_tokens[0].token;
    assert_eq!(&cj.discovery.bootstrap_token.token, token);
    let own = &wj.discovery.bootstrap_token.token;
    assert_ne!(own, token);
    let requested = moto.python(&format!(
        "s3=aws('s3')\n\
         for o in s3.list_objects_v2(Bucket='state', Prefix='clusters/{NAME}/bootstrap/instances/')['Contents']:\n    \
         print(o['Key'].split('/')[-1], s3.get_object(Bucket='state', Key=o['Key'])['Body'].read().decode().strip())"
    ));
    let (key, body) = requested.trim().split_once(' ').unwrap();
    assert!(key.ends_with(&format!(":{w_id}")), "{requested}");
    assert_eq!(body, format!("JOIN_TOKEN={own}"));
    assert_eq!(c.control_plane_endpoint, format!("api.{NAME}:443"));
    assert!(cj.control_plane.is_some() && wj.control_plane.is_none());
    let hash = &wj.discovery.bootstrap_token.ca_cert_hashes[0];
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    assert_eq!(&cj.discovery.bootstrap_token.ca_cert_hashes[0], hash);
    let init_ip = [&a_ip, &b_ip][init];
    // The node name is the name EC2 gives the instance.
    assert_eq!(
        i.node_registration.name,
        moto.ec2_name(&nodes[init].instance_id)
    );
    assert_eq!(i.local_api_endpoint.advertise_address, *init_ip);
    for text in [
        read(nodes[init], "init"),
        read(nodes[joiner], "join"),
        read(&worker, "join"),
    ] {
        assert!(!text.contains('@'), "placeholder left:\n{text}");
    }

    // The CA hash pins the cluster CA in the state store.
    let ca = nodes[init].root.join("etc/kubernetes/pki/ca.crt");
    let pinned = Command::new("bash")
        .arg("-c")
        .arg(format!("openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -c1-64", ca.display()))
        .output()
        .unwrap();
    assert_eq!(
        format!("sha256:{}", String::from_utf8_lossy(&pinned.stdout).trim()),
        *hash
    );
    for key in [
        "ca.key",
        "etcd/ca.key",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
    ] {
        assert!(
            nodes[joiner]
                .root
                .join("etc/kubernetes/pki")
                .join(key)
                .exists(),
            "{key}"
        );
    }
    assert!(
        !worker.root.join("etc/kubernetes/pki/ca.key").exists(),
        "workers never get CA keys"
    );
    // Every trusted service-account key verifies tokens (a rotation keeps old tokens valid).
    let sa_pub =
        std::fs::read_to_string(nodes[joiner].root.join("etc/kubernetes/pki/sa.pub")).unwrap();
    assert_eq!(sa_pub.matches("BEGIN PUBLIC KEY").count(), 2, "{sa_pub}");

    // Each control plane attached its zone's etcd volume; the stale member was removed.
    let attached = moto.python(
        "vols=aws('ec2').describe_volumes(Filters=[{'Name':'tag-key','Values':['k8s.io/etcd/main']}])['Volumes']\n\
         print(json.dumps(sorted([v['AvailabilityZone'], v['Attachments'][0]['InstanceId']] for v in vols if v['Attachments'])))",
    );
    let mut expected = vec![
        vec![a_zone.clone(), a_id.clone()],
        vec![b_zone.clone(), b_id.clone()],
    ];
    expected.sort();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(attached.trim()).unwrap(),
        serde_json::json!(expected)
    );
    assert!(
        all[joiner].iter().any(|l| l.contains("member remove ff")),
        "{:?}",
        all[joiner]
    );
    assert!(!all[init].iter().any(|l| l.contains("member remove")));

    // Packages pinned; the addons applied once per control-plane node, none on the worker.
    for calls in &all[..3] {
        assert!(
            calls.iter().any(|l| l.contains(
                "install -y -q containerd kubelet=1.34.1-1.1 kubeadm=1.34.1-1.1 kubectl=1.34.1-1.1"
            )),
            "{calls:?}"
        );
    }
    assert_eq!(count(&all[init], "kubectl-apply"), 3, "{:?}", all[init]);
    assert_eq!(count(&all[joiner], "kubectl-apply"), 3);
    assert_eq!(count(&all[2], "kubectl-apply"), 0);
    assert!(cp_a.root.join("usr/local/bin/helm").exists());
    assert!(cp_a
        .root
        .join("etc/systemd/system/kopsrs-backup-etcd.timer")
        .exists());
    assert!(
        logs[2].contains("ready for boot.example.com"),
        "{}",
        logs[2]
    );

    // A rerun (cloud-init runs user scripts once, but an operator may rerun it) is harmless.
    let before: Vec<usize> = all.iter().map(|c| c.len()).collect();
    let children: Vec<Child> = nodes
        .iter()
        .zip(&scripts)
        .map(|(n, s)| run(n, s, "boot", &stubs, &cp_ips))
        .collect();
    for (c, what) in children.into_iter().zip(["cp-a", "cp-b", "worker"]) {
        assert!(finish(c, what).contains("already a member"));
    }
    for (n, node) in nodes.iter().enumerate() {
        let again = &calls(node)[before[n]..];
        assert_eq!(count(again, "kubeadm"), 0, "{again:?}");
        assert_eq!(count(again, "kubectl-apply"), 0, "{again:?}");
        assert_eq!(count(again, "apt-get"), 0, "{again:?}");
        assert_eq!(count(again, "mkfs.ext4"), 0, "{again:?}");
    }

    // A new addon version in the channel is applied by the next timer run, once; a download
    // that does not match its sha256 is refused.
    let second = channel(
        &server,
        &[
            ("helm", "1", "helm"),
            ("cni", "2", "manifest"),
            ("ebs-csi", "1", "chart"),
            ("metrics-server", "2", "manifest"),
        ],
    );
    publish(second.clone());
    std::fs::write(
        files.join("cni-1"),
        "kind: DaemonSet # changed after pinning",
    )
    .unwrap();
    let node_bin = cp_a.root.join("usr/local/sbin/kopsrs-node");
    let before = calls(&cp_a).len();
    let log = finish(
        run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    let again = &calls(&cp_a)[before..];
    assert_eq!(count(again, "kubectl-apply"), 1, "{again:?}\n{log}");
    assert!(log.contains("addon metrics-server 2 applied"), "{log}");
    assert!(
        log.contains("addon cni: ") && log.contains("does not match its sha256"),
        "{log}"
    );
    let before = calls(&cp_a).len();
    finish(
        run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    assert_eq!(count(&calls(&cp_a)[before..], "kubectl-apply"), 0);
    // New values for a chart (the spec's, such as the groups the cluster autoscaler scales),
    // same version and pin: applied again, once.
    let with_values = second.replace(
        "- name: metrics-server",
        "  values:\n    autoscalingGroups: [{name: nodes, minSize: 1, maxSize: 5}]\n    extraEnv: {AWS_ROLE_ARN: 'arn:aws:iam::@ACCOUNT_ID@:role/ca'}\n- name: metrics-server",
    );
    assert_ne!(with_values, second);
    publish(with_values.clone());
    let before = calls(&cp_a).len();
    let log = finish(
        run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    assert!(log.contains("addon ebs-csi 1 applied"), "{log}");
    assert_eq!(count(&calls(&cp_a)[before..], "kubectl-apply"), 1, "{log}");
    // The account in the values is this instance's (its identity document).
    let rendered = applied_with(&cp_a, "AWS_ROLE_ARN");
    assert_eq!(rendered.len(), 1, "{rendered:?}");
    assert!(
        rendered[0].contains("arn:aws:iam::123456789012:role/ca"),
        "{rendered:?}"
    );
    let before = calls(&cp_a).len();
    finish(
        run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    assert_eq!(count(&calls(&cp_a)[before..], "kubectl-apply"), 0);

    // An entry without a pin (update cluster could not download it): the first control
    // plane to fetch it records its sha256 in the state store, and every later node checks
    // its own download against that record (trust on first use).
    std::fs::write(files.join("extra-1"), "kind: ConfigMap # extra 1").unwrap();
    let mut text = with_values;
    let extra_url = format!("{server}/files/extra-1");
    text.push_str(&format!(
        "- name: extra\n  version: '1'\n  kind: manifest\n  url: {extra_url}\n"
    ));
    publish(text.clone());
    let before = calls(&cp_a).len();
    let log = finish(
        run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    assert_eq!(count(&calls(&cp_a)[before..], "kubectl-apply"), 1, "{log}");
    assert!(log.contains("addon extra 1 applied"), "{log}");
    let first_seen = sha256_hex(b"kind: ConfigMap # extra 1");
    assert!(
        log.contains(&format!("recorded its sha256 {first_seen}")),
        "{log}"
    );
    let recorded = moto.python(&format!(
        "print(aws('s3').get_object(Bucket='state', Key='clusters/{NAME}/addons/first-seen/{}')['Body'].read().decode().strip())",
        sha256_hex(extra_url.as_bytes())
    ));
    assert_eq!(recorded.trim(), first_seen);
    // The file changes at its URL: the other control plane refuses it.
    std::fs::write(files.join("extra-1"), "kind: ConfigMap # swapped").unwrap();
    let node_bin_b = cp_b.root.join("usr/local/sbin/kopsrs-node");
    let before = calls(&cp_b).len();
    let log = finish(
        run(&cp_b, &node_bin_b, "apply-addons", &stubs, &cp_ips),
        "apply-addons",
    );
    assert!(
        log.contains(&format!("does not match its sha256 {first_seen}: refused")),
        "{log}"
    );
    assert!(!log.contains("addon extra 1 applied"), "{log}");
    assert!(log.contains("addon metrics-server 2 applied"), "{log}");
    // And the chart's new values, which it had not applied yet.
    assert!(log.contains("addon ebs-csi 1 applied"), "{log}");
    assert_eq!(count(&calls(&cp_b)[before..], "kubectl-apply"), 2, "{log}");

    // An addon kopsrs wrote (the termination handler's): read from the state store with the
    // control plane's role, checked against its pin, this instance's account filled in.
    let base = text;
    let put_generated = |version: &str, body: &str| {
        moto.python(&format!(
            "aws('s3').put_object(Bucket='state', Key='clusters/{NAME}/addons/generated/manifest.yaml', Body={body:?})"
        ));
        let mut channel = base.clone();
        channel.push_str(&format!(
            "- name: generated\n  version: '{version}'\n  kind: manifest\n  url: state:addons/generated/manifest.yaml\n  sha256: {}\n",
            sha256_hex(body.as_bytes())
        ));
        publish(channel);
    };
    let object = |name: &str, data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: kube-system\ndata:\n  {data}\n")
    };
    let queue = object(
        "queue",
        "url: https://sqs.eu-west-1.amazonaws.com/@ACCOUNT_ID@/q",
    );
    let settings = object("settings", "a: b");
    put_generated("1", &format!("{queue}---\n{settings}"));
    let apply = || {
        let before = calls(&cp_a).len();
        let log = finish(
            run(&cp_a, &node_bin, "apply-addons", &stubs, &cp_ips),
            "apply-addons",
        );
        (log, calls(&cp_a)[before..].to_vec())
    };
    let (log, _) = apply();
    assert!(log.contains("addon generated 1 applied"), "{log}");
    let applied = applied_with(&cp_a, "name: queue");
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(
        applied[0].contains("url: https://sqs.eu-west-1.amazonaws.com/123456789012/q"),
        "{applied:?}"
    );
    // A new version without one of its objects: that object is deleted (kopsrs manages it).
    put_generated("2", &queue);
    let (log, made) = apply();
    assert!(log.contains("addon generated 2 applied"), "{log}");
    assert_eq!(
        made.iter()
            .filter(|c| c.starts_with("kubectl-delete"))
            .collect::<Vec<_>>(),
        ["kubectl-delete configmap settings"],
        "{log}"
    );
    // One another manager owns is left, and said so; so is one kopsrs manages without the
    // addon's annotation (a label or a name proves nothing).
    std::fs::write(cp_a.root.join("foreign-queue"), "").unwrap();
    put_generated("3", &settings);
    let (log, made) = apply();
    assert!(
        log.contains("configmap queue is no longer in it but is not kopsrs's"),
        "{log}"
    );
    assert_eq!(count(&made, "kubectl-delete"), 0, "{made:?}");
    std::fs::write(cp_a.root.join("unannotated-settings"), "").unwrap();
    put_generated("4", &queue);
    let (log, made) = apply();
    assert!(
        log.contains("configmap settings is no longer in it but is not kopsrs's"),
        "{log}"
    );
    assert_eq!(count(&made, "kubectl-delete"), 0, "{made:?}");
    std::fs::remove_file(cp_a.root.join("unannotated-settings")).unwrap();
    put_generated("5", &settings);
    apply();
    // The addon gone from the channel: its objects go.
    publish(base.clone());
    let (log, made) = apply();
    assert_eq!(
        made.iter()
            .filter(|c| c.starts_with("kubectl-delete"))
            .collect::<Vec<_>>(),
        ["kubectl-delete configmap settings"],
        "{log}"
    );
    let (_, made) = apply();
    assert_eq!(count(&made, "kubectl-delete"), 0, "pruned once: {made:?}");

    // The token refresher publishes a fresh token for later joins.
    finish(
        run(nodes[init], &node_bin, "refresh-token", &stubs, &cp_ips),
        "refresh-token",
    );
    let published = moto.python(&format!(
        "print(aws('s3').get_object(Bucket='state', Key='clusters/{NAME}/bootstrap/node/join.env')['Body'].read().decode().strip())"
    ));
    assert_eq!(published.trim(), "JOIN_TOKEN=ghijkl.0123456789abcdef");
}

#[test]
fn upgrade_cluster_follows_the_channel_one_minor_version_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}", dir.path().join("state").display());
    let name = "up.example.com";
    kopsrs(&state)
        .args(["create", "cluster", "--name", name, "--zones", "eu-west-1a"])
        .args(["--kubernetes-version", "1.33.0"])
        .assert_ok();
    let spec_version = || {
        let out = kopsrs(&state)
            .args(["get", "cluster", name, "-o", "yaml"])
            .assert_ok();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("kubernetesVersion: ")
                    .map(str::to_string)
            })
            .unwrap()
    };
    // Without --yes: the change is shown, nothing written.
    let shown = kopsrs(&state)
        .args(["upgrade", "cluster", name])
        .assert_ok();
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(
        shown.contains("KubernetesVersion") && shown.contains("1.33.0") && shown.contains("1.34.1"),
        "{shown}"
    );
    assert_eq!(spec_version(), "1.33.0");
    // Skipping a minor version or going back is refused, naming the flag and the way out.
    for (version, expect) in [
        ("1.36.0", "upgrade to 1.34.1 first"),
        ("1.32.0", "cannot downgrade"),
        ("banana", "not a version"),
    ] {
        let out = kopsrs(&state)
            .args([
                "upgrade",
                "cluster",
                name,
                "--yes",
                "--kubernetes-version",
                version,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--kubernetes-version") && err.contains(expect),
            "{version}: {err}"
        );
        assert_eq!(spec_version(), "1.33.0");
    }
    kopsrs(&state)
        .args(["upgrade", "cluster", name, "--yes"])
        .assert_ok();
    assert_eq!(spec_version(), "1.34.1");
    let again = kopsrs(&state)
        .args(["upgrade", "cluster", name, "--yes"])
        .assert_ok();
    assert!(String::from_utf8_lossy(&again.stdout).contains("No upgrade required"));

    // update cluster publishes the addons of the new minor version for the control plane.
    let channel = dir
        .path()
        .join(format!("state/{name}/addons/bootstrap-channel.yaml"));
    std::fs::create_dir_all(channel.parent().unwrap()).unwrap();
    std::fs::write(&channel, "kubernetesVersion: 1.33.0\naddons:\n- {name: metrics-server, version: 0.0.1, kind: manifest, url: 'https://example.invalid/old.yaml'}\n").unwrap();
    kopsrs(&state)
        .args(["update", "cluster", name, "--target", "terraform", "--out"])
        .arg(dir.path().join("tf"))
        .assert_ok();
    let published: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&channel).unwrap()).unwrap();
    assert_eq!(published["kubernetesVersion"], "1.34.1");
    let names: Vec<&str> = published["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "helm",
            "cilium",
            "aws-cloud-controller-manager",
            "aws-ebs-csi-driver",
            "metrics-server",
            // Written by kopsrs, on by default as in kops.
            "node-termination-handler"
        ]
    );
    // Downloads from upstream, or kopsrs's own from the state store.
    assert!(published["addons"].as_array().unwrap().iter().all(|a| {
        let url = a["url"].as_str().unwrap();
        url.starts_with("https://") || url.starts_with("state:addons/")
    }));
}

/// A worker launched into its group's warm pool (kops's behaviour): it installs the
/// packages, leaves the boot unit that joins it when the group puts it into service,
/// completes the group's `kops-warmpool` launch hook with its own instance role (moto's IAM
/// enforcement on), and does not join; groups without a warm pool carry none of it.
#[test]
fn a_warm_pool_instance_prepares_completes_its_hook_and_does_not_join() {
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    let group = format!("nodes-eu-west-1a.{NAME}");
    k().args([
        "create",
        "cluster",
        "--name",
        NAME,
        "--dns-zone",
        "example.com",
    ])
    .args(["--zones", "eu-west-1a", "--node-count", "1"])
    .args([
        "--image",
        "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721",
    ])
    .assert_ok();
    k().args(["edit", "instancegroup", "nodes-eu-west-1a", "--name", NAME])
        .args([
            "--set",
            "spec.warmPool.minSize=1",
            "--set",
            "spec.warmPool.maxSize=2",
        ])
        .args(["--set", "spec.warmPool.enableLifecycleHook=true"])
        .assert_ok();
    k().args(["update", "cluster", NAME, "--yes"]).assert_ok();
    let tf = dir.path().join("tf");
    k().args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf)
        .assert_ok();
    let ud = user_data(&tf);
    let script_text = &ud[&group];
    assert!(script_text.contains(&format!("\nWARM_POOL_ASG='{group}'\n")));
    assert!(script_text.contains("\nWARM_POOL_HOOK='kops-warmpool'\n"));
    assert!(!ud[&format!("control-plane-eu-west-1a.masters.{NAME}")].contains("WARM_POOL_ASG="));
    check_user_data("warm", script_text);

    let warm: serde_json::Value = serde_json::from_str(
        moto.python(&format!(
            "e=aws('ec2')\n\
             w=aws('autoscaling').describe_warm_pool(AutoScalingGroupName='{group}')['Instances'][0]\n\
             i=e.describe_instances(InstanceIds=[w['InstanceId']])['Reservations'][0]['Instances'][0]\n\
             print(json.dumps([w['InstanceId'], w['AvailabilityZone'], i['PrivateIpAddress']]))"
        ))
        .trim(),
    )
    .unwrap();
    let (id, zone, ip) = (
        warm[0].as_str().unwrap(),
        warm[1].as_str().unwrap(),
        warm[2].as_str().unwrap(),
    );
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("Release.key"), "fake key").unwrap();
    std::fs::write(files.join("target-lifecycle-state"), "Warmed:Stopped").unwrap();
    let stubs = write_stubs(dir.path());
    moto.enforce_iam();
    let node = start_node(&moto, dir.path(), "warm", id, ip, zone, &files);
    let script = dir.path().join("warm.sh");
    std::fs::write(&script, script_text).unwrap();
    let cp_ips = dir.path().join("cp-ips");
    std::fs::write(&cp_ips, "").unwrap();
    let log = finish(run(&node, &script, "boot", &stubs, &cp_ips), "warm boot");
    assert!(log.contains("prepared; it joins"), "{log}");
    let made = calls(&node);
    assert_eq!(count(&made, "kubeadm"), 0, "no join while warm: {made:?}");
    assert_eq!(count(&made, "apt-get install"), 1, "{made:?}");
    assert_eq!(
        count(&made, "systemctl enable kopsrs-boot.service"),
        1,
        "{made:?}"
    );
    let unit =
        std::fs::read_to_string(node.root.join("etc/systemd/system/kopsrs-boot.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/sbin/kopsrs-node boot"),
        "{unit}"
    );
    assert!(
        unit.contains("ConditionPathExists=!/etc/kubernetes/kubelet.conf"),
        "{unit}"
    );
    assert!(node.root.join("usr/local/sbin/kopsrs-node").exists());
    let actions = moto.http("GET", "/__kopsrs/lifecycle-actions", "");
    let actions: serde_json::Value = serde_json::from_str(&actions).unwrap();
    assert_eq!(
        actions,
        serde_json::json!([{"group": group, "hook": "kops-warmpool", "instance": id, "result": "CONTINUE"}])
    );
}

/// A group Karpenter manages: no launch template or auto scaling group; its EC2NodeClass and
/// NodePool published as an addon pinned by sha256, with the user-data that fetches the
/// group's script from the state store; an instance Karpenter would start (the nodes'
/// instance profile, IAM enforced) reads the script and runs it, and refuses one that does
/// not match; the re-plan is empty; rolling-update leaves the group to Karpenter; delete
/// leaves nothing.
#[test]
fn a_karpenter_group_is_published_for_karpenter_and_its_nodes_fetch_their_script() {
    let name = "karp.example.com";
    let moto = Moto::start();
    moto.create_bucket("state");
    // The issuer's bucket is in the cluster's region (IAM does not follow S3's redirects).
    moto.python("aws('s3').create_bucket(Bucket='disc', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n\
         aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    let dir = tempfile::tempdir().unwrap();
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    k().args([
        "create",
        "cluster",
        "--name",
        name,
        "--dns-zone",
        "example.com",
    ])
    .args(["--zones", "eu-west-1a", "--instance-manager", "karpenter"])
    .args(["--discovery-store", "s3://disc"])
    .args([
        "--image",
        "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721",
    ])
    .assert_ok();
    // A second group with most of what a group can say to Karpenter.
    let spot = dir.path().join("spot.yaml");
    std::fs::write(
        &spot,
        format!(
            "apiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: spot\n  labels:\n    kops.k8s.io/cluster: {name}\n\
             spec:\n  manager: Karpenter\n  role: Node\n  image: ami-0123456789abcdef0\n  machineType: m5.large,m5a.large\n\
             \x20 maxPrice: \"0.10\"\n  minSize: 0\n  maxSize: 30\n  subnets: [eu-west-1a]\n\
             \x20 taints: [\"dedicated=batch:NoSchedule\"]\n  nodeLabels: {{team: data}}\n\
             \x20 additionalSecurityGroups: [sg-0fedcba9876543210]\n\
             \x20 kubelet:\n    maxPods: 50\n    systemReserved: {{cpu: 500m, memory: 1G}}\n"
        ),
    )
    .unwrap();
    k().arg("create").arg("-f").arg(&spot).assert_ok();
    let out = k().args(["update", "cluster", name, "--yes"]).assert_ok();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("karpenter-instancegroups"), "{said}");
    let groups = moto.python(
        "print(sorted(g['AutoScalingGroupName'] for g in aws('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups']))\n\
         print(sorted(t['LaunchTemplateName'] for t in aws('ec2').describe_launch_templates()['LaunchTemplates']))",
    );
    assert!(!groups.contains(&format!("'nodes.{name}'")), "{groups}");
    assert!(groups.contains("control-plane-eu-west-1a"), "{groups}");

    let state = |key: &str| -> Option<String> {
        let out = moto.python(&format!(
            "try:\n    print(aws('s3').get_object(Bucket='state', Key='clusters/{name}/{key}')['Body'].read().decode(), end='')\n\
             except aws('s3').exceptions.NoSuchKey:\n    print('<none>', end='')"
        ));
        (out != "<none>").then_some(out)
    };
    let channel: serde_json::Value =
        serde_yaml_ng::from_str(&state("addons/bootstrap-channel.yaml").unwrap()).unwrap();
    let entry = channel["addons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "karpenter-instancegroups")
        .cloned()
        .expect("the Karpenter groups' addon");
    assert_eq!(
        entry["url"], "state:addons/karpenter.sh/instancegroups.yaml",
        "{entry}"
    );
    let manifest = state("addons/karpenter.sh/instancegroups.yaml").unwrap();
    assert_eq!(entry["sha256"], sha256_hex(manifest.as_bytes()), "pinned");
    let objects: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&manifest)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["EC2NodeClass", "NodePool", "EC2NodeClass", "NodePool"]
    );
    // Valid against Karpenter's own definitions (a v1 release's CRDs, tests/karpenter-crds).
    let published = dir.path().join("instancegroups.yaml");
    std::fs::write(&published, &manifest).unwrap();
    let crds = support::repo_root().join("crates/kopsrs/tests/karpenter-crds");
    let checked = kopsrs(&format!("file://{}", dir.path().display()))
        .args(["manifests", "check"])
        .arg(crds.join("karpenter.k8s.aws_ec2nodeclasses.yaml"))
        .arg(crds.join("karpenter.sh_nodepools.yaml"))
        .arg(&published)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&checked.stderr).to_string()
        + &String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(
        report.contains("6 objects checked against Kubernetes 1.34: 0 errors, 0 warnings"),
        "{report}"
    );
    let class = &objects[0]["spec"];
    assert_eq!(class["instanceProfile"], format!("nodes.{name}"));
    assert_eq!(
        class["subnetSelectorTerms"][0]["tags"]["kops.k8s.io/instance-group/nodes"],
        "true"
    );
    // The subnet carries the tag Karpenter selects it by.
    let tagged = moto.python(&format!(
        "print(len(aws('ec2').describe_subnets(Filters=[{{'Name': 'tag:kops.k8s.io/instance-group/nodes', 'Values': ['true']}}, {{'Name': 'tag:KubernetesCluster', 'Values': ['{name}']}}])['Subnets']))"
    ));
    assert_eq!(tagged.trim(), "1");
    let user_data = class["userData"].as_str().unwrap().to_string();
    assert!(user_data.len() < 4096, "{} bytes", user_data.len());
    check_script("fetcher", &user_data);
    let key = user_data
        .lines()
        .find_map(|l| l.strip_prefix("SCRIPT_KEY='"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap()
        .to_string();
    let script = state(&key).expect("the group's script");
    assert!(user_data.contains(&format!(
        "SCRIPT_SHA256='{}'",
        sha256_hex(script.as_bytes())
    )));
    check_user_data("nodes", &script);

    // A second run changes nothing, and writes nothing.
    let again = k()
        .args(["update", "cluster", name, "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // An instance as Karpenter starts it: the nodes' instance profile, the node class's
    // user-data. Its role reads the script (IAM enforced) and runs it.
    let launched = moto.python(&format!(
        "e=aws('ec2')\n\
         s=e.describe_subnets(Filters=[{{'Name': 'tag:kops.k8s.io/instance-group/nodes', 'Values': ['true']}}])['Subnets'][0]\n\
         tags=[{{'Key': k, 'Value': v}} for k, v in {{'KubernetesCluster': '{name}', 'kubernetes.io/cluster/{name}': 'owned', 'karpenter.sh/nodepool': 'nodes', 'kops.k8s.io/instancegroup': 'nodes', 'k8s.io/role/node': '1'}}.items()]\n\
         i=e.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, SubnetId=s['SubnetId'], IamInstanceProfile={{'Name': 'nodes.{name}'}}, TagSpecifications=[{{'ResourceType': 'instance', 'Tags': tags}}])['Instances'][0]\n\
         print(i['InstanceId'], s['AvailabilityZone'], i['PrivateIpAddress'])"
    ));
    let parts: Vec<&str> = launched.split_whitespace().collect();

    // validate cluster: the group has no size to meet; its Node is listed and counted as a
    // worker's (the control plane's instance and this one, as Nodes of the fake API).
    {
        let kube = FakeKube::start(dir.path(), &moto, name, &["--ready-after", "0"]);
        let validate = |extra: &[&str]| {
            let out = k()
                .args(["validate", "cluster", name, "-o", "json", "--kubeconfig"])
                .arg(&kube.kubeconfig)
                .args(extra)
                .output()
                .unwrap();
            let json: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            (
                out.status.code(),
                json,
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        };
        let (code, json, stderr) = validate(&["--wait", "60s", "--interval", "1s"]);
        assert_eq!(code, Some(0), "{json}\n{stderr}");
        let nodes = json["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{json}");
        let karpenter_node = nodes.iter().find(|n| n["role"] == "node").unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string();
        kube.control(
            "POST",
            &format!("/__fake/nodes/{karpenter_node}/condition"),
            r#"{"Ready": "False"}"#,
        );
        std::thread::sleep(std::time::Duration::from_millis(800));
        let (code, json, _) = validate(&[]);
        assert_eq!(code, Some(1), "{json}");
        let failure = &json["failures"][0];
        assert_eq!(failure["instanceGroup"], "nodes", "{json}");
        assert_eq!(
            failure["message"],
            format!("node \"{karpenter_node}\" of role \"node\" is not ready"),
            "{json}"
        );
        // Its DaemonSet pod is not ready with it; nothing is missing or not joined.
        let text = json["failures"].to_string();
        assert!(
            !text.contains("did not have enough") && !text.contains("not yet joined"),
            "{json}"
        );
    }

    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let stubs = write_stubs(dir.path());
    moto.enforce_iam();
    let node = start_node(
        &moto,
        dir.path(),
        "karp",
        parts[0],
        parts[2],
        parts[1],
        &files,
    );
    let fetcher = dir.path().join("fetcher.sh");
    std::fs::write(&fetcher, &user_data).unwrap();
    let cp_ips = dir.path().join("cp-ips");
    std::fs::write(&cp_ips, "").unwrap();
    // `apply-addons` on a worker does nothing once the script runs: what is checked is that
    // the fetched script ran.
    let log = finish(
        run(&node, &fetcher, "apply-addons", &stubs, &cp_ips),
        "fetch",
    );
    assert!(log.contains(&format!("running {key}")), "{log}");
    assert_eq!(
        std::fs::read_to_string(node.root.join("var/lib/kopsrs/bootstrap.sh")).unwrap(),
        script
    );
    // A script that is not the one the node class names is refused.
    moto.python(&format!(
        "aws('s3').put_object(Bucket='state', Key='clusters/{name}/{key}', Body=b'#!/bin/bash\\ntouch /tmp/never\\n')"
    ));
    let out = run(&node, &fetcher, "apply-addons", &stubs, &cp_ips)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("does not match its sha256"), "{stderr}");

    // rolling-update has nothing to roll for it and says who does.
    let roll = k()
        .args([
            "rolling-update",
            "cluster",
            name,
            "--instance-group",
            "nodes",
        ])
        .args(["--cloudonly"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&roll.stderr);
    assert!(!roll.status.success());
    assert!(said.contains("managed by Karpenter"), "{said}");

    k().args(["delete", "cluster", name, "--yes"]).assert_ok();
    let left = moto.python(&format!(
        "print(aws('s3').list_objects_v2(Bucket='state', Prefix='clusters/{name}/').get('KeyCount'))"
    ));
    assert_eq!(left.trim(), "0");
}

/// What the control plane's pruning of generated addons reads, proven with kubectl against
/// the fake API server: after a server-side apply as field manager `kopsrs`, the jsonpath of
/// `prune_objects` gives the addon annotation and the managers; a missing object gives
/// nothing (`--ignore-not-found`).
#[test]
fn the_prune_read_of_a_generated_addon_works_with_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let kube = FakeKube::standalone(dir.path(), "prune.example.com");
    let object = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: kube-system\n  annotations:\n    kopsrs.io/addon: generated\ndata:\n  a: b\n";
    let out = kube.kubectl(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kopsrs",
            "-f",
            "-",
        ],
        Some(object),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The expression bootstrap.sh uses (its `kopsrs\.io` escape included).
    let script = include_str!("../../kopsrs-bootstrap/src/bootstrap.sh");
    let jsonpath = script
        .split("-o jsonpath='")
        .find(|part| part.starts_with("{.metadata.annotations.kopsrs"))
        .and_then(|part| part.split('\'').next())
        .unwrap();
    let read = |name: &str| {
        let out = kube.kubectl(
            &[
                "get",
                "configmap",
                name,
                "-n",
                "kube-system",
                "--ignore-not-found",
                &format!("-o=jsonpath={jsonpath}"),
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(read("settings"), "generated|kopsrs");
    assert_eq!(read("missing"), "");
}
