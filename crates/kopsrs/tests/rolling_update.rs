//! `rolling-update cluster` through the binary: clusters applied to moto, their Nodes and
//! pods served by scripts/fake_kube.py (its node simulator turns every running instance into
//! a Node, Ready a second after it appears; its controllers reschedule evicted pods; its
//! eviction API enforces PodDisruptionBudgets as the real one does), reached through a
//! kubeconfig context named after the cluster.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::kube::FakeKube;
use support::Moto;

const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";
/// Three control planes and a node group in each of three zones.
const HA: &[&str] = &[
    "--zones",
    "eu-west-1a,eu-west-1b,eu-west-1c",
    "--control-plane-zones",
    "eu-west-1a,eu-west-1b,eu-west-1c",
];
/// Short intervals and one validation per step: the fake settles in about a second.
const FAST: &[&str] = &[
    "--node-interval",
    "200ms",
    "--control-plane-interval",
    "200ms",
    "--post-drain-delay",
    "0s",
    "--validate-count",
    "1",
    "--validation-timeout",
    "2m",
    "--drain-timeout",
    "2m",
];

/// The fewest healthy etcd members seen, and each change of (healthy, members).
type EtcdWatcher = std::thread::JoinHandle<(usize, Vec<(usize, usize)>)>;

struct Rig {
    moto: Moto,
    kube: FakeKube,
    name: String,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A cluster at Kubernetes 1.33.0 applied to moto, its Nodes in the fake, then
    /// `upgrade cluster --yes` and `update cluster --yes`: every instance runs an old
    /// launch-template version, and the new one a newer Kubernetes.
    fn upgraded(name: &str, create: &[&str]) -> Rig {
        Rig::outdated(name, create, true)
    }

    /// As [`Rig::upgraded`], with a change of the instances' tags instead of an upgrade
    /// (`upgrade: false`): a new launch-template version at the same Kubernetes version, so
    /// any group may roll first.
    fn outdated(name: &str, create: &[&str], upgrade: bool) -> Rig {
        let r = Rig::applied(name, create);
        match upgrade {
            true => r.ok(r.kopsrs().args(["upgrade", "cluster", name, "--yes"])),
            false => r.ok(r.kopsrs().args([
                "edit",
                "cluster",
                name,
                "--set",
                "spec.cloudLabels=rollout=2",
            ])),
        };
        let out = r.ok(r.kopsrs().args(["update", "cluster", name, "--yes"]));
        // The update of an upgrade warns that new nodes would run ahead of the API servers,
        // naming the way that cannot; any other change does not.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let warned = stderr.contains("move from Kubernetes 1.33.0 to")
            && stderr.contains("kopsrs reconcile cluster");
        assert_eq!(warned, upgrade, "{stderr}");
        r.validated();
        r
    }

    /// A cluster at Kubernetes 1.33.0 applied to moto, every instance joined and Ready.
    fn applied(name: &str, create: &[&str]) -> Rig {
        let moto = Moto::start();
        moto.create_bucket("state");
        moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
        let dir = tempfile::tempdir().unwrap();
        let kube = FakeKube::start(
            dir.path(),
            &moto,
            name,
            &[
                "--ready-after",
                "1",
                "--reschedule-after",
                "0.5",
                "--grace",
                "0.2",
            ],
        );
        let r = Rig {
            moto,
            kube,
            name: name.to_string(),
            _dir: dir,
        };
        r.ok(r
            .kopsrs()
            .args([
                "create",
                "cluster",
                "--name",
                name,
                "--dns-zone",
                "example.com",
            ])
            .args(["--kubernetes-version", "1.33.0", "--image", IMAGE])
            .args(create));
        r.ok(r.kopsrs().args(["update", "cluster", name, "--yes"]));
        r.validated();
        r
    }

    /// Waits until every instance joined and is Ready.
    fn validated(&self) {
        self.ok(self
            .kopsrs()
            .args([
                "validate",
                "cluster",
                &self.name,
                "--wait",
                "60s",
                "--interval",
                "200ms",
            ])
            .arg("--kubeconfig")
            .arg(&self.kube.kubeconfig));
    }

    fn kopsrs(&self) -> Command {
        let mut c = self.moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    }

    /// `edit instancegroup GROUP` with `args` (`--set`/`--unset` pairs), then `update
    /// cluster --yes`.
    fn edit_group_and_apply(&self, group: &str, args: &[&str]) {
        self.ok(self
            .kopsrs()
            .args(["edit", "instancegroup", group, "--name", &self.name])
            .args(args));
        self.ok(self
            .kopsrs()
            .args(["update", "cluster", &self.name, "--yes"]));
    }

