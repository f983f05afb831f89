//! Endpoint and delivery rows, and the delivery states.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::events::{Event, EventType};
use crate::db::schema::{webhook_endpoints, webhook_queue};

/// A tenant's outbound webhook endpoint.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    /// Id.
    pub id: i64,
    /// Owner tenant.
    pub tenant_id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text for people.
    pub description: String,
    /// HMAC key (64 hex characters used as text).
    pub secret: String,
    /// Event types delivered, comma-separated; empty = all.
    pub events: String,
    /// Devices whose events are delivered, comma-separated ids; empty = all.
    pub device_ids: String,
    /// Deliveries are made only while active.
    pub active: bool,
    /// Deliveries in flight at most.
    pub max_concurrency: i64,
    /// Deliveries started per second at most.
    pub rate_per_second: i64,
    /// Since when every attempt failed.
    pub failing_since: Option<NaiveDateTime>,
    /// Why the daemon switched it off.
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

impl Endpoint {
    /// The event types it subscribed to; empty = all.
    pub fn event_types(&self) -> Vec<EventType> {
        split(&self.events).filter_map(EventType::parse).collect()
    }

    /// The devices it is limited to; empty = all.
    pub fn devices(&self) -> Vec<i64> {
        split(&self.device_ids)
            .filter_map(|d| d.parse().ok())
            .collect()
    }

    /// Whether `event` goes to this endpoint: its type and device pass the filters (a test
    /// event is only ever queued for the endpoint that asked for it).
    pub fn wants(&self, event: &Event) -> bool {
        if event.tenant_id != self.tenant_id || event.kind == EventType::Test {
            return false;
        }
        let types = self.event_types();
        if !types.is_empty() && !types.contains(&event.kind) {
            return false;
        }
        let devices = self.devices();
        devices.is_empty() || event.device_id.is_some_and(|d| devices.contains(&d))
    }
}

/// The non-empty items of a comma-separated list.
fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// What a new endpoint or an update sets (the API validated it).
#[derive(Debug, Clone, PartialEq, AsChangeset, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointFields {
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Event types, comma-separated.
    pub events: String,
    /// Device ids, comma-separated.
    pub device_ids: String,
    /// Active.
    pub active: bool,
    /// In flight at most.
    pub max_concurrency: i64,
    /// Started per second at most.
    pub rate_per_second: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Leased to a sender now.
    Delivering,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: too old, the receiver answered 410, or the endpoint is gone.
    Dead,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dead,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One delivery: a queue row and its entry in the delivery log.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = webhook_queue)]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Endpoint.
    pub endpoint_id: i64,
    /// Event id (the same for every endpoint and retry).
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// The body sent.
    pub payload: String,
    /// See [`DeliveryStatus`].
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: NaiveDateTime,
    /// Leased until (while delivering).
    pub lease_until: Option<NaiveDateTime>,
    /// Queued.
    pub created_at: NaiveDateTime,
    /// Delivered.
    pub delivered_at: Option<NaiveDateTime>,
    /// Last attempt's HTTP status.
    pub response_status: Option<i64>,
    /// Last attempt's answer, cut to [`super::MAX_RESPONSE_BYTES`].
    pub response_body: Option<String>,
    /// Last attempt's time, in milliseconds.
    pub latency_ms: Option<i64>,
    /// Last attempt's failure.
    pub error: Option<String>,
}

/// A claimed delivery: what the sender needs.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct Claimed {
    /// Queue row.
    pub id: i64,
    /// Endpoint.
    pub endpoint_id: i64,
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Body.
    pub payload: String,
    /// Attempts including this one.
    pub attempts: i64,
    /// Queued (the retry window counts from here).
    pub created_at: NaiveDateTime,
}

/// The result of one attempt, as the log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// HTTP status, when the receiver answered.
    pub response_status: Option<i64>,
    /// Start of the answer's body.
    pub response_body: Option<String>,
    /// Time taken.
    pub latency_ms: i64,
    /// What went wrong (`None` on 2xx).
    pub error: Option<String>,
}
