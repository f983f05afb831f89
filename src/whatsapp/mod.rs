//! How a device reaches WhatsApp: the [`Connector`] trait and the events a session reports.
//!
//! A connector opens one [`Session`] per device. The session pushes [`ConnectorEvent`]s into a
//! bounded channel that its `DeviceActor` consumes as a stream (backpressure reaches the
//! connection instead of growing memory); the actor calls the session's methods to send, mark
//! read or log out. When the session ends it drops its sender, which the actor sees as the end
//! of the stream. Nothing else in the daemon talks to WhatsApp.
//!
//! Implementations:
//! - [`sim`]: an in-process simulated WhatsApp network (demo, tests, benchmarks).
//! - [`remote`]: the same simulated network in another process (`wafleet sim`), reached over a
//!   small line protocol, so that it outlives a killed daemon (fault harness).
//! - [`real`]: whatsapp-rust, one client per device, its session store in our database.

pub mod real;
pub mod remote;
pub mod sim;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::db::Fence;

/// Capacity of a session's event channel; a full channel makes the connection wait.
pub const EVENT_CHANNEL_CAPACITY: usize = 256;

/// What a session reports to its device actor. Serializable (externally tagged, snake_case) so
/// that a simulator in another process can stream it ([`remote`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorEvent {
    /// A QR payload to show; replaced by a new one roughly every 20 s until scanned.
    Qr {
        /// The string the QR code encodes.
        code: String,
    },
    /// A pairing code to type on the phone (pair-by-phone-number flow).
    PairCode {
        /// Eight characters, shown as `ABCD-EFGH`.
        code: String,
    },
    /// Logged in and online.
    Connected {
        /// The device's JID, e.g. `60123456789:3@s.whatsapp.net`.
        jid: String,
        /// Profile name, when WhatsApp sent one.
        push_name: Option<String>,
    },
    /// The connection dropped; a reconnect may succeed.
    Disconnected {
        /// Why, for the status reason.
        reason: String,
    },
    /// The phone unlinked this device (or it was replaced); stored credentials are void.
    LoggedOut {
        /// Why, for the status reason.
        reason: String,
    },
    /// WhatsApp banned the number.
    Banned {
        /// Why, for the status reason.
        reason: String,
    },
    /// A message arrived, or one sent from the phone was mirrored (boxed: by far the largest
    /// event).
    Message(Box<WaMessage>),
    /// Delivery or read receipts for messages this device sent.
    Receipt(Receipt),
    /// A reaction to, an edit of, or the deletion of an earlier message.
    Change(Box<MessageChange>),
    /// A batch of past messages sent after pairing.
    HistorySync(Vec<WaMessage>),
}

/// A chat message as WhatsApp reports it. `Default` is an empty text message at the epoch, for
/// building one field by field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaMessage {
    /// WhatsApp message id (unique per sender).
    pub id: String,
    /// Chat JID (the contact, or the group).
    pub chat: String,
    /// Sender JID: a phone JID, or a LID (`…@lid`, WhatsApp's anonymous id) for a contact
    /// WhatsApp addresses by LID.
    pub sender: String,
    /// The sender's other JID, when WhatsApp told it: the phone JID of a LID sender (or the
    /// LID of a phone sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_alt: Option<String>,
    /// The chat's other JID in a one-to-one chat, when known (the phone JID of a LID chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_alt: Option<String>,
    /// Sender's profile name, when known.
    pub push_name: Option<String>,
    /// True when this device (or its phone) sent it.
    pub from_me: bool,
    /// What it is: text, a picture, a voice note, a document, …
    #[serde(default)]
    pub kind: MessageKind,
    /// Text or caption.
    pub text: Option<String>,
    /// Attached media, if any (its bytes when they were downloaded).
    pub media: Option<Media>,
    /// A document's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// A shared location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// A shared contact card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactCard>,
    /// The message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Quote>,
    /// A group's title, when the message is in a group and the session knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// When WhatsApp says it was sent.
    pub timestamp: DateTime<Utc>,
}

/// The message a reply quotes, as the reply carries it (the original may be unknown to us).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quote {
    /// The quoted message's WhatsApp id.
    pub id: String,
    /// Who wrote it (JID), when the reply says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Its text or caption (or what it carried), as the reply quotes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A group the device is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Group {
    /// The group's JID (`…@g.us`): the chat to read and the recipient to send to.
    pub jid: String,
    /// Its title.
    pub name: String,
    /// How many people are in it, this device included.
    pub participants: u32,
}

