//! Login throttling, decided before any password is verified.
//!
//! An attempt first takes a [`Reservation`] for its account and its client address, atomically:
//! - per address, a strict budget: at most N failures in a sliding window, and attempts still
//!   being verified count against it, so a parallel burst cannot outrun the count;
//! - per account, one attempt in flight at a time, and a growing delay: from the N-th
//!   consecutive failure on, each failure doubles the wait before the next attempt (1 s, 2 s,
//!   4 s, …, capped). A correct password is accepted once the wait is over, so guessing cannot
//!   lock the owner out for good.
//!
//! A reservation ends as [`Reservation::succeeded`] or [`Reservation::failed`]; one dropped
//! without either counts as a failure. Kept in memory per node: a multi-node deployment
//! multiplies the budgets by the node count.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Keys tracked before stale ones are swept, bounding memory under a spray of addresses.
const SWEEP_ABOVE_KEYS: usize = 10_000;
/// An account's consecutive failures are forgotten this long after its last failure.
const FORGET_ACCOUNT_AFTER: Duration = Duration::from_secs(15 * 60);
/// The first delay of an account; each further failure doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The limits, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures per address in the window; also the account failures before delays start.
    pub max_failures: u32,
    /// The address window.
    pub window: Duration,
    /// The longest delay an account waits between attempts.
    pub max_delay: Duration,
}

/// The throttle shared by every login.
pub struct LoginLimiter {
    limits: LoginLimits,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<String, AddressState>,
    accounts: HashMap<String, AccountState>,
}

#[derive(Default)]
struct AddressState {
    failures: VecDeque<Instant>,
    in_flight: u32,
}

struct AccountState {
    failures: u32,
    last_failure: Instant,
    not_before: Instant,
    in_flight: bool,
}

impl LoginLimiter {
    /// A limiter with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Reserves an attempt on `account` from `address`; `Err(seconds to wait)` when the address
    /// is over its budget, the account waits out a delay, or another attempt on it is running.
    pub fn reserve(&self, account: &str, address: &str) -> Result<Reservation, u64> {
        let now = Instant::now();
        let limits = self.limits;
        let mut state = lock(&self.state);
        state.sweep(now, limits);
        let max = limits.max_failures as usize;
        let addr = state.addresses.entry(address.to_string()).or_default();
        prune(&mut addr.failures, now, limits.window);
        if addr.failures.len() >= max {
            let oldest = addr.failures.front().copied().unwrap_or(now);
            return Err(secs(limits.window.saturating_sub(now - oldest)));
        }
        if addr.failures.len() + addr.in_flight as usize >= max {
            return Err(1);
        }
        if let Some(acct) = state.accounts.get(account) {
            if acct.in_flight {
                return Err(1);
            }
            if acct.not_before > now {
                return Err(secs(acct.not_before - now));
            }
        }
        if let Some(addr) = state.addresses.get_mut(address) {
            addr.in_flight += 1;
        }
        let acct = state
            .accounts
            .entry(account.to_string())
            .or_insert(AccountState {
                failures: 0,
                last_failure: now,
                not_before: now,
                in_flight: false,
            });
        acct.in_flight = true;
        Ok(Reservation {
            state: self.state.clone(),
            limits,
            account: account.to_string(),
            address: address.to_string(),
            settled: false,
        })
    }

    /// How many failures `address` has in the current window (tests and diagnostics).
    pub fn address_failures(&self, address: &str) -> usize {
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.addresses.get_mut(address).map_or(0, |a| {
            prune(&mut a.failures, now, self.limits.window);
            a.failures.len()
        })
    }

    /// Whether an attempt on `account` is being verified right now.
    pub fn in_flight(&self, account: &str) -> bool {
        lock(&self.state)
            .accounts
            .get(account)
            .is_some_and(|a| a.in_flight)
    }
}

/// One login attempt's claim on the budgets; dropped unsettled, it counts as a failure.
pub struct Reservation {
    state: Arc<Mutex<State>>,
    limits: LoginLimits,
    account: String,
    address: String,
    settled: bool,
}

impl Reservation {
    /// The password was right: the account's failures are forgotten (the address's are not).
    pub fn succeeded(mut self) {
        self.settle(false);
    }

