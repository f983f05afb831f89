//! A lane: one device sending one campaign's rows, one at a time, at the Throttle's pace.
//!
//! Each turn: reserve a slot → wait for it (a pause or cancel interrupts) → claim one due row
//! (lease) → skip it if the lead opted out → show "typing…" → send with the row's stored message
//! id → record the result. A crash anywhere leaves the row `sending` with a lease; after the
//! lease it is claimed again and re-sent under the same id, which WhatsApp (and the simulator)
//! deduplicate.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tokio::sync::watch;

use super::model::{outbox_status as st, Claimed};
use super::store;
use crate::broadcast::pacing::Pacing;
use crate::broadcast::phone::jid_of;
use crate::broadcast::throttle::{Confirm, Knows, Penalize, Reserve, Seed, Throttle};
use crate::db::Db;
use crate::device::actor::DeviceActor;
use crate::device::messages::{DeviceError, SendImage, SendText, SetTyping};
use crate::whatsapp::Media;

/// What a running campaign tells its lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send.
    Run,
    /// Hold; claimed rows go back to pending.
    Pause,
    /// Stop for good; claimed rows are skipped.
    Cancel,
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
    /// The picture, when the campaign sends one (the row body is its caption).
    pub image: Option<Media>,
    /// How long a claim holds a row.
    pub lease: Duration,
    /// Attempts before a row fails.
    pub max_attempts: i64,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Typical message length (the template's), for the typing time.
    pub chars: usize,
}

/// Why a lane stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneEnd {
    /// No due rows are left for the device.
    Done,
    /// The device went offline or away; its rows wait or move (campaign setting).
    DeviceLost,
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
    /// The campaign's control channel.
    pub control: watch::Receiver<Control>,
}

/// What became of one claimed row.
enum Outcome {
    /// Sent (or already sent: WhatsApp deduplicated it) at this moment.
    Sent(Instant),
    /// Given back to pending for a later attempt.
    Retry,
    /// The device is gone; the row went back to pending.
    DeviceLost,
}

impl Lane {
    /// Runs until the device has nothing left to send, is lost, or the campaign stops.
    pub async fn run(mut self) -> LaneEnd {
        if let Err(err) = self.seed_throttle().await {
            return LaneEnd::Failed(err);
        }
        loop {
            match self.wait_while_paused().await {
                Control::Run => {}
                _ => return LaneEnd::Stopped,
            }
            let slot = match self
                .throttle
                .send(Reserve {
                    device_id: self.device_id,
                    pacing: self.plan.pacing.clone(),
                    days_linked: self.days_linked,
                    time_zone: self.plan.time_zone,
                    chars: self.plan.chars,
                })
                .await
            {
                Ok(slot) => slot,
                Err(_) => return LaneEnd::Stopped,
            };
            let typing_from = slot
                .send_at
                .checked_sub(slot.typing)
                .unwrap_or(slot.send_at);
            if !self.sleep_until(typing_from).await {
                continue;
            }
            let now = chrono::Utc::now().naive_utc();
            let lease_until = now + chrono::Duration::from_std(self.plan.lease).unwrap_or_default();
            let claimed = match store::claim(
                &self.db,
                self.plan.campaign_id,
                self.device_id,
                1,
                now,
                lease_until,
            )
            .await
            {
                Ok(rows) => rows,
                Err(err) => return LaneEnd::Failed(err.to_string()),
            };
            let Some(row) = claimed.into_iter().next() else {
                return LaneEnd::Done;
            };
            match self.deliver(&row, slot.send_at, slot.typing).await {
                Ok(Outcome::Sent(actual)) => {
                    let _ = self.throttle.try_send(Confirm {
                        device_id: self.device_id,
                        reserved: slot.send_at,
                        actual,
                    });
                }
                Ok(Outcome::Retry) => {}
                Ok(Outcome::DeviceLost) => return LaneEnd::DeviceLost,
                Err(err) => return LaneEnd::Failed(err),
            }
        }
    }

