//! `ChatSync`: mirrors chat traffic into the database in batches and announces it after commit.
//!
//! Handles `RecordMessages` and `RecordReceipt` from device actors (and `TenantZoneChanged`
//! from the tenant route: its cache of tenant zones follows the change). Buffers records for at
//! most `chat.batch_window_ms` (or `chat.batch_max` records), writes the batch in one transaction
//! (a message id already stored changes nothing, so replays and history syncs never duplicate),
//! then publishes `NEW_MESSAGE`, `CHAT_UPDATED` and `MESSAGE_ACK` on `messages/<device_id>`.
//! Batches are written one after another, in arrival order, with the mailbox open: records
//! that come in during a commit form the next batch, so a busy mirror writes bigger batches
//! instead of holding its senders back.
//!
//! Nothing it accepted is dropped: a batch the database refuses goes back to the front of the
//! [`MirrorQueue`] and is retried with backoff (0.1 s doubling to 5 s). The queue is bounded by
//! `chat.queue_max`; past it, a record message is answered only once a commit made room, and
//! device actors await that answer before reading more from their sessions (backpressure).
//! This cannot deadlock: the mirror waits only for the database, never for a device actor.
//!
//! Runs under an `actix::Supervisor`. Its [`Beacon`] is down while batches fail, and after
//! [`RESTART_AFTER_FAILURES`] failures in a row it stops itself: the restart drops its caches
//! (tenant time zones) and resumes retrying after the backoff; the queue survives the restart.
//!
//! After each commit it also tells its listeners what the batch committed, in one
//! [`ChatCommitted`] per flush: the broadcast side reacts to replies, opt-out keywords and
//! receipts from there. The mirror itself knows no campaign, sequence or opt-out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use chrono_tz::Tz;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use serde_json::json;

use super::batch::{committable, save_media, storable, storable_change, unstored};
use super::identity::LidPhone;
use super::media::MediaStore;
use super::messages::{
    ChatCommitted, CommittedReceipt, Drain, Inbound, RecordChange, RecordMessages, RecordReceipt,
    TenantZoneChanged,
};
use super::model::Chat;
use super::model::{cut_chars, Detail, MAX_FILE_NAME_CHARS, MAX_QUOTE_CHARS};
use super::queue::{MirrorQueue, TenantWrite};
use super::store::{self, BatchOutcome, ChatWrite, NewMessage};
use super::{chat_view, message_view};
use crate::auth::store as accounts;
use crate::config::ChatSettings;
use crate::db::{Db, DbError};
use crate::hub::{Hub, HubEvent, Topic};
use crate::metrics::Beacon;
use crate::whatsapp::{ReceiptKind, WaMessage};

/// First retry delay after a failed batch.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Failed batches in a row after which the mirror restarts itself.
pub const RESTART_AFTER_FAILURES: u32 = 3;

/// Collectors of the chat mirror.
#[derive(Clone)]
pub struct ChatMetrics {
    /// `wafleet_chat_queue`: records waiting for a commit.
    pub queued: IntGauge,
    /// `wafleet_chat_failed_batches_total`: batches the database refused (and that were kept).
    pub failed_batches: IntCounter,
    /// `wafleet_chat_batch_seconds`: time to write one committed batch (files and rows).
    pub batch_seconds: Histogram,
    /// `wafleet_receipts_total{status}`: messages whose receipt (`delivered`, `read`, `failed`)
    /// the mirror committed.
    pub receipts: IntCounterVec,
}

impl ChatMetrics {
    /// Creates and registers the collectors.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let queued = IntGauge::new("chat_queue", "Chat records waiting for a commit")?;
        let failed_batches = IntCounter::new(
            "chat_failed_batches_total",
            "Chat batches the database refused; they stay queued and are retried",
        )?;
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chat_batch_seconds",
                "Seconds to write one committed chat batch (files and rows)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        )?;
        let receipts = IntCounterVec::new(
            Opts::new(
                "receipts_total",
                "Sent messages whose receipt the chat mirror committed, by status",
            ),
            &["status"],
        )?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(failed_batches.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        registry.register(Box::new(receipts.clone()))?;
        Ok(Self {
            queued,
            failed_batches,
            batch_seconds,
            receipts,
        })
    }
}

/// What the chat mirror reports: its collectors and its liveness beacon.
pub struct ChatObserver {
    /// Collectors.
    pub metrics: ChatMetrics,
    /// Up while batches commit.
    pub beacon: Beacon,
}

