//! `ChatSync`: mirrors chat traffic into the database in batches and announces it after commit.
//!
//! Handles `RecordMessages` and `RecordReceipt` from device actors. Buffers them for at most
//! `chat.batch_window_ms` (or `chat.batch_max` records), writes the batch in one transaction
//! (a message id already stored changes nothing, so replays and history syncs never duplicate),
//! then publishes `NEW_MESSAGE`, `CHAT_UPDATED` and `MESSAGE_ACK` on `messages/<device_id>`.
//! Batches are written one after another, in arrival order.
//!
//! After each commit it also tells its listeners what the batch committed, in one
//! [`ChatCommitted`] per flush: the broadcast side reacts to replies, opt-out keywords and
//! receipts from there. The mirror itself knows no campaign, sequence or opt-out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use chrono_tz::Tz;
use serde_json::json;

use super::media::MediaStore;
use super::messages::{ChatCommitted, CommittedReceipt, Inbound, RecordMessages, RecordReceipt};
use super::model::{Chat, StoredMessage};
use super::store::{self, BatchOutcome, ChatWrite, NewMessage};
use super::{chat_view, message_view};
use crate::auth::store as accounts;
use crate::config::ChatSettings;
use crate::db::Db;
use crate::hub::{Hub, HubEvent, Topic};
use crate::whatsapp::ReceiptKind;

/// The chat mirror.
pub struct ChatSync {
    db: Db,
    media: MediaStore,
    hub: Addr<Hub>,
    settings: ChatSettings,
    /// Who hears what each flush committed.
    listeners: Vec<Recipient<ChatCommitted>>,
    /// Writes waiting for the next flush, with the tenant of each.
    pending: Vec<(i64, ChatWrite)>,
    /// Whether a flush is scheduled.
    flush_scheduled: bool,
    /// Tenant time zones, for time labels.
    zones: HashMap<i64, Tz>,
}

impl ChatSync {
    /// A chat mirror writing to `db`, announcing on `hub`, and telling `listeners` what each
    /// flush committed.
    pub fn new(
        db: Db,
        hub: Addr<Hub>,
        settings: ChatSettings,
        listeners: Vec<Recipient<ChatCommitted>>,
    ) -> Self {
        Self {
            db,
            media: MediaStore::new(settings.media_dir.clone()),
            hub,
            settings,
            listeners,
            pending: Vec::new(),
            flush_scheduled: false,
            zones: HashMap::new(),
        }
    }