    /// Gives the Throttle this device's sends of the last (simulated) day once per process, so
    /// caps survive a restart.
    async fn seed_throttle(&self) -> Result<(), String> {
        let known = self
            .throttle
            .send(Knows {
                device_id: self.device_id,
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
        self.throttle.do_send(Seed {
            device_id: self.device_id,
            sent: sent.into_iter().map(|t| t.and_utc()).collect(),
        });
        Ok(())
    }

    /// Waits while paused; returns the control that ended the wait (`Run` or `Cancel`).
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

    /// Types, sends and records one claimed row.
    async fn deliver(
        &mut self,
        row: &Claimed,
        send_at: Instant,
        typing: Duration,
    ) -> Result<Outcome, String> {
        let db = &self.db.clone();
        let opted_out = store::opted_out(db, self.plan.tenant_id, std::slice::from_ref(&row.phone))
            .await
            .map_err(|e| e.to_string())?;
        if !opted_out.is_empty() {
            store::finish(db, &[row.id], st::SKIPPED, Some("opted out"))
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Outcome::Retry);
        }
        let to = jid_of(&row.phone);
        if !typing.is_zero() {
            let _ = self
                .device
                .send(SetTyping {
                    to: to.clone(),
                    typing: true,
                })
                .await;
        }
        if !self.sleep_until(send_at).await {
            // Paused or cancelled while typing: the row was not sent.
            let _ = self.device.send(SetTyping { to, typing: false }).await;
            return self.give_back(row, None).await;
        }
        let result = match &self.plan.image {
            Some(image) => {
                self.device
                    .send(SendImage {
                        to,
                        message_id: row.message_id.clone(),
                        image: image.clone(),
                        caption: Some(row.body.clone()).filter(|c| !c.is_empty()),
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
        let result = result.unwrap_or(Err(DeviceError::Gone));
        let sent_at = Instant::now();
        let db_err = |e: crate::db::DbError| e.to_string();
        match result {
            Ok(()) => {
                store::finish(db, &[row.id], st::SENT, None)
                    .await
                    .map_err(db_err)?;
                Ok(Outcome::Sent(sent_at))
            }
            Err(DeviceError::InvalidRecipient(reason)) => {
                let reason = format!("not on WhatsApp: {reason}");
                store::finish(db, &[row.id], st::FAILED, Some(&reason))
                    .await
                    .map_err(db_err)?;
                Ok(Outcome::Retry)
            }
            Err(DeviceError::RateLimited { retry_after_ms }) => {
                self.throttle.do_send(Penalize {
                    device_id: self.device_id,
                    wait: Duration::from_millis(retry_after_ms),
                });
                self.give_back(row, Some("rate limited")).await
            }
            Err(
                err @ (DeviceError::NotConnected | DeviceError::NotRunning | DeviceError::Gone),
            ) => {
                store::release(db, row.id, Some(&err.to_string()))
                    .await
                    .map_err(db_err)?;
                Ok(Outcome::DeviceLost)
            }
            Err(err) => {
                let reason = err.to_string();
                if row.attempts >= self.plan.max_attempts {
                    store::finish(db, &[row.id], st::FAILED, Some(&reason))
                        .await
                        .map_err(db_err)?;
                    Ok(Outcome::Retry)
                } else {
                    self.give_back(row, Some(&reason)).await
                }
            }
        }
    }

    /// Returns an unsent row: pending again, or skipped when the campaign was cancelled.
    async fn give_back(&self, row: &Claimed, reason: Option<&str>) -> Result<Outcome, String> {
        let result = if *self.control.borrow() == Control::Cancel {
            store::finish(&self.db, &[row.id], st::SKIPPED, Some("campaign cancelled"))
                .await
                .map(|_| ())
        } else {
            store::release(&self.db, row.id, reason).await
        };
        result.map(|_| Outcome::Retry).map_err(|e| e.to_string())
    }
}
