//! Sequence, step and enrolment rows, their states, and the step send window.

use chrono::{NaiveDateTime, NaiveTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::branch::{OnReply, ReplyAction};
use crate::broadcast::campaign::model::CampaignStatus;
use crate::db::schema::{sequence_enrollments, sequence_steps, sequences};

/// Whether a sequence sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SequenceStatus {
    /// Enrols tagged leads and sends steps as they come due.
    #[default]
    Active,
    /// Sends nothing, not even messages already due; enrols nobody.
    Paused,
}

impl SequenceStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    /// The status of a stored name (unknown reads as paused, which sends nothing).
    pub fn parse(name: &str) -> Self {
        if name == "active" {
            Self::Active
        } else {
            Self::Paused
        }
    }

    /// The state of the sequence's carrier campaign: running while it is active.
    pub fn carrier_status(self) -> CampaignStatus {
        match self {
            Self::Active => CampaignStatus::Running,
            Self::Paused => CampaignStatus::Paused,
        }
    }
}

/// States of an enrolment: waiting → active → waiting … → completed | stopped | failed.
pub mod enrollment_status {
    /// Waiting until its next step is due (`next_due_at`).
    pub const WAITING: &str = "waiting";
    /// Its step's message is in the outbox, not yet sent.
    pub const ACTIVE: &str = "active";
    /// Every step was sent.
    pub const COMPLETED: &str = "completed";
    /// Ended early: the lead replied, opted out, or a user stopped it.
    pub const STOPPED: &str = "stopped";
    /// A step could not be sent (invalid number, attempts exhausted).
    pub const FAILED: &str = "failed";
    /// Every state.
    pub const ALL: [&str; 5] = [WAITING, ACTIVE, COMPLETED, STOPPED, FAILED];
    /// States with steps still to come.
    pub const OPEN: [&str; 2] = [WAITING, ACTIVE];
}

/// A sequence row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sequences)]
pub struct Sequence {
    /// Primary key.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The hidden campaign whose outbox and lanes carry the sends.
    pub campaign_id: i64,
    /// Label (unique per tenant).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Leads that get this tag are enrolled.
    pub trigger_tag: Option<String>,
    /// A reply from the lead stops its future steps.
    pub stop_on_reply: bool,
    /// [`SequenceStatus`] name.
    pub status: String,
    /// Completing leads are enrolled in this sequence next.
    pub next_sequence_id: Option<i64>,
    /// Who created it.
    pub created_by: Option<i64>,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
}

impl Sequence {
    /// The parsed status.
    pub fn state(&self) -> SequenceStatus {
        SequenceStatus::parse(&self.status)
    }
}

/// The editable fields of a sequence, as stored.
#[derive(Debug, Clone, AsChangeset, Insertable)]
#[diesel(table_name = sequences, treat_none_as_null = true)]
pub struct SequenceFields {
    /// Label.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Entry tag (lower case).
    pub trigger_tag: Option<String>,
    /// Stop on reply.
    pub stop_on_reply: bool,
    /// Chain.
    pub next_sequence_id: Option<i64>,
}

/// A step row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sequence_steps)]
pub struct Step {
    /// Primary key.
    pub id: i64,
    /// Its sequence.
    pub sequence_id: i64,
    /// 1, 2, 3 … in sending order.
    pub position: i64,
    /// Template text (caption when there is a picture).
    pub message: String,
    /// The step's file in the media store (a prepared JPEG unless `attachment` says otherwise).
    pub image_sha256: Option<String>,
    /// Wait after the previous step (after enrolment for step 1).
    pub delay_minutes: i64,
    /// Daily send window start, "HH:MM" in the tenant's zone.
    pub window_start: Option<String>,
    /// Daily send window end.
    pub window_end: Option<String>,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
    /// What the file is when not a picture ([`crate::broadcast::attachment::FileInfo`] JSON).
    pub attachment: Option<String>,
    /// [`ReplyAction`] name of its reply rule (none: the sequence's default).
    pub reply_action: Option<String>,
    /// The rule's keyword (lower case).
    pub reply_keyword: Option<String>,
    /// The rule's jump target.
    pub reply_sequence_id: Option<i64>,
}

