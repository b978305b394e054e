//! Groups Karpenter manages (`spec.manager: Karpenter`): no AWS group of kopsrs's, and an
//! `EC2NodeClass` and a `NodePool` carrying the group's spec (image, instance and capacity
//! types, subnets and security groups, instance profile, tags, labels, taints, the kubelet's
//! reservations, sizes), with the user-data that fetches the group's script by sha256.

use kopsrs_api::create::CreateClusterOptions;
use kopsrs_api::InstanceGroup;
use kopsrs_model::{build, DesiredSet, GeneratedAddon, ModelInput};
use serde_json::{json, Value};

const NAME: &str = "karp.example.com";

/// A second Karpenter group with most of what a group can say.
const SPOT: &str = r#"
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: spot
  labels:
    kops.k8s.io/cluster: karp.example.com
spec:
  manager: Karpenter
  role: Node
  image: ami-0123456789abcdef0
  machineType: m5.large,m5a.large
  maxPrice: "0.10"
  minSize: 0
  maxSize: 30
  subnets: [eu-west-1a]
  taints: ["dedicated=batch:NoSchedule"]
  nodeLabels: {team: data, karpenter.sh/nodepool: forged}
  cloudLabels: {cost-center: "42"}
  securityGroupOverride: sg-0123456789abcdef0
  additionalSecurityGroups: [sg-0fedcba9876543210]
  kubelet:
    maxPods: 50
    systemReserved: {cpu: 500m, memory: 1G}
"#;

fn cluster(extra: &[&str]) -> DesiredSet {
    cluster_with(extra, |_| {})
}

fn cluster_with(extra: &[&str], change: impl FnOnce(&mut kopsrs_api::Cluster)) -> DesiredSet {
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base.clone()),
        instance_manager: Some("karpenter".into()),
        discovery_store: Some("s3://disc".into()),
        ..Default::default()
    };
    let (mut cluster, mut groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    change(&mut cluster);
    for text in extra {
        groups.push(serde_yaml_ng::from_str::<InstanceGroup>(text).unwrap());
    }
    let report = kopsrs_api::validate::validate(&cluster, &groups, true);
    let errors: Vec<_> = report.errors().collect();
    assert!(errors.is_empty(), "{errors:?}");
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
    build(&cluster, &groups, &ModelInput::default()).unwrap()
}

/// The Karpenter groups' addon.
fn karpenter(set: &DesiredSet) -> &GeneratedAddon {
    set.generated
        .iter()
        .find(|a| a.name == "karpenter-instancegroups")
        .expect("the Karpenter groups' addon")
}

fn object<'a>(set: &'a DesiredSet, kind: &str, name: &str) -> &'a Value {
    karpenter(set)
        .objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn karpenter_groups_have_no_aws_group_and_one_node_class_and_pool_each() {
    let set = cluster(&[SPOT]);
    let groups: Vec<&String> = set.instance_groups.values().collect();
    assert!(
        groups.iter().all(|g| *g != "nodes" && *g != "spot"),
        "{groups:?}"
    );
    let per_group: Vec<String> = set
        .resources
        .iter()
        .filter(|r| {
            matches!(
                r.address.kind.as_str(),
                "aws_launch_template" | "aws_autoscaling_group"
            )
        })
        .filter(|r| !r.address.name.starts_with("control-plane"))
        .map(|r| r.address.to_string())
        .collect();
    assert!(per_group.is_empty(), "{per_group:?}");
    let kinds: Vec<(&str, &str)> = karpenter(&set)
        .objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("EC2NodeClass", "nodes"),
            ("NodePool", "nodes"),
            ("EC2NodeClass", "spot"),
            ("NodePool", "spot")
        ]
    );
    // One script per group, each named by its node class's user-data with its sha256.
    assert_eq!(karpenter(&set).files.len(), 2);
    for (key, script) in &karpenter(&set).files {
        let group = key.split('/').nth(2).unwrap();
        let class = object(&set, "EC2NodeClass", group);
        let user_data = class["spec"]["userData"].as_str().unwrap();
        assert!(
            user_data.contains(&format!("SCRIPT_KEY='{key}'")),
            "{user_data}"
        );
        assert!(user_data.contains(&format!("GROUP='{group}'")));
        assert!(script.contains(&format!("GROUP='{group}'")));
        assert!(script.contains("kubeadm"), "the full bootstrap");
        // Karpenter v1 accepts a node of a custom image only with this taint at registration.
        let join = kopsrs_bootstrap::embedded_kubeadm_documents(script).join("");
        assert!(
            join.contains("key: karpenter.sh/unregistered") && join.contains("effect: NoExecute"),
            "{join}"
        );
    }
    // The manifest is the objects, in order, as one stream.
    let manifest = karpenter(&set).manifest();
    assert_eq!(manifest.matches("\n---\n").count() + 1, 4);
}

