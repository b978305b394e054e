//! The Kubernetes steps of replacing an instance, as kops takes them: mark the Node (taint
//! `kops.k8s.io/scheduled-for-update:PreferNoSchedule`, cordon, exclude it from external load
//! balancers), then drain it through the eviction API, which honours PodDisruptionBudgets: a
//! 429 is waited on and retried until the drain timeout, never bypassed.
//!
//! kubectl's drain is Go code (k8s.io/kubectl/pkg/drain) with no Rust crate equivalent; kube-rs
//! gives the eviction call, this module the loop around it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kopsrs_engine::rolling::{Drained, NodeState};
use kube::api::{EvictParams, ListParams, Patch, PatchParams};
use kube::Api;

use crate::{Kube, KubeError};

/// The annotation that asks for a Node's instance to be replaced.
pub const NEEDS_UPDATE: &str = "kops.k8s.io/needs-update";
/// The taint (effect PreferNoSchedule) put on a Node before it is drained.
pub const SCHEDULED_FOR_UPDATE: &str = "kops.k8s.io/scheduled-for-update";
/// The label that takes a Node out of external load balancers.
pub const EXCLUDE_FROM_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

/// How long to wait before retrying an eviction a disruption budget refused (kubectl's 5 s).
const BUDGET_RETRY: Duration = Duration::from_secs(5);

pub(crate) fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn daemon_set_pod(pod: &Pod) -> bool {
    pod.metadata.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.kind == "DaemonSet")
    })
}

/// A server error or no answer: worth trying again. Other refusals (4xx) are final.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500,
        _ => true,
    }
}

