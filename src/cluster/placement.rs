//! Placement rules, pure: each live node's fair share of the devices, how many ownerless
//! devices a node claims, and where a node above its share hands a device.
//!
//! The rule is least-loaded by capacity: a live, non-draining node's share is the wanted devices
//! times its capacity over the live capacity, rounded up and capped at its capacity. Rounding up
//! means the shares cover every device; a node never claims beyond its share, except ownerless
//! devices that stayed ownerless a whole heartbeat (the others are full), up to its capacity.

use std::collections::HashMap;

/// One node as the last heartbeat saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    /// Node name.
    pub id: String,
    /// Most devices it runs.
    pub capacity: u64,
    /// Devices whose live lease it holds.
    pub devices: u64,
    /// Heartbeat within the lease time.
    pub live: bool,
    /// Handing its devices to the others.
    pub draining: bool,
}

impl NodeLoad {
    /// Whether devices may be placed on it.
    fn takes_devices(&self) -> bool {
        self.live && !self.draining
    }
}

/// Each node's fair share of `wanted` devices (0 for dead and draining nodes).
pub fn shares(nodes: &[NodeLoad], wanted: u64) -> HashMap<String, u64> {
    let live_capacity: u64 = nodes
        .iter()
        .filter(|n| n.takes_devices())
        .map(|n| n.capacity)
        .sum();
    nodes
        .iter()
        .map(|n| {
            let share = if n.takes_devices() && live_capacity > 0 {
                (wanted * n.capacity)
                    .div_ceil(live_capacity)
                    .min(n.capacity)
            } else {
                0
            };
            (n.id.clone(), share)
        })
        .collect()
}

/// Devices the live, non-draining nodes can still take before every one is at capacity.
pub fn room(nodes: &[NodeLoad]) -> u64 {
    nodes
        .iter()
        .filter(|n| n.takes_devices())
        .map(|n| n.capacity.saturating_sub(n.devices))
        .sum()
}

/// How many ownerless devices a node holding `owned` claims now: up to its share, or, when
/// ownerless devices outlasted a heartbeat (`stale`), up to its capacity.
pub fn claim_limit(owned: u64, share: u64, capacity: u64, stale: bool) -> u64 {
    let up_to = if stale { capacity } else { share.min(capacity) };
    up_to.saturating_sub(owned)
}

/// Where node `me` (holding `owned`) hands its next device, if it should: when it drains,
/// or holds more than its share plus `slack`, to the live node furthest below its share with
/// room left. `nodes` and `shares` are as [`shares`] saw them.
pub fn handover_target<'a>(
    me: &str,
    owned: u64,
    draining: bool,
    nodes: &'a [NodeLoad],
    shares: &HashMap<String, u64>,
    slack: u64,
) -> Option<&'a NodeLoad> {
    let my_share = shares.get(me).copied().unwrap_or(0);
    if owned == 0 || (!draining && owned <= my_share + slack) {
        return None;
    }
    nodes
        .iter()
        .filter(|n| n.id != me && n.takes_devices() && n.devices < n.capacity)
        .map(|n| (n, shares.get(&n.id).copied().unwrap_or(0)))
        // Below its share, or (when draining) any room at all.
        .filter(|(n, share)| draining || n.devices < *share)
        .max_by_key(|(n, share)| (share.saturating_sub(n.devices), n.capacity - n.devices))
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u64, devices: u64) -> NodeLoad {
        NodeLoad {
            id: id.into(),
            capacity,
            devices,
            live: true,
            draining: false,
        }
    }

    /// A node whose heartbeat stopped, of capacity 3,000.
    fn dead(id: &str, devices: u64) -> NodeLoad {
        NodeLoad {
            live: false,
            ..node(id, 3000, devices)
        }
    }

    /// A live node of capacity 3,000 that is draining.
    fn draining(id: &str, devices: u64) -> NodeLoad {
        NodeLoad {
            draining: true,
            ..node(id, 3000, devices)
        }
    }

    #[test]
    fn shares_follow_capacity_and_cover_every_device() {
        let nodes = [node("a", 3000, 0), node("b", 3000, 0), node("c", 1500, 0)];
        let shares = shares(&nodes, 6001);
        assert_eq!(shares["a"], 2401);
        assert_eq!(shares["c"], 1201);
        assert!(shares.values().sum::<u64>() >= 6001);
    }

    #[test]
    fn dead_and_draining_nodes_get_no_share_and_shares_stop_at_capacity() {
        let nodes = [node("a", 3000, 0), dead("dead", 3000), draining("d", 10)];
        let shares = shares(&nodes, 9000);
        assert_eq!((shares["a"], shares["dead"], shares["d"]), (3000, 0, 0));
    }

    #[test]
    fn claims_stop_at_the_share_unless_devices_stay_ownerless() {
        assert_eq!(claim_limit(100, 150, 3000, false), 50);
        assert_eq!(claim_limit(200, 150, 3000, false), 0);
        assert_eq!(claim_limit(200, 150, 3000, true), 2800);
        assert_eq!(claim_limit(3000, 3000, 3000, true), 0);
    }

    #[test]
    fn room_counts_only_nodes_that_take_devices() {
        let nodes = [
            node("a", 3000, 2990),
            node("b", 3000, 3000),
            dead("dead", 0),
            draining("d", 0),
        ];
        assert_eq!(room(&nodes), 10);
        assert_eq!(room(&[node("a", 3000, 3001)]), 0);
    }

    #[test]
    fn a_node_above_its_share_hands_over_to_the_emptiest() {
        let nodes = [
            node("a", 3000, 3000),
            node("b", 3000, 2999),
            node("c", 3000, 0),
        ];
        let shares = shares(&nodes, 5999);
        let to = handover_target("a", 3000, false, &nodes, &shares, 1).unwrap();
        assert_eq!(to.id, "c");
        // Within its share plus slack: nothing moves.
        let even = [node("a", 3000, 2000), node("b", 3000, 2000)];
        let shares = super::shares(&even, 4000);
        assert!(handover_target("a", 2000, false, &even, &shares, 1).is_none());
    }

    #[test]
    fn a_draining_node_hands_everything_to_nodes_with_room() {
        let nodes = [draining("a", 10), node("b", 3000, 3000), node("c", 3000, 5)];
        let shares = shares(&nodes, 3015);
        let to = handover_target("a", 10, true, &nodes, &shares, 1).unwrap();
        assert_eq!(to.id, "c");
        let full = [node("a", 3000, 10), node("b", 3000, 3000)];
        assert!(handover_target("a", 10, true, &full, &shares, 1).is_none());
    }
}
