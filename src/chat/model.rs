//! Chat and message rows, and their API views.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::{chats, messages};

/// A chat row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = chats)]
pub struct Chat {
    /// Primary key.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device the chat belongs to.
    pub device_id: i64,
    /// The contact's (or group's) JID.
    pub jid: String,
    /// Contact name as WhatsApp reported it.
    pub name: Option<String>,
    /// Preview of the latest message.
    pub last_message_text: Option<String>,
    /// Time of the latest message.
    pub last_message_at: Option<NaiveDateTime>,
    /// Inbound messages not marked read.
    pub unread_count: i64,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

/// A message row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = messages)]
pub struct StoredMessage {
    /// Primary key.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device.
    pub device_id: i64,
    /// Chat.
    pub chat_id: i64,
    /// WhatsApp message id.
    pub wa_id: String,
    /// Sender JID.
    pub sender_jid: String,
    /// Sender's profile name.
    pub sender_name: Option<String>,
    /// Sent by this device (or its phone).
    pub from_me: bool,
    /// Text or caption.
    pub body: Option<String>,
    /// MIME type of attached media.
    pub media_mime: Option<String>,
    /// Size of attached media in bytes.
    pub media_size: Option<i64>,
    /// SHA-256 of the stored media file.
    pub media_sha256: Option<String>,
    /// `received`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// When WhatsApp says it was sent.
    pub sent_at: NaiveDateTime,
    /// When it was stored.
    pub created_at: NaiveDateTime,
}

/// A chat as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatView {
    /// The contact's JID (the `{chat}` path segment).
    pub jid: String,
    /// Contact name.
    pub name: Option<String>,
    /// The contact's phone number (E.164 digits); null for a group, and for a contact WhatsApp
    /// names by LID whose number is not known yet (the page shows "unknown number").
    pub phone: Option<String>,
    /// Preview of the latest message.
    pub last_message: Option<String>,
    /// Time of the latest message.
    pub last_message_at: Option<DateTime<Utc>>,
    /// That time as the dashboard shows it, in the tenant's zone.
    pub time_label: Option<String>,
    /// Unread badge count.
    pub unread_count: i64,
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    /// WhatsApp message id.
    pub id: String,
    /// The chat's JID.
    pub chat: String,
    /// Sender JID.
    pub sender: String,
    /// Sender's profile name.
    pub sender_name: Option<String>,
    /// Sent by this device.
    pub from_me: bool,
    /// Text or caption.
    pub text: Option<String>,
    /// Attached media, if any.
    pub media: Option<MediaView>,
    /// Delivery state.
    pub status: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// That time as the dashboard shows it, in the tenant's zone.
    pub time_label: String,
}

/// Media attached to a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaView {
    /// Where to download it (authenticated; absent when the file was not stored).
    pub url: Option<String>,
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub size: i64,
}
