//! The wall clock that schedules sequences (step delays, send windows). It is the system clock;
//! tests move it forward to see days of drip steps in seconds, without touching real time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// The system clock plus an offset that only tests change. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock so that it reads `at` now (tests).
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_milliseconds();
        self.offset_ms.store(offset, Ordering::Relaxed);
    }

    /// Moves the clock forward by `by` (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_advance_move_now_and_clones_follow() {
        let clock = Clock::system();
        let twin = clock.clone();
        let at = DateTime::parse_from_rfc3339("2030-01-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(at);
        assert!((twin.now() - at).num_seconds().abs() < 5);
        twin.advance(Duration::hours(25));
        assert!((clock.now() - at - Duration::hours(25)).num_seconds().abs() < 5);
    }
}
