//! A device's chats: the list, a conversation's pages, and sending a text, a place or a file.
//!
//! Sending is two steps so that a face can refuse a device before it reads a large body: a
//! [`Sender`] is made only by [`Sender::for_device`], which checks that the caller may send
//! from the device; [`Sender::send`] then checks and sends what was read.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{secret, store as accounts, Caller};
use crate::chat::media::files;
use crate::chat::model::{ChatView, MessageView};
use crate::chat::store::Only;
use crate::chat::{changes, chat_view, media, message_view, store};
use crate::device::messages::{DeviceError, SendLocation, SendMedia, SendText};
use crate::device::Device;
use crate::web::access::visible_device;
use crate::web::auth::{require, Auth};
use crate::web::input::check_message_text;
use crate::web::{ApiError, AppState, ErrorCode};
use crate::whatsapp::{Location, Media, MessageKind, OutgoingMedia};

/// Most chats in one list.
const MAX_CHATS: i64 = 500;
/// Most messages in one page.
const MAX_PAGE: i64 = 200;

/// Which chats to list: the query of `GET /devices/{id}/chats`, and arguments of `list_chats`.
#[derive(Debug, Default, Deserialize, IntoParams, schemars::JsonSchema)]
pub struct ChatQuery {
    /// Search in names, numbers and message text.
    pub q: Option<String>,
    /// Activity window in days (default `chat.window_days`, 30).
    pub days: Option<u32>,
    /// Most chats to return (default 200, at most 500).
    pub limit: Option<i64>,
}

/// Which page of messages: the query of a message page, and arguments of `read_messages`.
#[derive(Debug, Default, Deserialize, IntoParams, schemars::JsonSchema)]
pub struct MessageQuery {
    /// Cursor from the previous page's `next_before`; absent for the newest page.
    pub before: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<MessageView>,
    /// Cursor for the next (older) page; absent at the beginning of the chat.
    pub next_before: Option<String>,
}

/// Answer of a send.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    /// WhatsApp message id.
    pub id: String,
    /// Recipient JID.
    pub to: String,
    /// `sent`.
    pub status: &'static str,
}

/// What a send carries, however it arrived (JSON, a multipart form, a tool call).
pub struct Outgoing {
    /// Recipient: a phone number in international form or a JID.
    pub to: String,
    /// The text, or the caption of a picture, video or document.
    pub text: Option<String>,
    /// A place to share (checked by the face that read it).
    pub place: Option<Location>,
    /// The file, if any: its kind, bytes and file name.
    pub file: Option<(MessageKind, Vec<u8>, Option<String>)>,
}

/// The tenant's time zone.
pub async fn zone_of(state: &AppState, caller: &Caller) -> Result<Tz, ApiError> {
    let tenant = accounts::get_tenant(&state.db, caller.tenant_id).await?;
    Ok(tenant.time_zone.parse().unwrap_or(Tz::UTC))
}

/// Encodes a message position as an opaque cursor.
fn cursor(sent_at: DateTime<Utc>, id: i64) -> String {
    format!("{}.{id}", sent_at.timestamp_micros())
}

/// Decodes a cursor, or 400 `invalid_cursor`.
fn parse_cursor(raw: &str) -> Result<(chrono::NaiveDateTime, i64), ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "use next_before from the previous page",
        )
    };
    let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let id: i64 = id.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((at.naive_utc(), id))
}

/// A recipient as a JID: digits become `<digits>@s.whatsapp.net`.
fn recipient_jid(to: &str) -> Result<String, ApiError> {
    let to = to.trim();
    if to.contains('@') {
        return Ok(to.to_string());
    }
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    if (8..=15).contains(&digits.len()) {
        Ok(crate::phone::jid_of(&digits))
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidRecipient,
            "to must be a phone number in international form (8–15 digits) or a JID",
        ))
    }
}

/// The kind of file a name stands for (`image`, `document`, `voice`, `audio`, `video`,
/// `sticker`): a multipart field's name, or a tool's `kind` argument.
pub fn file_kind(name: &str) -> Option<MessageKind> {
    match name {
        "image" => Some(MessageKind::Image),
        "document" => Some(MessageKind::Document),
        "voice" => Some(MessageKind::Voice),
        "audio" => Some(MessageKind::Audio),
        "video" => Some(MessageKind::Video),
        "sticker" => Some(MessageKind::Sticker),
        _ => None,
    }
}

/// The largest file of `kind` a send accepts: a picture up to 32 MiB (it is re-encoded before
/// sending), any other file up to 16 MiB.
pub fn max_file_bytes(kind: MessageKind) -> usize {
    match kind {
        MessageKind::Image => media::MAX_UPLOAD_BYTES,
        _ => files::MAX_FILE_BYTES,
    }
}

/// Chats of a device active in the window, most recent first, with previews and unread counts.
pub async fn list(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    device_id: i64,
    query: &ChatQuery,
) -> Result<Vec<ChatView>, ApiError> {
    let device = visible_device(state, caller, device_id).await?;
    let days = query
        .days
        .unwrap_or(state.settings.chat.window_days)
        .min(3650);
    let since = (Utc::now() - ChronoDuration::days(i64::from(days))).naive_utc();
    let limit = query.limit.unwrap_or(200).clamp(1, MAX_CHATS);
    let chats = store::list_chats(
        &state.db,
        caller.tenant_id,
        device.id,
        since,
        query.q.as_deref(),
        limit,
    )
    .await?;
    let zone = zone_of(state, caller).await?;
    let now = Utc::now();
    Ok(chats.iter().map(|c| chat_view(c, now, zone)).collect())
}

