//! Devices: one WhatsApp account each, kept online by a supervised actor.
//!
//! - [`model`], [`store`]: rows, statuses and all device SQL.
//! - [`actor`]: `DeviceActor`, one per device, owning its session.
//! - [`supervisor`]: `DeviceSupervisor`, registry, boot, admission, crash recovery, parking.
//! - [`admission`], [`backoff`]: the pure pacing logic the supervisor applies.
//! - [`messages`]: every message the two actors exchange; [`events`]: what they publish.

pub mod actor;
pub mod admission;
pub mod backoff;
pub mod demo;
pub mod events;
pub mod messages;
pub mod model;
pub mod store;
pub mod supervisor;

pub use model::{Device, DeviceStatus};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the HTTP layer needs to reach the fleet.
#[derive(Clone)]
pub struct Fleet {
    /// The supervisor, for every device operation.
    pub supervisor: actix::Addr<supervisor::DeviceSupervisor>,
    /// Device events.
    pub bus: events::EventBus,
    /// The simulated network when the simulator is the connector and runs in this process
    /// (`None` with `[sim] remote`: it lives in a `wafleet sim` process then).
    pub sim: Option<crate::whatsapp::sim::SimNetwork>,
    /// Set while the node drains; `/readyz` answers 503 then.
    pub draining: Arc<AtomicBool>,
}

impl Fleet {
    /// The running actor of a device, if any.
    pub async fn actor(&self, device_id: i64) -> Option<actix::Addr<actor::DeviceActor>> {
        self.supervisor
            .send(messages::GetDeviceActor { device_id })
            .await
            .ok()
            .flatten()
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
