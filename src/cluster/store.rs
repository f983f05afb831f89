//! Every cluster statement (PostgreSQL only). Times are the database's `now()`, so a node with
//! a skewed clock can neither renew nor steal a lease early. Each periodic statement covers all
//! of a node's devices at once: renewals and claims cost one statement, not one per device.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::{Db, DbError};

/// The cluster's database: PostgreSQL's pool, and a count of the statements run on it.
#[derive(Clone)]
pub struct ClusterDb {
    pool: Pool<AsyncPgConnection>,
    statements: prometheus::IntCounter,
}

/// What a device that should run looks like in SQL: paired, not logged out or banned (the
/// devices a single daemon boots).
const BOOTABLE: &str = "d.jid IS NOT NULL AND d.status NOT IN ('logged_out', 'banned')";

impl ClusterDb {
    /// The cluster database of `db`; `None` on SQLite (one node).
    pub fn of(db: &Db) -> Option<Self> {
        let statements = prometheus::IntCounter::new(
            "cluster_statements_total",
            "Cluster statements run by this node (heartbeats, renewals, claims, hand-overs, leader upkeep)",
        )
        .ok()?;
        match db {
            Db::Postgres(pool) => Some(Self {
                pool: pool.clone(),
                statements,
            }),
            Db::Sqlite(_) => None,
        }
    }

    /// `wafleet_cluster_statements_total`, to register.
    pub fn statements(&self) -> prometheus::IntCounter {
        self.statements.clone()
    }

    /// A connection for `statements` statements (counted).
    async fn conn(
        &self,
        statements: u64,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>, DbError> {
        self.statements.inc_by(statements);
        self.pool.get().await.map_err(DbError::from)
    }
}

/// A node's row, as it registers.
pub struct NodeRow<'a> {
    /// Name.
    pub id: &'a str,
    /// Random per process.
    pub incarnation: &'a str,
    /// Where commands are forwarded.
    pub address: &'a str,
    /// Daemon version.
    pub version: &'a str,
    /// Most devices.
    pub capacity: i32,
}

/// Writes (or takes over) this node's row, heartbeat now, not draining. A process that ran
/// under this name before is replaced: its heartbeats stop matching (see [`heartbeat`]).
pub async fn register(db: &ClusterDb, node: &NodeRow<'_>) -> Result<(), DbError> {
    let mut conn = db.conn(1).await?;
    diesel::sql_query(
        "INSERT INTO nodes (id, incarnation, address, version, capacity, started_at, heartbeat_at, draining) \
         VALUES ($1, $2, $3, $4, $5, now(), now(), FALSE) \
         ON CONFLICT (id) DO UPDATE SET incarnation = EXCLUDED.incarnation, \
           address = EXCLUDED.address, version = EXCLUDED.version, capacity = EXCLUDED.capacity, \
           started_at = now(), heartbeat_at = now(), draining = FALSE",
    )
    .bind::<Text, _>(node.id)
    .bind::<Text, _>(node.incarnation)
    .bind::<Text, _>(node.address)
    .bind::<Text, _>(node.version)
    .bind::<Integer, _>(node.capacity)
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Draining {
    #[diesel(sql_type = Bool)]
    draining: bool,
}

/// Beats this node's heart. `Some(draining)`, or `None` when another process took this name
/// over (this one must stop running devices).
pub async fn heartbeat(
    db: &ClusterDb,
    node_id: &str,
    incarnation: &str,
) -> Result<Option<bool>, DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<Draining> = diesel::sql_query(
        "UPDATE nodes SET heartbeat_at = now() WHERE id = $1 AND incarnation = $2 \
         RETURNING draining",
    )
    .bind::<Text, _>(node_id)
    .bind::<Text, _>(incarnation)
    .load(&mut conn)
    .await?;
    Ok(rows.as_slice().first().map(|r| r.draining))
}

/// A device lease: device and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct HeldLease {
    /// Device.
    #[diesel(sql_type = BigInt)]
    pub device_id: i64,
    /// Fencing token.
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
}