    /// Queues a write and arranges a flush.
    fn push(&mut self, tenant_id: i64, write: ChatWrite, ctx: &mut Context<Self>) {
        self.pending.push((tenant_id, write));
        if self.pending.len() >= self.settings.batch_max {
            self.flush(ctx);
        } else if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(
                Duration::from_millis(self.settings.batch_window_ms),
                |this, ctx| this.flush(ctx),
            );
        }
    }

    /// Writes the pending batch (blocking the mailbox until it commits), then publishes.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let tenants: HashMap<i64, i64> = batch
            .iter()
            .map(|(tenant, write)| match write {
                ChatWrite::Message { row, .. } => (row.device_id, *tenant),
                ChatWrite::Ack { device_id, .. } => (*device_id, *tenant),
            })
            .collect();
        let missing: Vec<i64> = tenants
            .values()
            .filter(|t| !self.zones.contains_key(t))
            .copied()
            .collect();
        let (live, receipts) = committable(&batch);
        let db = self.db.clone();
        let store_enabled = self.settings.storage;
        let mut writes: Vec<ChatWrite> = batch.into_iter().map(|(_, w)| w).collect();
        let media = self.media.clone();
        let work = async move {
            if store_enabled {
                writes = save_media(media, writes).await;
            }
            let mut zones = Vec::new();
            for tenant_id in missing {
                if let Ok(tenant) = accounts::get_tenant(&db, tenant_id).await {
                    zones.push((tenant_id, tenant.time_zone.parse::<Tz>().unwrap_or(Tz::UTC)));
                }
            }
            let outcome = if store_enabled {
                store::write_batch(&db, writes).await
            } else {
                Ok(unstored(writes))
            };
            (zones, outcome)
        };
        ctx.wait(work.into_actor(self).map(move |(zones, outcome), this, _| {
            this.zones.extend(zones);
            match outcome {
                Ok(outcome) => {
                    let inbound = outcome
                        .stored
                        .iter()
                        .map(|(message, _)| message)
                        .filter(|m| live.contains(&(m.device_id, m.wa_id.clone())))
                        .map(|m| Inbound {
                            tenant_id: m.tenant_id,
                            device_id: m.device_id,
                            sender: m.sender_jid.clone(),
                            text: m.body.clone(),
                        })
                        .collect();
                    this.publish(outcome, &tenants);
                    let committed = ChatCommitted { inbound, receipts };
                    // A batch of only our own sends (a campaign's mirror) has nothing to tell.
                    if !committed.inbound.is_empty() || !committed.receipts.is_empty() {
                        for listener in &this.listeners {
                            listener.do_send(committed.clone());
                        }
                    }
                }
                Err(err) => tracing::error!(error = %err, "cannot store chat batch"),
            }
        }));
    }

    /// Announces a committed batch.
    fn publish(&self, outcome: BatchOutcome, tenants: &HashMap<i64, i64>) {
        let now = Utc::now();
        let mut chats: BTreeMap<i64, (Chat, i64)> = BTreeMap::new();
        for (message, chat) in outcome.stored {
            let tenant_id = message.tenant_id;
            let zone = self.zones.get(&tenant_id).copied().unwrap_or(Tz::UTC);
            let view = message_view(&message, &chat.jid, now, zone);
            self.announce(tenant_id, message.device_id, "NEW_MESSAGE", json!(view));
            chats.insert(chat.id, (chat, tenant_id));
        }
        for (chat, tenant_id) in chats.into_values() {
            let zone = self.zones.get(&tenant_id).copied().unwrap_or(Tz::UTC);
            let device_id = chat.device_id;
            self.announce(
                tenant_id,
                device_id,
                "CHAT_UPDATED",
                json!(chat_view(&chat, now, zone)),
            );
        }
        for (device_id, ids, status) in outcome.acks {
            if let Some(tenant_id) = tenants.get(&device_id) {
                self.announce(
                    *tenant_id,
                    device_id,
                    "MESSAGE_ACK",
                    json!({ "device_id": device_id, "ids": ids, "status": status }),
                );
            }
        }
    }

    /// Publishes one event on `messages/<device_id>`.
    fn announce(&self, tenant_id: i64, device_id: i64, event: &str, data: serde_json::Value) {
        self.hub.do_send(HubEvent {
            tenant_id,
            topic: Topic::Messages(device_id),
            device_id: Some(device_id),
            event: event.to_string(),
            data,
            ts: Utc::now(),
        });
    }
}

/// What of a batch its listeners hear about after the commit: the live inbound messages (by
/// device and id; a live inbound message is the one that counts as unread) and every receipt.
fn committable(batch: &[(i64, ChatWrite)]) -> (HashSet<(i64, String)>, Vec<CommittedReceipt>) {
    let mut live = HashSet::new();
    let mut receipts = Vec::new();
    for (tenant_id, write) in batch {
        match write {
            ChatWrite::Message {
                unread: true, row, ..
            } => {
                live.insert((row.device_id, row.wa_id.clone()));
            }
            ChatWrite::Message { .. } => {}
            ChatWrite::Ack {
                device_id,
                wa_ids,
                status,
            } => receipts.push(CommittedReceipt {
                tenant_id: *tenant_id,
                device_id: *device_id,
                message_ids: wa_ids.clone(),
                status,
            }),
        }
    }
    (live, receipts)
}

