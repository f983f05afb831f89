//! Messages `ChatSync` handles; device actors send them for every chat event of their session.

use actix::Message;

use crate::whatsapp::{Receipt, WaMessage};

/// Store (and publish) messages of a device: live ones, sent ones, or a history batch.
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

/// Apply a delivery or read receipt.
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
