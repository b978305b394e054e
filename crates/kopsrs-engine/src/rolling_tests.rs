use super::*;

fn instance(id: &str, version: &str) -> Instance {
    Instance {
        id: id.into(),
        template_version: Some(version.into()),
        detached: false,
        node: Some(NodeState {
            name: format!("node-{id}"),
            ready: true,
            needs_update: false,
        }),
    }
}

fn group(name: &str, role: Role, instances: Vec<Instance>) -> Group {
    let n = instances.len() as u32;
    Group {
        name: name.into(),
        role,
        template_version: "2".into(),
        min: n,
        target: n,
        max: n + 2,
        instances,
        warm: Vec::new(),
        rolling_update: None,
    }
}

fn amount(v: &str) -> IntOrString {
    v.parse::<i64>()
        .map(IntOrString::Int)
        .unwrap_or_else(|_| IntOrString::String(v.into()))
}

fn rolling(surge: Option<&str>, unavailable: Option<&str>) -> RollingUpdate {
    RollingUpdate {
        max_surge: surge.map(amount),
        max_unavailable: unavailable.map(amount),
        ..Default::default()
    }
}

#[test]
fn an_instance_needs_update_for_each_reason_in_order() {
    let g = group("nodes", Role::Node, vec![]);
    let mut i = instance("i-1", "2");
    assert_eq!(g.needs_update(&i, false), None);
    assert_eq!(g.needs_update(&i, true), Some(Reason::Forced));
    i.node.as_mut().unwrap().needs_update = true;
    assert_eq!(g.needs_update(&i, false), Some(Reason::Annotated));
    i.template_version = Some("1".into());
    assert_eq!(g.needs_update(&i, false), Some(Reason::TemplateChanged));
    i.template_version = None;
    assert_eq!(g.needs_update(&i, false), Some(Reason::TemplateChanged));
    i.detached = true;
    assert_eq!(g.needs_update(&i, false), Some(Reason::Detached));
}

#[test]
fn detached_instances_go_first_and_the_table_counts_as_kops() {
    let mut left = instance("i-9", "2");
    left.detached = true;
    let mut unjoined = instance("i-3", "1");
    unjoined.node = None;
    let g = group(
        "nodes",
        Role::Node,
        vec![instance("i-1", "1"), instance("i-2", "2"), unjoined, left],
    );
    let ids: Vec<&str> = g.to_update(false).iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-9", "i-1", "i-3"]);
    let s = g.status(false);
    assert_eq!(
        (
            s.status,
            s.need_update,
            s.ready,
            s.min,
            s.target,
            s.max,
            s.nodes
        ),
        ("NeedsUpdate", 3, 1, 4, 4, 6, 3)
    );
    let current = group("x", Role::Node, vec![instance("i-1", "2")]);
    assert_eq!(current.status(false).status, "Ready");
    assert_eq!(current.status(true).need_update, 1);
}

#[test]
fn settings_fall_back_from_group_to_cluster_to_kops_defaults() {
    let mut g = group("nodes", Role::Node, vec![]);
    let s = |g: &Group, c: Option<&RollingUpdate>, n| resolve_settings(g, c, n).unwrap();
    // kops's defaults on AWS: surge 1, no unavailability.
    assert_eq!(
        s(&g, None, 10),
        Settings {
            max_surge: 1,
            max_unavailable: 0
        }
    );
    // No surge: one at a time.
    let cluster = rolling(Some("0"), None);
    assert_eq!(
        s(&g, Some(&cluster), 10),
        Settings {
            max_surge: 0,
            max_unavailable: 1
        }
    );
    // Surge percentages round up, unavailable ones down but to at least 1.
    let cluster = rolling(Some("25%"), Some("25%"));
    assert_eq!(
        s(&g, Some(&cluster), 10),
        Settings {
            max_surge: 3,
            max_unavailable: 2
        }
    );
    assert_eq!(
        s(&g, Some(&cluster), 3),
        Settings {
            max_surge: 1,
            max_unavailable: 1
        }
    );
    // The group's own settings win, field by field.
    g.rolling_update = Some(rolling(Some("2"), None));
    assert_eq!(
        s(&g, Some(&cluster), 10),
        Settings {
            max_surge: 2,
            max_unavailable: 2
        }
    );
    g.rolling_update = Some(rolling(Some("0"), Some("0")));
    assert_eq!(
        s(&g, Some(&cluster), 10),
        Settings {
            max_surge: 0,
            max_unavailable: 0
        }
    );
    // Control planes and bastions: never surged, one at a time, whatever the spec says.
    for role in [Role::ControlPlane, Role::Bastion] {
        let mut cp = group("cp", role, vec![]);
        cp.rolling_update = Some(rolling(Some("3"), Some("2")));
        assert_eq!(
            s(&cp, None, 3),
            Settings {
                max_surge: 0,
                max_unavailable: 1
            }
        );
    }
    let bad = rolling(Some("many"), None);
    let err = resolve_settings(&g_plain(), Some(&bad), 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cluster spec.rollingUpdate.maxSurge: \"many\" is neither a count nor a percentage; write 1 or \"25%\""
    );
    let mut own = g_plain();
    own.rolling_update = Some(rolling(None, Some("most")));
    assert!(resolve_settings(&own, None, 3)
        .unwrap_err()
        .to_string()
        .starts_with("InstanceGroup/nodes spec.rollingUpdate.maxUnavailable: \"most\""));
    // drainAndTerminate: the group's, else the cluster's, else true.
    let off = RollingUpdate {
        drain_and_terminate: Some(false),
        ..Default::default()
    };
    assert!(drain_and_terminate(&g_plain(), None));
    assert!(!drain_and_terminate(&g_plain(), Some(&off)));
    own.rolling_update = Some(RollingUpdate {
        drain_and_terminate: Some(true),
        ..Default::default()
    });
    assert!(drain_and_terminate(&own, Some(&off)));
    let negative = rolling(None, Some("-1"));
    assert!(resolve_settings(&g_plain(), Some(&negative), 3).is_err());
}

