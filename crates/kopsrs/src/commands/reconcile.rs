//! `reconcile cluster`: flags to `kopsrs_ops::reconcile`'s options; without --yes, each
//! step's plan.

use anyhow::Result;
use kopsrs_ops::reconcile::{self, ReconcileOptions};
use kopsrs_ops::session as context;
use kopsrs_ops::update::DirectOptions;
use kopsrs_ops::Session;

use crate::cli::ReconcileClusterArgs;

pub async fn run(global: &Session, args: ReconcileClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let options = ReconcileOptions {
        yes: args.yes,
        update: DirectOptions {
            yes: args.yes,
            concurrency: args.concurrency,
            export: args
                .create_kube_config
                .then(|| kopsrs_ops::pki::ExportOptions {
                    keep_existing: true,
                    ..Default::default()
                }),
            pins: args.pins.options(),
            network_checks: !args.skip_network_checks,
            saved: None,
            scope: Default::default(),
            force: false,
            spec: None,
        },
        roll: args.roll.options(),
        api_wait: args.api_wait,
    };
    let report = reconcile::reconcile(global, &name, &options).await?;
    if args.yes {
        return Ok(());
    }
    for step in &report.steps {
        println!("== {}", step.title);
        match &step.plan {
            Some(plan) => println!("{plan}"),
            None if step.groups.is_empty() => {
                println!("Replaces only instances not on their group's current launch template.\n")
            }
            None => println!(
                "Replaces every instance of {} (their launch template changes), and any other instance not on its group's current template.\n",
                step.groups.join(", ")
            ),
        }
    }
    println!("Must specify --yes to reconcile.");
    Ok(())
}
