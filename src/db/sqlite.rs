//! The SQLite side of [`Db`](super::Db): diesel's synchronous `SqliteConnection` run on tokio's
//! blocking pool, and the pool of those connections.
//!
//! A query's future may be dropped at any await (a client hangs up, a timeout fires). The
//! statement cannot be stopped: it runs to its end on its blocking thread, which owns the
//! connection meanwhile. Dropping the future returns at once (the async worker thread is never
//! parked on the statement), and the connection goes back to the pool marked busy: the pool
//! never hands out a connection whose abandoned statement still runs ([`SqliteManager`]
//! discards it instead, and the statement's thread closes it when done, rolling back any
//! transaction left open), so no caller waits behind a stranger's statement and no connection
//! comes back with half a transaction.
//!
//! Interrupting the statement itself (`sqlite3_interrupt` or a progress handler) is out of reach:
//! diesel 2.3 exposes neither nor the raw `sqlite3*` handle, and calling the C API needs
//! `unsafe`, which this crate forbids. A statement ends on its own (SQLite statements here are
//! bounded by indexes, limits and the busy timeout); until then it only keeps its own thread
//! and its own, unpooled, connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::{PoolError, PoolableConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use futures_util::FutureExt;

use super::DbError;

/// An SQLite connection usable from async code.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, DetachedBlocking>;

/// Statements of one connection handed to blocking threads and not finished yet.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Whether a statement of the connection still runs.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// Runs SQLite work on tokio's blocking pool, counting it in the connection's [`InFlight`].
///
/// diesel-async's default runtime waits for a cancelled statement in its future's `Drop` with
/// `block_in_place`, which panics on a current-thread runtime (every actix arbiter is one) and
/// otherwise parks an async worker for as long as the statement runs. This one detaches the
/// task instead: the statement finishes on its blocking thread, and [`SqliteManager`] keeps the
/// connection from being reused until it has.
pub struct DetachedBlocking {
    in_flight: InFlight,
}

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
        let counter = self.in_flight.0.clone();
        counter.fetch_add(1, Ordering::SeqCst);
        let handle = tokio::task::spawn_blocking(move || {
            // `task` and the connection it holds are dropped before the count goes down.
            let output = task();
            counter.fetch_sub(1, Ordering::SeqCst);
            output
        });
        // Dropping the handle detaches the task: nothing waits for it.
        async move { handle.await.map_err(|e| Box::new(e) as Box<_>) }.boxed()
    }

    fn get_runtime() -> Self {
        DetachedBlocking {
            in_flight: InFlight::default(),
        }
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

/// A pooled SQLite connection and the count of its statements still running.
pub struct PooledSqlite {
    conn: SqliteConn,
    in_flight: InFlight,
}

impl PooledSqlite {
    /// Its statements still running (one abandoned by a dropped future, say).
    pub fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }
}

impl std::ops::Deref for PooledSqlite {
    type Target = SqliteConn;

    fn deref(&self) -> &SqliteConn {
        &self.conn
    }
}

impl std::ops::DerefMut for PooledSqlite {
    fn deref_mut(&mut self) -> &mut SqliteConn {
        &mut self.conn
    }
}

/// The pool's manager of SQLite connections: opens them with [`sqlite_pragmas`], and recycles
/// one only when no statement of it still runs and it holds no open transaction (without a
/// query: recycling never waits).
pub struct SqliteManager {
    path: String,
    /// What [`sqlite_pragmas`] gave for the settings.
    pragmas: String,
}

impl SqliteManager {
    /// Connections to the file at `path`, set up by `pragmas` (see [`sqlite_pragmas`]).
    pub fn new(path: String, pragmas: String) -> Self {
        Self { path, pragmas }
    }
}

impl deadpool::managed::Manager for SqliteManager {
    type Type = PooledSqlite;
    type Error = PoolError;

    async fn create(&self) -> Result<PooledSqlite, PoolError> {
        open_sqlite(self.path.clone(), self.pragmas.clone())
            .await
            .map_err(PoolError::ConnectionError)
    }

