//! All SQL about chats and messages. Writes come in batches from `ChatSync`, one transaction per
//! batch; reads are tenant- and device-scoped.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::acks;
use super::changes;
use super::filing::{self, Filing};
use super::identity::{self, LidPhone};
use super::model::{preview, Chat, Detail, StoredMessage};
use crate::db::schema::{chats, messages, reactions};
use crate::db::sql::{like_pattern, lower};
use crate::db::{Conn, Db, DbError};
use crate::db_run;
use crate::stats;
use crate::stats::model::{Bumps, Count};
use crate::whatsapp::MessageChange;

/// A message to store.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct NewMessage {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Device.
    pub device_id: i64,
    /// Chat row (filled in by the store).
    pub chat_id: i64,
    /// WhatsApp message id.
    pub wa_id: String,
    /// Sender JID.
    pub sender_jid: String,
    /// Sender's profile name.
    pub sender_name: Option<String>,
    /// Sent by this device.
    pub from_me: bool,
    /// Text or caption.
    pub body: Option<String>,
    /// MIME type of attached media.
    pub media_mime: Option<String>,
    /// Size of attached media.
    pub media_size: Option<i64>,
    /// SHA-256 of the stored media file.
    pub media_sha256: Option<String>,
    /// Initial status (`received` or `sent`).
    pub status: String,
    /// WhatsApp timestamp.
    pub sent_at: NaiveDateTime,
    /// Storage time.
    pub created_at: NaiveDateTime,
    /// What it is ([`crate::whatsapp::MessageKind`] name).
    pub kind: String,
    /// A document's file name.
    pub file_name: Option<String>,
    /// A location's or contact card's details ([`super::model::Detail`] as JSON).
    pub detail: Option<String>,
    /// The WhatsApp id of the message this one replies to.
    pub quoted_id: Option<String>,
    /// Who wrote the quoted message.
    pub quoted_sender: Option<String>,
    /// The quoted text as the reply carried it (the store fills it from the original when the
    /// reply did not).
    pub quoted_text: Option<String>,
    /// How to download its media while the file is not stored.
    pub media_ref: Option<String>,
}