    /// The attempt failed: counted against the address and the account.
    pub fn failed(mut self) {
        self.settle(true);
    }

    fn settle(&mut self, failed: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        let now = Instant::now();
        let mut state = lock(&self.state);
        if let Some(addr) = state.addresses.get_mut(&self.address) {
            addr.in_flight = addr.in_flight.saturating_sub(1);
            if failed {
                addr.failures.push_back(now);
            }
        }
        if !failed {
            state.accounts.remove(&self.account);
            return;
        }
        if let Some(acct) = state.accounts.get_mut(&self.account) {
            acct.in_flight = false;
            if now - acct.last_failure >= FORGET_ACCOUNT_AFTER {
                acct.failures = 0;
            }
            acct.failures += 1;
            acct.last_failure = now;
            acct.not_before = now + delay_after(acct.failures, self.limits);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // An attempt abandoned half-way (client gone, task cancelled) is a failure.
        self.settle(true);
    }
}

impl State {
    /// Forgets keys with nothing left to remember once there are many.
    fn sweep(&mut self, now: Instant, limits: LoginLimits) {
        if self.addresses.len() > SWEEP_ABOVE_KEYS {
            self.addresses.retain(|_, a| {
                prune(&mut a.failures, now, limits.window);
                a.in_flight > 0 || !a.failures.is_empty()
            });
        }
        if self.accounts.len() > SWEEP_ABOVE_KEYS {
            self.accounts.retain(|_, a| {
                a.in_flight || a.not_before > now || now - a.last_failure < FORGET_ACCOUNT_AFTER
            });
        }
    }
}

/// The wait after an account's `failures`-th consecutive failure.
fn delay_after(failures: u32, limits: LoginLimits) -> Duration {
    let Some(doublings) = failures.checked_sub(limits.max_failures) else {
        return Duration::ZERO;
    };
    FIRST_DELAY
        .checked_mul(1u32 << doublings.min(20))
        .unwrap_or(limits.max_delay)
        .min(limits.max_delay)
}

/// Whole seconds to wait, at least one.
fn secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The state, even if a panicking holder poisoned the lock (the counts stay usable).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn limiter(max_failures: u32, window_ms: u64, max_delay_ms: u64) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            max_failures,
            window: Duration::from_millis(window_ms),
            max_delay: Duration::from_millis(max_delay_ms),
        })
    }

    #[test]
    fn the_address_budget_counts_attempts_in_flight() {
        let limiter = limiter(2, 60_000, 60_000);
        let a = limiter.reserve("a", "ip").unwrap();
        let b = limiter.reserve("b", "ip").unwrap();
        assert!(limiter.reserve("c", "ip").is_err(), "two in flight fill it");
        a.failed();
        b.succeeded();
        assert!(limiter.reserve("c", "ip").is_ok(), "one failure, one free");
        // The dropped reservation above counted: two failures now.
        let wait = limiter.reserve("d", "ip").err().unwrap_or(0);
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limiter.reserve("d", "other-ip").is_ok());
    }

    #[test]
    fn one_attempt_per_account_at_a_time() {
        let limiter = limiter(5, 60_000, 60_000);
        let first = limiter.reserve("a", "ip1").unwrap();
        assert_eq!(limiter.reserve("a", "ip2").err(), Some(1));
        assert!(limiter.in_flight("a"));
        first.succeeded();
        assert!(!limiter.in_flight("a"));
        assert!(limiter.reserve("a", "ip2").is_ok());
    }

    #[test]
    fn account_delays_double_and_are_capped() {
        let limits = LoginLimits {
            max_failures: 3,
            window: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=11).map(|n| delay_after(n, limits).as_secs()).collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay_after(u32::MAX, limits).as_secs(), 60);
    }

    #[test]
    fn a_correct_password_passes_once_the_delay_is_over() {
        let limiter = limiter(1, 1, 30);
        limiter.reserve("a", "ip1").unwrap().failed();
        assert!(limiter.reserve("a", "ip2").is_err(), "waits the delay");
        std::thread::sleep(Duration::from_millis(40));
        let ok = limiter.reserve("a", "ip2").unwrap();
        ok.succeeded();
        assert!(limiter.reserve("a", "ip3").is_ok(), "success forgets");
    }
}