    async fn recycle(
        &self,
        obj: &mut PooledSqlite,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<PoolError> {
        // Checked first: the transaction state below cannot be read while a statement holds
        // the connection (diesel-async panics on shared access).
        if obj.in_flight.busy() {
            return Err(deadpool::managed::RecycleError::message(
                "a cancelled statement still runs on this connection",
            ));
        }
        if std::thread::panicking() || obj.conn.is_broken() {
            return Err(deadpool::managed::RecycleError::message(
                "broken connection (a transaction left open)",
            ));
        }
        // No `SELECT 1`: there is no server to lose, and a failing file fails the next
        // statement anyway. The check cost a hand-off to a blocking thread on every checkout,
        // and kept a checkout from being ready at its first poll.
        Ok(())
    }
}

/// The PRAGMAs every SQLite connection needs: WAL for concurrent readers, a busy timeout so
/// writers queue instead of failing, foreign keys (off by default in SQLite). The busy timeout
/// comes first: switching to WAL takes a lock, and a connection opened while another holds the
/// write lock (an abandoned statement still running) must wait for it, not fail. The page
/// cache is per connection (`database.sqlite_cache_mib`).
pub(crate) fn sqlite_pragmas(busy_timeout_ms: u32, cache_mib: u32) -> String {
    let cache_kib = u64::from(cache_mib) * 1024;
    format!(
        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{cache_kib};"
    )
}

/// Opens one pooled SQLite connection on a blocking thread and applies [`sqlite_pragmas`].
async fn open_sqlite(path: String, pragmas: String) -> diesel::ConnectionResult<PooledSqlite> {
    let opened = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&path)?;
        conn.batch_execute(&pragmas)
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    })
    .await
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    let in_flight = InFlight::default();
    let runtime = DetachedBlocking {
        in_flight: in_flight.clone(),
    };
    opened.map(|conn| PooledSqlite {
        conn: SyncConnectionWrapper::with_runtime(conn, runtime),
        in_flight,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};
    use diesel_async::RunQueryDsl;

    use super::SqliteManager;
    use crate::db::sql::Count;
    use crate::db::{Db, DbError};

    async fn rows(db: &Db) -> Result<i64, DbError> {
        crate::db_run!(db, |conn| {
            diesel::sql_query("SELECT count(*) AS n FROM t")
                .get_result::<Count>(conn)
                .await
                .map(|c| c.n)
                .map_err(DbError::from)
        })
    }

    async fn create_table(db: &Db) -> Result<usize, DbError> {
        crate::db_run!(db, |conn| {
            diesel::sql_query("CREATE TABLE t (x INTEGER)")
                .execute(conn)
                .await
                .map_err(DbError::from)
        })
    }

    async fn insert(db: &Db) -> Result<usize, DbError> {
        crate::db_run!(db, |conn| {
            diesel::sql_query("INSERT INTO t VALUES (1)")
                .execute(conn)
                .await
                .map_err(DbError::from)
        })
    }

    /// The import writes one batch while it parses the next: the batch must be under way from
    /// its first poll, so taking a free connection from the pool may wait for nothing (a
    /// `SELECT 1` on checkout made the first poll pending).
    #[tokio::test]
    async fn a_free_connection_is_had_at_the_first_poll() {
        use futures_util::FutureExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").to_string_lossy().into_owned();
        let pool = deadpool::managed::Pool::builder(SqliteManager::new(
            path,
            super::sqlite_pragmas(30_000, 2),
        ))
        .max_size(1)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap();
        let db = Db::Sqlite(pool.clone());
        // Opens the connection and gives it back to the pool.
        create_table(&db).await.unwrap();
        let taken = pool.get().now_or_never();
        assert!(
            matches!(taken, Some(Ok(_))),
            "the checkout did not finish at its first poll"
        );
    }

    /// A current-thread runtime, like an actix arbiter: a future dropped in the middle of a
    /// statement (a client hanging up) must return at once, and the pool (one connection here)
    /// must not hand that connection out again before the statement ends.
    #[tokio::test]
    async fn a_dropped_statement_finishes_off_thread_and_holds_no_connection_hostage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").to_string_lossy().into_owned();
        let pool = deadpool::managed::Pool::builder(SqliteManager::new(
            path.clone(),
            super::sqlite_pragmas(30_000, 2),
        ))
        .max_size(1)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap();
        let db = Db::Sqlite(pool);
        create_table(&db).await.unwrap();
        // Another connection holds the write lock: the INSERT waits in SQLite's busy timeout
        // (30 s) on its blocking thread.
        let mut holder = SqliteConnection::establish(&path).unwrap();
        holder.batch_execute("BEGIN IMMEDIATE").unwrap();

        let started = Instant::now();
        let abandoned = tokio::time::timeout(Duration::from_secs(1), insert(&db)).await;
        assert!(abandoned.is_err(), "the insert waits for the lock");
        // Before: the drop parked this (only) thread until the statement gave up, 30 s later.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "dropping took {:?}",
            started.elapsed()
        );

        // The statement still runs on its connection: the pool opens another for a reader.
        assert_eq!(rows(&db).await.unwrap(), 0);
        assert!(started.elapsed() < Duration::from_secs(10));

        // Once the lock is free the abandoned statement completes, off this thread.
        holder.batch_execute("COMMIT").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while rows(&db).await.unwrap() == 0 {
            assert!(
                Instant::now() < deadline,
                "the abandoned insert never ended"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(insert(&db).await.unwrap(), 1);
        assert_eq!(rows(&db).await.unwrap(), 2);
    }
}
