//! Topic names of the real-time stream and who may hear them. Pure parsing, no actors.
//!
//! Clients name topics without a tenant (`device-status`, `messages/42`, `campaign/7`,
//! `lead-lists/3`); the hub
//! keys every subscription by (tenant, topic), so two tenants' `device-status` never meet.

use std::fmt;

/// A topic a WebSocket client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Status changes and QR codes of every device of the tenant (members: their devices).
    DeviceStatus,
    /// Messages and receipts of one device.
    Messages(i64),
    /// Progress of one campaign.
    Campaign(i64),
    /// Import progress and new leads of one lead list.
    LeadList(i64),
    /// Steps sent and enrolments ended of one sequence.
    Sequence(i64),
    /// Numbers put on the tenant's opt-out list.
    OptOuts,
}

impl Topic {
    /// Parses a client's topic name.
    pub fn parse(name: &str) -> Option<Topic> {
        match name {
            "device-status" => return Some(Topic::DeviceStatus),
            "opt-outs" => return Some(Topic::OptOuts),
            _ => {}
        }
        let (kind, id) = name.split_once('/')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        match kind {
            "messages" => Some(Topic::Messages(id)),
            "campaign" => Some(Topic::Campaign(id)),
            "lead-lists" => Some(Topic::LeadList(id)),
            "sequence" => Some(Topic::Sequence(id)),
            _ => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::DeviceStatus => f.write_str("device-status"),
            Topic::Messages(id) => write!(f, "messages/{id}"),
            Topic::Campaign(id) => write!(f, "campaign/{id}"),
            Topic::LeadList(id) => write!(f, "lead-lists/{id}"),
            Topic::Sequence(id) => write!(f, "sequence/{id}"),
            Topic::OptOuts => f.write_str("opt-outs"),
        }
    }
}

impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Topic::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown topic {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_reject_garbage() {
        for name in [
            "device-status",
            "messages/42",
            "campaign/7",
            "lead-lists/3",
            "sequence/5",
            "opt-outs",
        ] {
            assert_eq!(
                Topic::parse(name).map(|t| t.to_string()).as_deref(),
                Some(name)
            );
        }
        for bad in [
            "",
            "devices",
            "messages/",
            "messages/x",
            "messages/-1",
            "campaign/0",
            "lead-lists/x",
            "other/1",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad}");
        }
    }
}