#[test]
fn the_node_class_and_pool_carry_the_groups_spec() {
    let set = cluster(&[SPOT]);
    let class = &object(&set, "EC2NodeClass", "spot")["spec"];
    assert_eq!(class["amiFamily"], "Custom");
    assert_eq!(
        class["amiSelectorTerms"],
        json!([{"id": "ami-0123456789abcdef0"}])
    );
    assert_eq!(class["instanceProfile"], format!("nodes.{NAME}"));
    assert_eq!(
        class["securityGroupSelectorTerms"],
        json!([{"id": "sg-0123456789abcdef0"}, {"id": "sg-0fedcba9876543210"}])
    );
    assert_eq!(
        class["subnetSelectorTerms"],
        json!([{"tags": {"KubernetesCluster": NAME, "kops.k8s.io/instance-group/spot": "true"}}])
    );
    assert_eq!(class["associatePublicIPAddress"], true);
    assert_eq!(class["tags"]["cost-center"], "42");
    assert_eq!(class["tags"]["KubernetesCluster"], NAME);
    assert!(
        class["tags"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("kubernetes.io/cluster")),
        "Karpenter sets the cluster tag itself: {}",
        class["tags"]
    );
    assert_eq!(
        class["kubelet"],
        json!({"maxPods": 50, "systemReserved": {"cpu": "500m", "memory": "1G"}})
    );
    // The launch templates' root volume, which a custom image does not give Karpenter.
    assert_eq!(
        class["blockDeviceMappings"],
        json!([{"deviceName": "/dev/xvda", "rootVolume": true, "ebs": {
            "deleteOnTermination": true, "encrypted": true, "volumeSize": "128Gi",
            "volumeType": "gp3", "iops": 3000, "throughput": 125}}])
    );

    let pool = &object(&set, "NodePool", "spot")["spec"];
    let template = &pool["template"];
    assert_eq!(
        template["spec"]["requirements"],
        json!([
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large", "m5a.large"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        ])
    );
    assert_eq!(
        template["spec"]["taints"],
        json!([{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])
    );
    assert_eq!(
        template["spec"]["nodeClassRef"],
        json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "spot"})
    );
    let labels = &template["metadata"]["labels"];
    assert_eq!(labels["team"], "data");
    assert_eq!(labels["kops.k8s.io/instancegroup"], "spot");
    assert!(
        labels.get("node-role.kubernetes.io/node").is_none(),
        "the NodePool's rules refuse kubernetes.io labels: {labels}"
    );
    assert!(
        labels.get("karpenter.sh/nodepool").is_none(),
        "Karpenter's own label is not given: {labels}"
    );
    assert_eq!(pool["limits"], json!({"nodes": "30"}));
    assert!(pool.get("replicas").is_none(), "minSize 0: no floor");

    // The default group: the create-cluster image by owner and name, on demand, a floor.
    let class = &object(&set, "EC2NodeClass", "nodes")["spec"];
    let term = &class["amiSelectorTerms"][0];
    assert_eq!(term["owner"], "099720109477", "{term}");
    assert_eq!(
        class["securityGroupSelectorTerms"],
        json!([{"tags": {"KubernetesCluster": NAME, "Name": format!("nodes.{NAME}")}}])
    );
    assert!(class.get("kubelet").is_none());
    assert_eq!(class["blockDeviceMappings"][0]["deviceName"], "/dev/sda1");
    let pool = &object(&set, "NodePool", "nodes")["spec"];
    assert!(
        pool.get("replicas").is_none(),
        "no replicas without the StaticCapacity gate: {pool}"
    );
    let capacity = pool["template"]["spec"]["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "karpenter.sh/capacity-type")
        .unwrap();
    assert_eq!(capacity["values"], json!(["on-demand"]));
}

#[test]
fn the_nodes_role_reads_the_scripts_only_with_karpenter_groups() {
    let set = cluster(&[]);
    let policy = |set: &DesiredSet| {
        set.resources
            .iter()
            .find(|r| {
                r.address.kind == "aws_iam_role_policy" && r.address.name.starts_with("nodes-")
            })
            .map(|r| format!("{:?}", r.attrs))
            .unwrap()
    };
    assert!(policy(&set).contains("igconfig/node/*"));
    // Without one, the nodes' role is as before.
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base.clone()),
        ..Default::default()
    };
    let (cluster, groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    let (cluster, groups) = kopsrs_api::complete(&cluster, &groups, &config_base).unwrap();
    let plain = build(&cluster, &groups, &ModelInput::default()).unwrap();
    assert!(!policy(&plain).contains("igconfig"));
    assert!(plain
        .generated
        .iter()
        .all(|a| a.name != "karpenter-instancegroups"));
}

#[test]
fn a_karpenter_group_needs_karpenter_enabled_and_the_node_role() {
    let config_base = format!("s3://state/{NAME}");
    let o = CreateClusterOptions {
        name: NAME.into(),
        zones: vec!["eu-west-1a".into()],
        kubernetes_version: Some("v1.34.1".into()),
        config_base: Some(config_base),
        ..Default::default()
    };
    let (cluster, mut groups) = kopsrs_api::create::create_cluster(&o).unwrap();
    for g in &mut groups {
        g.spec.manager = Some(match g.spec.role.as_deref() {
            Some("Node") => "Autoscaler".into(),
            _ => "Karpenter".into(),
        });
    }
    let report = kopsrs_api::validate::validate(&cluster, &groups, true);
    let text: Vec<String> = report
        .errors()
        .map(|e| format!("{} {}: {}", e.object, e.path, e.message))
        .collect();
    let text = text.join("\n");
    assert!(
        text.contains("\"Autoscaler\" is not an instance manager"),
        "{text}"
    );
    assert!(text.contains("Karpenter on a group of role"), "{text}");
    assert!(
        text.contains("spec.karpenter.enabled is not true"),
        "{text}"
    );
}

/// `replicas` (a floor of minSize nodes) needs Karpenter's StaticCapacity gate: a NodePool of
/// a release without it refuses the field.
#[test]
fn the_pool_has_a_floor_only_with_static_capacity() {
    let set = cluster_with(&[], |c| {
        c.spec.karpenter.as_mut().unwrap().feature_gates =
            Some("SpotToSpotConsolidation=true, StaticCapacity=true".into());
    });
    let pool = &object(&set, "NodePool", "nodes")["spec"];
    assert_eq!(pool["replicas"], 1, "{pool}");
    let set = cluster_with(&[], |c| {
        c.spec.karpenter.as_mut().unwrap().feature_gates = Some("StaticCapacity=false".into());
    });
    assert!(object(&set, "NodePool", "nodes")["spec"]
        .get("replicas")
        .is_none());
}
