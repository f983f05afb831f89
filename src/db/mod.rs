//! The database layer: one [`Db`] handle over SQLite or PostgreSQL, chosen at run time.
//!
//! Queries are written once in each feature's `store.rs` and run on either backend through
//! [`db_run!`](crate::db_run): the macro expands its body once per backend, so each copy is
//! type-checked against its own connection type (diesel-async has no multi-backend connection).
//!
//! - SQLite (embedded default): diesel's `SqliteConnection` inside diesel-async's
//!   `SyncConnectionWrapper` (each query runs on a blocking thread), pooled, with WAL, a busy
//!   timeout and foreign keys switched on for every connection ([`sqlite`]: a dropped query
//!   finishes on its blocking thread and its connection is not reused until it has).
//! - PostgreSQL (production): `AsyncPgConnection`, pooled with deadpool, opened by
//!   [`postgres::PgTarget`] (TLS as libpq's `sslmode`/`sslrootcert` ask).
//!
//! Migrations ([`migrate`]) are embedded in the binary and run before the server starts;
//! [`backup`] copies an SQLite database while the daemon runs (`wafleet backup`).
//!
//! SQLite note: a write transaction must start with its first write (not a read followed by a
//! write), otherwise a concurrent writer can make its lock upgrade fail at once with
//! `SQLITE_BUSY` instead of waiting for the busy timeout.

pub mod backup;
pub mod fence;
pub mod migrate;
pub mod postgres;
pub mod schema;
pub mod scratch;
pub mod single_node;
pub mod sql;
pub mod sqlite;

use std::path::Path;
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::{Pool, PoolError};
use diesel_async::AsyncPgConnection;
use secrecy::ExposeSecret;

use crate::config::{DatabaseKind, DatabaseSettings};
pub use fence::Fence;
pub(crate) use sqlite::sqlite_pragmas;
pub use sqlite::{run_inline, SqliteConn, SqliteManager};

/// SQLite caps its pool here: it has a single writer, more connections only add contention.
const SQLITE_MAX_CONNECTIONS: usize = 8;

/// The database handle every store function takes. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub enum Db {
    /// The embedded SQLite file.
    Sqlite(deadpool::managed::Pool<SqliteManager>),
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
    /// The database refused a text value it cannot store: PostgreSQL takes no NUL character
    /// (`\u0000`) in text, which JSON, query strings and CSV can carry.
    #[error("text refused: {0}")]
    InvalidText(String),
    /// A migration could not be applied or reverted.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A write only a device's owner may make came from a node that no longer holds the
    /// device's lease (see [`fence`]).
    #[error("device {0}: this node no longer holds its lease")]
    LeaseLost(i64),
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
            // PostgreSQL's "invalid byte sequence for encoding \"UTF8\": 0x00" (SQLSTATE 22021);
            // the byte is printed in every message language.
            DieselError::DatabaseError(_, info) if info.message().contains("0x00") => {
                DbError::InvalidText(info.message().to_string())
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

impl Conn<'_> {
    /// The same connection for one more call, so a store function can run several others on it.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(conn) => Conn::Sqlite(conn),
            Conn::Postgres(conn) => Conn::Postgres(conn),
        }
    }
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

/// Runs one multi-row statement on a [`Conn`] with diesel's `$method` (`execute` or
/// `get_results`) and answers its result. On SQLite it goes through diesel's own connection,
/// which writes a multi-row INSERT as one statement where diesel-async's wrapper writes it row
/// by row, on the wrapper's blocking thread (inside a [`db_batch!`] that thread already: no
/// hand-off). `$rows` is moved in and lent to `$query` as `&$rows`. The enclosing function must
/// return `Result<_, E>` with `E: From<DbError>`.
///
/// ```text
/// let n = multi_row!(conn, rows, execute, |rows| diesel::insert_into(leads::table).values(rows));
/// ```
#[macro_export]
macro_rules! multi_row {
    ($conn:expr, $rows:ident, $method:ident, |$q:ident| $query:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(wrapper) => {
                wrapper
                    .spawn_blocking(move |c| {
                        let $q = &$rows;
                        diesel::RunQueryDsl::$method($query, c)
                    })
                    .await?
            }
            $crate::db::Conn::Postgres(c) => {
                let $q = &$rows;
                diesel_async::RunQueryDsl::$method($query, c).await?
            }
        }
    };
}

