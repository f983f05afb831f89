//! Campaign rows, their states, and the JSON shapes of targets and device choices.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::distribution::Distribution;
use crate::db::schema::campaigns;

/// A campaign's state: draft → scheduled → running ⇄ paused → completed | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Being written; nothing is sent.
    Draft,
    /// Starts by itself at `scheduled_at`.
    Scheduled,
    /// Sending.
    Running,
    /// Stopped by a user; resumes where it stopped.
    Paused,
    /// Every message was sent, failed or skipped.
    Completed,
    /// Stopped for good; unsent messages were skipped.
    Cancelled,
}

impl CampaignStatus {
    /// Every status.
    pub const ALL: [CampaignStatus; 6] = [
        Self::Draft,
        Self::Scheduled,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the campaign can still be edited (nothing written to the outbox yet).
    pub fn editable(self) -> bool {
        matches!(self, Self::Draft | Self::Scheduled)
    }
}

/// What a campaign does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// One message to every lead of the target.
    #[default]
    Broadcast,
    /// AI lead distribution: the target's unassigned leads (the pool) are spread over the online
    /// devices, at most `per_device_limit` each, and each lead gets the message from its device,
    /// which becomes the lead's own.
    Ai,
    /// The hidden carrier of a sequence's sends (never listed as a campaign).
    Sequence,
}

impl CampaignKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Ai => "ai",
            Self::Sequence => "sequence",
        }
    }

    /// The kind of a stored name (unknown names read as broadcast).
    pub fn parse(name: &str) -> Self {
        match name {
            "ai" => Self::Ai,
            "sequence" => Self::Sequence,
            _ => Self::Broadcast,
        }
    }
}

/// Which leads a campaign goes to: leads in any of the lists, having any of the tags, in any of
/// the statuses and niches (an empty criterion does not filter). A broadcast needs at least one
/// list or tag; an AI distribution takes unassigned leads and may select by niche alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Lead list ids.
    #[serde(default)]
    pub list_ids: Vec<i64>,
    /// Tags (any of them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Lead statuses (any of them).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// Lead niches (any of them, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub niches: Vec<String>,
}

/// Which devices send a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceChoice {
    /// Every device of the tenant online when the campaign starts (and any that comes online).
    AllOnline,
    /// These devices.
    Set {
        /// Device ids.
        ids: Vec<i64>,
    },
    /// The devices assigned to a team member.
    Member {
        /// The member's user id.
        user_id: i64,
    },
}

/// What happens to a device's unsent messages when it goes offline, is logged out or banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDeviceLoss {
    /// They move to the campaign's other online devices.
    Move,
    /// They wait for the device to come back.
    Wait,
}

impl OnDeviceLoss {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Move => "move",
            Self::Wait => "wait",
        }
    }
}

/// A campaign row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    /// Primary key.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Label.
    pub name: String,
    /// [`CampaignStatus`] name.
    pub status: String,
    /// Template text.
    pub message: String,
    /// Prepared JPEG in the media store, if the campaign sends a picture (message = caption).
    pub image_sha256: Option<String>,
    /// [`Target`] as JSON.
    pub target: String,
    /// [`DeviceChoice`] as JSON.
    pub devices: String,
    /// [`crate::broadcast::pacing::PacingOverride`] as JSON.
    pub pacing: String,
    /// [`OnDeviceLoss`] name.
    pub on_device_loss: String,
    /// Start time for a scheduled campaign, UTC.
    pub scheduled_at: Option<NaiveDateTime>,
    /// When it first started (its outbox was written), UTC.
    pub started_at: Option<NaiveDateTime>,
    /// When it completed or was cancelled, UTC.
    pub finished_at: Option<NaiveDateTime>,
    /// Who created it.
    pub created_by: Option<i64>,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
    /// [`CampaignKind`] name.
    pub kind: String,
    /// AI distribution: at most this many leads per device.
    pub per_device_limit: Option<i64>,
    /// What the file under `image_sha256` is when not a picture
    /// ([`crate::broadcast::attachment::FileInfo`] JSON).
    pub attachment: Option<String>,
}

impl Campaign {
    /// The parsed kind.
    pub fn kind(&self) -> CampaignKind {
        CampaignKind::parse(&self.kind)
    }

    /// How it spreads its rows over devices (its kind, with its per-device limit).
    pub fn distribution(&self) -> Distribution {
        Distribution::of(self.kind(), self.per_device_limit)
    }

    /// The parsed status (an unknown name reads as cancelled, which sends nothing).
    pub fn state(&self) -> CampaignStatus {
        CampaignStatus::parse(&self.status).unwrap_or(CampaignStatus::Cancelled)
    }

    /// The parsed target (stored by this code, so it parses).
    pub fn target(&self) -> Target {
        serde_json::from_str(&self.target).unwrap_or_default()
    }

    /// The parsed device choice.
    pub fn device_choice(&self) -> DeviceChoice {
        serde_json::from_str(&self.devices).unwrap_or(DeviceChoice::AllOnline)
    }

    /// The parsed pacing overrides.
    pub fn pacing_override(&self) -> crate::broadcast::pacing::PacingOverride {
        serde_json::from_str(&self.pacing).unwrap_or_default()
    }

    /// The parsed device-loss policy.
    pub fn on_device_loss(&self) -> OnDeviceLoss {
        if self.on_device_loss == "wait" {
            OnDeviceLoss::Wait
        } else {
            OnDeviceLoss::Move
        }
    }
}

/// The editable fields of a campaign, as stored.
#[derive(Debug, Clone, AsChangeset, Insertable)]
#[diesel(table_name = campaigns)]
pub struct CampaignFields {
    /// Label.
    pub name: String,
    /// Template text.
    pub message: String,
    /// [`Target`] JSON.
    pub target: String,
    /// [`DeviceChoice`] JSON.
    pub devices: String,
    /// Pacing override JSON.
    pub pacing: String,
    /// [`OnDeviceLoss`] name.
    pub on_device_loss: String,
    /// [`CampaignKind`] name.
    pub kind: String,
    /// AI distribution's per-device limit.
    pub per_device_limit: Option<i64>,
}

/// A lead picked by a campaign's target, with what its template may use.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct TargetLead {
    /// Lead id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// E.164 digits.
    pub phone: String,
    /// Niche.
    pub niche: Option<String>,
    /// Status.
    pub status: String,
    /// Custom fields JSON.
    pub fields: String,
}

impl TargetLead {
    /// The variables a template can use: name, first_name, phone, niche, status, and every
    /// custom field (keys lower-cased). A custom field named `greeting` is left out: that
    /// name is the time-of-day word filled in at send time ([`crate::broadcast::greeting`]).
    pub fn variables(&self) -> std::collections::HashMap<String, String> {
        let mut vars: std::collections::HashMap<String, String> = serde_json::from_str::<
            std::collections::HashMap<String, serde_json::Value>,
        >(&self.fields)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k.to_lowercase(), value)
        })
        .collect();
        let first = self
            .name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        vars.insert("name".into(), self.name.clone());
        vars.insert("first_name".into(), first);
        vars.insert("phone".into(), self.phone.clone());
        vars.insert("niche".into(), self.niche.clone().unwrap_or_default());
        vars.insert("status".into(), self.status.clone());
        vars.remove(crate::broadcast::greeting::VARIABLE);
        vars
    }
}