/// A change someone made to an earlier message of a chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageChange {
    /// The change's own WhatsApp message id.
    pub id: String,
    /// Chat JID.
    pub chat: String,
    /// The chat's phone JID when the chat is a LID (as in [`WaMessage::chat_alt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_alt: Option<String>,
    /// Who made it (JID, perhaps a LID).
    pub sender: String,
    /// The sender's phone JID when the sender is a LID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_alt: Option<String>,
    /// True when this device (or its phone) made it.
    pub from_me: bool,
    /// The WhatsApp id of the message it changes.
    pub target: String,
    /// What changed.
    pub change: Change,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// What a [`MessageChange`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A reaction; an empty emoji takes the sender's reaction back.
    Reaction {
        /// The emoji.
        emoji: String,
    },
    /// The sender edited the text (or caption).
    Edit {
        /// The new text.
        text: String,
    },
    /// The sender deleted it for everyone.
    #[default]
    Revoke,
}

/// A file to send, checked and prepared by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMedia {
    /// Image, video, audio, voice, document or sticker.
    pub kind: MessageKind,
    /// The bytes and their type.
    pub media: Media,
    /// Caption (pictures, videos and documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// A document's file name as the recipient sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl OutgoingMedia {
    /// A picture with an optional caption.
    pub fn image(media: Media, caption: Option<String>) -> Self {
        Self {
            kind: MessageKind::Image,
            media,
            caption,
            file_name: None,
        }
    }
}

/// What a chat message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text only.
    #[default]
    Text,
    /// A picture, perhaps with a caption.
    Image,
    /// A video, perhaps with a caption.
    Video,
    /// An audio file.
    Audio,
    /// A voice note (push-to-talk audio, OGG/Opus).
    Voice,
    /// Any file, with its name.
    Document,
    /// A sticker (WebP, perhaps animated).
    Sticker,
    /// A place on the map.
    Location,
    /// A contact card (vCard).
    Contact,
}

impl MessageKind {
    /// The largest received media of this kind downloaded under `caps`, in bytes (0 for kinds
    /// without a file).
    pub fn download_cap(self, caps: &crate::config::MediaCaps) -> u64 {
        let mib = match self {
            Self::Image => caps.image,
            Self::Video => caps.video,
            Self::Audio => caps.audio,
            Self::Voice => caps.voice,
            Self::Document => caps.document,
            Self::Sticker => caps.sticker,
            Self::Text | Self::Location | Self::Contact => 0,
        };
        mib.saturating_mul(1024 * 1024)
    }

    /// Whether a message of this kind carries a file.
    pub fn has_file(self) -> bool {
        !matches!(self, Self::Text | Self::Location | Self::Contact)
    }

    /// The kind a stored name names (`None` for an unknown name).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Text,
            Self::Image,
            Self::Video,
            Self::Audio,
            Self::Voice,
            Self::Document,
            Self::Sticker,
            Self::Location,
            Self::Contact,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contact => "contact",
        }
    }
}

/// A shared location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// The place's name, when the sender picked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A shared contact card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactCard {
    /// The name shown on the card.
    pub display_name: String,
    /// The vCard text.
    pub vcard: String,
}

/// The media of a message: its bytes when they were downloaded, and how to download them
/// later when they were not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// MIME type, e.g. `image/jpeg`.
    pub mime: String,
    /// The bytes (base64 in JSON); empty when not downloaded.
    #[serde(with = "base64_bytes")]
    pub data: Arc<Vec<u8>>,
    /// What [`Session::download`] takes to fetch the bytes later (received media only; opaque,
    /// made by the connector); `None` when they cannot be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Media {
    /// Bytes in hand, of type `mime`.
    pub fn bytes(mime: impl Into<String>, data: Vec<u8>) -> Self {
        Self {
            mime: mime.into(),
            data: Arc::new(data),
            reference: None,
        }
    }
}

/// Media bytes as one base64 string in JSON, rather than an array of numbers.
mod base64_bytes {
    use std::sync::Arc;

    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as base64.
    pub(super) fn serialize<S: Serializer>(data: &Arc<Vec<u8>>, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&BASE64.encode(data.as_slice()))
    }

    /// Reads base64 back into bytes.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Arc<Vec<u8>>, D::Error> {
        let text = String::deserialize(input)?;
        BASE64
            .decode(text.as_bytes())
            .map(Arc::new)
            .map_err(serde::de::Error::custom)
    }
}

