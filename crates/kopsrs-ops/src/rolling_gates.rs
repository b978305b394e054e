//! The gates a roll holds whatever its flags say: the version skew policy before a group's
//! first replacement, etcd's membership before and after each control plane, and no blind
//! control-plane replacement without `--force`.

use anyhow::Result;
use kopsrs_api::Role;
use kopsrs_checks::validation;
use kopsrs_engine::rolling::{self, CloudGroups, ClusterNodes, Group};

use super::Roll;
use crate::problems::Problems;

impl<C: CloudGroups, N: ClusterNodes> Roll<C, N> {
    /// Without the API (`--cloudonly`) nothing shows whether etcd has its members back, so
    /// control planes are replaced one interval apart whatever etcd says: refused, before
    /// anything changes, unless `--force` says that losing etcd's quorum is accepted.
    pub(super) fn blind_control_planes(&self) -> Result<()> {
        if self.nodes.is_some() {
            return Ok(());
        }
        let control_planes: Vec<&str> = self
            .statuses
            .iter()
            .filter(|s| {
                s.need_update > 0
                    && self.cx.specs.get(&s.name).map(|s| s.0) == Some(Role::ControlPlane)
            })
            .map(|s| s.name.as_str())
            .collect();
        if control_planes.is_empty() {
            return Ok(());
        }
        if !self.options.force {
            return Err(Problems::one(
                format!(
                    "--cloudonly would replace control planes ({}) without seeing etcd: each goes one interval after the last whatever etcd says, and etcd can lose its quorum; nothing was changed",
                    control_planes.join(", ")
                ),
                "bring the API back and roll without --cloudonly (the etcd gate then waits for each member); to replace them blind, accepting the loss of etcd's quorum, add --force",
            )
            .into());
        }
        self.cx.reporter.warn(
            &format!(
                "--cloudonly --force: control planes {} are replaced without the etcd gate; etcd may lose its quorum",
                control_planes.join(", ")
            ),
            Some("restore from a backup if it does (docs/operations.md)"),
        );
        Ok(())
    }

    /// For a caller that holds the cluster lock already ([`crate::reconcile`]): the run
    /// takes none.
    pub(crate) fn under_held_lock(&mut self) {
        self.store = None;
    }

    /// Before a group's first replacement: its new instances must keep the version skew
    /// policy with what runs now ([`kopsrs_engine::skew::check`]), whatever the flags say.
    /// Without the API (`--cloudonly`) the versions cannot be read: said, not checked.
    pub(super) async fn check_skew(&self, group: &Group) -> Result<()> {
        let Some(target) = self.cx.kubernetes_version.as_deref() else {
            return Ok(());
        };
        if group.role == Role::Bastion {
            return Ok(());
        }
        let Some(kube) = &self.nodes else {
            self.cx.reporter.warn(
                &format!("group {}: --cloudonly: the version skew between its new instances ({target}) and the API servers cannot be checked", group.name),
                Some("roll control planes before nodes when the Kubernetes version changes"),
            );
            return Ok(());
        };
        let now = kube.versions().await.map_err(|e| self.kube_problem(&e))?;
        kopsrs_engine::skew::check(target, &now, group.role, &group.name).map_err(|skew| {
            Problems::one(
                format!("{}; nothing was changed in this group", skew.message),
                skew.hint,
            )
            .into()
        })
    }

    /// etcd's side of the gate: the members read through a Ready control plane's etcd pod
    /// (`kube-system/etcd-<node>`; the next one when it does not answer), judged by
    /// [`rolling::etcd_gate`]. Members whose control plane is gone are removed here, on
    /// every pass until it works: not left to one try of the replacement's boot script.
    pub(super) async fn etcd_gate(
        &self,
        kube: &N,
        nodes: &[validation::Node],
        orphans: usize,
    ) -> Vec<String> {
        let control_planes: Vec<&validation::Node> =
            nodes.iter().filter(|n| n.role == "control-plane").collect();
        let names: Vec<&str> = control_planes.iter().map(|n| n.name.as_str()).collect();
        let mut failed = Vec::new();
        for via in control_planes
            .iter()
            .filter(|n| n.ready && !n.network_unavailable)
        {
            let members = match kube.etcd_members(&via.name).await {
                Ok(members) => members,
                Err(e) => {
                    failed.push(e.to_string());
                    continue;
                }
            };
            let gate = rolling::etcd_gate(&members, &names, orphans, self.control_planes);
            let mut unsettled = gate.unsettled;
            for member in &gate.remove {
                self.say(format!(
                    "removing etcd member {} ({:x}): its control plane is gone",
                    member.name, member.id
                ));
                if let Err(e) = kube.etcd_remove_member(&via.name, member.id).await {
                    unsettled.push(format!("removing etcd member {}: {e}", member.name));
                }
            }
            return unsettled;
        }
        match failed.is_empty() {
            true => vec!["no control-plane Node is Ready to read etcd through".into()],
            false => vec![format!("etcd cannot be read: {}", failed.join("; "))],
        }
    }
}
