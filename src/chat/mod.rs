//! Chats: the per-device mirror of WhatsApp conversations behind the WhatsApp-Web-like view.
//!
//! Device actors send every message and receipt to [`actor::ChatSync`], which stores them in
//! batches ([`store`]) and publishes `NEW_MESSAGE` / `CHAT_UPDATED` / `MESSAGE_ACK` on the hub
//! topic `messages/<device_id>` after commit. A contact has one chat whether WhatsApp names it by
//! phone or by LID ([`identity`]). Times are labelled in the tenant's zone by
//! [`time::time_label`].

pub mod actor;
pub mod batch;
pub mod identity;
pub mod media;
pub mod messages;
pub mod model;
pub mod queue;
pub mod store;
pub mod time;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use model::{Chat, ChatView, Detail, MediaView, MessageView, StoredMessage};

/// A chat row as the API shows it.
pub fn chat_view(chat: &Chat, now: DateTime<Utc>, zone: Tz) -> ChatView {
    ChatView {
        jid: chat.jid.clone(),
        name: chat.name.clone(),
        phone: crate::phone::phone_of_jid(&chat.jid).map(str::to_string),
        last_message: chat.last_message_text.clone(),
        last_message_at: chat.last_message_at.map(|t| t.and_utc()),
        time_label: chat
            .last_message_at
            .map(|t| time::time_label(t.and_utc(), now, zone)),
        unread_count: chat.unread_count,
    }
}

/// A message row as the API shows it.
pub fn message_view(
    message: &StoredMessage,
    chat_jid: &str,
    now: DateTime<Utc>,
    zone: Tz,
) -> MessageView {
    let detail = Detail::parse(message.detail.as_deref());
    MessageView {
        id: message.wa_id.clone(),
        chat: chat_jid.to_string(),
        sender: message.sender_jid.clone(),
        sender_name: message.sender_name.clone(),
        from_me: message.from_me,
        kind: message.kind.clone(),
        text: message.body.clone(),
        file_name: message.file_name.clone(),
        location: match &detail {
            Some(Detail::Location(place)) => Some(place.clone()),
            _ => None,
        },
        contact: match detail {
            Some(Detail::Contact(card)) => Some(card),
            _ => None,
        },
        media: message.media_mime.clone().map(|mime| MediaView {
            url: message
                .media_sha256
                .as_ref()
                .map(|sha| format!("/api/v1/media/{sha}")),
            mime,
            size: message.media_size.unwrap_or(0),
        }),
        status: message.status.clone(),
        sent_at: message.sent_at.and_utc(),
        time_label: time::time_label(message.sent_at.and_utc(), now, zone),
    }
}
