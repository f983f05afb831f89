//! Outbox rows and their states: the [`OutboxStatus`] state machine (with the moves a receipt
//! makes), the row a campaign or sequence writes ([`OutboxRow`]), the row a sender claims
//! ([`Claimed`]), the row as listed ([`OutboxEntry`]) and a receipt ([`Receipt`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// The state of one outbox row: pending → sending → sent → delivered → read, or failed or
/// skipped. Stored as its name (`as_str`), which the table's CHECK constraint limits to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Waiting for its device's turn.
    Pending,
    /// Claimed by a sender (leased).
    Sending,
    /// WhatsApp accepted it.
    Sent,
    /// Reached the lead's phone.
    Delivered,
    /// The lead opened it.
    Read,
    /// Gave up (invalid number, attempts exhausted).
    Failed,
    /// Not sent on purpose (opted out, campaign cancelled, no device capacity).
    Skipped,
}

impl OutboxStatus {
    /// Every state, in order.
    pub const ALL: [OutboxStatus; 7] = [
        Self::Pending,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Skipped,
    ];

    /// The name stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// The state of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a row may move from this state to `to`: a pending row is claimed or skipped; a
    /// claimed one is sent, failed, skipped or given back (pending), or overtaken by a receipt
    /// that arrived before its send was recorded; receipts only move a sent row forward. A
    /// failed row goes back to pending only when a user retries it (`retry-failed`: it never
    /// reached WhatsApp, and it keeps its message id). Skipped and read rows are final.
    pub const fn can_move_to(self, to: Self) -> bool {
        use OutboxStatus::*;
        matches!(
            (self, to),
            (Pending, Sending | Skipped)
                | (Failed, Pending)
                | (
                    Sending,
                    Pending | Sent | Failed | Skipped | Delivered | Read
                )
                | (Sent, Delivered | Read)
                | (Delivered, Read)
        )
    }

    /// Names of the states a receipt of this status (`delivered` or `read`) moves a row
    /// forward from: every state that [`can_move_to`](Self::can_move_to) it. Other statuses
    /// move nothing. A receipt never moves a row backwards.
    pub fn receipt_moves_from(self) -> &'static [&'static str] {
        match self {
            Self::Delivered => &DELIVERED_FROM,
            Self::Read => &READ_FROM,
            _ => &[],
        }
    }

    /// Whether the row is still to send (pending or sending).
    pub fn unsent(self) -> bool {
        matches!(self, Self::Pending | Self::Sending)
    }

    /// Whether WhatsApp accepted the message (sent, delivered or read).
    pub fn accepted(self) -> bool {
        matches!(self, Self::Sent | Self::Delivered | Self::Read)
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the `N` states that can move to `to`, computed at compile time from
/// [`OutboxStatus::can_move_to`] (a wrong `N` does not compile).
const fn sources<const N: usize>(to: OutboxStatus) -> [&'static str; N] {
    let mut names = [""; N];
    let mut found = 0;
    let mut i = 0;
    while i < OutboxStatus::ALL.len() {
        if OutboxStatus::ALL[i].can_move_to(to) {
            names[found] = OutboxStatus::ALL[i].as_str();
            found += 1;
        }
        i += 1;
    }
    assert!(found == N, "N must count the states that can move to `to`");
    names
}

/// States a delivery receipt moves forward from.
const DELIVERED_FROM: [&str; 2] = sources(OutboxStatus::Delivered);
/// States a read receipt moves forward from.
const READ_FROM: [&str; 3] = sources(OutboxStatus::Read);

/// [`OutboxStatus::receipt_moves_from`] by stored name (`delivered` or `read`; anything else
/// moves nothing), for code that holds a receipt's status as text.
pub fn receipt_moves_from(status: &str) -> &'static [&'static str] {
    OutboxStatus::parse(status).map_or(&[], OutboxStatus::receipt_moves_from)
}

/// A WhatsApp-style message id (`3EB0` + 16 hex digits), fixed when a row is written so every
/// attempt sends the same message (WhatsApp deduplicates by id).
pub fn new_message_id() -> String {
    format!("3EB0{:016X}", rand::random::<u64>())
}

