//! A lane: one device sending one campaign's rows, one at a time, at the Throttle's pace.
//!
//! Each turn: reserve a slot → wait for it (a pause or cancel interrupts) → claim one due row
//! (lease) → skip it if the lead opted out → fill in `{greeting}` for the local time and record
//! the final text → show "typing…" → send with the row's stored message id → record the result. A crash anywhere leaves the row `sending` with a lease; after the
//! lease it is claimed again and re-sent under the same id, which WhatsApp (and the simulator)
//! deduplicate.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tokio::sync::watch;

use super::distribution::Distribution;
use super::engine::EngineDeps;
use super::error::EngineError;
use super::model::Campaign;
use crate::broadcast::attachment::{self, FileInfo, Prepared};
use crate::broadcast::greeting;
use crate::broadcast::health::{HealthDeps, JUDGE_AT_MOST_EVERY, JUDGE_EVERY};
use crate::broadcast::metrics::BroadcastMetrics;
use crate::broadcast::outbox::model::{Claimed, OutboxStatus};
use crate::broadcast::outbox::store;
use crate::broadcast::pacing::Pacing;
use crate::broadcast::settings as tenant_settings;
use crate::broadcast::throttle::{Confirm, Knows, Penalize, Reserve, Seed, Slot, Throttle};
use crate::chat::media::MediaStore;
use crate::db::{Db, DbError, Fence};
use crate::device::actor::DeviceActor;
use crate::device::messages::{DeviceError, SendMedia, SendText, SetTyping};
use crate::phone::jid_of;

/// What a running campaign tells its lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send.
    Run,
    /// Hold; claimed rows go back to pending.
    Pause,
    /// Stop for good; claimed rows are skipped.
    Cancel,
    /// This lane only: stop, claimed rows go back to pending (the device may no longer send
    /// for the campaign, e.g. its member creator lost the assignment).
    Withdraw,
}

/// What every lane of a campaign shares.
#[derive(Debug)]
pub struct Plan {
    /// Campaign.
    pub campaign_id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Effective pacing.
    pub pacing: Arc<Pacing>,
    /// The tenant's zone (quiet hours).
    pub time_zone: chrono_tz::Tz,
    /// The campaign's file, when it sends one (the row body is its caption).
    pub file: Option<Prepared>,
    /// Where rows with a picture of their own (sequence steps) find it.
    pub media: MediaStore,
    /// How long a claim holds a row.
    pub lease: Duration,
    /// Attempts before a row fails.
    pub max_attempts: i64,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Typical message length (the template's), for the typing time.
    pub chars: usize,
    /// A failed or rate-limited send ends the lane with [`LaneEnd::DeviceError`], so the
    /// device's share moves on (AI distribution); otherwise the device retries at its pace.
    pub leave_on_error: bool,
    /// Where send results are counted.
    pub metrics: BroadcastMetrics,
    /// Scores devices (at the start, every `JUDGE_EVERY` attempts at most every
    /// `JUDGE_AT_MOST_EVERY`, after failures) and
    /// quarantines low-scoring and rate-limited ones.
    pub health: HealthDeps,
}

/// Characters of a typical sequence message (typing time).
const TYPICAL_CHARS: usize = 120;

/// The plan every lane of `campaign` shares: its effective pacing (checked against the safe
/// bounds), zone, picture, leases and attempts.
pub async fn plan_for(deps: &EngineDeps, campaign: &Campaign) -> Result<Plan, EngineError> {
    let effective =
        tenant_settings::effective(&deps.db, &deps.broadcast, campaign.tenant_id).await?;
    let pacing = effective.pacing.with(&campaign.pacing_override());
    deps.broadcast
        .limits
        .check(&pacing)
        .map_err(EngineError::Invalid)?;
    let file = match &campaign.image_sha256 {
        Some(sha) => {
            let info = FileInfo::parse(campaign.attachment.as_deref());
            Some(
                attachment::load(&deps.media, sha, info.as_ref())
                    .await
                    .map_err(|e| EngineError::Invalid(format!("campaign file: {e}")))?,
            )
        }
        None => None,
    };
    let distribution = campaign.distribution();
    // A sequence's messages differ per step; typing time follows a typical message.
    let chars = match distribution {
        Distribution::Sequence => TYPICAL_CHARS,
        Distribution::Broadcast | Distribution::Ai { .. } => campaign.message.chars().count(),
    };
    Ok(Plan {
        campaign_id: campaign.id,
        tenant_id: campaign.tenant_id,
        pacing: Arc::new(pacing),
        time_zone: effective.time_zone,
        file,
        media: deps.media.clone(),
        lease: Duration::from_secs(deps.broadcast.lease_secs.max(1)),
        max_attempts: i64::from(deps.broadcast.max_attempts.max(1)),
        time_scale: deps.time_scale,
        chars,
        leave_on_error: distribution.leaves_on_error(),
        metrics: deps.metrics.clone(),
        health: HealthDeps {
            db: deps.db.clone(),
            hub: deps.hub.clone(),
            settings: deps.broadcast.health.clone(),
            time_scale: deps.time_scale,
        },
    })
}

/// Why a lane stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneEnd {
    /// No due rows are left for the device; `claimed` when the lane claimed rows before
    /// finding none (it sent, rather than found nothing to do at its start).
    Done {
        /// Whether the lane claimed any row.
        claimed: bool,
    },
    /// The device went offline or away; its rows wait or move (campaign setting).
    DeviceLost,
    /// A send failed and the plan leaves erroring devices out; its rows move.
    DeviceError(String),
    /// The device was quarantined (rate limited, or its health score fell); its rows move while
    /// it lasts.
    Quarantined,
    /// The campaign was cancelled or the engine is stopping.
    Stopped,
    /// The database failed; the engine retries the lane on its next tick.
    Failed(String),
}

