//! What a rolling update and `validate cluster` read and do to Nodes: connecting, marking a
//! Node for replacement, the Node states by instance, the control-plane Nodes, deleting a
//! Node and the validation snapshot, against scripts/fake_kube.py and, for conflicts and
//! refusals on cue, the in-process double.

mod support;

use kopsrs_kube::{
    Kube, KubeError, EXCLUDE_FROM_LOAD_BALANCERS, NEEDS_UPDATE, SCHEDULED_FOR_UPDATE,
};
use serde_json::{json, Value};
use support::double::{not_found, ok, status, Double};
use support::{wait_until, FakeKube, CLUSTER};

#[tokio::test]
async fn connect_needs_a_context_named_after_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = support::write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let Err(err) = Kube::connect("other.example.com", std::slice::from_ref(&kubeconfig)).await
    else {
        panic!("connected to a cluster the kubeconfig does not name");
    };
    let KubeError::NoContext { cluster, where_ } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(cluster, "other.example.com");
    assert_eq!(where_, &kubeconfig.display().to_string());

    // Missing files are skipped, as kubectl skips them in $KUBECONFIG: no context then.
    let missing = dir.path().join("missing");
    let Err(err) = Kube::connect(CLUSTER, std::slice::from_ref(&missing)).await else {
        panic!("connected through a missing kubeconfig");
    };
    assert!(
        matches!(&err, KubeError::NoContext { where_, .. } if *where_ == missing.display().to_string()),
        "{err:?}"
    );
    // A file that is there but not a kubeconfig is an error of its own.
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "clusters: [").unwrap();
    let Err(err) = Kube::connect(CLUSTER, &[broken, kubeconfig.clone()]).await else {
        panic!("connected through a broken kubeconfig");
    };
    assert!(matches!(err, KubeError::Config { .. }), "{err:?}");
}

fn taints(node: &Value) -> Vec<(String, String)> {
    node["spec"]["taints"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_string(),
                        t["effect"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn scheduled_for_update() -> (String, String) {
    (SCHEDULED_FOR_UPDATE.to_string(), "PreferNoSchedule".into())
}

#[tokio::test]
async fn mark_for_update_taints_and_cordons_in_one_patch_once() {
    let fake = FakeKube::start(&[]);
    let dedicated = json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"});
    fake.add_node("n1", "node", json!({"taints": [dedicated]}));
    fake.add_node("n2", "node", json!({}));
    let kube = fake.kube().await;
    fake.reset_calls();

    kube.mark_for_update("n1", true).await.unwrap();
    let n1 = fake.get("/api/v1/nodes/n1");
    let n1_taints = taints(&n1);
    // The taint is added to the Node's own, which a whole-list patch must keep.
    assert!(
        n1_taints.contains(&("dedicated".into(), "NoSchedule".into())),
        "{n1_taints:?}"
    );
    assert!(n1_taints.contains(&scheduled_for_update()), "{n1_taints:?}");
    assert_eq!(n1["spec"]["unschedulable"], true);
    assert_eq!(n1["metadata"]["labels"][EXCLUDE_FROM_LOAD_BALANCERS], "");
    assert_eq!(fake.calls("patch nodes"), 1);

    // Already marked: nothing sent.
    kube.mark_for_update("n1", true).await.unwrap();
    assert_eq!(fake.calls("patch nodes"), 1);

    // Without cordon: the taint alone; cordoning later adds the rest, the taint once.
    kube.mark_for_update("n2", false).await.unwrap();
    let n2 = fake.get("/api/v1/nodes/n2");
    assert_eq!(taints(&n2), [scheduled_for_update()]);
    assert!(n2["spec"]["unschedulable"].is_null(), "{n2}");
    assert!(
        n2["metadata"]["labels"][EXCLUDE_FROM_LOAD_BALANCERS].is_null(),
        "{n2}"
    );
    kube.mark_for_update("n2", false).await.unwrap();
    assert_eq!(fake.calls("patch nodes"), 2);
    kube.mark_for_update("n2", true).await.unwrap();
    let n2 = fake.get("/api/v1/nodes/n2");
    let marks = taints(&n2)
        .iter()
        .filter(|t| **t == scheduled_for_update())
        .count();
    assert_eq!(marks, 1, "{n2}");
    assert_eq!(n2["spec"]["unschedulable"], true);
    assert_eq!(n2["metadata"]["labels"][EXCLUDE_FROM_LOAD_BALANCERS], "");
    assert_eq!(fake.calls("patch nodes"), 3);

    // A Node already gone: nothing to do.
    kube.mark_for_update("gone", true).await.unwrap();
    assert_eq!(fake.calls("patch nodes"), 3);
    assert_eq!(fake.calls("get nodes 404"), 1);
}

fn node(name: &str, resource_version: &str, taints: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "resourceVersion": resource_version, "labels": {}},
        "spec": {"taints": taints},
    })
}

