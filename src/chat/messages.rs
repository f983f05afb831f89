//! Messages `ChatSync` handles; device actors send them for every chat event of their session.

use actix::{Message, Recipient};

use crate::whatsapp::{MessageChange, Receipt, WaMessage};

/// Store (and publish) messages of a device: live ones, sent ones, or a history batch.
///
/// Answered once the mirror has queued them: at once, or after a commit made room when its
/// queue is full. A device actor awaits the answer before reading more from its session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordMessages {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device.
    pub device_id: i64,
    /// The messages.
    pub messages: Vec<WaMessage>,
    /// True for history sync: stored, but not counted unread nor announced one by one.
    pub history: bool,
}

/// Apply a delivery or read receipt (answered like [`RecordMessages`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordReceipt {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device.
    pub device_id: i64,
    /// The receipt.
    pub receipt: Receipt,
}

/// Apply a reaction, edit or deletion to a stored message (answered like [`RecordMessages`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordChange {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device.
    pub device_id: i64,
    /// The change.
    pub change: MessageChange,
}

/// A tenant's time zone changed: `ChatSync` labels the tenant's later events in `zone` (it
/// caches zones, so without this it would keep the old one until a restart).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TenantZoneChanged {
    /// The tenant.
    pub tenant_id: i64,
    /// Its new zone.
    pub zone: chrono_tz::Tz,
}

/// Where device actors send chat traffic: the chat mirror's mailboxes, without naming its actor
/// (device/ sits above chat/ and depends only on these messages).
#[derive(Clone)]
pub struct ChatInbox {
    /// Messages to store and announce.
    pub messages: Recipient<RecordMessages>,
    /// Receipts to apply.
    pub receipts: Recipient<RecordReceipt>,
    /// Reactions, edits and deletions to apply.
    pub changes: Recipient<RecordChange>,
}

/// What one flush of the chat mirror committed, announced once per flush after the commit to
/// every listener (the broadcast side's `Replies`: opt-out keywords, stop-on-reply, receipts
/// into the outbox). Chat knows nothing of those features; they react to this.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "()")]
pub struct ChatCommitted {
    /// Live inbound messages newly stored (no history sync, no replays, none sent by us).
    pub inbound: Vec<Inbound>,
    /// Every receipt of the batch, whether or not it moved a mirrored message.
    pub receipts: Vec<CommittedReceipt>,
}

/// A live inbound message, as `ChatCommitted` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device it reached.
    pub device_id: i64,
    /// Sender JID.
    pub sender: String,
    /// Text or caption.
    pub text: Option<String>,
}

/// A delivery, read or failure receipt, as `ChatCommitted` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedReceipt {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device that sent the messages.
    pub device_id: i64,
    /// WhatsApp message ids.
    pub message_ids: Vec<String>,
    /// `delivered`, `read` or `failed`.
    pub status: &'static str,
}

/// The daemon is stopping: write everything queued now (no batch window) and answer once the
/// queue is empty. A batch the database refuses stays queued and is retried as usual, so the
/// answer may wait; the caller bounds the wait.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;