/// Stores the media of a batch's messages (on a blocking thread) and records their hashes; a
/// file that cannot be written leaves the message without media rather than losing it.
async fn save_media(media: MediaStore, writes: Vec<ChatWrite>) -> Vec<ChatWrite> {
    let saved = tokio::task::spawn_blocking(move || {
        writes
            .into_iter()
            .map(|mut write| {
                if let ChatWrite::Message { row, media: data, .. } = &mut write {
                    if let Some(bytes) = data.take() {
                        match media.save(&bytes) {
                            Ok(sha) => row.media_sha256 = Some(sha),
                            Err(err) => tracing::error!(error = %err, dir = %media.dir().display(), "cannot store media"),
                        }
                    }
                }
                write
            })
            .collect::<Vec<_>>()
    })
    .await;
    saved.unwrap_or_default()
}

/// With storage off, a batch is announced as is (no ids from the database, no dedup).
fn unstored(writes: Vec<ChatWrite>) -> BatchOutcome {
    let now = Utc::now().naive_utc();
    let mut outcome = BatchOutcome::default();
    for write in writes {
        match write {
            ChatWrite::Message {
                chat_jid,
                chat_name,
                unread,
                row,
                ..
            } => {
                let chat = Chat {
                    id: 0,
                    tenant_id: row.tenant_id,
                    device_id: row.device_id,
                    jid: chat_jid,
                    name: chat_name,
                    last_message_text: row.body.clone(),
                    last_message_at: Some(row.sent_at),
                    unread_count: i64::from(unread),
                    created_at: now,
                    updated_at: now,
                };
                let message = StoredMessage {
                    id: 0,
                    tenant_id: row.tenant_id,
                    device_id: row.device_id,
                    chat_id: 0,
                    wa_id: row.wa_id,
                    sender_jid: row.sender_jid,
                    sender_name: row.sender_name,
                    from_me: row.from_me,
                    body: row.body,
                    media_mime: row.media_mime,
                    media_size: row.media_size,
                    media_sha256: row.media_sha256,
                    status: row.status,
                    sent_at: row.sent_at,
                    created_at: now,
                };
                outcome.stored.push((message, chat));
            }
            ChatWrite::Ack {
                device_id,
                wa_ids,
                status,
            } => outcome.acks.push((device_id, wa_ids, status)),
        }
    }
    outcome
}

impl Actor for ChatSync {
    type Context = Context<Self>;
}

impl Handler<RecordMessages> for ChatSync {
    type Result = ();

    fn handle(&mut self, msg: RecordMessages, ctx: &mut Context<Self>) {
        let now = Utc::now().naive_utc();
        for message in msg.messages {
            let from_me = message.from_me;
            let write = ChatWrite::Message {
                media: message.media.as_ref().map(|m| m.data.clone()),
                chat_name: (!from_me).then(|| message.push_name.clone()).flatten(),
                unread: !from_me && !msg.history,
                chat_jid: message.chat.clone(),
                row: Box::new(NewMessage {
                    tenant_id: msg.tenant_id,
                    device_id: msg.device_id,
                    chat_id: 0,
                    wa_id: message.id,
                    sender_jid: message.sender,
                    sender_name: message.push_name,
                    from_me,
                    body: message.text,
                    media_mime: message.media.as_ref().map(|m| m.mime.clone()),
                    media_size: message.media.as_ref().map(|m| m.data.len() as i64),
                    media_sha256: None,
                    status: if from_me { "sent" } else { "received" }.to_string(),
                    sent_at: message.timestamp.naive_utc(),
                    created_at: now,
                }),
            };
            self.push(msg.tenant_id, write, ctx);
        }
    }
}

impl Handler<RecordReceipt> for ChatSync {
    type Result = ();

    fn handle(&mut self, msg: RecordReceipt, ctx: &mut Context<Self>) {
        let status = match msg.receipt.kind {
            // Recorded as sent when the send call returned; the server's ack adds nothing.
            ReceiptKind::Sent => return,
            ReceiptKind::Failed => "failed",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        };
        let write = ChatWrite::Ack {
            device_id: msg.device_id,
            wa_ids: msg.receipt.message_ids,
            status,
        };
        self.push(msg.tenant_id, write, ctx);
    }
}
