//! Device health and quarantine. Each device has a score from 0 to 100 over a sliding window
//! (`[broadcast.health] window_secs`, simulated time):
//!
//! ```text
//! score = 100 × (1 − failed / attempts) × (0.3 + 0.6 × delivered share + 0.1 × read share)
//!             × 0.8^rate-limit answers × 0.9^disconnects          (0 when banned)
//! ```
//!
//! where attempts are sends plus failures in the window, and the shares are of the messages
//! sent before the current hour (receipts of the last minutes are still on their way). The
//! failure and delivery terms count only from `min_sends` attempts on; a device without
//! history scores 100.
//!
//! Below `threshold`, or at once when WhatsApp answers a send with a rate limit, the device is
//! quarantined for `quarantine_secs`: campaigns and sequences leave it out (its lanes stop, its
//! pending campaign messages move to healthy devices as on a device loss, new enrolments go
//! elsewhere), `DEVICE_QUARANTINED` is published on `device-status` and the audit log has
//! `device.quarantined`. It ends by itself, or when an owner lifts it
//! (`DEVICE_QUARANTINE_LIFTED`, `device.quarantine_lifted`).

use actix::Addr;
use chrono::{Duration, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, AuditEntry, Target};
use crate::broadcast::events;
use crate::config::HealthSettings;
use crate::db::{Db, DbError};
use crate::device::model::{Device, DeviceStatus};
use crate::device::store::{self, history};
use crate::hub::Hub;
use crate::stats::model::{hour_of, Tally};
use crate::stats::store::{hourly, Scope};

/// What the score is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Signals {
    /// Messages sent in the window.
    pub sent: i64,
    /// Sends given up or refused in the window.
    pub failed: i64,
    /// Messages sent before the current hour (the base of the shares).
    pub settled: i64,
    /// Of those, delivered (or read).
    pub delivered: i64,
    /// Of those, read.
    pub read: i64,
    /// Rate-limit answers in the window.
    pub rate_limits: i64,
    /// Times the connection dropped in the window.
    pub disconnects: i64,
    /// WhatsApp banned the number.
    pub banned: bool,
}

/// The score (0–100) of `signals`; see the module documentation.
pub fn score(signals: &Signals, min_sends: i64) -> u32 {
    if signals.banned {
        return 0;
    }
    let mut score = 100.0;
    let attempts = signals.sent + signals.failed;
    if attempts >= min_sends.max(1) {
        score *= 1.0 - signals.failed as f64 / attempts as f64;
        if signals.settled > 0 {
            let share = |n: i64| (n as f64 / signals.settled as f64).min(1.0);
            score *= 0.3 + 0.6 * share(signals.delivered) + 0.1 * share(signals.read);
        }
    }
    score *= 0.8f64.powi(i32::try_from(signals.rate_limits).unwrap_or(i32::MAX));
    score *= 0.9f64.powi(i32::try_from(signals.disconnects).unwrap_or(i32::MAX));
    score.round().clamp(0.0, 100.0) as u32
}

/// A device's health now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// 0–100.
    pub score: u32,
    /// Below this the device is quarantined.
    pub threshold: u32,
    /// What the score was computed from.
    pub signals: Signals,
}

/// What the quarantine needs: the database, the hub, the settings and the clock's scale.
#[derive(Clone)]
pub struct HealthDeps {
    /// Database.
    pub db: Db,
    /// Where `DEVICE_QUARANTINED` is published.
    pub hub: Addr<Hub>,
    /// `[broadcast.health]`.
    pub settings: HealthSettings,
    /// Simulated seconds per real second.
    pub time_scale: f64,
}

impl std::fmt::Debug for HealthDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthDeps")
            .field("settings", &self.settings)
            .field("time_scale", &self.time_scale)
            .finish_non_exhaustive()
    }
}

impl HealthDeps {
    /// A simulated duration of `secs` in real time.
    fn real(&self, secs: u64) -> Duration {
        Duration::milliseconds(
            (secs as f64 * 1000.0 / self.time_scale.max(f64::MIN_POSITIVE)) as i64,
        )
    }

    /// The device's health over the window ending now.
    pub async fn health_of(&self, device: &Device) -> Result<Health, DbError> {
        let now = Utc::now().naive_utc();
        let since = now - self.real(self.settings.window_secs);
        let signals = signals(&self.db, device, since, now).await?;
        Ok(Health {
            score: score(&signals, self.settings.min_sends),
            threshold: self.settings.threshold,
            signals,
        })
    }

