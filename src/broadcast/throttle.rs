//! The Throttle: one actor that paces every device like a person. A sender asks it for a slot
//! before each message; the slot honours the device's random delay (uniform between min and
//! max), per-minute and per-day caps (warm-up included), quiet hours in the tenant's zone, and any
//! rate-limit penalty. Slots are reserved, so several campaigns sharing a device are serialized.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::metrics::BroadcastMetrics;
use super::pacing::Pacing;

/// A simulated minute.
const MINUTE: Duration = Duration::from_secs(60);
/// A simulated day.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Paces devices; see the module documentation.
pub struct Throttle {
    /// Per device: its recent (reserved or confirmed) send instants.
    devices: HashMap<i64, DeviceLog>,
    /// Simulated seconds per real second (the simulator's `--time-scale`; 1 with real devices).
    time_scale: f64,
    /// Up while it runs (see [`Throttle::watched`]).
    beacon: crate::metrics::Beacon,
    /// Waits and deferrals, when observed (see [`Throttle::observed`]).
    metrics: Option<BroadcastMetrics>,
}

/// One device's recent sends.
#[derive(Debug, Default)]
struct DeviceLog {
    /// Send instants, non-decreasing; only as many as the largest cap needs.
    sends: VecDeque<Instant>,
    /// No send before this (a rate-limit answer from WhatsApp).
    penalty_until: Option<Instant>,
    /// The lease epoch the log was seeded under.
    epoch: i64,
}

/// When a sender may send its next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The moment to send.
    pub send_at: Instant,
    /// How long before `send_at` to start showing "typing…".
    pub typing: Duration,
}

/// Reserve the device's next send slot.
#[derive(Debug, Message)]
#[rtype(result = "Slot")]
pub struct Reserve {
    /// Device.
    pub device_id: i64,
    /// The campaign's effective pacing.
    pub pacing: Arc<Pacing>,
    /// Whole (simulated) days since the device was linked, for warm-up.
    pub days_linked: u32,
    /// The tenant's zone, for quiet hours.
    pub time_zone: Tz,
    /// Length of the message, for the typing time.
    pub chars: usize,
}

/// A reserved slot was used at `actual` (later than planned when the database was slow): the
/// next delay counts from the real send.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Confirm {
    /// Device.
    pub device_id: i64,
    /// The slot as reserved.
    pub reserved: Instant,
    /// When the send happened.
    pub actual: Instant,
}

/// Seeds a device's caps with the sends it made before this process started, or before its
/// lease came (back) to this node (ignored when the device already has a log of that lease).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Seed {
    /// Device.
    pub device_id: i64,
    /// The device's lease epoch on a cluster (0 on a single node).
    pub epoch: i64,
    /// Past send times.
    pub sent: Vec<DateTime<Utc>>,
}

/// WhatsApp asked this device to slow down: nothing is sent before `wait` has passed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Penalize {
    /// Device.
    pub device_id: i64,
    /// Real time to wait.
    pub wait: Duration,
}

/// Whether the Throttle knows a device under this lease (so a sender seeds it once per process
/// and lease: a device that comes back from another node brings that node's sends).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Knows {
    /// Device.
    pub device_id: i64,
    /// The device's lease epoch on a cluster (0 on a single node).
    pub epoch: i64,
}

impl Throttle {
    /// A Throttle whose delays and windows run `time_scale` times faster than real time.
    pub fn new(time_scale: f64) -> Self {
        let time_scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        Self {
            devices: HashMap::new(),
            time_scale,
            beacon: crate::metrics::Beacon::detached(),
            metrics: None,
        }
    }

    /// The real length of a simulated duration.
    fn scale(&self, simulated: Duration) -> Duration {
        Duration::try_from_secs_f64(simulated.as_secs_f64() / self.time_scale).unwrap_or(DAY)
    }