impl NewMessage {
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

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatWrite {
    /// Store a message in the chat with `chat_jid` (creating the chat); a LID chat or sender
    /// whose phone is known is filed under the phone (see [`identity`]).
    Message {
        /// The chat's JID.
        chat_jid: String,
        /// LID-to-phone mappings the message showed, learned before it is filed.
        learned: Vec<LidPhone>,
        /// Contact name for the chat, when known.
        chat_name: Option<String>,
        /// Whether it counts as unread.
        unread: bool,
        /// The row (its `chat_id` is ignored).
        row: Box<NewMessage>,
        /// Media bytes to store before the row (their hash fills `media_sha256`).
        media: Option<std::sync::Arc<Vec<u8>>>,
    },
    /// Apply a reaction, edit or deletion to a stored message (see [`changes`]).
    Change {
        /// Owning tenant.
        tenant_id: i64,
        /// Device.
        device_id: i64,
        /// LID-to-phone mappings the change showed, learned before it is applied.
        learned: Vec<LidPhone>,
        /// The change.
        change: Box<MessageChange>,
    },
    /// Move messages forward to `status` (never backwards).
    Ack {
        /// Device.
        device_id: i64,
        /// WhatsApp ids.
        wa_ids: Vec<String>,
        /// `delivered` or `read`.
        status: &'static str,
    },
}

/// What a committed batch changed, for the events published after it.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Newly stored messages (duplicates are left out) with their chat after the write.
    pub stored: Vec<(StoredMessage, Chat)>,
    /// Receipts that moved messages, one per device and status: (device, the ids that moved,
    /// status).
    pub acks: Vec<(i64, Vec<String>, &'static str)>,
    /// Chats merged into another once a LID's phone was learned: (tenant, device, the merged
    /// chat's JID, the JID it now lives under).
    pub merged: Vec<(i64, i64, String, String)>,
    /// Messages a reaction, edit or deletion changed.
    pub changed: Vec<changes::Applied>,
}

/// Writes a batch in one transaction; replays of known message ids change nothing. Each
/// message first teaches its LID mappings, then is filed under its contact's phone when known.
pub async fn write_batch(db: &Db, writes: Vec<ChatWrite>) -> Result<BatchOutcome, DbError> {
    let now = Utc::now().naive_utc();
    // Messages are filed set-wise, a run at a time: three statements however many (see
    // `filing`); a LID or a quote adds lookups and ends a run. On SQLite the batch runs on one
    // blocking thread.
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let mut batch = Progress::default();
            for write in &writes {
                match write {
                    ChatWrite::Message {
                        chat_jid,
                        learned,
                        chat_name,
                        unread,
                        row,
                        ..
                    } => {
                        let device_id = row.device_id;
                        if !learned.is_empty() || row.quoted_id.is_some() {
                            // What this message learns or quotes may be in the run: write it.
                            batch.file_run(Conn::from(&mut *conn), now).await?;
                        }
                        let merged =
                            identity::learn(Conn::from(&mut *conn), device_id, learned, now)
                                .await?;
                        batch.outcome.merged.extend(
                            merged
                                .into_iter()
                                .map(|(from, into)| (row.tenant_id, device_id, from, into)),
                        );
                        let filed_chat =
                            identity::resolve(Conn::from(&mut *conn), device_id, chat_jid).await?;
                        let mut new_row = (**row).clone();
                        // A contact writing in their own chat: the same JID, one lookup.
                        new_row.sender_jid = if row.sender_jid == *chat_jid {
                            filed_chat.clone()
                        } else {
                            identity::resolve(Conn::from(&mut *conn), device_id, &row.sender_jid)
                                .await?
                        };
                        if let Some(quoted) = &new_row.quoted_id {
                            if new_row.quoted_text.is_none() {
                                new_row.quoted_text =
                                    quoted_preview(Conn::from(&mut *conn), device_id, quoted)
                                        .await?;
                            }
                            if let Some(author) = &new_row.quoted_sender {
                                new_row.quoted_sender = Some(
                                    identity::resolve(Conn::from(&mut *conn), device_id, author)
                                        .await?,
                                );
                            }
                        }
                        // Microseconds, as PostgreSQL keeps them and as page cursors carry them:
                        // SQLite would keep nanoseconds, and a cursor cut to microseconds would
                        // then skip a message stored a few hundred nanoseconds after it.
                        new_row.sent_at = crate::db::to_micros(new_row.sent_at);
                        batch.run.push(Filing {
                            chat_jid: filed_chat,
                            chat_name: chat_name.clone(),
                            unread: *unread,
                            row: new_row,
                        });
                    }
                    ChatWrite::Change {
                        tenant_id,
                        device_id,
                        learned,
                        change,
                    } => {
                        // The change may concern a message of the run: write it first.
                        batch.file_run(Conn::from(&mut *conn), now).await?;
                        let merged =
                            identity::learn(Conn::from(&mut *conn), *device_id, learned, now)
                                .await?;
                        let sender =
                            identity::resolve(Conn::from(&mut *conn), *device_id, &change.sender)
                                .await?;
                        let chat =
                            identity::resolve(Conn::from(&mut *conn), *device_id, &change.chat)
                                .await?;
                        let by = changes::By {
                            sender: &sender,
                            chat: &chat,
                        };
                        let applied =
                            changes::apply(Conn::from(&mut *conn), *device_id, change, by, now)
                                .await?;
                        batch.outcome.merged.extend(
                            merged
                                .into_iter()
                                .map(|(from, into)| (*tenant_id, *device_id, from, into)),
                        );
                        batch.outcome.changed.extend(applied);
                    }
                    // Receipts go last, merged (below).
                    ChatWrite::Ack { .. } => {}
                }
            }
            batch.file_run(Conn::from(&mut *conn), now).await?;
            // After the batch's messages, so a receipt that overtook its message's record
            // still finds it.
            batch.outcome.acks =
                acks::apply(Conn::from(&mut *conn), &writes, &mut batch.counts).await?;
            stats::store::apply(Conn::from(&mut *conn), &batch.counts).await?;
            Ok(batch.outcome)
        })
        .await
    })
}

/// A batch under way: the run of messages waiting to be filed together (see `filing`), what
/// the batch changed so far and what it counts.
#[derive(Default)]
struct Progress {
    run: Vec<Filing>,
    outcome: BatchOutcome,
    counts: Bumps,
}

