//! etcd backups in the state store: what `toolbox etcd list-backups` lists, the restore
//! command's records (etcd_restore.rs writes it), the stale-backup warning of `validate`.
//!
//! The control plane's etcd leader writes them (bootstrap.sh, `kopsrs-node backup-etcd`):
//! `<cluster>/backups/etcd/main/<TIME>.db`, the snapshot, then `<TIME>.json`, its metadata;
//! a snapshot without metadata is a backup that failed half-way, and is not listed. A
//! restore is a command in the store (`restore/command.json`, one at a time) that every
//! control plane acts on (`kopsrs-node restore-etcd`): the first records the members
//! (`restore/<id>/members`), each reports when it is done (`restore/<id>/done/<node>`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use kopsrs_state::StateStore;
use serde::{Deserialize, Serialize};

/// A backup's metadata, as the leader writes it after the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// Its name: the UTC time it was taken, `2026-12-07T012500Z`.
    pub name: String,
    /// When it was taken (seconds since the epoch).
    pub taken_at: u64,
    /// The etcd version that took it.
    pub etcd_version: String,
    /// etcd's revision in the snapshot: the cluster comes back at it.
    pub revision: u64,
    /// How many members the etcd cluster had.
    pub members: u32,
    /// The cluster's Kubernetes version then.
    pub kubernetes_version: String,
    /// The snapshot's size in bytes.
    pub size: u64,
    /// The snapshot's sha256 (hex).
    pub sha256: String,
    /// The control-plane node that took it.
    #[serde(default)]
    pub taken_by: String,
}

/// Whether `name` is a backup's name (the time it was taken, as the leader writes it).
fn is_backup_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 18
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[17] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 17) || c.is_ascii_digit())
}

/// A key under the main etcd cluster's backups (kubeadm runs one etcd cluster).
pub(crate) fn key(cluster: &str, rest: &str) -> String {
    format!(
        "{cluster}/{}/main/{rest}",
        kopsrs_state::layout::ETCD_BACKUPS
    )
}

/// Every backup with its metadata, newest first: one listing, the metadata files read 32 at
/// a time.
pub async fn list_backups(store: &StateStore, cluster: &str) -> Result<Vec<Backup>> {
    let prefix = key(cluster, "");
    let names: Vec<String> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|k| {
            let name = k.strip_prefix(&prefix)?.strip_suffix(".json")?;
            is_backup_name(name).then(|| name.to_string())
        })
        .collect();
    let mut backups: Vec<Backup> = futures::stream::iter(names)
        .map(|name| async move { read_backup(store, cluster, &name).await })
        .buffer_unordered(32)
        .try_filter_map(|b| async move { Ok(b) })
        .try_collect()
        .await?;
    backups.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(backups)
}

/// One backup's metadata; `None` when it has none.
pub async fn read_backup(store: &StateStore, cluster: &str, name: &str) -> Result<Option<Backup>> {
    let key = key(cluster, &format!("{name}.json"));
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let backup: Backup = serde_json::from_slice(&object.value)
        .with_context(|| format!("reading the metadata of backup {name} ({key})"))?;
    Ok(Some(backup))
}

/// The restore command `restore-backup` writes and the control planes act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreCommand {
    /// This restore's ID (letters, digits and `-`): the new etcd cluster's token, and the
    /// folder of its records.
    pub id: String,
    /// The backup's name.
    pub backup: String,
    /// The snapshot's sha256, checked again by every control plane.
    pub sha256: String,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
    /// Who asked (the user running kopsrs).
    pub requested_by: String,
}

/// How far a restore command has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    /// The command.
    pub command: RestoreCommand,
    /// The members the first control plane to act recorded (node names); empty until then.
    pub members: Vec<String>,
    /// The members done.
    pub done: BTreeSet<String>,
}

impl RestoreProgress {
    /// Every member restored.
    pub fn complete(&self) -> bool {
        !self.members.is_empty() && self.members.iter().all(|m| self.done.contains(m))
    }

    /// The members not done yet (all of them while none has recorded the members).
    pub fn waiting_for(&self) -> String {
        match self.members.is_empty() {
            true => "the first control plane to act on it".into(),
            false => self
                .members
                .iter()
                .filter(|m| !self.done.contains(*m))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The current restore command and its progress, with the command's version (for a
/// conditional replacement); `None` when there has never been one.
pub async fn restore_progress(
    store: &StateStore,
    cluster: &str,
) -> Result<Option<(RestoreProgress, kopsrs_state::Version)>> {
    let command_key = key(cluster, "restore/command.json");
    let Some(object) = store.get(&command_key).await? else {
        return Ok(None);
    };
    let command: RestoreCommand = serde_json::from_slice(&object.value)
        .with_context(|| format!("reading the restore command {command_key}"))?;
    let members = match store
        .get(&key(cluster, &format!("restore/{}/members", command.id)))
        .await?
    {
        Some(m) => String::from_utf8_lossy(&m.value)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
        None => Vec::new(),
    };
    let done_prefix = key(cluster, &format!("restore/{}/done/", command.id));
    let done = store
        .list(&done_prefix)
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&done_prefix).map(str::to_string))
        .collect();
    Ok(Some((
        RestoreProgress {
            command,
            members,
            done,
        },
        object.version,
    )))
}

/// A warning when the newest backup is older than three intervals (the leader's backups are
/// failing), or when there is none and the cluster was initialised longer ago than that.
pub async fn stale_backups_warning(
    store: &StateStore,
    cluster: &str,
    interval: Duration,
) -> Result<Option<String>> {
    let limit = interval * 3;
    let now = SystemTime::now();
    let newest = store.get(&key(cluster, "latest")).await?;
    let taken = match newest {
        Some(object) => {
            let backup: Backup = serde_json::from_slice(&object.value)
                .with_context(|| format!("reading {}", key(cluster, "latest")))?;
            Some(UNIX_EPOCH + Duration::from_secs(backup.taken_at))
        }
        None => None,
    };
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    Ok(match taken {
        Some(t) if age(t) > limit => Some(format!(
            "the newest etcd backup of {cluster} is {} old (backups every {}): the control plane's backups are failing",
            humantime::format_duration(Duration::from_secs(age(t).as_secs())),
            humantime::format_duration(interval)
        )),
        Some(_) => None,
        None => match store.modified(&format!("{cluster}/bootstrap/init-lock")).await? {
            Some(init) if age(init) > limit => Some(format!(
                "{cluster} has no etcd backup, and its control plane started {} ago (backups every {})",
                humantime::format_duration(Duration::from_secs(age(init).as_secs())),
                humantime::format_duration(interval)
            )),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_are_times() {
        assert!(is_backup_name("2026-12-07T012500Z"));
        assert!(!is_backup_name("latest"));
        assert!(!is_backup_name("2026-12-07T01250Z"));
        assert!(!is_backup_name("2026-12-07T0125x0Z"));
    }

    #[test]
    fn a_restore_is_complete_when_every_recorded_member_is_done() {
        let command = RestoreCommand {
            id: "x".into(),
            backup: "b".into(),
            sha256: String::new(),
            requested_at: String::new(),
            requested_by: String::new(),
        };
        let mut p = RestoreProgress {
            command,
            members: vec![],
            done: BTreeSet::new(),
        };
        assert!(!p.complete());
        p.members = vec!["a".into(), "b".into()];
        p.done.insert("a".into());
        assert!(!p.complete());
        assert_eq!(p.waiting_for(), "b");
        p.done.insert("b".into());
        assert!(p.complete());
    }
}
