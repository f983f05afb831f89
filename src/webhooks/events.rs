//! What a receiver gets: the event types, and how a hub event becomes a webhook event. Pure: no
//! actors, no database.
//!
//! Every event a tenant's subscribers can hear on the hub (device status, messages, receipts,
//! campaign progress, leads, sequences) is also an outbound webhook event; the mapping lives
//! here so the dispatcher only queues and sends. The body a receiver gets is [`Envelope`]:
//! `{"id","type","tenant_id","device_id","time","data"}`, where `data` is exactly what the
//! WebSocket stream carries for the same event (see `docs/websocket.md`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::hub::HubEvent;

/// Declares [`EventType`] from one table: variant, wire name, meaning.
macro_rules! event_types {
    ($($variant:ident = $name:literal, $meaning:literal;)*) => {
        /// The type of an outbound webhook event, as receivers see it in `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $(#[doc = $meaning] $variant,)*
        }

        impl EventType {
            /// Every type, in the order of `docs/webhooks.md`.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name, e.g. `message.received`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// What the event means, for the documentation and the dashboard.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(EventType::$variant => $meaning,)*
                }
            }
        }
    };
}

event_types! {
    MessageReceived = "message.received", "A message came in on a device (text, media, location, contact).";
    MessageSent = "message.sent", "A device sent a message (from the dashboard, the API, a campaign or a sequence, or the phone itself).";
    MessageAck = "message.ack", "Sent messages were delivered, read or played (ids and the new status).";
    MessageEdited = "message.edited", "A message was edited; data is the message as it is now.";
    MessageRevoked = "message.revoked", "A message was deleted for everyone.";
    MessageReaction = "message.reaction", "Someone reacted to a message (or took a reaction back).";
    ChatUpdated = "chat.updated", "A chat's preview, unread count or name changed.";
    DeviceStatus = "device.status", "A device's status changed (connecting, online, offline, logged_out, …).";
    DeviceLoggedOut = "device.logged_out", "A device was logged out (by the phone, WhatsApp or a user).";
    DeviceQr = "device.qr", "A pairing QR code was (re)issued for a device.";
    DeviceQuarantined = "device.quarantined", "A device was quarantined (rate limited, or its health score fell): no campaign or sequence sends until quarantined_until.";
    DeviceQuarantineLifted = "device.quarantine_lifted", "An owner lifted a device's quarantine.";
    CampaignProgress = "campaign.progress", "A campaign's counts moved (sent at most every progress interval).";
    CampaignCompleted = "campaign.completed", "A campaign finished: every message was sent, failed or skipped.";
    SequenceStepSent = "sequence.step_sent", "A sequence step was sent to an enrolled lead.";
    SequenceEnrollmentEnded = "sequence.enrollment_ended", "A lead's enrolment ended (completed, stopped by a reply, opted out or removed).";
    LeadCreated = "lead.created", "A lead was created (REST, the inbound lead webhook or the MCP server).";
    LeadsImported = "lead.imported", "A CSV import into a lead list finished (counts).";
    LeadOptedOut = "lead.opted_out", "A phone number went on the opt-out list (keyword, manual or import).";
    Test = "webhook.test", "Sent by \"send test event\"; only to the endpoint it was asked for.";
}

impl EventType {
    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == name)
    }
}

/// A webhook event before it is queued for each endpoint that wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id (UUID); the same for every endpoint and every retry, so receivers dedupe by it.
    pub id: String,
    /// Type.
    pub kind: EventType,
    /// Tenant.
    pub tenant_id: i64,
    /// The device it concerns, when it concerns one.
    pub device_id: Option<i64>,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The payload, as the WebSocket stream has it.
    pub data: serde_json::Value,
}

