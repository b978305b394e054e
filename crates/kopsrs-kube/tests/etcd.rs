//! etcd's membership read and changed through `etcdctl` in the etcd static pods, against
//! scripts/fake_kube.py's simulated etcd (whose exec and etcdctl answers kubectl checks in
//! scripts/tests/test_fake_kube.py): members, health with a dead member, removal with retries,
//! refusal of a pod that is not the Node's etcd, no quorum, a hung exec.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{wait_until, FakeKube};

/// The fake with control planes cp1..cpN, every member joined and its etcd pod Ready.
fn control_planes(count: usize) -> FakeKube {
    let fake = FakeKube::start(&[]);
    for n in 1..=count {
        fake.add_node(&format!("cp{n}"), "control-plane", json!({}));
    }
    wait_until("every member joined", || members(&fake).len() == count);
    for n in 1..=count {
        fake.wait_running("kube-system", &format!("etcd-cp{n}"));
    }
    fake
}

/// The fake's own view of the members (`GET /__fake/etcd`).
fn members(fake: &FakeKube) -> Vec<Value> {
    fake.get("/__fake/etcd")["members"]
        .as_array()
        .unwrap()
        .clone()
}

fn member<'a>(members: &'a [Value], name: &str) -> &'a Value {
    members
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {members:?}"))
}

#[tokio::test]
async fn members_of_three_control_planes_as_the_named_node_lists_them() {
    let fake = control_planes(3);
    let kube = fake.kube().await;
    fake.reset_calls();
    let listed = kube.etcd_members("cp2").await.unwrap();
    let truth = members(&fake);
    let state = fake.get("/__fake/etcd");
    let names: Vec<&str> = listed.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["cp1", "cp2", "cp3"]);
    for m in &listed.members {
        let expected = member(&truth, &m.name);
        // IDs beyond i64 (the fake sets the top bit) survive as u64
        assert_eq!(m.id, expected["ID"].as_u64().unwrap());
        assert!(m.id >= 1 << 63);
        assert_eq!(m.peer_urls, [expected["peerURLs"][0].as_str().unwrap()]);
        assert_eq!(m.client_urls, [expected["clientURLs"][0].as_str().unwrap()]);
        assert!(!m.learner);
    }
    // The member on cp2 answered.
    assert_eq!(
        listed.member_id,
        member(&truth, "cp2")["ID"].as_u64().unwrap()
    );
    assert_eq!(
        format!("{:x}", listed.cluster_id),
        state["cluster_id"].as_str().unwrap()
    );
    // One read of the pod, one exec into it.
    assert_eq!(fake.calls("get pods 200"), 1);
    assert_eq!(fake.calls("get pods/exec 101"), 1);
}

#[tokio::test]
async fn health_shows_a_member_whose_machine_vanished_unhealthy() {
    let fake = control_planes(3);
    let kube = fake.kube().await;
    let (code, _) = fake.request("DELETE", "/__fake/nodes/cp3", None);
    assert_eq!(code, 200);
    let dead = member(&members(&fake), "cp3")["clientURLs"][0]
        .as_str()
        .unwrap()
        .to_string();

    let health = kube.etcd_health("cp1").await.unwrap();
    assert_eq!(health.len(), 3, "{health:?}");
    for endpoint in &health {
        if endpoint.endpoint == dead {
            assert!(!endpoint.healthy);
            assert_eq!(endpoint.error.as_deref(), Some("context deadline exceeded"));
        } else {
            assert!(endpoint.healthy, "{endpoint:?}");
            assert_eq!(endpoint.error, None);
        }
    }
    assert!(health.iter().any(|h| h.endpoint == dead));
    // The member stays listed: etcd knows no more than that it does not answer.
    let listed = kube.etcd_members("cp1").await.unwrap();
    assert_eq!(listed.members.len(), 3);

    // A member that is down cannot answer for the others.
    fake.create("/__fake/etcd/members/cp2", json!({"healthy": false}));
    let err = kube.etcd_members("cp2").await.unwrap_err().to_string();
    assert!(err.contains("context deadline exceeded"), "{err}");
}