const CONFLICT: &str = "Operation cannot be fulfilled on nodes \"n1\": the object has been \
                        modified; please apply your changes to the latest version and try again";

#[tokio::test]
async fn mark_for_update_reads_the_node_again_after_a_conflict() {
    let other = json!({"key": "other", "effect": "NoSchedule"});
    let double = Double::start(move |request, nth| match (request.method.as_str(), nth) {
        // Between the first read and its patch, someone else tainted the Node.
        ("GET", 1) => ok(node("n1", "1", json!([]))),
        ("GET", _) => ok(node("n1", "2", json!([other]))),
        ("PATCH", 1) => status(409, "Conflict", CONFLICT),
        ("PATCH", _) => ok(node("n1", "3", json!([]))),
        _ => not_found("path", &request.path),
    })
    .await;
    let kube = double.kube().await;

    kube.mark_for_update("n1", true).await.unwrap();

    let seen = double.seen();
    let lines: Vec<String> = seen.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1",
            "GET /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1"
        ]
    );
    let first = &seen[1].body;
    assert_eq!(first["metadata"]["resourceVersion"], "1");
    assert_eq!(
        first["spec"]["taints"],
        json!([{"key": SCHEDULED_FOR_UPDATE, "effect": "PreferNoSchedule"}])
    );
    let second = &seen[3].body;
    assert_eq!(second["metadata"]["resourceVersion"], "2");
    assert_eq!(
        second["spec"]["taints"],
        json!([{"key": "other", "effect": "NoSchedule"},
               {"key": SCHEDULED_FOR_UPDATE, "effect": "PreferNoSchedule"}])
    );
    assert_eq!(second["spec"]["unschedulable"], true);
    assert_eq!(
        second["metadata"]["labels"][EXCLUDE_FROM_LOAD_BALANCERS],
        ""
    );
}

#[tokio::test]
async fn mark_for_update_gives_up_after_ten_conflicts() {
    let double = Double::start(|request, _| match request.method.as_str() {
        "GET" => ok(node("n1", "1", json!([]))),
        _ => status(409, "Conflict", CONFLICT),
    })
    .await;
    let kube = double.kube().await;

    let err = kube.mark_for_update("n1", false).await.unwrap_err();

    assert_eq!(
        err.to_string(),
        "marking Node \"n1\" for replacement on \"t.example.com\": the Node kept changing \
         (10 conflicts in a row)"
    );
    assert_eq!(double.count("PATCH", "/api/v1/nodes/n1"), 10);
}

#[tokio::test]
async fn mark_for_update_of_a_node_deleted_meanwhile_is_done_and_a_refusal_is_reported() {
    let double = Double::start(
        |request, _| match (request.method.as_str(), &*request.path) {
            ("GET", _) => ok(node("n1", "1", json!([]))),
            ("PATCH", "/api/v1/nodes/n1") => not_found("nodes", "n1"),
            _ => status(
                403,
                "Forbidden",
                "nodes \"n2\" is forbidden: User \"ops\" cannot patch resource \"nodes\"",
            ),
        },
    )
    .await;
    let kube = double.kube().await;

    kube.mark_for_update("n1", true).await.unwrap();
    let err = kube.mark_for_update("n2", true).await.unwrap_err();

    assert_eq!(
        err.to_string(),
        "marking Node \"n2\" for replacement on \"t.example.com\": nodes \"n2\" is forbidden: \
         User \"ops\" cannot patch resource \"nodes\" (403 Forbidden)"
    );
    assert_eq!(double.count("PATCH", "/api/v1/nodes/n1"), 1);
    assert_eq!(double.count("PATCH", "/api/v1/nodes/n2"), 1);
}

