//! Chats: the per-device mirror of WhatsApp conversations behind the WhatsApp-Web-like view.
//!
//! Device actors send every message and receipt to [`actor::ChatSync`], which stores them in
//! batches ([`store`]) and publishes `NEW_MESSAGE` / `CHAT_UPDATED` / `MESSAGE_ACK` on the hub
//! topic `messages/<device_id>` after commit; reactions, edits and deletions for everyone
//! ([`changes`]) update the stored message and publish `MESSAGE_UPDATED`. A contact has one chat whether WhatsApp names it by
//! phone or by LID ([`identity`]). Times are labelled in the tenant's zone by
//! [`time::time_label`].

pub mod acks;
pub mod actor;
pub mod batch;
pub mod changes;
pub mod filing;
pub mod identity;
pub mod media;
pub mod messages;
pub mod model;
pub mod queue;
pub mod store;
pub mod time;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use model::{
    Chat, ChatView, Detail, MediaView, MessageView, ReactionView, StoredMessage, StoredReaction,
};

use crate::whatsapp::Quote;

/// A chat row as the API shows it.
pub fn chat_view(chat: &Chat, now: DateTime<Utc>, zone: Tz) -> ChatView {
    ChatView {
        jid: chat.jid.clone(),
        name: chat.name.clone(),
        phone: crate::phone::phone_of_jid(&chat.jid).map(str::to_string),
        group: chat.jid.ends_with("@g.us"),
        last_message: chat.last_message_text.clone(),
        last_message_at: chat.last_message_at.map(|t| t.and_utc()),
        time_label: chat
            .last_message_at
            .map(|t| time::time_label(t.and_utc(), now, zone)),
        unread_count: chat.unread_count,
    }
}

/// A message row, with its reactions, as the API shows it.
pub fn message_view(
    message: &StoredMessage,
    chat_jid: &str,
    reactions: &[StoredReaction],
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
        media: message.media_mime.clone().map(|mime| {
            let (state, url) = match (&message.media_sha256, &message.media_ref) {
                (Some(sha), _) => ("stored", Some(format!("/api/v1/media/{sha}"))),
                (None, Some(_)) => (
                    "remote",
                    Some(format!(
                        "/api/v1/devices/{}/chats/{}/messages/{}/media",
                        message.device_id,
                        path_segment(chat_jid),
                        path_segment(&message.wa_id)
                    )),
                ),
                (None, None) => ("missing", None),
            };
            MediaView {
                state,
                url,
                mime,
                size: message.media_size.unwrap_or(0),
            }
        }),
        quoted: message.quoted_id.clone().map(|id| Quote {
            id,
            sender: message.quoted_sender.clone(),
            text: message.quoted_text.clone(),
        }),
        reactions: reactions
            .iter()
            .map(|r| ReactionView {
                emoji: r.emoji.clone(),
                sender: r.sender_jid.clone(),
                from_me: r.from_me,
            })
            .collect(),
        edited: message.edited_at.is_some(),
        deleted: message.revoked_at.is_some(),
        status: message.status.clone(),
        sent_at: message.sent_at.and_utc(),
        time_label: time::time_label(message.sent_at.and_utc(), now, zone),
    }
}

/// `text` as one URL path segment: bytes other than letters, digits and `@._-` percent-encoded
/// (message ids are chosen by senders).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"@._-".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_leave_their_segment() {
        assert_eq!(path_segment("6012@s.whatsapp.net"), "6012@s.whatsapp.net");
        assert_eq!(path_segment("../a/b?c#d"), "..%2Fa%2Fb%3Fc%23d");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