/// The chat mirror.
pub struct ChatSync {
    db: Db,
    media: MediaStore,
    hub: Addr<Hub>,
    settings: ChatSettings,
    /// Who hears what each flush committed.
    listeners: Vec<Recipient<ChatCommitted>>,
    /// Records waiting for a commit (and senders waiting for room).
    queue: MirrorQueue,
    /// The scheduled flush, if any.
    timer: Option<SpawnHandle>,
    /// A batch is being written.
    flushing: bool,
    /// Batches refused in a row.
    failures: u32,
    /// Tenant time zones, for time labels.
    zones: HashMap<i64, Tz>,
    observer: ChatObserver,
    /// Who waits for the queue to be empty ([`Drain`]).
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ChatSync {
    /// A chat mirror writing to `db`, announcing on `hub`, and telling `listeners` what each
    /// flush committed.
    pub fn new(
        db: Db,
        hub: Addr<Hub>,
        settings: ChatSettings,
        listeners: Vec<Recipient<ChatCommitted>>,
        observer: ChatObserver,
    ) -> Self {
        Self {
            db,
            media: MediaStore::new(settings.media_dir.clone()),
            hub,
            queue: MirrorQueue::new(settings.queue_max),
            settings,
            listeners,
            timer: None,
            flushing: false,
            failures: 0,
            zones: HashMap::new(),
            observer,
            drained: Vec::new(),
        }
    }

    /// Queues one sender's records and arranges a flush; the answer resolves once they are
    /// queued (at once, unless the queue is full).
    fn enqueue(&mut self, writes: Vec<TenantWrite>, ctx: &mut Context<Self>) -> ResponseFuture<()> {
        let parked = self.queue.offer(writes);
        self.observer.metrics.queued.set(self.queue.held() as i64);
        if self.failures > 0 {
            // A retry is scheduled; it writes these too.
        } else if self.queue.len() >= self.settings.batch_max {
            self.flush(ctx);
        } else {
            self.schedule(Duration::from_millis(self.settings.batch_window_ms), ctx);
        }
        match parked {
            None => Box::pin(async {}),
            Some(admitted) => Box::pin(async move {
                let _ = admitted.await;
            }),
        }
    }

    /// Flushes after `delay`, unless a flush is already scheduled.
    fn schedule(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if self.timer.is_none() {
            self.timer = Some(ctx.run_later(delay, |this, ctx| {
                this.timer = None;
                this.flush(ctx);
            }));
        }
    }

    /// The delay before the next retry.
    fn retry_delay(&self) -> Duration {
        let exponent = self.failures.saturating_sub(1).min(16);
        RETRY_MIN.saturating_mul(1 << exponent).min(RETRY_MAX)
    }

    /// Writes the oldest batch, then publishes. The mailbox stays open meanwhile: records that
    /// come in queue for the next batch (the batch under way still counts against the bound).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = self.queue.take_batch(self.settings.batch_max);
        let tenants: HashMap<i64, i64> = batch
            .iter()
            .map(|(tenant, write)| match write {
                ChatWrite::Message { row, .. } => (row.device_id, *tenant),
                ChatWrite::Ack { device_id, .. } | ChatWrite::Change { device_id, .. } => {
                    (*device_id, *tenant)
                }
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
        let tenant_of: Vec<i64> = batch.iter().map(|(tenant, _)| *tenant).collect();
        let mut writes: Vec<ChatWrite> = batch.into_iter().map(|(_, w)| w).collect();
        let media = self.media.clone();
        let started = std::time::Instant::now();
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
                // Kept until the commit: a refused batch is queued again as it was.
                store::write_batch(&db, writes.clone())
                    .await
                    .map_err(|err| (err, writes))
            } else {
                Ok(unstored(writes))
            };
            (zones, outcome)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |(zones, outcome), this, ctx| {
                    this.flushing = false;
                    for (tenant_id, zone) in zones {
                        // A zone change heard during the write is newer than what it read.
                        this.zones.entry(tenant_id).or_insert(zone);
                    }
                    match outcome {
                        Ok(outcome) => {
                            let metrics = &this.observer.metrics;
                            metrics
                                .batch_seconds
                                .observe(started.elapsed().as_secs_f64());
                            for receipt in &receipts {
                                metrics
                                    .receipts
                                    .with_label_values(&[receipt.status])
                                    .inc_by(receipt.message_ids.len() as u64);
                            }
                            this.committed(outcome, &tenants, &live, receipts);
                            this.after_commit(ctx);
                        }
                        Err((err, writes)) => {
                            let batch = tenant_of.into_iter().zip(writes).collect();
                            this.refused(err, batch, ctx);
                        }
                    }
                }),
        );
    }

    /// A batch committed: publish it and tell the listeners.
    fn committed(
        &self,
        outcome: BatchOutcome,
        tenants: &HashMap<i64, i64>,
        live: &HashSet<(i64, String)>,
        receipts: Vec<CommittedReceipt>,
    ) {
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
        self.publish(outcome, tenants);
        let committed = ChatCommitted { inbound, receipts };
        // A batch of only our own sends (a campaign's mirror) has nothing to tell.
        if !committed.inbound.is_empty() || !committed.receipts.is_empty() {
            for listener in &self.listeners {
                listener.do_send(committed.clone());
            }
        }
    }

    /// After a commit: up again, parked senders admitted, the rest flushed soon (at once when
    /// a full batch or a drain waits).
    fn after_commit(&mut self, ctx: &mut Context<Self>) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "chat mirror writes again");
        }
        self.failures = 0;
        self.observer.beacon.up();
        self.queue.committed();
        self.queue.admit_parked();
        self.observer.metrics.queued.set(self.queue.held() as i64);
        if self.queue.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        } else if !self.drained.is_empty() || self.queue.len() >= self.settings.batch_max {
            // Not `schedule`: a window timer set while the batch was written would hold it.
            self.flush(ctx);
        } else {
            self.schedule(Duration::from_millis(self.settings.batch_window_ms), ctx);
        }
    }

    /// A batch was refused: queue it again, retry after the backoff, and restart after too
    /// many failures in a row.
    fn refused(&mut self, err: DbError, batch: Vec<TenantWrite>, ctx: &mut Context<Self>) {
        self.failures = self.failures.saturating_add(1);
        self.observer.beacon.down();
        self.observer.metrics.failed_batches.inc();
        let records = batch.len();
        self.queue.put_back(batch);
        self.observer.metrics.queued.set(self.queue.held() as i64);
        let retry = self.retry_delay();
        tracing::error!(
            error = %err,
            records,
            queued = self.queue.len(),
            parked = self.queue.parked(),
            failures = self.failures,
            retry_ms = retry.as_millis() as u64,
            "cannot store chat batch; kept for a retry"
        );
        if self.failures.is_multiple_of(RESTART_AFTER_FAILURES) {
            tracing::warn!(
                failures = self.failures,
                "chat mirror restarts after failing batches"
            );
            ctx.stop();
        } else {
            self.schedule(retry, ctx);
        }
    }

    /// Announces a committed batch.
    fn publish(&self, outcome: BatchOutcome, tenants: &HashMap<i64, i64>) {
        let now = Utc::now();
        // First, so a page moves an open LID chat to the phone's before that chat's news.
        for (tenant_id, device_id, jid, merged_into) in &outcome.merged {
            let data = json!({ "jid": jid, "merged_into": merged_into });
            self.announce(*tenant_id, *device_id, "CHAT_REMOVED", data);
        }
        let mut chats: BTreeMap<i64, (Chat, i64)> = BTreeMap::new();
        for (message, chat) in outcome.stored {
            let tenant_id = message.tenant_id;
            let zone = self.zones.get(&tenant_id).copied().unwrap_or(Tz::UTC);
            let view = message_view(&message, &chat.jid, &[], now, zone);
            self.announce(tenant_id, message.device_id, "NEW_MESSAGE", json!(view));
            chats.insert(chat.id, (chat, tenant_id));
        }
        for applied in outcome.changed {
            let tenant_id = applied.message.tenant_id;
            let zone = self.zones.get(&tenant_id).copied().unwrap_or(Tz::UTC);
            let view = message_view(
                &applied.message,
                &applied.chat.jid,
                &applied.reactions,
                now,
                zone,
            );
            let mut data = json!(view);
            data["change"] = json!(applied.change);
            self.announce(
                tenant_id,
                applied.message.device_id,
                "MESSAGE_UPDATED",
                data,
            );
            if applied.preview_changed {
                chats.insert(applied.chat.id, (applied.chat, tenant_id));
            }
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

impl Actor for ChatSync {
    type Context = Context<Self>;

    /// Up unless batches are failing; a restart picks the retries up after the backoff.
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.failures == 0 {
            self.observer.beacon.up();
        } else if !self.queue.is_empty() {
            self.schedule(self.retry_delay(), ctx);
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.observer.beacon.down();
        Running::Stop
    }
}

impl Supervised for ChatSync {
    /// The queue and the failure count survive; scheduled work and the zone cache do not.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.observer.beacon.restarting();
        self.timer = None;
        self.flushing = false;
        self.zones.clear();
    }
}

impl Handler<Drain> for ChatSync {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        if self.queue.is_empty() && !self.flushing {
            return Box::pin(async {});
        }
        tracing::info!(queued = self.queue.len(), "writing the chat mirror's queue");
        let (done, empty) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        if self.failures == 0 {
            self.flush(ctx);
        }
        Box::pin(async move {
            let _ = empty.await;
        })
    }
}

