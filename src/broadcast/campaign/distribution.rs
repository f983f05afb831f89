//! How a campaign spreads its rows over devices. Its [`Distribution`] (from its kind) decides
//! which leads it takes, how a lost or failing device's share moves on and when it is done;
//! [`assign`] and [`distribute`] pick the device of each next row. Pure: no actix, no database
//! (the caller reads each device's remaining capacity and health and passes them in).

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
            Self::Ai { per_device_limit } => {
                Shares::Distribute(distribute(capacities, health, per_device_limit))
            }
            Self::Broadcast | Self::Sequence => Shares::Assign(assign(capacities)),
        }
    }
}

/// Picks the device of each next row; see [`Distribution::shares`].
#[derive(Debug, Clone)]
pub enum Shares {
    /// Broadcast: [`assign`].
    Assign(Assign),
    /// AI distribution: [`distribute`].
    Distribute(Distribute),
}

impl Shares {
    /// The device of the next row (`None`: no device for it).
    pub fn next_device(&mut self) -> Option<i64> {
        match self {
            Self::Assign(shares) => shares.next_device(),
            Self::Distribute(shares) => shares.next_device(),
        }
    }
}

/// Broadcast shares: smooth weighted round-robin by remaining capacity; see [`assign`].
#[derive(Debug, Clone)]
pub struct Assign {
    devices: Vec<i64>,
    weights: Vec<i64>,
    total: i64,
    current: Vec<i64>,
}

/// Assigns rows to devices round-robin weighted by remaining capacity (smooth weighted
/// round-robin, so shares interleave). Devices with no capacity get rows only when all are
/// full; with no device every row waits unassigned.
pub fn assign(capacities: &[(i64, u64)]) -> Assign {
    let all_full = capacities.iter().all(|(_, c)| *c == 0);
    let weights: Vec<i64> = capacities
        .iter()
        .map(|(_, c)| if all_full { 1 } else { *c as i64 })
        .collect();
    Assign {
        devices: capacities.iter().map(|(d, _)| *d).collect(),
        total: weights.iter().sum(),
        current: vec![0; weights.len()],
        weights,
    }
}

impl Assign {
    /// The device of the next row (`None` only without devices).
    pub fn next_device(&mut self) -> Option<i64> {
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        let (best, _) = self
            .current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))?;
        self.current[best] -= self.total;
        Some(self.devices[best])
    }
}

/// AI shares: smooth weighted round-robin by room × health; see [`distribute`].
#[derive(Debug, Clone)]
pub struct Distribute {
    devices: Vec<i64>,
    room: Vec<u64>,
    health: Vec<f64>,
    current: Vec<f64>,
}

/// AI distribution: assigns leads to devices, at most `limit` each (and no more than each
/// device's remaining daily capacity), smooth weighted round-robin by remaining room × health;
/// `None` for leads no device has room for.
pub fn distribute(capacities: &[(i64, u64)], health: &[f64], limit: u64) -> Distribute {
    Distribute {
        devices: capacities.iter().map(|(d, _)| *d).collect(),
        room: capacities.iter().map(|(_, c)| (*c).min(limit)).collect(),
        health: health.to_vec(),
        current: vec![0.0; capacities.len()],
    }
}

impl Distribute {
    /// The device of the next lead (`None`: no device has room left).
    pub fn next_device(&mut self) -> Option<i64> {
        let weights: Vec<f64> = self
            .room
            .iter()
            .zip(&self.health)
            .map(|(r, h)| *r as f64 * h)
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        for (c, w) in self.current.iter_mut().zip(&weights) {
            *c += w;
        }
        let best = (0..self.current.len())
            .filter(|i| self.room[*i] > 0)
            .max_by(|a, b| self.current[*a].total_cmp(&self.current[*b]).then(b.cmp(a)))?;
        self.current[best] -= total;
        self.room[best] -= 1;
        Some(self.devices[best])
    }
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
