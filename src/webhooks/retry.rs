//! When a failed delivery is tried again, and when it is given up. Pure: the dispatcher passes
//! the time and a random number.
//!
//! The n-th retry waits `base × 2^(n-1)`, capped at `max`, with "equal jitter": half of that
//! wait is fixed and the other half random, so retries of many deliveries that failed together
//! (a receiver's outage) spread out instead of arriving at once, yet none comes back early.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(NaiveDateTime),
    /// Give up: the event is older than the retry window allows.
    GiveUp,
}

/// The wait before retry number `attempts` (1 = the first retry); `unit` in `[0, 1)` draws the
/// jitter.
pub fn backoff(attempts: i64, base: Duration, max: Duration, unit: f64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1u32 << doublings).min(max);
    let half = full / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// After attempt number `attempts` failed at `now`: the next try, or give up when that try
/// would fall after `created_at + max_age`.
pub fn after_failure(
    attempts: i64,
    created_at: NaiveDateTime,
    now: NaiveDateTime,
    policy: &Policy,
    unit: f64,
) -> Next {
    let wait = backoff(attempts, policy.base, policy.max, unit);
    let at = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
    let deadline = created_at + TimeDelta::from_std(policy.max_age).unwrap_or(TimeDelta::MAX);
    if at > deadline {
        Next::GiveUp
    } else {
        Next::RetryAt(at)
    }
}

/// The retry settings, as durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// First wait.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Oldest an event may be and still be tried.
    pub max_age: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0)
            .map(|t| t.naive_utc())
            .unwrap_or_default()
    }

    const BASE: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn waits_double_stay_within_jitter_and_are_capped() {
        for attempt in 1..=12 {
            let full = (BASE * (1 << (attempt - 1))).min(MAX);
            let low = backoff(attempt, BASE, MAX, 0.0);
            let high = backoff(attempt, BASE, MAX, 0.999_999);
            assert_eq!(low, full / 2, "attempt {attempt}");
            assert!(
                high <= full && high > full / 2,
                "attempt {attempt}: {high:?}"
            );
        }
        assert_eq!(backoff(1_000, BASE, MAX, 1.0), MAX);
        assert_eq!(backoff(0, BASE, MAX, 0.0), BASE / 2);
    }

    #[test]
    fn an_event_past_its_age_is_given_up() {
        let policy = Policy {
            base: BASE,
            max: MAX,
            max_age: Duration::from_secs(60),
        };
        assert_eq!(
            after_failure(1, at(0), at(1), &policy, 0.0),
            Next::RetryAt(at(1) + TimeDelta::milliseconds(2_500))
        );
        assert_eq!(after_failure(5, at(0), at(50), &policy, 0.5), Next::GiveUp);
    }
}
