//! `Replies`: what the broadcast side does with the chat mirror's commits.
//!
//! Handles [`ChatCommitted`], sent by `ChatSync` once per flush after the batch is stored.
//! For each one, in arrival order (the mailbox waits for the previous batch, so two commits
//! never race each other's transactions):
//! 1. receipts move the outbox rows of the messages they name (`sent → delivered → read`,
//!    `failed`), in one transaction for the whole batch;
//! 2. inbound texts that are one of the tenant's opt-out keywords put their sender on the
//!    opt-out list (which also stops the sender's open sequence enrolments);
//! 3. every live inbound message counts as a reply to the sender's enrolments on that device:
//!    the rule of the step the lead last got (or the sequence's stop-on-reply) keeps them
//!    going, stops them, or moves the lead to another sequence.
//!
//! Chat does not import this module: it only announces; this listens. A commit whose effects
//! fail (a deadlock with a sender, a lock timeout, the database away) is applied again after a
//! growing delay, all three effects being idempotent; the [`Beacon`] is down meanwhile. Only an
//! error that outlasts [`GIVE_UP_AFTER`] attempts while the database answers is logged and
//! dropped, so one poisoned batch cannot stop every later one. Runs under an
//! `actix::Supervisor`; it holds no state, so a restart only lowers and raises its beacon.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broadcast::events;
use crate::broadcast::leads::opt_out;
use crate::broadcast::outbox::model::{OutboxStatus, Receipt};
use crate::broadcast::outbox::store as outbox;
use crate::broadcast::sequence::store::{self as sequence_store, Reply};
use crate::chat::messages::{ChatCommitted, Inbound};
use crate::config::BroadcastSettings;
use crate::db::{Db, DbError};
use crate::device::backoff::Backoff;
use crate::hub::Hub;
use crate::metrics::Beacon;
use crate::phone;

/// Delays before a failed commit is applied again: 0.1 s doubling up to 5 s.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// Attempts after which a commit failing while the database answers is dropped (about half a
/// minute of retries); an unavailable database is waited for without limit.
pub const GIVE_UP_AFTER: u32 = 12;

/// Applies committed chat traffic to the outbox, the opt-out list and sequence enrolments.
pub struct Replies {
    db: Db,
    /// Opt-out keywords are tenant settings over these defaults.
    defaults: BroadcastSettings,
    /// Where opt-outs and stopped enrolments are announced.
    hub: Addr<Hub>,
    /// Up while it runs.
    beacon: Beacon,
}

impl Replies {
    /// A listener over `db` announcing on `hub`; `beacon` says it runs.
    pub fn new(db: Db, defaults: BroadcastSettings, hub: Addr<Hub>, beacon: Beacon) -> Self {
        Self {
            db,
            defaults,
            hub,
            beacon,
        }
    }
}

impl Actor for Replies {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.beacon.up();
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for Replies {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
    }
}

impl Replies {
    /// Attempt number `attempts + 1` to apply a commit; on failure the beacon goes down and,
    /// unless it is time to give up (see the module doc), another attempt follows a growing
    /// delay.
    fn attempt(&self, msg: Arc<ChatCommitted>, attempts: u32) -> ResponseActFuture<Self, ()> {
        let (db, defaults, committed) = (self.db.clone(), self.defaults.clone(), msg.clone());
        let hub = self.hub.clone();
        async move { apply(&db, &defaults, &hub, &committed).await }
            .into_actor(self)
            .then(move |result, this, _| {
                let attempts = attempts + 1;
                let Err(err) = result else {
                    if attempts > 1 {
                        tracing::info!(attempts, "committed chat traffic applied after retries");
                        this.beacon.up();
                    }
                    return fut::ready(()).boxed_local();
                };
                let unavailable = matches!(err, DbError::Unavailable(_));
                if attempts >= GIVE_UP_AFTER && !unavailable {
                    tracing::error!(
                        error = %err,
                        attempts,
                        inbound = msg.inbound.len(),
                        receipts = msg.receipts.len(),
                        "cannot apply committed chat traffic; dropped"
                    );
                    this.beacon.up();
                    return fut::ready(()).boxed_local();
                }
                this.beacon.down();
                let delay = RETRY.nominal(attempts);
                tracing::warn!(
                    error = %err,
                    attempts,
                    retry_ms = delay.as_millis() as u64,
                    inbound = msg.inbound.len(),
                    receipts = msg.receipts.len(),
                    "cannot apply committed chat traffic; retrying"
                );
                tokio::time::sleep(delay)
                    .into_actor(this)
                    .then(move |(), this, _| this.attempt(msg, attempts))
                    .boxed_local()
            })
            .boxed_local()
    }
}

