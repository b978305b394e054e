//! Conditional writes on a local directory.
//!
//! `object_store`'s `LocalFileSystem` does `PutMode::Create` atomically but not
//! `PutMode::Update` (compare-and-swap), which a file system cannot do in one call. We add it
//! here: a writer takes a short per-object guard file (`O_EXCL`), checks that the object still
//! has the version it read (a SHA-256 of its bytes), writes a temporary file and renames it over
//! the object (atomic on POSIX), then drops the guard. Readers never see a partial file.
//! Files are written 0600 and directories 0700: the store holds private keys.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::StateStoreError;

/// How long a writer waits for another writer of the same object.
const GUARD_WAIT: Duration = Duration::from_secs(20);

/// The version of a local object: the hex SHA-256 of its content.
pub fn content_version(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A per-object write guard: an exclusive OS lock (`flock`) on `.<name>.kopsrs-write`. The
/// kernel releases it when its holder exits, however it exits, so a crashed writer leaves no
/// lock behind (the file stays, empty, and listings skip it). The file is never removed:
/// removing a locked file lets a second writer lock a new file of the same name.
struct Guard(#[allow(dead_code)] std::fs::File);

fn take_guard(target: &Path) -> Result<Guard, StateStoreError> {
    let guard = target.with_file_name(format!(
        ".{}.kopsrs-write",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object")
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&guard)
        .map_err(|e| StateStoreError::Io(format!("{}: {e}", guard.display())))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Guard(file)),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < GUARD_WAIT => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateStoreError::Io(format!(
                    "{} is held by another writer",
                    guard.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StateStoreError::Io(format!("{}: {e}", guard.display())))
            }
        }
    }
}

/// Creates `dir` and its missing parents readable by the owner only (0700), as kops does: the
/// store holds CA private keys.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Whether a file name is a writer's own (a guard or a temporary file), never an object.
pub fn is_internal(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(".kopsrs-write") || name.ends_with(".tmp"))
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
        create_private_dir_all(parent)
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
    // Owner-only (0600), as kops writes its files: the rename keeps the mode.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, target).map_err(io)?;
    Ok(content_version(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn objects_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("c.example.com/pki/private/ca/keyset.yaml");
        write_if(&target, "ca", b"secret", None).unwrap();
        assert_eq!(mode(&target), 0o600);
        for folder in [
            "c.example.com",
            "c.example.com/pki",
            "c.example.com/pki/private/ca",
        ] {
            assert_eq!(mode(&dir.path().join(folder)), 0o700, "{folder}");
        }
    }

    #[test]
    fn a_crashed_writers_guard_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        // What a writer killed while holding the guard leaves: the file, with no lock on it.
        std::fs::write(dir.path().join(".config.kopsrs-write"), "").unwrap();
        let started = Instant::now();
        write_if(&target, "config", b"a", None).unwrap();
        assert!(started.elapsed() < GUARD_WAIT / 2);
    }

    #[test]
    fn a_held_guard_makes_the_second_writer_wait() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        let held = take_guard(&target).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let target = target.clone();
            std::thread::spawn(move || {
                let result = write_if(&target, "config", b"b", None);
                tx.send(()).unwrap();
                result
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "wrote while another writer held the guard"
        );
        drop(held);
        writer.join().unwrap().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"b");
    }

    #[test]
    fn leftovers_are_not_objects() {
        for name in [".nodes.4242.tmp", ".config.kopsrs-write"] {
            assert!(is_internal(name), "{name}");
        }
        for name in ["nodes", "config", "keyset.yaml", ".hidden-but-not-ours"] {
            assert!(!is_internal(name), "{name}");
        }
    }
}