/// One device's lane.
pub struct Lane {
    /// Database.
    pub db: Db,
    /// The campaign's plan.
    pub plan: Rc<Plan>,
    /// Device.
    pub device_id: i64,
    /// Whole simulated days since the device was linked.
    pub days_linked: u32,
    /// The device's actor.
    pub device: Addr<DeviceActor>,
    /// The Throttle.
    pub throttle: Addr<Throttle>,
    /// The lane's control channel (the campaign's control, or its own withdrawal).
    pub control: watch::Receiver<Control>,
    /// The device's lease on a PostgreSQL cluster: claims and finishes need it.
    pub fence: Option<Fence>,
}

/// What became of one send attempt.
enum Attempt {
    /// WhatsApp accepted it (or already had it: same id) at this moment.
    Sent(Instant),
    /// The recipient cannot get messages; do not retry.
    Rejected(String),
    /// Failed for now; try again later.
    Retry(String),
    /// WhatsApp asked the device to slow down for this long.
    RateLimited(Duration),
    /// The device is offline or gone.
    DeviceLost(String),
    /// A pause or cancel came first; nothing was sent.
    Interrupted,
}

/// Rows claimed per turn when unpaced (zero delays: benchmarks only); paced lanes claim one, so
/// a crash leaves at most one row per device to re-send.
const UNPACED_BATCH: i64 = 64;

