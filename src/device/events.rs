//! Device events published to whoever listens (the hub, tests, the admin view).
//!
//! Published on an in-process broadcast channel after the change is committed to the database.
//! A slow listener loses the oldest events (it sees `Lagged`) rather than slowing devices down.
//! [`forward_to_hub`] turns them into hub events (`DEVICE_STATUS`, `DEVICE_LOGGED_OUT`,
//! `QR_UPDATED` on `device-status`): the hub itself knows nothing of devices.

use actix::Addr;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::model::DeviceStatus;
use crate::hub::{Hub, HubEvent, Topic};

/// Events kept for slow listeners before the oldest are dropped.
pub const EVENT_BUFFER: usize = 8192;

/// Something that happened to a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceEvent {
    /// The device moved to a new lifecycle status.
    DeviceStatus(StatusChange),
    /// A new QR payload is waiting to be scanned.
    QrUpdated {
        /// Device.
        device_id: i64,
        /// Owning tenant.
        tenant_id: i64,
        /// The QR payload.
        code: String,
    },
}

impl DeviceEvent {
    /// The device the event is about.
    pub fn device_id(&self) -> i64 {
        match self {
            DeviceEvent::DeviceStatus(change) => change.device_id,
            DeviceEvent::QrUpdated { device_id, .. } => *device_id,
        }
    }
}

/// A committed status transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    /// Device.
    pub device_id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// New status.
    pub status: DeviceStatus,
    /// Why.
    pub reason: Option<String>,
    /// The device's WhatsApp JID, when paired.
    pub jid: Option<String>,
    /// The device's phone number, kept after a logout (clients match devices by phone).
    pub phone: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The sending side of the device event channel.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<DeviceEvent>,
}

impl EventBus {
    /// A bus with [`EVENT_BUFFER`] slots.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(EVENT_BUFFER);
        Self { sender }
    }

    /// Publishes to current listeners (none is fine).
    pub fn publish(&self, event: DeviceEvent) {
        let _ = self.sender.send(event);
    }

    /// A new listener, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DeviceEvent> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// Feeds every device event on `bus` to the hub, as the hub events of [`hub_events`], until the
/// bus closes.
pub fn forward_to_hub(bus: &EventBus, hub: Addr<Hub>) {
    let mut events = bus.subscribe();
    actix::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    for hub_event in hub_events(&event) {
                        hub.do_send(hub_event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "hub fell behind the device events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// The hub events a device event becomes (a logout is also announced as `DEVICE_LOGGED_OUT`).
fn hub_events(event: &DeviceEvent) -> Vec<HubEvent> {
    match event {
        DeviceEvent::DeviceStatus(change) => {
            let data = json!({
                "device_id": change.device_id,
                "tenant_id": change.tenant_id,
                "status": change.status,
                "reason": change.reason,
                "jid": change.jid,
                "phone": change.phone,
            });
            let mut names = vec!["DEVICE_STATUS"];
            if change.status == DeviceStatus::LoggedOut {
                names.push("DEVICE_LOGGED_OUT");
            }
            names
                .into_iter()
                .map(|name| HubEvent {
                    tenant_id: change.tenant_id,
                    topic: Topic::DeviceStatus,
                    device_id: Some(change.device_id),
                    event: name.to_string(),
                    data: data.clone(),
                    ts: change.at,
                })
                .collect()
        }
        DeviceEvent::QrUpdated {
            device_id,
            tenant_id,
            code,
        } => vec![HubEvent {
            tenant_id: *tenant_id,
            topic: Topic::DeviceStatus,
            device_id: Some(*device_id),
            event: "QR_UPDATED".into(),
            data: json!({ "device_id": device_id, "tenant_id": tenant_id, "code": code }),
            ts: Utc::now(),
        }],
    }
}
