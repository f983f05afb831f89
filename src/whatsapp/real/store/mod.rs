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
//! device lists, message secrets, pending inbound) run as one transaction on one connection
//! instead of one pool checkout and one implicit transaction per row.
//!
//! [`wipe_device`] deletes every row of a device in one transaction (logout and deletion).

pub mod schema;

use std::collections::HashMap;
use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
use whatsapp_rust::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    merge_msg_secret_expiry, merge_msg_secret_message_ts, AppStateSyncKey, AppSyncStore,
    DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry, MsgSecretEntry, MsgSecretStore,
    PendingInboundKey, PendingInboundRow, ProtocolStore, SignalStore, TcTokenEntry,
};
use whatsapp_rust::wacore::store::Device;

use self::schema::*;
use crate::db::{Db, DbError};
use crate::db_run;

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        StoreError::Database(Box::new(err))
    }
}

/// Encodes a structured value for a blob column.
fn to_blob<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// Decodes a blob column written by [`to_blob`].
fn from_blob<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// Turns a stored key into the fixed 32 bytes the library expects.
fn key32(bytes: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Validation(format!("expected 32 bytes, found {}", bytes.len())))
}

/// Unix seconds now (row bookkeeping columns).
fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One device's view of the shared session store. Cheap to clone; holds no connection.
#[derive(Clone)]
pub struct WaStore {
    /// The daemon's database (shared by every device).
    db: Db,
    /// Our device id: the first key column of every `wa_` row this store reads or writes.
    device_id: i64,
}

impl std::fmt::Debug for WaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaStore")
            .field("backend", &self.db.backend_name())
            .field("device_id", &self.device_id)
            .finish()
    }
}

impl WaStore {
    /// The store of `device_id` on `db`. The device row must exist (`wa_` rows reference it).
    pub fn new(db: Db, device_id: i64) -> Self {
        Self { db, device_id }
    }

    /// The device this store belongs to.
    pub fn device_id(&self) -> i64 {
        self.device_id
    }
}

