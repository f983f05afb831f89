//! One daemon per SQLite file. Two daemons on one file would both connect every device (the
//! same WhatsApp sessions fighting, "stream replaced") and both run every campaign lane, and
//! SQLite has no way to share ownership between processes. The daemon therefore holds an
//! exclusive lock on `<file>.lock` beside the database while it runs; a second one refuses to
//! start. The operating system drops the lock when the process ends, however it ends
//! (SIGKILL included), so a restart never finds a stale lock. PostgreSQL needs none of this.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::config::{DatabaseKind, DatabaseSettings};

/// The lock of the daemon's SQLite file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// Takes the lock of the configured SQLite file (creating its directory); `None` on
/// PostgreSQL. Fails when another daemon holds it, naming the file, or when the lock file
/// cannot be written.
pub fn lock(settings: &DatabaseSettings) -> Result<Option<FileLock>, String> {
    match settings.kind().map_err(|e| e.to_string())? {
        DatabaseKind::Sqlite(path) => lock_file(&path).map(Some),
        DatabaseKind::Postgres => Ok(None),
    }
}

/// The lock file of the database at `path`.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn lock_file(path: &Path) -> Result<FileLock, String> {
    super::ensure_parent_dir(path).map_err(|e| e.to_string())?;
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(FileLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(format!(
            "another wafleet daemon is running on {} (it holds {}); SQLite serves one daemon \
             per file — stop that one first, or use PostgreSQL to run several",
            path.display(),
            lock_path.display()
        )),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", lock_path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("wafleet.db");
        let first = lock_file(&path).unwrap();
        let refused = lock_file(&path).unwrap_err();
        assert!(refused.contains("another wafleet daemon"), "{refused}");
        assert!(refused.contains("wafleet.db"), "{refused}");
        drop(first);
        lock_file(&path).unwrap();
    }

    #[test]
    fn another_file_has_its_own_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _one = lock_file(&dir.path().join("one.db")).unwrap();
        lock_file(&dir.path().join("two.db")).unwrap();
    }
}
