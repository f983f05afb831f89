//! The Redis bridge: shares hub events between daemons through one Redis pub/sub channel.
//!
//! Every envelope carries the publishing daemon's random node id; a daemon delivers only
//! envelopes of other nodes (its own come back from Redis and are skipped), so each event reaches
//! each subscriber once and nothing loops. When Redis is unreachable, local delivery goes on
//! untouched: publications are dropped with a warning and both directions reconnect with
//! backoff (0.5 s doubling to 30 s).

use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::actor::Hub;
use super::messages::{DeliverRemote, HubEvent};

/// First reconnect delay.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// What travels over Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// Publishing daemon.
    node: String,
    /// The event.
    event: HubEvent,
}

/// Starts both directions of the bridge on the current runtime; returns the sender the hub
/// hands its local events to.
pub fn start(
    client: redis::Client,
    channel: String,
    node: String,
    hub_slot: std::sync::Arc<std::sync::OnceLock<Addr<Hub>>>,
) -> mpsc::UnboundedSender<HubEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    actix::spawn(publish_loop(
        client.clone(),
        channel.clone(),
        node.clone(),
        rx,
    ));
    actix::spawn(subscribe_loop(client, channel, node, hub_slot));
    tx
}

/// Publishes local events, reconnecting as needed.
async fn publish_loop(
    client: redis::Client,
    channel: String,
    node: String,
    mut events: mpsc::UnboundedReceiver<HubEvent>,
) {
    let mut delay = RECONNECT_MIN;
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    while let Some(event) = events.recv().await {
        if connection.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(conn) => {
                    connection = Some(conn);
                    delay = RECONNECT_MIN;
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_ms = delay.as_millis() as u64, "redis bridge: cannot connect to publish; event kept local");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECONNECT_MAX);
                    continue;
                }
            }
        }
        let Ok(payload) = serde_json::to_string(&Envelope {
            node: node.clone(),
            event,
        }) else {
            continue;
        };
        if let Some(conn) = connection.as_mut() {
            let published: redis::RedisResult<i64> = conn.publish(&channel, payload).await;
            if let Err(err) = published {
                tracing::warn!(error = %err, "redis bridge: publish failed; event kept local");
                connection = None;
            }
        }
    }
}

/// Receives other daemons' events and delivers them locally, reconnecting with backoff.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    node: String,
    hub_slot: std::sync::Arc<std::sync::OnceLock<Addr<Hub>>>,
) {
    let mut delay = RECONNECT_MIN;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    tracing::info!(%channel, "redis bridge subscribed");
                    delay = RECONNECT_MIN;
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(envelope) if envelope.node != node => {
                                if let Some(hub) = hub_slot.get() {
                                    hub.do_send(DeliverRemote(envelope.event));
                                }
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "redis bridge: unreadable envelope")
                            }
                        }
                    }
                    tracing::warn!("redis bridge: subscription ended; reconnecting");
                }
                Err(err) => tracing::warn!(error = %err, "redis bridge: cannot subscribe"),
            },
            Err(err) => {
                tracing::warn!(error = %err, retry_ms = delay.as_millis() as u64, "redis bridge: cannot connect")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