    /// Computes and records the next slot of `request.device_id` at or after `now`.
    fn reserve(&mut self, request: &Reserve, now: Instant, wall_now: DateTime<Utc>) -> Slot {
        let pacing = &request.pacing;
        let delay = self.scale(pacing.random_delay(&mut rand::rng()));
        let (minute, day) = (self.scale(MINUTE), self.scale(DAY));
        let typing = self.scale(pacing.typing_time(request.chars));
        let per_minute = pacing.per_minute.max(1) as usize;
        let per_day = pacing.daily_cap(request.days_linked).max(1) as usize;
        let quiet = pacing.quiet();
        let log = self.devices.entry(request.device_id).or_default();
        let mut at = match log.sends.back() {
            Some(last) => now.max(*last + delay),
            // The first send still leaves time to type.
            None => now + typing,
        };
        // Which rules pushed the slot, for wafleet_throttle_deferred_total.
        let mut pushed = Deferrals::default();
        if let Some(until) = log.penalty_until.filter(|until| *until > at) {
            at = until;
            pushed.rate_limited = true;
        }
        // Each rule can only push the slot later; repeat until all agree (bounded).
        for _ in 0..4 {
            let before = at;
            let minute_ok = window_allows(&log.sends, per_minute, minute, at);
            pushed.per_minute |= minute_ok > at;
            at = minute_ok;
            let day_ok = window_allows(&log.sends, per_day, day, at);
            pushed.per_day |= day_ok > at;
            at = day_ok;
            if let Some(quiet) = quiet {
                let wall = wall_now + chrono::Duration::from_std(at - now).unwrap_or_default();
                let local = wall.with_timezone(&request.time_zone).time();
                let remaining = quiet.remaining(local);
                pushed.quiet_hours |= !remaining.is_zero();
                at += remaining;
            }
            if at == before {
                break;
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics
                .throttle_wait
                .observe(at.saturating_duration_since(now).as_secs_f64());
            for reason in pushed.reasons() {
                metrics.deferred.with_label_values(&[reason]).inc();
            }
        }
        log.sends.push_back(at);
        let keep = per_minute.max(per_day);
        while log.sends.len() > keep {
            log.sends.pop_front();
        }
        Slot {
            send_at: at,
            typing: typing.min(at.saturating_duration_since(now)),
        }
    }

    /// Moves a reserved send to when it happened (never earlier than reserved).
    fn confirm(&mut self, msg: &Confirm) {
        let Some(log) = self.devices.get_mut(&msg.device_id) else {
            return;
        };
        let Some(mut at) = log.sends.iter().rposition(|s| *s == msg.reserved) else {
            return;
        };
        log.sends[at] = msg.actual.max(msg.reserved);
        // The send only moves later: it moves past the slots it now follows, keeping the log
        // ordered without sorting it.
        while at + 1 < log.sends.len() && log.sends[at] > log.sends[at + 1] {
            log.sends.swap(at, at + 1);
            at += 1;
        }
    }
}

/// The rules that pushed one slot later.
#[derive(Debug, Default)]
struct Deferrals {
    rate_limited: bool,
    per_minute: bool,
    per_day: bool,
    quiet_hours: bool,
}

impl Deferrals {
    /// The metric labels of the rules that applied.
    fn reasons(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.rate_limited, "rate_limited"),
            (self.per_minute, "per_minute"),
            (self.per_day, "per_day"),
            (self.quiet_hours, "quiet_hours"),
        ]
        .into_iter()
        .filter_map(|(applied, reason)| applied.then_some(reason))
    }
}

/// The earliest instant ≥ `at` at which one more send keeps at most `cap` sends in any `window`.
fn window_allows(sends: &VecDeque<Instant>, cap: usize, window: Duration, at: Instant) -> Instant {
    if sends.len() < cap {
        return at;
    }
    // The cap-th most recent send must have left the window.
    let oldest_counted = sends[sends.len() - cap];
    at.max(oldest_counted + window)
}

impl Throttle {
    /// The same throttle, reporting whether it runs on `beacon`.
    pub fn watched(mut self, beacon: crate::metrics::Beacon) -> Self {
        self.beacon = beacon;
        self
    }

    /// The same throttle, recording its waits and deferrals in `metrics`.
    pub fn observed(mut self, metrics: BroadcastMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl Actor for Throttle {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.beacon.up();
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for Throttle {
    /// The send logs survive a restart: forgetting them would let a device send too fast.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
    }
}

impl Handler<Reserve> for Throttle {
    type Result = MessageResult<Reserve>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.reserve(&msg, Instant::now(), Utc::now()))
    }
}

impl Handler<Confirm> for Throttle {
    type Result = ();

    fn handle(&mut self, msg: Confirm, _: &mut Context<Self>) {
        self.confirm(&msg);
    }
}

impl Handler<Seed> for Throttle {
    type Result = ();

    fn handle(&mut self, msg: Seed, _: &mut Context<Self>) {
        let known = self.devices.get(&msg.device_id);
        if known.is_some_and(|log| log.epoch == msg.epoch) {
            return;
        }
        let penalty_until = known.and_then(|log| log.penalty_until);
        let (now, wall_now) = (Instant::now(), Utc::now());
        let mut sends: Vec<Instant> = msg
            .sent
            .iter()
            .filter_map(|t| (wall_now - *t).to_std().ok())
            .filter_map(|ago| now.checked_sub(ago))
            .collect();
        sends.sort();
        self.devices.insert(
            msg.device_id,
            DeviceLog {
                sends: sends.into(),
                penalty_until,
                epoch: msg.epoch,
            },
        );
    }
}

impl Handler<Penalize> for Throttle {
    type Result = ();

    fn handle(&mut self, msg: Penalize, _: &mut Context<Self>) {
        let log = self.devices.entry(msg.device_id).or_default();
        let until = Instant::now() + msg.wait;
        log.penalty_until = Some(log.penalty_until.map_or(until, |p| p.max(until)));
    }
}

