//! The real-time hub: topics `device-status`, `messages/<device_id>` and `campaign/<id>` per
//! tenant, served to WebSocket sessions and shared between daemons over Redis when configured.
//!
//! Flow: device actors publish `DeviceEvent`s on the fleet's event bus → a forwarder turns each
//! into `HubEvent`s → the [`actor::Hub`] delivers them to local subscribers (as `Frame`s) and
//! hands them to the [`redis_bridge`], which publishes them for other daemons and delivers
//! theirs here.

pub mod actor;
pub mod messages;
pub mod redis_bridge;
pub mod topic;

use std::sync::{Arc, OnceLock};

use actix::{Actor, Addr};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::RedisSettings;
use crate::device::events::{DeviceEvent, EventBus};
use crate::device::DeviceStatus;
pub use actor::{Hub, HubMetrics};
pub use messages::HubEvent;
pub use topic::Topic;

/// Starts the hub (with the Redis bridge when `redis.url` is set) and feeds it the fleet's
/// device events.
pub fn start(
    settings: &RedisSettings,
    bus: &EventBus,
    metrics: HubMetrics,
) -> Result<Addr<Hub>, redis::RedisError> {
    let slot = Arc::new(OnceLock::new());
    let url = settings.url.expose_secret();
    let bridge = if url.is_empty() {
        None
    } else {
        let client = redis::Client::open(url)?;
        let node = uuid::Uuid::new_v4().simple().to_string();
        tracing::info!(node = %node, channel = %settings.channel, "hub bridged over redis");
        Some(redis_bridge::start(
            client,
            settings.channel.clone(),
            node,
            slot.clone(),
        ))
    };
    let hub = Hub::new(bridge, metrics).start();
    let _ = slot.set(hub.clone());
    let mut events = bus.subscribe();
    let forward_to = hub.clone();
    actix::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    for hub_event in hub_events(&event) {
                        forward_to.do_send(hub_event);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "hub fell behind the device events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    Ok(hub)
}

/// The hub events a device event becomes (a logout is also announced as `DEVICE_LOGGED_OUT`).
pub fn hub_events(event: &DeviceEvent) -> Vec<HubEvent> {
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
            ts: chrono::Utc::now(),
        }],
    }
}