    fn ok(&self, command: &mut Command) -> Output {
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{command:?}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn roll_command(&self, kubeconfig: &std::path::Path, extra: &[&str]) -> Command {
        let mut c = self.kopsrs();
        c.args(["rolling-update", "cluster", &self.name, "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra);
        c
    }

    /// `rolling-update cluster` with `extra`: exit code, stdout, stderr.
    fn roll(&self, extra: &[&str]) -> (i32, String, String) {
        self.roll_with(&self.kube.kubeconfig, extra)
    }

    /// `rolling-update cluster` through `kubeconfig`.
    fn roll_with(&self, kubeconfig: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
        let out = self.roll_command(kubeconfig, extra).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Watches etcd's members (the fake's view) until the returned flag is set: the fewest
    /// healthy members seen, and each change of (healthy, members).
    fn watch_etcd(&self) -> (Arc<AtomicBool>, EtcdWatcher) {
        let stop = Arc::new(AtomicBool::new(false));
        let url = self.kube.url.clone();
        let flag = stop.clone();
        let watcher = std::thread::spawn(move || {
            let (mut fewest, mut history) = (usize::MAX, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let out = Command::new("curl")
                    .args(["-sSf"])
                    .arg(format!("{url}/__fake/etcd"))
                    .stderr(Stdio::null())
                    .output()
                    .unwrap();
                if let Ok(state) = serde_json::from_slice::<Value>(&out.stdout) {
                    let members = state["members"].as_array().cloned().unwrap_or_default();
                    let healthy = members.iter().filter(|m| m["healthy"] == true).count();
                    if !members.is_empty() {
                        fewest = fewest.min(healthy);
                    }
                    if history.last() != Some(&(healthy, members.len())) {
                        history.push((healthy, members.len()));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (fewest, history)
        });
        (stop, watcher)
    }

    /// `get instances -o json`.
    fn instances(&self) -> Vec<Value> {
        let out =
            self.ok(self
                .kopsrs()
                .args(["get", "instances", "--name", &self.name, "-o", "json"]));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The cluster's pending or running EC2 instances: (ID, instance group, detached tag).
    fn running(&self) -> Vec<(String, String, bool)> {
        let out = self.moto.python(&format!(
            "import json\n\
             r = aws('ec2').describe_instances(Filters=[\
               {{'Name': 'tag-key', 'Values': ['kubernetes.io/cluster/{}']}},\
               {{'Name': 'instance-state-name', 'Values': ['pending', 'running']}}])\n\
             out = []\n\
             for res in r['Reservations']:\n\
             \x20   for i in res['Instances']:\n\
             \x20       tags = {{t['Key']: t['Value'] for t in i.get('Tags', [])}}\n\
             \x20       out.append([i['InstanceId'], tags.get('kops.k8s.io/instancegroup', ''),\
                          'kops.k8s.io/detached-from-asg' in tags])\n\
             print(json.dumps(out))",
            self.name
        ));
        serde_json::from_str::<Vec<(String, String, bool)>>(out.trim()).unwrap()
    }

    /// A Deployment of `replicas` pods with a budget of `min_available`, all Ready.
    fn workload(&self, replicas: u32, min_available: u32) {
        let manifest = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx}}]}}\n\
             ---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  minAvailable: {min_available}\n  selector: {{matchLabels: {{app: web}}}}\n"
        );
        let out = self.kube.kubectl(&["apply", "-f", "-"], Some(&manifest));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        loop {
            let budget = self
                .kube
                .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web");
            if budget["status"]["currentHealthy"] == replicas {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{budget}");
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kube.control("DELETE", "/__fake/pdb-min-healthy", "");
        self.kube.control("DELETE", "/__fake/calls", "");
    }

    fn min_healthy(&self) -> i64 {
        self.kube.get("/__fake/pdb-min-healthy")["budgets"]["default/web"]["minCurrentHealthy"]
            .as_i64()
            .unwrap()
    }

    fn all_current(&self) {
        let instances = self.instances();
        assert!(
            instances.iter().all(|i| i["status"] == "UpToDate"),
            "{instances:#?}"
        );
        let (code, stdout, _) = self.roll(&[]);
        assert_eq!(code, 0);
        assert!(stdout.contains("No rolling-update required."), "{stdout}");
    }
}

/// The groups whose instances were terminated, in order, from the progress lines.
fn terminations(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(": terminating i-"))
        .map(|l| {
            l.trim_start_matches("group ")
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn an_upgrade_rolls_control_planes_first_and_keeps_the_budget() {
    let rig = Rig::upgraded("roll.example.com", &[HA, &["--node-count", "2"]].concat());
    // Three pods on two workers, at least two available: draining the worker with two of
    // them must wait for the first one's replacement.
    rig.workload(3, 2);
    let before: BTreeSet<String> = rig.running().into_iter().map(|r| r.0).collect();
    assert_eq!(before.len(), 5);

    // Dry run: the table, the advice, nothing changed.
    let (code, stdout, stderr) = rig.roll(&[]);
    assert_eq!(code, 0, "{stderr}");
    for group in [
        "control-plane-eu-west-1a",
        "control-plane-eu-west-1b",
        "control-plane-eu-west-1c",
        "nodes-eu-west-1a",
        "nodes-eu-west-1b",
    ] {
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(group))
            .unwrap_or_else(|| panic!("{stdout}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            row[1..],
            ["NeedsUpdate", "1", "0", "1", "1", "1", "1"],
            "{stdout}"
        );
    }
    assert!(stdout.starts_with("NAME  "), "{stdout}");
    assert!(stdout.contains("Must specify --yes to rolling-update."));
    assert_eq!(
        rig.running()
            .into_iter()
            .map(|r| r.0)
            .collect::<BTreeSet<_>>(),
        before
    );

    rig.moto.faults(serde_json::json!({}));
    let (code, stdout, stderr) = rig.roll(&[&["--yes"], FAST].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Rolling update completed for cluster roll.example.com!"));
    // Each control plane left the API load balancer's target group before it was drained.
    let calls = rig.moto.calls();
    assert_eq!(
        calls["by_action"]["elasticloadbalancing:DeregisterTargets"], 3,
        "{calls}"
    );
    // Control planes first, one at a time, then the node groups.
    assert_eq!(
        terminations(&stderr),
        [
            "control-plane-eu-west-1a",
            "control-plane-eu-west-1b",
            "control-plane-eu-west-1c",
            "nodes-eu-west-1a",
            "nodes-eu-west-1b"
        ],
        "{stderr}"
    );
    // Node groups surged (the default maxSurge 1 on AWS); control planes never.
    assert_eq!(stderr.matches("for a surge").count(), 2, "{stderr}");
    assert!(!stderr.contains("control-plane-eu-west-1a: detaching"));
    // The budget refused at least one eviction, was waited on, and held throughout.
    let calls = rig.kube.get("/__fake/calls");
    assert!(
        calls["by_status"]["create pods/eviction 429"]
            .as_i64()
            .unwrap_or(0)
            >= 1,
        "{calls}"
    );
    assert!(stderr.contains("waited on a disruption budget"), "{stderr}");
    // Each replaced instance's Node was deleted before it was terminated, as kops does (a
    // control plane's replacement prunes the etcd members no control-plane Node names).
    assert_eq!(calls["by_call"]["delete nodes"], 5, "{calls}");
    assert!(
        rig.min_healthy() >= 2,
        "{}",
        rig.kube.get("/__fake/pdb-min-healthy")
    );
    // Every instance replaced, none extra, none left detached.
    let after = rig.running();
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(after
        .iter()
        .all(|(id, _, detached)| !before.contains(id) && !detached));
    rig.all_current();
    // The lock was released.
    assert!(!rig
        .moto
        .python("print([o['Key'] for o in aws('s3').list_objects_v2(Bucket='state').get('Contents', [])])")
        .contains("lock"));
}

#[test]
fn surge_and_unavailable_keep_the_capacity_they_promise() {
    let rig = Rig::outdated(
        "surge.example.com",
        &["--zones", "eu-west-1a", "--node-count", "4"],
        false,
    );
    rig.ok(rig
        .kopsrs()
        .args([
            "edit",
            "ig",
            "nodes-eu-west-1a",
            "--name",
            "surge.example.com",
        ])
        .args(["--set", "spec.rollingUpdate.maxSurge=2"])
        .args(["--set", "spec.rollingUpdate.maxUnavailable=1"]));

    // Watch the group's Nodes while it rolls: schedulable Ready ones, and all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let url = rig.kube.url.clone();
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut min_serving, mut max_nodes) = (usize::MAX, 0);
            let mut history: Vec<(usize, usize)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("curl")
                    .args(["-sSf"])
                    .arg(format!(
                        "{url}/api/v1/nodes?labelSelector=kops.k8s.io/instancegroup%3Dnodes-eu-west-1a"
                    ))
                    .stderr(Stdio::null())
                    .output()
                    .unwrap();
                if let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) {
                    let nodes = list["items"].as_array().cloned().unwrap_or_default();
                    let serving = nodes
                        .iter()
                        .filter(|n| {
                            n["spec"]["unschedulable"] != true
                                && n["status"]["conditions"].as_array().is_some_and(|c| {
                                    c.iter()
                                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                                })
                        })
                        .count();
                    min_serving = min_serving.min(serving);
                    max_nodes = max_nodes.max(nodes.len());
                    if history.last() != Some(&(serving, nodes.len())) {
                        history.push((serving, nodes.len()));
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (min_serving, max_nodes, history)
        })
    };
    let (code, stdout, stderr) =
        rig.roll(&[&["--yes", "--instance-group", "nodes-eu-west-1a"], FAST].concat());
    stop.store(true, Ordering::Relaxed);
    // (serving, all) each time it changed.
    let (min_serving, max_nodes, history) = watcher.join().unwrap();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("4 instance(s) to replace, 2 surged and 1 unavailable"),
        "{stderr}"
    );
    // Two rounds: two surged + one unavailable, then the last one surged.
    assert_eq!(stderr.matches("for a surge").count(), 2, "{stderr}");
    assert_eq!(min_serving, 3, "desired 4, maxUnavailable 1: {history:?}");
    assert!(max_nodes <= 6, "desired 4 + maxSurge 2: {history:?}");
    // Only the node group was rolled; the control plane still needs its update.
    assert_eq!(terminations(&stderr).len(), 4);
    let pending: Vec<Value> = rig
        .instances()
        .into_iter()
        .filter(|i| i["status"] == "NeedsUpdate")
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["role"], "control-plane");
    assert_eq!(rig.running().len(), 5);
}

#[test]
fn a_killed_roll_resumes_and_a_failed_validation_or_drain_stops_it() {
    let rig = Rig::outdated(
        "resume.example.com",
        &["--zones", "eu-west-1a", "--node-count", "2"],
        false,
    );
    rig.workload(2, 1);

    // A validation that cannot pass (a control-plane pod missing): exit 1, nothing replaced.
    let before = rig.running();
    let cp_node = rig
        .kube
        .get("/api/v1/nodes?labelSelector=node-role.kubernetes.io/control-plane")["items"][0]
        ["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    rig.kube.control(
        "POST",
        &format!("/__fake/static-pods/{cp_node}/kube-scheduler"),
        r#"{"present": false}"#,
    );
    let (code, _, stderr) = rig.roll(&[
        "--yes",
        "--validation-timeout",
        "2s",
        "--control-plane-interval",
        "200ms",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("did not validate before its update within --validation-timeout 2s")
            && stderr.contains("is missing kube-scheduler pod")
            && stderr.contains("resumes where it stopped"),
        "{stderr}"
    );
    assert_eq!(rig.running(), before);
    rig.kube.control(
        "POST",
        &format!("/__fake/static-pods/{cp_node}/kube-scheduler"),
        r#"{"present": true}"#,
    );

    // SIGKILL once the surged worker is detached and drained, before it is terminated.
    let mut child = rig
        .roll_command(
            &rig.kube.kubeconfig,
            &[
                &[
                    "--yes",
                    "--instance-group-roles",
                    "node",
                    "--post-drain-delay",
                    "60s",
                ],
                &FAST[..4],
            ]
            .concat(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(&mut stderr)
            .lines()
            .map_while(Result::ok)
        {
            tx.send(line).ok();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let line = rx
            .recv_timeout(deadline - Instant::now())
            .expect("the roll stalled");
        if line.contains("pod(s) evicted") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let running = rig.running();
    assert_eq!(
        running.iter().filter(|r| r.2).count(),
        1,
        "one detached: {running:?}"
    );
    assert_eq!(
        running.len(),
        4,
        "the surge's replacement runs beside it: {running:?}"
    );
    // Its Node was marked before the drain: tainted, cordoned, out of load balancers.
    let detached = &running.iter().find(|r| r.2).unwrap().0;
    let nodes = rig.kube.get("/api/v1/nodes")["items"]
        .as_array()
        .unwrap()
        .clone();
    let node = nodes
        .iter()
        .find(|n| {
            n["spec"]["providerID"]
                .as_str()
                .unwrap()
                .ends_with(detached.as_str())
        })
        .unwrap();
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    assert_eq!(
        node["spec"]["taints"],
        serde_json::json!([{"key": "kops.k8s.io/scheduled-for-update", "effect": "PreferNoSchedule"}]),
        "{node}"
    );
    assert_eq!(
        node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"], "",
        "{node}"
    );

    // A budget that can never allow an eviction (2 of 2 must stay) stops the drain.
    let out = rig.kube.kubectl(
        &[
            "patch",
            "pdb",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":2}}"#,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (code, _, stderr) = rig.roll(
        &[
            &["--yes", "--instance-group-roles", "node"],
            &FAST[..10],
            &["--drain-timeout", "3s"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{stderr}");
    // The killed run's lock is taken over (same host, its process gone), with no flag.
    assert!(stderr.contains("took over the lock"), "{stderr}");
    assert!(
        stderr.contains("not evicted within 3s") && stderr.contains("--fail-on-drain-error=false"),
        "{stderr}"
    );
    assert!(rig.min_healthy() >= 1);
    let out = rig.kube.kubectl(
        &[
            "patch",
            "pdb",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":1}}"#,
        ],
        None,
    );
    assert!(out.status.success());

    let (code, stdout, stderr) = rig.roll(&[&["--yes"], FAST].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let after = rig.running();
    assert_eq!(after.len(), 3, "no extra instance: {after:?}");
    assert!(
        after
            .iter()
            .all(|r| !r.2 && !before.iter().any(|b| b.0 == r.0)),
        "{after:?}"
    );
    assert!(rig.min_healthy() >= 1);
    rig.all_current();

    // A Node annotated kops.k8s.io/needs-update: its group needs an update again.
    let worker = rig
        .kube
        .get("/api/v1/nodes?labelSelector=node-role.kubernetes.io/node")["items"][0]["metadata"]
        ["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = rig.kube.kubectl(
        &["annotate", "node", &worker, "kops.k8s.io/needs-update="],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, stdout, _) = rig.roll(&[]);
    assert_eq!(code, 0);
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("nodes-eu-west-1a"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1..4], ["NeedsUpdate", "1", "1"], "{stdout}");
}

#[test]
fn cloudonly_replaces_without_the_kubernetes_api() {
    let rig = Rig::upgraded(
        "cloud.example.com",
        &["--zones", "eu-west-1a", "--node-count", "1"],
    );
    let before = rig.running();
    let empty = support::kube::empty_kubeconfig(rig._dir.path());
    // Without the API and without --cloudonly: an error that names both ways out.
    let (code, _, stderr) = rig.roll_with(&empty, &["--yes"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("export kubeconfig") && stderr.contains("--cloudonly"),
        "{stderr}"
    );
    assert_eq!(rig.running(), before);

    // Control planes without the etcd gate: refused, nothing changed, unless --force.
    let (code, _, stderr) =
        rig.roll_with(&empty, &[&["--yes", "--cloudonly"], &FAST[..4]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("quorum") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(rig.running(), before);
    let (code, _, stderr) = rig.roll_with(
        &empty,
        &[&["--yes", "--cloudonly", "--force"], &FAST[..4]].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("may lose its quorum"), "{stderr}");
    assert!(!stderr.contains("draining"), "{stderr}");
    let after = rig.running();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|r| !before.iter().any(|b| b.0 == r.0)));
    assert!(rig.instances().iter().all(|i| i["status"] == "UpToDate"));

    // --force replaces current instances too, each once.
    let forced_roll = [
        &[
            "--yes",
            "--cloudonly",
            "--force",
            "--instance-group",
            "nodes-eu-west-1a",
        ],
        &FAST[..4],
    ]
    .concat();
    let (code, _, stderr) = rig.roll_with(&empty, &forced_roll);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(terminations(&stderr), ["nodes-eu-west-1a"], "{stderr}");
    let forced = rig.running();
    assert_eq!(forced.len(), 2);
    assert_eq!(forced.iter().filter(|r| after.contains(r)).count(), 1);
}

/// The line numbers of `stderr`'s lines that contain `what`.
fn lines_with(stderr: &str, what: &str) -> Vec<usize> {
    stderr
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(what))
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn reconcile_upgrades_the_control_plane_before_any_node_and_resumes() {
    let name = "reconcile.example.com";
    let rig = Rig::applied(name, &[HA, &["--node-count", "2"]].concat());
    rig.workload(3, 2);
    rig.ok(rig.kopsrs().args(["upgrade", "cluster", name, "--yes"]));
    let before: BTreeSet<String> = rig.running().into_iter().map(|r| r.0).collect();
    assert_eq!(before.len(), 5);

    // `update --yes` of the upgrade would start new nodes at the new version: said, with
    // the way round it (shown on a dry run of the roles kept back, nothing applied here).
    let dry = rig.ok(rig.kopsrs().args([
        "update",
        "cluster",
        name,
        "--instance-group-roles",
        "control-plane",
    ]));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("Held back: "), "{plan}");
    assert!(
        plan.contains("instance group nodes-eu-west-1a (Node) is not of the roles updated now"),
        "{plan}"
    );
    assert!(
        plan.contains("aws_launch_template.control-plane-eu-west-1a"),
        "{plan}"
    );

    // The dry run: every step with its plan, nothing changed.
    let out = rig.ok(rig.kopsrs().args(["reconcile", "cluster", name]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for step in [
        "== 1. control plane: cloud changes",
        "== 2. control plane: roll",
        "== 3. nodes: cloud changes",
        "== 4. nodes: roll",
        "== 5. prune",
    ] {
        assert!(stdout.contains(step), "{stdout}");
    }
    let step3 = stdout.find("== 3.").unwrap();
    let (first, rest) = stdout.split_at(step3);
    assert!(
        first.contains("aws_launch_template.control-plane-eu-west-1b"),
        "{first}"
    );
    assert!(
        !first.contains("# aws_launch_template.nodes-eu-west-1a"),
        "{first}"
    );
    assert!(
        rest.contains("# aws_launch_template.nodes-eu-west-1a"),
        "{rest}"
    );
    assert!(
        stdout.contains("Must specify --yes to reconcile."),
        "{stdout}"
    );
    let unchanged: BTreeSet<String> = rig.running().into_iter().map(|r| r.0).collect();
    assert_eq!(unchanged, before);

    let reconcile_command = || {
        let mut c = rig.kopsrs();
        c.args(["reconcile", "cluster", name, "--yes", "--kubeconfig"])
            .arg(&rig.kube.kubeconfig)
            .args(FAST);
        c
    };
    let reconcile = || {
        let out = reconcile_command().output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (stop_watching, etcd_watcher) = rig.watch_etcd();
    // Killed (SIGKILL) as it terminates the first control plane: the nodes' templates and
    // instances are untouched, and running it again goes on with no flag (the lock of the
    // dead run is taken over).
    let mut child = reconcile_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut killed_at = Vec::new();
    {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines {
            let line = line.unwrap();
            killed_at.push(line.clone());
            if line.contains(": terminating i-") {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    let killed_at = killed_at.join("\n");
    assert!(
        killed_at.contains("control-plane-eu-west-1a: terminating"),
        "{killed_at}"
    );
    assert!(!killed_at.contains("Step 3 of 5"), "{killed_at}");
    let nodes_before: BTreeSet<String> = rig
        .running()
        .into_iter()
        .filter(|r| r.1.starts_with("nodes"))
        .map(|r| r.0)
        .collect();
    assert!(nodes_before.is_subset(&before), "{nodes_before:?}");

    let (code, stderr) = reconcile();
    stop_watching.store(true, Ordering::Relaxed);
    let (fewest_healthy, etcd_history) = etcd_watcher.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("took over the lock"), "{stderr}");
    // etcd kept a quorum with a member to spare: never fewer than two healthy of three.
    assert!(fewest_healthy >= 2, "{etcd_history:?}");
    // The roll removed each replaced control plane's member itself.
    let removed = killed_at.matches("removing etcd member").count()
        + stderr.matches("removing etcd member").count();
    assert_eq!(removed, 3, "{killed_at}\n{stderr}");
    assert_eq!(etcd_history.last(), Some(&(3, 3)), "{etcd_history:?}");
    let step = |n: usize| {
        lines_with(&stderr, &format!("Step {n} of 5"))
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no step {n}: {stderr}"))
    };
    let cp_terminated = lines_with(&stderr, "control-plane-eu-west-1");
    let cp_terminations: Vec<usize> = cp_terminated
        .iter()
        .copied()
        .filter(|&n| stderr.lines().nth(n).unwrap().contains(": terminating i-"))
        .collect();
    assert!((2..=3).contains(&cp_terminations.len()), "{stderr}");
    let node_lines = lines_with(&stderr, "group nodes-eu-west-1");
    // Every control plane replaced within step 2; the nodes' templates change in step 3
    // and their instances go in step 4, after the last control plane.
    assert!(
        cp_terminations.iter().all(|&n| n > step(2) && n < step(3)),
        "{stderr}"
    );
    assert!(node_lines.iter().all(|&n| n > step(4)), "{stderr}");
    // The rest, in order: each group's instance terminated once over both runs (the kill
    // may come before or after the first terminate call).
    let mut all = terminations(&killed_at);
    all.extend(terminations(&stderr));
    all.dedup();
    assert_eq!(
        all,
        [
            "control-plane-eu-west-1a",
            "control-plane-eu-west-1b",
            "control-plane-eu-west-1c",
            "nodes-eu-west-1a",
            "nodes-eu-west-1b"
        ],
        "{killed_at}\n{stderr}"
    );
    assert!(
        rig.min_healthy() >= 2,
        "{}",
        rig.kube.get("/__fake/pdb-min-healthy")
    );
    let after = rig.running();
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(after.iter().all(|(id, _, d)| !before.contains(id) && !d));
    // Every kubelet runs the new version now, and the API server too.
    let version = rig.kube.get("/version")["gitVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!version.starts_with("v1.33."), "{version}");
    let nodes = rig.kube.get("/api/v1/nodes");
    for node in nodes["items"].as_array().unwrap() {
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"],
            version.as_str()
        );
    }
    // Re-plans empty; a second reconcile has nothing to do.
    let out = rig.ok(rig.kopsrs().args(["update", "cluster", name]));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("No changes."), "{plan}");
    let (code, stderr) = reconcile();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(terminations(&stderr).len(), 0, "{stderr}");
    rig.all_current();
}

/// The etcd gate with the flags that switch validation off: a worker group that never
/// validates and `--validate-count 0` still replace one control plane at a time, each once
/// etcd has its member back.
#[test]
fn reconcile_with_validation_off_still_waits_for_each_etcd_member() {
    let name = "gate.example.com";
    let rig = Rig::applied(name, &[HA, &["--node-count", "1"]].concat());
    rig.ok(rig.kopsrs().args(["upgrade", "cluster", name, "--yes"]));
    // A worker that never turns Ready: validation fails for its group throughout.
    let nodes = rig
        .kube
        .get("/api/v1/nodes?labelSelector=kops.k8s.io/instancegroup%3Dnodes-eu-west-1a");
    let worker = nodes["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    rig.kube.control(
        "POST",
        &format!("/__fake/nodes/{worker}/condition"),
        r#"{"Ready": "False"}"#,
    );
    let (stop, watcher) = rig.watch_etcd();
    let out = rig
        .kopsrs()
        .args(["reconcile", "cluster", name, "--yes", "--kubeconfig"])
        .arg(&rig.kube.kubeconfig)
        .args(&FAST[..6])
        .args([
            "--validate-count",
            "0",
            "--fail-on-validate-error=false",
            "--validation-timeout",
            "2m",
        ])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (fewest_healthy, history) = watcher.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut cp = terminations(&stderr);
    cp.retain(|g| g.starts_with("control-plane"));
    assert_eq!(cp.len(), 3, "{stderr}");
    assert!(fewest_healthy >= 2, "{history:?}");
    assert_eq!(
        stderr.matches("removing etcd member").count(),
        3,
        "{stderr}"
    );
    assert_eq!(history.last(), Some(&(3, 3)), "{history:?}");
}

/// `delete instance ID|NODE`: found among the cluster's groups by instance ID or Node name;
/// without --yes only said; with --yes drained and terminated through its group, which
/// launches a replacement (first, with kops's default --surge); a control plane through
/// etcd's gate; an instance that is not the cluster's is refused.
#[test]
fn delete_instance_drains_and_replaces_one_instance() {
    let rig = Rig::applied(
        "del.example.com",
        &["--zones", "eu-west-1a", "--node-count", "2"],
    );
    let before = rig.running();
    let (node_instance, control_plane) = (
        before
            .iter()
            .find(|r| r.1 == "nodes-eu-west-1a")
            .unwrap()
            .0
            .clone(),
        before
            .iter()
            .find(|r| r.1 == "control-plane-eu-west-1a")
            .unwrap()
            .0
            .clone(),
    );
    let nodes = rig.kube.get("/api/v1/nodes");
    let node_name = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["spec"]["providerID"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/{node_instance}")))
        })
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let delete = |what: &str, extra: &[&str]| {
        let out = rig
            .kopsrs()
            .args([
                "delete",
                "instance",
                what,
                "--name",
                &rig.name,
                "--kubeconfig",
            ])
            .arg(&rig.kube.kubeconfig)
            .args(FAST)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Without --yes, by Node name: what would happen, nothing changed.
    let (code, stdout, stderr) = delete(&node_name, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "Instance {node_instance} (node {node_name}) of instance group nodes-eu-west-1a found for deletion"
        )) && stdout.contains("Must specify --yes"),
        "{stdout}"
    );
    assert_eq!(rig.running(), before);

    // --cloudonly would replace it blind: refused, naming the way for an API that is down.
    let (code, _, stderr) = delete(&node_name, &["--cloudonly", "--yes"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--cloudonly is not offered")
            && stderr.contains("rolling-update cluster --cloudonly"),
        "{stderr}"
    );
    assert_eq!(rig.running(), before);

    // An instance of another cluster (its tag names another cluster, its name begins
    // like this one's) is not this cluster's: refused, still running.
    let stranger = rig.moto.python(
        "r = aws('ec2').run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'KubernetesCluster', 'Value': 'del.example.com.other'}, {'Key': 'kops.k8s.io/instancegroup', 'Value': 'nodes-eu-west-1a'}]}])\n\
         print(r['Instances'][0]['InstanceId'])",
    );
    let stranger = stranger.trim();
    let (code, _, stderr) = delete(stranger, &["--yes"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("no instance \"{stranger}\"")) && stderr.contains("get instances"),
        "{stderr}"
    );
    let state = rig.moto.python(&format!(
        "print(aws('ec2').describe_instances(InstanceIds=['{stranger}'])['Reservations'][0]['Instances'][0]['State']['Name'])"
    ));
    assert_eq!(state.trim(), "running");
    assert_eq!(rig.running(), before);

    // --yes: detached first (the replacement launches), drained, terminated.
    let (code, _, stderr) = delete(&node_name, &["--yes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("detaching {node_instance} for a surge"))
            && stderr.contains(&format!("draining node {node_name}")),
        "{stderr}"
    );
    assert_eq!(terminations(&stderr), ["nodes-eu-west-1a"], "{stderr}");
    let after = rig.running();
    assert!(!after.iter().any(|r| r.0 == node_instance), "{after:?}");
    assert_eq!(
        after.iter().filter(|r| r.1 == "nodes-eu-west-1a").count(),
        2,
        "{after:?}"
    );
    // The other instances were left alone.
    assert!(before
        .iter()
        .filter(|r| r.0 != node_instance)
        .all(|r| after.iter().any(|a| a.0 == r.0)));

    // A control plane by instance ID (never surged): replaced through etcd's gate.
    let (code, _, stderr) = delete(&control_plane, &["--yes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("for a surge"), "{stderr}");
    assert!(stderr.contains("etcd"), "{stderr}");
    let last = rig.running();
    assert!(!last.iter().any(|r| r.0 == control_plane), "{last:?}");
    assert_eq!(
        last.iter()
            .filter(|r| r.1 == "control-plane-eu-west-1a")
            .count(),
        1,
        "{last:?}"
    );
    rig.validated();
}

/// A group's warm-pool instances (moto addition 11) as `DescribeWarmPool` lists them:
/// (ID, lifecycle state, launch-template version), and the group's current version.
fn warm_pool(rig: &Rig, group: &str) -> (Vec<(String, String, String)>, String) {
    let out = rig.moto.python(&format!(
        "import json\n\
         a = aws('autoscaling')\n\
         g = [g for g in a.describe_auto_scaling_groups()['AutoScalingGroups']\n\
         \x20    if g['AutoScalingGroupName'] == '{group}.{}'][0]\n\
         w = a.describe_warm_pool(AutoScalingGroupName=g['AutoScalingGroupName'])\n\
         lt = aws('ec2').describe_launch_templates(LaunchTemplateIds=[g['LaunchTemplate']['LaunchTemplateId']])\n\
         print(json.dumps([[[i['InstanceId'], i['LifecycleState'], i['LaunchTemplate']['Version']]\n\
         \x20   for i in w['Instances']], str(lt['LaunchTemplates'][0]['LatestVersionNumber'])]))",
        rig.name
    ));
    serde_json::from_str(out.trim()).unwrap()
}

/// kops's way with warm pools: instances waiting in a group's warm pool that were launched
/// from an old template are terminated directly (they never joined: no drain, no
/// validation of their own), before the group's joined instances are replaced; the pool
/// refills from the new template, a second run finds nothing, and `delete cluster` takes
/// the pool's instances with the group.
#[test]
fn warm_pool_instances_are_terminated_first_and_refill_from_the_new_template() {
    let group = "nodes-eu-west-1a";
    let rig = Rig::applied(
        "warm.example.com",
        &["--zones", "eu-west-1a", "--node-count", "1"],
    );
    rig.edit_group_and_apply(
        group,
        &[
            "--set",
            "spec.warmPool.minSize=1",
            "--set",
            "spec.warmPool.maxSize=3",
        ],
    );
    let (warm, version) = warm_pool(&rig, group);
    // The pool holds what its prepared capacity (3) leaves over the desired capacity (1).
    assert_eq!(warm.len(), 2, "{warm:?}");
    let metrics = rig.moto.python(&format!(
        "g = aws('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=['{group}.{}'])\n\
         print(sorted(m['Metric'] for m in g['AutoScalingGroups'][0]['EnabledMetrics']))",
        rig.name
    ));
    assert!(
        metrics.contains("WarmPoolWarmedCapacity"),
        "warm-pool metrics: {metrics}"
    );
    assert!(warm
        .iter()
        .all(|(_, state, v)| state == "Warmed:Stopped" && *v == version));

    rig.ok(rig.kopsrs().args([
        "edit",
        "cluster",
        &rig.name,
        "--set",
        "spec.cloudLabels=rollout=2",
    ]));
    rig.ok(rig.kopsrs().args(["update", "cluster", &rig.name, "--yes"]));
    rig.validated();
    let (old_warm, new_version) = warm_pool(&rig, group);
    assert_ne!(new_version, version);
    assert!(
        old_warm.iter().all(|(_, _, v)| *v == version),
        "{old_warm:?}"
    );

    // `get instances` lists them, in their warm state and out of date.
    let listed = rig.instances();
    for (id, _, _) in &old_warm {
        let row = listed
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed: {listed:#?}"));
        assert_eq!(row["state"], "Warmed:Stopped", "{row}");
        assert_eq!(row["status"], "NeedsUpdate", "{row}");
    }

    // The dry run counts the warm instances with the joined one.
    let (code, stdout, stderr) = rig.roll(&[]);
    assert_eq!(code, 0, "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with(group))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains("NeedsUpdate"), "{row}");
    assert_eq!(row.split_whitespace().nth(2), Some("3"), "{stdout}");

    let (code, _, stderr) = rig.roll(&[&["--yes"], FAST].concat());
    assert_eq!(code, 0, "{stderr}");
    let warm_line = lines_with(&stderr, "warm-pool instance(s)");
    assert_eq!(warm_line.len(), 1, "{stderr}");
    for (id, _, _) in &old_warm {
        assert!(stderr.contains(id.as_str()), "{id} terminated: {stderr}");
        assert!(
            !stderr
                .lines()
                .any(|l| l.contains(id.as_str()) && !l.contains("warm-pool")),
            "{id} only terminated, never drained or validated for: {stderr}"
        );
    }
    // The warm instances went before the joined one was touched.
    let joined = lines_with(&stderr, &format!("group {group}: terminating i-"));
    assert_eq!(joined.len(), 1, "{stderr}");
    assert!(warm_line[0] < joined[0], "{stderr}");
    let (refilled, _) = warm_pool(&rig, group);
    assert_eq!(refilled.len(), 2, "{refilled:?}");
    assert!(
        refilled
            .iter()
            .all(|(id, _, v)| *v == new_version && !old_warm.iter().any(|o| &o.0 == id)),
        "{refilled:?}"
    );
    rig.all_current();

    // Changed in place on the live group, as suspended processes are; each re-plans empty.
    let replans_empty = || {
        let out = rig.ok(rig.kopsrs().args(["update", "cluster", &rig.name]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("No changes"), "{stdout}");
    };
    rig.ok(rig
        .kopsrs()
        .args(["edit", "instancegroup", group, "--name", &rig.name])
        .args([
            "--set",
            "spec.warmPool.maxSize=2",
            "--set",
            "spec.suspendProcesses=Terminate,AZRebalance",
        ]));
    let out = rig.ok(rig.kopsrs().args(["update", "cluster", &rig.name]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warm_pool[0].max_group_prepared_capacity")
            && stdout.contains("suspended_processes"),
        "{stdout}"
    );
    rig.ok(rig.kopsrs().args(["update", "cluster", &rig.name, "--yes"]));
    replans_empty();
    let (smaller, _) = warm_pool(&rig, group);
    assert_eq!(smaller.len(), 1, "{smaller:?}");
    let suspended = rig.moto.python(&format!(
        "g = aws('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=['{group}.{}'])\n\
         print(','.join(sorted(p['ProcessName'] for p in g['AutoScalingGroups'][0]['SuspendedProcesses'])))",
        rig.name
    ));
    assert_eq!(suspended.trim(), "AZRebalance,Terminate");
    rig.edit_group_and_apply(
        group,
        &[
            "--unset",
            "spec.warmPool",
            "--set",
            "spec.suspendProcesses=AZRebalance",
        ],
    );
    replans_empty();
    let gone = rig.moto.python(&format!(
        "a = aws('autoscaling')\n\
         g = a.describe_auto_scaling_groups(AutoScalingGroupNames=['{group}.{}'])['AutoScalingGroups'][0]\n\
         print('WarmPoolConfiguration' in g, [p['ProcessName'] for p in g['SuspendedProcesses']])",
        rig.name
    ));
    assert_eq!(gone.trim(), "False ['AZRebalance']");
    // The pool's instances went with it.
    let stopped = rig.moto.python(
        "print(sum(1 for r in aws('ec2').describe_instances()['Reservations']          for i in r['Instances'] if i['State']['Name'] == 'stopped'))",
    );
    assert_eq!(stopped.trim(), "0");

    rig.ok(rig.kopsrs().args(["delete", "cluster", &rig.name, "--yes"]));
    let left = rig.moto.python(
        "print(sum(1 for r in aws('ec2').describe_instances()['Reservations'] \
         for i in r['Instances'] if i['State']['Name'] != 'terminated'))",
    );
    assert_eq!(left.trim(), "0");
}
