//! How fast a device may send: a random human delay between sends, per-minute and per-day caps,
//! quiet hours in the tenant's zone, and a warm-up for newly linked devices. The configured
//! defaults, a tenant's overrides and a campaign's overrides stack, and none may leave the safe
//! [`PacingLimits`].

use std::time::Duration;

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::config::{Pacing, PacingLimits};

/// Overrides of a tenant or a campaign; absent fields keep the layer below.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PacingOverride {
    /// See [`Pacing::min_delay_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_delay_ms: Option<u64>,
    /// See [`Pacing::max_delay_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,
    /// See [`Pacing::per_minute`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// See [`Pacing::per_day`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    /// See [`Pacing::typing`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// See [`Pacing::quiet_hours`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// See [`Pacing::warmup_days`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_days: Option<u32>,
    /// See [`Pacing::warmup_first_day`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_first_day: Option<u32>,
}

impl Pacing {
    /// This pacing with `over` applied.
    pub fn with(&self, over: &PacingOverride) -> Pacing {
        Pacing {
            min_delay_ms: over.min_delay_ms.unwrap_or(self.min_delay_ms),
            max_delay_ms: over.max_delay_ms.unwrap_or(self.max_delay_ms),
            per_minute: over.per_minute.unwrap_or(self.per_minute),
            per_day: over.per_day.unwrap_or(self.per_day),
            typing: over.typing.unwrap_or(self.typing),
            quiet_hours: over
                .quiet_hours
                .clone()
                .unwrap_or_else(|| self.quiet_hours.clone()),
            warmup_days: over.warmup_days.unwrap_or(self.warmup_days),
            warmup_first_day: over.warmup_first_day.unwrap_or(self.warmup_first_day),
        }
    }

    /// A random wait between two sends, uniform over `[min, max]` (simulated time).
    pub fn random_delay(&self, rng: &mut impl rand::Rng) -> Duration {
        Duration::from_millis(rng.random_range(self.min_delay_ms..=self.max_delay_ms))
    }

    /// How long to show "typing…" before sending `chars` characters (simulated time): about
    /// 30 ms a character, between 0.5 s and 5 s, and never more than half the shortest delay so
    /// typing fits inside the wait.
    pub fn typing_time(&self, chars: usize) -> Duration {
        if !self.typing {
            return Duration::ZERO;
        }
        let ms = (chars as u64).saturating_mul(30).clamp(500, 5_000);
        Duration::from_millis(ms.min(self.min_delay_ms / 2))
    }

    /// The daily cap of a device linked `days_linked` whole days ago (warm-up ramps linearly
    /// from `warmup_first_day` on day 0 to `per_day` on day `warmup_days`).
    pub fn daily_cap(&self, days_linked: u32) -> u32 {
        if self.warmup_days == 0 || days_linked >= self.warmup_days {
            return self.per_day;
        }
        let first = self.warmup_first_day.min(self.per_day);
        let step = (self.per_day - first) as u64 * days_linked as u64 / self.warmup_days as u64;
        first + step as u32
    }

    /// The quiet hours, parsed (validated by [`PacingLimits::check`]).
    pub fn quiet(&self) -> Option<QuietHours> {
        QuietHours::parse(&self.quiet_hours).ok().flatten()
    }
}

impl PacingLimits {
    /// Checks `pacing` against the bounds and for consistency; the message names the field.
    pub fn check(&self, pacing: &Pacing) -> Result<(), String> {
        if pacing.min_delay_ms < self.min_delay_ms {
            return Err(format!(
                "min_delay_ms must be at least {} (got {})",
                self.min_delay_ms, pacing.min_delay_ms
            ));
        }
        if pacing.max_delay_ms < pacing.min_delay_ms {
            return Err("max_delay_ms must not be below min_delay_ms".into());
        }
        if pacing.max_delay_ms > 24 * 3_600_000 {
            return Err("max_delay_ms must be at most a day".into());
        }
        if pacing.per_minute == 0 || pacing.per_minute > self.max_per_minute {
            return Err(format!(
                "per_minute must be between 1 and {}",
                self.max_per_minute
            ));
        }
        if pacing.per_day == 0 || pacing.per_day > self.max_per_day {
            return Err(format!(
                "per_day must be between 1 and {}",
                self.max_per_day
            ));
        }
        if pacing.warmup_days > 0 && pacing.warmup_first_day == 0 {
            return Err("warmup_first_day must be at least 1 with a warm-up".into());
        }
        QuietHours::parse(&pacing.quiet_hours).map(|_| ())
    }
}

