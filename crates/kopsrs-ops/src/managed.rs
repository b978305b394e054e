//! Who manages a cluster: the CLI (no record), or `kopsrs controller` from a `Cluster` custom
//! resource (`<cluster>/kopsrs-controller.yaml` in the state store, naming the resource).
//!
//! The record is made create-only, so two custom resources (two namespaces, two management
//! clusters) cannot both claim one cluster; the controller acts only on a cluster whose
//! record names its resource. `update cluster --yes` and `reconcile cluster --yes` refuse a
//! managed cluster unless `--force` says so (the controller would write the custom
//! resource's spec back over any change the CLI made); `delete cluster --yes` refuses it.

use anyhow::Result;
use kopsrs_state::{StateStore, StateStoreError};
use serde::{Deserialize, Serialize};

use crate::problems::Problems;

/// The record's key in a cluster's folder.
pub const RECORD: &str = "kopsrs-controller.yaml";

/// The custom resource that manages a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the cluster's).
    pub name: String,
    /// Its UID: a resource deleted and made again under the same name is another one.
    pub uid: String,
}

impl Manager {
    fn describe(&self) -> String {
        format!(
            "Cluster {}/{} (uid {})",
            self.namespace, self.name, self.uid
        )
    }
}

fn key(cluster: &str) -> String {
    format!("{cluster}/{RECORD}")
}

/// The cluster's manager, `None` when the CLI manages it.
pub async fn manager(store: &StateStore, cluster: &str) -> Result<Option<Manager>> {
    let Some(found) = store.get(&key(cluster)).await? else {
        return Ok(None);
    };
    let manager = serde_yaml_ng::from_slice(&found.value).map_err(|e| {
        Problems::one(
            format!(
                "{}/{}: not a manager record: {e}",
                store.url(),
                key(cluster)
            ),
            "delete the object if no controller manages the cluster",
        )
    })?;
    Ok(Some(manager))
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The record names `manager` (made now, or before).
    Held,
    /// Another resource manages the cluster.
    Other(Manager),
}

/// Makes `manager` the cluster's manager unless another resource is.
pub async fn claim(store: &StateStore, cluster: &str, manager: &Manager) -> Result<Claim> {
    let text = serde_yaml_ng::to_string(manager)?;
    match store.put(&key(cluster), text.into(), None).await {
        Ok(_) => Ok(Claim::Held),
        Err(StateStoreError::AlreadyExists(_) | StateStoreError::Conflict(_)) => {
            match self::manager(store, cluster).await? {
                Some(found) if &found == manager => Ok(Claim::Held),
                Some(found) => Ok(Claim::Other(found)),
                // Released in between: claim again.
                None => Box::pin(claim(store, cluster, manager)).await,
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Hands the cluster back to the CLI (the record removed).
pub async fn release(store: &StateStore, cluster: &str) -> Result<()> {
    store.delete(&key(cluster)).await?;
    Ok(())
}

/// Refuses `verb` on a cluster a controller manages, unless `force`.
pub async fn refuse(store: &StateStore, cluster: &str, verb: &str, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let Some(manager) = manager(store, cluster).await? else {
        return Ok(());
    };
    Err(Problems::one(
        format!(
            "{verb} refused: {cluster} is managed by kopsrs controller from {}, which writes that resource's spec back over changes made here; nothing was changed",
            manager.describe()
        ),
        format!(
            "edit the custom resource (`kubectl edit clusters.kops.k8s.io {} -n {}`), or pass --force to act anyway",
            manager.name, manager.namespace
        ),
    )
    .into())
}

/// Refuses `verb` changing the spec in the store of a cluster a controller manages: the
/// controller writes its resource's spec back over it, so the change would be lost.
pub async fn refuse_spec_change(store: &StateStore, cluster: &str, verb: &str) -> Result<()> {
    let Some(manager) = manager(store, cluster).await? else {
        return Ok(());
    };
    Err(Problems::one(
        format!(
            "{verb} refused: {cluster} is managed by kopsrs controller from {}, which writes that resource's spec over the state store's; nothing was changed",
            manager.describe()
        ),
        format!(
            "change the custom resource instead (`kubectl edit clusters.kops.k8s.io {name} -n {ns}`, or the InstanceGroup resources), or hand the cluster back first with `kopsrs controller release {cluster}`",
            name = manager.name,
            ns = manager.namespace
        ),
    )
    .into())
}

/// Refuses deleting a cluster a controller manages: deleting it is the custom resource's
/// deletion policy, or the CLI's once the cluster is released.
pub async fn refuse_delete(store: &StateStore, cluster: &str, verb: &str) -> Result<()> {
    let Some(manager) = manager(store, cluster).await? else {
        return Ok(());
    };
    Err(Problems::one(
        format!(
            "{verb} refused: {cluster} is managed by kopsrs controller from {}; nothing was changed",
            manager.describe()
        ),
        format!(
            "delete the custom resource with the annotation kopsrs.io/deletion-policy: Delete (`kubectl annotate clusters.kops.k8s.io {name} -n {ns} kopsrs.io/deletion-policy=Delete`, then `kubectl delete clusters.kops.k8s.io {name} -n {ns}`), or hand it back first with `kopsrs controller release {cluster}`",
            name = manager.name,
            ns = manager.namespace
        ),
    )
    .into())
}