impl Handler<ChatCommitted> for Replies {
    /// Atomic: the next commit waits until this one is applied (or given up).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ChatCommitted, _: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(self.attempt(Arc::new(msg), 0))
    }
}

/// The three effects of one commit, in order.
async fn apply(
    db: &Db,
    defaults: &BroadcastSettings,
    hub: &Addr<Hub>,
    committed: &ChatCommitted,
) -> Result<(), DbError> {
    let receipts: Vec<Receipt> = committed
        .receipts
        .iter()
        .filter_map(|r| {
            Some(Receipt {
                device_id: r.device_id,
                wa_ids: r.message_ids.clone(),
                status: OutboxStatus::parse(r.status)?,
            })
        })
        .collect();
    if !receipts.is_empty() {
        outbox::apply_receipts(db, &receipts).await?;
    }
    for message in &committed.inbound {
        let Some(text) = message
            .text
            .as_deref()
            .filter(|t| opt_out::may_be_keyword(t))
        else {
            continue;
        };
        let Some(sender) = phone::phone_of_jid(&message.sender) else {
            continue;
        };
        if opt_out::apply_keyword(db, defaults, message.tenant_id, sender, text).await? {
            let keyword = text.trim().to_uppercase();
            events::opted_out(hub, message.tenant_id, sender, "keyword", Some(&keyword));
        }
    }
    for ((tenant_id, device_id), replies) in replies_by_device(&committed.inbound) {
        let ended = sequence_store::record_replies(db, tenant_id, device_id, &replies).await?;
        if !ended.is_empty() {
            tracing::info!(
                device_id,
                ended = ended.len(),
                "sequence enrolments ended by a reply"
            );
        }
        for (enrollment, decision) in &ended {
            events::enrollment_ended(hub, enrollment, "stopped", Some(&decision.reason()));
        }
    }
    Ok(())
}

/// The replies of live inbound messages, per tenant and device: each sender's phone once, with
/// the texts of its messages.
fn replies_by_device(inbound: &[Inbound]) -> BTreeMap<(i64, i64), Vec<Reply>> {
    let mut grouped: BTreeMap<(i64, i64), Vec<Reply>> = BTreeMap::new();
    for message in inbound {
        if let Some(phone) = phone::phone_of_jid(&message.sender) {
            let replies = grouped
                .entry((message.tenant_id, message.device_id))
                .or_default();
            let text = message.text.clone().unwrap_or_default();
            match replies.iter_mut().find(|r| r.phone == phone) {
                Some(reply) => reply.texts.push(text),
                None => replies.push(Reply {
                    phone: phone.to_string(),
                    texts: vec![text],
                }),
            }
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(device_id: i64, sender: &str) -> Inbound {
        Inbound {
            tenant_id: 1,
            device_id,
            sender: sender.to_string(),
            text: Some("hi".into()),
        }
    }

    #[test]
    fn replies_are_grouped_per_device_once_per_phone_and_only_from_people() {
        let grouped = replies_by_device(&[
            inbound(1, "60123456789@s.whatsapp.net"),
            inbound(1, "60123456789:3@s.whatsapp.net"),
            inbound(2, "60123456789@s.whatsapp.net"),
            inbound(1, "120363000000@g.us"),
        ]);
        assert_eq!(grouped.len(), 2);
        let reply = |texts: &[&str]| Reply {
            phone: "60123456789".to_string(),
            texts: texts.iter().map(|t| t.to_string()).collect(),
        };
        assert_eq!(grouped[&(1, 1)], vec![reply(&["hi", "hi"])]);
        assert_eq!(grouped[&(1, 2)], vec![reply(&["hi"])]);
    }
}
