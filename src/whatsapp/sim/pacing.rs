//! Pacing rules a WhatsApp account is punished for breaking, as pure logic: given a device's
//! recent sends and the moment of a new one, which rules does the new send break?
//!
//! The rules: a shortest gap between two sends, and caps on sends in any trailing minute and
//! any trailing day (windows scaled by the time scale). A zero gap or cap means "no rule". The
//! simulator counts breaches rather than refusing the send, as WhatsApp delivers first and bans
//! later; the throttle exists to keep these counts at zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::clock::Clock;
use crate::config::SimSettings;

/// A simulated minute, before scaling.
const MINUTE: Duration = Duration::from_secs(60);
/// A simulated day, before scaling.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The rules, windows already converted to real time.
#[derive(Debug, Clone)]
pub(super) struct PacingRules {
    /// Shortest allowed gap between two sends of a device.
    min_gap: Duration,
    /// Most sends in any window of `minute`.
    per_minute: u32,
    /// Most sends in any window of `day`.
    per_day: u32,
    /// A scaled minute.
    minute: Duration,
    /// A scaled day.
    day: Duration,
}

impl PacingRules {
    /// The rules of the settings, in real time for `clock`.
    pub(super) fn new(settings: &SimSettings, clock: Clock) -> Self {
        Self {
            min_gap: clock.ms(settings.min_send_gap_ms),
            per_minute: settings.max_sends_per_minute,
            per_day: settings.max_sends_per_day,
            minute: clock.scale(MINUTE),
            day: clock.scale(DAY),
        }
    }

    /// How many past sends the rules ever look at: the larger cap (at least the last send).
    fn memory(&self) -> usize {
        self.per_minute.max(self.per_day).max(1) as usize
    }
}

/// Which rules one send broke.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Breaches {
    /// Too soon after the previous send.
    pub(super) min_gap: bool,
    /// Over the per-minute cap.
    pub(super) per_minute: bool,
    /// Over the per-day cap.
    pub(super) per_day: bool,
}

impl Breaches {
    /// True when the send broke at least one rule.
    pub(super) fn any(self) -> bool {
        self.min_gap || self.per_minute || self.per_day
    }
}

/// A device's recent sends, oldest first; only as many as the rules can look at, so a device
/// costs at most `max(per_minute, per_day)` instants.
#[derive(Debug, Default)]
pub(super) struct SendLog {
    /// Send instants, non-decreasing (recorded under the network lock).
    sends: VecDeque<Instant>,
}

impl SendLog {
    /// Records a send at `now` and returns the rules it broke.
    pub(super) fn record(&mut self, now: Instant, rules: &PacingRules) -> Breaches {
        let breaches = Breaches {
            min_gap: self
                .sends
                .back()
                .is_some_and(|last| now.saturating_duration_since(*last) < rules.min_gap),
            per_minute: self.cap_reached(now, rules.per_minute, rules.minute),
            per_day: self.cap_reached(now, rules.per_day, rules.day),
        };
        self.sends.push_back(now);
        while self.sends.len() > rules.memory() {
            self.sends.pop_front();
        }
        breaches
    }

    /// True when `cap` sends already lie within `window` before `now`, so one more breaks it.
    /// The sends are ordered, so it is enough to look at the `cap`-th most recent.
    fn cap_reached(&self, now: Instant, cap: u32, window: Duration) -> bool {
        let cap = cap as usize;
        cap > 0
            && self
                .sends
                .len()
                .checked_sub(cap)
                .and_then(|index| self.sends.get(index))
                .is_some_and(|sent| now.saturating_duration_since(*sent) < window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(min_gap_ms: u64, per_minute: u32, per_day: u32) -> PacingRules {
        PacingRules {
            min_gap: Duration::from_millis(min_gap_ms),
            per_minute,
            per_day,
            minute: MINUTE,
            day: DAY,
        }
    }

    /// Records sends at the given offsets (ms) and returns each one's breaches.
    fn run(rules: &PacingRules, offsets_ms: &[u64]) -> Vec<Breaches> {
        let start = Instant::now();
        let mut log = SendLog::default();
        offsets_ms
            .iter()
            .map(|ms| log.record(start + Duration::from_millis(*ms), rules))
            .collect()
    }

    #[test]
    fn well_spaced_sends_break_nothing() {
        let out = run(&rules(2000, 12, 1000), &[0, 5000, 10_000, 15_000]);
        assert!(out.iter().all(|b| !b.any()));
    }

    #[test]
    fn a_send_inside_the_gap_breaks_min_gap_only() {
        let out = run(&rules(2000, 12, 1000), &[0, 1999, 4000]);
        assert_eq!(out[0], Breaches::default());
        assert_eq!(
            out[1],
            Breaches {
                min_gap: true,
                ..Breaches::default()
            }
        );
        assert!(!out[2].any());
    }

    #[test]
    fn the_minute_cap_counts_a_trailing_window() {
        // Three per minute: the fourth within 60 s breaks it; once the first ages out, it is fine.
        let out = run(
            &rules(0, 3, 0),
            &[0, 10_000, 20_000, 30_000, 60_000, 80_000],
        );
        let per_minute: Vec<bool> = out.iter().map(|b| b.per_minute).collect();
        assert_eq!(per_minute, [false, false, false, true, true, false]);
        assert!(out.iter().all(|b| !b.min_gap && !b.per_day));
    }

    #[test]
    fn the_day_cap_counts_a_trailing_day() {
        let day = DAY.as_millis() as u64;
        let out = run(&rules(0, 0, 2), &[0, 1000, 2000, day + 1000, day + 1500]);
        let per_day: Vec<bool> = out.iter().map(|b| b.per_day).collect();
        assert_eq!(per_day, [false, false, true, false, true]);
    }

    #[test]
    fn zero_means_no_rule() {
        let out = run(&rules(0, 0, 0), &[0, 0, 0, 1, 1]);
        assert!(out.iter().all(|b| !b.any()));
    }

    #[test]
    fn windows_follow_the_time_scale() {
        let settings = SimSettings {
            reply_probability: 0.0,
            reply_delay_ms: 0,
            image_reply_probability: 0.0,
            lid_probability: 0.0,
            auto_scan_after_ms: 0,
            qr_rotate_ms: 0,
            delivered_after_ms: 0,
            read_after_ms: 0,
            min_send_gap_ms: 2000,
            max_sends_per_minute: 2,
            max_sends_per_day: 0,
            time_scale: 1000.0,
            demo_devices: 0,
            chatter_interval_ms: 0,
            history_chats: 0,
            groups: 0,
            remote: String::new(),
        };
        let rules = PacingRules::new(&settings, Clock::new(settings.time_scale));
        // Scaled: a 2 ms gap and a 60 ms minute.
        let out = run(&rules, &[0, 1, 3, 61, 200]);
        let gaps: Vec<bool> = out.iter().map(|b| b.min_gap).collect();
        let caps: Vec<bool> = out.iter().map(|b| b.per_minute).collect();
        assert_eq!(gaps, [false, true, false, false, false]);
        assert_eq!(caps, [false, false, true, false, false]);
    }

    #[test]
    fn the_log_keeps_only_what_the_rules_need() {
        let rules = rules(0, 3, 5);
        let start = Instant::now();
        let mut log = SendLog::default();
        for ms in 0..100 {
            log.record(start + Duration::from_millis(ms), &rules);
        }
        assert_eq!(log.sends.len(), 5);
    }
}
