//! Retention: a background sweep deletes rows older than the `[retention]` settings allow,
//! every `retention.interval_hours`, the first a minute after start.
//!
//! Each table's owner does its own deleting (one owner per table); this module only decides
//! the cut-off times, runs the owners' chunked deletes until nothing old is left, and logs how
//! many rows went from which table:
//! - `messages` (by `sent_at`) with their `reactions`, and the preview text of chats whose last
//!   message went ([`crate::chat::store`]); media files stay on disk;
//! - `outbox` rows of campaigns finished, and of sequence messages sent or given up, before the
//!   cut-off; their counts move to `outbox_tallies`, so reports do not change
//!   ([`crate::broadcast::outbox::store`]);
//! - `audit_log` ([`crate::audit`]);
//! - `webhook_queue` rows delivered or given up ([`crate::webhooks::store`]);
//! - `stats_hourly` ([`crate::stats::store`]) and `device_events` ([`crate::device::store`]).
//!
//! Expired sign-in sessions have their own, more frequent sweep ([`crate::auth::purge`]).
//!
//! Every statement deletes at most [`CHUNK_ROWS`] rows and the sweep pauses briefly between
//! chunks, so SQLite's single write lock is never held long and other writers get their turn.
//! The time comes from the [`Clock`] (tests pass their own `now` to [`sweep`]).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::audit;
use crate::broadcast::outbox::store as outbox_store;
use crate::broadcast::sequence::model::enrollment_status;
use crate::chat::store as chat_store;
use crate::clock::Clock;
use crate::config::RetentionSettings;
use crate::db::{Db, DbError};
use crate::device::store as device_store;
use crate::stats;
use crate::webhooks::store as webhook_store;

/// Rows one statement deletes at most.
pub const CHUNK_ROWS: i64 = 5_000;

/// Pause between two chunks, so writers queued behind the sweep on SQLite's lock go first.
const CHUNK_PAUSE: Duration = Duration::from_millis(20);

/// Delay before the first sweep, so it does not compete with the fleet's boot.
const FIRST_SWEEP_DELAY: Duration = Duration::from_secs(60);

/// Rows one sweep deleted, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Chat messages.
    pub messages: usize,
    /// Reactions to those messages.
    pub reactions: usize,
    /// Chats whose preview text was cleared (the chats stay).
    pub chat_previews: usize,
    /// Outbox rows (their counts stay in `outbox_tallies`).
    pub outbox: usize,
    /// Audit log entries.
    pub audit_log: usize,
    /// Outbound webhook deliveries, delivered or given up.
    pub webhook_deliveries: usize,
    /// Hourly figures of the home page.
    pub stats: usize,
    /// Devices' history entries.
    pub device_history: usize,
}

/// Starts the sweeper on the current runtime (it runs until the runtime stops); nothing is
/// started when every limit is 0.
pub fn start(db: Db, settings: RetentionSettings, clock: Clock) {
    if !settings.any() {
        tracing::info!("retention: every limit is 0, nothing is ever deleted by age");
        return;
    }
    let every = Duration::from_secs(u64::from(settings.interval_hours.max(1)) * 3600);
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + FIRST_SWEEP_DELAY;
        let mut ticks = tokio::time::interval_at(first, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = sweep(&db, &settings, clock.now()).await {
                // What was deleted before the error stays deleted; the next sweep goes on.
                tracing::warn!(error = %err, "retention: sweep stopped early");
            }
        }
    });
}

/// One sweep as of `now`: deletes, table by table, what is older than its limit, and logs each
/// table's count.
pub async fn sweep(
    db: &Db,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Swept, DbError> {
    let mut swept = Swept::default();
    if let Some(cutoff) = cutoff(now, settings.messages_days) {
        loop {
            let (messages, reactions) =
                chat_store::delete_messages_before(db, cutoff, CHUNK_ROWS).await?;
            swept.messages += messages;
            swept.reactions += reactions;
            if (messages as i64) < CHUNK_ROWS {
                break;
            }
            tokio::time::sleep(CHUNK_PAUSE).await;
        }
        swept.chat_previews =
            in_chunks(|| chat_store::clear_previews_before(db, cutoff, CHUNK_ROWS)).await?;
        logged("messages", swept.messages);
        logged("reactions", swept.reactions);
        logged("chats (preview text)", swept.chat_previews);
    }
    if let Some(cutoff) = cutoff(now, settings.outbox_days) {
        let campaigns =
            in_chunks(|| outbox_store::retire_finished_campaign_rows(db, cutoff, CHUNK_ROWS))
                .await?;
        let steps = in_chunks(|| {
            outbox_store::retire_step_rows(db, cutoff, enrollment_status::ACTIVE, CHUNK_ROWS)
        })
        .await?;
        swept.outbox = campaigns + steps;
        logged("outbox", swept.outbox);
    }
    if let Some(cutoff) = cutoff(now, settings.webhooks_days) {
        swept.webhook_deliveries =
            in_chunks(|| webhook_store::delete_finished_before(db, cutoff, CHUNK_ROWS)).await?;
        logged("webhook_queue", swept.webhook_deliveries);
    }
    if let Some(cutoff) = cutoff(now, settings.audit_days) {
        swept.audit_log = in_chunks(|| audit::delete_before(db, cutoff, CHUNK_ROWS)).await?;
        logged("audit_log", swept.audit_log);
    }
    if let Some(cutoff) = cutoff(now, settings.stats_days) {
        swept.stats = in_chunks(|| stats::store::delete_before(db, cutoff, CHUNK_ROWS)).await?;
        logged("stats_hourly", swept.stats);
        swept.device_history =
            in_chunks(|| device_store::delete_history_before(db, cutoff, CHUNK_ROWS)).await?;
        logged("device_events", swept.device_history);
    }
    tracing::debug!(?swept, "retention: sweep done");
    Ok(swept)
}

/// `now` less `days`, or `None` for 0 (kept forever).
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<NaiveDateTime> {
    (days > 0).then(|| (now - chrono::Duration::days(i64::from(days))).naive_utc())
}

/// Runs `chunk` until it deletes fewer than [`CHUNK_ROWS`] rows; answers the total.
async fn in_chunks<F, Fut>(mut chunk: F) -> Result<usize, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, DbError>>,
{
    let mut total = 0;
    loop {
        let deleted = chunk().await?;
        total += deleted;
        if (deleted as i64) < CHUNK_ROWS {
            return Ok(total);
        }
        tokio::time::sleep(CHUNK_PAUSE).await;
    }
}

/// Logs a table's count when the sweep removed anything from it.
fn logged(table: &'static str, deleted: usize) {
    if deleted > 0 {
        tracing::info!(table, deleted, "retention: deleted old rows");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_forever() {
        let now = Utc::now();
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(
            cutoff(now, 30),
            Some((now - chrono::Duration::days(30)).naive_utc())
        );
    }
}
