//! `delete cluster`, `delete instancegroup`, `delete instance`, `delete -f`: flags to
//! `kopsrs_ops::delete` (and `kopsrs_ops::rolling` for an instance), and what it found or did.

use anyhow::Result;
use kopsrs_ops::delete;
use kopsrs_ops::session as context;
use kopsrs_ops::{Problems, Session};

use crate::cli::{DeleteArgs, DeleteCommand, DeleteInstanceArgs};

pub async fn run(global: &Session, args: DeleteArgs) -> Result<()> {
    match args.what {
        Some(DeleteCommand::Cluster {
            cluster,
            unregister,
            yes,
        }) => {
            let name = context::cluster_name(global, cluster.as_deref())?;
            let report =
                delete::delete_cluster(global, Some(&name), unregister, yes, false).await?;
            print_cluster(&name, &report, unregister);
            Ok(())
        }
        Some(DeleteCommand::Instancegroup { group, yes }) => {
            let name = context::cluster_name(global, None)?;
            let store = context::open_store(global).await?;
            let groups = [group];
            delete::delete_groups(global, &store, &name, &groups, yes).await?;
            print_groups(&name, &groups, yes);
            Ok(())
        }
        Some(DeleteCommand::Instance(instance)) => delete_instance(global, *instance).await,
        None if !args.filenames.is_empty() => {
            let by_cluster = delete::delete_files(global, &args.filenames, args.yes).await?;
            for (cluster, groups) in &by_cluster {
                print_groups(cluster, groups, args.yes);
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

fn print_groups(cluster: &str, groups: &[String], yes: bool) {
    if yes {
        return;
    }
    for name in groups {
        println!("Would delete InstanceGroup/{name} of {cluster}");
    }
    eprintln!("Run again with --yes to delete.");
}

fn print_cluster(name: &str, report: &delete::DeleteReport, unregister: bool) {
    let url = &report.store;
    match (unregister, report.deleted) {
        (true, false) => {
            println!(
                "Would remove {} object(s) of {name} from {url}:",
                report.objects.len()
            );
            for key in &report.objects {
                println!("  {key}");
            }
            eprintln!("Run again with --yes to delete.");
        }
        (true, true) => eprintln!("Deleted {} object(s) of cluster {name}", report.removed),
        (false, false) => {
            println!(
                "Would delete {} AWS resource(s) of {name}:",
                report.resources.len()
            );
            for (address, id) in &report.resources {
                println!("  {address}  {id}");
            }
            println!("and {} object(s) of {name} in {url}.", report.objects.len());
            eprintln!("Run again with --yes to delete.");
        }
        (false, true) => eprintln!(
            "Deleted {} AWS resource(s) and {} state object(s) of cluster {name}.",
            report.resources.len(),
            report.removed
        ),
    }
}

/// `delete instance`: the instance found (by ID or Node name) among the cluster's groups;
/// with `--yes`, drained and terminated as a rolling update replaces it.
async fn delete_instance(global: &Session, args: DeleteInstanceArgs) -> Result<()> {
    let options = kopsrs_ops::rolling::RollOptions {
        instances: vec![args.instance.clone()],
        surge: Some(args.surge),
        cloudonly: args.cloudonly,
        ..args.roll.options()
    };
    let roll = kopsrs_ops::rolling::prepare(global, None, options).await?;
    for chosen in roll.chosen() {
        match &chosen.node {
            Some(node) => println!(
                "Instance {} (node {node}) of instance group {} found for deletion",
                chosen.id, chosen.group
            ),
            None => println!(
                "Instance {} of instance group {} found for deletion (it has no Node)",
                chosen.id, chosen.group
            ),
        }
    }
    if !args.yes {
        println!("\nMust specify --yes to delete the instance.");
        return Ok(());
    }
    roll.run().await?;
    println!(
        "\nInstance {} deleted from cluster {}.",
        args.instance,
        roll.cluster()
    );
    Ok(())
}
