//! The Redis bridge: shares hub events between daemons through one Redis pub/sub channel.
//!
//! Every envelope carries the publishing daemon's random node id; a daemon delivers only
//! envelopes of other nodes (its own come back from Redis and are skipped), so each event reaches
//! each subscriber once and nothing loops.
//!
//! Nothing in the hub waits for Redis. The hub offers each local event to a bounded queue
//! ([`BridgeSender::offer`] never blocks): while Redis is down, or when the queue is full, the
//! event is dropped for the other daemons and counted in `wafleet_redis_bridge_dropped_total`;
//! local delivery goes on untouched. Three tasks do the rest: the link task connects (with a
//! timeout) and reconnects with backoff (0.5 s doubling to 30 s) after a failure; the publish
//! task drains the queue onto the current connection, each publish bounded by a timeout (a
//! server that accepts and never answers cannot hold it); the subscribe task receives the other
//! daemons' events and reconnects on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use prometheus::{IntCounter, IntGauge};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};

use super::actor::Hub;
use super::messages::{DeliverRemote, HubEvent};

/// First reconnect delay.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Longest wait for Redis to accept a connection or answer a command.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What travels over Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// Publishing daemon.
    node: String,
    /// The event.
    event: HubEvent,
}

/// Counters of the bridge (registered with the hub's, see [`super::HubMetrics`]).
#[derive(Clone)]
pub struct BridgeMetrics {
    /// `wafleet_redis_bridge_dropped_total`: events not shared because Redis was down or the
    /// queue was full.
    pub dropped: IntCounter,
    /// `wafleet_redis_bridge_queue`: events waiting to be published.
    pub queued: IntGauge,
    /// `wafleet_redis_bridge_up`: 1 while a publishing connection works.
    pub up: IntGauge,
}

/// The hub's end of the bridge: a bounded queue and whether Redis is reachable.
pub struct BridgeSender {
    events: mpsc::Sender<HubEvent>,
    /// Set while the link task holds a working connection.
    up: Arc<AtomicBool>,
    metrics: BridgeMetrics,
}

impl BridgeSender {
    /// Queues a local event for the other daemons without waiting; drops (and counts) it while
    /// Redis is down or the queue is full.
    pub fn offer(&self, event: HubEvent) {
        if !self.up.load(Ordering::Relaxed) || self.events.try_send(event).is_err() {
            self.metrics.dropped.inc();
        }
        self.metrics.queued.set(queue_len(&self.events));
    }
}

/// Events in the queue.
fn queue_len(events: &mpsc::Sender<HubEvent>) -> i64 {
    (events.max_capacity() - events.capacity()) as i64
}

/// Where the bridge publishes and who it is.
pub struct BridgeConfig {
    /// Redis.
    pub client: redis::Client,
    /// Pub/sub channel.
    pub channel: String,
    /// This daemon's node id.
    pub node: String,
    /// Largest queue (at least 1).
    pub capacity: usize,
}

/// Starts the bridge's tasks on the current runtime; returns the sender the hub offers its
/// local events to.
pub fn start(
    config: BridgeConfig,
    metrics: BridgeMetrics,
    hub_slot: Arc<OnceLock<Addr<Hub>>>,
) -> BridgeSender {
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let up = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(Notify::new());
    let (link_tx, link_rx) = watch::channel(None);
    actix::spawn(link_loop(
        config.client.clone(),
        link_tx,
        Link {
            up: up.clone(),
            gauge: metrics.up.clone(),
        },
        lost.clone(),
    ));
    actix::spawn(publish_loop(
        Publisher {
            channel: config.channel.clone(),
            node: config.node.clone(),
            link: link_rx,
            up: up.clone(),
            lost,
            metrics: metrics.clone(),
            sender: tx.clone(),
        },
        rx,
    ));
    actix::spawn(subscribe_loop(
        config.client,
        config.channel,
        config.node,
        hub_slot,
    ));
    BridgeSender {
        events: tx,
        up,
        metrics,
    }
}

/// Whether the publishing connection works: the flag the hub reads, and its gauge.
struct Link {
    up: Arc<AtomicBool>,
    gauge: IntGauge,
}

impl Link {
    fn set(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }
}

/// Keeps one publishing connection: connects with backoff, hands it out, and reconnects when
/// the publish task reports it lost.
async fn link_loop(
    client: redis::Client,
    link: watch::Sender<Option<MultiplexedConnection>>,
    up: Link,
    lost: Arc<Notify>,
) {
    let mut delay = RECONNECT_MIN;
    loop {
        match tokio::time::timeout(IO_TIMEOUT, client.get_multiplexed_async_connection()).await {
            Ok(Ok(connection)) => {
                link.send_replace(Some(connection));
                up.set(true);
                tracing::info!("redis bridge connected for publishing");
                delay = RECONNECT_MIN;
                lost.notified().await;
                up.set(false);
                link.send_replace(None);
                if link.is_closed() {
                    return;
                }
                continue;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, retry_ms = delay.as_millis() as u64, "redis bridge: cannot connect to publish; events stay local")
            }
            Err(_) => {
                tracing::warn!(
                    retry_ms = delay.as_millis() as u64,
                    "redis bridge: connecting timed out; events stay local"
                )
            }
        }
        if link.is_closed() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// The publish task's view of the bridge.
struct Publisher {
    channel: String,
    node: String,
    link: watch::Receiver<Option<MultiplexedConnection>>,
    up: Arc<AtomicBool>,
    lost: Arc<Notify>,
    metrics: BridgeMetrics,
    /// Only to read the queue's length.
    sender: mpsc::Sender<HubEvent>,
}

/// Publishes queued events on the current connection; drops them while there is none.
async fn publish_loop(publisher: Publisher, mut events: mpsc::Receiver<HubEvent>) {
    while let Some(event) = events.recv().await {
        let metrics = &publisher.metrics;
        metrics.queued.set(queue_len(&publisher.sender));
        let connection = publisher.link.borrow().clone();
        let Some(mut connection) = connection.filter(|_| publisher.up.load(Ordering::Relaxed))
        else {
            metrics.dropped.inc();
            continue;
        };
        let Ok(payload) = serde_json::to_string(&Envelope {
            node: publisher.node.clone(),
            event,
        }) else {
            continue;
        };
        let published = tokio::time::timeout(
            IO_TIMEOUT,
            connection.publish::<_, _, i64>(&publisher.channel, payload),
        )
        .await;
        let failure = match published {
            Ok(Ok(_)) => continue,
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_string(),
        };
        tracing::warn!(error = %failure, "redis bridge: publish failed; reconnecting, events stay local meanwhile");
        metrics.dropped.inc();
        publisher.up.store(false, Ordering::Relaxed);
        publisher.lost.notify_one();
    }
}

/// Receives other daemons' events and delivers them locally, reconnecting with backoff.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    node: String,
    hub_slot: Arc<OnceLock<Addr<Hub>>>,
) {
    let mut delay = RECONNECT_MIN;
    loop {
        let subscribed = tokio::time::timeout(IO_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
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
            Ok(Err(err)) => {
                tracing::warn!(error = %err, retry_ms = delay.as_millis() as u64, "redis bridge: cannot subscribe")
            }
            Err(_) => {
                tracing::warn!(
                    retry_ms = delay.as_millis() as u64,
                    "redis bridge: subscribing timed out"
                )
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
