//! `rolling-update cluster`: flags to `kopsrs_ops::rolling`'s options; the groups' state as
//! kops's table, then (with `--yes`) the roll.

use anyhow::Result;
use kopsrs_ops::rolling::{self, RollOptions};
use kopsrs_ops::Session;

use crate::cli::{RollFlags, RollingUpdateClusterArgs};
use crate::render::{print_table, table};

/// The roll's options from the flags `rolling-update` and `reconcile` share.
pub fn roll_options(flags: &RollFlags) -> RollOptions {
    RollOptions {
        drain_timeout: flags.drain_timeout,
        post_drain_delay: flags.post_drain_delay,
        validation_timeout: flags.validation_timeout,
        validate_count: flags.validate_count,
        bastion_interval: flags.bastion_interval,
        control_plane_interval: flags.control_plane_interval,
        node_interval: flags.node_interval,
        fail_on_drain_error: flags.fail_on_drain_error,
        fail_on_validate_error: flags.fail_on_validate_error,
        kubeconfig: flags.kubeconfig.clone(),
        ..RollOptions::default()
    }
}

pub async fn run(global: &Session, args: RollingUpdateClusterArgs) -> Result<()> {
    let options = RollOptions {
        force: args.force,
        cloudonly: args.cloudonly,
        instance_groups: args.instance_group.clone(),
        roles: args.instance_group_roles.clone(),
        ..roll_options(&args.roll)
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