fn pod_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl Kube {
    /// Every Node that names its instance, by instance ID: one list.
    pub async fn node_states(&self) -> Result<BTreeMap<String, NodeState>, KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let nodes = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.failed("listing Nodes", e))?;
        Ok(nodes
            .items
            .iter()
            .filter_map(|n| {
                let seen = crate::node(n);
                let state = NodeState {
                    needs_update: n
                        .metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(NEEDS_UPDATE)),
                    ready: seen.ready && !seen.network_unavailable,
                    name: seen.name,
                };
                Some((seen.instance_id?, state))
            })
            .collect())
    }

    /// Taints `node` scheduled-for-update (PreferNoSchedule: pods evicted elsewhere avoid
    /// it) and, with `cordon`, cordons it and excludes it from external load balancers; in
    /// one patch guarded by the Node's `resourceVersion` (a concurrent change, a 409, is read
    /// again and retried). Nothing to do when the Node is gone or already marked.
    pub async fn mark_for_update(&self, node: &str, cordon: bool) -> Result<(), KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let what = || format!("marking Node {node:?} for replacement");
        for _ in 0..10 {
            let Some(current) = api
                .get_opt(node)
                .await
                .map_err(|e| self.failed(what(), e))?
            else {
                return Ok(());
            };
            let spec = current.spec.clone().unwrap_or_default();
            let mut taints = spec.taints.unwrap_or_default();
            let tainted = taints
                .iter()
                .any(|t| t.key == SCHEDULED_FOR_UPDATE && t.effect == "PreferNoSchedule");
            let labelled = current
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_FROM_LOAD_BALANCERS));
            if tainted && (!cordon || (labelled && spec.unschedulable == Some(true))) {
                return Ok(());
            }
            if !tainted {
                taints.push(Taint {
                    key: SCHEDULED_FOR_UPDATE.into(),
                    effect: "PreferNoSchedule".into(),
                    ..Taint::default()
                });
            }
            // Node taints have no patch merge key: the list goes whole, hence the version.
            let patch = match cordon {
                true => serde_json::json!({
                    "metadata": {
                        "resourceVersion": current.metadata.resource_version,
                        "labels": {EXCLUDE_FROM_LOAD_BALANCERS: ""},
                    },
                    "spec": {"unschedulable": true, "taints": taints},
                }),
                false => serde_json::json!({
                    "metadata": {"resourceVersion": current.metadata.resource_version},
                    "spec": {"taints": taints},
                }),
            };
            match api
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(e) => return Err(self.failed(what(), e)),
            }
        }
        Err(KubeError::Api {
            cluster: self.cluster.clone(),
            what: what(),
            reason: "the Node kept changing (10 conflicts in a row)".into(),
        })
    }

    /// The control-plane Nodes: (name, instance ID from `spec.providerID`).
    pub async fn control_plane_nodes(&self) -> Result<Vec<(String, Option<String>)>, KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let nodes = api
            .list(&ListParams::default().labels("node-role.kubernetes.io/control-plane"))
            .await
            .map_err(|e| self.failed("listing control-plane Nodes", e))?;
        Ok(nodes
            .items
            .iter()
            .map(|n| {
                let seen = crate::node(n);
                (seen.name, seen.instance_id)
            })
            .collect())
    }

    /// Deletes the Node of an instance about to be terminated (gone already: nothing to do),
    /// as kops does; the cloud controller would, later. A control-plane replacement removes
    /// the etcd members whose address no control-plane Node has, so the old Node must be
    /// gone before it joins.
    pub async fn delete_node(&self, node: &str) -> Result<(), KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        match api.delete(node, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.failed(format!("deleting Node {node:?}"), e)),
        }
    }

    /// Evicts every pod of `node` except DaemonSet and mirror pods (unmanaged pods and
    /// pods with emptyDir volumes too: their data goes, as with kops), all at once, and waits
    /// until they are gone. An eviction refused by a disruption budget (429) is retried
    /// every 5 s; past `timeout` the drain fails naming the pods left.
    pub async fn drain(
        &self,
        node: &str,
        timeout: Duration,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<Drained, KubeError> {
        let deadline = Instant::now() + timeout;
        let all: Api<Pod> = Api::all(self.client.clone());
        let pods = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(|e| self.failed(format!("listing the pods of Node {node:?}"), e))?;
        let pods: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| !is_mirror(p) && !daemon_set_pod(p))
            .collect();
        let results =
            futures::future::join_all(pods.iter().map(|p| self.evict(node, p, deadline, log)))
                .await;
        let mut drained = Drained::default();
        let mut left = Vec::new();
        for (pod, result) in pods.iter().zip(results) {
            let (ns, name) = pod_name(pod);
            match result {
                Ok(waits) => {
                    drained.budget_waits += waits;
                    drained.evicted.push(format!("{ns}/{name}"));
                }
                Err(reason) => left.push(format!("{ns}/{name} ({reason})")),
            }
        }
        if !left.is_empty() {
            return Err(KubeError::Drain {
                node: node.to_string(),
                reason: format!(
                    "{} pod(s) not evicted within {}: {}",
                    left.len(),
                    humantime::format_duration(timeout),
                    left.join(", ")
                ),
            });
        }
        Ok(drained)
    }

    /// Evicts one pod and waits until it is gone (or replaced by a pod of the same name);
    /// the number of budget refusals waited on, or why it was not evicted.
    async fn evict(
        &self,
        node: &str,
        pod: &Pod,
        deadline: Instant,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<u32, String> {
        let (ns, name) = pod_name(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let evictions: Api<Pod> = Api::namespaced(self.evict_client.clone(), &ns);
        let mut waits = 0;
        loop {
            match evictions.evict(&name, &EvictParams::default()).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(waits),
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    if Instant::now() + BUDGET_RETRY > deadline {
                        return Err(format!("still refused: {}", status.message));
                    }
                    if waits == 0 {
                        log(format!(
                            "node {node}: evicting {ns}/{name} is refused for now ({}); retrying every {}",
                            status.message,
                            humantime::format_duration(BUDGET_RETRY)
                        ));
                    }
                    waits += 1;
                    tokio::time::sleep(BUDGET_RETRY).await;
                }
                // A transient failure (5xx, a connection reset): again, within the deadline.
                Err(e) if transient(&e) && Instant::now() + BUDGET_RETRY <= deadline => {
                    log(format!(
                        "node {node}: evicting {ns}/{name} failed ({}); retrying",
                        crate::plain(&e)
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(crate::plain(&e)),
            }
        }
        let uid = pod.metadata.uid.clone();
        loop {
            match api.get_opt(&name).await {
                Ok(None) => return Ok(waits),
                Ok(Some(p)) if p.metadata.uid != uid => return Ok(waits),
                Ok(Some(_)) => {}
                Err(e) if transient(&e) => {}
                Err(e) => return Err(crate::plain(&e)),
            }
            if Instant::now() > deadline {
                return Err("evicted but still terminating".into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
