//! The Kubernetes side of day two. A client made as kops makes it (the kubeconfig context
//! named after the cluster, from `--kubeconfig` or `$KUBECONFIG`, the one `export
//! kubeconfig` writes), and what `validate cluster` reads of the cluster: every Node and every
//! pod, one list each whatever the size of the cluster. The decisions are
//! [`kopsrs_checks::validation`]'s; this crate only reads. The only crate that depends on
//! `kube` and `k8s-openapi`. Beside it: what a rolling update does to Nodes (`drain`), a Lease
//! lock (`lease`), etcd's membership through `etcdctl` in the etcd static pods (`etcd`), and
//! what `manifests` asks of the API.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Node, Pod};
use kopsrs_checks::validation;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub mod controller;
mod drain;
mod etcd;
mod lease;
pub mod manifests;
pub use drain::{EXCLUDE_FROM_LOAD_BALANCERS, NEEDS_UPDATE, SCHEDULED_FOR_UPDATE};
pub use etcd::{EndpointHealth, EtcdMember, EtcdMembers, EXEC_TIMEOUT};
pub use kopsrs_engine::rolling::Drained;
pub use lease::{HeldLease, LeaseTaken};

/// Why the Kubernetes API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig, or no context named after the cluster in it.
    #[error("no kubeconfig context named {cluster:?} in {where_}")]
    NoContext {
        /// The cluster.
        cluster: String,
        /// Where kopsrs looked.
        where_: String,
    },
    /// The kubeconfig could not be read or used.
    #[error("the kubeconfig for {cluster:?} cannot be used: {reason}")]
    Config {
        /// The cluster.
        cluster: String,
        /// What is wrong.
        reason: String,
    },
    /// The API refused or failed a request.
    #[error("{what} on {cluster:?}: {reason}")]
    Api {
        /// The cluster.
        cluster: String,
        /// What kopsrs was doing.
        what: String,
        /// The API's answer.
        reason: String,
    },
    /// A Node could not be drained in time.
    #[error("draining node {node:?}: {reason}")]
    Drain {
        /// The Node.
        node: String,
        /// What was left.
        reason: String,
    },
    /// The API did not answer, or refused.
    #[error("the Kubernetes API of {cluster:?} at {server} did not answer: {reason}")]
    Unreachable {
        /// The cluster.
        cluster: String,
        /// The API's URL.
        server: String,
        /// What happened.
        reason: String,
    },
}

/// The kubeconfig files merged in order, as kubectl merges `$KUBECONFIG` (the first file
/// that sets a value wins; files that do not exist are skipped); `None` when none exists.
fn merged_kubeconfig(kubeconfig: &[PathBuf]) -> Result<Option<Kubeconfig>, String> {
    let mut merged: Option<Kubeconfig> = None;
    for path in kubeconfig.iter().filter(|p| p.exists()) {
        let file = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
        merged = Some(match merged {
            None => file,
            Some(before) => before.merge(file).map_err(|e| e.to_string())?,
        });
    }
    Ok(merged)
}

/// The current context of the kubeconfig files (`current-context`, the first file that
/// sets it), as kops reads it for the cluster name no flag gave; `None` when no file sets
/// one.
pub fn current_context(kubeconfig: &[PathBuf]) -> Result<Option<String>, String> {
    Ok(merged_kubeconfig(kubeconfig)?
        .and_then(|file| file.current_context)
        .filter(|context| !context.trim().is_empty()))
}

/// A client for one cluster's API.
pub struct Kube {
    pub(crate) client: Client,
    /// The same API without kube's own retries of 429 (evictions).
    pub(crate) evict_client: Client,
    pub(crate) cluster: String,
    server: String,
    /// The longest one exec may take ([`EXEC_TIMEOUT`] unless set).
    pub(crate) exec_timeout: std::time::Duration,
}