/// Renews every lease this node holds for `lease_secs`, in one statement, and answers them: the
/// devices this node owns now (an expired lease nobody took meanwhile is renewed too).
pub async fn renew(
    db: &ClusterDb,
    node_id: &str,
    lease_secs: f64,
) -> Result<Vec<HeldLease>, DbError> {
    let mut conn = db.conn(1).await?;
    Ok(diesel::sql_query(
        "UPDATE device_leases SET expires_at = now() + make_interval(secs => $2) \
         WHERE node_id = $1 RETURNING device_id, epoch",
    )
    .bind::<Text, _>(node_id)
    .bind::<Double, _>(lease_secs)
    .load(&mut conn)
    .await?)
}

/// Claims up to `limit` devices that should run and have no live lease (new ones, a dead
/// node's), in one statement; answers the claimed leases. Every node takes them in id order:
/// two nodes claiming at once then wait on each other's rows instead of deadlocking, and a row
/// another node took first is left to it.
pub async fn claim_orphans(
    db: &ClusterDb,
    node_id: &str,
    lease_secs: f64,
    limit: i64,
) -> Result<Vec<HeldLease>, DbError> {
    let mut conn = db.conn(1).await?;
    Ok(diesel::sql_query(format!(
        "WITH candidates AS ( \
           SELECT d.id FROM devices d LEFT JOIN device_leases l ON l.device_id = d.id \
           WHERE {BOOTABLE} AND (l.device_id IS NULL OR l.expires_at < now()) \
           ORDER BY d.id LIMIT $3) \
         INSERT INTO device_leases (device_id, node_id, epoch, expires_at) \
         SELECT id, $1, nextval('device_lease_epochs'), now() + make_interval(secs => $2) \
         FROM candidates \
         ON CONFLICT (device_id) DO UPDATE SET node_id = EXCLUDED.node_id, \
           epoch = EXCLUDED.epoch, expires_at = EXCLUDED.expires_at \
         WHERE device_leases.expires_at < now() \
         RETURNING device_id, epoch"
    ))
    .bind::<Text, _>(node_id)
    .bind::<Double, _>(lease_secs)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?)
}

/// Claims one device for this node whatever its state (a device just created or reconnected
/// here), unless another node holds a live lease on it; its lease if claimed.
pub async fn claim_one(
    db: &ClusterDb,
    node_id: &str,
    lease_secs: f64,
    device_id: i64,
) -> Result<Option<HeldLease>, DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<HeldLease> = diesel::sql_query(
        "INSERT INTO device_leases (device_id, node_id, epoch, expires_at) \
         VALUES ($3, $1, nextval('device_lease_epochs'), now() + make_interval(secs => $2)) \
         ON CONFLICT (device_id) DO UPDATE SET node_id = EXCLUDED.node_id, \
           epoch = CASE WHEN device_leases.node_id = EXCLUDED.node_id \
             THEN device_leases.epoch ELSE EXCLUDED.epoch END, \
           expires_at = EXCLUDED.expires_at \
         WHERE device_leases.node_id = EXCLUDED.node_id OR device_leases.expires_at < now() \
         RETURNING device_id, epoch",
    )
    .bind::<Text, _>(node_id)
    .bind::<Double, _>(lease_secs)
    .bind::<BigInt, _>(device_id)
    .load(&mut conn)
    .await?;
    Ok(rows.as_slice().first().copied())
}

/// Writes the lease of a device this node stopped over to node `to` (a new epoch, live for
/// `lease_secs`: `to` starts it at its next renewal). False when the lease was no longer this
/// node's.
pub async fn hand_over(
    db: &ClusterDb,
    lease: HeldLease,
    from: &str,
    to: &str,
    lease_secs: f64,
) -> Result<bool, DbError> {
    let mut conn = db.conn(1).await?;
    let changed = diesel::sql_query(
        "UPDATE device_leases SET node_id = $3, epoch = nextval('device_lease_epochs'), \
           expires_at = now() + make_interval(secs => $4) \
         WHERE device_id = $1 AND node_id = $2 AND epoch = $5",
    )
    .bind::<BigInt, _>(lease.device_id)
    .bind::<Text, _>(from)
    .bind::<Text, _>(to)
    .bind::<Double, _>(lease_secs)
    .bind::<BigInt, _>(lease.epoch)
    .execute(&mut conn)
    .await?;
    Ok(changed > 0)
}

