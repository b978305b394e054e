//! `controller adopt` and `controller release`: a cluster moves between the CLI and the
//! controller with no cloud change.

use std::path::PathBuf;

use anyhow::Result;
use kopsrs_kube::{Kube, KubeError};
use serde_json::json;

use super::{GROUP_NAME, PAUSED};
use crate::managed::{self, Claim, Manager};
use crate::problems::Problems;
use crate::Session;

/// Where the management cluster is, for `adopt` and `release`.
#[derive(Debug, Clone, Default)]
pub struct Management {
    /// Its kubeconfig files (none: the pod's service account).
    pub kubeconfig: Vec<PathBuf>,
    /// The context (none: the current one).
    pub context: Option<String>,
}

/// `controller adopt NAME --namespace NS`: a cluster the CLI manages becomes custom
/// resources the controller manages, with no cloud change (its spec as stored; the next
/// reconcile plans it empty). The `Cluster` is made paused, the groups are made, the store's
/// record names it, then the pause is lifted: a controller running meanwhile never sees it
/// unclaimed. Returns the resources made (`Kind namespace/name`).
pub async fn adopt(
    session: &Session,
    name: &str,
    namespace: &str,
    management: &Management,
) -> Result<Vec<String>> {
    let store = crate::session::open_store(session).await?;
    crate::kops_built::refuse(&store, name, "controller adopt").await?;
    let stored = crate::load_cluster(&store, name).await?;
    if let Some(manager) = managed::manager(&store, name).await? {
        return Err(Problems::one(
            format!(
                "{name} is managed from Cluster {}/{} already",
                manager.namespace, manager.name
            ),
            "nothing to adopt",
        )
        .into());
    }
    let kube = Kube::management(&management.kubeconfig, management.context.as_deref()).await?;
    let mut cluster = serde_json::to_value(&stored.cluster.value)?;
    cluster["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "annotations": {PAUSED: "true"},
    });
    let uid = kube.create_resource(namespace, cluster).await?;
    let mut made = vec![format!("Cluster {namespace}/{name}")];
    let mut groups_made = Vec::new();
    // Everything is made before the claim; a failure part-way takes back what was made,
    // so a second `adopt` starts clean.
    let result = async {
        for group in stored.group_values() {
            let group_name = group.metadata.name.clone();
            let mut value = serde_json::to_value(&group)?;
            let mut labels = group.metadata.labels.clone().unwrap_or_default();
            labels.insert(kopsrs_api::LABEL_CLUSTER.to_string(), name.to_string());
            value["metadata"] =
                json!({"name": group_name, "namespace": namespace, "labels": labels});
            let resource = match kube.create_resource(namespace, value.clone()).await {
                Ok(_) => group_name,
                // Another cluster of the namespace has a group of that name: this one's is
                // named after its cluster too, the group's name in the annotation.
                Err(KubeError::Api { reason, .. }) if reason.contains("409 AlreadyExists") => {
                    let prefixed = format!("{name}-{group_name}");
                    value["metadata"]["name"] = json!(prefixed);
                    value["metadata"]["annotations"] = json!({GROUP_NAME: group_name});
                    kube.create_resource(namespace, value).await?;
                    prefixed
                }
                Err(e) => return Err(e.into()),
            };
            made.push(format!("InstanceGroup {namespace}/{resource}"));
            groups_made.push(resource);
        }
        let me = Manager {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.clone(),
        };
        if let Claim::Other(other) = managed::claim(&store, name, &me).await? {
            return Err(Problems::one(
                format!(
                    "{name} was claimed by Cluster {}/{} meanwhile",
                    other.namespace, other.name
                ),
                "nothing was adopted",
            )
            .into());
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        if let Ok(Some(object)) = kube.cluster_object(namespace, name).await {
            if object.uid == uid {
                let _ = kube.drop_finalizer(namespace, name).await;
                let _ = kube.delete_cluster_resource(namespace, name).await;
            }
        }
        // Only what this run made: a group of that name made by someone else stays.
        for group in &groups_made {
            let _ = kube.delete_group(namespace, group).await;
        }
        return Err(e.context(format!(
            "adopting {name}: what was made in namespace {namespace} was deleted again"
        )));
    }
    kube.annotate_cluster(namespace, name, PAUSED, None).await?;
    Ok(made)
}

/// `controller release NAME`: the controller stops managing the cluster and the CLI
/// manages it again. Its custom resources are deleted (paused first, the finalizer removed:
/// nothing in the cloud or the store changes); the store's record goes.
pub async fn release(session: &Session, name: &str, management: &Management) -> Result<Manager> {
    let store = crate::session::open_store(session).await?;
    let Some(manager) = managed::manager(&store, name).await? else {
        return Err(Problems::one(
            format!(
                "{name} is not managed by kopsrs controller (no {}/{name}/{} in the state store)",
                store.url(),
                managed::RECORD
            ),
            "the CLI manages it already",
        )
        .into());
    };
    let kube = Kube::management(&management.kubeconfig, management.context.as_deref()).await?;
    let (ns, resource) = (&manager.namespace, &manager.name);
    let object = kube.cluster_object(ns, resource).await?;
    if let Some(object) = &object {
        if object.uid == manager.uid {
            kube.annotate_cluster(ns, resource, PAUSED, Some("true"))
                .await?;
        }
    }
    managed::release(&store, name).await?;
    if let Some(object) = object.filter(|o| o.uid == manager.uid) {
        // The pause moved its resourceVersion, and a running controller may write its
        // status meanwhile: read again on a conflict.
        kube.drop_finalizer(ns, resource).await?;
        kube.delete_resources(ns, &object.name).await?;
    }
    Ok(manager)
}