fn g_plain() -> Group {
    group("nodes", Role::Node, vec![])
}

#[test]
fn rounds_surge_first_and_never_exceed_surge_plus_unavailable() {
    let instances: Vec<Instance> = (1..=5).map(|i| instance(&format!("i-{i}"), "1")).collect();
    let refs: Vec<&Instance> = instances.iter().collect();
    let r = rounds(
        &refs,
        Settings {
            max_surge: 2,
            max_unavailable: 1,
        },
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].surge, ["i-1", "i-2"]);
    assert_eq!(r[0].unavailable, ["i-3"]);
    assert_eq!(r[1].surge, ["i-4", "i-5"]);
    assert!(r[1].unavailable.is_empty());
    // Surge only: capacity never drops (every instance is replaced before it goes).
    let r = rounds(
        &refs,
        Settings {
            max_surge: 1,
            max_unavailable: 0,
        },
    );
    assert_eq!(r.len(), 5);
    assert!(r
        .iter()
        .all(|r| r.unavailable.is_empty() && r.surge.len() == 1));
    // An instance a previous run detached counts as surged, whatever the settings.
    let mut left = instance("i-0", "1");
    left.detached = true;
    let refs: Vec<&Instance> = std::iter::once(&left).chain(instances.iter()).collect();
    let r = rounds(
        &refs,
        Settings {
            max_surge: 0,
            max_unavailable: 1,
        },
    );
    assert_eq!(r[0].surge, ["i-0"]);
    assert_eq!(r[1].unavailable, ["i-1"]);
    // Nothing may move.
    assert!(rounds(
        &refs,
        Settings {
            max_surge: 0,
            max_unavailable: 0
        }
    )
    .is_empty());
}

#[test]
fn groups_go_bastions_control_planes_api_servers_then_nodes() {
    let groups = vec![
        group("nodes-b", Role::Node, vec![]),
        group("api", Role::ApiServer, vec![]),
        group("nodes-a", Role::Node, vec![]),
        group("cp-b", Role::ControlPlane, vec![]),
        group("bastions", Role::Bastion, vec![]),
        group("cp-a", Role::ControlPlane, vec![]),
    ];
    let names = |gs: Vec<&Group>| gs.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(order(&groups, &[], &[])),
        ["bastions", "cp-a", "cp-b", "api", "nodes-a", "nodes-b"]
    );
    assert_eq!(
        names(order(&groups, &["nodes-b".into(), "cp-b".into()], &[])),
        ["cp-b", "nodes-b"]
    );
    assert_eq!(
        names(order(&groups, &[], &[Role::Node])),
        ["nodes-a", "nodes-b"]
    );
}

#[test]
fn only_failures_of_this_group_or_the_control_plane_stop_it() {
    let g = g_plain();
    assert!(failure_concerns(&g, Some("nodes"), Some(Role::Node)));
    assert!(!failure_concerns(&g, Some("other"), Some(Role::Node)));
    assert!(failure_concerns(&g, Some("cp-a"), Some(Role::ControlPlane)));
    assert!(failure_concerns(&g, None, None));
}