    /// After a failed send, when a lane starts and every [`JUDGE_EVERY`] attempts (at most every
    /// [`JUDGE_AT_MOST_EVERY`]): quarantines the
    /// tenant's device when its score fell below the threshold; whether it is quarantined now.
    pub async fn check(&self, tenant_id: i64, device_id: i64) -> Result<bool, DbError> {
        let device = store::get_device(&self.db, tenant_id, device_id).await?;
        if device.quarantined_at(Utc::now().naive_utc()) {
            return Ok(true);
        }
        let health = self.health_of(&device).await?;
        if health.score >= health.threshold {
            return Ok(false);
        }
        let reason = format!("health score {} below {}", health.score, health.threshold);
        self.quarantine(
            &device,
            Quarantine {
                reason: &reason,
                score: Some(health.score),
                secs: self.settings.quarantine_secs,
                by: None,
            },
        )
        .await
        .map(|_| true)
    }

    /// WhatsApp answered a send of the tenant's device with a rate limit: noted, and the
    /// device is quarantined.
    pub async fn rate_limited(&self, tenant_id: i64, device_id: i64) -> Result<(), DbError> {
        let device = store::get_device(&self.db, tenant_id, device_id).await?;
        store::add_history(&self.db, tenant_id, device_id, history::RATE_LIMITED, None).await?;
        self.quarantine(
            &device,
            Quarantine {
                reason: "rate limited by WhatsApp",
                score: None,
                secs: self.settings.quarantine_secs,
                by: None,
            },
        )
        .await
        .map(|_| ())
    }

    /// An operator drains the device: quarantined for `secs` (simulated time, as every
    /// quarantine), its campaign queue moves to healthy devices. The end, or `None` when it
    /// already was quarantined.
    pub async fn drain(
        &self,
        device: &Device,
        secs: u64,
        by: i64,
    ) -> Result<Option<NaiveDateTime>, DbError> {
        self.quarantine(
            device,
            Quarantine {
                reason: "drained by an operator",
                score: None,
                secs,
                by: Some(by),
            },
        )
        .await
    }

    /// Quarantines the device unless it already is; announces and audits it. The end, or
    /// `None` when it already was quarantined.
    async fn quarantine(
        &self,
        device: &Device,
        quarantine: Quarantine<'_>,
    ) -> Result<Option<NaiveDateTime>, DbError> {
        let Quarantine {
            reason,
            score,
            secs,
            by,
        } = quarantine;
        let until = Utc::now().naive_utc() + self.real(secs);
        if !store::quarantine(&self.db, device.id, until, reason).await? {
            return Ok(None);
        }
        tracing::warn!(device_id = device.id, reason, %until, "device quarantined");
        store::add_history(
            &self.db,
            device.tenant_id,
            device.id,
            history::QUARANTINED,
            Some(reason),
        )
        .await?;
        let data = json!({
            "device_id": device.id,
            "tenant_id": device.tenant_id,
            "quarantined_until": until.and_utc(),
            "reason": reason,
            "score": score,
        });
        events::device_quarantine(
            &self.hub,
            device.tenant_id,
            device.id,
            "DEVICE_QUARANTINED",
            data.clone(),
        );
        audit::record(
            &self.db,
            AuditEntry {
                tenant_id: Some(device.tenant_id),
                actor_user_id: by,
                action: "device.quarantined",
                target: Some(Target::Device(device.id)),
                detail: Some(data),
                ..Default::default()
            },
        )
        .await;
        Ok(Some(until))
    }
}

/// One quarantine: why, the score behind it, how long (simulated seconds), who asked.
struct Quarantine<'a> {
    reason: &'a str,
    score: Option<u32>,
    secs: u64,
    by: Option<i64>,
}