impl Lane {
    /// Runs until the device has nothing left to send, is lost, or the campaign stops.
    pub async fn run(mut self) -> LaneEnd {
        if let Err(err) = self.seed_throttle().await {
            return LaneEnd::Failed(err);
        }
        // A device may have gone bad without a failed send (undelivered messages, dropped
        // connections): judged before its first send, and again every `JUDGE_EVERY` attempts
        // (at most every `JUDGE_AT_MOST_EVERY`).
        if self.judge_health().await {
            return LaneEnd::Quarantined;
        }
        let mut since_judged = 0;
        let mut judged_at = Instant::now();
        let mut claimed_any = false;
        let batch = if self.plan.pacing.max_delay_ms == 0 {
            UNPACED_BATCH
        } else {
            1
        };
        loop {
            if self.wait_while_paused().await != Control::Run {
                return LaneEnd::Stopped;
            }
            let Some(slot) = self.reserve().await else {
                return LaneEnd::Stopped;
            };
            if !self.sleep_until(typing_from(&slot)).await {
                continue;
            }
            let now = chrono::Utc::now().naive_utc();
            let lease_until = now + chrono::Duration::from_std(self.plan.lease).unwrap_or_default();
            let claimed = match store::claim(
                &self.db,
                self.plan.campaign_id,
                self.device_id,
                batch,
                now,
                lease_until,
                self.fence.as_ref(),
            )
            .await
            {
                Ok(rows) => rows,
                // The device moved to another node, which sends its rows now.
                Err(DbError::LeaseLost(_)) => return LaneEnd::DeviceLost,
                Err(err) => return LaneEnd::Failed(err.to_string()),
            };
            if claimed.is_empty() {
                return LaneEnd::Done {
                    claimed: claimed_any,
                };
            }
            claimed_any = true;
            since_judged += claimed.len();
            match self.send_batch(claimed, slot).await {
                Ok(None)
                    if since_judged >= JUDGE_EVERY
                        && judged_at.elapsed() >= JUDGE_AT_MOST_EVERY =>
                {
                    since_judged = 0;
                    judged_at = Instant::now();
                    if self.judge_health().await {
                        return LaneEnd::Quarantined;
                    }
                }
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(DbError::LeaseLost(_)) => return LaneEnd::DeviceLost,
                Err(err) => return LaneEnd::Failed(err.to_string()),
            }
        }
    }

    /// Asks the Throttle for the device's next slot (`None` when the Throttle is gone).
    async fn reserve(&self) -> Option<Slot> {
        self.throttle
            .send(Reserve {
                device_id: self.device_id,
                pacing: self.plan.pacing.clone(),
                days_linked: self.days_linked,
                time_zone: self.plan.time_zone,
                chars: self.plan.chars,
            })
            .await
            .ok()
    }

