//! The whatsapp-rust session store on our database: [`WaStore`] implements its storage
//! `Backend` (the five traits `SignalStore`, `AppSyncStore`, `ProtocolStore`, `MsgSecretStore`,
//! `DeviceStore`) once, on the [`Db`] layer, so SQLite and PostgreSQL share one implementation
//! and one pool.
//!
//! whatsapp-rust's own SQLite store opens a connection pool per device; with 3,000 devices that
//! is 3,000 pools. Here every `wa_` table (migration `2026-11-25-000005_wa_store`, tables in
//! [`schema`]) carries our device id first in its key, a `WaStore` is only `(Db, device_id)`,
//! and all devices share the daemon's pool.
//!
//! Blobs the library hands us are stored as they come (Signal records, keys, payloads);
//! structured values without a byte form of their own (the device record, app-state keys and
//! versions, device lists) are stored in their serde JSON form. None of it is ever logged.
//!
//! Batch methods on the hot paths (sessions, identities, sender keys, pre-keys, LID mappings,
//! device lists, message secrets, pending inbound) run as one transaction on one connection.
//!
//! On PostgreSQL every write first checks the device's lease ([`Fence`]) in its transaction: a
//! daemon that lost the device to another node (paused, cut off) cannot overwrite the keys and
//! sessions the new owner uses. Reads are not fenced.
//!
//! [`wipe_device`] deletes every row of a device in one transaction (logout and deletion).
//!
//! Layout: `kv` writes the query shapes every table shares once (macros), [`schema`] lists the
//! tables once, and each trait has its file: `signal`, `app_sync`, `protocol`, `msg_secret`,
//! `device`.

#[macro_use]
mod kv;
#[macro_use]
pub mod schema;

mod app_sync;
mod device;
mod msg_secret;
mod protocol;
mod signal;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use self::schema::*;
use crate::db::{Db, DbError, Fence};
use crate::db_run;

/// One device's view of the shared session store. Cheap to clone; holds no connection.
#[derive(Clone)]
pub struct WaStore {
    /// The daemon's database (shared by every device).
    db: Db,
    /// Our device id: the first key column of every `wa_` row this store reads or writes.
    device_id: i64,
    /// The device's lease as this daemon holds it (PostgreSQL); every write checks it.
    fence: Option<Fence>,
}

impl std::fmt::Debug for WaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaStore")
            .field("backend", &self.db.backend_name())
            .field("device_id", &self.device_id)
            .field("fence", &self.fence.as_ref().map(|f| f.epoch))
            .finish()
    }
}

impl WaStore {
    /// The store of `device_id` on `db`. The device row must exist (`wa_` rows reference it).
    pub fn new(db: Db, device_id: i64) -> Self {
        Self {
            db,
            device_id,
            fence: None,
        }
    }

    /// This store with every write checking `fence` first: once the lease has changed hands,
    /// writes fail (`DbError::LeaseLost`) and nothing is written.
    pub fn fenced(self, fence: Option<Fence>) -> Self {
        Self { fence, ..self }
    }

    /// The device this store belongs to.
    pub fn device_id(&self) -> i64 {
        self.device_id
    }
}

/// Deletes every `wa_` row of `device_id` in one transaction: after it the device has no
/// credentials, keys or sessions left and must pair again. Chats and messages are untouched.
pub async fn wipe_device(db: &Db, device_id: i64) -> Result<(), DbError> {
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            macro_rules! delete_rows {
                ($t:ident) => {
                    diesel::delete(rows!($t, device_id;)).execute(conn).await?
                };
            }
            for_each_wa_table!(delete_rows);
            Ok(())
        })
        .await
    })
}

/// How many `wa_` rows `device_id` has, over all 18 tables (tests and the memory benchmark
/// check isolation and wipes with it).
pub async fn count_device_rows(db: &Db, device_id: i64) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        let mut total = 0;
        macro_rules! count_rows {
            ($t:ident) => {
                total += rows!($t, device_id;).count().get_result::<i64>(conn).await?
            };
        }
        for_each_wa_table!(count_rows);
        Ok(total)
    })
}