impl Kube {
    /// The client of the context named `cluster` in `kubeconfig`: the files merged in
    /// order, as kubectl merges `$KUBECONFIG` (the caller resolves `--kubeconfig`,
    /// `$KUBECONFIG` and `~/.kube/config`; files that do not exist are skipped).
    pub async fn connect(cluster: &str, kubeconfig: &[PathBuf]) -> Result<Kube, KubeError> {
        let config_err = |reason: String| KubeError::Config {
            cluster: cluster.to_string(),
            reason,
        };
        let where_ = kubeconfig
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let merged = merged_kubeconfig(kubeconfig).map_err(config_err)?;
        let Some(file) = merged else {
            return Err(KubeError::NoContext {
                cluster: cluster.to_string(),
                where_,
            });
        };
        if !file.contexts.iter().any(|c| c.name == cluster) {
            return Err(KubeError::NoContext {
                cluster: cluster.to_string(),
                where_,
            });
        }
        let options = KubeConfigOptions {
            context: Some(cluster.to_string()),
            ..Default::default()
        };
        let mut config = Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| config_err(e.to_string()))?;
        // kube waits for an answer forever by default; a control plane terminated mid-call
        // (a half-open connection) would stall a roll. kopsrs makes no watch calls.
        config.read_timeout = Some(std::time::Duration::from_secs(60));
        config.write_timeout = Some(std::time::Duration::from_secs(60));
        let server = config.cluster_url.to_string();
        // kube retries 429, 503 and 504 by itself (15 times, backing off up to 1000 s). For
        // evictions a 429 is a disruption budget saying no: the drain loop waits on it (and
        // retries 5xx and transport errors) itself, within --drain-timeout, and reports it; so
        // evictions go through a client without kube's retries.
        let mut no_retry = config.clone();
        no_retry.default_retry = false;
        let evict_client = Client::try_from(no_retry).map_err(|e| config_err(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| config_err(e.to_string()))?;
        Ok(Kube {
            client,
            evict_client,
            cluster: cluster.to_string(),
            server,
            exec_timeout: EXEC_TIMEOUT,
        })
    }

    /// A failed request: the API's refusal (`Api`), else `Unreachable`.
    fn failed(&self, what: impl Into<String>, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) => KubeError::Api {
                cluster: self.cluster.clone(),
                what: what.into(),
                reason: format!("{} ({} {})", status.message, status.code, status.reason),
            },
            e => self.unreachable(e),
        }
    }

    fn unreachable(&self, e: kube::Error) -> KubeError {
        KubeError::Unreachable {
            cluster: self.cluster.clone(),
            server: self.server.clone(),
            reason: plain(&e),
        }
    }

    /// Every Node and every pod, as validation reads them: two list calls.
    pub async fn snapshot(
        &self,
    ) -> Result<(Vec<validation::Node>, Vec<validation::Pod>), KubeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let pods: Api<Pod> = Api::all(self.client.clone());
        let all = ListParams::default();
        let (nodes, pods) = tokio::join!(nodes.list(&all), pods.list(&all));
        let nodes = nodes.map_err(|e| self.unreachable(e))?;
        let pods = pods.map_err(|e| self.unreachable(e))?;
        Ok((
            nodes.items.iter().map(node).collect(),
            pods.items.iter().map(pod).collect(),
        ))
    }
}

/// An error and its causes on one line.
pub(crate) fn plain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn condition(node: &Node, kind: &str) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == kind))
        .is_some_and(|c| c.status == "True")
}

/// A Node as validation reads it: the instance from `spec.providerID` (`aws:///ZONE/ID`),
/// the role from the role labels.
pub(crate) fn node(n: &Node) -> validation::Node {
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let role = if labels.contains_key("node-role.kubernetes.io/control-plane") {
        "control-plane"
    } else if labels.contains_key("node-role.kubernetes.io/api-server") {
        "api-server"
    } else {
        "node"
    };
    let name = n.metadata.name.clone().unwrap_or_default();
    validation::Node {
        instance_id: n
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .and_then(|p| p.rsplit('/').next())
            .filter(|id| id.starts_with("i-"))
            .map(str::to_string),
        role: role.to_string(),
        zone: labels
            .get("topology.kubernetes.io/zone")
            .cloned()
            .unwrap_or_default(),
        hostname: n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "Hostname"))
            .map(|a| a.address.clone())
            .unwrap_or_else(|| name.clone()),
        ready: condition(n, "Ready"),
        network_unavailable: condition(n, "NetworkUnavailable"),
        karpenter_pool: labels.get("karpenter.sh/nodepool").cloned(),
        name,
    }
}

