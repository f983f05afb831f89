//! `Hub`: routes events to the WebSocket sessions subscribed to their (tenant, topic).
//!
//! Handles: `HubEvent` (a local publication: delivered here, handed to the Redis bridge and to
//! the tap of outbound webhooks, [`SetTap`]),
//! `DeliverRemote` (from another daemon: delivered here only, so nothing loops), `Subscribe`,
//! `Unsubscribe`, `Disconnect`. Sends `Frame`s to sessions. Each topic carries a `seq` that
//! grows by one per event, so a client can notice a gap and re-fetch over REST.
//!
//! Runs under an `actix::Supervisor` (see [`super::start`]): a restart keeps its subscriptions
//! and sequence numbers (the sessions behind them are still open) and its [`Beacon`] tells
//! `/readyz` whether it runs.
//!
//! Backpressure: every frame handed to a session is counted in its [`SessionLink`] until the
//! socket takes it; a session over its limit gets `Frame::TooSlow` (close 1013) and nothing
//! more, so a client that stopped reading holds at most its limit in memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::messages::*;
use super::redis_bridge::{BridgeMetrics, BridgeSender};
use super::topic::Topic;
use crate::metrics::Beacon;
use actix::prelude::*;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;

/// Prometheus collectors of the hub and its sessions.
#[derive(Clone)]
pub struct HubMetrics {
    /// `wafleet_hub_subscriptions`: (session, topic) pairs.
    pub subscriptions: IntGauge,
    /// `wafleet_ws_sessions`: open WebSocket sessions.
    pub sessions: IntGauge,
    /// `wafleet_ws_slow_closed_total`: sessions closed for not keeping up.
    pub slow_closed: IntCounter,
    /// `wafleet_hub_events_total`: events routed.
    pub events: IntCounter,
    /// The Redis bridge's drop counter, queue and link gauges.
    pub bridge: BridgeMetrics,
}

impl HubMetrics {
    /// Creates and registers the collectors.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let subscriptions = IntGauge::new(
            "hub_subscriptions",
            "Topic subscriptions of open WebSocket sessions",
        )?;
        let sessions = IntGauge::new("ws_sessions", "Open WebSocket sessions")?;
        let slow_closed = IntCounter::new(
            "ws_slow_closed_total",
            "WebSocket sessions closed with 1013 for not keeping up",
        )?;
        let events = IntCounter::new("hub_events_total", "Events routed by the hub")?;
        let bridge = BridgeMetrics {
            dropped: IntCounter::new(
                "redis_bridge_dropped_total",
                "Hub events not shared over Redis: Redis down or the bridge queue full",
            )?,
            queued: IntGauge::new(
                "redis_bridge_queue",
                "Hub events waiting to be published to Redis",
            )?,
            up: IntGauge::new(
                "redis_bridge_up",
                "1 while the Redis bridge holds a working publishing connection, else 0",
            )?,
        };
        for collector in [
            Box::new(subscriptions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sessions.clone()),
            Box::new(slow_closed.clone()),
            Box::new(events.clone()),
            Box::new(bridge.dropped.clone()),
            Box::new(bridge.queued.clone()),
            Box::new(bridge.up.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            subscriptions,
            sessions,
            slow_closed,
            events,
            bridge,
        })
    }
}

/// Bytes a frame costs beyond its text (WebSocket header, upper bound).
const FRAME_OVERHEAD: usize = 14;

/// One session's subscription to one topic.
struct Subscriber {
    recipient: Recipient<Frame>,
    devices: Option<Arc<HashSet<i64>>>,
    link: Arc<SessionLink>,
    max_backlog: usize,
}

/// The topic router.
pub struct Hub {
    /// Subscribers per (tenant, topic), by session id.
    topics: HashMap<(i64, Topic), HashMap<u64, Subscriber>>,
    /// Topics per session, to clean up on disconnect.
    sessions: HashMap<u64, HashSet<(i64, Topic)>>,
    /// Last sequence number per (tenant, topic).
    seq: HashMap<(i64, Topic), u64>,
    /// Local publications for other daemons (set when Redis is configured).
    bridge: Option<BridgeSender>,
    /// Local publications for outbound webhooks (remote ones are tapped on their own daemon).
    tap: Option<Tap>,
    metrics: HubMetrics,
    /// Up while the hub runs.
    beacon: Beacon,
}

/// The JSON frame a client receives.
#[derive(Serialize)]
struct WireEvent<'a> {
    topic: Topic,
    event: &'a str,
    data: &'a serde_json::Value,
    ts: chrono::DateTime<chrono::Utc>,
    seq: u64,
}

