//! `upgrade cluster`: flags to `kopsrs_ops::upgrade`; the change as kops's table, written
//! with `--yes`.

use anyhow::Result;

use crate::cli::UpgradeClusterArgs;
use kopsrs_ops::upgrade;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: UpgradeClusterArgs) -> Result<()> {
    let plan = upgrade::plan_upgrade(
        global,
        args.cluster.as_deref(),
        args.kubernetes_version.as_deref(),
    )
    .await?;
    let (name, current, target) = (&plan.name, &plan.current, &plan.target);
    if !plan.needed() {
        println!("No upgrade required: {name} is at {current}, the channel's recommendation.");
        return Ok(());
    }
    println!("{:<10} {:<20} {:<10} NEW", "ITEM", "PROPERTY", "OLD");
    println!(
        "{:<10} {:<20} {:<10} {target}",
        "Cluster", "KubernetesVersion", current
    );
    if !args.yes {
        eprintln!("\nMust specify --yes to perform the upgrade");
        return Ok(());
    }
    upgrade::apply_upgrade(global, &plan).await?;
    eprintln!(
        "\nUpdated {name} to {target}. Apply it with `kopsrs update cluster {name} --yes`, then \
         replace the instances with a rolling update (control-plane nodes first)."
    );
    Ok(())
}