impl Handler<RecordMessages> for ChatSync {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RecordMessages, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now().naive_utc();
        let mut writes = Vec::with_capacity(msg.messages.len());
        for message in msg.messages {
            let message = storable(message);
            let from_me = message.from_me;
            let write = ChatWrite::Message {
                learned: LidPhone::of_message(&message),
                // Not downloaded: the message says what it carried, there is no file.
                media: message
                    .media
                    .as_ref()
                    .filter(|m| !m.data.is_empty())
                    .map(|m| m.data.clone()),
                chat_name: chat_name_of(&message),
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
                    kind: message.kind.as_str().to_string(),
                    file_name: message
                        .file_name
                        .as_deref()
                        .map(|name| cut_chars(name, MAX_FILE_NAME_CHARS)),
                    detail: Detail::of(message.location.as_ref(), message.contact.as_ref())
                        .and_then(|detail| serde_json::to_string(&detail).ok()),
                    quoted_id: message.quoted.as_ref().map(|q| q.id.clone()),
                    quoted_sender: message.quoted.as_ref().and_then(|q| q.sender.clone()),
                    quoted_text: message
                        .quoted
                        .as_ref()
                        .and_then(|q| q.text.as_deref())
                        .map(|text| cut_chars(text, MAX_QUOTE_CHARS)),
                    media_ref: message.media.as_ref().and_then(|m| m.reference.clone()),
                }),
            };
            writes.push((msg.tenant_id, write));
        }
        self.enqueue(writes, ctx)
    }
}

