//! The database layer: one [`Db`] handle over SQLite or PostgreSQL, chosen at run time.
//!
//! Queries are written once in each feature's `store.rs` and run on either backend through
//! [`db_run!`](crate::db_run): the macro expands its body once per backend, so each copy is
//! type-checked against its own connection type (diesel-async has no multi-backend connection).
//!
//! - SQLite (embedded default): diesel's `SqliteConnection` inside diesel-async's
//!   `SyncConnectionWrapper` (each query runs on a blocking thread), pooled, with WAL, a busy
//!   timeout and foreign keys switched on for every connection.
//! - PostgreSQL (production): `AsyncPgConnection`, pooled with deadpool.
//!
//! Migrations ([`migrate`]) are embedded in the binary and run before the server starts.
//!
//! SQLite note: a write transaction must start with its first write (not a read followed by a
//! write), otherwise a concurrent writer can make its lock upgrade fail at once with
//! `SQLITE_BUSY` instead of waiting for the busy timeout.

pub mod migrate;
pub mod schema;
pub mod scratch;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;
use secrecy::ExposeSecret;

use crate::config::{DatabaseKind, DatabaseSettings};

/// An SQLite connection usable from async code.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, DetachedBlocking>;

/// Runs SQLite work on tokio's blocking pool, like diesel-async's default, but waits for a
/// cancelled statement without `block_in_place`.
///
/// diesel-async's default finishes a cancelled statement with `block_in_place`, which panics on a
/// current-thread runtime: every actix arbiter is one, and a client that hangs up mid-request
/// cancels its handler. The wait itself is required (the connection must not return to the pool
/// while a statement still holds it), so the dropped future parks its thread until the blocking
/// task signals completion: a short stall, only on cancellation, instead of a dead arbiter.
pub struct DetachedBlocking;

impl diesel_async::sync_connection_wrapper::SpawnBlocking for DetachedBlocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        if INLINE.with(std::cell::Cell::get) {
            // Already on the blocking thread of a `db_batch!`: no hand-off per statement.
            let output = task();
            return async move { Ok(output) }.boxed();
        }
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = tokio::task::spawn_blocking(move || {
            let output = task();
            let _ = done_tx.send(());
            output
        });
        let guard = FinishOnDrop {
            handle,
            done: done_rx,
        };
        async move { guard.await.map_err(|e| Box::new(e) as Box<_>) }.boxed()
    }

    fn get_runtime() -> Self {
        DetachedBlocking
    }
}

thread_local! {
    /// Set while a `db_batch!` block runs on its blocking thread: SQLite statements run inline.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` (a whole SQLite batch) on one thread of tokio's blocking pool, with every
/// statement inside it run inline on that thread: one hand-off for the batch instead of two
/// context switches per statement. `work` owns its connection, so a caller that stops waiting
/// leaves the batch to finish (or roll back) before the connection returns to the pool.
pub async fn run_inline<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, DbError> + Send + 'static,
) -> Result<R, DbError> {
    /// Clears the flag even if the batch panics (the thread goes back to the pool).
    struct Inline;
    impl Drop for Inline {
        fn drop(&mut self) {
            INLINE.with(|inline| inline.set(false));
        }
    }
    tokio::task::spawn_blocking(move || {
        INLINE.with(|inline| inline.set(true));
        let _inline = Inline;
        work()
    })
    .await
    .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
}

/// A blocking task's handle that, when dropped unfinished, waits for the task to end.
struct FinishOnDrop<R> {
    handle: tokio::task::JoinHandle<R>,
    done: std::sync::mpsc::Receiver<()>,
}

impl<R> std::future::Future for FinishOnDrop<R> {
    type Output = Result<R, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.handle).poll(cx)
    }
}

impl<R> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            // Returns when the task signals, or at once if it ended (sender dropped).
            let _ = self.done.recv();
        }
    }
}

/// SQLite caps its pool here: it has a single writer, more connections only add contention.
const SQLITE_MAX_CONNECTIONS: usize = 8;

/// The database handle every store function takes. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub enum Db {
    /// The embedded SQLite file.
    Sqlite(Pool<SqliteConn>),
    /// A PostgreSQL server.
    Postgres(Pool<AsyncPgConnection>),
}

/// Everything that can go wrong talking to the database, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row asked for does not exist (or belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// A unique constraint rejected the write; carries the constraint or column.
    #[error("already exists: {0}")]
    Conflict(String),
    /// No connection could be had within the acquire timeout, or the server is down.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A migration could not be applied or reverted.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other query error.
    #[error("query failed: {0}")]
    Query(DieselError),
}

impl DbError {
    /// `Ok` when a tenant-scoped write touched a row, [`DbError::NotFound`] when it touched none
    /// (the id does not exist or is another tenant's).
    pub fn found(rows: usize) -> Result<(), DbError> {
        if rows == 0 {
            Err(DbError::NotFound)
        } else {
            Ok(())
        }
    }
}

impl From<DieselError> for DbError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Conflict(
                    info.constraint_name()
                        .or(info.column_name())
                        .unwrap_or(info.message())
                        .to_string(),
                )
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_string())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        DbError::Unavailable(err.to_string())
    }
}

/// Runs a block of diesel-async code on whichever backend `$db` is.
///
/// `$conn` is bound to `&mut` the pooled connection; the block is expanded once per backend.
/// The enclosing function must return `Result<_, E>` with `E: From<DbError>`.
///
/// ```text
/// db_run!(db, |conn| { devices::table.find(id).first::<Device>(conn).await.map_err(DbError::from) })
/// ```
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$conn:ident| $body:block) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn: &mut $crate::db::SqliteConn = &mut pooled;
                $body
            }
            $crate::db::Db::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut pooled;
                $body
            }
        }
    };
}