/// Local hours without sends; may wrap midnight (`22:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First quiet minute.
    pub start: NaiveTime,
    /// First minute sends may resume.
    pub end: NaiveTime,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`; empty means none.
    pub fn parse(text: &str) -> Result<Option<QuietHours>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || format!("quiet_hours must look like 22:00-08:00, got {text:?}");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let parse = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (parse(start)?, parse(end)?);
        if start == end {
            return Err(bad());
        }
        Ok(Some(QuietHours { start, end }))
    }

    /// Is local time `at` quiet?
    pub fn contains(&self, at: NaiveTime) -> bool {
        let at = at.with_second(0).unwrap_or(at);
        if self.start < self.end {
            self.start <= at && at < self.end
        } else {
            at >= self.start || at < self.end
        }
    }

    /// How long from local time `at` until the quiet hours end (zero when not quiet).
    pub fn remaining(&self, at: NaiveTime) -> Duration {
        if !self.contains(at) {
            return Duration::ZERO;
        }
        let secs = (self.end - at).num_seconds().rem_euclid(24 * 3600);
        Duration::from_secs(secs as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> Pacing {
        Pacing {
            min_delay_ms: 5_000,
            max_delay_ms: 15_000,
            per_minute: 10,
            per_day: 500,
            typing: true,
            quiet_hours: String::new(),
            warmup_days: 5,
            warmup_first_day: 100,
        }
    }

    fn limits() -> PacingLimits {
        PacingLimits {
            min_delay_ms: 2_000,
            max_per_minute: 12,
            max_per_day: 1_000,
        }
    }

    #[test]
    fn overrides_apply_field_by_field() {
        let over = PacingOverride {
            max_delay_ms: Some(20_000),
            quiet_hours: Some("22:00-08:00".into()),
            ..Default::default()
        };
        let p = pacing().with(&over);
        assert_eq!((p.min_delay_ms, p.max_delay_ms), (5_000, 20_000));
        assert_eq!(p.quiet_hours, "22:00-08:00");
    }

    #[test]
    fn limits_reject_unsafe_or_inconsistent_pacing() {
        assert_eq!(limits().check(&pacing()), Ok(()));
        let fast = pacing().with(&PacingOverride {
            min_delay_ms: Some(500),
            ..Default::default()
        });
        assert!(limits().check(&fast).unwrap_err().contains("min_delay_ms"));
        let inverted = pacing().with(&PacingOverride {
            max_delay_ms: Some(3_000),
            ..Default::default()
        });
        assert!(limits().check(&inverted).is_err());
        let greedy = pacing().with(&PacingOverride {
            per_day: Some(5_000),
            ..Default::default()
        });
        assert!(limits().check(&greedy).unwrap_err().contains("per_day"));
        let quiet = pacing().with(&PacingOverride {
            quiet_hours: Some("late".into()),
            ..Default::default()
        });
        assert!(limits().check(&quiet).unwrap_err().contains("quiet_hours"));
    }

    #[test]
    fn delays_cover_the_whole_range_not_the_midpoint() {
        let p = pacing();
        let mut rng = rand::rng();
        let delays: Vec<u64> = (0..2_000)
            .map(|_| p.random_delay(&mut rng).as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|d| (5_000..=15_000).contains(d)));
        assert!(delays.iter().any(|d| *d < 6_000));
        assert!(delays.iter().any(|d| *d > 14_000));
    }

    #[test]
    fn warm_up_ramps_linearly_to_the_daily_cap() {
        let p = pacing();
        assert_eq!(p.daily_cap(0), 100);
        assert_eq!(p.daily_cap(1), 180);
        assert_eq!(p.daily_cap(4), 420);
        assert_eq!(p.daily_cap(5), 500);
        assert_eq!(p.daily_cap(90), 500);
    }

    #[test]
    fn typing_time_grows_with_the_text_and_fits_the_delay() {
        let p = pacing();
        assert_eq!(p.typing_time(1), Duration::from_millis(500));
        assert_eq!(p.typing_time(50), Duration::from_millis(1_500));
        assert_eq!(p.typing_time(10_000), Duration::from_millis(2_500));
        let no_typing = p.with(&PacingOverride {
            typing: Some(false),
            ..Default::default()
        });
        assert_eq!(no_typing.typing_time(50), Duration::ZERO);
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours::parse("22:00-08:00").unwrap().unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(q.contains(t(23, 0)) && q.contains(t(3, 0)) && !q.contains(t(8, 0)));
        assert!(!q.contains(t(12, 0)));
        assert_eq!(q.remaining(t(23, 0)), Duration::from_secs(9 * 3600));
        assert_eq!(q.remaining(t(12, 0)), Duration::ZERO);
        let day = QuietHours::parse("12:00-13:30").unwrap().unwrap();
        assert!(day.contains(t(12, 59)) && !day.contains(t(13, 30)));
        assert_eq!(QuietHours::parse("").unwrap(), None);
    }
}
