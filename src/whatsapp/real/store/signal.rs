//! `SignalStore`: one device's Signal protocol state (identities, sessions, pre-keys, signed
//! pre-keys, sender keys), each record the library's own bytes stored as they come.

use std::sync::Arc;

use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::kv::*;

#[async_trait]
impl SignalStore for WaStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_identities_batch(&[(address.into(), key)]).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        upsert!(self, for (address, key) in identities
            => wa_identities[address = &**address] set [key = &key[..]])
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let key: Option<Vec<u8>> = find!(self, wa_identities[address.eq(address)] => key)?;
        key.map(|k| key32(&k)).transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        delete!(self, wa_identities[address.eq(address)])
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let record: Option<Vec<u8>> = find!(self, wa_sessions[address.eq(address)] => record)?;
        Ok(record.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_sessions_batch(&[(Arc::from(address), Bytes::copy_from_slice(session))])
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        upsert!(self, for (address, record) in sessions
            => wa_sessions[address = &**address] set [record = &record[..]])
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        delete!(self, wa_sessions[address.eq(address)])
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let found: Option<String> = find!(self, wa_sessions[address.eq(address)] => address)?;
        Ok(found.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Addresses are `user@server` (device 0) or `user:dev@server`; users are numeric, so
        // they carry no LIKE wildcards.
        let (at, dev) = (format!("{user}@%"), format!("{user}:%"));
        let found: i64 = run!(self, |conn, id| async {
            let (session, ident) = (wa_sessions::address, wa_identities::address);
            let sessions = rows!(wa_sessions, id;).filter(session.like(&at).or(session.like(&dev)));
            let identities = rows!(wa_identities, id;).filter(ident.like(&at).or(ident.like(&dev)));
            let sessions: i64 = sessions.count().get_result(conn).await?;
            let identities: i64 = identities.count().get_result(conn).await?;
            Ok::<_, diesel::result::Error>(sessions + identities)
        }
        .await)?;
        Ok(found > 0)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        upsert!(self, for (key_id, record) in keys => wa_prekeys[key_id = i64::from(*key_id)]
            set [record = &record[..], uploaded = uploaded])
    }

    async fn load_prekey(&self, key_id: u32) -> Result<Option<Bytes>> {
        let key_id = i64::from(key_id);
        let record: Option<Vec<u8>> = find!(self, wa_prekeys[key_id.eq(key_id)] => record)?;
        Ok(record.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = ids.iter().map(|k| i64::from(*k)).collect();
        let rows: Vec<(i64, Vec<u8>)> =
            load!(self, wa_prekeys[key_id.eq_any(&wanted)] => (key_id, record))?;
        rows.into_iter()
            .map(|(k, r)| Ok((id32(k, "pre-key id")?, Bytes::from(r))))
            .collect()
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let wanted: Vec<i64> = ids.iter().map(|k| i64::from(*k)).collect();
        // UPDATE only: a key consumed meanwhile stays deleted.
        fenced!(self, |conn, id| diesel::update(
            rows!(wa_prekeys, id; key_id.eq_any(&wanted))
        )
        .set(wa_prekeys::uploaded.eq(true))
        .execute(conn)
        .await)
        .map(|_| ())
    }

    async fn remove_prekey(&self, key_id: u32) -> Result<()> {
        delete!(self, wa_prekeys[key_id.eq(i64::from(key_id))])
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let max: Option<i64> = run!(self, |conn, id| rows!(wa_prekeys, id;)
            .select(diesel::dsl::max(wa_prekeys::key_id))
            .first(conn)
            .await)?;
        id32(max.unwrap_or(0), "pre-key id")
    }

    async fn store_signed_prekey(&self, key_id: u32, record: &[u8]) -> Result<()> {
        upsert!(self, wa_signed_prekeys[key_id = i64::from(key_id)] set [record = record])
    }

    async fn load_signed_prekey(&self, key_id: u32) -> Result<Option<Vec<u8>>> {
        find!(self, wa_signed_prekeys[key_id.eq(i64::from(key_id))] => record)
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            load!(self, wa_signed_prekeys[] order key_id.asc() => (key_id, record))?;
        rows.into_iter()
            .map(|(k, r)| Ok((id32(k, "signed pre-key id")?, r)))
            .collect()
    }

    async fn remove_signed_prekey(&self, key_id: u32) -> Result<()> {
        delete!(self, wa_signed_prekeys[key_id.eq(i64::from(key_id))])
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_sender_keys_batch(&[(Arc::from(address), Bytes::copy_from_slice(record))])
            .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        upsert!(self, for (address, record) in sender_keys
            => wa_sender_keys[address = &**address] set [record = &record[..]])
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        find!(self, wa_sender_keys[address.eq(address)] => record)
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        delete!(self, wa_sender_keys[address.eq(address)])
    }
}
