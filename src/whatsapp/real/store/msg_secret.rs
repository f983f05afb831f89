//! `MsgSecretStore`: one device's message secrets (for reactions, polls and edits), kept
//! until their deadline, merged by the library's rules when a secret arrives again.

use whatsapp_rust::wacore::store::traits::{
    merge_msg_secret_expiry, merge_msg_secret_message_ts, MsgSecretEntry, MsgSecretStore,
};

use super::kv::*;

#[async_trait]
impl MsgSecretStore for WaStore {
    /// Upserts with the library's merge rules (later deadline wins, `0` = never; the later
    /// non-zero parent time wins), in one transaction that starts with a write.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let now = now_secs();
        tx!(self, |conn, id| {
            for e in &entries {
                let inserted = insert!(id, wa_msg_secrets[
                    chat = &*e.chat, sender = &*e.sender, msg_id = &*e.msg_id,
                    secret = &e.secret[..], created_at = now,
                    expires_at = e.expires_at, message_ts = e.message_ts,
                ])
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
                if inserted > 0 {
                    continue;
                }
                let key = rows!(wa_msg_secrets, id;
                    chat.eq(&*e.chat), sender.eq(&*e.sender), msg_id.eq(&*e.msg_id));
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
        })?;
        Ok(entries.len())
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let found = self.get_msg_secret_with_ts(chat, sender, id).await?;
        Ok(found.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        find!(self, wa_msg_secrets[chat.eq(chat), sender.eq(sender), msg_id.eq(msg_id)]
            => (secret, message_ts))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        delete!(self, count wa_msg_secrets[expires_at.ne(0), expires_at.le(cutoff_timestamp)])
    }
}
