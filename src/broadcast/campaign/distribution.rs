//! How a campaign spreads its rows over devices. Its [`Distribution`] (from its kind) decides
//! which leads it takes, how a lost or failing device's share moves on and when it is done;
//! [`assign`] and [`distribute`] pick the device of each next row. Pure: no actix, no database
//! (the caller reads each device's remaining capacity and health and passes them in).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::model::CampaignKind;

/// How a campaign spreads its rows over devices; read from its stored kind (and limit) by
/// [`Campaign::distribution`](super::model::Campaign::distribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// One message to every lead of the target. Rows go to devices by remaining daily
    /// capacity, a lost device's rows move to the online ones, and idle devices take over the
    /// tail of a long queue.
    Broadcast,
    /// AI lead distribution: the target's pool leads (those without a device) are spread over
    /// the online devices by room × health, and each lead becomes its device's. What finds no
    /// room is skipped and stays in the pool; a device whose send fails is left out and its
    /// share moves on.
    Ai {
        /// At most this many leads per device.
        per_device_limit: u64,
    },
    /// A sequence's hidden carrier: the sequence engine writes its rows one step at a time; it
    /// runs as long as the sequence exists.
    Sequence,
}

impl Distribution {
    /// The distribution of a campaign of `kind` with `per_device_limit`. An AI campaign stored
    /// without a limit (the API refuses one) has room for nothing, so it sends nothing.
    pub fn of(kind: CampaignKind, per_device_limit: Option<i64>) -> Self {
        match kind {
            CampaignKind::Broadcast => Self::Broadcast,
            CampaignKind::Ai => Self::Ai {
                per_device_limit: per_device_limit.map_or(0, |n| n.max(0) as u64),
            },
            CampaignKind::Sequence => Self::Sequence,
        }
    }

    /// Whether it takes only pool leads (without a device), skips a lead no device has room
    /// for, and makes each lead its device's.
    pub fn takes_from_pool(self) -> bool {
        matches!(self, Self::Ai { .. })
    }

    /// Whether a device whose send failed or was rate limited leaves the run (its rows move
    /// on) instead of retrying at its pace.
    pub fn leaves_on_error(self) -> bool {
        matches!(self, Self::Ai { .. })
    }

    /// Whether the campaign completes once nothing is left to send (a sequence's carrier never
    /// does: the next step may come any time).
    pub fn completes(self) -> bool {
        !matches!(self, Self::Sequence)
    }

    /// The device of each next row, given each device's remaining daily capacity and (AI
    /// distribution) its health, in the same order.
    pub fn shares(self, capacities: &[(i64, u64)], health: &[f64]) -> Shares {
        match self {
            Self::Ai { per_device_limit } => distribute(capacities, health, per_device_limit),
            Self::Broadcast | Self::Sequence => assign(capacities),
        }
    }
}

/// Picks the device of each next row: each device has a weight and a room (rows it may still
/// take); its rows come in proportion to its weight, spread evenly over the run and interleaved
/// with the others' (stride scheduling: O(log devices) a row, which matters for a million
/// leads over thousands of devices). See [`assign`] and [`distribute`].
#[derive(Debug, Clone)]
pub struct Shares {
    /// Devices with room left, by the turn of their next row (earliest first).
    turns: BinaryHeap<Reverse<Turn>>,
}

/// A device's place in the [`Shares`] order: its next row falls at "time"
/// (rows + ½) ÷ weight, the middle of its next share of a run of unit length, so a device of
/// twice the weight comes twice as often.
#[derive(Debug, Clone)]
struct Turn {
    rows: u64,
    weight: f64,
    room: u64,
    /// Position among the devices given: ties go to the earlier one.
    index: usize,
    device: i64,
}

