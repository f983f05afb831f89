//! Reconnect pacing and the restart budget: pure arithmetic, no actors.
//!
//! Backoff doubles from a base to a cap (1, 2, 4 … 300 s by default) with ±20 % jitter, so a
//! fleet that dropped at once comes back spread out. The budget counts restarts in a sliding
//! window; a device over budget is parked instead of looping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// Jitter applied to every delay: ±20 %.
const JITTER: f64 = 0.2;

/// Exponential backoff parameters.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt number `attempt` (1 = first retry), without jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The nominal delay with ±20 % jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt).as_secs_f64();
        let jitter = rand::rng().random_range(1.0 - JITTER..=1.0 + JITTER);
        Duration::from_secs_f64(nominal * jitter)
    }
}

/// Restarts of one device within a sliding window.
#[derive(Debug, Clone, Default)]
pub struct RestartBudget {
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// Records a restart at `now`; returns false when the budget of `limit` per `window` is
    /// exceeded (the device should be parked).
    pub fn spend(&mut self, now: Instant, limit: u32, window: Duration) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= limit as usize
    }

    /// Restarts currently counted.
    pub fn used(&self) -> usize {
        self.restarts.len()
    }

    /// Forgets all restarts (an operator restarted the device by hand).
    pub fn reset(&mut self) {
        self.restarts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        let nominal: Vec<u64> = (1..=11).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.nominal(1000).as_secs(), 300);
        for attempt in [1, 5, 12] {
            for _ in 0..200 {
                let d = b.delay(attempt).as_secs_f64();
                let n = b.nominal(attempt).as_secs_f64();
                assert!(d >= n * 0.8 - 1e-9 && d <= n * 1.2 + 1e-9, "{d} vs {n}");
            }
        }
    }

    #[test]
    fn budget_parks_after_n_restarts_in_the_window() {
        let mut budget = RestartBudget::default();
        let start = Instant::now();
        let window = Duration::from_secs(600);
        for i in 0..3 {
            assert!(budget.spend(start + Duration::from_secs(i), 3, window));
        }
        assert!(!budget.spend(start + Duration::from_secs(3), 3, window));
        // Outside the window the old restarts no longer count.
        assert!(budget.spend(start + Duration::from_secs(700), 3, window));
        assert_eq!(budget.used(), 1);
        budget.reset();
        assert_eq!(budget.used(), 0);
    }
}