    /// Sends claimed rows, each in its own slot (the first one's is `first`), and records the
    /// results; rows not attempted go back. Returns how the lane must end, if it must.
    async fn send_batch(
        &mut self,
        rows: Vec<Claimed>,
        first: Slot,
    ) -> Result<Option<LaneEnd>, DbError> {
        let db = self.db.clone();
        let phones: Vec<String> = rows.iter().map(|r| r.phone.clone()).collect();
        let opted_out =
            crate::broadcast::leads::opt_out::opted_out(&db, self.plan.tenant_id, &phones).await?;
        let (skipped, rows): (Vec<Claimed>, Vec<Claimed>) =
            rows.into_iter().partition(|r| opted_out.contains(&r.phone));
        if !skipped.is_empty() {
            self.plan
                .metrics
                .sends
                .with_label_values(&["opted_out"])
                .inc_by(skipped.len() as u64);
            let ids: Vec<i64> = skipped.iter().map(|r| r.id).collect();
            let fence = self.fence.as_ref();
            store::finish(&db, &ids, OutboxStatus::Skipped, Some("opted out"), fence).await?;
        }
        let mut sent = Vec::with_capacity(rows.len());
        let mut next_slot = Some(first);
        let mut end = None;
        let mut rows = rows.into_iter();
        for mut row in rows.by_ref() {
            let slot = match next_slot.take() {
                Some(slot) => slot,
                None => match self.reserve().await {
                    Some(slot) if self.sleep_until(typing_from(&slot)).await => slot,
                    _ => {
                        self.give_back(&row, None).await?;
                        break;
                    }
                },
            };
            // `{greeting}` is decided now, at the send, and recorded before it.
            if let Some(body) = greeting::fill(&row.body, chrono::Utc::now(), self.plan.time_zone) {
                if !store::set_body(&db, row.id, &body).await? {
                    continue; // No longer this lane's row.
                }
                row.body = body;
            }
            let attempt = self.attempt(&row, &slot).await;
            let metrics = &self.plan.metrics;
            match attempt {
                Attempt::Sent(actual) => {
                    metrics.send("sent");
                    sent.push(row.id);
                    let _ = self.throttle.try_send(Confirm {
                        device_id: self.device_id,
                        reserved: slot.send_at,
                        actual,
                    });
                }
                Attempt::Rejected(reason) => {
                    metrics.send("rejected");
                    if self.fail(row.id, &reason).await? {
                        end = Some(LaneEnd::Quarantined);
                        break;
                    }
                }
                Attempt::Retry(reason) if row.attempts >= self.plan.max_attempts => {
                    metrics.send("failed");
                    if self.fail(row.id, &reason).await? {
                        end = Some(LaneEnd::Quarantined);
                        break;
                    }
                }
                Attempt::Retry(reason) if self.plan.leave_on_error => {
                    metrics.send("retry");
                    self.give_back(&row, Some(&reason)).await?;
                    end = Some(LaneEnd::DeviceError(reason));
                    break;
                }
                Attempt::Retry(reason) => {
                    metrics.send("retry");
                    self.give_back(&row, Some(&reason)).await?
                }
                Attempt::RateLimited(wait) => {
                    metrics.send("rate_limited");
                    self.throttle.do_send(Penalize {
                        device_id: self.device_id,
                        wait,
                    });
                    self.give_back(&row, Some("rate limited")).await?;
                    let health = &self.plan.health;
                    if let Err(err) = health
                        .rate_limited(self.plan.tenant_id, self.device_id)
                        .await
                    {
                        tracing::warn!(device_id = self.device_id, error = %err, "could not quarantine a rate-limited device");
                    }
                    end = Some(if self.plan.leave_on_error {
                        LaneEnd::DeviceError("rate limited by WhatsApp".into())
                    } else {
                        LaneEnd::Quarantined
                    });
                    break;
                }
                Attempt::DeviceLost(reason) => {
                    metrics.send("device_lost");
                    store::release(&db, row.id, Some(&reason)).await?;
                    end = Some(LaneEnd::DeviceLost);
                    break;
                }
                Attempt::Interrupted => {
                    self.give_back(&row, None).await?;
                    break;
                }
            }
        }
        if !sent.is_empty() {
            store::finish(&db, &sent, OutboxStatus::Sent, None, self.fence.as_ref()).await?;
        }
        for row in rows {
            self.give_back(&row, None).await?;
        }
        Ok(end)
    }

    /// Gives the Throttle this device's sends of the last (simulated) day once per process, so
    /// caps survive a restart.
    async fn seed_throttle(&self) -> Result<(), String> {
        let known = self
            .throttle
            .send(Knows {
                device_id: self.device_id,
                epoch: self.epoch(),
            })
            .await
            .unwrap_or(true);
        if known {
            return Ok(());
        }
        let day = Duration::from_secs_f64(86_400.0 / self.plan.time_scale);
        let since = chrono::Utc::now() - chrono::Duration::from_std(day).unwrap_or_default();
        let sent = store::device_sends_since(&self.db, self.device_id, since.naive_utc())
            .await
            .map_err(|e| e.to_string())?;
        // A row still claimed now, before this process sent anything for the device, was
        // claimed by a daemon that died (a graceful stop gives its rows back): it may have
        // reached WhatsApp at any moment up to now, so it counts as sent now. Without it the
        // first send after a crash can follow the lost one too closely.
        let in_flight = store::device_claimed(&self.db, self.device_id)
            .await
            .map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        self.throttle.do_send(Seed {
            device_id: self.device_id,
            epoch: self.epoch(),
            sent: sent
                .into_iter()
                .map(|t| t.and_utc())
                .chain(std::iter::repeat_n(now, in_flight))
                .collect(),
        });
        Ok(())
    }

