//! Conditional writes on a local directory.
//!
//! `object_store`'s `LocalFileSystem` does `PutMode::Create` atomically but not
//! `PutMode::Update` (compare-and-swap), which a file system cannot do in one call. We add it
//! here: a writer takes a short per-object guard file (`O_EXCL`), checks that the object still
//! has the version it read (a SHA-256 of its bytes), writes a temporary file and renames it over
//! the object (atomic on POSIX), then drops the guard. Readers never see a partial file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::store::StateStoreError;

/// A guard file older than this is taken to be left by a crashed writer and is removed.
const STALE_GUARD: Duration = Duration::from_secs(30);
const GUARD_WAIT: Duration = Duration::from_secs(20);

/// The version of a local object: the hex SHA-256 of its content.
pub fn content_version(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn take_guard(target: &Path) -> Result<Guard, StateStoreError> {
    let guard = target.with_file_name(format!(
        ".{}.kopsrs-write",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object")
    ));
    let started = Instant::now();
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&guard)
        {
            Ok(_) => return Ok(Guard(guard)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&guard)
                    .and_then(|m| m.modified())
                    .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE_GUARD)
                    .unwrap_or(false);
                if stale {
                    let _ = std::fs::remove_file(&guard);
                    continue;
                }
                if started.elapsed() > GUARD_WAIT {
                    return Err(StateStoreError::Io(format!(
                        "{} is held by another writer",
                        guard.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(StateStoreError::Io(format!("{}: {e}", guard.display()))),
        }
    }
}

/// Writes `bytes` to `target` if its current version is `expected` (`None`: must not exist).
/// Returns the new version.
pub fn write_if(
    target: &Path,
    key: &str,
    bytes: &[u8],
    expected: Option<&str>,
) -> Result<String, StateStoreError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StateStoreError::Io(format!("{}: {e}", parent.display())))?;
    }
    let _guard = take_guard(target)?;
    let current = match std::fs::read(target) {
        Ok(content) => Some(content_version(&content)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StateStoreError::Io(format!("{}: {e}", target.display()))),
    };
    match (expected, current.as_deref()) {
        (None, None) => {}
        (Some(want), Some(have)) if want == have => {}
        (None, Some(_)) => return Err(StateStoreError::AlreadyExists(key.to_string())),
        _ => return Err(StateStoreError::Conflict(key.to_string())),
    }
    let temporary = target.with_file_name(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        std::process::id()
    ));
    let io = |e: std::io::Error| StateStoreError::Io(format!("{}: {e}", temporary.display()));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, target).map_err(io)?;
    Ok(content_version(bytes))
}