/// Keys a statement binds at most in one `IN` list: both backends cap bind parameters (SQLite
/// at 32,766).
pub const ID_CHUNK: usize = 1000;

/// Runs `$query`, a query selecting one column of type `$ty` built from `$chunk` (up to
/// [`ID_CHUNK`] of `$ids`), once per chunk and answers every value it found as a
/// `HashSet<$ty>`: which of many ids (or other keys) exist, in a statement per 1,000. The enclosing function must return
/// `Result<_, E>` with `E: From<DbError>`.
///
/// ```text
/// ids_found!(db, ids, i64, |chunk| devices::table.filter(devices::tenant_id.eq(t)).filter(devices::id.eq_any(chunk)).select(devices::id))
/// ```
#[macro_export]
macro_rules! ids_found {
    ($db:expr, $ids:expr, $ty:ty, |$chunk:ident| $query:expr) => {{
        let mut found = std::collections::HashSet::<$ty>::new();
        for $chunk in $ids.chunks($crate::db::ID_CHUNK) {
            let rows: Vec<$ty> = $crate::db_run!($db, |conn| {
                diesel_async::RunQueryDsl::load($query, conn)
                    .await
                    .map_err($crate::db::DbError::from)
            })?;
            found.extend(rows);
        }
        found
    }};
}

/// Deletes up to `limit` rows of `table` that `filter` selects, first in `order` (retention's
/// chunks): their ids are read, then deleted, so no statement holds a big write lock. Answers
/// how many went. Needs `diesel::prelude::*` and `diesel_async::RunQueryDsl` in scope.
///
/// ```text
/// delete_chunk!(db, audit_log, audit_log::created_at.lt(cutoff), audit_log::created_at, limit)
/// ```
#[macro_export]
macro_rules! delete_chunk {
    ($db:expr, $table:ident, $filter:expr, $order:expr, $limit:expr) => {{
        let ids: Vec<i64> = $crate::db_run!($db, |conn| {
            $table::table
                .filter($filter)
                .order($order)
                .select($table::id)
                .limit($limit)
                .load(conn)
                .await
                .map_err($crate::db::DbError::from)
        })?;
        if ids.is_empty() {
            Ok(0)
        } else {
            $crate::db_run!($db, |conn| {
                diesel::delete($table::table.filter($table::id.eq_any(&ids)))
                    .execute(conn)
                    .await
                    .map_err($crate::db::DbError::from)
            })
        }
    }};
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
                let manager = SqliteManager::new(
                    path.to_string_lossy().into_owned(),
                    sqlite_pragmas(settings.sqlite_busy_timeout_ms, settings.sqlite_cache_mib),
                );
                let pool = deadpool::managed::Pool::builder(manager)
                    .max_size(settings.max_connections.min(SQLITE_MAX_CONNECTIONS))
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                Db::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let url = settings.url.expose_secret();
                let manager = postgres::PgTarget::from_url(url)
                    .map_err(|e| DbError::Unavailable(e.to_string()))?
                    .manager(url);
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

    /// The pool now: `(state, connections)` for `open`, `idle`, `max` and `waiting` (requests
    /// waiting for a connection).
    pub fn pool_status(&self) -> [(&'static str, i64); 4] {
        let status = match self {
            Db::Sqlite(pool) => pool.status(),
            Db::Postgres(pool) => pool.status(),
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        [
            ("open", count(status.size)),
            ("idle", count(status.available)),
            ("max", count(status.max_size)),
            ("waiting", count(status.waiting)),
        ]
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

/// `at` cut to whole microseconds, the precision PostgreSQL keeps (SQLite would keep
/// nanoseconds), so a time written and read back compares equal on both backends.
pub fn to_micros(at: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(at.and_utc().timestamp_micros())
        .map_or(at, |t| t.naive_utc())
}
