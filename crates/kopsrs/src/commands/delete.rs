//! `delete cluster`, `delete instancegroup`, `delete -f`.
//!
//! `delete cluster` finds everything the cluster owns in AWS (by tag, also what a crashed
//! apply left), deletes it children first, checks nothing is left, then removes the cluster
//! from the state store. `--unregister` removes only the spec.

use anyhow::Result;
use kopsrs_api::Document;
use kopsrs_state::layout;

use super::load_cluster;
use crate::cli::{DeleteArgs, DeleteCommand, GlobalArgs};
use crate::context;
use crate::pipeline;
use crate::problems::Problems;

pub async fn run(global: &GlobalArgs, args: DeleteArgs) -> Result<()> {
    let store = context::open_store(global).await?;
    match args.what {
        Some(DeleteCommand::Cluster {
            cluster,
            unregister,
            yes,
        }) => {
            let name = context::cluster_name(global, cluster.as_deref())?;
            load_cluster(&store, &name).await?;
            if !unregister {
                return delete_cloud(&store, &name, &global.settings, yes).await;
            }
            let keys = store.list(&name).await?;
            if !yes {
                println!(
                    "Would remove {} object(s) of {name} from {}:",
                    keys.len(),
                    store.url()
                );
                for key in &keys {
                    println!("  {key}");
                }
                eprintln!("Run again with --yes to delete.");
                return Ok(());
            }
            // The lock lives inside the removed prefix; releasing it is then a no-op.
            let purpose = Some("delete cluster --unregister");
            let removed = pipeline::locked(&store, &name, purpose, async {
                Ok(store.delete_cluster(&name).await?)
            })
            .await?;
            eprintln!("Deleted {removed} object(s) of cluster {name}");
            Ok(())
        }
        Some(DeleteCommand::Instancegroup { group, yes }) => {
            let name = context::cluster_name(global, None)?;
            delete_groups(&store, &name, &[group], yes).await
        }
        None if !args.filenames.is_empty() => {
            let documents = context::read_documents(&args.filenames, global.validate)?;
            let mut by_cluster: std::collections::BTreeMap<String, Vec<String>> =
                Default::default();
            for document in &documents {
                match document {
                    Document::InstanceGroup(g) => {
                        let cluster = g.cluster_label().map(str::to_string).or_else(|| global.name.clone()).ok_or_else(|| {
                            Problems::one(format!("{}: no cluster", document.describe()), "add the kops.k8s.io/cluster label or pass --name")
                        })?;
                        by_cluster.entry(cluster).or_default().push(g.metadata.name.clone());
                    }
                    Document::Cluster(c) => {
                        return Err(Problems::one(
                            format!("Cluster/{}: deleting a cluster needs `kopsrs delete cluster --unregister`", c.metadata.name),
                            "remove the Cluster from the file to delete only its instance groups",
                        )
                        .into())
                    }
                    other => return Err(Problems::one(format!("{}: cannot be deleted with -f", other.describe()), "delete clusters and instance groups").into()),
                }
            }
            for (cluster, groups) in by_cluster {
                delete_groups(&store, &cluster, &groups, args.yes).await?;
            }
            Ok(())
        }
        None => Err(Problems::one(
            "nothing to delete",
            "use `delete cluster`, `delete instancegroup NAME` or `delete -f FILE`",
        )
        .into()),
    }
}

async fn delete_groups(
    store: &kopsrs_state::StateStore,
    cluster: &str,
    names: &[String],
    yes: bool,
) -> Result<()> {
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
    super::validate(&stored.cluster.value, &remaining)?;
    if !yes {
        for name in names {
            println!("Would delete InstanceGroup/{name} of {cluster}");
        }
        eprintln!("Run again with --yes to delete.");
        return Ok(());
    }
    for name in names {
        store
            .delete(&format!("{cluster}/{}/{name}", layout::INSTANCE_GROUPS))
            .await?;
        eprintln!("Deleted InstanceGroup/{name} of {cluster}");
    }
    Ok(())
}

/// Deletes the cluster's cloud resources, then its state. With `--yes` the cluster lock is
/// held from before AWS is read until the state is gone.
async fn delete_cloud(
    store: &kopsrs_state::StateStore,
    name: &str,
    settings: &crate::pipeline::Settings,
    yes: bool,
) -> Result<()> {
    let purpose = yes.then_some("delete cluster");
    pipeline::locked(store, name, purpose, async {
        // The spec (which names the region) is read under the lock.
        let prepared = pipeline::prepare(store, name, settings, false).await?;
        delete_cloud_locked(store, name, &prepared.set, yes).await
    })
    .await
}

async fn delete_cloud_locked(
    store: &kopsrs_state::StateStore,
    name: &str,
    set: &kopsrs_model::DesiredSet,
    yes: bool,
) -> Result<()> {
    let aws = kopsrs_aws::Aws::connect(&set.region).await;
    let read = |e: kopsrs_aws::Error| {
        crate::problems::aws(
            &format!("reading {name} from AWS"),
            &e,
            "check the AWS credentials and region; nothing was deleted",
        )
    };
    let plan = aws.destroy_plan(set).await.map_err(read)?;
    let found = plan.changes.len();
    if !yes {
        println!("Would delete {found} AWS resource(s) of {name}:");
        for change in &plan.changes {
            println!(
                "  {}  {}",
                change.address,
                change.id.as_deref().unwrap_or_default()
            );
        }
        println!(
            "and {} object(s) of {name} in {}.",
            store.list(name).await?.len(),
            store.url()
        );
        eprintln!("Run again with --yes to delete.");
        return Ok(());
    }
    let result = kopsrs_aws::apply(
        &aws,
        name,
        &plan,
        &pipeline::exec_options(crate::cli::DEFAULT_CONCURRENCY),
        crate::progress::reporter(found),
    )
    .await;
    if let Err(e) = result {
        return Err(Problems::one(
            format!("{} deletion(s) failed, {} not run: {}", e.failed.len(), e.not_run.len(),
                e.failed.iter().map(|(_, err)| err.to_string()).collect::<Vec<_>>().join("; ")),
            "run `kopsrs delete cluster --yes` again: it continues with what is left; the spec is kept until then",
        )
        .into());
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
    let removed = store.delete_cluster(name).await?;
    eprintln!("Deleted {found} AWS resource(s) and {removed} state object(s) of cluster {name}.");
    Ok(())
}
