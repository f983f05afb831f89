//! Login throttling: at most N failed logins per key (account, client address) in a sliding
//! window; further attempts are refused with the seconds until the oldest failure expires.
//!
//! Kept in memory per node: a multi-node deployment multiplies the budget by the node count,
//! which still stops online guessing (argon2id makes each guess cost ~50 ms of a core anyway).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before stale ones are swept, bounding memory under a spray of addresses.
const SWEEP_ABOVE_KEYS: usize = 10_000;

/// Sliding-window failure counter.
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// A limiter allowing `max_failures` per `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` when any key is over its budget, with how long to wait.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = map.get_mut(key) {
                prune(times, now, self.window);
                if times.len() >= self.max_failures {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(self.window.saturating_sub(now - *oldest));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1))
        }
    }

    /// Counts a failed attempt against every key.
    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > SWEEP_ABOVE_KEYS {
            map.retain(|_, times| {
                prune(times, now, self.window);
                !times.is_empty()
            });
        }
        for key in keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
    }

    /// Forgets a key's failures (after a successful login of that account).
    pub fn clear(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

/// Drops failures older than the window.
fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now - *t >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_budget_and_clears() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let keys = vec!["acct:a".to_string(), "ip:1".to_string()];
        assert!(limiter.check(&keys).is_ok());
        limiter.record_failure(&keys);
        limiter.record_failure(&keys);
        let wait = limiter.check(&keys).err().unwrap_or(0);
        assert!((1..=60).contains(&wait), "{wait}");
        // Another account from the same address is blocked by the address key.
        assert!(limiter.check(&["acct:b".into(), "ip:1".into()]).is_err());
        limiter.clear("acct:a");
        assert!(limiter.check(&["acct:a".into()]).is_ok());
    }

    #[test]
    fn failures_expire_with_the_window() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(1));
        limiter.record_failure(&["k".into()]);
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.check(&["k".into()]).is_ok());
    }
}
