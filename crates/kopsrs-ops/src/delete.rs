//! `delete cluster`, `delete instancegroup`, `delete -f`.
//!
//! `delete cluster` finds everything the cluster owns in AWS (by tag, also what a crashed
//! apply left), deletes it children first, checks nothing is left, then removes the cluster
//! from the state store. `unregister` removes only the spec.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use kopsrs_api::Document;
use kopsrs_state::{layout, StateStore};

use crate::cluster::{load_cluster, locked};
use crate::problems::Problems;
use crate::session::{self, Session};

/// What `delete cluster` found, and whether it deleted it.
#[derive(Debug, Default)]
pub struct DeleteReport {
    /// The cloud resources (address, ID) of the cluster (none with `unregister`).
    pub resources: Vec<(String, String)>,
    /// The cluster's objects in the state store.
    pub objects: Vec<String>,
    /// Whether they were deleted (`yes`).
    pub deleted: bool,
    /// The state store objects removed.
    pub removed: usize,
    /// The state store's URL.
    pub store: String,
}

/// `delete cluster`: its cloud resources then its state, or with `unregister` only its
/// state. Without `yes`, what would go.
/// `by_manager`: the controller deleting a cluster it manages (its `Delete` policy); a
/// cluster `kopsrs controller` manages is otherwise refused with `yes`.
pub async fn delete_cluster(
    global: &Session,
    cluster: Option<&str>,
    unregister: bool,
    yes: bool,
    by_manager: bool,
) -> Result<DeleteReport> {
    let store = session::open_store(global).await?;
    let name = session::cluster_name(global, cluster)?;
    load_cluster(&store, &name).await?;
    if yes && !by_manager {
        let verb = match unregister {
            true => "delete cluster --unregister --yes",
            false => "delete cluster --yes",
        };
        crate::managed::refuse_delete(&store, &name, verb).await?;
    }
    if !unregister {
        return delete_cloud(global, &store, &name, yes).await;
    }
    let objects = store.list(&name).await?;
    let mut report = DeleteReport {
        objects,
        store: store.url().to_string(),
        ..DeleteReport::default()
    };
    if !yes {
        crate::kops_built::warn(
            global,
            &store,
            &name,
            "`delete cluster --unregister --yes` is refused",
        )
        .await?;
        return Ok(report);
    }
    crate::kops_built::refuse(&store, &name, "delete cluster --unregister --yes").await?;
    // The lock lives inside the removed prefix; releasing it is then a no-op.
    let purpose = Some("delete cluster --unregister");
    report.removed = locked(&*global.reporter, &store, &name, purpose, async {
        Ok(store.delete_cluster(&name).await?)
    })
    .await?;
    report.deleted = true;
    Ok(report)
}

/// `delete -f`: the instance groups the files name, by cluster (a Cluster in the files is
/// refused: deleting one is `delete cluster`). Returns the groups, by cluster.
pub async fn delete_files(
    global: &Session,
    paths: &[PathBuf],
    yes: bool,
) -> Result<BTreeMap<String, Vec<String>>> {
    let store = session::open_store(global).await?;
    let documents = session::read_documents(global, paths)?;
    let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for document in &documents {
        match document {
            Document::InstanceGroup(g) => {
                let cluster = g
                    .cluster_label()
                    .map(str::to_string)
                    .or_else(|| global.name.clone())
                    .ok_or_else(|| {
                        Problems::one(
                            format!("{}: no cluster", document.describe()),
                            "add the kops.k8s.io/cluster label or pass --name",
                        )
                    })?;
                by_cluster
                    .entry(cluster)
                    .or_default()
                    .push(g.metadata.name.clone());
            }
            Document::Cluster(c) => {
                return Err(Problems::one(
                    format!(
                        "Cluster/{}: deleting a cluster needs `kopsrs delete cluster --unregister`",
                        c.metadata.name
                    ),
                    "remove the Cluster from the file to delete only its instance groups",
                )
                .into())
            }
            other => {
                return Err(Problems::one(
                    format!("{}: cannot be deleted with -f", other.describe()),
                    "delete clusters and instance groups",
                )
                .into())
            }
        }
    }
    // Every cluster is checked before any group is deleted.
    for cluster in by_cluster.keys() {
        crate::managed::refuse_spec_change(&store, cluster, "delete -f").await?;
    }
    for (cluster, groups) in &by_cluster {
        delete_groups(global, &store, cluster, groups, yes).await?;
    }
    Ok(by_cluster)
}

