//! Filing messages into their chats set-wise, inside the chat mirror's batch transaction: a run
//! of messages costs three statements however long it is (the chats created when missing, the
//! messages inserted, the chats moved forward), where it cost three per message. A campaign's
//! batch of 200 sends is three round trips to PostgreSQL instead of 600.
//!
//! The caller resolves each message's chat and sender first and ends a run wherever a message
//! depends on what the run has not written yet (a LID mapping to learn, a quote to look up).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::model::{Chat, StoredMessage};
use super::store::NewMessage;
use crate::db::schema::{chats, messages};
use crate::db::{Conn, DbError};
use crate::multi_row;

/// Messages per statement: 200 messages of 22 columns stay far below either backend's limit
/// of bound parameters.
const CHUNK: usize = 200;

/// A message ready to file: its chat and sender resolved, its quote filled in.
#[derive(Debug, Clone)]
pub struct Filing {
    /// The JID of the chat it is filed under.
    pub chat_jid: String,
    /// Contact name for the chat, when known.
    pub chat_name: Option<String>,
    /// Whether it counts as unread.
    pub unread: bool,
    /// The row (its `chat_id` is filled in here).
    pub row: NewMessage,
}

/// Files `run` in order; replays of known message ids change nothing. Answers the newly
/// stored messages, in run order, each with its chat as the run left it.
pub async fn file(
    mut conn: Conn<'_>,
    run: Vec<Filing>,
    now: NaiveDateTime,
) -> Result<Vec<(StoredMessage, Chat)>, DbError> {
    let mut stored = Vec::with_capacity(run.len());
    let mut latest: HashMap<i64, Chat> = HashMap::new();
    let mut run = run.into_iter().peekable();
    while run.peek().is_some() {
        let chunk: Vec<Filing> = run.by_ref().take(CHUNK).collect();
        for (message, chat) in file_chunk(conn.reborrow(), chunk, now).await? {
            latest.insert(chat.id, chat);
            stored.push(message);
        }
    }
    stored
        .into_iter()
        .map(|message| {
            let chat = latest
                .get(&message.chat_id)
                .cloned()
                .ok_or(DbError::NotFound)?;
            Ok((message, chat))
        })
        .collect()
}

/// A chat's key: device and JID.
type ChatKey = (i64, String);

