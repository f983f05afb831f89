//! The admission queue every connect goes through (boot, restart, reconnect): at most K in
//! flight and R started per second, highest priority first. Pure bookkeeping; the supervisor
//! drives it from a timer.
//!
//! This is what keeps a network blip that drops 3,000 devices from becoming 3,000 simultaneous
//! handshakes: they queue here and trickle out at the configured rate.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// How urgent a connect is; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Was online before (boot) or an operator asked: reconnect these first.
    High = 0,
    /// Everything else.
    Normal = 1,
}

/// Queue state.
#[derive(Debug)]
pub struct AdmissionQueue {
    max_in_flight: usize,
    per_second: f64,
    /// Tokens available now (token bucket of capacity `max(1, per_second)`).
    tokens: f64,
    refilled_at: Instant,
    /// Waiting devices by (priority, sequence) for FIFO within a priority.
    waiting: BTreeSet<(Priority, u64, i64)>,
    queued: HashSet<i64>,
    in_flight: HashSet<i64>,
    sequence: u64,
}

impl AdmissionQueue {
    /// An empty queue.
    pub fn new(max_in_flight: usize, per_second: f64, now: Instant) -> Self {
        Self {
            max_in_flight,
            per_second,
            tokens: per_second.clamp(1.0, f64::MAX),
            refilled_at: now,
            waiting: BTreeSet::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            sequence: 0,
        }
    }

    /// Queues a device unless it is already queued or connecting.
    pub fn push(&mut self, device_id: i64, priority: Priority) {
        if self.queued.contains(&device_id) || self.in_flight.contains(&device_id) {
            return;
        }
        self.sequence += 1;
        self.waiting.insert((priority, self.sequence, device_id));
        self.queued.insert(device_id);
    }

    /// Removes a device wherever it is (deleted, stopped, settled).
    pub fn remove(&mut self, device_id: i64) {
        if self.queued.remove(&device_id) {
            self.waiting.retain(|(_, _, id)| *id != device_id);
        }
        self.in_flight.remove(&device_id);
    }

    /// Marks a connect finished (online, showing a QR, or failed), freeing its slot.
    pub fn settle(&mut self, device_id: i64) {
        self.in_flight.remove(&device_id);
    }

    /// The devices allowed to start connecting now; they count as in flight until settled.
    pub fn admit(&mut self, now: Instant) -> Vec<i64> {
        let capacity = self.per_second.clamp(1.0, f64::MAX);
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(capacity);
        self.refilled_at = now;
        let mut admitted = Vec::new();
        while self.tokens >= 1.0 && self.in_flight.len() < self.max_in_flight {
            let Some(first) = self.waiting.pop_first() else {
                break;
            };
            let device_id = first.2;
            self.queued.remove(&device_id);
            self.in_flight.insert(device_id);
            self.tokens -= 1.0;
            admitted.push(device_id);
        }
        admitted
    }

    /// Devices waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Devices connecting.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn caps_in_flight_and_rate_and_orders_by_priority() {
        let t0 = Instant::now();
        let mut q = AdmissionQueue::new(3, 2.0, t0);
        for id in 1..=5 {
            q.push(id, Priority::Normal);
        }
        q.push(9, Priority::High);
        q.push(9, Priority::High); // no duplicates
        assert_eq!(q.waiting(), 6);
        // Bucket starts with 2 tokens: high priority first, then FIFO.
        assert_eq!(q.admit(t0), vec![9, 1]);
        assert_eq!(q.admit(t0), Vec::<i64>::new(), "no tokens left");
        // One second later two tokens, but only one slot (3 in flight max).
        assert_eq!(q.admit(t0 + Duration::from_secs(1)), vec![2]);
        q.settle(9);
        q.settle(1);
        assert_eq!(q.admit(t0 + Duration::from_secs(2)), vec![3, 4]);
        q.remove(5);
        assert_eq!(q.admit(t0 + Duration::from_secs(10)), Vec::<i64>::new());
        assert_eq!(q.in_flight(), 3);
        q.push(2, Priority::High);
        assert_eq!(
            q.waiting(),
            0,
            "a device already connecting is not queued twice"
        );
    }
}