/// `delete instancegroup`: the groups of `cluster`, once the cluster without them is still
/// valid. Without `yes`, only the checks.
pub async fn delete_groups(
    global: &Session,
    store: &StateStore,
    cluster: &str,
    names: &[String],
    yes: bool,
) -> Result<()> {
    crate::managed::refuse_spec_change(store, cluster, "delete instancegroup").await?;
    let stored = load_cluster(store, cluster).await?;
    for name in names {
        if stored.group_version(name).is_none() {
            return Err(Problems::one(
                format!("instance group {name:?} not found in {cluster}"),
                "`kopsrs get instancegroups` lists them",
            )
            .into());
        }
    }
    let remaining: Vec<_> = stored
        .group_values()
        .into_iter()
        .filter(|g| !names.contains(&g.metadata.name))
        .collect();
    crate::cluster::validate(&*global.reporter, &stored.cluster.value, &remaining)?;
    if !yes {
        return Ok(());
    }
    for name in names {
        store
            .delete(&format!("{cluster}/{}/{name}", layout::INSTANCE_GROUPS))
            .await?;
        global
            .reporter
            .say(&format!("Deleted InstanceGroup/{name} of {cluster}"));
    }
    Ok(())
}

/// Deletes the cluster's cloud resources, then its state. With `yes` the cluster lock is
/// held from before AWS is read until the state is gone.
async fn delete_cloud(
    global: &Session,
    store: &StateStore,
    name: &str,
    yes: bool,
) -> Result<DeleteReport> {
    let purpose = yes.then_some("delete cluster");
    match purpose {
        Some(_) => crate::kops_built::refuse(store, name, "delete cluster --yes").await?,
        None => {
            crate::kops_built::warn(
                global,
                store,
                name,
                "`delete cluster --yes` is refused (`--unregister` forgets only the spec)",
            )
            .await?;
        }
    }
    locked(&*global.reporter, store, name, purpose, async {
        // The spec (which names the region) is read under the lock.
        let prepared = crate::cluster::prepare(store, name, global, false).await?;
        delete_cloud_locked(global, store, &prepared, yes).await
    })
    .await
}

async fn delete_cloud_locked(
    global: &Session,
    store: &StateStore,
    prepared: &crate::cluster::Prepared,
    yes: bool,
) -> Result<DeleteReport> {
    let (name, set) = (&prepared.cluster.metadata.name, &prepared.set);
    let aws = crate::cluster::aws(global, &set.region).await;
    let read = |e: kopsrs_aws::Error| {
        crate::problems::aws(
            &global.settings,
            &format!("reading {name} from AWS"),
            &e,
            "check the AWS credentials and region; nothing was deleted",
        )
    };
    let plan = aws.destroy_plan(set).await.map_err(read)?;
    let mut report = DeleteReport {
        resources: plan
            .changes
            .iter()
            .map(|c| (c.address.to_string(), c.id.clone().unwrap_or_default()))
            .collect(),
        objects: store.list(name).await?,
        store: store.url().to_string(),
        ..DeleteReport::default()
    };
    if !yes {
        return Ok(report);
    }
    let result = kopsrs_aws::apply(
        &aws,
        name,
        &plan,
        &crate::cluster::exec_options(crate::cluster::DEFAULT_CONCURRENCY),
        global.reporter.changes(plan.changes.len()),
    )
    .await;
    if let Err(e) = result {
        let summary = crate::Problem {
            message: format!(
                "{} deletion(s) failed, {} not run",
                e.failed.len(),
                e.not_run.len()
            ),
            hint: Some("run `kopsrs delete cluster --yes` again: it continues with what is left; the spec is kept until then".into()),
        };
        let failed = e.failed.iter().map(|(_, error)| crate::Problem {
            message: error.to_string(),
            hint: None,
        });
        return Err(Problems(failed.chain([summary]).collect()).into());
    }
    // Only forget the cluster once AWS shows nothing of it.
    let left = aws.destroy_plan(set).await.map_err(read)?;
    let left: Vec<String> = left
        .changes
        .iter()
        .filter(|c| {
            !matches!(
                kopsrs_aws::Kind::parse(&c.address.kind),
                Some(kopsrs_aws::Kind::VpcDhcpOptionsAssociation | kopsrs_aws::Kind::Route53Record)
            )
        })
        .map(|c| c.address.to_string())
        .collect();
    if !left.is_empty() {
        return Err(Problems::one(
            format!("still in AWS after deleting: {}", left.join(", ")),
            "run `kopsrs delete cluster --yes` again; the spec is kept until nothing is left",
        )
        .into());
    }
    // The issuer's documents go with the cluster: IAM's provider for them is gone.
    crate::discovery::remove(global, &prepared.cluster, &set.region).await?;
    report.removed = store.delete_cluster(name).await?;
    report.deleted = true;
    Ok(report)
}
