//! Draining a Node through the eviction API: what is evicted and what is left, disruption
//! budgets waited on until they allow or the deadline passes, and the API's failures, against
//! scripts/fake_kube.py (its eviction follows the real server's) and, for answers given on
//! cue, the in-process double.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kopsrs_kube::KubeError;
use serde_json::{json, Value};
use support::double::{not_found, ok, status, Double};
use support::{wait_until, FakeKube};

/// The messages a drain logs.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn sink(&self) -> impl Fn(String) + Sync + '_ {
        |message| self.0.lock().unwrap().push(message)
    }

    fn messages(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn drain_evicts_every_pod_but_daemon_set_and_mirror_pods() {
    let fake = FakeKube::start(&[]);
    // A control-plane Node: the fake's kubelet gives it mirror pods of the static control
    // plane, and the seeded DaemonSet kube-system/cilium a pod.
    fake.add_node("cp1", "control-plane", json!({}));
    fake.add_node("n2", "node", json!({}));
    let control_plane = json!({"spec": {"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}});
    // An unmanaged pod, a pod with local storage (emptyDir), and a Deployment's pod.
    fake.add_pod("loner", "cp1", control_plane.clone());
    let mut scratch = control_plane.clone();
    support::merge(
        &mut scratch,
        json!({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}], "containers": [
            {"name": "main", "image": "busybox",
             "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}]}}),
    );
    fake.add_pod("scratch", "cp1", scratch);
    fake.create(
        "/apis/apps/v1/namespaces/default/deployments",
        json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "nodeSelector": {"kubernetes.io/hostname": "cp1"},
                         "tolerations": control_plane["spec"]["tolerations"],
                         "containers": [{"name": "main", "image": "nginx"}]}}},
        }),
    );
    // A pod on another Node stays where it is.
    fake.add_pod("elsewhere", "n2", json!({}));
    let mut web = String::new();
    wait_until("the mirror, DaemonSet and web pods on cp1", || {
        let on_cp1 = fake.pods_on("cp1");
        web = on_cp1
            .iter()
            .find(|p| p.starts_with("default/web-"))
            .cloned()
            .unwrap_or_default();
        on_cp1.len() == 4 + 1 + 3 && !web.is_empty()
    });
    for pod in fake.pods_on("cp1") {
        let (ns, name) = pod.split_once('/').unwrap();
        fake.wait_running(ns, name);
    }
    let kube = fake.kube().await;
    // As a rolling update does: cordon first, so the Deployment's replacement stays Pending.
    kube.mark_for_update("cp1", true).await.unwrap();
    fake.reset_calls();

    let log = Log::default();
    let drained = kube
        .drain("cp1", Duration::from_secs(20), &log.sink())
        .await
        .unwrap();

    let mut evicted = drained.evicted.clone();
    evicted.sort();
    let mut expected = vec!["default/loner".to_string(), "default/scratch".into(), web];
    expected.sort();
    assert_eq!(evicted, expected);
    assert_eq!(drained.budget_waits, 0);
    assert!(log.messages().is_empty(), "{:?}", log.messages());
    // Only those were asked for: no eviction of a mirror or DaemonSet pod was even tried.
    assert_eq!(fake.calls("create pods/eviction"), 3);
    assert_eq!(fake.calls("create pods/eviction 201"), 3);
    let left = fake.pods_on("cp1");
    let mut components: Vec<&str> = left
        .iter()
        .filter_map(|p| p.strip_prefix("kube-system/")?.strip_suffix("-cp1"))
        .collect();
    components.sort();
    assert_eq!(
        components,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(
        left.iter().any(|p| p.starts_with("kube-system/cilium-")),
        "{left:?}"
    );
    assert_eq!(fake.pods_on("n2").len(), 2, "{:?}", fake.pods_on("n2"));
    assert!(fake.exists("/api/v1/namespaces/default/pods/elsewhere"));
}

/// Node `n1` with pod `guarded` (unmanaged), which budget `guard` (minAvailable 1) protects:
/// the API refuses its eviction until the budget changes.
fn guarded_pod(fake: &FakeKube) {
    fake.add_node("n1", "node", json!({}));
    fake.add_pod("guarded", "n1", json!({}));
    fake.wait_running("default", "guarded");
    fake.create(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        json!({"metadata": {"name": "guard"},
               "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}),
    );
    wait_until("the disruption controller has seen budget guard", || {
        let pdb = fake.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/guard");
        pdb["status"]["observedGeneration"] == pdb["metadata"]["generation"]
            && pdb["status"]["currentHealthy"] == 1
            && pdb["status"]["disruptionsAllowed"] == 0
    });
}

#[tokio::test]
async fn drain_waits_on_a_disruption_budget_until_it_allows() {
    let fake = Arc::new(FakeKube::start(&[]));
    guarded_pod(&fake);
    let kube = fake.kube().await;
    fake.reset_calls();
    // Someone relaxes the budget once the first eviction has been refused.
    let relaxer = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            wait_until("an eviction refused", || {
                fake.calls("create pods/eviction 429") >= 1
            });
            fake.patch(
                "/apis/policy/v1/namespaces/default/poddisruptionbudgets/guard",
                json!({"spec": {"minAvailable": 0}}),
            );
        })
    };

    let log = Log::default();
    let drained = kube
        .drain("n1", Duration::from_secs(20), &log.sink())
        .await
        .unwrap();
    relaxer.join().unwrap();

    assert_eq!(drained.evicted, ["default/guarded"]);
    assert_eq!(drained.budget_waits, 1);
    assert_eq!(fake.calls("create pods/eviction 429"), 1);
    assert_eq!(fake.calls("create pods/eviction 201"), 1);
    // The budget was honoured, never bypassed by a plain delete.
    assert_eq!(fake.calls("delete pods"), 0);
    assert!(!fake.exists("/api/v1/namespaces/default/pods/guarded"));
    let messages = log.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("default/guarded is refused for now")
            && messages[0].contains("disruption budget")
            && messages[0].contains("retrying every 5s"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn drain_gives_up_at_the_deadline_naming_the_pods_left() {
    let fake = FakeKube::start(&[]);
    guarded_pod(&fake);
    fake.add_pod("free", "n1", json!({}));
    fake.wait_running("default", "free");
    let kube = fake.kube().await;
    fake.reset_calls();

    let log = Log::default();
    // Refused at once, and again 5 s later, when a third try would end past the deadline.
    let err = kube
        .drain("n1", Duration::from_secs(8), &log.sink())
        .await
        .unwrap_err();

    let KubeError::Drain { node, reason } = &err else {
        panic!("not a drain error: {err}");
    };
    assert_eq!(node, "n1");
    assert!(
        reason.starts_with("1 pod(s) not evicted within 8s: default/guarded (still refused: "),
        "{reason}"
    );
    assert!(reason.contains("disruption budget"), "{reason}");
    assert!(!reason.contains("default/free"), "{reason}");
    assert_eq!(log.messages().len(), 1, "{:?}", log.messages());
    assert_eq!(fake.calls("create pods/eviction 429"), 2);
    assert_eq!(fake.calls("delete pods"), 0);
    let pod = fake.get("/api/v1/namespaces/default/pods/guarded");
    assert!(pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
    // The pod the budget does not cover went meanwhile.
    assert!(!fake.exists("/api/v1/namespaces/default/pods/free"));
}

fn pod(namespace: &str, name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "7"},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running"},
    })
}

fn pod_list(pods: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"},
           "items": pods})
}

const BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

#[tokio::test]
async fn drain_retries_budget_refusals_and_server_errors_then_waits_for_the_pods_to_go() {
    let double = Double::start(|request, nth| {
        let path = request.path.as_str();
        match (request.method.as_str(), path) {
            ("GET", "/api/v1/pods") => ok(pod_list(&[
                pod("default", "a", "uid-a"),
                pod("default", "b", "uid-b"),
                pod("default", "c", "uid-c"),
                pod("other", "d", "uid-d"),
            ])),
            // Refused twice by a budget, then evicted.
            ("POST", "/api/v1/namespaces/default/pods/a/eviction") if nth <= 2 => {
                status(429, "TooManyRequests", BUDGET)
            }
            // A server error, then evicted.
            ("POST", "/api/v1/namespaces/default/pods/b/eviction") if nth == 1 => {
                status(500, "InternalError", "etcdserver: leader changed")
            }
            // Gone before it could be evicted.
            ("POST", "/api/v1/namespaces/other/pods/d/eviction") => not_found("pods", "d"),
            ("POST", p) if p.ends_with("/eviction") => status(201, "", ""),
            ("GET", "/api/v1/namespaces/default/pods/a") => not_found("pods", "a"),
            // b: a server error while waiting, then gone.
            ("GET", "/api/v1/namespaces/default/pods/b") if nth == 1 => {
                status(500, "InternalError", "etcdserver: request timed out")
            }
            ("GET", "/api/v1/namespaces/default/pods/b") => not_found("pods", "b"),
            // c: still terminating, then replaced by a new pod of the same name.
            ("GET", "/api/v1/namespaces/default/pods/c") if nth == 1 => {
                ok(pod("default", "c", "uid-c"))
            }
            ("GET", "/api/v1/namespaces/default/pods/c") => ok(pod("default", "c", "uid-c2")),
            _ => not_found("path", path),
        }
    })
    .await;
    let kube = double.kube().await;

    let log = Log::default();
    let drained = kube
        .drain("n1", Duration::from_secs(30), &log.sink())
        .await
        .unwrap();

    let mut evicted = drained.evicted.clone();
    evicted.sort();
    assert_eq!(evicted, ["default/a", "default/b", "default/c", "other/d"]);
    assert_eq!(drained.budget_waits, 2);
    let seen = double.seen();
    let list = &seen[0];
    assert_eq!(list.line(), "GET /api/v1/pods");
    assert_eq!(list.param("fieldSelector"), Some("spec.nodeName=n1"));
    let evictions = |ns: &str, pod: &str| {
        double.count(
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"),
        )
    };
    assert_eq!(
        [
            evictions("default", "a"),
            evictions("default", "b"),
            evictions("default", "c"),
            evictions("other", "d")
        ],
        [3, 2, 1, 1]
    );
    // The API refuses an Eviction whose name is not the pod's.
    for request in seen.iter().filter(|r| r.path.ends_with("/eviction")) {
        let pod = request.path.rsplit('/').nth(1).unwrap();
        assert_eq!(request.body["metadata"]["name"], pod, "{request:?}");
    }
    assert_eq!(double.count("GET", "/api/v1/namespaces/default/pods/b"), 2);
    assert_eq!(double.count("GET", "/api/v1/namespaces/default/pods/c"), 2);
    assert_eq!(double.count("GET", "/api/v1/namespaces/other/pods/d"), 0);
    // One message per pod however often it is refused: a's budget, b's server error.
    let mut messages = log.messages();
    messages.sort();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("node n1: evicting default/a is refused for now (Cannot evict"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("node n1: evicting default/b failed (")
            && messages[1].contains("etcdserver: leader changed")
            && messages[1].ends_with("; retrying"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn drain_fails_at_once_on_a_refusal_other_than_a_budget() {
    let double = Double::start(|request, _| match request.path.as_str() {
        "/api/v1/pods" => ok(pod_list(&[
            pod("default", "a", "uid-a"),
            pod("default", "z", "uid-z"),
        ])),
        "/api/v1/namespaces/default/pods/a/eviction" => status(
            403,
            "Forbidden",
            "poddisruptionbudgets.policy \"guard\" is forbidden: pdb disruptions allowed is negative",
        ),
        "/api/v1/namespaces/default/pods/z/eviction" => status(201, "", ""),
        path => not_found("path", path),
    })
    .await;
    let kube = double.kube().await;

    let err = kube
        .drain("n1", Duration::from_secs(30), &|_| {})
        .await
        .unwrap_err();

    let KubeError::Drain { node, reason } = &err else {
        panic!("not a drain error: {err}");
    };
    assert_eq!(node, "n1");
    assert!(
        reason.starts_with("1 pod(s) not evicted within 30s: default/a (")
            && reason.contains("pdb disruptions allowed is negative"),
        "{reason}"
    );
    assert_eq!(
        double.count("POST", "/api/v1/namespaces/default/pods/a/eviction"),
        1
    );
    assert_eq!(double.count("GET", "/api/v1/namespaces/default/pods/a"), 0);
    assert_eq!(double.count("GET", "/api/v1/namespaces/default/pods/z"), 1);
}

#[tokio::test]
async fn drain_fails_when_the_pods_cannot_be_listed() {
    let double = Double::start(|_, _| status(500, "InternalError", "etcdserver: no leader")).await;
    let kube = double.kube().await;

    let err = kube
        .drain("n1", Duration::from_secs(30), &|_| {})
        .await
        .unwrap_err();

    assert!(matches!(err, KubeError::Api { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "listing the pods of Node \"n1\" on \"t.example.com\": etcdserver: no leader (500 InternalError)"
    );
    let seen: Vec<String> = double.seen().iter().map(|r| r.line()).collect();
    assert_eq!(seen, ["GET /api/v1/pods"]);
}
