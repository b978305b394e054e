//! The etcd backup policy a spec asks for: kops's `etcdClusters[].manager.backupInterval` and
//! `backupRetentionDays`, with kops's defaults (every 15 minutes, kept 90 days). kubeadm runs
//! one etcd cluster, so the policy of `main` is the one the control plane follows.

use std::time::Duration;

use crate::{ClusterSpec, EtcdClusterSpec};

/// Every 15 minutes, as kops's etcd-manager.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Kept 90 days, as kops's etcd-manager.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Shorter than a snapshot of a large database takes; longer than a day loses a day.
const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// How often the etcd leader takes a backup and how long backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupPolicy {
    /// Time between two backups.
    pub interval: Duration,
    /// Days a backup is kept.
    pub retention_days: u32,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        BackupPolicy {
            interval: DEFAULT_INTERVAL,
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }
}

/// A field of the policy that cannot be used: its path (under the etcd cluster), the value
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPolicy {
    /// The field, under `spec.etcdClusters[N]`.
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong, and the fix.
    pub message: String,
}

/// The policy of the `main` etcd cluster (the default when there is none or it says nothing).
pub fn main_policy(spec: &ClusterSpec) -> Result<BackupPolicy, BadPolicy> {
    spec.etcd_clusters
        .iter()
        .flatten()
        .find(|e| e.name.as_deref() == Some("main"))
        .map_or(Ok(BackupPolicy::default()), policy)
}

/// The policy one etcd cluster's manager fields give.
pub fn policy(etcd: &EtcdClusterSpec) -> Result<BackupPolicy, BadPolicy> {
    let mut out = BackupPolicy::default();
    let Some(manager) = etcd.manager.as_ref() else {
        return Ok(out);
    };
    if let Some(text) = manager.backup_interval.as_deref() {
        let bad = |message: String| BadPolicy {
            field: "manager.backupInterval",
            value: text.to_string(),
            message,
        };
        let interval = humantime::parse_duration(text).map_err(|e| {
            bad(format!(
                "not a duration ({e}); write it as kops does, e.g. 15m or 1h"
            ))
        })?;
        if interval < INTERVAL_RANGE.0 || interval > INTERVAL_RANGE.1 {
            return Err(bad("use an interval from 1m to 24h".into()));
        }
        out.interval = interval;
    }
    if let Some(days) = manager.backup_retention_days {
        out.retention_days = u32::try_from(days)
            .ok()
            .filter(|d| *d >= 1)
            .ok_or_else(|| BadPolicy {
                field: "manager.backupRetentionDays",
                value: days.to_string(),
                message: "keep backups at least 1 day".into(),
            })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manager;

    fn etcd(interval: Option<&str>, days: Option<i32>) -> EtcdClusterSpec {
        EtcdClusterSpec {
            name: Some("main".into()),
            manager: Some(Manager {
                backup_interval: interval.map(str::to_string),
                backup_retention_days: days,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn kops_defaults_and_go_durations() {
        assert_eq!(
            policy(&EtcdClusterSpec::default()),
            Ok(BackupPolicy::default())
        );
        assert_eq!(
            policy(&etcd(Some("1h0m0s"), Some(7))),
            Ok(BackupPolicy {
                interval: Duration::from_secs(3600),
                retention_days: 7
            })
        );
        assert_eq!(
            policy(&etcd(Some("5m"), None)).unwrap().interval,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = policy(&etcd(Some("soon"), None)).unwrap_err();
        assert_eq!(
            (e.field, e.value.as_str()),
            ("manager.backupInterval", "soon")
        );
        let e = policy(&etcd(Some("10s"), None)).unwrap_err();
        assert!(e.message.contains("1m to 24h"), "{e:?}");
        let e = policy(&etcd(None, Some(0))).unwrap_err();
        assert_eq!(e.field, "manager.backupRetentionDays");
    }
}