/// The JSON body POSTed to receivers.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// Event id.
    pub id: &'a str,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Tenant.
    pub tenant_id: i64,
    /// Device, when the event concerns one.
    pub device_id: Option<i64>,
    /// When it happened (RFC 3339, UTC).
    pub time: DateTime<Utc>,
    /// The payload.
    pub data: &'a serde_json::Value,
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(
        kind: EventType,
        tenant_id: i64,
        device_id: Option<i64>,
        time: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Event {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            tenant_id,
            device_id,
            time,
            data,
        }
    }

    /// The body sent to receivers.
    pub fn body(&self) -> String {
        let envelope = Envelope {
            id: &self.id,
            kind: self.kind.as_str(),
            tenant_id: self.tenant_id,
            device_id: self.device_id,
            time: self.time,
            data: &self.data,
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}

/// The webhook event a hub event is, if it is one: control events (`SUBSCRIBED`, a chat merged
/// into another) and events no receiver needs are not.
pub fn from_hub(event: &HubEvent) -> Option<Event> {
    let data = &event.data;
    let flag = |name: &str| data.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
    let kind = match event.event.as_str() {
        "NEW_MESSAGE" if flag("from_me") => EventType::MessageSent,
        "NEW_MESSAGE" => EventType::MessageReceived,
        "MESSAGE_ACK" => EventType::MessageAck,
        "MESSAGE_UPDATED" => match data.get("change").and_then(|v| v.as_str()) {
            Some("revoke") => EventType::MessageRevoked,
            Some("edit") => EventType::MessageEdited,
            Some("reaction") => EventType::MessageReaction,
            _ if flag("deleted") => EventType::MessageRevoked,
            _ => EventType::MessageEdited,
        },
        "CHAT_UPDATED" => EventType::ChatUpdated,
        "DEVICE_STATUS" => EventType::DeviceStatus,
        "DEVICE_LOGGED_OUT" => EventType::DeviceLoggedOut,
        "QR_UPDATED" => EventType::DeviceQr,
        "DEVICE_QUARANTINED" => EventType::DeviceQuarantined,
        "DEVICE_QUARANTINE_LIFTED" => EventType::DeviceQuarantineLifted,
        "CAMPAIGN_PROGRESS" => {
            if data.get("status").and_then(|v| v.as_str()) == Some("completed") {
                EventType::CampaignCompleted
            } else {
                EventType::CampaignProgress
            }
        }
        "SEQUENCE_STEP_SENT" => EventType::SequenceStepSent,
        "ENROLLMENT_ENDED" => EventType::SequenceEnrollmentEnded,
        "LEAD_CREATED" => EventType::LeadCreated,
        "IMPORT_DONE" => EventType::LeadsImported,
        "LEAD_OPTED_OUT" => EventType::LeadOptedOut,
        _ => return None,
    };
    Some(Event::new(
        kind,
        event.tenant_id,
        event.device_id,
        event.ts,
        event.data.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Topic;
    use serde_json::json;

    fn hub(event: &str, data: serde_json::Value) -> HubEvent {
        HubEvent {
            tenant_id: 7,
            topic: Topic::Messages(3),
            device_id: Some(3),
            event: event.into(),
            data,
            ts: Utc::now(),
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(*kind));
            assert!(seen.insert(kind.as_str()), "{} twice", kind.as_str());
            assert!(!kind.meaning().is_empty());
        }
        assert_eq!(EventType::parse("message.bogus"), None);
    }

    #[test]
    fn hub_events_map_to_their_types() {
        let cases = [
            (
                "NEW_MESSAGE",
                json!({"from_me": false}),
                Some(EventType::MessageReceived),
            ),
            (
                "NEW_MESSAGE",
                json!({"from_me": true}),
                Some(EventType::MessageSent),
            ),
            ("MESSAGE_ACK", json!({}), Some(EventType::MessageAck)),
            (
                "MESSAGE_UPDATED",
                json!({"change": "revoke"}),
                Some(EventType::MessageRevoked),
            ),
            (
                "MESSAGE_UPDATED",
                json!({"change": "edit"}),
                Some(EventType::MessageEdited),
            ),
            (
                "MESSAGE_UPDATED",
                json!({"change": "reaction"}),
                Some(EventType::MessageReaction),
            ),
            ("CHAT_UPDATED", json!({}), Some(EventType::ChatUpdated)),
            ("DEVICE_STATUS", json!({}), Some(EventType::DeviceStatus)),
            (
                "DEVICE_LOGGED_OUT",
                json!({}),
                Some(EventType::DeviceLoggedOut),
            ),
            ("QR_UPDATED", json!({}), Some(EventType::DeviceQr)),
            (
                "CAMPAIGN_PROGRESS",
                json!({"status": "running"}),
                Some(EventType::CampaignProgress),
            ),
            (
                "CAMPAIGN_PROGRESS",
                json!({"status": "completed"}),
                Some(EventType::CampaignCompleted),
            ),
            ("CHAT_REMOVED", json!({}), None),
            ("IMPORT_PROGRESS", json!({}), None),
        ];
        for (name, data, want) in cases {
            let got = from_hub(&hub(name, data.clone())).map(|e| e.kind);
            assert_eq!(got, want, "{name} {data}");
        }
    }

    #[test]
    fn the_body_carries_id_type_tenant_time_and_data() {
        let event = from_hub(&hub("NEW_MESSAGE", json!({"from_me": false, "text": "hi"})))
            .unwrap_or_else(|| Event::new(EventType::Test, 0, None, Utc::now(), json!(null)));
        let body: serde_json::Value = serde_json::from_str(&event.body()).unwrap_or_default();
        assert_eq!(body["type"], "message.received");
        assert_eq!(body["tenant_id"], 7);
        assert_eq!(body["device_id"], 3);
        assert_eq!(body["data"]["text"], "hi");
        assert_eq!(body["id"].as_str(), Some(event.id.as_str()));
        assert!(body["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