impl Handler<Knows> for Throttle {
    type Result = bool;

    fn handle(&mut self, msg: Knows, _: &mut Context<Self>) -> bool {
        self.devices
            .get(&msg.device_id)
            .is_some_and(|log| log.epoch == msg.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing(min: u64, max: u64, per_minute: u32, per_day: u32, quiet: &str) -> Arc<Pacing> {
        Arc::new(Pacing {
            min_delay_ms: min,
            max_delay_ms: max,
            per_minute,
            per_day,
            typing: false,
            quiet_hours: quiet.into(),
            warmup_days: 0,
            warmup_first_day: 1,
        })
    }

    fn request(p: Arc<Pacing>) -> Reserve {
        Reserve {
            device_id: 1,
            pacing: p,
            days_linked: 30,
            time_zone: chrono_tz::UTC,
            chars: 20,
        }
    }

    #[test]
    fn gaps_are_random_within_min_and_max() {
        let mut throttle = Throttle::new(1.0);
        let (now, wall) = (Instant::now(), Utc::now());
        let r = request(pacing(5_000, 15_000, 100, 100_000, ""));
        let slots: Vec<Instant> = (0..200)
            .map(|_| throttle.reserve(&r, now, wall).send_at)
            .collect();
        let gaps: Vec<u128> = slots
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert!(
            gaps.iter().all(|g| (5_000..=15_000).contains(g)),
            "{gaps:?}"
        );
        assert!(gaps.iter().any(|g| *g < 7_000) && gaps.iter().any(|g| *g > 13_000));
    }

    #[test]
    fn per_minute_and_per_day_caps_hold_in_every_window() {
        let mut throttle = Throttle::new(1.0);
        let (now, wall) = (Instant::now(), Utc::now());
        let r = request(pacing(2_000, 2_000, 12, 40, ""));
        let slots: Vec<Instant> = (0..100)
            .map(|_| throttle.reserve(&r, now, wall).send_at)
            .collect();
        for (i, s) in slots.iter().enumerate() {
            let in_minute = slots[..=i].iter().filter(|t| *s - **t < MINUTE).count();
            let in_day = slots[..=i].iter().filter(|t| *s - **t < DAY).count();
            assert!(in_minute <= 12, "slot {i}: {in_minute} in a minute");
            assert!(in_day <= 40, "slot {i}: {in_day} in a day");
        }
        assert!(
            slots[40] - slots[0] >= DAY,
            "the 41st send waits for the next day"
        );
    }

    #[test]
    fn time_scale_shrinks_delays() {
        let mut throttle = Throttle::new(1_000.0);
        let (now, wall) = (Instant::now(), Utc::now());
        let r = request(pacing(5_000, 5_000, 12, 1_000, ""));
        let a = throttle.reserve(&r, now, wall).send_at;
        let b = throttle.reserve(&r, now, wall).send_at;
        assert_eq!(b - a, Duration::from_millis(5));
    }

    #[test]
    fn quiet_hours_push_the_slot_to_their_end() {
        let mut throttle = Throttle::new(1.0);
        let now = Instant::now();
        let wall = DateTime::parse_from_rfc3339("2026-11-25T23:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = request(pacing(2_000, 2_000, 12, 1_000, "22:00-08:00"));
        let slot = throttle.reserve(&r, now, wall).send_at;
        assert_eq!(slot - now, Duration::from_secs(9 * 3600));
    }

    #[test]
    fn a_late_send_keeps_the_log_ordered() {
        let mut throttle = Throttle::new(1.0);
        let (now, wall) = (Instant::now(), Utc::now());
        let r = request(pacing(1_000, 1_000, 100, 1_000, ""));
        let slots: Vec<Instant> = (0..4)
            .map(|_| throttle.reserve(&r, now, wall).send_at)
            .collect();
        // The second reserved send happened after the third and fourth slots.
        let late = slots[3] + Duration::from_millis(500);
        throttle.confirm(&Confirm {
            device_id: 1,
            reserved: slots[1],
            actual: late,
        });
        let log: Vec<Instant> = throttle.devices[&1].sends.iter().copied().collect();
        assert_eq!(log, [slots[0], slots[2], slots[3], late]);
        assert!(throttle.reserve(&r, now, wall).send_at >= late + Duration::from_secs(1));
    }

    #[test]
    fn a_penalty_delays_the_next_slot() {
        let mut throttle = Throttle::new(1.0);
        let (now, wall) = (Instant::now(), Utc::now());
        throttle.devices.entry(1).or_default().penalty_until = Some(now + Duration::from_secs(60));
        let r = request(pacing(2_000, 2_000, 12, 1_000, ""));
        assert!(throttle.reserve(&r, now, wall).send_at >= now + Duration::from_secs(60));
    }
}