/// A graceful stop: gives up every lease of this node and the leader lease, and marks the node
/// dead now, so the others take its devices at once rather than after the lease time.
pub async fn leave(db: &ClusterDb, node_id: &str, incarnation: &str) -> Result<usize, DbError> {
    let mut conn = db.conn(3).await?;
    let released = diesel::sql_query("DELETE FROM device_leases WHERE node_id = $1")
        .bind::<Text, _>(node_id)
        .execute(&mut conn)
        .await?;
    diesel::sql_query("UPDATE cluster_leader SET expires_at = '-infinity' WHERE node_id = $1")
        .bind::<Text, _>(node_id)
        .execute(&mut conn)
        .await?;
    diesel::sql_query(
        "UPDATE nodes SET heartbeat_at = '-infinity' WHERE id = $1 AND incarnation = $2",
    )
    .bind::<Text, _>(node_id)
    .bind::<Text, _>(incarnation)
    .execute(&mut conn)
    .await?;
    Ok(released)
}

#[derive(QueryableByName)]
struct Leader {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = node_id)]
    _node_id: String,
}

/// Takes or renews the leader lease for `lease_secs`; whether this node leads.
pub async fn lead(db: &ClusterDb, node_id: &str, lease_secs: f64) -> Result<bool, DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<Leader> = diesel::sql_query(
        "UPDATE cluster_leader SET node_id = $1, expires_at = now() + make_interval(secs => $2) \
         WHERE name = 'engine' AND (node_id = $1 OR expires_at < now()) RETURNING node_id",
    )
    .bind::<Text, _>(node_id)
    .bind::<Double, _>(lease_secs)
    .load(&mut conn)
    .await?;
    Ok(!rows.is_empty())
}

/// One node as `GET /api/v1/admin/nodes` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, QueryableByName)]
pub struct NodeStatus {
    /// Name.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Where device commands are forwarded.
    #[diesel(sql_type = Text)]
    pub address: String,
    /// Daemon version.
    #[diesel(sql_type = Text)]
    pub version: String,
    /// Most devices it runs.
    #[diesel(sql_type = Integer)]
    pub capacity: i32,
    /// When it (last) started.
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    /// Seconds since its last heartbeat (`null` after a graceful stop).
    #[diesel(sql_type = Nullable<Double>)]
    pub heartbeat_age_secs: Option<f64>,
    /// Heartbeat within the lease time.
    #[diesel(sql_type = Bool)]
    pub live: bool,
    /// Handing its devices to the others.
    #[diesel(sql_type = Bool)]
    pub draining: bool,
    /// Devices it runs (live leases).
    #[diesel(sql_type = BigInt)]
    pub devices: i64,
    /// Whether it runs the once-only work.
    #[diesel(sql_type = Bool)]
    pub leader: bool,
}

/// Every node with its load, by name.
pub async fn nodes(db: &ClusterDb, lease_secs: f64) -> Result<Vec<NodeStatus>, DbError> {
    let mut conn = db.conn(1).await?;
    Ok(diesel::sql_query(
        "SELECT n.id, n.address, n.version, n.capacity, n.started_at, \
           CASE WHEN isfinite(n.heartbeat_at) \
             THEN EXTRACT(EPOCH FROM now() - n.heartbeat_at)::float8 END AS heartbeat_age_secs, \
           n.heartbeat_at > now() - make_interval(secs => $1) AS live, n.draining, \
           (SELECT count(*) FROM device_leases l WHERE l.node_id = n.id AND l.expires_at > now()) \
             AS devices, \
           EXISTS (SELECT 1 FROM cluster_leader c WHERE c.node_id = n.id AND c.expires_at > now()) \
             AS leader \
         FROM nodes n ORDER BY n.id",
    )
    .bind::<Double, _>(lease_secs)
    .load(&mut conn)
    .await?)
}

