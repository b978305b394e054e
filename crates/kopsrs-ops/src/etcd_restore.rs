//! `toolbox etcd restore-backup`: checks the backup, writes the restore command the control
//! planes act on (etcd_backups.rs has the records), waits for them and for validation.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use kopsrs_state::{StateStore, StateStoreError};

use crate::etcd_backups::{key, read_backup, restore_progress, Backup, RestoreCommand};
use crate::problems::Problems;
use crate::session::{self, Session};

/// What `restore-backup` is asked.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The backup's name (as `list-backups` prints it).
    pub backup: String,
    /// Write the command (else only check and say what would happen).
    pub yes: bool,
    /// How long to wait for every control plane to restore and the cluster to validate
    /// (nothing: do not wait).
    pub wait: Option<Duration>,
    /// Time between polls while waiting.
    pub poll: Duration,
    /// The kubeconfig validation uses (else the settings').
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// What `restore-backup` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: Backup,
    /// The command written (`None` on a dry run).
    pub command: Option<RestoreCommand>,
    /// With `wait`: the members that restored.
    pub restored: Vec<String>,
    /// With `wait`: whether the cluster then validated.
    pub validated: bool,
}

/// `toolbox etcd restore-backup`: refuses an unknown backup, one whose snapshot does not
/// match its metadata's sha256, or while another restore is pending, before writing anything;
/// then writes the command (created only if there is none, else replacing the completed one
/// at the version read) and, with `wait`, waits for every member and for validation.
pub async fn restore_backup(
    session: &Session,
    cluster: &str,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let store = session::open_store(session).await?;
    crate::cluster::load_cluster(&store, cluster).await?;
    let Some(backup) = read_backup(&store, cluster, &options.backup).await? else {
        return Err(Problems::one(
            format!(
                "backup {:?}: no such backup of {cluster} ({}{} has no metadata)",
                options.backup,
                key(cluster, &options.backup),
                ".json"
            ),
            format!("`kopsrs toolbox etcd list-backups --name {cluster}` lists the backups"),
        )
        .into());
    };
    let previous = restore_progress(&store, cluster).await?;
    if let Some((progress, _)) = previous.as_ref().filter(|(p, _)| !p.complete()) {
        return Err(Problems::one(
            format!(
                "restore {} of backup {} is pending: waiting for {}",
                progress.command.id,
                progress.command.backup,
                progress.waiting_for()
            ),
            format!(
                "wait for it (`kopsrs validate cluster {cluster} --wait 10m`); if those control planes are gone for good, delete {} from the state store and ask again",
                key(cluster, "restore/command.json")
            ),
        )
        .into());
    }
    let snapshot = key(cluster, &format!("{}.db", backup.name));
    let (sha256, size) = store.sha256(&snapshot).await?.ok_or_else(|| {
        Problems::one(
            format!("backup {}: its snapshot {snapshot} is missing", backup.name),
            "choose another backup (`toolbox etcd list-backups`)",
        )
    })?;
    if sha256 != backup.sha256 || size != backup.size {
        return Err(Problems::one(
            format!(
                "backup {}: the snapshot's sha256 is {sha256} ({size} bytes), its metadata says {} ({} bytes): it was changed or is incomplete",
                backup.name, backup.sha256, backup.size
            ),
            "choose another backup (`toolbox etcd list-backups`); nothing was written",
        )
        .into());
    }
    if !options.yes {
        return Ok(RestoreReport {
            backup,
            command: None,
            restored: Vec::new(),
            validated: false,
        });
    }
    let command = RestoreCommand {
        id: restore_id(&backup.name),
        backup: backup.name.clone(),
        sha256,
        requested_at: kopsrs_state::now_rfc3339(),
        requested_by: session.settings.user.clone().unwrap_or_default(),
    };
    let bytes = Bytes::from(serde_json::to_vec_pretty(&command)?);
    let command_key = key(cluster, "restore/command.json");
    match store
        .put(&command_key, bytes, previous.as_ref().map(|(_, v)| v))
        .await
    {
        Ok(_) => {}
        Err(StateStoreError::AlreadyExists(_) | StateStoreError::Conflict(_)) => {
            return Err(Problems::one(
                format!("another restore command was written to {command_key} meanwhile"),
                "see it with `kopsrs toolbox etcd list-backups`, and ask again once it is done",
            )
            .into())
        }
        Err(e) => return Err(e.into()),
    }
    session.reporter.say(&format!(
        "restore {} of backup {} written: each control plane acts on it within a minute",
        command.id, backup.name
    ));
    let mut report = RestoreReport {
        backup,
        command: Some(command),
        restored: Vec::new(),
        validated: false,
    };
    if let Some(wait) = options.wait {
        wait_for_restore(session, &store, cluster, options, wait, &mut report).await?;
    }
    Ok(report)
}

/// Waits until every member reported done, then until the cluster validates.
async fn wait_for_restore(
    session: &Session,
    store: &StateStore,
    cluster: &str,
    options: &RestoreOptions,
    wait: Duration,
    report: &mut RestoreReport,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    let id = report
        .command
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    loop {
        let progress = restore_progress(store, cluster)
            .await?
            .map(|(p, _)| p)
            .filter(|p| p.command.id == id)
            .ok_or_else(|| anyhow::anyhow!("the restore command {id} is gone from the store"))?;
        if progress.complete() {
            report.restored = progress.members;
            break;
        }
        if Instant::now() + options.poll > deadline {
            return Err(Problems::one(
                format!(
                    "restore {id}: still waiting for {} after {}",
                    progress.waiting_for(),
                    humantime::format_duration(wait)
                ),
                "the control planes act every 30 s: check that they run (`kopsrs get instances`) and wait longer",
            )
            .into());
        }
        tokio::time::sleep(options.poll).await;
    }
    session.reporter.say(&format!(
        "every control plane restored ({}); validating",
        report.restored.join(", ")
    ));
    let remaining = deadline.saturating_duration_since(Instant::now());
    let validation = crate::validate::validate_cluster(
        session,
        Some(cluster),
        &crate::validate::ValidateOptions {
            kubeconfig: options.kubeconfig.clone(),
            wait: remaining,
            count: 1,
            interval: options.poll,
            max_unready_nodes: 0,
        },
    )
    .await?;
    report.validated = validation.validation.failures.is_empty();
    if !report.validated {
        return Err(Problems::from_messages(
            validation
                .validation
                .failures
                .iter()
                .map(|f| format!("after the restore, {} {}: {}", f.kind, f.name, f.message)),
        )
        .into());
    }
    Ok(())
}

/// A restore's ID: the backup's time and when it was asked for, so two restores of the same
/// backup differ.
fn restore_id(backup: &str) -> String {
    let asked = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{:x}",
        backup.replace(['-', 'T', 'Z'], "").to_lowercase(),
        asked.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_ids_are_what_the_nodes_accept() {
        let id = restore_id("2026-12-07T012500Z");
        assert!(id.starts_with("20261207012500-"), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