/// A page of a chat's messages (all, or those with a file), newest first, with their reactions.
pub async fn messages(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    (device_id, jid): (i64, &str),
    query: &MessageQuery,
    only: Only,
) -> Result<MessagePage, ApiError> {
    let device = visible_device(state, caller, device_id).await?;
    let chat = store::get_chat(&state.db, caller.tenant_id, device.id, jid).await?;
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let rows = store::list_messages(&state.db, chat.id, only, before, limit).await?;
    let ids = rows.iter().map(|m| m.wa_id.clone()).collect();
    let reactions = changes::reactions_of(&state.db, device.id, ids).await?;
    let zone = zone_of(state, caller).await?;
    let now = Utc::now();
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|m| cursor(m.sent_at.and_utc(), m.id)))
        .flatten();
    Ok(MessagePage {
        items: rows
            .iter()
            .map(|m| {
                let reactions = reactions.get(&m.wa_id).map_or(&[][..], Vec::as_slice);
                message_view(m, &chat.jid, reactions, now, zone)
            })
            .collect(),
        next_before,
    })
}

/// A device the caller may send from.
pub struct Sender {
    device: Device,
}

impl Sender {
    /// The device `device_id` to send from, if the caller (a member or up, with the `write`
    /// scope) may see it; 404 otherwise.
    pub async fn for_device(
        state: &AppState,
        caller: &Auth<require::Member>,
        device_id: i64,
    ) -> Result<Self, ApiError> {
        Ok(Sender {
            device: visible_device(state, caller, device_id).await?,
        })
    }

    /// Sends a text, a place or a file from the device. Pictures are checked by content and
    /// re-encoded to a JPEG of at most 350 KB; other files are checked by their bytes (see
    /// `chat::media::files`). The message appears in the chat (and as `NEW_MESSAGE`) once
    /// stored; its ticks follow as `MESSAGE_ACK`.
    pub async fn send(self, state: &AppState, outgoing: Outgoing) -> Result<SentMessage, ApiError> {
        let to = recipient_jid(&outgoing.to)?;
        let text = outgoing
            .text
            .as_deref()
            .map(str::trim_end)
            .filter(|t| !t.trim().is_empty());
        let place = outgoing.place;
        check_message_text(text, outgoing.file.is_none() && place.is_none())?;
        if let Some((kind, bytes, _)) = &outgoing.file {
            if bytes.len() > max_file_bytes(*kind) {
                return Err(ApiError::new(
                    ErrorCode::TooLarge,
                    format!("the {} is too large", kind.as_str()),
                ));
            }
        }
        let addr = state
            .fleet
            .actor(self.device.id)
            .await
            .ok_or(DeviceError::NotConnected)?;
        let message_id = format!("3EB0{}", secret::random_hex(8).to_uppercase());
        let file = match outgoing.file {
            Some((MessageKind::Image, bytes, _)) => {
                let prepared = media::prepare_image_bounded(bytes).await?;
                let image = Media::bytes("image/jpeg", prepared.data);
                Some(OutgoingMedia::image(image, text.map(str::to_string)))
            }
            Some(file) => Some(checked_file(file, text)?),
            None => None,
        };
        let sent = match (file, place) {
            (_, Some(place)) => {
                addr.send(SendLocation {
                    to: to.clone(),
                    message_id: message_id.clone(),
                    place,
                })
                .await
            }
            (Some(file), None) => {
                addr.send(SendMedia {
                    to: to.clone(),
                    message_id: message_id.clone(),
                    file,
                })
                .await
            }
            (None, None) => {
                addr.send(SendText {
                    to: to.clone(),
                    message_id: message_id.clone(),
                    text: text.unwrap_or_default().to_string(),
                })
                .await
            }
        };
        sent.map_err(|_| DeviceError::Gone)??;
        Ok(SentMessage {
            id: message_id,
            to,
            status: "sent",
        })
    }
}

/// A file checked by its bytes, ready to send (a document keeps its cleaned name).
fn checked_file(
    (kind, bytes, name): (MessageKind, Vec<u8>, Option<String>),
    caption: Option<&str>,
) -> Result<OutgoingMedia, ApiError> {
    let file_name = name.as_deref().and_then(files::clean_name);
    let mime = files::check(kind, &bytes, file_name.as_deref())?;
    let captioned = matches!(kind, MessageKind::Document | MessageKind::Video);
    Ok(OutgoingMedia {
        kind,
        media: Media::bytes(mime, bytes),
        caption: caption.filter(|_| captioned).map(str::to_string),
        file_name: file_name.filter(|_| kind == MessageKind::Document),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_recipients_normalise() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let parsed = parse_cursor(&cursor(at, 42)).unwrap();
        assert_eq!(parsed, (at.naive_utc(), 42));
        assert!(parse_cursor("garbage").is_err());
        assert_eq!(
            recipient_jid("+60 12-345 6789").unwrap(),
            "60123456789@s.whatsapp.net"
        );
        assert_eq!(recipient_jid("60123@g.us").unwrap(), "60123@g.us");
        assert!(recipient_jid("123").is_err());
    }
}
