//! Scratch databases: a fresh, empty database for one test or one benchmark run, removed after.
//!
//! SQLite: a file in a new folder under the system's temporary directory. PostgreSQL: a new
//! database (`CREATE DATABASE <prefix>_<uuid>`) on the server of an admin URL, dropped `WITH
//! (FORCE)` because a stopped daemon's pool may still hold connections. The integration tests
//! (`tests/api/helpers.rs`) and `wafleet bench` both build on this.

use std::path::PathBuf;

use diesel_async::RunQueryDsl;
use secrecy::{ExposeSecret, SecretString};

use super::postgres::{PgConnectError, PgTarget};
use super::DbError;

/// A database that exists until [`ScratchDatabase::remove`] (or
/// [`ScratchDatabase::remove_blocking`]).
pub struct ScratchDatabase {
    /// The URL to give the daemon (`sqlite://…` or `postgres://…/<name>`).
    pub url: String,
    cleanup: Cleanup,
}

/// How to remove a [`ScratchDatabase`].
enum Cleanup {
    /// Delete this folder.
    Sqlite(PathBuf),
    /// Drop database `name` through the server's `admin_url`.
    Postgres {
        admin_url: SecretString,
        name: String,
    },
    /// Already removed.
    Done,
}

impl ScratchDatabase {
    /// A new SQLite file in a folder of its own, named after `prefix`.
    pub fn sqlite(prefix: &str) -> Result<ScratchDatabase, DbError> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", suffix()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| DbError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        Ok(ScratchDatabase {
            url: format!("sqlite://{}", dir.join("wafleet.db").display()),
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A new database named `<prefix>_<uuid>` on the PostgreSQL server of `admin_url`, whose
    /// user may create databases.
    pub async fn postgres(
        admin_url: &SecretString,
        prefix: &str,
    ) -> Result<ScratchDatabase, DbError> {
        let server = admin_url.expose_secret();
        let mut url = url::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"))
            .ok_or_else(|| DbError::Unavailable("not a postgres:// server URL".into()))?;
        let name = format!("{prefix}_{}", suffix());
        let mut conn = connect(server)
            .await
            .map_err(|e| DbError::Unavailable(format!("cannot connect to the server: {e}")))?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        url.set_path(&name);
        Ok(ScratchDatabase {
            url: url.to_string(),
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.clone(),
                name,
            },
        })
    }

    /// Removes the database.
    pub async fn remove(mut self) -> Result<(), DbError> {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(&dir)
                .map_err(|e| DbError::Unavailable(format!("cannot remove {}: {e}", dir.display()))),
            Cleanup::Postgres { admin_url, name } => {
                let mut conn = connect(admin_url.expose_secret())
                    .await
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                Ok(())
            }
            Cleanup::Done => Ok(()),
        }
    }

    /// [`ScratchDatabase::remove`] from synchronous code that may itself run inside an async
    /// runtime (a `Drop`): on a thread of its own with its own runtime.
    pub fn remove_blocking(&mut self) -> Result<(), DbError> {
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        let scratch = ScratchDatabase {
            url: self.url.clone(),
            cleanup,
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            runtime.block_on(scratch.remove())
        })
        .join()
        .unwrap_or_else(|_| Err(DbError::Unavailable("the cleanup thread failed".into())))
    }
}

/// One connection to the server of `url`, with the TLS its URL asks for.
async fn connect(url: &str) -> Result<diesel_async::AsyncPgConnection, PgConnectError> {
    PgTarget::from_url(url)?.connect().await
}

/// A unique name part.
fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