/// One message to write to the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The lead.
    pub lead_id: i64,
    /// Assigned device, if any.
    pub device_id: Option<i64>,
    /// E.164 digits.
    pub phone: String,
    /// Rendered text.
    pub body: String,
    /// Pre-generated WhatsApp message id ([`new_message_id`]).
    pub message_id: String,
    /// Pending, or skipped (opted out, no device capacity).
    pub status: OutboxStatus,
    /// Why it was skipped.
    pub error: Option<String>,
    /// The sequence step it carries (0 for a campaign's message).
    pub step: i64,
    /// Its own file (a sequence step's).
    pub image_sha256: Option<String>,
    /// What that file is when not a picture ([`crate::broadcast::attachment::FileInfo`] JSON).
    pub attachment: Option<String>,
}

/// An outbox row claimed for sending.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// Lead phone (E.164 digits).
    pub phone: String,
    /// Rendered text (or caption).
    pub body: String,
    /// The WhatsApp message id every attempt uses.
    pub message_id: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// The row's own file (sequence steps), else the campaign's.
    pub image_sha256: Option<String>,
    /// What that file is when not a picture.
    pub attachment: Option<String>,
}

/// An outbox row as shown in results.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = crate::db::schema::outbox)]
pub struct OutboxEntry {
    /// Row id.
    pub id: i64,
    /// The lead (gone when the lead was deleted).
    pub lead_id: Option<i64>,
    /// The device that sends (or sent) it.
    pub device_id: Option<i64>,
    /// E.164 digits.
    pub phone: String,
    /// Rendered text.
    pub body: String,
    /// WhatsApp message id.
    pub message_id: String,
    /// Outbox state ([`OutboxStatus`] name).
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Last error.
    pub error: Option<String>,
    /// When WhatsApp accepted it, UTC.
    pub sent_at: Option<NaiveDateTime>,
    /// When it reached the phone, UTC.
    pub delivered_at: Option<NaiveDateTime>,
    /// When it was read, UTC.
    pub read_at: Option<NaiveDateTime>,
}

/// A receipt for messages one device sent: they reached the phone, or were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The device that sent them.
    pub device_id: i64,
    /// Their WhatsApp message ids.
    pub wa_ids: Vec<String>,
    /// `Delivered` or `Read` (any other status moves nothing).
    pub status: OutboxStatus,
}

#[cfg(test)]
mod tests {
    use super::{receipt_moves_from, OutboxStatus};

    #[test]
    fn names_round_trip() {
        for status in OutboxStatus::ALL {
            assert_eq!(OutboxStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OutboxStatus::parse("queued"), None);
    }

    #[test]
    fn receipts_move_rows_forward_only() {
        assert_eq!(receipt_moves_from("delivered"), ["sending", "sent"]);
        assert_eq!(receipt_moves_from("read"), ["sending", "sent", "delivered"]);
        assert!(receipt_moves_from("failed").is_empty());
        assert!(receipt_moves_from("sent").is_empty());
        for to in [OutboxStatus::Delivered, OutboxStatus::Read] {
            for from in OutboxStatus::ALL {
                assert_eq!(
                    to.receipt_moves_from().contains(&from.as_str()),
                    from.can_move_to(to),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn final_states_stay() {
        for end in [OutboxStatus::Read, OutboxStatus::Skipped] {
            assert!(OutboxStatus::ALL.iter().all(|to| !end.can_move_to(*to)));
        }
        // A failed row only goes back to pending (a user's retry), never to a sent state.
        let from_failed: Vec<OutboxStatus> = OutboxStatus::ALL
            .into_iter()
            .filter(|to| OutboxStatus::Failed.can_move_to(*to))
            .collect();
        assert_eq!(from_failed, [OutboxStatus::Pending]);
        assert!(OutboxStatus::Pending.can_move_to(OutboxStatus::Sending));
        assert!(!OutboxStatus::Pending.can_move_to(OutboxStatus::Sent));
        assert!(!OutboxStatus::Delivered.can_move_to(OutboxStatus::Sent));
    }
}