impl Hub {
    /// A hub; `bridge` forwards local events to other daemons; `beacon` says it runs.
    pub fn new(bridge: Option<BridgeSender>, metrics: HubMetrics, beacon: Beacon) -> Self {
        Self {
            topics: HashMap::new(),
            sessions: HashMap::new(),
            seq: HashMap::new(),
            bridge,
            tap: None,
            metrics,
            beacon,
        }
    }

    /// Delivers an event to the local subscribers of its topic.
    fn deliver(&mut self, event: &HubEvent) {
        self.metrics.events.inc();
        let key = (event.tenant_id, event.topic);
        let seq = {
            let counter = self.seq.entry(key).or_insert(0);
            *counter += 1;
            *counter
        };
        let Some(subscribers) = self.topics.get(&key) else {
            return;
        };
        let wire = WireEvent {
            topic: event.topic,
            event: &event.event,
            data: &event.data,
            ts: event.ts,
            seq,
        };
        let Ok(json) = serde_json::to_string(&wire) else {
            return;
        };
        let frame: Arc<str> = Arc::from(json);
        let cost = frame.len() + FRAME_OVERHEAD;
        let mut cut_off = Vec::new();
        for (session_id, subscriber) in subscribers {
            let allowed = match (&subscriber.devices, event.device_id) {
                (Some(devices), Some(device_id)) => devices.contains(&device_id),
                _ => true,
            };
            if !allowed || subscriber.link.too_slow.load(Ordering::Relaxed) {
                continue;
            }
            if subscriber.link.backlog() + cost > subscriber.max_backlog {
                subscriber.link.too_slow.store(true, Ordering::Relaxed);
                subscriber.recipient.do_send(Frame::TooSlow);
                cut_off.push(*session_id);
                continue;
            }
            subscriber.link.add(cost);
            subscriber.recipient.do_send(Frame::Event(frame.clone()));
        }
        for session_id in cut_off {
            self.metrics.slow_closed.inc();
            tracing::warn!(
                session = session_id,
                "cutting off a WebSocket subscriber that does not keep up"
            );
            self.drop_session(session_id);
        }
    }

    /// Removes every subscription of a session.
    fn drop_session(&mut self, session_id: u64) {
        for key in self.sessions.remove(&session_id).unwrap_or_default() {
            self.remove(session_id, key);
        }
    }

    /// Removes one subscription.
    fn remove(&mut self, session_id: u64, key: (i64, Topic)) {
        if let Some(subscribers) = self.topics.get_mut(&key) {
            if subscribers.remove(&session_id).is_some() {
                self.metrics.subscriptions.dec();
            }
            if subscribers.is_empty() {
                self.topics.remove(&key);
            }
        }
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.beacon.up();
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for Hub {
    /// Subscriptions and sequence numbers survive: the sessions behind them are still open.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
    }
}

impl Handler<HubEvent> for Hub {
    type Result = ();

    fn handle(&mut self, event: HubEvent, _: &mut Context<Self>) {
        self.deliver(&event);
        if let Some(tap) = &self.tap {
            let wanted = tap
                .tenants
                .read()
                .map(|tenants| tenants.contains(&event.tenant_id))
                .unwrap_or(false);
            if wanted {
                tap.recipient.do_send(Published(event.clone()));
            }
        }
        if let Some(bridge) = &self.bridge {
            bridge.offer(event);
        }
    }
}

impl Handler<DeliverRemote> for Hub {
    type Result = ();

    fn handle(&mut self, msg: DeliverRemote, _: &mut Context<Self>) {
        self.deliver(&msg.0);
    }
}

impl Handler<Subscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        let keys = self.sessions.entry(msg.session_id).or_default();
        for topic in msg.topics {
            let key = (msg.tenant_id, topic);
            keys.insert(key);
            let previous = self.topics.entry(key).or_default().insert(
                msg.session_id,
                Subscriber {
                    recipient: msg.recipient.clone(),
                    devices: msg.devices.clone(),
                    link: msg.link.clone(),
                    max_backlog: msg.max_backlog,
                },
            );
            if previous.is_none() {
                self.metrics.subscriptions.inc();
            }
        }
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        for topic in msg.topics {
            let key = (msg.tenant_id, topic);
            self.remove(msg.session_id, key);
            if let Some(keys) = self.sessions.get_mut(&msg.session_id) {
                keys.remove(&key);
            }
        }
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.drop_session(msg.session_id);
    }
}

impl Handler<SetTap> for Hub {
    type Result = ();

    fn handle(&mut self, msg: SetTap, _: &mut Context<Self>) {
        self.tap = Some(msg.0);
    }
}