/// Delivery state reported for sent messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// WhatsApp's server accepted the message (the real connector's `ServerAck`; a send call
    /// returns before this).
    Sent,
    /// WhatsApp's server refused the message (a nack); it will not be delivered.
    Failed,
    /// Reached the recipient's phone.
    Delivered,
    /// The recipient opened it.
    Read,
}

/// A receipt for one or more messages in a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Chat JID.
    pub chat: String,
    /// The message ids it covers.
    pub message_ids: Vec<String>,
    /// Delivered or read.
    pub kind: ReceiptKind,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// Why a connector call failed. Serializable (`{"code":…,"detail":…}`) for [`remote`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum ConnectorError {
    /// Could not reach WhatsApp (or the simulator refused); retry with backoff.
    #[error("connection failed: {0}")]
    ConnectFailed(String),
    /// The session is not online.
    #[error("not connected")]
    NotConnected,
    /// The recipient is not a valid WhatsApp address.
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    /// WhatsApp is rate-limiting this account; wait before the next send.
    #[error("rate limited, retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait.
        retry_after_ms: u64,
    },
    /// Anything else the connector reports.
    #[error("{0}")]
    Other(String),
}

/// What a device brings to `connect`: who it is and what it already knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Our device id; the session store is keyed by it.
    pub device_id: i64,
    /// The JID from the last successful login, if any (its credentials live in the store).
    pub jid: Option<String>,
    /// The device's lease as this daemon holds it (PostgreSQL clusters): a connector with a
    /// session store fences the store's writes with it.
    pub fence: Option<Fence>,
}

/// Opens sessions. One per daemon, shared by all device actors.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a session. If the device has valid stored credentials it logs in (`Connected`),
    /// otherwise it starts pairing (`Qr`). Events flow into `events` until the session ends.
    async fn connect(
        &self,
        request: SessionRequest,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<Box<dyn Session>, ConnectorError>;

    /// Short name for logs and the API (`sim`, `real`).
    fn name(&self) -> &'static str;

    /// Forgets everything stored for `device_id` (its session store), after ending any session
    /// of it that still runs. Called after a logout; a no-op for connectors without a store.
    async fn forget(&self, device_id: i64) -> Result<(), ConnectorError> {
        let _ = device_id;
        Ok(())
    }
}

/// One device's live connection.
#[async_trait]
pub trait Session: Send + Sync {
    /// Switches pairing to a code for `phone` (digits, international form) and returns it.
    async fn request_pair_code(&self, phone: &str) -> Result<String, ConnectorError>;

    /// Sends a text with the caller's message id (a retry reuses it, so WhatsApp deduplicates).
    async fn send_text(&self, to: &str, message_id: &str, text: &str)
        -> Result<(), ConnectorError>;

    /// Sends a file (picture, video, audio, voice note, document or sticker) under the caller's
    /// message id.
    async fn send_media(
        &self,
        to: &str,
        message_id: &str,
        file: OutgoingMedia,
    ) -> Result<(), ConnectorError>;

    /// The groups the device is in.
    async fn groups(&self) -> Result<Vec<Group>, ConnectorError>;

    /// Downloads (and decrypts) received media of `kind` by the reference its message carried,
    /// within `max_bytes`.
    async fn download(
        &self,
        kind: MessageKind,
        reference: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ConnectorError>;

    /// Shares a place under the caller's message id.
    async fn send_location(
        &self,
        to: &str,
        message_id: &str,
        place: &Location,
    ) -> Result<(), ConnectorError>;

    /// Shows "typing…" in `to`'s chat (or stops it).
    async fn set_typing(&self, to: &str, typing: bool) -> Result<(), ConnectorError>;

    /// Marks messages of a chat as read.
    async fn mark_read(&self, chat: &str, message_ids: &[String]) -> Result<(), ConnectorError>;

    /// Unlinks the device from the phone. The caller deletes the stored session afterwards.
    async fn logout(&self) -> Result<(), ConnectorError>;

    /// Closes the connection without logging out (restart, shutdown). Idempotent.
    async fn disconnect(&self);
}