impl Progress {
    /// Files the run (emptying it) and counts the messages newly stored.
    async fn file_run(&mut self, conn: Conn<'_>, now: NaiveDateTime) -> Result<(), DbError> {
        if self.run.is_empty() {
            return Ok(());
        }
        for (stored, chat) in filing::file(conn, std::mem::take(&mut self.run), now).await? {
            let (tenant_id, device_id, sent_at) =
                (stored.tenant_id, stored.device_id, stored.sent_at);
            if stored.from_me {
                self.counts.add(tenant_id, device_id, sent_at, Count::Sent);
                self.counts
                    .stored_status(tenant_id, device_id, sent_at, &stored.status);
            } else if !chat.jid.ends_with("@g.us") {
                self.counts.add(tenant_id, device_id, sent_at, Count::Reply);
            }
            self.outcome.stored.push((stored, chat));
        }
        Ok(())
    }
}

/// The preview of a device's stored message, for a reply that quoted it without its text.
async fn quoted_preview(
    conn: Conn<'_>,
    device_id: i64,
    wa_id: &str,
) -> Result<Option<String>, DbError> {
    crate::on_conn!(conn, |c| {
        let quoted: Option<StoredMessage> = messages::table
            .filter(messages::device_id.eq(device_id))
            .filter(messages::wa_id.eq(wa_id))
            .select(StoredMessage::as_select())
            .first(c)
            .await
            .optional()?;
        Ok(quoted.and_then(|m| m.preview()))
    })
}

