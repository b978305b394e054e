//! The cluster lock: one writer of the cloud at a time.
//!
//! kops has no lock (kubernetes/kops#3903, #5086). Like Terraform's S3 backend, kopsrs takes a
//! lock object with a create-only write (`If-None-Match: *` on S3), holding who took it, where,
//! for what and when. It is released at the end. A lock left by a process that is provably
//! gone (same host, same PID namespace, no such process) is taken over by the next run, so a
//! run killed on a laptop or a CI machine resumes by running it again; any other lock left by
//! a crash is removed with `--force-unlock`, which needs the holder's ID so the wrong lock is
//! never broken.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StateStoreError;
use crate::layout;
use crate::store::{StateStore, Version};

/// What the lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    /// An ID made from the time and the process ID (`5f3a9c21-1a2b`); `--force-unlock` needs it.
    pub id: String,
    /// The user who took the lock (`$USER`, else `$USERNAME`, else `unknown`).
    pub owner: String,
    /// The host name of the machine that took the lock.
    pub host: String,
    /// The command the holder runs, e.g. `update cluster --yes`.
    pub command: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The holder's process ID on `host` (0 in locks written before it was recorded).
    #[serde(default)]
    pub pid: u32,
    /// The holder's PID namespace (`pid:[4026531836]`): a process of another container with
    /// the same host name is not visible here, so liveness is told only within one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid_namespace: String,
}

/// This process's PID namespace, as `/proc/self/ns/pid` names it (empty when unknown).
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl LockInfo {
    /// A one-line description for messages, with whether the holder still runs when that can
    /// be told from here (same host).
    pub fn describe(&self) -> String {
        let liveness = match self.holder_alive() {
            Some(true) => format!("; process {} is still running", self.pid),
            Some(false) => format!(
                "; process {} no longer runs on this host, so the lock looks stale",
                self.pid
            ),
            None => String::new(),
        };
        format!(
            "{}@{} running {:?} since {} (lock ID {}){liveness}",
            self.owner,
            self.host,
            self.command,
            format_time(self.created),
            self.id
        )
    }

    /// Whether the holding process still runs: known only on the host (and in the PID
    /// namespace) that took the lock.
    pub fn holder_alive(&self) -> Option<bool> {
        let here = gethostname::gethostname().to_string_lossy().into_owned();
        if self.pid == 0 || self.host != here {
            return None;
        }
        if self.pid_namespace.is_empty() || self.pid_namespace != pid_namespace() {
            return None;
        }
        Some(std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
    }
}

fn format_time(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
        .to_string()
}

/// Now, as RFC 3339 UTC (what kops writes in `creationTimestamp`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What a lock object holds while it is being removed. object_store has no conditional
/// delete, so removing a lock is two steps: a write of this marker conditional on the lock's
/// version (it fails when the lock is no longer the one read), then a plain delete of the
/// marker. A marker is no lock: reads see none, and `lock` takes it over.
const RELEASED: &[u8] = b"{\"released\": true}\n";

/// A held lock. Call [`LockGuard::release`] when done; a guard that is dropped without it
/// (a panic) leaves the lock for `--force-unlock`, which is the safe failure.
pub struct LockGuard<'a> {
    store: &'a StateStore,
    cluster: String,
    /// The lock object's version as this run wrote it.
    version: Version,
    /// What was written into the lock object.
    pub info: LockInfo,
    /// The lock of a process that no longer ran, taken over by this one.
    pub taken_over: Option<LockInfo>,
}

impl LockGuard<'_> {
    /// Removes the lock if it is still this one, conditionally on the version this run
    /// wrote: a lock that someone force-unlocked and another run took meanwhile is that run's,
    /// and stays.
    pub async fn release(self) -> Result<(), StateStoreError> {
        self.store.remove_lock(&self.cluster, &self.version).await
    }
}