#[derive(QueryableByName)]
struct Demand {
    #[diesel(sql_type = BigInt)]
    wanted: i64,
    #[diesel(sql_type = BigInt)]
    orphans: i64,
}

/// Devices that should run (paired ones, and any with a live lease) and how many of those have
/// no live lease.
pub async fn demand(db: &ClusterDb) -> Result<(u64, u64), DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<Demand> = diesel::sql_query(format!(
        "SELECT count(*) AS wanted, \
           count(*) FILTER (WHERE l.device_id IS NULL OR l.expires_at <= now()) AS orphans \
         FROM devices d LEFT JOIN device_leases l ON l.device_id = d.id \
         WHERE ({BOOTABLE}) OR l.expires_at > now()"
    ))
    .load(&mut conn)
    .await?;
    Ok(rows.as_slice().first().map_or((0, 0), |d| {
        (d.wanted.max(0) as u64, d.orphans.max(0) as u64)
    }))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Whether some device lease has expired (its node died or stopped renewing): a cheap look
/// between heartbeats, so the survivors learn of a death within a claim round.
pub async fn expired_leases_exist(db: &ClusterDb) -> Result<bool, DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<Exists> = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM device_leases WHERE expires_at < now()) AS found",
    )
    .load(&mut conn)
    .await?;
    Ok(rows.as_slice().first().is_some_and(|r| r.found))
}

/// Where a device's live lease is: its node and that node's address.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Owner {
    /// Node name.
    #[diesel(sql_type = Text)]
    pub node_id: String,
    /// Node address.
    #[diesel(sql_type = Text)]
    pub address: String,
}

/// The node running `device_id`, if any.
pub async fn owner(db: &ClusterDb, device_id: i64) -> Result<Option<Owner>, DbError> {
    let mut conn = db.conn(1).await?;
    let rows: Vec<Owner> = diesel::sql_query(
        "SELECT l.node_id, n.address FROM device_leases l JOIN nodes n ON n.id = l.node_id \
         WHERE l.device_id = $1 AND l.expires_at > now()",
    )
    .bind::<BigInt, _>(device_id)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Starts or ends a node's drain; false when there is no such node.
pub async fn set_draining(db: &ClusterDb, node_id: &str, draining: bool) -> Result<bool, DbError> {
    let mut conn = db.conn(1).await?;
    let changed = diesel::sql_query("UPDATE nodes SET draining = $2 WHERE id = $1")
        .bind::<Text, _>(node_id)
        .bind::<Bool, _>(draining)
        .execute(&mut conn)
        .await?;
    Ok(changed > 0)
}

/// The leader's upkeep: a pairing whose node stopped has no session any more (the device goes
/// back to `new`, as after a single daemon's restart); leases of devices that should no longer
/// run, expired a lease time ago, and nodes dead for a day are removed. Answers the pairings
/// reset.
pub async fn sweep(db: &ClusterDb, lease_secs: f64) -> Result<usize, DbError> {
    let mut conn = db.conn(3).await?;
    let reset = diesel::sql_query(
        "UPDATE devices d SET status = 'new', \
           status_reason = 'pairing was interrupted: its node stopped; reconnect to pair', \
           updated_at = now() AT TIME ZONE 'UTC' \
         WHERE d.jid IS NULL \
           AND d.status IN ('awaiting_qr', 'awaiting_pair_code', 'connecting', 'reconnecting') \
           AND NOT EXISTS (SELECT 1 FROM device_leases l \
             WHERE l.device_id = d.id AND l.expires_at > now())",
    )
    .execute(&mut conn)
    .await?;
    diesel::sql_query(format!(
        "DELETE FROM device_leases l USING devices d WHERE d.id = l.device_id \
           AND l.expires_at < now() - make_interval(secs => $1) AND NOT ({BOOTABLE})"
    ))
    .bind::<Double, _>(lease_secs)
    .execute(&mut conn)
    .await?;
    diesel::sql_query("DELETE FROM nodes WHERE heartbeat_at < now() - interval '1 day'")
        .execute(&mut conn)
        .await?;
    Ok(reset)
}