#[test]
fn the_next_control_plane_waits_for_etcd_to_settle() {
    use kopsrs_checks::validation::{Node, Pod};
    let node = |name: &str, ready: bool| Node {
        name: name.into(),
        instance_id: Some(format!("i-{name}")),
        role: "control-plane".into(),
        zone: "a".into(),
        hostname: name.into(),
        ready,
        network_unavailable: false,
        karpenter_pool: None,
    };
    let etcd = |on: &str, ready: bool| Pod {
        name: format!("kube-system/etcd-{on}"),
        node: Some(on.into()),
        priority_class: Some("system-node-critical".into()),
        component: Some("etcd".into()),
        phase: "Running".into(),
        unready_containers: if ready { vec![] } else { vec!["etcd".into()] },
    };
    let worker = Node {
        role: "node".into(),
        ..node("w", true)
    };
    let settled = [node("a", true), node("b", true), worker.clone()];
    let pods = [etcd("a", true), etcd("b", true)];
    assert!(control_plane_unsettled(&settled, &pods, 2).is_empty());
    // The replaced instance's Node is still there: three where two are expected.
    let old_still_there = [node("a", true), node("b", true), node("old", true)];
    assert_eq!(
        control_plane_unsettled(
            &old_still_there,
            &[etcd("a", true), etcd("b", true), etcd("old", true)],
            2
        ),
        vec!["3 control-plane nodes, 2 expected"]
    );
    // The replacement has not joined yet.
    assert_eq!(
        control_plane_unsettled(&[node("a", true), worker], &pods, 2),
        vec!["1 control-plane nodes, 2 expected"]
    );
    // It joined, but its etcd member is not ready, or the Node is not.
    assert_eq!(
        control_plane_unsettled(&settled, &[etcd("a", true), etcd("b", false)], 2),
        vec!["control-plane node \"b\" has no ready etcd pod"]
    );
    assert_eq!(
        control_plane_unsettled(&[node("a", true), node("b", false)], &pods, 2),
        vec!["control-plane node \"b\" is not ready"]
    );
}

mod etcd {
    use super::super::{etcd_gate, EtcdMember};

    fn member(name: &str, healthy: bool) -> EtcdMember {
        EtcdMember {
            id: name.len() as u64 * 0x1000 + name.bytes().map(u64::from).sum::<u64>(),
            name: name.into(),
            healthy,
        }
    }

    #[test]
    fn settled_when_the_members_are_exactly_the_healthy_control_planes() {
        let members = [
            member("cp-a", true),
            member("cp-b", true),
            member("cp-c", true),
        ];
        let gate = etcd_gate(&members, &["cp-a", "cp-b", "cp-c"], 0, 3);
        assert!(
            gate.unsettled.is_empty() && gate.remove.is_empty(),
            "{gate:?}"
        );
    }

    #[test]
    fn a_member_whose_control_plane_is_gone_is_removed_and_one_that_is_not_ready_waits() {
        let members = [
            member("cp-a", false),
            member("cp-b", true),
            member("cp-c", false),
        ];
        let gate = etcd_gate(&members, &["cp-b", "cp-c", "cp-d"], 0, 3);
        assert_eq!(gate.remove, [member("cp-a", false)]);
        let text = gate.unsettled.join("; ");
        assert!(
            text.contains("cp-c") && text.contains("not healthy"),
            "{text}"
        );
        assert!(text.contains("cp-d is not an etcd member yet"), "{text}");
    }

    #[test]
    fn a_healthy_member_without_a_node_is_an_orphans_only_when_one_is_known() {
        let members = [member("cp-a", true), member("cp-b", true)];
        let gate = etcd_gate(&members, &["cp-b"], 0, 2);
        assert!(gate.unsettled.join(" ").contains("cp-a"), "{gate:?}");
        assert!(gate.remove.is_empty(), "a healthy member is never removed");
        let gate = etcd_gate(&members, &["cp-b"], 1, 2);
        assert!(gate.unsettled.is_empty(), "{gate:?}");
    }

    #[test]
    fn one_control_plane_has_one_healthy_member_whatever_its_name() {
        let restored = [member("cp-old", true)];
        assert!(etcd_gate(&restored, &["cp-new"], 0, 1).unsettled.is_empty());
        let down = [member("cp-old", false)];
        let gate = etcd_gate(&down, &["cp-new"], 0, 1);
        assert!(
            !gate.unsettled.is_empty() && gate.remove.is_empty(),
            "{gate:?}"
        );
        let two = [member("cp-old", true), member("cp-new", true)];
        assert!(!etcd_gate(&two, &["cp-new"], 0, 1).unsettled.is_empty());
    }
}

#[test]
fn warm_pool_instances_from_another_template_need_update_and_count_in_the_status() {
    let mut g = group("nodes", Role::Node, vec![instance("i-1", "2")]);
    let warm = |id: &str, v: &str| Instance {
        node: None,
        ..instance(id, v)
    };
    g.warm = vec![warm("i-w1", "1"), warm("i-w2", "2")];
    let ids = |v: Vec<&Instance>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(g.warm_to_update(false)), ["i-w1"]);
    assert_eq!(ids(g.warm_to_update(true)), ["i-w1", "i-w2"]);
    // Warm instances are never among the in-service instances a round replaces.
    assert!(g.to_update(false).is_empty());
    let s = g.status(false);
    assert_eq!(
        (s.status, s.need_update, s.ready, s.nodes),
        ("NeedsUpdate", 1, 2, 1)
    );
}