impl Step {
    /// The step's rule for a reply to it, if it has one.
    pub fn on_reply(&self) -> Option<OnReply> {
        Some(OnReply {
            action: ReplyAction::parse(self.reply_action.as_deref()?)?,
            keyword: self.reply_keyword.clone(),
            sequence_id: self.reply_sequence_id,
        })
    }

    /// The step's send window, if it has one.
    pub fn window(&self) -> Option<Window> {
        match (&self.window_start, &self.window_end) {
            (Some(start), Some(end)) => Window::parse(start, end).ok(),
            _ => None,
        }
    }
}

/// A step as written by a client and stored (without its picture).
#[derive(Debug, Clone, PartialEq)]
pub struct StepFields {
    /// Template text.
    pub message: String,
    /// Delay in minutes.
    pub delay_minutes: i64,
    /// Send window.
    pub window: Option<Window>,
    /// What a reply to it does (none: the sequence's default).
    pub on_reply: Option<OnReply>,
}

/// A daily send window in local time; may wrap midnight (`22:00`–`02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Window {
    /// First minute messages may go, "HH:MM".
    #[serde(with = "hh_mm")]
    #[schema(value_type = String, example = "09:00")]
    pub start: NaiveTime,
    /// First minute they may not, "HH:MM".
    #[serde(with = "hh_mm")]
    #[schema(value_type = String, example = "18:00")]
    pub end: NaiveTime,
}

impl Window {
    /// Parses two "HH:MM" times; they must differ.
    pub fn parse(start: &str, end: &str) -> Result<Window, String> {
        let parse = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("window times look like 09:00, got {t:?}"))
        };
        let window = Window {
            start: parse(start)?,
            end: parse(end)?,
        };
        if window.start == window.end {
            return Err("the window's start and end must differ".into());
        }
        Ok(window)
    }

    /// Is local time `at` inside the window?
    pub fn contains(&self, at: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= at && at < self.end
        } else {
            at >= self.start || at < self.end
        }
    }
}

/// `NaiveTime` as "HH:MM".
mod hh_mm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("expected HH:MM, got {text:?}")))
    }
}

/// An enrolment row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize, ToSchema)]
#[diesel(table_name = sequence_enrollments)]
pub struct Enrollment {
    /// Primary key.
    pub id: i64,
    /// Owning tenant.
    #[serde(skip)]
    pub tenant_id: i64,
    /// Its sequence.
    pub sequence_id: i64,
    /// The lead.
    pub lead_id: i64,
    /// The device that writes to the lead.
    pub device_id: Option<i64>,
    /// The lead's phone, E.164 digits.
    pub phone: String,
    /// See [`enrollment_status`].
    pub status: String,
    /// The step due next (waiting) or being sent (active).
    pub step: i64,
    /// When the waiting step is due, UTC.
    pub next_due_at: Option<NaiveDateTime>,
    /// Why it stopped or failed.
    pub reason: Option<String>,
    /// The lead's first reply after enrolment, UTC.
    pub replied_at: Option<NaiveDateTime>,
    /// The last step sent before that reply.
    pub replied_after_step: Option<i64>,
    /// How the lead came in: tag, manual, chain.
    pub source: String,
    /// When, UTC.
    pub enrolled_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
}

/// A lead to enrol.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEnrollment {
    /// The lead.
    pub lead_id: i64,
    /// Its phone.
    pub phone: String,
    /// Its device (the lead's own or one chosen by distribution; none when none is online).
    pub device_id: Option<i64>,
    /// tag, manual or chain.
    pub source: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> NaiveTime {
        NaiveTime::parse_from_str(text, "%H:%M").unwrap()
    }

    #[test]
    fn windows_contain_their_start_not_their_end_and_may_wrap() {
        let day = Window::parse("09:00", "18:00").unwrap();
        assert!(day.contains(t("09:00")) && day.contains(t("17:59")));
        assert!(!day.contains(t("18:00")) && !day.contains(t("08:59")));
        let night = Window::parse("22:00", "02:00").unwrap();
        assert!(night.contains(t("23:00")) && night.contains(t("01:00")));
        assert!(!night.contains(t("12:00")));
        assert!(Window::parse("09:00", "09:00").is_err());
        assert!(Window::parse("9am", "18:00").is_err());
    }
}
