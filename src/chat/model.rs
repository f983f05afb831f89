//! Chat and message rows, and their API views.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::{chats, messages, reactions};
use crate::whatsapp::{ContactCard, Location, Quote};

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
    /// What it is ([`crate::whatsapp::MessageKind`] name).
    pub kind: String,
    /// A document's file name.
    pub file_name: Option<String>,
    /// A location's or contact card's details ([`Detail`] as JSON).
    pub detail: Option<String>,
    /// The WhatsApp id of the message this one replies to.
    pub quoted_id: Option<String>,
    /// Who wrote the quoted message (JID).
    pub quoted_sender: Option<String>,
    /// The quoted message's text as the reply carried it.
    pub quoted_text: Option<String>,
    /// When its sender last edited it.
    pub edited_at: Option<NaiveDateTime>,
    /// When its sender deleted it for everyone (its content is gone then).
    pub revoked_at: Option<NaiveDateTime>,
    /// How to download its media while the file is not stored (connector-made, opaque).
    pub media_ref: Option<String>,
}

impl StoredMessage {
    /// The chat list's preview of this message (see [`preview`]).
    pub fn preview(&self) -> Option<String> {
        preview(
            &self.kind,
            self.body.as_deref(),
            self.file_name.as_deref(),
            Detail::parse(self.detail.as_deref()).as_ref(),
        )
    }
}

/// A reaction row: one person's emoji on one message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = reactions)]
pub struct StoredReaction {
    /// Device.
    pub device_id: i64,
    /// The WhatsApp id of the message reacted to.
    pub message_wa_id: String,
    /// Who reacted.
    pub sender_jid: String,
    /// The emoji.
    pub emoji: String,
    /// This device (or its phone) reacted.
    pub from_me: bool,
    /// When.
    pub reacted_at: NaiveDateTime,
}

/// What a location or contact card message carries besides text, stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// A shared place.
    Location(Location),
    /// A shared contact card.
    Contact(ContactCard),
}

/// Longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Longest place name or contact name kept, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest vCard kept, in bytes (a card with a photo is cut, not stored whole).
pub const MAX_VCARD_BYTES: usize = 16 * 1024;
/// Longest quoted text kept with a reply, in characters.
pub const MAX_QUOTE_CHARS: usize = 512;
/// Longest reaction kept, in characters (one emoji may be several code points).
pub const MAX_EMOJI_CHARS: usize = 16;
/// What the chat list shows for a message deleted for everyone.
pub const DELETED_PREVIEW: &str = "🚫 This message was deleted";

/// `text` cut to at most `max` characters.
pub fn cut_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut_bytes(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl Detail {
    /// The details a message carries, their sizes bounded (senders choose them).
    pub fn of(location: Option<&Location>, contact: Option<&ContactCard>) -> Option<Self> {
        if let Some(place) = location {
            return Some(Detail::Location(Location {
                name: place.name.as_deref().map(|n| cut_chars(n, MAX_NAME_CHARS)),
                ..place.clone()
            }));
        }
        contact.map(|card| {
            Detail::Contact(ContactCard {
                display_name: cut_chars(&card.display_name, MAX_NAME_CHARS),
                vcard: cut_bytes(&card.vcard, MAX_VCARD_BYTES),
            })
        })
    }

    /// The details stored as JSON (`None` when absent or unreadable).
    pub fn parse(stored: Option<&str>) -> Option<Self> {
        serde_json::from_str(stored?).ok()
    }
}

/// The chat list's preview of a message: its text, or what it carried.
pub fn preview(
    kind: &str,
    body: Option<&str>,
    file_name: Option<&str>,
    detail: Option<&Detail>,
) -> Option<String> {
    if let Some(text) = body.filter(|t| !t.is_empty()) {
        return Some(text.to_string());
    }
    let said = match (kind, detail) {
        ("image", _) => "📷 Photo".to_string(),
        ("video", _) => "🎥 Video".to_string(),
        ("audio", _) => "🎵 Audio".to_string(),
        ("voice", _) => "🎤 Voice message".to_string(),
        ("document", _) => format!("📄 {}", file_name.unwrap_or("Document")),
        ("sticker", _) => "Sticker".to_string(),
        (_, Some(Detail::Location(place))) => {
            format!("📍 {}", place.name.as_deref().unwrap_or("Location"))
        }
        (_, Some(Detail::Contact(card))) => format!("👤 {}", card.display_name),
        _ => return None,
    };
    Some(said)
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
    /// A group chat (its messages name their senders).
    pub group: bool,
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
    /// What it is: `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location` or `contact`.
    pub kind: String,
    /// Text or caption.
    pub text: Option<String>,
    /// Attached media, if any.
    pub media: Option<MediaView>,
    /// A document's file name.
    pub file_name: Option<String>,
    /// A shared place.
    pub location: Option<Location>,
    /// A shared contact card.
    pub contact: Option<ContactCard>,
    /// The message this one replies to.
    pub quoted: Option<Quote>,
    /// Reactions on it, oldest first.
    pub reactions: Vec<ReactionView>,
    /// Its sender edited it (`text` is the latest version).
    pub edited: bool,
    /// Its sender deleted it for everyone (text and media are gone).
    pub deleted: bool,
    /// Delivery state.
    pub status: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// That time as the dashboard shows it, in the tenant's zone.
    pub time_label: String,
}

/// One person's reaction on a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReactionView {
    /// The emoji.
    pub emoji: String,
    /// Who reacted (JID).
    pub sender: String,
    /// This device (or its phone) reacted.
    pub from_me: bool,
}

/// Media attached to a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaView {
    /// `stored`: the file is here; `remote`: not downloaded yet (lazy downloads, a failed
    /// download, a history sync), fetched from WhatsApp when `url` is first opened; `missing`:
    /// cannot be had (downloads off, or nothing to fetch it by).
    pub state: &'static str,
    /// Where to open it (authenticated); absent when `missing`.
    pub url: Option<String>,
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub size: i64,
}