/// Chats of a device active since `since`, most recent first, optionally matching `search` in
/// the name, number or any message text.
pub async fn list_chats(
    db: &Db,
    tenant_id: i64,
    device_id: i64,
    since: NaiveDateTime,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<Chat>, DbError> {
    let pattern = search
        .filter(|s| !s.trim().is_empty())
        .map(|s| like_pattern(&s.trim().to_lowercase()));
    db_run!(db, |conn| {
        let mut query = chats::table
            .filter(chats::tenant_id.eq(tenant_id))
            .filter(chats::device_id.eq(device_id))
            .filter(chats::last_message_at.ge(since))
            .into_boxed();
        if let Some(pattern) = pattern {
            let in_messages = messages::table
                .filter(messages::device_id.eq(device_id))
                .filter(
                    lower(messages::body.assume_not_null())
                        .like(pattern.clone())
                        .escape('\\'),
                )
                .select(messages::chat_id);
            query = query.filter(
                lower(chats::name.assume_not_null())
                    .like(pattern.clone())
                    .escape('\\')
                    .or(chats::jid.like(pattern).escape('\\'))
                    .or(chats::id.eq_any(in_messages)),
            );
        }
        query
            .order((chats::last_message_at.desc(), chats::id.desc()))
            .limit(limit)
            .select(Chat::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One chat of a device by JID.
pub async fn get_chat(db: &Db, tenant_id: i64, device_id: i64, jid: &str) -> Result<Chat, DbError> {
    db_run!(db, |conn| {
        chats::table
            .filter(chats::tenant_id.eq(tenant_id))
            .filter(chats::device_id.eq(device_id))
            .filter(chats::jid.eq(jid))
            .select(Chat::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Which of a chat's messages a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// Every message.
    All,
    /// Messages with a file (the chat's media gallery), deleted ones left out.
    Media,
}

/// A page of a chat's messages, newest first, strictly older than `before` (sent_at, id).
pub async fn list_messages(
    db: &Db,
    chat_id: i64,
    only: Only,
    before: Option<(NaiveDateTime, i64)>,
    limit: i64,
) -> Result<Vec<StoredMessage>, DbError> {
    db_run!(db, |conn| {
        let mut query = messages::table
            .filter(messages::chat_id.eq(chat_id))
            .into_boxed();
        if only == Only::Media {
            query = query.filter(messages::media_mime.is_not_null());
        }
        if let Some((at, id)) = before {
            query = query.filter(
                messages::sent_at
                    .lt(at)
                    .or(messages::sent_at.eq(at).and(messages::id.lt(id))),
            );
        }
        query
            .order((messages::sent_at.desc(), messages::id.desc()))
            .limit(limit)
            .select(StoredMessage::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A chat's message by WhatsApp id.
pub async fn get_message(db: &Db, chat_id: i64, wa_id: &str) -> Result<StoredMessage, DbError> {
    db_run!(db, |conn| {
        messages::table
            .filter(messages::chat_id.eq(chat_id))
            .filter(messages::wa_id.eq(wa_id))
            .select(StoredMessage::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Records that a message's media, downloaded later, is stored as `sha` (`size` bytes).
pub async fn media_fetched(db: &Db, message_id: i64, sha: &str, size: i64) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(messages::table.find(message_id))
            .set((
                messages::media_sha256.eq(sha),
                messages::media_size.eq(size),
                messages::media_ref.eq(None::<String>),
            ))
            .execute(conn)
            .await
            .map(drop)
            .map_err(DbError::from)
    })
}

/// Clears a chat's unread count and returns it.
pub async fn mark_read(db: &Db, chat_id: i64) -> Result<Chat, DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(chats::table.find(chat_id))
            .set((chats::unread_count.eq(0i64), chats::updated_at.eq(now)))
            .returning(Chat::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// WhatsApp ids of a chat's latest inbound messages (to send read receipts for).
pub async fn latest_inbound_ids(db: &Db, chat_id: i64, limit: i64) -> Result<Vec<String>, DbError> {
    db_run!(db, |conn| {
        messages::table
            .filter(messages::chat_id.eq(chat_id))
            .filter(messages::from_me.eq(false))
            .order(messages::id.desc())
            .limit(limit)
            .select(messages::wa_id)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A device of a tenant holding a media file, with the MIME type and file name its message
/// gave the file.
pub type MediaOwner = (i64, Option<String>, Option<String>);

/// The devices of a tenant holding a media file, with its MIME type and file name (for the
/// download check and its headers).
pub async fn media_owners(db: &Db, tenant_id: i64, sha: &str) -> Result<Vec<MediaOwner>, DbError> {
    db_run!(db, |conn| {
        messages::table
            .filter(messages::tenant_id.eq(tenant_id))
            .filter(messages::media_sha256.eq(sha))
            .select((
                messages::device_id,
                messages::media_mime,
                messages::file_name,
            ))
            .distinct()
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Deletes up to `limit` messages sent before `cutoff`, oldest first, with their reactions, in
/// one transaction (retention). Answers (messages, reactions) deleted. Media files stay: they
/// are content-addressed and may serve other messages and campaigns.
pub async fn delete_messages_before(
    db: &Db,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<(usize, usize), DbError> {
    let found: Vec<(i64, i64, String)> = db_run!(db, |conn| {
        messages::table
            .filter(messages::sent_at.lt(cutoff))
            .order(messages::sent_at)
            .select((messages::id, messages::device_id, messages::wa_id))
            .limit(limit)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    if found.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<i64> = found.iter().map(|(id, _, _)| *id).collect();
    let mut by_device: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (_, device_id, wa_id) in found {
        by_device.entry(device_id).or_default().push(wa_id);
    }
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            // The delete first: SQLite takes its write lock at once.
            let messages_gone = diesel::delete(messages::table.filter(messages::id.eq_any(&ids)))
                .execute(conn)
                .await?;
            let mut reactions_gone = 0;
            for (device_id, wa_ids) in &by_device {
                // (device, message id) is unique: these reacted to the messages just deleted.
                reactions_gone += diesel::delete(
                    reactions::table
                        .filter(reactions::device_id.eq(device_id))
                        .filter(reactions::message_wa_id.eq_any(wa_ids)),
                )
                .execute(conn)
                .await?;
            }
            Ok((messages_gone, reactions_gone))
        })
        .await
    })
}

/// Clears the preview text of up to `limit` chats whose last message is older than `cutoff`
/// (retention deletes that message); the chat stays. Answers how many chats changed.
pub async fn clear_previews_before(
    db: &Db,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let ids: Vec<i64> = db_run!(db, |conn| {
        chats::table
            .filter(chats::last_message_at.lt(cutoff))
            .filter(chats::last_message_text.is_not_null())
            .select(chats::id)
            .limit(limit)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    if ids.is_empty() {
        return Ok(0);
    }
    db_run!(db, |conn| {
        diesel::update(
            chats::table
                .filter(chats::id.eq_any(&ids))
                .filter(chats::last_message_at.lt(cutoff)),
        )
        .set(chats::last_message_text.eq(None::<String>))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}
