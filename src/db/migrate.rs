//! Embedded migrations, applied at start-up and by `wafleet migrate`.
//!
//! diesel's migration harness is synchronous and, through diesel-async's wrapper, calls
//! `block_on`, which panics inside a current-thread runtime such as an actix arbiter. So every
//! function here runs its work on a fresh OS thread with no runtime of its own attached, and
//! callers on an async thread await it through [`run_pending_async`].
//!
//! Two daemons starting at once must not both apply a migration: PostgreSQL runs migrations
//! under a session advisory lock; SQLite under an exclusive lock on a `<db>.migrate.lock` file.

use std::fs::OpenOptions;
use std::path::Path;

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel::{Connection, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use super::postgres::PgTarget;
use super::{sqlite_pragmas, DbError};
use crate::config::{DatabaseKind, DatabaseSettings};

/// Migrations for SQLite, compiled into the binary.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Migrations for PostgreSQL, compiled into the binary; same names as the SQLite ones.
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Key of the PostgreSQL advisory lock held while migrating ("wafleet" in ASCII, truncated).
const PG_MIGRATION_LOCK: i64 = 0x7761_666c_6565;

/// What a migration run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, oldest first; empty when the schema was current.
    pub applied: Vec<String>,
}

/// Applies every pending migration. Blocking: call from `main` or a blocking thread.
pub fn run_pending(settings: &DatabaseSettings) -> Result<MigrationReport, DbError> {
    let settings = settings.clone();
    on_plain_thread(move || with_migration_connection(&settings, Operation::RunPending))
        .map(|applied| MigrationReport { applied })
}

/// [`run_pending`] from async code, without blocking the caller's executor thread.
pub async fn run_pending_async(settings: &DatabaseSettings) -> Result<MigrationReport, DbError> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || run_pending(&settings))
        .await
        .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
}

/// Reverts every migration (schema tests check up → down → up) and returns how many. Blocking.
pub fn revert_all(settings: &DatabaseSettings) -> Result<usize, DbError> {
    let settings = settings.clone();
    on_plain_thread(move || with_migration_connection(&settings, Operation::RevertAll))
        .map(|reverted| reverted.len())
}

/// The versions the binary carries for this backend, oldest first (readiness compares these
/// with the applied ones).
pub fn embedded_versions(postgres: bool) -> Result<Vec<String>, DbError> {
    fn versions<DB: diesel::backend::Backend>(
        source: &EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError>
    where
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let list = MigrationSource::<DB>::migrations(source)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(list
            .iter()
            .map(|m| m.name().version().to_string())
            .collect())
    }
    if postgres {
        versions::<Pg>(&POSTGRES_MIGRATIONS)
    } else {
        versions::<Sqlite>(&SQLITE_MIGRATIONS)
    }
}

/// What to do with the migrations.
#[derive(Debug, Clone, Copy)]
enum Operation {
    /// Apply the pending ones.
    RunPending,
    /// Revert all applied ones.
    RevertAll,
}

/// Runs `operation` on a harness; returns the versions it applied or reverted.
fn apply<DB, C>(
    conn: &mut C,
    source: EmbeddedMigrations,
    operation: Operation,
) -> Result<Vec<String>, DbError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let versions = match operation {
        Operation::RunPending => conn.run_pending_migrations(source),
        Operation::RevertAll => conn.revert_all_migrations(source),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(versions.iter().map(ToString::to_string).collect())
}

/// Opens a dedicated connection, takes the cross-process migration lock, and runs `work`.
fn with_migration_connection(
    settings: &DatabaseSettings,
    operation: Operation,
) -> Result<Vec<String>, DbError> {
    let kind = settings
        .kind()
        .map_err(|e| DbError::Migration(e.to_string()))?;
    match kind {
        DatabaseKind::Sqlite(path) => {
            super::ensure_parent_dir(&path)?;
            let _lock = lock_file(&path)?;
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &sqlite_pragmas(settings.sqlite_busy_timeout_ms, settings.sqlite_cache_mib),
            )?;
            apply(&mut conn, SQLITE_MIGRATIONS, operation)
        }
        DatabaseKind::Postgres => {
            // Opened on a runtime of its own (this is a plain thread): a one-worker runtime,
            // because the connection's driver task must keep running while the wrapper blocks.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            let target = PgTarget::from_url(settings.url.expose_secret())
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            let conn = runtime
                .block_on(target.connect())
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            let _entered = runtime.enter();
            let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = conn.into();
            // Session-level lock: released when this connection closes, even on error.
            diesel::RunQueryDsl::execute(
                diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})")),
                &mut conn,
            )?;
            apply(&mut conn, POSTGRES_MIGRATIONS, operation)
        }
    }
}

/// Holds an exclusive lock on `<db>.migrate.lock` until dropped.
fn lock_file(db_path: &Path) -> Result<std::fs::File, DbError> {
    let mut lock_path = db_path.as_os_str().to_owned();
    lock_path.push(".migrate.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DbError::Migration(format!("cannot open migration lock: {e}")))?;
    file.lock()
        .map_err(|e| DbError::Migration(format!("cannot take migration lock: {e}")))?;
    Ok(file)
}

/// Runs `work` on a new OS thread that has no tokio runtime attached, and waits for it.
fn on_plain_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    std::thread::spawn(work)
        .join()
        .map_err(|_| DbError::Migration("migration thread panicked".into()))?
}

/// Versions recorded as applied in the database, oldest first.
pub async fn applied_versions(db: &super::Db) -> Result<Vec<String>, DbError> {
    use crate::db::schema::__diesel_schema_migrations as m;
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::RunQueryDsl;
    crate::db_run!(db, |conn| {
        m::table
            .select(m::version)
            .order(m::version.asc())
            .load::<String>(conn)
            .await
            .map_err(DbError::from)
    })
}