fn pod(p: &Pod) -> validation::Pod {
    let meta = &p.metadata;
    let status = p.status.as_ref();
    validation::Pod {
        name: format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        priority_class: p.spec.as_ref().and_then(|s| s.priority_class_name.clone()),
        component: meta
            .labels
            .as_ref()
            .and_then(|l| l.get("component"))
            .cloned(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        unready_containers: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| {
                c.iter()
                    .filter(|c| !c.ready)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl kopsrs_engine::rolling::ClusterNodes for Kube {
    type Error = KubeError;

    async fn node_states(
        &self,
    ) -> Result<std::collections::BTreeMap<String, kopsrs_engine::rolling::NodeState>, KubeError>
    {
        Kube::node_states(self).await
    }

    async fn mark_for_update(&self, node: &str, cordon: bool) -> Result<(), KubeError> {
        Kube::mark_for_update(self, node, cordon).await
    }

    async fn drain(
        &self,
        node: &str,
        timeout: std::time::Duration,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<Drained, KubeError> {
        Kube::drain(self, node, timeout, log).await
    }

    async fn delete_node(&self, node: &str) -> Result<(), KubeError> {
        Kube::delete_node(self, node).await
    }

    async fn control_plane_nodes(&self) -> Result<Vec<(String, Option<String>)>, KubeError> {
        Kube::control_plane_nodes(self).await
    }

    async fn snapshot(&self) -> Result<(Vec<validation::Node>, Vec<validation::Pod>), KubeError> {
        Kube::snapshot(self).await
    }

    async fn versions(&self) -> Result<kopsrs_engine::skew::Versions, KubeError> {
        Kube::versions(self).await
    }

    async fn etcd_members(
        &self,
        via_node: &str,
    ) -> Result<Vec<kopsrs_engine::rolling::EtcdMember>, KubeError> {
        // The list (linearizable: no quorum, no list), then each client URL's health.
        let members = Kube::etcd_members(self, via_node).await?;
        let health = Kube::etcd_health(self, via_node).await?;
        Ok(members
            .members
            .into_iter()
            .map(|m| kopsrs_engine::rolling::EtcdMember {
                healthy: !m.client_urls.is_empty()
                    && m.client_urls
                        .iter()
                        .all(|url| health.iter().any(|h| &h.endpoint == url && h.healthy)),
                id: m.id,
                name: m.name,
            })
            .collect())
    }

    async fn etcd_remove_member(&self, via_node: &str, id: u64) -> Result<(), KubeError> {
        Kube::etcd_remove_member(self, via_node, id).await
    }
}

impl Kube {
    /// The answering API server's version (`/version`) and every Node's kubelet version
    /// (`status.nodeInfo`): one request each.
    pub async fn versions(&self) -> Result<kopsrs_engine::skew::Versions, KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let every = ListParams::default();
        let (server, nodes) = tokio::join!(self.client.apiserver_version(), api.list(&every));
        let server = server.map_err(|e| self.failed("reading the API server's version", e))?;
        let nodes = nodes.map_err(|e| self.failed("listing Nodes", e))?;
        Ok(kopsrs_engine::skew::Versions {
            api_server: server.git_version,
            kubelets: nodes
                .items
                .iter()
                .filter_map(|n| {
                    let seen = node(n);
                    let version = n
                        .status
                        .as_ref()?
                        .node_info
                        .as_ref()?
                        .kubelet_version
                        .clone();
                    Some(kopsrs_engine::skew::Kubelet {
                        control_plane: seen.role == "control-plane",
                        node: seen.name,
                        version,
                    })
                })
                .collect(),
        })
    }
}