impl StateStore {
    /// Takes the lock of `cluster` for `command`, or fails naming the holder.
    pub async fn lock(
        &self,
        cluster: &str,
        command: &str,
    ) -> Result<LockGuard<'_>, StateStoreError> {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // The ID only has to tell two runs apart (release and force-unlock compare it), so
        // time and process ID are enough; no random source is needed.
        let info = LockInfo {
            id: format!(
                "{:08x}-{:04x}",
                created as u32 ^ nanos,
                std::process::id() & 0xffff
            ),
            owner: self.owner.clone(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            command: command.to_string(),
            created,
            pid: std::process::id(),
            pid_namespace: pid_namespace(),
        };
        let key = format!("{cluster}/{}", layout::LOCK);
        let bytes = Bytes::from(serde_json::to_vec_pretty(&info).expect("lock info serializes"));
        let mut taken_over = None;
        let written = match self.put(&key, bytes.clone(), None).await {
            // A lock being removed (or left half-removed by a crash), or held by a process
            // that provably no longer runs, is free: taken over conditionally on the version
            // read, so of two runs taking it, one wins.
            Err(StateStoreError::AlreadyExists(_) | StateStoreError::Conflict(_)) => {
                match self.read_lock_versioned(cluster).await? {
                    Some((None, released)) => self.put(&key, bytes, Some(&released)).await,
                    Some((Some(held), version)) if held.holder_alive() == Some(false) => {
                        taken_over = Some(held);
                        self.put(&key, bytes, Some(&version)).await
                    }
                    _ => Err(StateStoreError::AlreadyExists(key.clone())),
                }
            }
            other => other,
        };
        match written {
            Ok(version) => Ok(LockGuard {
                store: self,
                cluster: cluster.to_string(),
                version,
                info,
                taken_over,
            }),
            Err(StateStoreError::AlreadyExists(_) | StateStoreError::Conflict(_)) => {
                let holder = self
                    .read_lock(cluster)
                    .await?
                    .map(|h| h.describe())
                    .unwrap_or_else(|| "another process".into());
                Err(StateStoreError::Locked {
                    cluster: cluster.to_string(),
                    holder,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Who holds the lock of `cluster`, if anyone.
    pub async fn read_lock(&self, cluster: &str) -> Result<Option<LockInfo>, StateStoreError> {
        Ok(self
            .read_lock_versioned(cluster)
            .await?
            .and_then(|(info, _)| info))
    }

    /// The lock object of `cluster` with its version: `Some((None, _))` while it is being
    /// removed ([`RELEASED`]).
    async fn read_lock_versioned(
        &self,
        cluster: &str,
    ) -> Result<Option<(Option<LockInfo>, Version)>, StateStoreError> {
        let key = format!("{cluster}/{}", layout::LOCK);
        let Some(object) = self.get(&key).await? else {
            return Ok(None);
        };
        if object.value.as_ref() == RELEASED {
            return Ok(Some((None, object.version)));
        }
        let info = serde_json::from_slice(&object.value).map_err(|e| StateStoreError::Corrupt {
            key,
            reason: e.to_string(),
        })?;
        Ok(Some((Some(info), object.version)))
    }

    /// Removes the lock of `cluster` if its object is still at `version`: the marker is
    /// written conditionally, then deleted. A lock that changed is left as it is.
    async fn remove_lock(&self, cluster: &str, version: &Version) -> Result<(), StateStoreError> {
        let key = format!("{cluster}/{}", layout::LOCK);
        match self
            .put(&key, Bytes::from_static(RELEASED), Some(version))
            .await
        {
            Ok(_) => self.delete(&key).await,
            Err(StateStoreError::Conflict(_) | StateStoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a stale lock, only if its ID is `id`, conditionally on the version read (a
    /// lock taken again in between is not broken).
    pub async fn force_unlock(&self, cluster: &str, id: &str) -> Result<LockInfo, StateStoreError> {
        match self.read_lock_versioned(cluster).await? {
            None | Some((None, _)) => Err(StateStoreError::Io(format!(
                "cluster {cluster:?} is not locked"
            ))),
            Some((Some(info), _)) if info.id != id => Err(StateStoreError::Io(format!(
                "the lock of {cluster:?} has ID {}, not {id}; check who holds it: {}",
                info.id,
                info.describe()
            ))),
            Some((Some(info), version)) => {
                let key = format!("{cluster}/{}", layout::LOCK);
                match self.put(&key, Bytes::from_static(RELEASED), Some(&version)).await {
                    Ok(_) => self.delete(&key).await?,
                    Err(StateStoreError::Conflict(_) | StateStoreError::AlreadyExists(_)) => {
                        return Err(StateStoreError::Io(format!(
                            "the lock of {cluster:?} changed while it was being broken; read it again with `kopsrs force-unlock` before breaking it"
                        )))
                    }
                    Err(e) => return Err(e),
                }
                Ok(info)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_whether_the_holder_runs() {
        let here = gethostname::gethostname().to_string_lossy().into_owned();
        let info = |host: &str, pid: u32| LockInfo {
            id: "1".into(),
            owner: "o".into(),
            host: host.into(),
            command: "update cluster".into(),
            created: 0,
            pid,
            pid_namespace: pid_namespace(),
        };
        assert_eq!(info(&here, std::process::id()).holder_alive(), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        assert_eq!(info(&here, gone).holder_alive(), Some(false));
        assert!(info(&here, gone).describe().contains("looks stale"));
        assert_eq!(info("elsewhere", std::process::id()).holder_alive(), None);
        assert_eq!(info(&here, 0).holder_alive(), None);
        // Another container with the same host name: its processes are not visible here.
        let elsewhere = LockInfo {
            pid_namespace: "pid:[1]".into(),
            ..info(&here, gone)
        };
        assert_eq!(elsewhere.holder_alive(), None);
    }

    #[tokio::test]
    async fn a_lock_whose_process_is_gone_is_taken_over_and_no_other() {
        let store = StateStore::open("memory://", &Default::default())
            .await
            .unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let here = gethostname::gethostname().to_string_lossy().into_owned();
        let left = |pid: u32, namespace: String| LockInfo {
            id: "dead-1".into(),
            owner: "o".into(),
            host: here.clone(),
            command: "reconcile cluster --yes".into(),
            created: 0,
            pid,
            pid_namespace: namespace,
        };
        let key = format!("c.example.com/{}", layout::LOCK);
        let write = |info: LockInfo| {
            let store = &store;
            let key = key.clone();
            async move {
                store
                    .overwrite(&key, serde_json::to_vec(&info).unwrap().into())
                    .await
                    .unwrap();
            }
        };
        // Killed on this machine: the next run takes the lock and says whose it was.
        write(left(gone, pid_namespace())).await;
        let guard = store
            .lock("c.example.com", "reconcile cluster --yes")
            .await
            .unwrap();
        assert_eq!(
            guard.taken_over.as_ref().map(|l| l.id.as_str()),
            Some("dead-1")
        );
        guard.release().await.unwrap();
        // A live holder, one of another container, one without a namespace: kept.
        for held in [
            left(std::process::id(), pid_namespace()),
            left(gone, "pid:[1]".into()),
            left(gone, String::new()),
        ] {
            write(held).await;
            let e = store
                .lock("c.example.com", "update cluster --yes")
                .await
                .err()
                .unwrap();
            assert!(matches!(e, StateStoreError::Locked { .. }), "{e}");
        }
    }

    #[tokio::test]
    async fn releasing_never_removes_another_runs_lock() {
        let store = StateStore::open("memory://", &Default::default())
            .await
            .unwrap();
        let first = store
            .lock("c.example.com", "update cluster --yes")
            .await
            .unwrap();
        // The first run looked dead; someone force-unlocked and a second run took the lock.
        store
            .force_unlock("c.example.com", &first.info.id)
            .await
            .unwrap();
        let second = store
            .lock("c.example.com", "update cluster --yes")
            .await
            .unwrap();
        first.release().await.unwrap();
        let held = store.read_lock("c.example.com").await.unwrap().unwrap();
        assert_eq!(
            held.id, second.info.id,
            "the first run removed the second's lock"
        );
        second.release().await.unwrap();
        assert!(store.read_lock("c.example.com").await.unwrap().is_none());
    }

    /// Release and force-unlock are conditional on the lock object's version, not only its
    /// ID: a lock rewritten after the read (here with the same ID, as a second run that
    /// happened to make the same one would) is left alone. A crash between the two steps of
    /// a removal leaves a marker that is no lock and that the next `lock` takes over.
    #[tokio::test]
    async fn removal_is_conditional_on_the_version_and_a_half_removed_lock_is_free() {
        let store = StateStore::open("memory://", &Default::default())
            .await
            .unwrap();
        let cluster = "c.example.com";
        let key = format!("{cluster}/{}", layout::LOCK);
        let first = store.lock(cluster, "update cluster --yes").await.unwrap();
        let mut rewritten = first.info.clone();
        rewritten.command = "rolling-update cluster --yes".into();
        store
            .put(
                &key,
                Bytes::from(serde_json::to_vec(&rewritten).unwrap()),
                Some(&first.version),
            )
            .await
            .unwrap();
        let id = first.info.id.clone();
        first.release().await.unwrap();
        let held = store
            .read_lock(cluster)
            .await
            .unwrap()
            .expect("still locked");
        assert_eq!(held.command, "rolling-update cluster --yes");
        // Broken by its ID, then gone.
        store.force_unlock(cluster, &id).await.unwrap();
        assert!(store.read_lock(cluster).await.unwrap().is_none());
        // A removal that stopped after its first step: no lock, and the next run takes it.
        store
            .put(&key, Bytes::from_static(RELEASED), None)
            .await
            .unwrap();
        assert!(store.read_lock(cluster).await.unwrap().is_none());
        let next = store.lock(cluster, "update cluster --yes").await.unwrap();
        assert_eq!(
            store.read_lock(cluster).await.unwrap().unwrap().id,
            next.info.id
        );
        assert!(store.lock(cluster, "update cluster --yes").await.is_err());
        next.release().await.unwrap();
        assert!(store.get(&key).await.unwrap().is_none());
    }

    #[test]
    fn formats_time() {
        assert_eq!(format_time(1_483_228_800), "2017-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