/// A lane judges its device's health after this many attempts (and when it starts)…
pub const JUDGE_EVERY: usize = 25;
/// …but not more often than this (real time): an unpaced lane makes 25 attempts in
/// milliseconds, and scoring reads the device's figures.
pub const JUDGE_AT_MOST_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Ends a device's quarantine on a user's word; whether it was quarantined. Announced and
/// audited by the caller's route (it knows the user).
pub async fn lift(db: &Db, hub: &Addr<Hub>, device: &Device) -> Result<bool, DbError> {
    if !store::lift_quarantine(db, device.tenant_id, device.id).await? {
        return Ok(false);
    }
    store::add_history(
        db,
        device.tenant_id,
        device.id,
        history::QUARANTINE_LIFTED,
        None,
    )
    .await?;
    let data = json!({ "device_id": device.id, "tenant_id": device.tenant_id });
    events::device_quarantine(
        hub,
        device.tenant_id,
        device.id,
        "DEVICE_QUARANTINE_LIFTED",
        data,
    );
    Ok(true)
}

/// The signals of `device` between `since` and `now`.
async fn signals(
    db: &Db,
    device: &Device,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Signals, DbError> {
    let current_hour = hour_of(now);
    let mut window = Tally::default();
    let mut settled = Tally::default();
    for (hour, tally) in hourly(
        db,
        device.tenant_id,
        &Scope::Devices(vec![device.id]),
        hour_of(since),
    )
    .await?
    {
        window.add(&tally);
        if hour < current_hour {
            settled.add(&tally);
        }
    }
    let mut signals = Signals {
        sent: window.sent,
        failed: window.failed,
        settled: settled.sent,
        delivered: settled.delivered,
        read: settled.read,
        banned: device.status == DeviceStatus::Banned.as_str(),
        ..Signals::default()
    };
    for (kind, detail) in store::history_counts_since(db, device.id, since).await? {
        if kind == history::RATE_LIMITED {
            signals.rate_limits += 1;
        } else if kind == history::STATUS
            && detail
                .as_deref()
                .is_some_and(|d| d.starts_with(DeviceStatus::Reconnecting.as_str()))
        {
            signals.disconnects += 1;
        }
    }
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_without_history_is_healthy() {
        assert_eq!(score(&Signals::default(), 20), 100);
    }

    #[test]
    fn failures_count_only_from_the_minimum_sample() {
        let few = Signals {
            sent: 5,
            failed: 5,
            ..Signals::default()
        };
        assert_eq!(score(&few, 20), 100);
        let many = Signals {
            sent: 50,
            failed: 50,
            ..Signals::default()
        };
        assert_eq!(score(&many, 20), 50);
    }

    #[test]
    fn undelivered_messages_pull_the_score_down() {
        let delivered = Signals {
            sent: 100,
            settled: 100,
            delivered: 100,
            read: 50,
            ..Signals::default()
        };
        assert_eq!(score(&delivered, 20), 95);
        let blocked = Signals {
            sent: 100,
            settled: 100,
            ..Signals::default()
        };
        assert_eq!(score(&blocked, 20), 30);
    }

    #[test]
    fn rate_limits_disconnects_and_bans() {
        let limited = Signals {
            rate_limits: 2,
            disconnects: 1,
            ..Signals::default()
        };
        assert_eq!(score(&limited, 20), 58);
        let banned = Signals {
            banned: true,
            ..Signals::default()
        };
        assert_eq!(score(&banned, 20), 0);
    }
}

/// A device's day against its cap: what it sent in the last (simulated) day, its daily cap
/// after warm-up, and its warm-up day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayCapacity {
    /// Sends in the last 24 (simulated) hours.
    pub sent: u64,
    /// Its daily cap now (warm-up included).
    pub cap: u32,
    /// Whole days since it was linked.
    pub days_linked: u32,
    /// Days of warm-up in the tenant's pacing (0 = none).
    pub warmup_days: u32,
}

/// `device`'s day against its cap under the tenant's pacing.
pub async fn day_capacity(
    db: &Db,
    defaults: &crate::config::BroadcastSettings,
    time_scale: f64,
    device: &Device,
) -> Result<DayCapacity, DbError> {
    use crate::broadcast::campaign::devices::{day_ago, days_linked};
    let pacing = crate::broadcast::settings::effective(db, defaults, device.tenant_id)
        .await?
        .pacing;
    let days = days_linked(device, time_scale);
    let sent = crate::broadcast::outbox::store::sends_by_device_since(
        db,
        &[device.id],
        day_ago(time_scale),
    )
    .await?
    .get(&device.id)
    .copied()
    .unwrap_or(0);
    Ok(DayCapacity {
        sent,
        cap: pacing.daily_cap(days),
        days_linked: days,
        warmup_days: pacing.warmup_days,
    })
}