impl Turn {
    /// When its next row falls.
    fn at(&self) -> f64 {
        (self.rows as f64 + 0.5) / self.weight
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Turn {}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at()
            .total_cmp(&other.at())
            .then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Shares {
    /// Shares of `(device, weight, room)`; devices of no weight or room take no rows.
    fn new(devices: impl Iterator<Item = (i64, f64, u64)>) -> Self {
        let turns = devices
            .enumerate()
            .filter(|(_, (_, weight, room))| *weight > 0.0 && *room > 0)
            .map(|(index, (device, weight, room))| {
                Reverse(Turn {
                    rows: 0,
                    weight,
                    room,
                    index,
                    device,
                })
            })
            .collect();
        Self { turns }
    }

    /// The device of the next row (`None`: no device has room left).
    pub fn next_device(&mut self) -> Option<i64> {
        let mut next = self.turns.peek_mut()?;
        let turn = &mut next.0;
        let device = turn.device;
        turn.rows += 1;
        if turn.rows >= turn.room {
            std::collections::binary_heap::PeekMut::pop(next);
        }
        Some(device)
    }
}

/// Broadcast shares: rows go to devices in proportion to their remaining daily capacity,
/// without limit. Devices with no capacity get rows only when all are full (then equal
/// shares); with no device every row waits unassigned.
pub fn assign(capacities: &[(i64, u64)]) -> Shares {
    let all_full = capacities.iter().all(|(_, c)| *c == 0);
    Shares::new(capacities.iter().map(|(device, capacity)| {
        let weight = if all_full { 1.0 } else { *capacity as f64 };
        (*device, weight, u64::MAX)
    }))
}

/// AI distribution: each device takes at most `limit` leads and no more than its remaining
/// daily capacity, in proportion to that room × its health; `None` for leads no device has
/// room for.
pub fn distribute(capacities: &[(i64, u64)], health: &[f64], limit: u64) -> Shares {
    Shares::new(
        capacities
            .iter()
            .zip(health)
            .map(|((device, capacity), health)| {
                let room = (*capacity).min(limit);
                (*device, room as f64 * health, room)
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::{assign, distribute, Distribution};
    use crate::broadcast::campaign::model::CampaignKind;

    /// The devices of the first `count` rows.
    fn take(count: usize, mut next: impl FnMut() -> Option<i64>) -> Vec<Option<i64>> {
        (0..count).map(|_| next()).collect()
    }

    #[test]
    fn assignment_follows_remaining_capacity_and_interleaves() {
        let mut shares = assign(&[(1, 100), (2, 200), (3, 0)]);
        let rows = take(60, || shares.next_device());
        let count = |d| rows.iter().filter(|r| **r == Some(d)).count();
        assert_eq!((count(1), count(2), count(3)), (20, 40, 0));
        assert_ne!(rows[0], rows[1], "shares interleave");
    }

    #[test]
    fn assignment_is_exactly_proportional_over_many_devices() {
        // 3,000 devices of capacity 1..=3: every full round of 6,000 rows gives each device
        // exactly its capacity, and no device waits much longer than its stride (rows per
        // round ÷ capacity; ties among equal devices add to it) for its next row.
        let caps: Vec<(i64, u64)> = (0..3000).map(|d| (d, d as u64 % 3 + 1)).collect();
        let mut shares = assign(&caps);
        let rows = take(12_000, || shares.next_device());
        let mut counts = vec![0u64; 3000];
        let mut last = vec![None::<usize>; 3000];
        for (at, device) in rows.iter().enumerate() {
            let d = device.expect("a device") as usize;
            counts[d] += 1;
            if let Some(before) = last[d] {
                let stride = 6000 / caps[d].1 as usize;
                assert!(at - before <= 2 * stride, "device {d}: gap {}", at - before);
            }
            last[d] = Some(at);
        }
        assert!(counts.iter().zip(&caps).all(|(n, (_, c))| *n == 2 * c));
    }

    #[test]
    fn distribution_fills_each_device_to_its_limit_and_leaves_the_rest() {
        let caps: Vec<(i64, u64)> = (1..=7).map(|d| (d, 500)).collect();
        let mut shares = distribute(&caps, &[1.0; 7], 100);
        let rows = take(1000, || shares.next_device());
        for d in 1..=7 {
            assert_eq!(rows.iter().filter(|r| **r == Some(d)).count(), 100);
        }
        assert_eq!(rows.iter().filter(|r| r.is_none()).count(), 300);
        assert_ne!(rows[0], rows[1], "shares interleave");
    }

    #[test]
    fn distribution_favours_healthy_devices_and_respects_daily_capacity() {
        let mut shares = distribute(&[(1, 100), (2, 100), (3, 5)], &[1.0, 0.25, 1.0], 100);
        let rows = take(30, || shares.next_device());
        let count = |d| rows.iter().filter(|r| **r == Some(d)).count();
        assert!(count(1) > 2 * count(2), "{} vs {}", count(1), count(2));
        assert!(count(3) <= 5);
        assert_eq!(count(1) + count(2) + count(3), 30);
    }

    #[test]
    fn full_devices_share_equally_and_no_device_leaves_rows_unassigned() {
        let mut shares = assign(&[(1, 0), (2, 0), (3, 0)]);
        let rows = take(9, || shares.next_device());
        assert!([1, 2, 3]
            .iter()
            .all(|d| rows.iter().filter(|r| **r == Some(*d)).count() == 3));
        let mut none = assign(&[]);
        assert_eq!(take(3, || none.next_device()), vec![None, None, None]);
    }

    #[test]
    fn the_distribution_follows_the_stored_kind_and_limit() {
        assert_eq!(
            Distribution::of(CampaignKind::Broadcast, None),
            Distribution::Broadcast
        );
        assert_eq!(
            Distribution::of(CampaignKind::Ai, Some(100)),
            Distribution::Ai {
                per_device_limit: 100
            }
        );
        assert_eq!(
            Distribution::of(CampaignKind::Ai, None),
            Distribution::Ai {
                per_device_limit: 0
            }
        );
        let sequence = Distribution::of(CampaignKind::Sequence, None);
        assert!(!sequence.completes() && !sequence.takes_from_pool());
        assert!(Distribution::of(CampaignKind::Ai, Some(1)).leaves_on_error());
    }
}
