//! `upgrade cluster`: moves `spec.kubernetesVersion` to the channel's recommendation. Nodes
//! pick the new version up when they are replaced (`update cluster --yes`, then a rolling
//! update); the first replaced control-plane node runs `kubeadm upgrade apply`.

use anyhow::Result;
use kopsrs_bootstrap::{channel::Channel, parse_version};

use crate::cli::UpgradeClusterArgs;
use kopsrs_ops::load_cluster;
use kopsrs_ops::problems::Problems;
use kopsrs_ops::session as context;
use kopsrs_ops::Session;

pub async fn run(global: &Session, args: UpgradeClusterArgs) -> Result<()> {
    let name = context::cluster_name(global, args.cluster.as_deref())?;
    let store = context::open_store(global).await?;
    let stored = load_cluster(&store, &name).await?;
    let channel = kopsrs_ops::addons::channel(stored.cluster.value.spec.channel.as_deref()).await?;
    let current = stored
        .cluster
        .value
        .spec
        .kubernetes_version
        .clone()
        .unwrap_or_default();
    let target = target_version(&channel, &current, args.kubernetes_version.as_deref())?;
    // Written the way the spec writes it (kops accepts both `1.34.1` and `v1.34.1`).
    let prefix = if current.starts_with('v') { "v" } else { "" };
    let target = format!("{prefix}{}", target.trim_start_matches('v'));
    if parse_version(&current) == parse_version(&target) {
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
    let mut cluster = stored.cluster.value.clone();
    cluster.spec.kubernetes_version = Some(target.clone());
    kopsrs_ops::cluster::validate(&*global.reporter, &cluster, &stored.group_values())?;
    store
        .write_cluster(&cluster, Some(&stored.cluster.version))
        .await?;
    eprintln!(
        "\nUpdated {name} to {target}. Apply it with `kopsrs update cluster {name} --yes`, then \
         replace the instances with a rolling update (control-plane nodes first)."
    );
    Ok(())
}

/// The version to move to: `requested` when given, else the channel's next step; refused
/// when it skips a minor version, goes back, or is not in the channel.
fn target_version(channel: &Channel, current: &str, requested: Option<&str>) -> Result<String> {
    let supported = channel
        .kubernetes
        .minors
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let Some(from) = parse_version(current) else {
        return Err(Problems::one(
            format!("spec.kubernetesVersion: {current:?} is not a version"),
            "set it with `kopsrs edit cluster`",
        )
        .into());
    };
    let target = match requested {
        Some(v) => v.trim_start_matches('v').to_string(),
        None => match channel.upgrade_target(current) {
            Some(v) => v.to_string(),
            // Older than the channel: its oldest supported release is the next step.
            None if (from.0, from.1) < (1, 31) => channel
                .kubernetes
                .minors
                .values()
                .next()
                .cloned()
                .unwrap_or_default(),
            None => {
                return Err(Problems::one(
                    format!(
                        "spec.kubernetesVersion: {current} is newer than the channel (minor versions {supported})"
                    ),
                    "nothing to upgrade to; this kopsrs's channel does not know that version",
                )
                .into())
            }
        },
    };
    let Some(to) = parse_version(&target) else {
        return Err(Problems::one(
            format!("--kubernetes-version: {target:?} is not a version"),
            "write it as 1.34.1 or v1.34.1",
        )
        .into());
    };
    if to < from {
        return Err(Problems::one(
            format!("--kubernetes-version: {target} is older than the cluster's {current}"),
            "kubeadm cannot downgrade a cluster; choose a newer version",
        )
        .into());
    }
    if (to.0, to.1) > (from.0, from.1 + 1) && (from.0, from.1) >= (1, 31) {
        let step = channel
            .kubernetes
            .minors
            .get(&format!("{}.{}", from.0, from.1 + 1))
            .cloned()
            .unwrap_or_else(|| format!("{}.{}", from.0, from.1 + 1));
        return Err(Problems::one(
            format!(
                "--kubernetes-version: {target} skips a minor version from {current}; kubeadm upgrades one minor version at a time"
            ),
            format!("upgrade to {step} first: kopsrs upgrade cluster --kubernetes-version {step} --yes"),
        )
        .into());
    }
    if channel.recommended_patch(&target).is_none() {
        return Err(Problems::one(
            format!(
                "--kubernetes-version: {target} is not in the channel (minor versions {supported})"
            ),
            "choose a version of a supported minor version",
        )
        .into());
    }
    Ok(target)
}
