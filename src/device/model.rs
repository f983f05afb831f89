//! Device rows and the status vocabulary shared by the store, the API and events.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::devices;

/// Where a device is in its lifecycle. Stored and sent as a snake_case string.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Created, never connected.
    New,
    /// Waiting for the user to scan a QR code.
    AwaitingQr,
    /// Waiting for the user to enter a pairing code on the phone.
    AwaitingPairCode,
    /// Opening its session.
    Connecting,
    /// Connected and able to send.
    Online,
    /// Lost its connection; the supervisor is bringing it back.
    Reconnecting,
    /// The phone unlinked it; needs pairing again.
    LoggedOut,
    /// WhatsApp banned the number.
    Banned,
    /// Failed in a way a retry will not fix without help.
    Failed,
    /// Restart budget spent; left stopped until someone restarts it.
    Parked,
}

impl DeviceStatus {
    /// Every status, in lifecycle order (for per-state counts and gauges).
    pub const ALL: [DeviceStatus; 10] = [
        DeviceStatus::New,
        DeviceStatus::AwaitingQr,
        DeviceStatus::AwaitingPairCode,
        DeviceStatus::Connecting,
        DeviceStatus::Online,
        DeviceStatus::Reconnecting,
        DeviceStatus::LoggedOut,
        DeviceStatus::Banned,
        DeviceStatus::Failed,
        DeviceStatus::Parked,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::New => "new",
            DeviceStatus::AwaitingQr => "awaiting_qr",
            DeviceStatus::AwaitingPairCode => "awaiting_pair_code",
            DeviceStatus::Connecting => "connecting",
            DeviceStatus::Online => "online",
            DeviceStatus::Reconnecting => "reconnecting",
            DeviceStatus::LoggedOut => "logged_out",
            DeviceStatus::Banned => "banned",
            DeviceStatus::Failed => "failed",
            DeviceStatus::Parked => "parked",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(name: &str) -> Option<DeviceStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A device row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = devices)]
pub struct Device {
    /// Primary key.
    pub id: i64,
    /// Owning tenant; every query filters on it.
    pub tenant_id: i64,
    /// Label chosen by the user.
    pub name: String,
    /// WhatsApp JID once paired, e.g. `60123456789:12@s.whatsapp.net`.
    pub jid: Option<String>,
    /// Phone number in E.164 digits once paired.
    pub phone: Option<String>,
    /// The profile name WhatsApp reports.
    pub push_name: Option<String>,
    /// Lifecycle status name (see [`DeviceStatus`]).
    pub status: String,
    /// Why it is in this status (last error, who logged it out, …).
    pub status_reason: Option<String>,
    /// Last time the device was seen connected.
    pub last_seen: Option<NaiveDateTime>,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
    /// When the current link to a phone was made; warm-up counts from it.
    pub paired_at: Option<NaiveDateTime>,
    /// No campaign or sequence sends before this time (see `broadcast::health`).
    pub quarantined_until: Option<NaiveDateTime>,
    /// Why it was quarantined.
    pub quarantine_reason: Option<String>,
}

impl Device {
    /// Whether the device is quarantined at `now`.
    pub fn quarantined_at(&self, now: NaiveDateTime) -> bool {
        self.quarantined_until.is_some_and(|until| until > now)
    }
}

/// Insert form for a new device.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = devices)]
pub struct NewDevice<'a> {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Label.
    pub name: &'a str,
    /// Initial status, normally `new`.
    pub status: &'a str,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
}

/// A status change with the identity learned along the way (set only what is known).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = devices)]
pub struct DeviceStatusPatch {
    /// New status name.
    pub status: Option<String>,
    /// Reason; `Some(None)` clears it.
    pub status_reason: Option<Option<String>>,
    /// JID learned on connect.
    pub jid: Option<Option<String>>,
    /// Phone learned on connect.
    pub phone: Option<Option<String>>,
    /// Profile name learned on connect.
    pub push_name: Option<Option<String>>,
    /// Set when the device is seen online.
    pub last_seen: Option<Option<NaiveDateTime>>,
    /// Cleared when the link ends (logout); set by the store on the first login of a link.
    pub paired_at: Option<Option<NaiveDateTime>>,
    /// Always set by the store.
    pub updated_at: Option<NaiveDateTime>,
}

/// Filters for listing a tenant's devices.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Only devices in this status.
    pub status: Option<DeviceStatus>,
    /// Case-insensitive substring of the name or phone.
    pub search: Option<String>,
    /// Only these ids (a member's assigned devices); `None` means all.
    pub only_ids: Option<Vec<i64>>,
    /// Leave out devices quarantined now (campaigns and sequences choosing senders).
    pub healthy_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_and_match_serde() {
        for status in DeviceStatus::ALL {
            assert_eq!(DeviceStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(DeviceStatus::parse("offline"), None);
    }
}