/// The name a message gives its chat: a group's own title, or the sender's profile name in a
/// one-to-one chat they wrote in (never a group's last speaker's name).
fn chat_name_of(message: &WaMessage) -> Option<String> {
    if message.chat.ends_with("@g.us") {
        return message.group_name.clone();
    }
    (!message.from_me)
        .then(|| message.push_name.clone())
        .flatten()
}

impl Handler<RecordChange> for ChatSync {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RecordChange, ctx: &mut Context<Self>) -> Self::Result {
        let change = storable_change(msg.change);
        let write = ChatWrite::Change {
            tenant_id: msg.tenant_id,
            device_id: msg.device_id,
            learned: LidPhone::of_change(&change),
            change: Box::new(change),
        };
        self.enqueue(vec![(msg.tenant_id, write)], ctx)
    }
}

impl Handler<RecordReceipt> for ChatSync {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RecordReceipt, ctx: &mut Context<Self>) -> Self::Result {
        let status = match msg.receipt.kind {
            // Recorded as sent when the send call returned; the server's ack adds nothing.
            ReceiptKind::Sent => return Box::pin(async {}),
            ReceiptKind::Failed => "failed",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        };
        let write = ChatWrite::Ack {
            device_id: msg.device_id,
            wa_ids: msg.receipt.message_ids,
            status,
        };
        self.enqueue(vec![(msg.tenant_id, write)], ctx)
    }
}

impl Handler<TenantZoneChanged> for ChatSync {
    type Result = ();

    /// Later events of the tenant are labelled in the new zone. A flush under way that read the
    /// old zone keeps this one over what it read, so the new zone is the last word.
    fn handle(&mut self, msg: TenantZoneChanged, _: &mut Context<Self>) {
        self.zones.insert(msg.tenant_id, msg.zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_is_named_by_its_contact_or_its_group_title() {
        let message = |chat: &str, from_me: bool| WaMessage {
            chat: chat.into(),
            from_me,
            push_name: Some("Aisyah".into()),
            ..WaMessage::default()
        };
        let contact = "60123456789@s.whatsapp.net";
        assert_eq!(
            chat_name_of(&message(contact, false)).as_deref(),
            Some("Aisyah")
        );
        assert_eq!(chat_name_of(&message(contact, true)), None);
        let group = "120363000000000000@g.us";
        assert_eq!(chat_name_of(&message(group, false)), None);
        let titled = WaMessage {
            group_name: Some("Sales team".into()),
            ..message(group, false)
        };
        assert_eq!(chat_name_of(&titled).as_deref(), Some("Sales team"));
    }
}
