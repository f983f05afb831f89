//! A campaign the engine is running in this process ([`Run`]): its plan, what it tells its
//! lanes, and each lane's own control channel, through which a single lane can be withdrawn.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use tokio::sync::watch;

use super::lane::{Control, Plan};
use super::model::{Campaign, OnDeviceLoss};
use super::progress::Progress;
use crate::cluster::ClusterView;
use crate::device::model::Device;

/// A campaign this process is running.
pub(super) struct Run {
    pub(super) plan: Rc<Plan>,
    /// What the campaign tells its lanes now (new lanes start with it).
    pub(super) control: Control,
    /// When `control` was last set here (a tick report read before then is older news).
    pub(super) control_set_at: Instant,
    pub(super) on_loss: OnDeviceLoss,
    /// Devices with a lane now, each with that lane's control channel.
    pub(super) lanes: HashMap<i64, watch::Sender<Control>>,
    /// The last progress published (unchanged progress is not published again).
    pub(super) last: Option<Progress>,
    /// A lost device's rows are being moved (AI distribution moves one at a time).
    pub(super) moving: bool,
    /// Devices whose sends failed in this run (AI distribution): treated as lost.
    pub(super) left_out: HashSet<i64>,
    /// Cancelled (or ended elsewhere) while lanes still held rows: the run stays until its last
    /// lane has given them back, then this campaign's final progress is published.
    pub(super) stopping: Option<Campaign>,
    /// No tick reports on the campaign before this (see `REPORT_COST_FACTOR`).
    pub(super) report_due: Instant,
}

impl Run {
    /// A run telling its lanes `control`, with no lane yet.
    pub(super) fn new(plan: Plan, control: Control, on_loss: OnDeviceLoss) -> Self {
        Run {
            plan: Rc::new(plan),
            control,
            control_set_at: Instant::now(),
            on_loss,
            lanes: HashMap::new(),
            last: None,
            moving: false,
            left_out: HashSet::new(),
            stopping: None,
            report_due: Instant::now(),
        }
    }

    /// Tells every lane of the campaign `control` (see [`steer`] for the lanes that keep theirs).
    pub(super) fn set_control(&mut self, control: Control) {
        self.control = control;
        self.control_set_at = Instant::now();
        for lane in self.lanes.values() {
            steer(lane, control);
        }
    }

    /// Withdraws every lane (the daemon is stopping): claimed rows go back to pending.
    pub(super) fn withdraw_all(&self) {
        for lane in self.lanes.values() {
            steer(lane, Control::Withdraw);
        }
    }

    /// The devices this run may send through of `online` (its failed ones left out), and of
    /// those the ones whose lease this node holds.
    pub(super) fn usable<'a>(
        &self,
        online: &'a [Device],
        cluster: &ClusterView,
    ) -> (HashMap<i64, &'a Device>, HashMap<i64, &'a Device>) {
        let online: HashMap<i64, &Device> = online
            .iter()
            .filter(|d| !self.left_out.contains(&d.id))
            .map(|d| (d.id, d))
            .collect();
        let here = online
            .iter()
            .filter(|(device_id, _)| cluster.lease(**device_id).is_here())
            .map(|(device_id, device)| (*device_id, *device))
            .collect();
        (online, here)
    }

    /// Stops the lanes of devices the campaign may no longer use (`usable` holds the ones it
    /// may): their claimed rows go back to pending and follow the device-loss rule.
    pub(super) fn withdraw_lanes_outside(&self, campaign_id: i64, usable: &HashMap<i64, &Device>) {
        for (device_id, lane) in &self.lanes {
            if !usable.contains_key(device_id) && steer(lane, Control::Withdraw) {
                tracing::info!(
                    campaign_id,
                    device_id,
                    "lane withdrawn: the campaign may no longer use the device"
                );
            }
        }
    }
}

/// Sets a lane's control to `next`, except that a cancelled lane stays cancelled and a withdrawn
/// one (giving its rows back) can only be cancelled. Answers whether the control changed.
fn steer(lane: &watch::Sender<Control>, next: Control) -> bool {
    lane.send_if_modified(|current| {
        let change = *current != next
            && *current != Control::Cancel
            && (*current != Control::Withdraw || next == Control::Cancel);
        if change {
            *current = next;
        }
        change
    })
}