/// Deletes every `wa_` row of `device_id` in one transaction: after it the device has no
/// credentials, keys or sessions left and must pair again. Chats and messages are untouched.
pub async fn wipe_device(db: &Db, device_id: i64) -> std::result::Result<(), DbError> {
    let id = device_id;
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            diesel::delete(wa_device::table.filter(wa_device::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_identities::table.filter(wa_identities::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_sessions::table.filter(wa_sessions::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_prekeys::table.filter(wa_prekeys::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_signed_prekeys::table.filter(wa_signed_prekeys::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_sender_keys::table.filter(wa_sender_keys::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_app_state_keys::table.filter(wa_app_state_keys::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(
                wa_app_state_versions::table.filter(wa_app_state_versions::device_id.eq(id)),
            )
            .execute(conn)
            .await?;
            diesel::delete(
                wa_app_state_mutation_macs::table
                    .filter(wa_app_state_mutation_macs::device_id.eq(id)),
            )
            .execute(conn)
            .await?;
            diesel::delete(
                wa_sender_key_devices::table.filter(wa_sender_key_devices::device_id.eq(id)),
            )
            .execute(conn)
            .await?;
            diesel::delete(wa_lid_pn_mapping::table.filter(wa_lid_pn_mapping::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_base_keys::table.filter(wa_base_keys::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_device_registry::table.filter(wa_device_registry::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_group_metadata::table.filter(wa_group_metadata::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_tc_tokens::table.filter(wa_tc_tokens::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_sent_messages::table.filter(wa_sent_messages::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_pending_inbound::table.filter(wa_pending_inbound::device_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(wa_msg_secrets::table.filter(wa_msg_secrets::device_id.eq(id)))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    })
}

/// How many `wa_` rows `device_id` has, over all 18 tables (tests and the memory benchmark
/// check isolation and wipes with it).
pub async fn count_device_rows(db: &Db, device_id: i64) -> std::result::Result<i64, DbError> {
    use diesel::dsl::count_star;
    let id = device_id;
    db_run!(db, |conn| {
        let counts = [
            wa_device::table
                .filter(wa_device::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_identities::table
                .filter(wa_identities::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_sessions::table
                .filter(wa_sessions::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_prekeys::table
                .filter(wa_prekeys::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_signed_prekeys::table
                .filter(wa_signed_prekeys::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_sender_keys::table
                .filter(wa_sender_keys::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_app_state_keys::table
                .filter(wa_app_state_keys::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_app_state_versions::table
                .filter(wa_app_state_versions::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_app_state_mutation_macs::table
                .filter(wa_app_state_mutation_macs::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_sender_key_devices::table
                .filter(wa_sender_key_devices::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_lid_pn_mapping::table
                .filter(wa_lid_pn_mapping::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_base_keys::table
                .filter(wa_base_keys::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_device_registry::table
                .filter(wa_device_registry::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_group_metadata::table
                .filter(wa_group_metadata::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_tc_tokens::table
                .filter(wa_tc_tokens::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_sent_messages::table
                .filter(wa_sent_messages::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_pending_inbound::table
                .filter(wa_pending_inbound::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
            wa_msg_secrets::table
                .filter(wa_msg_secrets::device_id.eq(id))
                .select(count_star())
                .first::<i64>(conn)
                .await?,
        ];
        Ok(counts.iter().sum())
    })
}

#[async_trait]
impl SignalStore for WaStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_identities_batch(&[(Arc::from(address), key)])
            .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        if identities.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (address, key) in identities {
                    diesel::insert_into(wa_identities::table)
                        .values((
                            wa_identities::device_id.eq(id),
                            wa_identities::address.eq(&**address),
                            wa_identities::key.eq(&key[..]),
                        ))
                        .on_conflict((wa_identities::device_id, wa_identities::address))
                        .do_update()
                        .set(wa_identities::key.eq(excluded(wa_identities::key)))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_identities::table
                .filter(wa_identities::device_id.eq(id))
                .filter(wa_identities::address.eq(address))
                .select(wa_identities::key)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        row.map(|k| key32(&k)).transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_identities::table
                    .filter(wa_identities::device_id.eq(id))
                    .filter(wa_identities::address.eq(address)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_sessions::table
                .filter(wa_sessions::device_id.eq(id))
                .filter(wa_sessions::address.eq(address))
                .select(wa_sessions::record)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_sessions_batch(&[(Arc::from(address), Bytes::copy_from_slice(session))])
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (address, record) in sessions {
                    diesel::insert_into(wa_sessions::table)
                        .values((
                            wa_sessions::device_id.eq(id),
                            wa_sessions::address.eq(&**address),
                            wa_sessions::record.eq(&record[..]),
                        ))
                        .on_conflict((wa_sessions::device_id, wa_sessions::address))
                        .do_update()
                        .set(wa_sessions::record.eq(excluded(wa_sessions::record)))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sessions::table
                    .filter(wa_sessions::device_id.eq(id))
                    .filter(wa_sessions::address.eq(address)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let id = self.device_id;
        let found: i64 = db_run!(&self.db, |conn| {
            wa_sessions::table
                .filter(wa_sessions::device_id.eq(id))
                .filter(wa_sessions::address.eq(address))
                .select(diesel::dsl::count_star())
                .first::<i64>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(found > 0)
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Addresses are `user@server` (device 0) or `user:dev@server`; users are numeric, so
        // they carry no LIKE wildcards.
        let at = format!("{user}@%");
        let dev = format!("{user}:%");
        let id = self.device_id;
        let found: i64 = db_run!(&self.db, |conn| {
            let sessions: i64 = wa_sessions::table
                .filter(wa_sessions::device_id.eq(id))
                .filter(
                    wa_sessions::address
                        .like(&at)
                        .or(wa_sessions::address.like(&dev)),
                )
                .select(diesel::dsl::count_star())
                .first::<i64>(conn)
                .await
                .map_err(DbError::from)?;
            let identities: i64 = wa_identities::table
                .filter(wa_identities::device_id.eq(id))
                .filter(
                    wa_identities::address
                        .like(&at)
                        .or(wa_identities::address.like(&dev)),
                )
                .select(diesel::dsl::count_star())
                .first::<i64>(conn)
                .await
                .map_err(DbError::from)?;
            Ok::<i64, DbError>(sessions + identities)
        })?;
        Ok(found > 0)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (key_id, record) in keys {
                    diesel::insert_into(wa_prekeys::table)
                        .values((
                            wa_prekeys::device_id.eq(id),
                            wa_prekeys::key_id.eq(i64::from(*key_id)),
                            wa_prekeys::record.eq(&record[..]),
                            wa_prekeys::uploaded.eq(uploaded),
                        ))
                        .on_conflict((wa_prekeys::device_id, wa_prekeys::key_id))
                        .do_update()
                        .set((
                            wa_prekeys::record.eq(excluded(wa_prekeys::record)),
                            wa_prekeys::uploaded.eq(excluded(wa_prekeys::uploaded)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn load_prekey(&self, key_id: u32) -> Result<Option<Bytes>> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_prekeys::table
                .filter(wa_prekeys::device_id.eq(id))
                .filter(wa_prekeys::key_id.eq(i64::from(key_id)))
                .select(wa_prekeys::record)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let id = self.device_id;
        let wanted: Vec<i64> = ids.iter().map(|k| i64::from(*k)).collect();
        let rows: Vec<(i64, Vec<u8>)> = db_run!(&self.db, |conn| {
            wa_prekeys::table
                .filter(wa_prekeys::device_id.eq(id))
                .filter(wa_prekeys::key_id.eq_any(&wanted))
                .select((wa_prekeys::key_id, wa_prekeys::record))
                .load::<(i64, Vec<u8>)>(conn)
                .await
                .map_err(DbError::from)
        })?;
        rows.into_iter()
            .map(|(k, r)| {
                let k = u32::try_from(k)
                    .map_err(|_| StoreError::Validation(format!("pre-key id {k} out of range")))?;
                Ok((k, Bytes::from(r)))
            })
            .collect()
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        let wanted: Vec<i64> = ids.iter().map(|k| i64::from(*k)).collect();
        // UPDATE only: a key consumed meanwhile stays deleted.
        db_run!(&self.db, |conn| {
            diesel::update(
                wa_prekeys::table
                    .filter(wa_prekeys::device_id.eq(id))
                    .filter(wa_prekeys::key_id.eq_any(&wanted)),
            )
            .set(wa_prekeys::uploaded.eq(true))
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn remove_prekey(&self, key_id: u32) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_prekeys::table
                    .filter(wa_prekeys::device_id.eq(id))
                    .filter(wa_prekeys::key_id.eq(i64::from(key_id))),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let id = self.device_id;
        let max: Option<i64> = db_run!(&self.db, |conn| {
            wa_prekeys::table
                .filter(wa_prekeys::device_id.eq(id))
                .select(diesel::dsl::max(wa_prekeys::key_id))
                .first::<Option<i64>>(conn)
                .await
                .map_err(DbError::from)
        })?;
        u32::try_from(max.unwrap_or(0))
            .map_err(|_| StoreError::Validation("pre-key id out of range".into()))
    }

    async fn store_signed_prekey(&self, key_id: u32, record: &[u8]) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_signed_prekeys::table)
                .values((
                    wa_signed_prekeys::device_id.eq(id),
                    wa_signed_prekeys::key_id.eq(i64::from(key_id)),
                    wa_signed_prekeys::record.eq(record),
                ))
                .on_conflict((wa_signed_prekeys::device_id, wa_signed_prekeys::key_id))
                .do_update()
                .set(wa_signed_prekeys::record.eq(excluded(wa_signed_prekeys::record)))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn load_signed_prekey(&self, key_id: u32) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_signed_prekeys::table
                .filter(wa_signed_prekeys::device_id.eq(id))
                .filter(wa_signed_prekeys::key_id.eq(i64::from(key_id)))
                .select(wa_signed_prekeys::record)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let id = self.device_id;
        let rows: Vec<(i64, Vec<u8>)> = db_run!(&self.db, |conn| {
            wa_signed_prekeys::table
                .filter(wa_signed_prekeys::device_id.eq(id))
                .order(wa_signed_prekeys::key_id.asc())
                .select((wa_signed_prekeys::key_id, wa_signed_prekeys::record))
                .load::<(i64, Vec<u8>)>(conn)
                .await
                .map_err(DbError::from)
        })?;
        rows.into_iter()
            .map(|(k, r)| {
                let k = u32::try_from(k).map_err(|_| {
                    StoreError::Validation(format!("signed pre-key id {k} out of range"))
                })?;
                Ok((k, r))
            })
            .collect()
    }

    async fn remove_signed_prekey(&self, key_id: u32) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_signed_prekeys::table
                    .filter(wa_signed_prekeys::device_id.eq(id))
                    .filter(wa_signed_prekeys::key_id.eq(i64::from(key_id))),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_sender_keys_batch(&[(Arc::from(address), Bytes::copy_from_slice(record))])
            .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        if sender_keys.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (address, record) in sender_keys {
                    diesel::insert_into(wa_sender_keys::table)
                        .values((
                            wa_sender_keys::device_id.eq(id),
                            wa_sender_keys::address.eq(&**address),
                            wa_sender_keys::record.eq(&record[..]),
                        ))
                        .on_conflict((wa_sender_keys::device_id, wa_sender_keys::address))
                        .do_update()
                        .set(wa_sender_keys::record.eq(excluded(wa_sender_keys::record)))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_sender_keys::table
                .filter(wa_sender_keys::device_id.eq(id))
                .filter(wa_sender_keys::address.eq(address))
                .select(wa_sender_keys::record)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sender_keys::table
                    .filter(wa_sender_keys::device_id.eq(id))
                    .filter(wa_sender_keys::address.eq(address)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }
}

#[async_trait]
impl AppSyncStore for WaStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_app_state_keys::table
                .filter(wa_app_state_keys::device_id.eq(id))
                .filter(wa_app_state_keys::key_id.eq(key_id))
                .select(wa_app_state_keys::key_data)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        row.map(|data| from_blob(&data)).transpose()
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let id = self.device_id;
        let data = to_blob(&key)?;
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_app_state_keys::table)
                .values((
                    wa_app_state_keys::device_id.eq(id),
                    wa_app_state_keys::key_id.eq(key_id),
                    wa_app_state_keys::key_data.eq(&data),
                ))
                .on_conflict((wa_app_state_keys::device_id, wa_app_state_keys::key_id))
                .do_update()
                .set(wa_app_state_keys::key_data.eq(excluded(wa_app_state_keys::key_data)))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_app_state_versions::table
                .filter(wa_app_state_versions::device_id.eq(id))
                .filter(wa_app_state_versions::name.eq(name))
                .select(wa_app_state_versions::state_data)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        match row {
            Some(data) => from_blob(&data),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let id = self.device_id;
        let data = to_blob(&state)?;
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_app_state_versions::table)
                .values((
                    wa_app_state_versions::device_id.eq(id),
                    wa_app_state_versions::name.eq(name),
                    wa_app_state_versions::state_data.eq(&data),
                ))
                .on_conflict((
                    wa_app_state_versions::device_id,
                    wa_app_state_versions::name,
                ))
                .do_update()
                .set(
                    wa_app_state_versions::state_data
                        .eq(excluded(wa_app_state_versions::state_data)),
                )
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Validation("app-state version out of range".into()))?;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for m in mutations {
                    diesel::insert_into(wa_app_state_mutation_macs::table)
                        .values((
                            wa_app_state_mutation_macs::device_id.eq(id),
                            wa_app_state_mutation_macs::name.eq(name),
                            wa_app_state_mutation_macs::index_mac.eq(&m.index_mac),
                            wa_app_state_mutation_macs::version.eq(version),
                            wa_app_state_mutation_macs::value_mac.eq(&m.value_mac),
                        ))
                        .on_conflict((
                            wa_app_state_mutation_macs::device_id,
                            wa_app_state_mutation_macs::name,
                            wa_app_state_mutation_macs::index_mac,
                        ))
                        .do_update()
                        .set((
                            wa_app_state_mutation_macs::version
                                .eq(excluded(wa_app_state_mutation_macs::version)),
                            wa_app_state_mutation_macs::value_mac
                                .eq(excluded(wa_app_state_mutation_macs::value_mac)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_app_state_mutation_macs::table
                .filter(wa_app_state_mutation_macs::device_id.eq(id))
                .filter(wa_app_state_mutation_macs::name.eq(name))
                .filter(wa_app_state_mutation_macs::index_mac.eq(index_mac))
                .select(wa_app_state_mutation_macs::value_mac)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let id = self.device_id;
        let wanted: Vec<Vec<u8>> = index_macs.iter().map(|m| m.to_vec()).collect();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = db_run!(&self.db, |conn| {
            wa_app_state_mutation_macs::table
                .filter(wa_app_state_mutation_macs::device_id.eq(id))
                .filter(wa_app_state_mutation_macs::name.eq(name))
                .filter(wa_app_state_mutation_macs::index_mac.eq_any(&wanted))
                .select((
                    wa_app_state_mutation_macs::index_mac,
                    wa_app_state_mutation_macs::value_mac,
                ))
                .load::<(Vec<u8>, Vec<u8>)>(conn)
                .await
                .map_err(DbError::from)
        })?;
        rows.into_iter()
            .map(|(index, value)| Ok((key32(&index)?, value)))
            .collect()
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_app_state_mutation_macs::table
                    .filter(wa_app_state_mutation_macs::device_id.eq(id))
                    .filter(wa_app_state_mutation_macs::name.eq(name))
                    .filter(wa_app_state_mutation_macs::index_mac.eq_any(index_macs)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_app_state_mutation_macs::table
                    .filter(wa_app_state_mutation_macs::device_id.eq(id))
                    .filter(wa_app_state_mutation_macs::name.eq(name)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    /// The highest key id whose blob decodes (as whatsapp-rust's own store does: an
    /// undecodable row must not be chosen for outbound patches).
    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = db_run!(&self.db, |conn| {
            wa_app_state_keys::table
                .filter(wa_app_state_keys::device_id.eq(id))
                .order(wa_app_state_keys::key_id.desc())
                .select((wa_app_state_keys::key_id, wa_app_state_keys::key_data))
                .load::<(Vec<u8>, Vec<u8>)>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(rows
            .into_iter()
            .find(|(_, data)| from_blob::<AppStateSyncKey>(data).is_ok())
            .map(|(key_id, _)| key_id))
    }
}

#[async_trait]
impl ProtocolStore for WaStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let id = self.device_id;
        let rows = db_run!(&self.db, |conn| {
            wa_sender_key_devices::table
                .filter(wa_sender_key_devices::device_id.eq(id))
                .filter(wa_sender_key_devices::group_jid.eq(group_jid))
                .order(wa_sender_key_devices::device_jid.asc())
                .select((
                    wa_sender_key_devices::device_jid,
                    wa_sender_key_devices::has_key,
                ))
                .load::<(String, bool)>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(rows)
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (device_jid, has_key) in entries {
                    diesel::insert_into(wa_sender_key_devices::table)
                        .values((
                            wa_sender_key_devices::device_id.eq(id),
                            wa_sender_key_devices::group_jid.eq(group_jid),
                            wa_sender_key_devices::device_jid.eq(*device_jid),
                            wa_sender_key_devices::has_key.eq(*has_key),
                            wa_sender_key_devices::updated_at.eq(now),
                        ))
                        .on_conflict((
                            wa_sender_key_devices::device_id,
                            wa_sender_key_devices::group_jid,
                            wa_sender_key_devices::device_jid,
                        ))
                        .do_update()
                        .set((
                            wa_sender_key_devices::has_key
                                .eq(excluded(wa_sender_key_devices::has_key)),
                            wa_sender_key_devices::updated_at
                                .eq(excluded(wa_sender_key_devices::updated_at)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sender_key_devices::table
                    .filter(wa_sender_key_devices::device_id.eq(id))
                    .filter(wa_sender_key_devices::group_jid.eq(group_jid)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sender_key_devices::table
                    .filter(wa_sender_key_devices::device_id.eq(id))
                    .filter(wa_sender_key_devices::device_jid.eq_any(device_jids)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sender_key_devices::table.filter(wa_sender_key_devices::device_id.eq(id)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_lid_pn_mapping::table
                .filter(wa_lid_pn_mapping::device_id.eq(id))
                .filter(wa_lid_pn_mapping::lid.eq(lid))
                .select(LID_COLUMNS)
                .first::<LidRow>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row.map(lid_entry))
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_lid_pn_mapping::table
                .filter(wa_lid_pn_mapping::device_id.eq(id))
                .filter(wa_lid_pn_mapping::phone_number.eq(phone))
                .order(wa_lid_pn_mapping::updated_at.desc())
                .select(LID_COLUMNS)
                .first::<LidRow>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row.map(lid_entry))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for e in entries {
                    diesel::insert_into(wa_lid_pn_mapping::table)
                        .values((
                            wa_lid_pn_mapping::device_id.eq(id),
                            wa_lid_pn_mapping::lid.eq(&e.lid),
                            wa_lid_pn_mapping::phone_number.eq(&e.phone_number),
                            wa_lid_pn_mapping::created_at.eq(e.created_at),
                            wa_lid_pn_mapping::updated_at.eq(e.updated_at),
                            wa_lid_pn_mapping::learning_source.eq(&e.learning_source),
                        ))
                        .on_conflict((wa_lid_pn_mapping::device_id, wa_lid_pn_mapping::lid))
                        .do_update()
                        .set((
                            wa_lid_pn_mapping::phone_number
                                .eq(excluded(wa_lid_pn_mapping::phone_number)),
                            wa_lid_pn_mapping::updated_at
                                .eq(excluded(wa_lid_pn_mapping::updated_at)),
                            wa_lid_pn_mapping::learning_source
                                .eq(excluded(wa_lid_pn_mapping::learning_source)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let id = self.device_id;
        let rows = db_run!(&self.db, |conn| {
            wa_lid_pn_mapping::table
                .filter(wa_lid_pn_mapping::device_id.eq(id))
                .order(wa_lid_pn_mapping::lid.asc())
                .select(LID_COLUMNS)
                .load::<LidRow>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(rows.into_iter().map(lid_entry).collect())
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_base_keys::table)
                .values((
                    wa_base_keys::device_id.eq(id),
                    wa_base_keys::address.eq(address),
                    wa_base_keys::message_id.eq(message_id),
                    wa_base_keys::base_key.eq(base_key),
                    wa_base_keys::created_at.eq(now),
                ))
                .on_conflict((
                    wa_base_keys::device_id,
                    wa_base_keys::address,
                    wa_base_keys::message_id,
                ))
                .do_update()
                .set((
                    wa_base_keys::base_key.eq(excluded(wa_base_keys::base_key)),
                    wa_base_keys::created_at.eq(excluded(wa_base_keys::created_at)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let id = self.device_id;
        let stored: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_base_keys::table
                .filter(wa_base_keys::device_id.eq(id))
                .filter(wa_base_keys::address.eq(address))
                .filter(wa_base_keys::message_id.eq(message_id))
                .select(wa_base_keys::base_key)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(stored.as_deref() == Some(current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_base_keys::table
                    .filter(wa_base_keys::device_id.eq(id))
                    .filter(wa_base_keys::address.eq(address))
                    .filter(wa_base_keys::message_id.eq(message_id)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        let now = now_secs();
        let rows = records
            .iter()
            .map(|r| Ok((r, serde_json::to_string(&r.devices)?)))
            .collect::<std::result::Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| StoreError::Serialization(Box::new(e)))?;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for (r, devices_json) in &rows {
                    diesel::insert_into(wa_device_registry::table)
                        .values((
                            wa_device_registry::device_id.eq(id),
                            wa_device_registry::user_id.eq(&r.user),
                            wa_device_registry::devices_json.eq(devices_json),
                            wa_device_registry::timestamp.eq(r.timestamp),
                            wa_device_registry::phash.eq(&r.phash),
                            wa_device_registry::raw_id.eq(r.raw_id.map(i64::from)),
                            wa_device_registry::updated_at.eq(now),
                        ))
                        .on_conflict((wa_device_registry::device_id, wa_device_registry::user_id))
                        .do_update()
                        .set((
                            wa_device_registry::devices_json
                                .eq(excluded(wa_device_registry::devices_json)),
                            wa_device_registry::timestamp
                                .eq(excluded(wa_device_registry::timestamp)),
                            wa_device_registry::phash.eq(excluded(wa_device_registry::phash)),
                            wa_device_registry::raw_id.eq(excluded(wa_device_registry::raw_id)),
                            wa_device_registry::updated_at
                                .eq(excluded(wa_device_registry::updated_at)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let id = self.device_id;
        let row: Option<(String, String, i64, Option<String>, Option<i64>)> =
            db_run!(&self.db, |conn| {
                wa_device_registry::table
                    .filter(wa_device_registry::device_id.eq(id))
                    .filter(wa_device_registry::user_id.eq(user))
                    .select((
                        wa_device_registry::user_id,
                        wa_device_registry::devices_json,
                        wa_device_registry::timestamp,
                        wa_device_registry::phash,
                        wa_device_registry::raw_id,
                    ))
                    .first(conn)
                    .await
                    .optional()
                    .map_err(DbError::from)
            })?;
        let Some((user, devices_json, timestamp, phash, raw_id)) = row else {
            return Ok(None);
        };
        let devices: Vec<DeviceInfo> = serde_json::from_str(&devices_json)
            .map_err(|e| StoreError::Serialization(Box::new(e)))?;
        let raw_id = raw_id
            .map(u32::try_from)
            .transpose()
            .map_err(|_| StoreError::Validation("raw_id out of range".into()))?;
        Ok(Some(DeviceListRecord {
            user,
            devices,
            timestamp,
            phash,
            raw_id,
        }))
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_device_registry::table
                    .filter(wa_device_registry::device_id.eq(id))
                    .filter(wa_device_registry::user_id.eq(user)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_group_metadata::table
                .filter(wa_group_metadata::device_id.eq(id))
                .filter(wa_group_metadata::group_jid.eq(group_jid))
                .select(wa_group_metadata::info)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_group_metadata::table)
                .values((
                    wa_group_metadata::device_id.eq(id),
                    wa_group_metadata::group_jid.eq(group_jid),
                    wa_group_metadata::info.eq(blob),
                    wa_group_metadata::updated_at.eq(now),
                ))
                .on_conflict((wa_group_metadata::device_id, wa_group_metadata::group_jid))
                .do_update()
                .set((
                    wa_group_metadata::info.eq(excluded(wa_group_metadata::info)),
                    wa_group_metadata::updated_at.eq(excluded(wa_group_metadata::updated_at)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_group_metadata::table
                    .filter(wa_group_metadata::device_id.eq(id))
                    .filter(wa_group_metadata::group_jid.eq(group_jid)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let id = self.device_id;
        let row: Option<(Vec<u8>, i64, Option<i64>)> = db_run!(&self.db, |conn| {
            wa_tc_tokens::table
                .filter(wa_tc_tokens::device_id.eq(id))
                .filter(wa_tc_tokens::jid.eq(jid))
                .select((
                    wa_tc_tokens::token,
                    wa_tc_tokens::token_timestamp,
                    wa_tc_tokens::sender_timestamp,
                ))
                .first(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(
            row.map(|(token, token_timestamp, sender_timestamp)| TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp,
            }),
        )
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_tc_tokens::table)
                .values((
                    wa_tc_tokens::device_id.eq(id),
                    wa_tc_tokens::jid.eq(jid),
                    wa_tc_tokens::token.eq(&entry.token),
                    wa_tc_tokens::token_timestamp.eq(entry.token_timestamp),
                    wa_tc_tokens::sender_timestamp.eq(entry.sender_timestamp),
                    wa_tc_tokens::updated_at.eq(now),
                ))
                .on_conflict((wa_tc_tokens::device_id, wa_tc_tokens::jid))
                .do_update()
                .set((
                    wa_tc_tokens::token.eq(excluded(wa_tc_tokens::token)),
                    wa_tc_tokens::token_timestamp.eq(excluded(wa_tc_tokens::token_timestamp)),
                    wa_tc_tokens::sender_timestamp.eq(excluded(wa_tc_tokens::sender_timestamp)),
                    wa_tc_tokens::updated_at.eq(excluded(wa_tc_tokens::updated_at)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            diesel::delete(
                wa_tc_tokens::table
                    .filter(wa_tc_tokens::device_id.eq(id))
                    .filter(wa_tc_tokens::jid.eq(jid)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let id = self.device_id;
        let rows = db_run!(&self.db, |conn| {
            wa_tc_tokens::table
                .filter(wa_tc_tokens::device_id.eq(id))
                .order(wa_tc_tokens::jid.asc())
                .select(wa_tc_tokens::jid)
                .load::<String>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(rows)
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let id = self.device_id;
        let empty: Vec<u8> = Vec::new();
        let deleted = db_run!(&self.db, |conn| {
            diesel::delete(
                wa_tc_tokens::table
                    .filter(wa_tc_tokens::device_id.eq(id))
                    .filter(
                        wa_tc_tokens::token
                            .eq(&empty)
                            .or(wa_tc_tokens::token_timestamp.lt(token_cutoff)),
                    )
                    .filter(
                        wa_tc_tokens::sender_timestamp
                            .is_null()
                            .or(wa_tc_tokens::sender_timestamp.lt(sender_cutoff)),
                    ),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    /// One atomic upsert: the sender bucket only moves forward, token bytes are kept.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let id = self.device_id;
        let now = now_secs();
        let empty: Vec<u8> = Vec::new();
        db_run!(&self.db, |conn| {
            let forward = diesel::dsl::sql::<Nullable<BigInt>>(
                "CASE WHEN wa_tc_tokens.sender_timestamp IS NULL \
                 OR wa_tc_tokens.sender_timestamp < ",
            )
            .bind::<BigInt, _>(sender_timestamp)
            .sql(" THEN ")
            .bind::<BigInt, _>(sender_timestamp)
            .sql(" ELSE wa_tc_tokens.sender_timestamp END");
            diesel::insert_into(wa_tc_tokens::table)
                .values((
                    wa_tc_tokens::device_id.eq(id),
                    wa_tc_tokens::jid.eq(jid),
                    wa_tc_tokens::token.eq(&empty),
                    wa_tc_tokens::token_timestamp.eq(sender_timestamp),
                    wa_tc_tokens::sender_timestamp.eq(Some(sender_timestamp)),
                    wa_tc_tokens::updated_at.eq(now),
                ))
                .on_conflict((wa_tc_tokens::device_id, wa_tc_tokens::jid))
                .do_update()
                .set((
                    wa_tc_tokens::sender_timestamp.eq(forward),
                    wa_tc_tokens::updated_at.eq(now),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_sent_messages::table)
                .values((
                    wa_sent_messages::device_id.eq(id),
                    wa_sent_messages::chat_jid.eq(chat_jid),
                    wa_sent_messages::message_id.eq(message_id),
                    wa_sent_messages::payload.eq(payload),
                    wa_sent_messages::created_at.eq(now),
                ))
                .on_conflict((
                    wa_sent_messages::device_id,
                    wa_sent_messages::chat_jid,
                    wa_sent_messages::message_id,
                ))
                .do_update()
                .set((
                    wa_sent_messages::payload.eq(excluded(wa_sent_messages::payload)),
                    wa_sent_messages::created_at.eq(excluded(wa_sent_messages::created_at)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    /// An atomic take: `DELETE … RETURNING`, so two retry receipts cannot both get it.
    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sent_messages::table
                    .filter(wa_sent_messages::device_id.eq(id))
                    .filter(wa_sent_messages::chat_jid.eq(chat_jid))
                    .filter(wa_sent_messages::message_id.eq(message_id)),
            )
            .returning(wa_sent_messages::payload)
            .get_result::<Vec<u8>>(conn)
            .await
            .optional()
            .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let id = self.device_id;
        let deleted = db_run!(&self.db, |conn| {
            diesel::delete(
                wa_sent_messages::table
                    .filter(wa_sent_messages::device_id.eq(id))
                    .filter(wa_sent_messages::created_at.lt(cutoff_timestamp)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        message_id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending_inbound_batch(&[PendingInboundRow {
            chat,
            sender,
            id: message_id,
            message,
        }])
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_pending_inbound::table
                .filter(wa_pending_inbound::device_id.eq(id))
                .filter(wa_pending_inbound::chat.eq(chat))
                .filter(wa_pending_inbound::sender.eq(sender))
                .filter(wa_pending_inbound::message_id.eq(message_id))
                .select(wa_pending_inbound::message)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn delete_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        message_id: &str,
    ) -> Result<()> {
        self.delete_pending_inbound_batch(&[PendingInboundKey {
            chat,
            sender,
            id: message_id,
        }])
        .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let id = self.device_id;
        let deleted = db_run!(&self.db, |conn| {
            diesel::delete(
                wa_pending_inbound::table
                    .filter(wa_pending_inbound::device_id.eq(id))
                    .filter(wa_pending_inbound::inserted_at.lt(cutoff_timestamp)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for row in rows {
                    diesel::insert_into(wa_pending_inbound::table)
                        .values((
                            wa_pending_inbound::device_id.eq(id),
                            wa_pending_inbound::chat.eq(row.chat),
                            wa_pending_inbound::sender.eq(row.sender),
                            wa_pending_inbound::message_id.eq(row.id),
                            wa_pending_inbound::message.eq(row.message),
                            wa_pending_inbound::inserted_at.eq(now),
                        ))
                        .on_conflict((
                            wa_pending_inbound::device_id,
                            wa_pending_inbound::chat,
                            wa_pending_inbound::sender,
                            wa_pending_inbound::message_id,
                        ))
                        .do_update()
                        .set((
                            wa_pending_inbound::message.eq(excluded(wa_pending_inbound::message)),
                            wa_pending_inbound::inserted_at
                                .eq(excluded(wa_pending_inbound::inserted_at)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let id = self.device_id;
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for key in keys {
                    diesel::delete(
                        wa_pending_inbound::table
                            .filter(wa_pending_inbound::device_id.eq(id))
                            .filter(wa_pending_inbound::chat.eq(key.chat))
                            .filter(wa_pending_inbound::sender.eq(key.sender))
                            .filter(wa_pending_inbound::message_id.eq(key.id)),
                    )
                    .execute(conn)
                    .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(())
    }
}

#[async_trait]
impl MsgSecretStore for WaStore {
    /// Upserts with the library's merge rules (later deadline wins, `0` = never; the later
    /// non-zero parent time wins), in one transaction that starts with a write.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let id = self.device_id;
        let now = now_secs();
        let stored = entries.len();
        db_run!(&self.db, |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                for e in &entries {
                    let inserted = diesel::insert_into(wa_msg_secrets::table)
                        .values((
                            wa_msg_secrets::device_id.eq(id),
                            wa_msg_secrets::chat.eq(&*e.chat),
                            wa_msg_secrets::sender.eq(&*e.sender),
                            wa_msg_secrets::msg_id.eq(&*e.msg_id),
                            wa_msg_secrets::secret.eq(&e.secret[..]),
                            wa_msg_secrets::created_at.eq(now),
                            wa_msg_secrets::expires_at.eq(e.expires_at),
                            wa_msg_secrets::message_ts.eq(e.message_ts),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                    if inserted > 0 {
                        continue;
                    }
                    let key = wa_msg_secrets::table
                        .filter(wa_msg_secrets::device_id.eq(id))
                        .filter(wa_msg_secrets::chat.eq(&*e.chat))
                        .filter(wa_msg_secrets::sender.eq(&*e.sender))
                        .filter(wa_msg_secrets::msg_id.eq(&*e.msg_id));
                    let (expires_at, message_ts): (i64, i64) = key
                        .select((wa_msg_secrets::expires_at, wa_msg_secrets::message_ts))
                        .first(conn)
                        .await?;
                    diesel::update(key)
                        .set((
                            wa_msg_secrets::secret.eq(&e.secret[..]),
                            wa_msg_secrets::expires_at
                                .eq(merge_msg_secret_expiry(expires_at, e.expires_at)),
                            wa_msg_secrets::message_ts
                                .eq(merge_msg_secret_message_ts(message_ts, e.message_ts)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let id = self.device_id;
        let row = db_run!(&self.db, |conn| {
            wa_msg_secrets::table
                .filter(wa_msg_secrets::device_id.eq(id))
                .filter(wa_msg_secrets::chat.eq(chat))
                .filter(wa_msg_secrets::sender.eq(sender))
                .filter(wa_msg_secrets::msg_id.eq(msg_id))
                .select((wa_msg_secrets::secret, wa_msg_secrets::message_ts))
                .first::<(Vec<u8>, i64)>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        Ok(row)
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let id = self.device_id;
        let deleted = db_run!(&self.db, |conn| {
            diesel::delete(
                wa_msg_secrets::table
                    .filter(wa_msg_secrets::device_id.eq(id))
                    .filter(wa_msg_secrets::expires_at.ne(0))
                    .filter(wa_msg_secrets::expires_at.le(cutoff_timestamp)),
            )
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl DeviceStore for WaStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let id = self.device_id;
        let data = to_blob(device)?;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_device::table)
                .values((
                    wa_device::device_id.eq(id),
                    wa_device::data.eq(&data),
                    wa_device::updated_at.eq(now),
                ))
                .on_conflict(wa_device::device_id)
                .do_update()
                .set((
                    wa_device::data.eq(excluded(wa_device::data)),
                    wa_device::updated_at.eq(excluded(wa_device::updated_at)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(())
    }

    async fn load(&self) -> Result<Option<Device>> {
        let id = self.device_id;
        let row: Option<Vec<u8>> = db_run!(&self.db, |conn| {
            wa_device::table
                .filter(wa_device::device_id.eq(id))
                .select(wa_device::data)
                .first::<Vec<u8>>(conn)
                .await
                .optional()
                .map_err(DbError::from)
        })?;
        row.map(|data| from_blob(&data)).transpose()
    }

    async fn exists(&self) -> Result<bool> {
        let id = self.device_id;
        let found: i64 = db_run!(&self.db, |conn| {
            wa_device::table
                .filter(wa_device::device_id.eq(id))
                .select(diesel::dsl::count_star())
                .first::<i64>(conn)
                .await
                .map_err(DbError::from)
        })?;
        Ok(found > 0)
    }

    /// Creates the device record with fresh keys under our device id (not a generated one:
    /// the store is keyed by the id the daemon already has).
    async fn create(&self) -> Result<i32> {
        let device = Device::new();
        let data = to_blob(&device)?;
        let id = self.device_id;
        let now = now_secs();
        db_run!(&self.db, |conn| {
            diesel::insert_into(wa_device::table)
                .values((
                    wa_device::device_id.eq(id),
                    wa_device::data.eq(&data),
                    wa_device::updated_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await
                .map_err(DbError::from)
        })?;
        i32::try_from(id).map_err(|_| StoreError::Validation(format!("device id {id} too large")))
    }

    /// The data lives in the shared database, not in this session's memory.
    async fn resource_report(&self) -> whatsapp_rust::wacore::stats::StorageResourceReport {
        whatsapp_rust::wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}

/// The columns of a LID mapping, in [`LidRow`] order.
const LID_COLUMNS: (
    wa_lid_pn_mapping::lid,
    wa_lid_pn_mapping::phone_number,
    wa_lid_pn_mapping::created_at,
    wa_lid_pn_mapping::updated_at,
    wa_lid_pn_mapping::learning_source,
) = (
    wa_lid_pn_mapping::lid,
    wa_lid_pn_mapping::phone_number,
    wa_lid_pn_mapping::created_at,
    wa_lid_pn_mapping::updated_at,
    wa_lid_pn_mapping::learning_source,
);

/// A LID mapping row: lid, phone number, created, updated, source.
type LidRow = (String, String, i64, i64, String);

/// Builds the library's entry from a row.
fn lid_entry(
    (lid, phone_number, created_at, updated_at, learning_source): LidRow,
) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid,
        phone_number,
        created_at,
        updated_at,
        learning_source,
    }
}