/// A Node as a kubelet registers it, with the conditions given (the fake keeps the status of
/// Nodes created through the API).
fn api_node(name: &str, provider_id: Option<&str>, ready: &str, network: &str) -> Value {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady"},
            {"type": "NetworkUnavailable", "status": network, "reason": "RouteCreated"},
        ]},
    });
    if let Some(id) = provider_id {
        node["spec"]["providerID"] = json!(id);
    }
    node
}

#[tokio::test]
async fn node_states_are_keyed_by_instance_with_readiness_and_the_update_annotation() {
    let fake = FakeKube::start(&[]);
    let nodes = [
        api_node("ready", Some("aws:///eu-west-1a/i-0aaa"), "True", "False"),
        api_node(
            "no-network",
            Some("aws:///eu-west-1b/i-0bbb"),
            "True",
            "True",
        ),
        api_node(
            "not-ready",
            Some("aws:///eu-west-1c/i-0ccc"),
            "False",
            "False",
        ),
        // No instance: left out.
        api_node("bare-metal", None, "True", "False"),
        api_node(
            "elsewhere",
            Some("gce://project/zone/vm-1"),
            "True",
            "False",
        ),
    ];
    for node in nodes {
        fake.create("/api/v1/nodes", node);
    }
    fake.patch(
        "/api/v1/nodes/not-ready",
        json!({"metadata": {"annotations": {NEEDS_UPDATE: ""}}}),
    );
    let kube = fake.kube().await;

    let states = kube.node_states().await.unwrap();

    let seen: Vec<(&str, &str, bool, bool)> = states
        .iter()
        .map(|(id, s)| (id.as_str(), s.name.as_str(), s.ready, s.needs_update))
        .collect();
    assert_eq!(
        seen,
        [
            ("i-0aaa", "ready", true, false),
            ("i-0bbb", "no-network", false, false),
            ("i-0ccc", "not-ready", false, true),
        ]
    );
}

#[tokio::test]
async fn control_plane_nodes_are_the_nodes_with_the_control_plane_role() {
    let fake = FakeKube::start(&[]);
    fake.add_node(
        "cp1",
        "control-plane",
        json!({"provider_id": "aws:///eu-west-1a/i-0c0ffee"}),
    );
    fake.add_node("cp2", "control-plane", json!({"provider_id": null}));
    fake.add_node("api1", "api-server", json!({}));
    fake.add_node("n1", "node", json!({}));
    let kube = fake.kube().await;

    let mut nodes = kube.control_plane_nodes().await.unwrap();
    nodes.sort();

    assert_eq!(
        nodes,
        [
            ("cp1".to_string(), Some("i-0c0ffee".to_string())),
            ("cp2".to_string(), None)
        ]
    );
}

#[tokio::test]
async fn delete_node_deletes_and_a_node_already_gone_is_not_an_error() {
    let fake = FakeKube::start(&[]);
    fake.add_node("n1", "node", json!({}));
    fake.add_node("n2", "node", json!({}));
    let kube = fake.kube().await;

    kube.delete_node("n1").await.unwrap();
    assert!(!fake.exists("/api/v1/nodes/n1"));
    assert!(fake.exists("/api/v1/nodes/n2"));
    kube.delete_node("n1").await.unwrap();
    assert_eq!(fake.calls("delete nodes 200"), 1);
    assert_eq!(fake.calls("delete nodes 404"), 1);
}

