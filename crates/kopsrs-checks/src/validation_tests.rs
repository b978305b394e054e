use super::*;

fn group(name: &str, role: Role, target: u32, ids: &[&str]) -> GroupInstances {
    GroupInstances {
        name: name.into(),
        role,
        target,
        instances: ids.iter().map(|i| (i.to_string(), false)).collect(),
    }
}

fn node(name: &str, id: &str, role: &str) -> Node {
    Node {
        name: name.into(),
        instance_id: Some(id.into()),
        role: role.into(),
        zone: "eu-west-1a".into(),
        hostname: name.into(),
        ready: true,
        network_unavailable: false,
        karpenter_pool: None,
    }
}

fn static_pods(node: &str) -> Vec<Pod> {
    CONTROL_PLANE_PODS
        .iter()
        .map(|c| Pod {
            name: format!("kube-system/{c}-{node}"),
            node: Some(node.into()),
            priority_class: Some("system-node-critical".into()),
            component: Some(c.to_string()),
            phase: "Running".into(),
            unready_containers: vec![],
        })
        .collect()
}

fn healthy() -> (Vec<GroupInstances>, Vec<Node>, Vec<Pod>) {
    (
        vec![
            group("control-plane-a", Role::ControlPlane, 1, &["i-cp"]),
            group("nodes", Role::Node, 2, &["i-1", "i-2"]),
            group("bastions", Role::Bastion, 1, &["i-b"]),
        ],
        vec![
            node("cp", "i-cp", "control-plane"),
            node("n1", "i-1", "node"),
            node("n2", "i-2", "node"),
        ],
        static_pods("cp"),
    )
}

fn messages(v: &Validation) -> Vec<String> {
    v.failures
        .iter()
        .map(|f| format!("{} {}", f.kind, f.message))
        .collect()
}

#[test]
fn a_healthy_cluster_has_no_failures_and_a_row_per_node() {
    let (g, n, p) = healthy();
    let v = validate(&g, &n, &p, 0);
    assert!(v.failures.is_empty(), "{:?}", messages(&v));
    let names: Vec<&str> = v.nodes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cp", "n1", "n2"]);
    assert!(v.nodes.iter().all(|r| r.status == "True"));
}

#[test]
fn each_kind_of_failure_reads_as_kops_writes_it() {
    let (mut g, mut n, mut p) = healthy();
    // Too few instances (a detached one does not count) and one that never joined.
    g[1].instances.push(("i-3".into(), false));
    g[1].instances[0].1 = true;
    g[1].target = 3;
    // A NotReady worker, a control plane without its scheduler, a pending critical pod.
    n[2].ready = false;
    p.retain(|p| p.component.as_deref() != Some("kube-scheduler"));
    p.push(Pod {
        name: "kube-system/coredns-1".into(),
        node: None,
        priority_class: Some("system-cluster-critical".into()),
        component: None,
        phase: "Pending".into(),
        unready_containers: vec![],
    });
    p.push(Pod {
        name: "kube-system/cilium-x".into(),
        node: Some("n1".into()),
        priority_class: Some("system-node-critical".into()),
        component: None,
        phase: "Running".into(),
        unready_containers: vec!["cilium-agent".into()],
    });
    let v = validate(&g, &n, &p, 0);
    assert_eq!(
        messages(&v),
        [
            "Node control-plane node \"cp\" is missing kube-scheduler pod",
            "InstanceGroup InstanceGroup \"nodes\" did not have enough nodes 2 vs 3",
            "Machine machine \"i-3\" has not yet joined cluster",
            "Node node \"n2\" of role \"node\" is not ready",
            "Pod system-cluster-critical pod \"kube-system/coredns-1\" is pending",
            "Pod system-node-critical pod \"kube-system/cilium-x\" is not ready (cilium-agent)",
        ]
    );
    assert_eq!(v.failures[2].instance_group.as_deref(), Some("nodes"));
    assert_eq!(v.failures[4].instance_group, None);
    // The detached instance's Node still shows, NotReady ones as False.
    assert_eq!(
        v.nodes.iter().find(|r| r.name == "n2").unwrap().status,
        "False"
    );
    let json = serde_json::to_value(&v.failures[2]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "Machine", "name": "i-3", "message": "machine \"i-3\" has not yet joined cluster", "instanceGroup": "nodes"})
    );
}

#[test]
fn max_unready_nodes_forgives_workers_only() {
    let (g, mut n, p) = healthy();
    n[1].ready = false;
    assert_eq!(validate(&g, &n, &p, 0).failures.len(), 1);
    assert!(validate(&g, &n, &p, 1).failures.is_empty());
    n[0].network_unavailable = true;
    let v = validate(&g, &n, &p, 1);
    assert_eq!(
        messages(&v),
        ["Node node \"cp\" of role \"control-plane\" is not ready"]
    );
}
