//! `toolbox dump`: what support asks for about one cluster, in one document: its instances
//! as AWS reports them (group, state, private IP, launch-template version) and its Nodes
//! and pods as the Kubernetes API reports them. A cluster whose API does not answer still
//! gets the cloud part, with the reason the rest is missing.

use std::path::PathBuf;

use anyhow::Result;
use kopsrs_checks::validation;
use kopsrs_state::StateStore;
use serde::Serialize;

use crate::Session;

/// What `toolbox dump` is asked.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// The cluster (else the session's).
    pub cluster: Option<String>,
    /// The kubeconfig (else the settings' kubeconfig files).
    pub kubeconfig: Option<PathBuf>,
}

/// One cluster as `toolbox dump` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dump {
    /// The cluster's name.
    pub cluster: String,
    /// Its instances in AWS, per instance group.
    pub instances: Vec<kopsrs_aws::InstanceInfo>,
    /// What its Kubernetes API answered.
    pub kubernetes: KubernetesDump,
}

/// The Kubernetes part of a dump.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KubernetesDump {
    /// Why the API could not be read (the Nodes and pods are then empty); `None` when it
    /// answered.
    pub error: Option<String>,
    /// Every Node.
    pub nodes: Vec<validation::Node>,
    /// Every pod.
    pub pods: Vec<validation::Pod>,
}

/// `toolbox dump`: the instances (one listing of the cluster's groups, templates and
/// instances) and the Nodes and pods (one list each through the kubeconfig context named
/// after the cluster). An API that does not answer is a warning, not a failure.
pub async fn dump(session: &Session, store: &StateStore, options: &DumpOptions) -> Result<Dump> {
    let (name, instances) =
        crate::get::instances(session, store, options.cluster.as_deref()).await?;
    let snapshot = async {
        let kube = crate::validate::connect(session, &name, options.kubeconfig.as_deref()).await?;
        kube.snapshot()
            .await
            .map_err(|e| crate::validate::kube_problem(&name, &e))
    };
    let kubernetes = match snapshot.await {
        Ok((nodes, pods)) => KubernetesDump {
            error: None,
            nodes,
            pods,
        },
        Err(problems) => {
            let problem = problems.0.into_iter().next();
            let error = problem
                .as_ref()
                .map(|p| p.message.clone())
                .unwrap_or_default();
            session.reporter.warn(
                &format!("{error}; the dump has the cloud's part only"),
                problem.as_ref().and_then(|p| p.hint.as_deref()),
            );
            KubernetesDump {
                error: Some(error),
                ..KubernetesDump::default()
            }
        }
    };
    Ok(Dump {
        cluster: name,
        instances,
        kubernetes,
    })
}
