//! `ProtocolStore`: one device's protocol bookkeeping beyond Signal itself: which group
//! members hold our sender key, LID ↔ phone mappings, base keys, device lists, group metadata,
//! trusted-contact tokens, sent messages kept for retries, and inbound messages waiting for a
//! session.

use diesel::sql_types::{BigInt, Nullable};
use whatsapp_rust::wacore::store::traits::{
    DeviceInfo, DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow,
    ProtocolStore, TcTokenEntry,
};

use super::kv::*;

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

#[async_trait]
impl ProtocolStore for WaStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        load!(self, wa_sender_key_devices[group_jid.eq(group_jid)] order device_jid.asc()
            => (device_jid, has_key))
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let now = now_secs();
        upsert!(self, for (device_jid, has_key) in entries
            => wa_sender_key_devices[group_jid = group_jid, device_jid = *device_jid]
                set [has_key = *has_key, updated_at = now])
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        delete!(self, wa_sender_key_devices[group_jid.eq(group_jid)])
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        delete!(self, wa_sender_key_devices[device_jid.eq_any(device_jids)])
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        delete!(self, wa_sender_key_devices[])
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = find!(self, wa_lid_pn_mapping[lid.eq(lid)]
            => (lid, phone_number, created_at, updated_at, learning_source))?;
        Ok(row.map(lid_entry))
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = find!(self, wa_lid_pn_mapping[phone_number.eq(phone)] order updated_at.desc()
            => (lid, phone_number, created_at, updated_at, learning_source))?;
        Ok(row.map(lid_entry))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        upsert!(self, for e in entries => wa_lid_pn_mapping[lid = &e.lid] set [
            phone_number = &e.phone_number, updated_at = e.updated_at,
            learning_source = &e.learning_source,
        ] once [created_at = e.created_at])
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        Ok(load!(self, wa_lid_pn_mapping[] order lid.asc()
            => (lid, phone_number, created_at, updated_at, learning_source))?
        .into_iter()
        .map(lid_entry)
        .collect())
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        let now = now_secs();
        upsert!(self, wa_base_keys[address = address, message_id = message_id]
            set [base_key = base_key, created_at = now])
    }

    async fn has_same_base_key(&self, address: &str, msg_id: &str, key: &[u8]) -> Result<bool> {
        let stored: Option<Vec<u8>> = find!(self,
            wa_base_keys[address.eq(address), message_id.eq(msg_id)] => base_key)?;
        Ok(stored.as_deref() == Some(key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        delete!(self, wa_base_keys[address.eq(address), message_id.eq(message_id)])
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let now = now_secs();
        let rows = records
            .iter()
            .map(|r| Ok((r, serde_json::to_string(&r.devices)?)))
            .collect::<std::result::Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| StoreError::Serialization(Box::new(e)))?;
        upsert!(self, for (r, devices_json) in &rows => wa_device_registry[user_id = &r.user] set [
            devices_json = devices_json, timestamp = r.timestamp, phash = &r.phash,
            raw_id = r.raw_id.map(i64::from), updated_at = now,
        ])
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let row: Option<(String, String, i64, Option<String>, Option<i64>)> = find!(self,
            wa_device_registry[user_id.eq(user)]
            => (user_id, devices_json, timestamp, phash, raw_id))?;
        let Some((user, devices_json, timestamp, phash, raw_id)) = row else {
            return Ok(None);
        };
        let devices: Vec<DeviceInfo> = from_blob(devices_json.as_bytes())?;
        let raw_id = raw_id.map(|raw| id32(raw, "raw_id")).transpose()?;
        Ok(Some(DeviceListRecord {
            user,
            devices,
            timestamp,
            phash,
            raw_id,
        }))
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        delete!(self, wa_device_registry[user_id.eq(user)])
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        find!(self, wa_group_metadata[group_jid.eq(group_jid)] => info)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        let now = now_secs();
        upsert!(self, wa_group_metadata[group_jid = group_jid]
            set [info = blob, updated_at = now])
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        delete!(self, wa_group_metadata[group_jid.eq(group_jid)])
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let row: Option<(Vec<u8>, i64, Option<i64>)> = find!(self, wa_tc_tokens[jid.eq(jid)]
            => (token, token_timestamp, sender_timestamp))?;
        let entry = |(token, token_timestamp, sender_timestamp)| TcTokenEntry {
            token,
            token_timestamp,
            sender_timestamp,
        };
        Ok(row.map(entry))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let now = now_secs();
        upsert!(self, wa_tc_tokens[jid = jid] set [
            token = &entry.token, token_timestamp = entry.token_timestamp,
            sender_timestamp = entry.sender_timestamp, updated_at = now,
        ])
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        delete!(self, wa_tc_tokens[jid.eq(jid)])
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        load!(self, wa_tc_tokens[] order jid.asc() => jid)
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        use wa_tc_tokens::{sender_timestamp as sender, token, token_timestamp};
        let empty: Vec<u8> = Vec::new();
        let expired = rows!(wa_tc_tokens, self.device_id;)
            .filter(token.eq(&empty).or(token_timestamp.lt(token_cutoff)))
            .filter(sender.is_null().or(sender.lt(sender_cutoff)));
        let deleted = fenced!(self, |conn, _id| diesel::delete(expired)
            .execute(conn)
            .await)?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    /// One atomic upsert: the sender bucket only moves forward, token bytes are kept.
    async fn touch_tc_token_sender_timestamp(&self, jid: &str, ts: i64) -> Result<()> {
        let now = now_secs();
        let forward = diesel::dsl::sql::<Nullable<BigInt>>(
            "CASE WHEN wa_tc_tokens.sender_timestamp IS NULL \
             OR wa_tc_tokens.sender_timestamp < ",
        )
        .bind::<BigInt, _>(ts)
        .sql(" THEN ")
        .bind::<BigInt, _>(ts)
        .sql(" ELSE wa_tc_tokens.sender_timestamp END");
        upsert!(self, wa_tc_tokens[jid = jid] set [updated_at = now]
            once [token = Vec::<u8>::new(), token_timestamp = ts, sender_timestamp = Some(ts)]
            then [sender_timestamp = forward])
    }

    async fn store_sent_message(&self, chat: &str, id: &str, payload: &[u8]) -> Result<()> {
        let now = now_secs();
        upsert!(self, wa_sent_messages[chat_jid = chat, message_id = id]
            set [payload = payload, created_at = now])
    }

    /// An atomic take: `DELETE … RETURNING`, so two retry receipts cannot both get it.
    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        fenced!(self, |conn, id| diesel::delete(rows!(wa_sent_messages, id;
            chat_jid.eq(chat_jid), message_id.eq(message_id)))
        .returning(wa_sent_messages::payload)
        .get_result(conn)
        .await
        .optional())
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        delete!(self, count wa_sent_messages[created_at.lt(cutoff_timestamp)])
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
        find!(self, wa_pending_inbound[
            chat.eq(chat), sender.eq(sender), message_id.eq(message_id)
        ] => message)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete_pending_inbound_batch(&[PendingInboundKey { chat, sender, id }])
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        delete!(self, count wa_pending_inbound[inserted_at.lt(cutoff_timestamp)])
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let now = now_secs();
        upsert!(self, for row in rows
            => wa_pending_inbound[chat = row.chat, sender = row.sender, message_id = row.id]
                set [message = row.message, inserted_at = now])
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        tx!(self, |conn, id| {
            for key in keys {
                diesel::delete(rows!(wa_pending_inbound, id;
                    chat.eq(key.chat), sender.eq(key.sender), message_id.eq(key.id)))
                .execute(conn)
                .await?;
            }
        })
    }
}
