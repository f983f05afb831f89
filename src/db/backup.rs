//! `wafleet backup FILE`: an online, consistent copy of the SQLite database.
//!
//! `VACUUM INTO` on a connection of its own: SQLite reads the database in one read transaction
//! (a snapshot, so a daemon writing meanwhile neither waits long nor tears the copy) and writes
//! a compact, self-contained file (no `-wal` beside it). The source is only read. The copy is
//! never written over an existing file, and a copy that fails half-way is removed.
//!
//! PostgreSQL has its own tools (`pg_dump`, see docs/operations.md); this refuses it.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::config::{DatabaseKind, DatabaseSettings};

/// Why a backup was not made, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configured database is PostgreSQL.
    #[error("the database is PostgreSQL: back it up with pg_dump (see docs/operations.md)")]
    Postgres,
    /// `database.url` is not usable.
    #[error("{0}")]
    Config(String),
    /// The SQLite file does not exist (a backup never creates one).
    #[error("no SQLite database at {0}")]
    NoDatabase(PathBuf),
    /// The target exists; backups never overwrite.
    #[error("{0} already exists; a backup never overwrites a file")]
    TargetExists(PathBuf),
    /// The database could not be opened.
    #[error("cannot open the database {path}: {reason}")]
    Open {
        /// The SQLite file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The copy could not be written (directory missing or unwritable, disk full, …).
    #[error("cannot write the backup to {path}: {reason}")]
    Write {
        /// The target.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
}

/// Copies the configured SQLite database to `target` (which must not exist) and answers the
/// copy's size in bytes. Blocking: run it from `main` or a blocking thread.
pub fn vacuum_into(settings: &DatabaseSettings, target: &Path) -> Result<u64, BackupError> {
    let source = match settings
        .kind()
        .map_err(|e| BackupError::Config(e.to_string()))?
    {
        DatabaseKind::Postgres => return Err(BackupError::Postgres),
        DatabaseKind::Sqlite(path) => path,
    };
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source));
    }
    // symlink_metadata: a dangling link counts as existing too.
    if target.symlink_metadata().is_ok() {
        return Err(BackupError::TargetExists(target.to_path_buf()));
    }
    let open_error = |reason: String| BackupError::Open {
        path: source.clone(),
        reason,
    };
    let target_text = target.to_str().ok_or_else(|| BackupError::Write {
        path: target.to_path_buf(),
        reason: "the path is not valid UTF-8".into(),
    })?;
    let source_text = source
        .to_str()
        .ok_or_else(|| open_error("the path is not valid UTF-8".into()))?;
    let mut conn =
        SqliteConnection::establish(source_text).map_err(|e| open_error(e.to_string()))?;
    // Wait for a writer's lock like the daemon does; nothing else about the source changes.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        settings.sqlite_busy_timeout_ms
    ))
    .map_err(|e| open_error(e.to_string()))?;
    let copied = diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target_text)
        .execute(&mut conn);
    if let Err(err) = copied {
        // Only a file this call created can be here (it did not exist above).
        if target.is_file() {
            let _ = std::fs::remove_file(target);
        }
        return Err(BackupError::Write {
            path: target.to_path_buf(),
            reason: err.to_string(),
        });
    }
    std::fs::metadata(target)
        .map(|m| m.len())
        .map_err(|e| BackupError::Write {
            path: target.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn sqlite(path: &Path) -> DatabaseSettings {
        DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}", path.display())),
            max_connections: 1,
            acquire_timeout_secs: 1,
            sqlite_busy_timeout_ms: 1000,
            sqlite_cache_mib: 2,
        }
    }

    #[test]
    fn copies_refuses_to_overwrite_and_never_creates_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("source.db");
        let mut conn = SqliteConnection::establish(db.to_str().unwrap()).unwrap();
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept');",
        )
        .unwrap();
        let copy = dir.path().join("copy.db");
        let size = vacuum_into(&sqlite(&db), &copy).unwrap();
        assert!(size > 0);
        let mut back = SqliteConnection::establish(copy.to_str().unwrap()).unwrap();
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            x: String,
        }
        let rows: Vec<Row> = diesel::sql_query("SELECT x FROM t")
            .load(&mut back)
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].x, "kept");

        let before = std::fs::read(&copy).unwrap();
        assert!(matches!(
            vacuum_into(&sqlite(&db), &copy),
            Err(BackupError::TargetExists(_))
        ));
        assert_eq!(std::fs::read(&copy).unwrap(), before, "left as it was");

        let missing = dir.path().join("missing.db");
        assert!(matches!(
            vacuum_into(&sqlite(&missing), &dir.path().join("x.db")),
            Err(BackupError::NoDatabase(_))
        ));
        assert!(!missing.exists(), "a backup never creates a database");

        // A directory that cannot exist: its parent is a file.
        let err = vacuum_into(&sqlite(&db), &db.join("copy.db")).unwrap_err();
        assert!(matches!(err, BackupError::Write { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn postgres_points_at_pg_dump() {
        let settings = DatabaseSettings {
            url: SecretString::from("postgres://u:pw@db/x".to_string()),
            max_connections: 1,
            acquire_timeout_secs: 1,
            sqlite_busy_timeout_ms: 1000,
            sqlite_cache_mib: 2,
        };
        let err = vacuum_into(&settings, Path::new("/tmp/never.db")).unwrap_err();
        assert!(err.to_string().contains("pg_dump"), "{err}");
    }
}