    /// Records a row as failed for `reason`; whether the device's health now quarantines it.
    async fn fail(&self, id: i64, reason: &str) -> Result<bool, DbError> {
        let fence = self.fence.as_ref();
        store::finish(&self.db, &[id], OutboxStatus::Failed, Some(reason), fence).await?;
        Ok(self.judge_health().await)
    }

    /// The lease epoch the lane sends under (0 on a single node).
    fn epoch(&self) -> i64 {
        self.fence.as_ref().map_or(0, |f| f.epoch)
    }

    /// Waits while paused; returns the control that ended the wait (not `Pause`).
    async fn wait_while_paused(&mut self) -> Control {
        match self.control.wait_for(|c| *c != Control::Pause).await {
            Ok(control) => *control,
            Err(_) => Control::Cancel,
        }
    }

    /// Sleeps until `at`; false when the control changed meanwhile (the caller re-checks it).
    async fn sleep_until(&mut self, at: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => true,
            _ = self.control.changed() => false,
        }
    }

    /// Types (when the slot has typing time), then sends one row at its slot.
    async fn attempt(&mut self, row: &Claimed, slot: &Slot) -> Attempt {
        let to = jid_of(&row.phone);
        if !slot.typing.is_zero() {
            let _ = self
                .device
                .send(SetTyping {
                    to: to.clone(),
                    typing: true,
                })
                .await;
        }
        if !self.sleep_until(slot.send_at).await {
            let _ = self.device.send(SetTyping { to, typing: false }).await;
            return Attempt::Interrupted;
        }
        let file = match &row.image_sha256 {
            Some(sha) => {
                let info = FileInfo::parse(row.attachment.as_deref());
                match attachment::load(&self.plan.media, sha, info.as_ref()).await {
                    Ok(file) => Some(file),
                    Err(err) => return Attempt::Rejected(err),
                }
            }
            None => self.plan.file.clone(),
        };
        let result = match file {
            Some(file) => {
                self.device
                    .send(SendMedia {
                        to,
                        message_id: row.message_id.clone(),
                        file: file.outgoing(&row.body),
                    })
                    .await
            }
            None => {
                self.device
                    .send(SendText {
                        to,
                        message_id: row.message_id.clone(),
                        text: row.body.clone(),
                    })
                    .await
            }
        };
        match result.unwrap_or(Err(DeviceError::Gone)) {
            Ok(()) => Attempt::Sent(Instant::now()),
            Err(DeviceError::InvalidRecipient(reason)) => {
                Attempt::Rejected(format!("not on WhatsApp: {reason}"))
            }
            Err(DeviceError::RateLimited { retry_after_ms }) => {
                Attempt::RateLimited(Duration::from_millis(retry_after_ms))
            }
            Err(
                err @ (DeviceError::NotConnected | DeviceError::NotRunning | DeviceError::Gone),
            ) => Attempt::DeviceLost(err.to_string()),
            Err(err) => Attempt::Retry(err.to_string()),
        }
    }

    /// Returns an unsent row: pending again, or skipped when the campaign was cancelled.
    /// Scores the device's health (quarantining it when low); whether it is quarantined. A
    /// failure to score it leaves it sending.
    async fn judge_health(&self) -> bool {
        match self
            .plan
            .health
            .check(self.plan.tenant_id, self.device_id)
            .await
        {
            Ok(quarantined) => quarantined,
            Err(err) => {
                tracing::warn!(device_id = self.device_id, error = %err, "could not score the device's health");
                false
            }
        }
    }

    async fn give_back(&self, row: &Claimed, reason: Option<&str>) -> Result<(), DbError> {
        if *self.control.borrow() == Control::Cancel {
            store::finish(
                &self.db,
                &[row.id],
                OutboxStatus::Skipped,
                Some("campaign cancelled"),
                self.fence.as_ref(),
            )
            .await?;
            Ok(())
        } else {
            store::release(&self.db, row.id, reason).await
        }
    }
}

/// When to start typing for `slot`.
fn typing_from(slot: &Slot) -> Instant {
    slot.send_at
        .checked_sub(slot.typing)
        .unwrap_or(slot.send_at)
}