/// [`db_run!`] for a block that owns what it uses (a `move` block) and runs several statements:
/// on SQLite the whole block runs on one blocking thread ([`run_inline`]); on PostgreSQL it runs
/// as with `db_run!`. The block must evaluate to `Result<_, DbError>`.
#[macro_export]
macro_rules! db_batch {
    ($db:expr, move |$conn:ident| $body:block) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                $crate::db::run_inline(move || {
                    let $conn: &mut $crate::db::SqliteConn = &mut pooled;
                    futures_executor::block_on(async move { $body })
                })
                .await
            }
            $crate::db::Db::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut pooled;
                $body
            }
        }
    };
}

/// A connection the caller holds, usually inside its own transaction, so a store's statements
/// commit together with the caller's (a sequence step's outbox row with its enrolment). Store
/// functions that callers compose take a `Conn` and run their SQL with [`on_conn!`].
pub enum Conn<'a> {
    /// An SQLite connection.
    Sqlite(&'a mut SqliteConn),
    /// A PostgreSQL connection.
    Postgres(&'a mut diesel_async::AsyncPgConnection),
}

impl<'a> From<&'a mut SqliteConn> for Conn<'a> {
    fn from(conn: &'a mut SqliteConn) -> Self {
        Conn::Sqlite(conn)
    }
}

impl<'a> From<&'a mut diesel_async::AsyncPgConnection> for Conn<'a> {
    fn from(conn: &'a mut diesel_async::AsyncPgConnection) -> Self {
        Conn::Postgres(conn)
    }
}

/// Runs a block on a [`Conn`] whichever backend it is, like [`db_run!`] on a pooled
/// connection: the block is expanded once per backend.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:block) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}

/// Deletes the rows a tenant-scoped filter selects: `Ok` when it deleted any,
/// [`DbError::NotFound`] otherwise. Needs `diesel_async::RunQueryDsl` in scope.
///
/// ```text
/// delete_found!(db, leads::table.filter(leads::tenant_id.eq(tenant_id)).filter(leads::id.eq(id)))
/// ```
#[macro_export]
macro_rules! delete_found {
    ($db:expr, $target:expr) => {{
        let target = $target;
        let deleted = $crate::db_run!($db, |conn| {
            diesel::delete(target)
                .execute(conn)
                .await
                .map_err($crate::db::DbError::from)
        })?;
        $crate::db::DbError::found(deleted)
    }};
}

impl Db {
    /// Opens the pool for the configured database (creating an SQLite file and its directory).
    /// Does not run migrations; see [`migrate::run_pending`].
    pub async fn connect(settings: &DatabaseSettings) -> Result<Db, DbError> {
        let wait = Some(Duration::from_secs(settings.acquire_timeout_secs));
        let kind = settings
            .kind()
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let db = match kind {
            DatabaseKind::Sqlite(path) => {
                ensure_parent_dir(&path)?;
                let mut config = ManagerConfig::<SqliteConn>::default();
                let busy_ms = settings.sqlite_busy_timeout_ms;
                config.custom_setup =
                    Box::new(move |url| open_sqlite(url.to_string(), busy_ms).boxed());
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy(),
                    config,
                );
                let pool = Pool::builder(manager)
                    .max_size(settings.max_connections.min(SQLITE_MAX_CONNECTIONS))
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                Db::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(
                    settings.url.expose_secret(),
                );
                let pool = Pool::builder(manager)
                    .max_size(settings.max_connections)
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                Db::Postgres(pool)
            }
        };
        db.ping().await?;
        Ok(db)
    }

    /// Which backend this is, for logs, metrics and readiness output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Round-trips a trivial query: the database is reachable and a connection is free.
    pub async fn ping(&self) -> Result<(), DbError> {
        use diesel_async::SimpleAsyncConnection;
        db_run!(self, |conn| {
            conn.batch_execute("SELECT 1").await.map_err(DbError::from)
        })
    }
}

/// Creates the directory an SQLite file lives in, so `data/wafleet.db` works on a fresh clone.
fn ensure_parent_dir(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            DbError::Unavailable(format!("cannot create directory {}: {e}", dir.display()))
        }),
        _ => Ok(()),
    }
}

/// The PRAGMAs every SQLite connection needs: WAL for concurrent readers, a busy timeout so
/// writers queue instead of failing, foreign keys (off by default in SQLite).
pub(crate) fn sqlite_pragmas(busy_timeout_ms: u32) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {busy_timeout_ms}; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
    )
}

/// Opens one pooled SQLite connection on a blocking thread and applies [`sqlite_pragmas`].
async fn open_sqlite(path: String, busy_ms: u32) -> diesel::ConnectionResult<SqliteConn> {
    let opened = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&path)?;
        conn.batch_execute(&sqlite_pragmas(busy_ms))
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    })
    .await
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    opened.map(|conn| SyncConnectionWrapper::with_runtime(conn, DetachedBlocking))
}

/// `at` cut to whole microseconds, the precision PostgreSQL keeps (SQLite would keep
/// nanoseconds), so a time written and read back compares equal on both backends.
pub fn to_micros(at: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(at.and_utc().timestamp_micros())
        .map_or(at, |t| t.naive_utc())
}

/// SQL helpers both backends understand.
pub mod sql {
    diesel::define_sql_function! {
        /// `lower(text)`: portable case folding for case-insensitive search.
        fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
    }

    /// `%term%` with LIKE wildcards in `term` escaped by `\` (use with `.escape('\\')`).
    pub fn like_pattern(term: &str) -> String {
        let escaped = term
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    }
}