#[tokio::test]
async fn delete_node_reports_a_refusal() {
    let double = Double::start(|_, _| {
        status(
            403,
            "Forbidden",
            "nodes \"n1\" is forbidden: User \"ops\" cannot delete resource \"nodes\"",
        )
    })
    .await;
    let kube = double.kube().await;

    let err = kube.delete_node("n1").await.unwrap_err();

    assert!(matches!(err, KubeError::Api { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "deleting Node \"n1\" on \"t.example.com\": nodes \"n1\" is forbidden: User \"ops\" \
         cannot delete resource \"nodes\" (403 Forbidden)"
    );
    let seen: Vec<String> = double.seen().iter().map(|r| r.line()).collect();
    assert_eq!(seen, ["DELETE /api/v1/nodes/n1"]);
}

#[tokio::test]
async fn snapshot_reads_nodes_and_pods_as_validation_does() {
    let fake = FakeKube::start(&[]);
    fake.add_node(
        "cp1",
        "control-plane",
        json!({"zone": "eu-west-1a", "provider_id": "aws:///eu-west-1a/i-0cp"}),
    );
    fake.add_node(
        "n1",
        "node",
        json!({"zone": "eu-west-1b", "provider_id": "aws:///eu-west-1b/i-0n1"}),
    );
    fake.add_node("api1", "api-server", json!({"provider_id": null}));
    // etcd's container on cp1 stays unready; n1 goes NotReady, so its pods' containers do.
    fake.create(
        "/__fake/static-pods/cp1/etcd",
        json!({"present": true, "ready": false}),
    );
    fake.add_pod(
        "critical",
        "n1",
        json!({"metadata": {"namespace": "kube-system"},
               "spec": {"priorityClassName": "system-cluster-critical"}}),
    );
    fake.wait_running("kube-system", "critical");
    fake.create("/__fake/nodes/n1/condition", json!({"Ready": "False"}));
    // A pod no Node accepts stays Pending.
    fake.create(
        "/api/v1/namespaces/default/pods",
        json!({"metadata": {"name": "pending"},
               "spec": {"nodeSelector": {"disk": "none-has-it"},
                        "containers": [{"name": "main", "image": "busybox"}]}}),
    );
    wait_until("etcd-cp1 running, critical unready", || {
        let etcd = fake.get("/api/v1/namespaces/kube-system/pods/etcd-cp1");
        let critical = fake.get("/api/v1/namespaces/kube-system/pods/critical");
        etcd["status"]["phase"] == "Running"
            && critical["status"]["containerStatuses"][0]["ready"] == false
    });
    let kube = fake.kube().await;
    fake.reset_calls();

    let (nodes, pods) = kube.snapshot().await.unwrap();

    // Two list calls, whatever the size of the cluster.
    assert_eq!(fake.calls("list nodes"), 1);
    assert_eq!(fake.calls("list pods"), 1);
    let mut nodes: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.role.as_str(),
                n.zone.as_str(),
                n.instance_id.as_deref(),
                n.hostname.as_str(),
                n.ready,
                n.network_unavailable,
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            (
                "api1",
                "api-server",
                "us-east-1a",
                None,
                "api1",
                true,
                false
            ),
            (
                "cp1",
                "control-plane",
                "eu-west-1a",
                Some("i-0cp"),
                "cp1",
                true,
                false
            ),
            (
                "n1",
                "node",
                "eu-west-1b",
                Some("i-0n1"),
                "n1",
                false,
                false
            ),
        ]
    );
    let find = |name: &str| {
        pods.iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    };
    let etcd = find("kube-system/etcd-cp1");
    assert_eq!(etcd.node.as_deref(), Some("cp1"));
    assert_eq!(etcd.component.as_deref(), Some("etcd"));
    assert_eq!(etcd.priority_class.as_deref(), Some("system-node-critical"));
    assert_eq!(etcd.phase, "Running");
    assert_eq!(etcd.unready_containers, ["etcd"]);
    let apiserver = find("kube-system/kube-apiserver-cp1");
    assert_eq!(apiserver.component.as_deref(), Some("kube-apiserver"));
    assert!(apiserver.unready_containers.is_empty());
    let critical = find("kube-system/critical");
    assert_eq!(critical.node.as_deref(), Some("n1"));
    assert_eq!(
        critical.priority_class.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(critical.component, None);
    assert_eq!(critical.unready_containers, ["main"]);
    let pending = find("default/pending");
    assert_eq!(pending.node, None);
    assert_eq!(pending.phase, "Pending");
    assert!(pending.unready_containers.is_empty());
}

#[tokio::test]
async fn snapshot_of_an_api_that_does_not_answer_says_where() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let kubeconfig = support::write_kubeconfig(dir.path(), &url);
    let kube = Kube::connect(CLUSTER, std::slice::from_ref(&kubeconfig))
        .await
        .unwrap();

    let err = kube.snapshot().await.unwrap_err();

    let KubeError::Unreachable {
        cluster, server, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(cluster, CLUSTER);
    assert!(server.starts_with(&url), "{server}");
}
