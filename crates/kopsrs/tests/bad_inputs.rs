//! A corpus of bad inputs: each must fail with a message naming the field, the value and the
//! fix, exit non-zero, and leave the state store byte-for-byte unchanged.

mod support;

use support::{kopsrs, snapshot, CLUSTER};

/// A new cluster `bad.example.com` from the valid fixture, with `from` replaced by `to`.
fn variant(from: &str, to: &str) -> String {
    let text = CLUSTER.replace("test.example.com", "bad.example.com");
    assert!(text.contains(from), "fixture has no {from:?}");
    text.replacen(from, to, 1)
}

enum Input {
    /// `create -f` of this text.
    File(String),
    /// Arguments, run as they are.
    Args(Vec<&'static str>),
    /// `replace -f` of this text (the stored `test.example.com` replaced).
    Replace(String),
}

fn cases() -> Vec<(&'static str, Input, &'static str)> {
    use Input::*;
    let second_subnet = |cidr: &str, zone: &str| {
        variant("  etcdClusters:", &format!("  - name: second\n    zone: {zone}\n    type: Public\n    cidr: {cidr}\n  etcdClusters:"))
    };
    vec![
        ("malformed yaml", File("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: [unclosed\n".into()), "bad.yaml:"),
        ("unknown field", File(variant("  networking:", "  bogus: 1\n  networking:")), "spec.bogus: unknown field `bogus`"),
        ("misspelt field", File(variant("    cidr: 172", "    cidrr: 172")), "did you mean `cidr`?"),
        ("wrong type", File(variant("minSize: 2", "minSize: two")), "spec.minSize: invalid type"),
        ("wrong version", File(variant("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster", "apiVersion: kops.k8s.io/v1alpha3\nkind: Cluster")), "\"kops.k8s.io/v1alpha3\" is not supported"),
        ("missing kind", File("apiVersion: kops.k8s.io/v1alpha2\nmetadata:\n  name: x\n".into()), "kind: missing"),
        ("unknown kind", File(variant("kind: Cluster", "kind: Clusterr")), "\"Clusterr\" is not a kops kind"),
        ("bad cidr", File(variant("networkCIDR: 172.20.0.0/16", "networkCIDR: 172.20.0.0/33")), "spec.networkCIDR: 172.20.0.0/33 is not an IPv4 CIDR"),
        ("host bits", File(variant("networkCIDR: 172.20.0.0/16", "networkCIDR: 172.20.0.1/16")), "did you mean 172.20.0.0/16?"),
        ("subnet outside network", File(variant("cidr: 172.20.32.0/19", "cidr: 10.1.0.0/24")), "spec.subnets[0].cidr: 10.1.0.0/24 is not inside spec.networkCIDR 172.20.0.0/16"),
        ("overlapping subnets", File(second_subnet("172.20.32.0/20", "eu-west-1b")), "spec.subnets[1].cidr: 172.20.32.0/20 overlaps spec.subnets[0].cidr 172.20.32.0/19"),
        ("subnet overlaps services", File(variant("networkCIDR: 172.20.0.0/16", "networkCIDR: 172.20.0.0/16\n  serviceClusterIPRange: 172.20.32.0/24")), "overlaps spec.serviceClusterIPRange 172.20.32.0/24"),
        ("zones in two regions", File(second_subnet("172.20.64.0/19", "us-east-1a")), "us-east-1a is in region us-east-1, but spec.subnets[0].zone is in eu-west-1"),
        ("missing subnet", File(variant("  subnets:\n  - eu-west-1a\n---\napiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: nodes", "  subnets:\n  - nope\n---\napiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: nodes")), "spec.subnets[0]: \"nope\" is not a subnet of the cluster"),
        ("min over max", File(variant("minSize: 2", "minSize: 5")), "spec.minSize: 5 is greater than spec.maxSize 4"),
        ("bad version", File(variant("kubernetesVersion: v1.34.1", "kubernetesVersion: v1.34")), "\"v1.34\" is not a Kubernetes version"),
        ("old version", File(variant("kubernetesVersion: v1.34.1", "kubernetesVersion: v1.20.0")), "v1.20.0 is not supported"),
        ("bad cluster name", File(CLUSTER.replace("test.example.com", "Bad_Name.example.com")), "\"Bad_Name.example.com\" is not a fully-qualified DNS name"),
        ("duplicate groups", File(variant("name: nodes", "name: control-plane-eu-west-1a")), "instance group \"control-plane-eu-west-1a\" is defined twice"),
        ("duplicate subnets", File(second_subnet("172.20.64.0/19", "eu-west-1a").replace("name: second", "name: eu-west-1a")), "\"eu-west-1a\" is used by another subnet"),
        ("etcd member without group", File(variant("      instanceGroup: control-plane-eu-west-1a\n  - name: events", "      instanceGroup: control-plane-eu-west-1z\n  - name: events")), "\"control-plane-eu-west-1z\" is not an instance group of this cluster"),
        ("bad subnet type", File(variant("type: Public", "type: Public2")), "spec.subnets[0].type: \"Public2\" is not a subnet type"),
        ("bad role", File(variant("role: Node", "role: Worker")), "spec.role: \"Worker\" is not a role"),
        ("bad ssh access", File(variant("  networking:", "  sshAccess:\n  - everywhere\n  networking:")), "spec.sshAccess[0]: \"everywhere\" is not a CIDR"),
        ("bad egress", File(variant("    cidr: 172.20.32.0/19", "    cidr: 172.20.32.0/19\n    egress: gw-123")), "spec.subnets[0].egress: \"gw-123\" is not an egress"),
        ("bad dns type", File(variant("  networking:", "  topology:\n    dns:\n      type: Mesh\n  networking:")), "spec.topology.dns.type: \"Mesh\" is not a DNS type"),
        ("negative volume", File(variant("minSize: 2", "minSize: 2\n  rootVolumeSize: -1")), "spec.rootVolumeSize: -1 is not a size"),
        ("bad node port range", File(variant("  networking:", "  kubeAPIServer:\n    serviceNodePortRange: 30000\n  networking:")), "spec.kubeAPIServer.serviceNodePortRange: \"30000\" is not a port range"),
        ("bad taint", File(variant("role: Node", "role: Node\n  taints:\n  - dedicated=gpu")), "spec.taints[0]: \"dedicated=gpu\" is not a taint"),
        ("taint adds a kubelet flag", File(variant("role: Node", "role: Node\n  taints:\n  - a --anonymous-auth=true:NoSchedule")), "spec.taints[0]: \"a --anonymous-auth=true:NoSchedule\" is not a taint"),
        ("label adds a kubelet flag", File(variant("role: Node", "role: Node\n  nodeLabels:\n    team: a --anonymous-auth=true")), "spec.nodeLabels[team]: \"a --anonymous-auth=true\" is not a label value"),
        ("label name with a space", File(variant("role: Node", "role: Node\n  nodeLabels:\n    'a b': x")), "spec.nodeLabels[a b]: \"a b\" is not a label name"),
        ("zone runs as shell", File(variant("    zone: eu-west-1a", "    zone: eu-west-1a'$(reboot)'")), "spec.subnets[0].zone: \"eu-west-1a'$(reboot)'\" is not an availability zone"),
        ("deeply nested yaml", File(variant("  networking:", &format!("  x: {}{}\n  networking:", "[".repeat(100_000), "]".repeat(100_000)))), "levels deep, more than the 64 a spec may"),
        ("huge file", File(format!("{CLUSTER}# {}\n", "x".repeat(5 << 20))), "more than 4 MiB, larger than any spec or template"),
        ("two networkings", File(variant("    cilium: {}", "    cilium: {}\n    calico: {}")), "spec.networking: 2 networking providers are set"),
        ("group of a missing cluster", File(CLUSTER.split("---\n").nth(2).unwrap().replace("test.example.com", "other.example.com")), "cluster \"other.example.com\" not found"),
        ("cluster exists", File(CLUSTER.to_string()), "Cluster/test.example.com: already exists"),
        ("create without zones", Args(vec!["create", "cluster", "new.example.com"]), "--zones: missing"),
        ("create unknown networking", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--networking", "weev"]), "--networking weev: unknown"),
        ("create bad set path", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--set", "cluster.spec.nodePortAcces=1.2.3.4/32"]), "did you mean \"nodePortAccess\"?"),
        ("create bastion on public", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--bastion"]), "--bastion: a bastion needs --topology private"),
        ("edit bad value", Args(vec!["edit", "cluster", "test.example.com", "--set", "spec.kubelet.maxPods=many"]), "expects a whole number, not \"many\""),
        ("edit breaks spec", Args(vec!["edit", "cluster", "test.example.com", "--set", "spec.networkCIDR=10.0.0.0/16"]), "is not inside spec.networkCIDR 10.0.0.0/16"),
        ("edit group past max", Args(vec!["edit", "ig", "nodes", "--name", "test.example.com", "--set", "spec.minSize=9"]), "spec.minSize: 9 is greater than spec.maxSize 4"),
        ("edit without editor", Args(vec!["edit", "cluster", "test.example.com"]), "edit needs an editor, and stdin is not a terminal"),
        ("delete control plane", Args(vec!["delete", "ig", "control-plane-eu-west-1a", "--name", "test.example.com", "--yes"]), "is not an instance group of this cluster"),
        ("bad state url", Args(vec!["get", "clusters", "--state", "ftp://x"]), "use s3://bucket/prefix, file:///absolute/dir or memory://"),
        // Network plugins kopsrs installs nothing for: the nodes would never be Ready.
        ("canal networking", File(variant("    cilium: {}", "    canal: {}")), "spec.networking.canal: kopsrs installs no network plugin for canal"),
        ("create canal", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--networking", "canal"]), "use one kopsrs installs: cilium, calico, flannel, kindnet, amazonvpc"),
        ("create kube-router", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--networking", "kube-router"]), "spec.networking.kuberouter: kopsrs installs no network plugin for kuberouter"),
        ("replace with canal", Replace(CLUSTER.replace("    cilium: {}", "    canal: {}")), "spec.networking.canal: kopsrs installs no network plugin"),
        // Kubernetes versions the channel does not have, and minor downgrades from the stored
        // v1.34.1, by edit and by replace.
        ("edit version outside the channel", Args(vec!["edit", "cluster", "test.example.com", "--set", "spec.kubernetesVersion=v1.35.0"]), "spec.kubernetesVersion: v1.35.0 is not supported by the channel (supported minor versions: 1.31, 1.32, 1.33, 1.34)"),
        ("edit minor downgrade", Args(vec!["edit", "cluster", "test.example.com", "--set", "spec.kubernetesVersion=v1.33.5"]), "spec.kubernetesVersion: v1.33.5 is an older minor version than v1.34.1, the version in the state store"),
        ("replace version outside the channel", Replace(CLUSTER.replace("kubernetesVersion: v1.34.1", "kubernetesVersion: v1.30.4")), "v1.30.4 is not supported by the channel (supported minor versions: 1.31"),
        ("replace minor downgrade", Replace(CLUSTER.replace("kubernetesVersion: v1.34.1", "kubernetesVersion: 1.32.9")), "1.32.9 is an older minor version than v1.34.1"),
        // Cloud applies with a store the nodes cannot read (this corpus's is file://).
        ("update --yes with a local store", Args(vec!["update", "cluster", "test.example.com", "--yes"]), "update cluster --yes refused: the cluster's state store file://"),
        ("reconcile --yes with a local store", Args(vec!["reconcile", "cluster", "test.example.com", "--yes"]), "reconcile cluster --yes refused: the cluster's state store file://"),
        ("create --yes with a local store", Args(vec!["create", "cluster", "new.example.com", "--zones", "eu-west-1a", "--yes"]), "create cluster --yes refused: the cluster's state store file://"),
    ]
}

#[test]
fn every_bad_input_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = format!("file://{}", state_dir.display());
    let fixture = dir.path().join("cluster.yaml");
    std::fs::write(&fixture, CLUSTER).unwrap();
    let created = kopsrs(&state)
        .args(["create", "-f"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, input, expected) in cases {
        let before = snapshot(&state_dir);
        let output = match input {
            Input::File(text) => {
                let file = dir.path().join("bad.yaml");
                std::fs::write(&file, text).unwrap();
                kopsrs(&state)
                    .args(["create", "-f"])
                    .arg(&file)
                    .current_dir(dir.path())
                    .output()
                    .unwrap()
            }
            Input::Args(args) => kopsrs(&state).args(args).output().unwrap(),
            Input::Replace(text) => {
                let file = dir.path().join("replacement.yaml");
                std::fs::write(&file, text).unwrap();
                kopsrs(&state)
                    .args(["replace", "-f"])
                    .arg(&file)
                    .output()
                    .unwrap()
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            failures.push(format!("{name}: succeeded"));
        } else if !stderr.contains(expected) {
            failures.push(format!("{name}: expected {expected:?} in:\n{stderr}"));
        } else if !stderr.contains("error:") {
            failures.push(format!("{name}: no `error:` line in:\n{stderr}"));
        }
        if snapshot(&state_dir) != before {
            failures.push(format!("{name}: the state store changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A mistyped file:// store is an error for a command that only reads, and is not made.
    let typo = dir.path().join("sate");
    let output = kopsrs(&format!("file://{}", typo.display()))
        .args(["get", "clusters"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("does not exist") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!typo.exists(), "a read-only command created the store");
}
