//! Changes to stored messages: reactions, edits and deletions for everyone. Applied inside the
//! chat mirror's batch transaction ([`apply`]); the page reads reactions beside a message page
//! ([`reactions_of`]).
//!
//! A change applies only to a message of the chat it came in. Only the author of a message may
//! edit it; only its author (or, in a group, an admin, which WhatsApp vouches for) may delete
//! it. A change to a message the mirror never stored (older than the device, or never sent)
//! changes nothing: there is nothing to show it on.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::{
    cut_chars, Chat, StoredMessage, StoredReaction, DELETED_PREVIEW, MAX_EMOJI_CHARS,
};
use crate::db::schema::{chats, messages, reactions};
use crate::db::{Conn, Db, DbError};
use crate::whatsapp::{Change, MessageChange};
use crate::{db_run, on_conn};

/// A message after a change, for the events published after the commit.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The message as it is now.
    pub message: StoredMessage,
    /// Its chat (its preview changed when the message was the latest).
    pub chat: Chat,
    /// The message's reactions now.
    pub reactions: Vec<StoredReaction>,
    /// The chat list's preview changed.
    pub preview_changed: bool,
    /// What changed: `reaction`, `edit` or `revoke`.
    pub change: &'static str,
}

/// Who made a change, and where: JIDs already filed under the phone when known.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    /// The sender.
    pub sender: &'a str,
    /// The chat the change came in.
    pub chat: &'a str,
}

/// Applies `change`, made `by` someone in a chat, to the device's stored message it names.
/// `None` when it changed nothing: an unknown message, one of another chat, an edit or
/// deletion by someone other than the author, or a change to a deleted message.
pub async fn apply(
    conn: Conn<'_>,
    device_id: i64,
    change: &MessageChange,
    by: By<'_>,
    now: NaiveDateTime,
) -> Result<Option<Applied>, DbError> {
    let sender = by.sender;
    let at = crate::db::to_micros(change.timestamp.naive_utc());
    on_conn!(conn, |c| {
        let Some(target) = messages::table
            .filter(messages::device_id.eq(device_id))
            .filter(messages::wa_id.eq(&change.target))
            .select(StoredMessage::as_select())
            .first(c)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        if target.revoked_at.is_some() {
            return Ok(None);
        }
        let chat: Chat = chats::table
            .find(target.chat_id)
            .select(Chat::as_select())
            .first(c)
            .await?;
        if chat.jid != by.chat {
            return Ok(None);
        }
        let author = if change.from_me {
            target.from_me
        } else {
            !target.from_me && target.sender_jid == sender
        };
        let of_target = reactions::table
            .filter(reactions::device_id.eq(device_id))
            .filter(reactions::message_wa_id.eq(&target.wa_id));
        match &change.change {
            Change::Reaction { emoji } => {
                let emoji = cut_chars(emoji.trim(), MAX_EMOJI_CHARS);
                diesel::delete(of_target.filter(reactions::sender_jid.eq(sender)))
                    .execute(c)
                    .await?;
                if !emoji.is_empty() {
                    diesel::insert_into(reactions::table)
                        .values((
                            reactions::device_id.eq(device_id),
                            reactions::message_wa_id.eq(&target.wa_id),
                            reactions::sender_jid.eq(sender),
                            reactions::emoji.eq(emoji),
                            reactions::from_me.eq(change.from_me),
                            reactions::reacted_at.eq(at),
                        ))
                        .execute(c)
                        .await?;
                }
            }
            Change::Edit { text } => {
                if !author {
                    return Ok(None);
                }
                diesel::update(messages::table.find(target.id))
                    .set((messages::body.eq(text), messages::edited_at.eq(at)))
                    .execute(c)
                    .await?;
            }
            Change::Revoke => {
                let group = chat.jid.ends_with("@g.us");
                if !author && !group {
                    return Ok(None);
                }
                diesel::update(messages::table.find(target.id))
                    .set((
                        messages::body.eq(None::<String>),
                        messages::media_mime.eq(None::<String>),
                        messages::media_size.eq(None::<i64>),
                        messages::media_sha256.eq(None::<String>),
                        messages::file_name.eq(None::<String>),
                        messages::detail.eq(None::<String>),
                        messages::quoted_id.eq(None::<String>),
                        messages::quoted_sender.eq(None::<String>),
                        messages::quoted_text.eq(None::<String>),
                        messages::media_ref.eq(None::<String>),
                        messages::revoked_at.eq(at),
                    ))
                    .execute(c)
                    .await?;
                diesel::delete(of_target).execute(c).await?;
            }
        }
        let message: StoredMessage = messages::table
            .find(target.id)
            .select(StoredMessage::as_select())
            .first(c)
            .await?;
        // The chat list shows an edit or deletion when the message is the chat's latest.
        let new_preview = match &change.change {
            Change::Reaction { .. } => None,
            Change::Edit { .. } => message.preview(),
            Change::Revoke => Some(DELETED_PREVIEW.to_string()),
        };
        let latest = chat.last_message_at == Some(target.sent_at);
        let (chat, preview_changed) = match new_preview {
            Some(text) if latest => {
                let chat = diesel::update(chats::table.find(chat.id))
                    .set((chats::last_message_text.eq(text), chats::updated_at.eq(now)))
                    .returning(Chat::as_returning())
                    .get_result(c)
                    .await?;
                (chat, true)
            }
            _ => (chat, false),
        };
        let reactions = of_target
            .order(reactions::reacted_at)
            .select(StoredReaction::as_select())
            .load(c)
            .await?;
        let change = match &change.change {
            Change::Reaction { .. } => "reaction",
            Change::Edit { .. } => "edit",
            Change::Revoke => "revoke",
        };
        Ok(Some(Applied {
            message,
            chat,
            reactions,
            preview_changed,
            change,
        }))
    })
}

/// The reactions on some of a device's messages, by message id, oldest first.
pub async fn reactions_of(
    db: &Db,
    device_id: i64,
    wa_ids: Vec<String>,
) -> Result<HashMap<String, Vec<StoredReaction>>, DbError> {
    if wa_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<StoredReaction> = db_run!(db, |conn| {
        reactions::table
            .filter(reactions::device_id.eq(device_id))
            .filter(reactions::message_wa_id.eq_any(&wa_ids))
            .order(reactions::reacted_at)
            .select(StoredReaction::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut by_message: HashMap<String, Vec<StoredReaction>> = HashMap::new();
    for row in rows {
        by_message
            .entry(row.message_wa_id.clone())
            .or_default()
            .push(row);
    }
    Ok(by_message)
}
