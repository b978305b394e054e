//! `rolling-update cluster`: flags to `kopsrs_ops::rolling`'s options; the groups' state as
//! kops's table, then (with `--yes`) the roll.

use anyhow::Result;
use kopsrs_ops::rolling::{self, RollOptions};
use kopsrs_ops::Session;

use crate::cli::RollingUpdateClusterArgs;
use crate::render::{print_table, table};

pub async fn run(global: &Session, args: RollingUpdateClusterArgs) -> Result<()> {
    let options = RollOptions {
        force: args.force,
        cloudonly: args.cloudonly,
        instance_groups: args.instance_group.clone(),
        roles: args.instance_group_roles.clone(),
        ..args.roll.options()
    };
    let roll = rolling::prepare(global, args.cluster.as_deref(), options).await?;
    let mut t = table(&[
        "NAME",
        "STATUS",
        "NEEDUPDATE",
        "READY",
        "MIN",
        "TARGET",
        "MAX",
        "NODES",
    ]);
    for s in roll.statuses() {
        t.add_row(vec![
            s.name.clone(),
            s.status.to_string(),
            s.need_update.to_string(),
            s.ready.to_string(),
            s.min.to_string(),
            s.target.to_string(),
            s.max.to_string(),
            s.nodes.to_string(),
        ]);
    }
    print_table(&t);
    if !roll.needed() {
        println!("\nNo rolling-update required.");
        return Ok(());
    }
    if !args.yes {
        println!("\nMust specify --yes to rolling-update.");
        return Ok(());
    }
    roll.run().await?;
    println!("\nRolling update completed for cluster {}!", roll.cluster());
    Ok(())
}
