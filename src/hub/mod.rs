//! The real-time hub: topics `device-status`, `messages/<device_id>` and `campaign/<id>` per
//! tenant, served to WebSocket sessions and shared between daemons over Redis when configured.
//!
//! Flow: features publish `HubEvent`s (device/ turns its device events into them, chat/ its
//! committed messages, broadcast/ campaign progress) → the [`actor::Hub`] delivers them to local
//! subscribers (as `Frame`s) and hands them to the [`redis_bridge`], which publishes them for
//! other daemons and delivers theirs here. The hub knows no feature: it imports no domain module.

pub mod actor;
pub mod messages;
pub mod redis_bridge;
pub mod redis_tls;
pub mod topic;

use std::sync::{Arc, OnceLock};

use actix::{Addr, Supervisor};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;
use crate::metrics::Beacon;
pub use actor::{Hub, HubMetrics};
pub use messages::HubEvent;
pub use topic::Topic;

/// Starts the hub under a supervisor, with the Redis bridge when `redis.url` is set.
pub fn start(
    settings: &RedisSettings,
    metrics: HubMetrics,
    beacon: Beacon,
) -> Result<Addr<Hub>, String> {
    let slot = Arc::new(OnceLock::new());
    let url = settings.url.expose_secret();
    let bridge = if url.is_empty() {
        None
    } else {
        let client = redis_tls::client(settings)?;
        let node = uuid::Uuid::new_v4().simple().to_string();
        tracing::info!(node = %node, channel = %settings.channel, "hub bridged over redis");
        Some(redis_bridge::start(
            redis_bridge::BridgeConfig {
                client,
                channel: settings.channel.clone(),
                node,
                capacity: settings.queue_capacity,
            },
            metrics.bridge.clone(),
            slot.clone(),
        ))
    };
    let hub = Hub::new(bridge, metrics, beacon);
    let hub = Supervisor::start(move |_| hub);
    let _ = slot.set(hub.clone());
    Ok(hub)
}
