//! Clusters that kops built. kopsrs reads kops's specs and state-store layout, but its nodes
//! boot with kubeadm and keep etcd on their own terms, where kops's nodes run nodeup and
//! etcd-manager: a launch template kopsrs writes for a kops-built cluster, or an instance it
//! replaces, would bring up a control plane that cannot join the running one. So every run
//! that would change such a cluster's instances or launch templates is refused, with the
//! way to move (docs/compatibility.md, "Moving a cluster kops built"); reading it (get,
//! validate, diff, export kubeconfig, the plan, Terraform output) keeps working.
//!
//! The mark: `<cluster>/kops-version.txt`, which `kops update cluster` writes into the
//! cluster's folder on every run (its Terraform output as an `aws_s3_object`), and kopsrs
//! never writes. One small read.
//! (kops also writes `igconfig/`, `manifests/etcd/` and etcd-manager's
//! `backups/etcd/*/control/`; `addons/bootstrap-channel.yaml`, `pki/` and
//! `cluster-completed.spec` are written by both.) A cluster kops built before it wrote the
//! file runs a Kubernetes version older than any kopsrs can bootstrap, which the AWS target
//! refuses on its own (`spec.kubernetesVersion`).

use anyhow::Result;
use kopsrs_state::StateStore;

use crate::problems::Problems;
use crate::Session;

/// The file kops writes into a cluster's folder and kopsrs never does.
pub const MARKER: &str = "kops-version.txt";

/// The kops version that last updated `name` (the marker's content, `"unknown"` when empty),
/// or `None` when kops never did.
pub async fn kops_version(store: &StateStore, name: &str) -> Result<Option<String>> {
    let found = store.get(&format!("{name}/{MARKER}")).await?;
    Ok(found.map(|object| {
        let text = String::from_utf8_lossy(&object.value);
        // The marker is kops's text: only a short, printable version is quoted back.
        let version: String = text
            .trim()
            .chars()
            .take(40)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        match version.is_empty() {
            true => "unknown".to_string(),
            false => version,
        }
    }))
}

/// What was found, in one clause.
fn found(store: &StateStore, name: &str, version: &str) -> String {
    format!(
        "{name} was built by kops (version {version}: {}/{name}/{MARKER} is kops's, kopsrs never writes it)",
        store.url().trim_end_matches('/')
    )
}

/// How to move, for every refusal.
fn way_to_move(name: &str) -> String {
    format!(
        "kopsrs cannot take over a running kops cluster's instances; move instead: create a new cluster from the same spec with kopsrs (`kopsrs get all {name} -o yaml`, renamed), move the workloads to it, then delete {name} with `kops delete cluster {name} --yes` (docs/compatibility.md, \"Moving a cluster kops built\")"
    )
}

/// Refuses `verb` (a run that would change the instances or launch templates of `name`)
/// when kops built the cluster. Called before the cluster lock is taken or AWS is asked
/// anything, so a refusal writes nothing.
pub async fn refuse(store: &StateStore, name: &str, verb: &str) -> Result<()> {
    let Some(version) = kops_version(store, name).await? else {
        return Ok(());
    };
    let reason = if verb.contains("--unregister") {
        // The folder is not only a spec: kops's nodes read it when they boot.
        "its nodes read kops's files in this folder (nodeup's configuration, the keys) when they boot, so removing them would stop any new node from joining"
    } else if verb.starts_with("delete") {
        // kops's own parts (its etcd volumes' tags, kops-controller's role, nodeup's files)
        // are not in kopsrs's model: the tool that made them deletes them.
        "kops made parts of it that kopsrs does not model, so a kopsrs delete could leave some behind or stop half-way"
    } else {
        "kopsrs boots nodes with kubeadm and runs etcd its own way, so the control planes it would launch could not join this cluster's"
    };
    Err(Problems::one(
        format!(
            "{verb} refused: {}; {reason}; nothing was changed",
            found(store, name, &version)
        ),
        way_to_move(name),
    )
    .into())
}

/// For a run that only reads (a plan, a dry run): a warning that `what` could not be
/// applied. Whether kops built the cluster.
pub async fn warn(session: &Session, store: &StateStore, name: &str, what: &str) -> Result<bool> {
    let Some(version) = kops_version(store, name).await? else {
        return Ok(false);
    };
    session.reporter.warn(
        &format!("{}: {what}", found(store, name, &version)),
        Some(&way_to_move(name)),
    );
    Ok(true)
}
