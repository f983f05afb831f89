//! Messages of the `Hub` and what it sends to subscribers.

use std::collections::HashSet;
use std::sync::Arc;

use actix::{Message, Recipient};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::topic::Topic;

/// An event on its way to subscribers; also the JSON exchanged between daemons over Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
pub struct HubEvent {
    /// Tenant whose subscribers may hear it.
    pub tenant_id: i64,
    /// Topic.
    pub topic: Topic,
    /// The device it concerns (members hear only their devices).
    pub device_id: Option<i64>,
    /// Event name, e.g. `DEVICE_STATUS`.
    pub event: String,
    /// Event payload.
    pub data: serde_json::Value,
    /// When it happened.
    pub ts: DateTime<Utc>,
}

/// A serialised frame for one session (shared by every subscriber of the topic).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Frame {
    /// An event to write.
    Event(Arc<str>),
    /// The session fell too far behind: close it with 1013.
    TooSlow,
}

/// What a session shares with the hub: its unsent bytes and whether it was cut off.
///
/// A WebSocket session actor only runs while the connection's output is being drained, so a
/// client that stops reading also stops its actor; the hub therefore does the accounting at
/// delivery time and stops feeding a session whose backlog passes its limit.
#[derive(Debug, Default)]
pub struct SessionLink {
    /// Bytes handed to the session and not yet taken by the socket.
    pub backlog: std::sync::atomic::AtomicUsize,
    /// Set when the hub cut the session off.
    pub too_slow: std::sync::atomic::AtomicBool,
}

impl SessionLink {
    /// Counts bytes handed to the session.
    pub fn add(&self, bytes: usize) {
        self.backlog
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts bytes the socket took.
    pub fn sub(&self, bytes: usize) {
        let _ = self.backlog.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |v| Some(v.saturating_sub(bytes)),
        );
    }

    /// Bytes waiting.
    pub fn backlog(&self) -> usize {
        self.backlog.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Subscribe a session to topics of its tenant.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// The session.
    pub session_id: u64,
    /// Where its frames go.
    pub recipient: Recipient<Frame>,
    /// Its tenant.
    pub tenant_id: i64,
    /// Topics (already authorized).
    pub topics: Vec<Topic>,
    /// For members: the only devices whose events they may hear.
    pub devices: Option<Arc<HashSet<i64>>>,
    /// Backlog accounting shared with the session.
    pub link: Arc<SessionLink>,
    /// Backlog (bytes) past which the session is cut off.
    pub max_backlog: usize,
}

/// Remove some of a session's subscriptions.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub session_id: u64,
    /// Its tenant.
    pub tenant_id: i64,
    /// Topics to leave.
    pub topics: Vec<Topic>,
}

/// A session ended: drop all its subscriptions.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// The session.
    pub session_id: u64,
}

/// An event received from another daemon: deliver locally, never forward again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliverRemote(pub HubEvent);

/// A local publication, handed to the tap (outbound webhooks) after the hub routed it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Published(pub HubEvent);

/// Where the hub hands its local publications besides WebSocket sessions.
#[derive(Debug, Clone)]
pub struct Tap {
    /// The receiver.
    pub recipient: Recipient<Published>,
    /// Tenants whose events it wants (the others are not cloned for it).
    pub tenants: Arc<std::sync::RwLock<HashSet<i64>>>,
}

/// Installs the tap (replacing any previous one).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetTap(pub Tap);