#[tokio::test]
async fn removal_is_retried_after_failures_and_gives_up_after_three() {
    let fake = control_planes(3);
    let kube = fake.kube().await;
    fake.request("DELETE", "/__fake/nodes/cp3", None);
    let cp3 = member(&members(&fake), "cp3")["ID"].as_u64().unwrap();

    // Two failures, then the removal goes through.
    fake.create("/__fake/etcd/fail-removes", json!({"count": 2}));
    fake.reset_calls();
    kube.etcd_remove_member("cp1", cp3).await.unwrap();
    let names: Vec<Value> = members(&fake).iter().map(|m| m["name"].clone()).collect();
    assert_eq!(names, ["cp1", "cp2"]);
    assert_eq!(fake.calls("get pods/exec 101"), 3);
    assert_eq!(fake.get("/__fake/etcd")["fail_removes"], 0);

    // Gone already (pruned by another node, or a retry of a removal that went through): done.
    fake.reset_calls();
    kube.etcd_remove_member("cp2", cp3).await.unwrap();
    assert_eq!(fake.calls("get pods/exec 101"), 1);

    // Failing every time: the third failure is the error, naming the pod and the command.
    let cp2 = member(&members(&fake), "cp2")["ID"].as_u64().unwrap();
    fake.create("/__fake/etcd/fail-removes", json!({"count": 5}));
    fake.reset_calls();
    let err = kube
        .etcd_remove_member("cp1", cp2)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(fake.calls("get pods/exec 101"), 3);
    for part in [
        format!("`etcdctl member remove {cp2:x}` in pod kube-system/etcd-cp1"),
        "exit code 1: Error: etcdserver: request timed out".into(),
        "(attempt 3 of 3)".into(),
    ] {
        assert!(err.contains(&part), "{part:?} not in {err}");
    }
    assert_eq!(members(&fake).len(), 2);
}

#[tokio::test]
async fn only_the_nodes_etcd_mirror_pod_is_used() {
    let fake = control_planes(1);
    fake.add_node("n1", "node", json!({}));
    let kube = fake.kube().await;
    // A pod that has the name and the container, made through the API: not the static pod.
    fake.add_pod(
        "etcd-n1",
        "n1",
        json!({"metadata": {"namespace": "kube-system", "labels": {"component": "etcd"}},
               "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd"}]}}),
    );
    fake.wait_running("kube-system", "etcd-n1");
    fake.reset_calls();
    let err = kube.etcd_members("n1").await.unwrap_err().to_string();
    assert!(
        err.contains("pod kube-system/etcd-n1 is not a mirror pod"),
        "{err}"
    );
    let err = kube.etcd_health("n1").await.unwrap_err().to_string();
    assert!(err.contains("not a mirror pod"), "{err}");
    let err = kube.etcd_remove_member("n1", 1).await.unwrap_err();
    assert!(err.to_string().contains("not a mirror pod"), "{err}");
    // No node by that name: no pod, and no pod labelled component=etcd stands in for it.
    let err = kube.etcd_members("cp9").await.unwrap_err().to_string();
    assert!(
        err.contains("etcd static pod of node \"cp9\"") && err.contains("does not exist"),
        "{err}"
    );
    // Refused before any exec.
    assert_eq!(fake.calls("get pods/exec"), 0);
    // The real one answers.
    assert_eq!(kube.etcd_members("cp1").await.unwrap().members.len(), 1);
}

#[tokio::test]
async fn without_a_quorum_the_error_says_so() {
    let fake = control_planes(3);
    let kube = fake.kube().await;
    fake.request("DELETE", "/__fake/nodes/cp2", None);
    fake.request("DELETE", "/__fake/nodes/cp3", None);
    assert_eq!(fake.get("/__fake/etcd")["quorum"], false);

    let err = kube.etcd_members("cp1").await.unwrap_err().to_string();
    for part in [
        "`etcdctl member list -w json` in pod kube-system/etcd-cp1",
        "exit code 1: Error: context deadline exceeded",
        "lost its quorum",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    // No list of endpoints without the member list.
    let err = kube.etcd_health("cp1").await.unwrap_err().to_string();
    assert!(
        err.contains("`etcdctl endpoint health --cluster -w json`"),
        "{err}"
    );
    assert!(err.contains("context deadline exceeded"), "{err}");
    // Nor a removal.
    let cp3 = member(&members(&fake), "cp3")["ID"].as_u64().unwrap();
    let err = kube.etcd_remove_member("cp1", cp3).await.unwrap_err();
    assert!(err.to_string().contains("(attempt 3 of 3)"), "{err}");
    assert_eq!(members(&fake).len(), 3);
}

#[tokio::test]
async fn an_exec_that_hangs_is_cut_off() {
    let fake = control_planes(1);
    let kube = fake
        .kube()
        .await
        .with_exec_timeout(Duration::from_millis(800));
    fake.create("/__fake/etcd/stall", json!({"seconds": 5}));
    let started = Instant::now();
    let err = kube.etcd_members("cp1").await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert!(err.contains("no exit status within 800ms"), "{err}");
    fake.create("/__fake/etcd/stall", json!({"seconds": 0}));
    assert_eq!(kube.etcd_members("cp1").await.unwrap().members.len(), 1);
}
