//! Fencing tokens. On PostgreSQL several daemons share one fleet, and a device runs on the node
//! holding its lease (`device_leases`, see `crate::cluster`). A [`Fence`] is such a lease as
//! its holder knew it: device, node and epoch. A write that only the device's owner may make
//! (an outbox claim or finish) first checks the fence in its transaction. A node that lost the
//! lease (it was paused, cut off, or the device moved) gets [`DbError::LeaseLost`] instead.
//!
//! The check takes only a key-share lock (the lease row cannot be deleted meanwhile): renewals
//! and hand-overs of thousands of leases must never queue behind the lanes' transactions, as a
//! share lock made them do (heartbeats then came late). A lease that changes hands between the
//! check and the commit is covered by the outbox's own lease: the new owner re-claims a row
//! only once the row's lease has passed, and re-sends it under the same id.
//!
//! Writes to a device's WhatsApp session store (`crate::whatsapp::real::WaStore`) are fenced
//! the same way: a node that lost the device cannot overwrite the keys its new owner uses.

use std::future::Future;
use std::sync::Arc;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{DbError, SqliteConn};

/// A device lease its holder believes it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The device.
    pub device_id: i64,
    /// The node holding the lease.
    pub node_id: Arc<str>,
    /// The lease's epoch: it changes whenever the lease changes hands.
    pub epoch: i64,
}

/// One row of the check.
#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

impl Fence {
    /// Ok while the lease is still this one and unexpired by the database's clock. Run it inside
    /// the caller's transaction.
    pub async fn check(&self, conn: &mut AsyncPgConnection) -> Result<(), DbError> {
        let held: Vec<Held> = diesel::sql_query(
            "SELECT epoch FROM device_leases WHERE device_id = $1 AND node_id = $2 \
             AND epoch = $3 AND expires_at > now() FOR KEY SHARE",
        )
        .bind::<BigInt, _>(self.device_id)
        .bind::<Text, _>(self.node_id.as_ref())
        .bind::<BigInt, _>(self.epoch)
        .load(conn)
        .await?;
        if !held.iter().any(|h| h.epoch == self.epoch) {
            return Err(DbError::LeaseLost(self.device_id));
        }
        Ok(())
    }
}

/// A connection a [`Fence`] can be checked on, whatever its backend: code written once for both
/// (through `db_run!`) checks fences with it.
pub trait FenceCheck {
    /// [`Fence::check`] on PostgreSQL. Always Ok on SQLite: one daemon runs the whole fleet
    /// there (a file lock keeps a second one out), so no lease ever changes hands.
    fn check_fence(&mut self, fence: &Fence) -> impl Future<Output = Result<(), DbError>> + Send;
}

impl FenceCheck for AsyncPgConnection {
    fn check_fence(&mut self, fence: &Fence) -> impl Future<Output = Result<(), DbError>> + Send {
        fence.check(self)
    }
}

impl FenceCheck for SqliteConn {
    fn check_fence(&mut self, _: &Fence) -> impl Future<Output = Result<(), DbError>> + Send {
        std::future::ready(Ok(()))
    }
}