/// [`file`] for at most [`CHUNK`] messages: three statements.
async fn file_chunk(
    mut conn: Conn<'_>,
    chunk: Vec<Filing>,
    now: NaiveDateTime,
) -> Result<Vec<(StoredMessage, Chat)>, DbError> {
    // 1. The chats, created when missing, each once; the conflict's no-op update makes
    //    RETURNING give the existing rows too, and locks them until the batch commits.
    let mut keys: HashSet<ChatKey> = HashSet::new();
    let mut new_chats = Vec::new();
    for filing in &chunk {
        if keys.insert((filing.row.device_id, filing.chat_jid.clone())) {
            new_chats.push((
                chats::tenant_id.eq(filing.row.tenant_id),
                chats::device_id.eq(filing.row.device_id),
                chats::jid.eq(filing.chat_jid.clone()),
                chats::name.eq(filing.chat_name.clone()),
                chats::unread_count.eq(0i64),
                chats::created_at.eq(now),
                chats::updated_at.eq(now),
            ));
        }
    }
    let found: Vec<Chat> = multi_row!(conn.reborrow(), new_chats, get_results, |rows| {
        diesel::insert_into(chats::table)
            .values(rows)
            .on_conflict((chats::device_id, chats::jid))
            .do_update()
            .set(chats::jid.eq(excluded(chats::jid)))
            .returning(Chat::as_returning())
    });
    let chat_of: HashMap<ChatKey, Chat> = found
        .into_iter()
        .map(|chat| ((chat.device_id, chat.jid.clone()), chat))
        .collect();

    // 2. The messages; a replay of a known id (or a second copy in the chunk) inserts nothing.
    let mut rows = Vec::with_capacity(chunk.len());
    for filing in &chunk {
        let key = (filing.row.device_id, filing.chat_jid.clone());
        let chat = chat_of.get(&key).ok_or(DbError::NotFound)?;
        let mut row = filing.row.clone();
        row.chat_id = chat.id;
        rows.push(row);
    }
    let inserted: Vec<StoredMessage> = multi_row!(conn.reborrow(), rows, get_results, |rows| {
        diesel::insert_into(messages::table)
            .values(rows)
            .on_conflict((messages::device_id, messages::wa_id))
            .do_nothing()
            .returning(StoredMessage::as_returning())
    });
    // RETURNING's order is not promised: back to run order by (device, id), first copy first.
    let mut by_id: HashMap<(i64, String), StoredMessage> = inserted
        .into_iter()
        .map(|message| ((message.device_id, message.wa_id.clone()), message))
        .collect();
    let mut filed: Vec<(StoredMessage, &Filing)> = Vec::with_capacity(by_id.len());
    for filing in &chunk {
        if let Some(message) = by_id.remove(&(filing.row.device_id, filing.row.wa_id.clone())) {
            filed.push((message, filing));
        }
    }
    if filed.is_empty() {
        return Ok(Vec::new());
    }

    // 3. Each chat a stored message went to, moved forward once: unread counts added, the
    //    latest name kept, the preview of its newest message (ties: the later one).
    // Per chat: its row as the run leaves it, and the unread messages the run adds.
    let mut moved: HashMap<i64, (Chat, i64)> = HashMap::new();
    for (message, filing) in &filed {
        let key = (filing.row.device_id, filing.chat_jid.clone());
        let (chat, added) = moved
            .entry(message.chat_id)
            .or_insert_with(|| (chat_of[&key].clone(), 0));
        *added += i64::from(filing.unread);
        if filing.chat_name.is_some() {
            chat.name.clone_from(&filing.chat_name);
        }
        if chat.last_message_at.is_none_or(|t| t <= message.sent_at) {
            chat.last_message_at = Some(message.sent_at);
            chat.last_message_text = filing.row.preview();
        }
    }
    let changed: Vec<_> = moved
        .values()
        .map(|(chat, added)| {
            (
                chats::tenant_id.eq(chat.tenant_id),
                chats::device_id.eq(chat.device_id),
                chats::jid.eq(chat.jid.clone()),
                chats::name.eq(chat.name.clone()),
                chats::unread_count.eq(*added),
                chats::last_message_text.eq(chat.last_message_text.clone()),
                chats::last_message_at.eq(chat.last_message_at),
                chats::created_at.eq(now),
                chats::updated_at.eq(now),
            )
        })
        .collect();
    // An upsert of rows that exist: the UPDATE of many rows in one statement, on both
    // backends. Unread counts are added to what the row holds.
    let updated: Vec<Chat> = multi_row!(conn, changed, get_results, |rows| {
        diesel::insert_into(chats::table)
            .values(rows)
            .on_conflict((chats::device_id, chats::jid))
            .do_update()
            .set((
                chats::unread_count.eq(chats::unread_count + excluded(chats::unread_count)),
                chats::name.eq(excluded(chats::name)),
                chats::last_message_text.eq(excluded(chats::last_message_text)),
                chats::last_message_at.eq(excluded(chats::last_message_at)),
                chats::updated_at.eq(excluded(chats::updated_at)),
            ))
            .returning(Chat::as_returning())
    });
    let after: HashMap<i64, Chat> = updated.into_iter().map(|chat| (chat.id, chat)).collect();
    filed
        .into_iter()
        .map(|(message, _)| {
            // The batch holds the rows locked: each comes back.
            let chat = after
                .get(&message.chat_id)
                .cloned()
                .ok_or(DbError::NotFound)?;
            Ok((message, chat))
        })
        .collect()
}
