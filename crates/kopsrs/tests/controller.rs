//! `kopsrs controller`: kops's custom resources in a management cluster (scripts/fake_kube.py,
//! each behaviour the controller relies on read back with kubectl) reconciled into moto, with
//! the CLI on the same state store.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::boot::IMAGE;
use support::kube::FakeKube;
use support::Moto;

/// A management cluster with the controller's objects installed, and moto with the state
/// bucket and the DNS zone clusters use.
struct Fleet {
    moto: Moto,
    kube: FakeKube,
    dir: tempfile::TempDir,
    controllers: Vec<Child>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.controllers {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Fleet {
    fn new() -> Fleet {
        let moto = Moto::start();
        moto.create_bucket("state");
        moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
        let dir = tempfile::tempdir().unwrap();
        let kube = FakeKube::standalone(dir.path(), "management");
        let fleet = Fleet {
            moto,
            kube,
            dir,
            controllers: Vec::new(),
        };
        let install = fleet
            .kopsrs()
            .args(["controller", "install"])
            .output()
            .unwrap();
        assert!(
            install.status.success(),
            "{}",
            String::from_utf8_lossy(&install.stderr)
        );
        fleet.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&String::from_utf8(install.stdout).unwrap()),
        );
        fleet.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "crd/clusters.kops.k8s.io",
                "crd/instancegroups.kops.k8s.io",
                "--timeout=20s",
            ],
            None,
        );
        fleet
    }

    fn kopsrs(&self) -> Command {
        let mut c = self.moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        self.kube.kubectl(args, stdin)
    }

    fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A controller process; its log is `controller-N.log` in the fleet's directory.
    fn start_controller(&mut self, extra: &[&str]) -> usize {
        self.start_controller_as(extra, None)
    }

    /// [`Fleet::start_controller`] signing with `credentials` (access key, secret).
    fn start_controller_as(&mut self, extra: &[&str], credentials: Option<(&str, &str)>) -> usize {
        let n = self.controllers.len();
        let log = std::fs::File::create(self.log_path(n)).unwrap();
        let mut command = self.kopsrs();
        if let Some((key, secret)) = credentials {
            command
                .env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        command
            .args(["controller", "run", "--kubeconfig"])
            .arg(&self.kube.kubeconfig)
            .args(["--context", "management"])
            .args(extra);
        if !extra.contains(&"--resync") {
            command.args(["--resync", "10m"]);
        }
        command.stdout(log.try_clone().unwrap()).stderr(log);
        self.controllers.push(command.spawn().unwrap());
        n
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("controller-{n}.log"))
    }

    fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.log_path(n)).unwrap_or_default()
    }

    /// The custom resources of cluster `name` in `namespace`: the spec `create cluster`
    /// infers (one control plane, one node group), the store left to the controller, with
    /// `annotations` on the Cluster. With `prefix`, the groups' resources are named
    /// `PREFIX-GROUP` (the group's name then in the annotation `kopsrs.io/instance-group`), so
    /// two clusters can share a namespace.
    fn resources_prefixed(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
        prefix: Option<&str>,
    ) -> String {
        let out = self
            .kopsrs()
            .args(["create", "cluster", "--name", name, "--zones", "eu-west-1a"])
            .args([
                "--dns-zone",
                "example.com",
                "--image",
                IMAGE,
                "--dry-run",
                "-o",
                "yaml",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut value: Value = serde::Deserialize::deserialize(document).unwrap();
            let metadata = value["metadata"].as_object_mut().unwrap();
            metadata.remove("creationTimestamp");
            metadata.insert("namespace".into(), namespace.into());
            if value["kind"] == "Cluster" {
                value["spec"].as_object_mut().unwrap().remove("configBase");
                let annotations: serde_json::Map<String, Value> = annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                value["metadata"]["annotations"] = Value::Object(annotations);
            } else if let Some(prefix) = prefix {
                let group = value["metadata"]["name"].as_str().unwrap().to_string();
                value["metadata"]["name"] = format!("{prefix}-{group}").into();
                value["metadata"]["annotations"] =
                    serde_json::json!({"kopsrs.io/instance-group": group});
            }
            documents.push(serde_yaml_ng::to_string(&value).unwrap());
        }
        documents.join("---\n")
    }

    fn apply_cluster(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) {
        self.apply_cluster_prefixed(namespace, name, annotations, None)
    }

    fn apply_cluster_prefixed(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
        prefix: Option<&str>,
    ) {
        // (kubectl's `create namespace` sends protobuf, which the fake does not take.)
        let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
        self.kubectl_ok(&["apply", "-f", "-"], Some(&ns));
        self.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&self.resources_prefixed(namespace, name, annotations, prefix)),
        );
    }

    fn status(&self, namespace: &str, name: &str) -> Value {
        let out = self.kubectl_ok(
            &[
                "get",
                "clusters.kops.k8s.io",
                name,
                "-n",
                namespace,
                "-o",
                "json",
            ],
            None,
        );
        serde_json::from_str::<Value>(&out).unwrap()["status"].clone()
    }

    /// Waits until the condition `kind` of the Cluster has `status` (and `reason`, if given).
    fn wait_condition(
        &self,
        namespace: &str,
        name: &str,
        kind: &str,
        status: &str,
        reason: Option<&str>,
        n: usize,
    ) -> Value {
        let started = Instant::now();
        loop {
            let current = self.status(namespace, name);
            let c = condition(&current, kind);
            if c["status"] == status && reason.is_none_or(|r| c["reason"] == r) {
                return current;
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "{namespace}/{name}: {kind} never became {status} {reason:?}; status: {current:#}\nlog:\n{}\ngroups:\n{}",
                self.log(n),
                String::from_utf8_lossy(&self.kubectl(&["get", "ig", "-A", "--show-labels"], None).stdout)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// VPCs tagged for `cluster` in moto.
    fn vpcs(&self, cluster: &str) -> usize {
        self.moto
            .python(&format!(
                "print(len(aws('ec2', 'eu-west-1').describe_vpcs(Filters=[{{'Name': 'tag-key', 'Values': ['kubernetes.io/cluster/{cluster}']}}])['Vpcs']))"
            ))
            .trim()
            .parse()
            .unwrap()
    }
}

/// The condition `kind` of a `Cluster`'s status (null when it has none).
fn condition(status: &Value, kind: &str) -> Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Runs `command`, which must succeed: its stdout.
fn ok(mut command: Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command`, which must fail: its stderr.
fn refused(mut command: Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

impl Fleet {
    /// `kopsrs ARGS` with the fleet's moto and store.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = self.kopsrs();
        command.args(args);
        command
    }

    /// A cluster the CLI makes and applies, in `state` (the fleet's store when `None`).
    fn cli_cluster(&self, state: Option<&str>, name: &str) {
        for args in [
            &[
                "create",
                "cluster",
                "--name",
                name,
                "--zones",
                "eu-west-1a",
                "--dns-zone",
                "example.com",
                "--image",
                IMAGE,
            ][..],
            &[
                "update",
                "cluster",
                name,
                "--yes",
                "--create-kube-config=false",
            ][..],
        ] {
            let mut command = self.cli(args);
            if let Some(state) = state {
                command.env("KOPS_STATE_STORE", state);
            }
            ok(command);
        }
    }
}

/// The objects `controller install` prints apply with kubectl; the CRDs are served with their
/// printer columns, and every shared conformance spec, as custom resources, passes the
/// CRDs' schemas.
#[test]
fn install_applies_and_conformance_specs_fit_the_schema() {
    let fleet = Fleet::new();
    let crds = fleet.kubectl_ok(&["get", "crd", "-o", "name"], None);
    assert!(
        crds.contains("clusters.kops.k8s.io") && crds.contains("instancegroups.kops.k8s.io"),
        "{crds}"
    );
    for kind in ["ServiceAccount", "ClusterRole", "Role", "Deployment"] {
        let got = fleet.kubectl_ok(
            &[
                "get",
                kind,
                "kopsrs-controller",
                "-n",
                "kopsrs-system",
                "-o",
                "name",
            ],
            None,
        );
        assert!(!got.trim().is_empty(), "{kind}");
    }
    // The schemas against real specs: every conformance case's documents as custom resources.
    let cases = support::repo_root().join("../shared/conformance");
    let out = fleet
        .kopsrs()
        .args(["controller", "install", "-o", "yaml"])
        .output()
        .unwrap();
    let install = String::from_utf8(out.stdout).unwrap();
    let crd_file = fleet.dir.path().join("crds.yaml");
    let crds: Vec<String> = install
        .split("---\n")
        .filter(|d| d.contains("kind: CustomResourceDefinition"))
        .map(str::to_string)
        .collect();
    assert_eq!(crds.len(), 2);
    std::fs::write(&crd_file, crds.join("---\n")).unwrap();
    let mut checked = 0;
    for entry in walk(&cases) {
        if entry.file_name().and_then(|n| n.to_str()) != Some("in-v1alpha2.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(mut value) = <Value as serde::Deserialize>::deserialize(document) else {
                continue;
            };
            if !matches!(value["kind"].as_str(), Some("Cluster" | "InstanceGroup")) {
                continue;
            }
            value["metadata"]["namespace"] = "team".into();
            value["apiVersion"] = "kops.k8s.io/v1alpha2".into();
            documents.push(serde_yaml_ng::to_string(&value).unwrap());
        }
        let file = fleet.dir.path().join("case.yaml");
        std::fs::write(&file, documents.join("---\n")).unwrap();
        let out = fleet
            .kopsrs()
            .args(["manifests", "check"])
            .arg(&crd_file)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            entry.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(
        checked > 20,
        "only {checked} conformance specs found under {}",
        cases.display()
    );
    // The check can fail: a count that is not an integer is refused, naming the field.
    let file = fleet.dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: nodes\n  namespace: team\nspec:\n  role: Node\n  minSize: two\n",
    )
    .unwrap();
    let out = fleet
        .kopsrs()
        .args(["manifests", "check"])
        .arg(&crd_file)
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success() && said.contains("minSize"), "{said}");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Three clusters in two namespaces (neighbouring names) applied with kubectl reach Ready;
/// the CLI then plans them empty on the same store, refuses `update --yes` on them without
/// --force, and `kubectl get` shows the columns; each apply left an Event.
#[test]
fn clusters_from_kubectl_apply_reach_ready_and_replan_empty() {
    let mut fleet = Fleet::new();
    let quiet = [("kopsrs.io/quiet-period", "0s")];
    fleet.apply_cluster("team-a", "a.example.com", &quiet);
    fleet.apply_cluster_prefixed("team-a", "aa.example.com", &quiet, Some("aa"));
    // b one minor behind the channel: `upgrade cluster --yes` has something to write.
    let b = fleet
        .resources_prefixed("team-b", "b.example.com", &quiet, None)
        .replace("kubernetesVersion: v1.34.1", "kubernetesVersion: v1.33.5");
    assert!(b.contains("kubernetesVersion: v1.33.5"), "{b}");
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n";
    fleet.kubectl_ok(&["apply", "-f", "-"], Some(ns));
    fleet.kubectl_ok(&["apply", "-f", "-"], Some(&b));
    let port = support::free_port().to_string();
    let address = format!("127.0.0.1:{port}");
    fleet.start_controller(&["--lease-name=", "--metrics-address", &address]);
    for (ns, name) in [
        ("team-a", "a.example.com"),
        ("team-a", "aa.example.com"),
        ("team-b", "b.example.com"),
    ] {
        let status = fleet.wait_condition(ns, name, "Ready", "True", Some("Applied"), 0);
        assert_eq!(status["observedGeneration"], 1, "{status:#}");
        assert!(
            status["plan"]["hash"]
                .as_str()
                .unwrap()
                .starts_with("sha256:"),
            "{status:#}"
        );
        assert_eq!(fleet.vpcs(name), 1, "{name}");
        let (code, plan) = support::detailed_plan(fleet.kopsrs(), name);
        assert_eq!(code, 0, "{name} does not plan empty with the CLI:\n{plan}");
        let events = fleet.kubectl_ok(&["get", "events", "-n", ns, "-o", "json"], None);
        let events: Value = serde_json::from_str(&events).unwrap();
        assert!(
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["reason"] == "Applied"
                    && e["involvedObject"]["name"] == name
                    && e["involvedObject"]["kind"] == "Cluster"),
            "no Applied event for {name}: {events:#}"
        );
    }
    // The store records the manager: the CLI's apply is refused, with the way out.
    let stderr = refused(fleet.cli(&["update", "cluster", "a.example.com", "--yes"]));
    assert!(
        stderr.contains("managed by kopsrs controller from Cluster team-a/a.example.com")
            && stderr.contains("--force"),
        "{stderr}"
    );
    ok(fleet.cli(&[
        "update",
        "cluster",
        "a.example.com",
        "--yes",
        "--force",
        "--create-kube-config=false",
    ]));
    // Every CLI verb that writes the spec is refused: the controller writes the resource's
    // spec over the store's, so the change would be lost. Nothing is written.
    let spec_before = ok(fleet.cli(&["get", "cluster", "a.example.com", "-o", "yaml"]));
    for args in [
        &[
            "edit",
            "cluster",
            "a.example.com",
            "--set",
            "spec.kubernetesVersion=1.34.2",
        ][..],
        &[
            "create",
            "instancegroup",
            "extra",
            "--name",
            "a.example.com",
            "--role",
            "Node",
        ],
        &[
            "delete",
            "instancegroup",
            "nodes-eu-west-1a",
            "--name",
            "a.example.com",
            "--yes",
        ],
    ] {
        let stderr = refused(fleet.cli(args));
        assert!(
            stderr.contains("managed by kopsrs controller from Cluster team-a/a.example.com")
                && stderr.contains("controller release a.example.com"),
            "{args:?}: {stderr}"
        );
    }
    let replaced = fleet.dir.path().join("replace.yaml");
    std::fs::write(&replaced, &spec_before).unwrap();
    let stderr = refused(fleet.cli(&["replace", "-f", replaced.to_str().unwrap()]));
    assert!(stderr.contains("replace refused"), "{stderr}");
    assert_eq!(
        ok(fleet.cli(&["get", "cluster", "a.example.com", "-o", "yaml"])),
        spec_before
    );
    // An upgrade writes the spec too: refused, the version unchanged.
    let b_before = ok(fleet.cli(&["get", "cluster", "b.example.com", "-o", "yaml"]));
    assert!(
        b_before.contains("kubernetesVersion: v1.33.5"),
        "{b_before}"
    );
    let stderr = refused(fleet.cli(&["upgrade", "cluster", "b.example.com", "--yes"]));
    assert!(
        stderr.contains("upgrade cluster --yes refused")
            && stderr.contains("controller release b.example.com"),
        "{stderr}"
    );
    assert_eq!(
        ok(fleet.cli(&["get", "cluster", "b.example.com", "-o", "yaml"])),
        b_before
    );
    // Deleting it from the CLI is refused too: that is the resource's deletion policy.
    let stderr = refused(fleet.cli(&["delete", "cluster", "aa.example.com", "--yes"]));
    assert!(
        stderr.contains("kopsrs.io/deletion-policy") && stderr.contains("controller release"),
        "{stderr}"
    );
    assert_eq!(fleet.vpcs("aa.example.com"), 1);
    let table = fleet.kubectl_ok(&["get", "clusters.kops.k8s.io", "-A"], None);
    assert!(
        table.contains("READY") && table.contains("VERSION") && table.contains("v1.34"),
        "{table}"
    );
    let groups = fleet.kubectl_ok(&["get", "ig", "-n", "team-a"], None);
    assert!(
        groups.contains("ROLE") && groups.contains("Master"),
        "{groups}"
    );
    // The probes and the metrics.
    let get = |path: &str| {
        let out = Command::new("curl")
            .args(["-sSf", &format!("http://{address}{path}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(get("/readyz"), "ok\n");
    assert_eq!(get("/healthz"), "ok\n");
    let metrics = get("/metrics");
    assert!(
        metrics.contains("kopsrs_controller_reconciles_total{outcome=\"applied\"} 3"),
        "{metrics}"
    );
    // AWS operations by service and operation, as the SDK sent them.
    let calls = aws_calls(&metrics);
    assert!(calls.values().sum::<f64>() > 30.0, "{metrics}");
    assert!(
        calls.contains_key("EC2:DescribeVpcs") && calls.contains_key("EC2:CreateVpc"),
        "{metrics}"
    );
}

/// `kopsrs_controller_aws_calls_total` by `service:operation`.
fn aws_calls(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let label = |line: &str, key: &str| {
        let start = line.find(&format!("{key}=\""))? + key.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_string())
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("kopsrs_controller_aws_calls_total{"))
        .filter_map(|l| {
            let (_, value) = l.rsplit_once(' ')?;
            Some((
                format!("{}:{}", label(l, "service")?, label(l, "operation")?),
                value.parse().ok()?,
            ))
        })
        .collect()
}

/// The clusters of one account and region share discovery's reads: over resync cycles with
/// nothing to change, fewer VPC reads are made than plans, and each cluster still plans
/// empty with the CLI (neighbouring names see only their own resources); the queues' tags and
/// the load balancers' listeners are read for all clusters at once. Drift made outside the
/// controller is still found at resync (`drift_is_repaired_at_resync`).
#[test]
fn clusters_of_one_account_share_their_reads() {
    let mut fleet = Fleet::new();
    let quiet = [("kopsrs.io/quiet-period", "0s")];
    let names = ["s.example.com", "ss.example.com", "a.s.example.com"];
    fleet.apply_cluster("team-a", names[0], &quiet);
    fleet.apply_cluster_prefixed("team-a", names[1], &quiet, Some("ss"));
    fleet.apply_cluster("team-b", names[2], &quiet);
    let address = format!("127.0.0.1:{}", support::free_port());
    let n = fleet.start_controller(&[
        "--lease-name=",
        "--resync",
        "8s",
        "--shared-reads",
        "8s",
        "--metrics-address",
        &address,
    ]);
    for (i, name) in names.iter().enumerate() {
        let ns = if i == 2 { "team-b" } else { "team-a" };
        fleet.wait_condition(ns, name, "Ready", "True", Some("Applied"), n);
    }
    let metrics = || {
        let out = Command::new("curl")
            .args(["-sSf", &format!("http://{address}/metrics")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let plans = |m: &str| -> f64 {
        m.lines()
            .find_map(|l| {
                l.strip_prefix("kopsrs_controller_reconciles_total{outcome=\"applied\"} ")
            })
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let before = metrics();
    std::thread::sleep(Duration::from_secs(20));
    let after = metrics();
    let made = plans(&after) - plans(&before);
    let reads = aws_calls(&after)["EC2:DescribeVpcs"] - aws_calls(&before)["EC2:DescribeVpcs"];
    assert!(made >= 3.0, "no resync in 20 s: {after}\n{}", fleet.log(n));
    assert!(
        reads < made,
        "{reads} VPC reads for {made} plans: the reads are not shared\n{after}"
    );
    // The reads that took one call per cluster: the queues' tags come from one read of the
    // tagging API, and the listeners the fleet knows are read by ARN, one call for the three
    // load balancers in each snapshot (a snapshot reads the VPCs once).
    let op = |m: &str, operation: &str| -> f64 {
        aws_calls(m)
            .iter()
            .filter(|(k, _)| k.ends_with(&format!(":{operation}")))
            .map(|(_, v)| v)
            .sum()
    };
    std::thread::sleep(Duration::from_secs(20));
    let last = metrics();
    let snapshots = op(&last, "DescribeVpcs") - op(&after, "DescribeVpcs");
    let listeners = op(&last, "DescribeListeners") - op(&after, "DescribeListeners");
    let made = plans(&last) - plans(&after);
    assert!(made >= 3.0, "no resync in 20 s: {last}");
    assert!(
        listeners <= snapshots + 1.0,
        "{listeners} listener reads for {snapshots} snapshots and {made} plans\n{last}"
    );
    assert_eq!(op(&last, "ListQueueTags"), 0.0, "{last}");
    assert!(op(&last, "GetResources") >= 1.0, "{last}");
    for name in names {
        let (code, plan) = support::detailed_plan(fleet.kopsrs(), name);
        assert_eq!(code, 0, "{name}:\n{plan}");
        assert_eq!(fleet.vpcs(name), 1, "{name}");
    }
}

/// A paused cluster makes no AWS call; a spec that does not validate gets a condition naming
/// the field and makes no AWS call either.
#[test]
fn paused_and_invalid_clusters_make_no_aws_call() {
    let mut fleet = Fleet::new();
    fleet.apply_cluster(
        "team-a",
        "paused.example.com",
        &[
            ("kopsrs.io/paused", "true"),
            ("kopsrs.io/quiet-period", "0s"),
        ],
    );
    let bad = fleet
        .resources_prefixed(
            "team-a",
            "bad.example.com",
            &[("kopsrs.io/quiet-period", "0s")],
            Some("bad"),
        )
        .replace("kubernetesVersion: v1.34.1", "kubernetesVersion: banana");
    assert!(bad.contains("banana"));
    fleet.kubectl_ok(&["apply", "-f", "-"], Some(&bad));
    // A store outside the controller's: refused before any call.
    let elsewhere = fleet
        .resources_prefixed("team-a", "elsewhere.example.com", &[("kopsrs.io/quiet-period", "0s")], Some("elsewhere"))
        .replace("  dnsZone: example.com", "  configBase: s3://other-bucket/clusters/elsewhere.example.com\n  dnsZone: example.com");
    assert!(elsewhere.contains("other-bucket"));
    fleet.kubectl_ok(&["apply", "-f", "-"], Some(&elsewhere));
    fleet.moto.faults(serde_json::json!({}));
    fleet.start_controller(&["--lease-name="]);
    let paused = fleet.wait_condition("team-a", "paused.example.com", "Paused", "True", None, 0);
    assert_eq!(paused["observedGeneration"], 1);
    let bad = fleet.wait_condition(
        "team-a",
        "bad.example.com",
        "Degraded",
        "True",
        Some("InvalidSpec"),
        0,
    );
    let message = condition(&bad, "Degraded")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("spec.kubernetesVersion") && message.contains("banana"),
        "{message}"
    );
    let elsewhere = fleet.wait_condition(
        "team-a",
        "elsewhere.example.com",
        "Degraded",
        "True",
        Some("InvalidSpec"),
        0,
    );
    assert!(
        elsewhere
            .to_string()
            .contains("outside the controller's state store"),
        "{elsewhere:#}"
    );
    // Let the controller run on a little: still nothing asked of AWS.
    std::thread::sleep(Duration::from_secs(2));
    let calls = fleet.moto.calls();
    assert_eq!(calls["total"], 0, "{calls:#}");
    let out = fleet.kopsrs().args(["get", "clusters"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listed.contains("paused.example.com") && !listed.contains("bad.example.com"),
        "{listed}"
    );
    // Fixed, it is applied, and its conditions recover.
    fleet.kubectl_ok(
        &[
            "patch",
            "clusters.kops.k8s.io",
            "bad.example.com",
            "-n",
            "team-a",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"kubernetesVersion":"v1.34.1"}}"#,
        ],
        None,
    );
    let fixed = fleet.wait_condition(
        "team-a",
        "bad.example.com",
        "Ready",
        "True",
        Some("Applied"),
        0,
    );
    let degraded = condition(&fixed, "Degraded");
    assert_eq!(degraded["status"], "False", "{fixed:#}");
    assert_eq!(fixed["observedGeneration"], 2, "{fixed:#}");
}

/// Plan mode: the plan waits in status; a wrong hash is refused; the hash shown is applied.
#[test]
fn plan_mode_applies_only_the_approved_plan() {
    let mut fleet = Fleet::new();
    let name = "planned.example.com";
    fleet.apply_cluster(
        "team-a",
        name,
        &[("kopsrs.io/mode", "plan"), ("kopsrs.io/quiet-period", "0s")],
    );
    fleet.start_controller(&["--lease-name="]);
    let status = fleet.wait_condition(
        "team-a",
        name,
        "Applied",
        "False",
        Some("AwaitingApproval"),
        0,
    );
    assert!(status["plan"]["add"].as_u64().unwrap() > 10, "{status:#}");
    assert_eq!(fleet.vpcs(name), 0);
    let hash = status["plan"]["hash"].as_str().unwrap().to_string();
    fleet.kubectl_ok(
        &[
            "annotate",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "team-a",
            "kopsrs.io/approve-plan=sha256:0000",
        ],
        None,
    );
    fleet.wait_condition("team-a", name, "Applied", "False", Some("ApprovalStale"), 0);
    assert_eq!(fleet.vpcs(name), 0);
    // A plan waiting for approval wrote nothing to the store, where nodes and the CLI read
    // the spec: only the controller's record of the cluster is there.
    let stored = |key: &str| {
        fleet.moto.python(&format!(
            "import botocore\ntry:\n    print(aws('s3').get_object(Bucket='state', Key='clusters/{name}/{key}')['Body'].read().decode())\nexcept botocore.exceptions.ClientError:\n    print('absent')"
        ))
    };
    assert_eq!(stored("config").trim(), "absent");
    assert_eq!(stored("instancegroup/nodes-eu-west-1a").trim(), "absent");
    fleet.kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "team-a",
            &format!("kopsrs.io/approve-plan={hash}"),
        ],
        None,
    );
    fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), 0);
    assert_eq!(fleet.vpcs(name), 1);
    assert!(stored("instancegroup/nodes-eu-west-1a").contains("maxSize: 1"));
    // An edit waits for a new approval (the one still annotated is spent), and the store
    // keeps the applied spec meanwhile.
    fleet.kubectl_ok(
        &[
            "patch",
            "ig",
            "nodes-eu-west-1a",
            "-n",
            "team-a",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"maxSize":4}}"#,
        ],
        None,
    );
    fleet.wait_condition("team-a", name, "Applied", "False", Some("ApprovalStale"), 0);
    let status = fleet.status("team-a", name);
    assert_eq!(status["plan"]["change"], 1, "{status:#}");
    let group = stored("instancegroup/nodes-eu-west-1a");
    assert!(
        group.contains("maxSize: 1") && !group.contains("maxSize: 4"),
        "{group}"
    );
}

/// Deleting a Cluster: Retain (the default) lets the resource go and hands the cluster back
/// to the CLI; Delete deletes the cloud and the state first. A neighbouring cluster stays.
#[test]
fn deletion_policies() {
    let mut fleet = Fleet::new();
    let quiet = ("kopsrs.io/quiet-period", "0s");
    fleet.apply_cluster("team-a", "kept.example.com", &[quiet]);
    fleet.apply_cluster_prefixed(
        "team-a",
        "gone.example.com",
        &[quiet, ("kopsrs.io/deletion-policy", "Delete")],
        Some("gone"),
    );
    fleet.apply_cluster_prefixed("team-a", "gone2.example.com", &[quiet], Some("gone2"));
    // A plan never approved: claimed, nothing written, nothing in the cloud.
    fleet.apply_cluster_prefixed(
        "team-a",
        "unapproved.example.com",
        &[
            quiet,
            ("kopsrs.io/deletion-policy", "Delete"),
            ("kopsrs.io/mode", "plan"),
        ],
        Some("unapproved"),
    );
    fleet.start_controller(&["--lease-name="]);
    fleet.wait_condition(
        "team-a",
        "unapproved.example.com",
        "Applied",
        "False",
        Some("AwaitingApproval"),
        0,
    );
    for name in ["kept.example.com", "gone.example.com", "gone2.example.com"] {
        fleet.wait_condition("team-a", name, "Ready", "True", None, 0);
        let finalizers = fleet.kubectl_ok(
            &[
                "get",
                "clusters.kops.k8s.io",
                name,
                "-n",
                "team-a",
                "-o",
                "jsonpath={.metadata.finalizers}",
            ],
            None,
        );
        assert!(
            finalizers.contains("kopsrs.io/deletion-policy"),
            "{finalizers}"
        );
    }
    fleet.kubectl_ok(
        &[
            "delete",
            "clusters.kops.k8s.io",
            "kept.example.com",
            "gone.example.com",
            "unapproved.example.com",
            "-n",
            "team-a",
            "--timeout=120s",
        ],
        None,
    );
    let left = fleet.kubectl_ok(
        &["get", "clusters.kops.k8s.io", "-n", "team-a", "-o", "name"],
        None,
    );
    assert_eq!(
        left.trim(),
        "cluster.kops.k8s.io/gone2.example.com",
        "{left}"
    );
    assert_eq!(fleet.vpcs("kept.example.com"), 1);
    assert_eq!(fleet.vpcs("gone.example.com"), 0, "{}", fleet.log(0));
    assert_eq!(fleet.vpcs("gone2.example.com"), 1);
    assert_eq!(fleet.vpcs("unapproved.example.com"), 0);
    let record = fleet.moto.python(
        "import botocore\ntry:\n    aws('s3').head_object(Bucket='state', Key='clusters/unapproved.example.com/kopsrs-controller.yaml')\n    print('present')\nexcept botocore.exceptions.ClientError:\n    print('absent')",
    );
    assert_eq!(record.trim(), "absent", "the claim was not released");
    // Retained: the CLI manages it again.
    let (code, plan) = support::detailed_plan(fleet.kopsrs(), "kept.example.com");
    assert_eq!(code, 0, "{plan}");
    ok(fleet.cli(&[
        "update",
        "cluster",
        "kept.example.com",
        "--yes",
        "--create-kube-config=false",
    ]));
    let out = fleet
        .cli(&["get", "clusters", "-o", "json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("kept.example.com") && !listed.contains("\"gone.example.com\""),
        "{listed}"
    );
}

/// Two replicas: one leads through the Lease; killed with SIGKILL mid-apply, the other takes
/// over once the Lease runs out and converges with no duplicate resources.
#[test]
fn a_killed_leader_is_replaced_without_duplicates() {
    let mut fleet = Fleet::new();
    let name = "ha.example.com";
    fleet.apply_cluster("team-a", name, &[("kopsrs.io/quiet-period", "0s")]);
    let lease = [
        "--lease-namespace",
        "kopsrs-system",
        "--lease-duration",
        "4s",
    ];
    // Every AWS call slowed, so the kill lands while the apply runs.
    fleet.moto.faults(serde_json::json!({"latency_ms": 100}));
    let first = fleet.start_controller(&[&lease[..], &["--identity", "first"]].concat());
    // The first replica leads before the second starts.
    let started = Instant::now();
    while !fleet.log(first).contains("first leads now") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            fleet.log(first)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = fleet.start_controller(&[&lease[..], &["--identity", "second"]].concat());
    // Mid-apply: once the VPC exists.
    let started = Instant::now();
    while fleet.vpcs(name) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            fleet.log(first)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet.controllers[first].kill().unwrap();
    fleet.controllers[first].wait().unwrap();
    let ready = condition(&fleet.status("team-a", name), "Ready")["status"] == "True";
    assert!(
        !ready,
        "the apply had finished before the kill: {}",
        fleet.log(first)
    );
    let holder = fleet.kubectl_ok(
        &[
            "get",
            "lease",
            "kopsrs-controller",
            "-n",
            "kopsrs-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    assert_eq!(holder, "first");
    let started = Instant::now();
    while !fleet.log(second).contains("second leads now") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            fleet.log(second)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), second);
    assert_eq!(fleet.vpcs(name), 1);
    let (code, plan) = support::detailed_plan(fleet.kopsrs(), name);
    assert_eq!(code, 0, "{plan}");
    // No duplicate of anything the cluster owns: one auto scaling group per group, and in
    // every EC2 kind no two owned resources with one Name.
    let groups = fleet.moto.python(&format!(
        "print(sorted(g['AutoScalingGroupName'] for g in aws('autoscaling', 'eu-west-1').describe_auto_scaling_groups()['AutoScalingGroups'] if g['AutoScalingGroupName'].endswith('.{name}')))"
    ));
    assert_eq!(
        groups.trim(),
        format!("['control-plane-eu-west-1a.masters.{name}', 'nodes-eu-west-1a.{name}']")
    );
    let duplicates = fleet.moto.python(&format!(
        r#"
import collections
ec2 = aws('ec2', 'eu-west-1')
tag = 'kubernetes.io/cluster/{name}'
kinds = {{
    'vpcs': ec2.describe_vpcs()['Vpcs'],
    'subnets': ec2.describe_subnets()['Subnets'],
    'route tables': ec2.describe_route_tables()['RouteTables'],
    'internet gateways': ec2.describe_internet_gateways()['InternetGateways'],
    'security groups': ec2.describe_security_groups()['SecurityGroups'],
    'launch templates': ec2.describe_launch_templates()['LaunchTemplates'],
    'volumes': ec2.describe_volumes()['Volumes'],
    'addresses': ec2.describe_addresses()['Addresses'],
    'nat gateways': [n for n in ec2.describe_nat_gateways()['NatGateways'] if n['State'] not in ('deleted', 'deleting')],
}}
found = {{}}
for kind, items in kinds.items():
    names = [dict((t['Key'], t['Value']) for t in i.get('Tags', [])) for i in items]
    owned = [n.get('Name', '?') for n in names if n.get(tag) == 'owned']
    found[kind] = (len(owned), sorted(n for n, c in collections.Counter(owned).items() if c > 1))
print(json.dumps(found, sort_keys=True))
"#
    ));
    let found: Value = serde_json::from_str(duplicates.trim()).unwrap();
    for (kind, counted) in found.as_object().unwrap() {
        assert_eq!(
            counted[1],
            serde_json::json!([]),
            "duplicate {kind}: {found}"
        );
    }
    assert!(
        found["vpcs"][0] == 1 && found["security groups"][0].as_u64() >= Some(2),
        "{found}"
    );
}

/// A burst of ten edits within the quiet period gives one apply, of the last edit.
#[test]
fn a_burst_of_edits_gives_one_apply() {
    let mut fleet = Fleet::new();
    let name = "burst.example.com";
    fleet.apply_cluster("team-a", name, &[("kopsrs.io/quiet-period", "4s")]);
    fleet.start_controller(&["--lease-name="]);
    for max in 2..12 {
        fleet.kubectl_ok(
            &[
                "patch",
                "ig",
                "nodes-eu-west-1a",
                "-n",
                "team-a",
                "--type",
                "merge",
                "-p",
                &format!("{{\"spec\":{{\"maxSize\":{max}}}}}"),
            ],
            None,
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(fleet.vpcs(name), 0, "applied within the quiet period");
    fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), 0);
    let events = fleet.kubectl_ok(&["get", "events", "-n", "team-a", "-o", "json"], None);
    let events: Value = serde_json::from_str(&events).unwrap();
    let applied = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "Applied" && e["involvedObject"]["name"] == name)
        .count();
    assert_eq!(applied, 1, "{events:#}");
    let max = fleet.moto.python(&format!(
        "print(aws('autoscaling', 'eu-west-1').describe_auto_scaling_groups(AutoScalingGroupNames=['nodes-eu-west-1a.{name}'])['AutoScalingGroups'][0]['MaxSize'])"
    ));
    assert_eq!(max.trim(), "11");
}

/// A cluster the CLI made and applied, adopted: the controller's reconcile changes nothing in
/// the cloud; released, the CLI manages it again and its resources are gone.
#[test]
fn adopt_then_release_changes_nothing_in_the_cloud() {
    let mut fleet = Fleet::new();
    let name = "cli.example.com";
    fleet.cli_cluster(None, name);
    // A Cluster resource of the same name is not enough to take it over.
    fleet.apply_cluster(
        "squatter",
        name,
        &[
            ("kopsrs.io/quiet-period", "0s"),
            ("kopsrs.io/deletion-policy", "Delete"),
        ],
    );
    fleet.start_controller(&["--lease-name="]);
    let status = fleet.wait_condition("squatter", name, "Applied", "False", Some("NotManaged"), 0);
    assert!(
        status.to_string().contains("the CLI manages it"),
        "{status:#}"
    );
    fleet.kubectl_ok(
        &[
            "delete",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "squatter",
            "--timeout=30s",
        ],
        None,
    );
    // Its Delete policy did not touch the cluster it never managed.
    assert_eq!(fleet.vpcs(name), 1);
    // Adopted.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n";
    fleet.kubectl_ok(&["apply", "-f", "-"], Some(ns));
    fleet.moto.faults(serde_json::json!({}));
    let mut adopt = fleet.kopsrs();
    adopt
        .args(["controller", "adopt", name, "-n", "team-a", "--kubeconfig"])
        .arg(&fleet.kube.kubeconfig);
    ok(adopt);
    fleet.kubectl_ok(
        &[
            "annotate",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "team-a",
            "kopsrs.io/quiet-period=0s",
        ],
        None,
    );
    let status = fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), 0);
    assert_eq!(status["plan"]["changes"], 0, "{status:#}");
    let calls = fleet.moto.calls();
    let by_action = calls["by_action"].as_object().unwrap();
    let writes: Vec<&String> = by_action
        .keys()
        .filter(|a| {
            [
                "Create",
                "Run",
                "Delete",
                "Modify",
                "Update",
                "Put",
                "Attach",
                "Authorize",
            ]
            .iter()
            .any(|p| a.contains(p))
        })
        .filter(|a| !a.contains("PutObject"))
        .collect();
    assert!(
        writes.is_empty(),
        "the adoption changed the cloud: {writes:?}"
    );
    let groups = fleet.kubectl_ok(&["get", "ig", "-n", "team-a", "-o", "name"], None);
    assert_eq!(groups.lines().count(), 2, "{groups}");
    // Released.
    let mut release = fleet.kopsrs();
    release
        .args(["controller", "release", name, "--kubeconfig"])
        .arg(&fleet.kube.kubeconfig);
    ok(release);
    let left = fleet.kubectl_ok(
        &[
            "get",
            "clusters.kops.k8s.io,ig",
            "-n",
            "team-a",
            "-o",
            "name",
        ],
        None,
    );
    assert!(left.trim().is_empty(), "{left}");
    let (code, plan) = support::detailed_plan(fleet.kopsrs(), name);
    assert_eq!(code, 0, "{plan}");
    ok(fleet.cli(&[
        "update",
        "cluster",
        name,
        "--yes",
        "--create-kube-config=false",
    ]));
}

/// A namespace that names an IAM role gets its clusters' cloud read and written as that
/// role. Under moto's IAM enforcement the controller's own identity may only use the state
/// store and assume roles: the cluster in the namespace with the role is planned (every
/// kind's discovery: EC2, IAM, ELB, Route 53, as the role), the other is refused, naming the
/// refusal. Plan mode, because moto refuses the signature of some of the SDK's signed writes
/// once it enforces IAM (noted in tests/support); the role's session is checked in moto's
/// own records, external ID included.
#[test]
fn a_namespace_role_is_assumed_for_the_cloud() {
    let mut fleet = Fleet::new();
    // (moto matches a trust policy's principal literally: the user, not the account's root.)
    let keys = fleet.moto.python(
        "i=aws('iam')\n\
         i.create_user(UserName='controller')\n\
         i.create_role(RoleName='team-a-clusters', AssumeRolePolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'AWS': 'arn:aws:iam::123456789012:user/controller'}, 'Action': 'sts:AssumeRole', 'Condition': {'StringEquals': {'sts:ExternalId': 'team-a-secret'}}}]}))\n\
         i.put_role_policy(RoleName='team-a-clusters', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
         i.put_user_policy(UserName='controller', PolicyName='store-and-roles', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['s3:*', 'sts:AssumeRole', 'sts:GetCallerIdentity'], 'Resource': '*'}]}))\n\
         k=i.create_access_key(UserName='controller')['AccessKey']\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])",
    );
    let (key, secret) = keys.trim().split_once(' ').unwrap();
    fleet.moto.enforce_iam();
    let intent = [("kopsrs.io/quiet-period", "0s"), ("kopsrs.io/mode", "plan")];
    fleet.apply_cluster("team-a", "a.example.com", &intent);
    fleet.apply_cluster("team-b", "b.example.com", &intent);
    fleet.kubectl_ok(
        &[
            "annotate",
            "namespace",
            "team-a",
            "kopsrs.io/aws-role-arn=arn:aws:iam::123456789012:role/team-a-clusters",
            "kopsrs.io/aws-external-id=team-a-secret",
        ],
        None,
    );
    fleet.start_controller_as(&["--lease-name="], Some((key, secret)));
    let planned = fleet.wait_condition(
        "team-a",
        "a.example.com",
        "Applied",
        "False",
        Some("AwaitingApproval"),
        0,
    );
    assert!(planned["plan"]["add"].as_u64().unwrap() > 10, "{planned:#}");
    let failed = fleet.wait_condition(
        "team-b",
        "b.example.com",
        "Degraded",
        "True",
        Some("ReconcileFailed"),
        0,
    );
    let message = failed.to_string();
    assert!(
        message.contains("not authorized") || message.contains("AccessDenied"),
        "{failed:#}"
    );
    let events = fleet.kubectl_ok(&["get", "events", "-n", "team-b", "-o", "json"], None);
    assert!(
        events.contains("\"ReconcileFailed\"") && events.contains("\"Warning\""),
        "{events}"
    );
    let sessions = fleet.moto.python(&format!(
        "import urllib.request\n\
         d=json.load(urllib.request.urlopen('{}/moto-api/data.json'))\n\
         print(json.dumps(sorted({{(r['role_arn'], r['session_name'], r['external_id']) for r in d['sts']['AssumedRole']}})))",
        fleet.moto.endpoint
    ));
    assert_eq!(
        sessions.trim(),
        r#"[["arn:aws:iam::123456789012:role/team-a-clusters", "kopsrs-team-a", "team-a-secret"]]"#
    );
}

/// Drift: a resource of the cluster deleted behind the controller's back is made again at
/// the next resync, with no edit to the resources.
#[test]
fn drift_is_repaired_at_resync() {
    let mut fleet = Fleet::new();
    let name = "drift.example.com";
    fleet.apply_cluster("team-a", name, &[("kopsrs.io/quiet-period", "0s")]);
    let n = fleet.start_controller(&["--lease-name=", "--resync", "3s"]);
    fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), n);
    let group = format!("nodes-eu-west-1a.{name}");
    fleet.moto.python(&format!(
        "aws('autoscaling').delete_auto_scaling_group(AutoScalingGroupName='{group}', ForceDelete=True)"
    ));
    let count = || {
        fleet
            .moto
            .python(&format!(
                "print(len(aws('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=['{group}'])['AutoScalingGroups']))"
            ))
            .trim()
            .to_string()
    };
    assert_eq!(count(), "0");
    let started = Instant::now();
    while count() != "1" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            fleet.log(n)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, plan) = support::detailed_plan(fleet.kopsrs(), name);
    assert_eq!(code, 0, "{plan}");
}

/// A cluster of the same name made elsewhere (another store) is not taken over: the first
/// plan finds its resources, the claim is withdrawn, nothing changes; and with leader
/// election, a cluster lock another replica left is taken over, a person's is not.
#[test]
fn clusters_and_locks_of_others_are_left_alone() {
    let mut fleet = Fleet::new();
    // Made by the CLI in another store of the same bucket.
    let other = "theirs.example.com";
    fleet.cli_cluster(Some("s3://state/elsewhere"), other);
    let quiet = [("kopsrs.io/quiet-period", "0s")];
    fleet.apply_cluster_prefixed("team-a", other, &quiet, Some("theirs"));
    // Two clusters whose locks are held: one by a replica that is gone, one by a person.
    fleet.apply_cluster_prefixed("team-a", "locked.example.com", &quiet, Some("locked"));
    fleet.apply_cluster_prefixed("team-a", "held.example.com", &quiet, Some("held"));
    for (cluster, owner, host) in [
        (
            "locked.example.com",
            "kopsrs-controller/gone-replica",
            "pod-gone",
        ),
        ("held.example.com", "alice", "laptop"),
    ] {
        fleet.moto.python(&format!(
            "import time\n\
             aws('s3').put_object(Bucket='state', Key='clusters/{cluster}/kopsrs.lock', Body=json.dumps({{'id': 'x-1', 'owner': '{owner}', 'host': '{host}', 'command': 'update cluster --yes', 'created': int(time.time()), 'pid': 4242}}))"
        ));
    }
    let n = fleet.start_controller(&["--lease-namespace", "kopsrs-system", "--identity", "leader"]);
    let refused = fleet.wait_condition("team-a", other, "Applied", "False", Some("NotManaged"), n);
    assert!(
        refused.to_string().contains("exist in the cloud already"),
        "{refused:#}"
    );
    assert_eq!(fleet.vpcs(other), 1);
    let (code, plan) = {
        let mut c = fleet.kopsrs();
        c.env("KOPS_STATE_STORE", "s3://state/elsewhere");
        support::detailed_plan(c, other)
    };
    assert_eq!(code, 0, "the cluster made elsewhere changed:\n{plan}");
    let out = fleet
        .kopsrs()
        .args(["get", "clusters", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(other),
        "the claim was not withdrawn"
    );
    fleet.wait_condition(
        "team-a",
        "locked.example.com",
        "Ready",
        "True",
        Some("Applied"),
        n,
    );
    let events = fleet.kubectl_ok(&["get", "events", "-n", "team-a", "-o", "json"], None);
    assert!(
        events.contains("LockTakenOver") && events.contains("gone-replica"),
        "{events}"
    );
    let held = fleet.wait_condition(
        "team-a",
        "held.example.com",
        "Degraded",
        "True",
        Some("ReconcileFailed"),
        n,
    );
    assert!(held.to_string().contains("alice"), "{held:#}");
    assert_eq!(fleet.vpcs("held.example.com"), 0);
}

/// `kopsrs.io/auto-roll`: an apply that changes the launch templates is followed by the
/// rolling-update driver (the groups' settings, every gate), which replaces each instance
/// that ran the older version, `Rolling` and Events saying so; `kopsrs.io/roll` with a new
/// token rolls again (nothing left to replace), once per token. A roll shows its progress in
/// status, and a controller killed during it is followed by one that finishes it. The
/// workload cluster's API is the fake, whose node simulator turns every running instance
/// into a Node.
#[test]
fn auto_roll_and_roll_tokens_replace_outdated_instances() {
    let mut fleet = Fleet::new();
    let name = "rolled.example.com";
    let workload_dir = tempfile::tempdir().unwrap();
    let workload = FakeKube::start(
        workload_dir.path(),
        &fleet.moto,
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
    fleet.apply_cluster(
        "team-a",
        name,
        &[
            ("kopsrs.io/quiet-period", "0s"),
            ("kopsrs.io/auto-roll", "true"),
        ],
    );
    let n = fleet.start_controller(&[
        "--lease-name=",
        "--workload-kubeconfig",
        workload.kubeconfig.to_str().unwrap(),
    ]);
    let status = fleet.wait_condition("team-a", name, "Ready", "True", Some("Applied"), n);
    // A new cluster's first apply has nothing to roll.
    assert!(status["roll"].is_null(), "{status:#}");
    let instances = |fleet: &Fleet| -> Vec<String> {
        let out = fleet.moto.python(&format!(
            "print(json.dumps(sorted(i['InstanceId'] for r in aws('ec2', 'eu-west-1').describe_instances(Filters=[{{'Name': 'tag:KubernetesCluster', 'Values': ['{name}']}}, {{'Name': 'instance-state-name', 'Values': ['running']}}])['Reservations'] for i in r['Instances'])))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    };
    let started = Instant::now();
    while instances(&fleet).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            fleet.log(n)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let before = instances(&fleet);
    // A change of the instances' tags: a new launch template version for every group.
    fleet.kubectl_ok(
        &[
            "patch",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "team-a",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"cloudLabels":{"rollout":"2"}}}"#,
        ],
        None,
    );
    // The roll shows its progress in status while it runs.
    let started = Instant::now();
    loop {
        let status = fleet.status("team-a", name);
        let progress = status["rolling"]["progress"].as_str().unwrap_or_default();
        if !progress.is_empty() && progress != "starting" {
            assert_eq!(
                condition(&status, "Rolling")["status"],
                "True",
                "{status:#}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {status:#}\n{}",
            fleet.log(n)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The controller killed during the roll: the next one (a leader, which takes over the
    // lock the killed one held) goes on with the roll, with no new token and no change.
    fleet.controllers[n].kill().unwrap();
    fleet.controllers[n].wait().unwrap();
    let n = fleet.start_controller(&[
        "--workload-kubeconfig",
        workload.kubeconfig.to_str().unwrap(),
    ]);
    let status = fleet.wait_condition("team-a", name, "Rolling", "False", None, n);
    let rolling = condition(&status, "Rolling");
    assert_eq!(
        rolling["reason"],
        "RollSucceeded",
        "{status:#}\n{}",
        fleet.log(n)
    );
    assert_eq!(status["roll"]["result"], "Succeeded", "{status:#}");
    assert!(status["rolling"].is_null(), "{status:#}");
    let after = instances(&fleet);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|i| !before.contains(i)),
        "not every instance was replaced: {before:?} -> {after:?}"
    );
    let events = fleet.kubectl_ok(&["get", "events", "-n", "team-a", "-o", "json"], None);
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"RollStarted") && reasons.contains(&"RollSucceeded"),
        "{reasons:?}"
    );
    let resumed = events["items"].as_array().unwrap().iter().any(|e| {
        e["reason"] == "RollStarted"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("did not finish"))
    });
    assert!(
        resumed,
        "the second controller did not go on with the roll: {events:#}"
    );
    // A roll token: one roll per token, nothing left to replace.
    fleet.kubectl_ok(
        &[
            "annotate",
            "clusters.kops.k8s.io",
            name,
            "-n",
            "team-a",
            "kopsrs.io/roll=first",
        ],
        None,
    );
    let started = Instant::now();
    loop {
        let status = fleet.status("team-a", name);
        if status["roll"]["token"] == "first" {
            assert_eq!(status["roll"]["replaced"], 0, "{status:#}");
            assert_eq!(status["roll"]["result"], "Succeeded", "{status:#}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{status:#}\n{}",
            fleet.log(n)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(instances(&fleet), after);
}
