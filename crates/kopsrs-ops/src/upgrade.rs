//! `upgrade cluster`: moves `spec.kubernetesVersion` to the channel's recommendation. Nodes
//! pick the new version up when they are replaced (`update cluster --yes`, then a rolling
//! update); the first replaced control-plane node runs `kubeadm upgrade apply`.

use anyhow::Result;
use kopsrs_api::Cluster;
use kopsrs_bootstrap::{channel::Channel, parse_version};
use kopsrs_state::StateStore;

use crate::cluster::{load_cluster, StoredCluster};
use crate::problems::{Problem, Problems};
use crate::session as context;
use crate::Session;

/// An upgrade decided and not yet written: the caller shows it, then (if asked) applies it.
pub struct UpgradePlan {
    /// The cluster.
    pub name: String,
    /// `spec.kubernetesVersion` now.
    pub current: String,
    /// The version to move to, written the way the spec writes it.
    pub target: String,
    store: StateStore,
    stored: StoredCluster,
}

impl UpgradePlan {
    /// Whether the target differs from the current version.
    pub fn needed(&self) -> bool {
        parse_version(&self.current) != parse_version(&self.target)
    }
}

/// The upgrade of `cluster` (else the session's cluster) to `requested`, else the channel's
/// next step; refused when it skips a minor version, goes back, or is not in the channel.
pub async fn plan_upgrade(
    session: &Session,
    cluster: Option<&str>,
    requested: Option<&str>,
) -> Result<UpgradePlan> {
    let name = context::cluster_name(session, cluster)?;
    let store = context::open_store(session).await?;
    let stored = load_cluster(&store, &name).await?;
    let channel = crate::addons::channel(stored.cluster.value.spec.channel.as_deref()).await?;
    let current = stored
        .cluster
        .value
        .spec
        .kubernetes_version
        .clone()
        .unwrap_or_default();
    let target = target_version(&channel, &current, requested)?;
    // Written the way the spec writes it (kops accepts both `1.34.1` and `v1.34.1`).
    let prefix = if current.starts_with('v') { "v" } else { "" };
    let target = format!("{prefix}{}", target.trim_start_matches('v'));
    Ok(UpgradePlan {
        name,
        current,
        target,
        store,
        stored,
    })
}

/// Writes the new version to the spec, validated, conditional on the spec read by
/// [`plan_upgrade`] (another writer meanwhile: a conflict, nothing overwritten).
pub async fn apply_upgrade(session: &Session, plan: &UpgradePlan) -> Result<()> {
    let stored = &plan.stored;
    let name = &stored.cluster.value.metadata.name;
    crate::managed::refuse_spec_change(&plan.store, name, "upgrade cluster --yes").await?;
    let mut cluster = stored.cluster.value.clone();
    cluster.spec.kubernetes_version = Some(plan.target.clone());
    crate::cluster::validate(&*session.reporter, &cluster, &stored.group_values())?;
    plan.store
        .write_cluster(&cluster, Some(&stored.cluster.version))
        .await?;
    Ok(())
}

/// The version to move to: `requested` when given, else the channel's next step; refused
/// when it skips a minor version, goes back, or is not in the channel.
fn target_version(channel: &Channel, current: &str, requested: Option<&str>) -> Result<String> {
    let supported = supported_minors(channel);
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
    if !in_channel(channel, &target) {
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

/// The minor versions the channel supports, oldest first (`1.31, 1.32, ...`).
fn supported_minors(channel: &Channel) -> String {
    channel
        .kubernetes
        .minors
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the channel has an entry for `version`'s minor version: the nodes' packages and
/// the addons are chosen by it.
fn in_channel(channel: &Channel, version: &str) -> bool {
    channel.recommended_patch(version).is_some()
}

/// A change of `spec.kubernetesVersion` by `edit` or `replace`, from `before` (the spec in the
/// state store before the change) to `after`: refused when the channel of `after` has no
/// entry for the new version's minor, or when the minor goes back (kubeadm cannot downgrade
/// a cluster). Every problem at once; nothing to check when the version did not change.
pub async fn check_version_change(before: &Cluster, after: &Cluster) -> Result<()> {
    let Some(new) = after.spec.kubernetes_version.as_deref() else {
        return Ok(());
    };
    let old = before.spec.kubernetes_version.as_deref();
    // Not a version: validation says so, with the field.
    let Some(to) = parse_version(new) else {
        return Ok(());
    };
    let from = old.and_then(parse_version);
    if from == Some(to) {
        return Ok(());
    }
    let channel = crate::addons::channel(after.spec.channel.as_deref()).await?;
    let supported = supported_minors(&channel);
    let mut problems = Vec::new();
    if !in_channel(&channel, new) {
        problems.push(Problem {
            message: format!(
                "spec.kubernetesVersion: {new} is not supported by the channel (supported minor versions: {supported})"
            ),
            hint: Some(
                "set a version of a supported minor version; `kopsrs upgrade cluster` picks the channel's next step".into(),
            ),
        });
    }
    if let (Some(old), Some(from)) = (old, from) {
        if (to.0, to.1) < (from.0, from.1) {
            problems.push(Problem {
                message: format!(
                    "spec.kubernetesVersion: {new} is an older minor version than {old}, the version in the state store; kubeadm cannot downgrade a cluster"
                ),
                hint: Some(format!(
                    "keep {}.{} or a newer minor version the channel supports ({supported})",
                    from.0, from.1
                )),
            });
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Problems(problems).into()),
    }
}
