//! Pure helpers of one chat mirror batch: what its listeners hear after the commit, storing its
//! media, and its outcome when storage is off. No actix here; `ChatSync` drives them.

use std::collections::{HashMap, HashSet};

use chrono::Utc;

use super::acks::acks_by_status;
use super::identity::LidPhone;
use super::media::MediaStore;
use super::messages::CommittedReceipt;
use super::model::{Chat, StoredMessage};
use super::store::{BatchOutcome, ChatWrite};
use crate::whatsapp::{Change, MessageChange, WaMessage};

/// What of a batch its listeners hear about after the commit: the live inbound messages (by
/// device and id; a live inbound message is the one that counts as unread) and its receipts,
/// merged per device and status (see [`acks_by_status`]).
pub fn committable(batch: &[(i64, ChatWrite)]) -> (HashSet<(i64, String)>, Vec<CommittedReceipt>) {
    let mut live = HashSet::new();
    let mut tenants = HashMap::new();
    for (tenant_id, write) in batch {
        match write {
            ChatWrite::Message {
                unread: true, row, ..
            } => {
                live.insert((row.device_id, row.wa_id.clone()));
            }
            ChatWrite::Ack { device_id, .. } => {
                tenants.insert(*device_id, *tenant_id);
            }
            ChatWrite::Message { .. } | ChatWrite::Change { .. } => {}
        }
    }
    let receipts = acks_by_status(batch.iter().map(|(_, write)| write))
        .into_iter()
        .filter_map(|(device_id, status, message_ids)| {
            Some(CommittedReceipt {
                tenant_id: *tenants.get(&device_id)?,
                device_id,
                message_ids,
                status,
            })
        })
        .collect();
    (live, receipts)
}

/// A message as the database can take it: NUL characters, which PostgreSQL refuses in text
/// and which anyone can put in a WhatsApp message, are dropped from every text it carries, so
/// one such message can never block the mirror's queue.
pub fn storable(mut message: WaMessage) -> WaMessage {
    let WaMessage {
        id,
        chat,
        sender,
        sender_alt,
        chat_alt,
        push_name,
        text,
        media,
        file_name,
        location,
        contact,
        quoted,
        group_name,
        ..
    } = &mut message;
    for field in [id, chat, sender] {
        clean(field);
    }
    for field in [sender_alt, chat_alt, push_name, text, file_name, group_name]
        .into_iter()
        .flatten()
    {
        clean(field);
    }
    if let Some(quote) = quoted {
        clean(&mut quote.id);
        for field in [&mut quote.sender, &mut quote.text].into_iter().flatten() {
            clean(field);
        }
    }
    if let Some(media) = media {
        clean(&mut media.mime);
        if let Some(reference) = &mut media.reference {
            clean(reference);
        }
    }
    if let Some(name) = location.as_mut().and_then(|l| l.name.as_mut()) {
        clean(name);
    }
    if let Some(card) = contact {
        clean(&mut card.display_name);
        clean(&mut card.vcard);
    }
    message
}

/// A change as the database can take it (see [`storable`]).
pub fn storable_change(mut change: MessageChange) -> MessageChange {
    let MessageChange {
        id,
        chat,
        chat_alt,
        sender,
        sender_alt,
        target,
        change: what,
        ..
    } = &mut change;
    for field in [id, chat, sender, target] {
        clean(field);
    }
    for field in [chat_alt, sender_alt].into_iter().flatten() {
        clean(field);
    }
    match what {
        Change::Reaction { emoji } => clean(emoji),
        Change::Edit { text } => clean(text),
        Change::Revoke => {}
    }
    change
}

/// Drops NUL characters from `text`.
fn clean(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

/// Stores the media of a batch's messages (on a blocking thread) and records their hashes; a
/// file that cannot be written leaves the message without media rather than losing it.
pub async fn save_media(media: MediaStore, writes: Vec<ChatWrite>) -> Vec<ChatWrite> {
    let saved = tokio::task::spawn_blocking(move || {
        writes
            .into_iter()
            .map(|mut write| {
                if let ChatWrite::Message { row, media: data, .. } = &mut write {
                    if let Some(bytes) = data.take() {
                        match media.save(&bytes) {
                            Ok(sha) => {
                                row.media_sha256 = Some(sha);
                                row.media_ref = None;
                            }
                            Err(err) => tracing::error!(error = %err, dir = %media.dir().display(), "cannot store media"),
                        }
                    }
                }
                write
            })
            .collect::<Vec<_>>()
    })
    .await;
    saved.unwrap_or_default()
}

/// With storage off, a batch is announced as is (no ids from the database, no dedup), a LID
/// chat or sender under the phone its own message named.
pub fn unstored(writes: Vec<ChatWrite>) -> BatchOutcome {
    let now = Utc::now().naive_utc();
    let mut outcome = BatchOutcome::default();
    for write in writes {
        match write {
            ChatWrite::Message {
                chat_jid,
                learned,
                chat_name,
                unread,
                row,
                ..
            } => {
                let chat = Chat {
                    id: 0,
                    tenant_id: row.tenant_id,
                    device_id: row.device_id,
                    jid: LidPhone::file_under(&chat_jid, &learned),
                    name: chat_name,
                    last_message_text: row.preview(),
                    last_message_at: Some(row.sent_at),
                    unread_count: i64::from(unread),
                    created_at: now,
                    updated_at: now,
                };
                let message = StoredMessage {
                    id: 0,
                    tenant_id: row.tenant_id,
                    device_id: row.device_id,
                    chat_id: 0,
                    wa_id: row.wa_id,
                    sender_jid: LidPhone::file_under(&row.sender_jid, &learned),
                    sender_name: row.sender_name,
                    from_me: row.from_me,
                    body: row.body,
                    media_mime: row.media_mime,
                    media_size: row.media_size,
                    media_sha256: row.media_sha256,
                    status: row.status,
                    sent_at: row.sent_at,
                    created_at: now,
                    kind: row.kind,
                    file_name: row.file_name,
                    detail: row.detail,
                    quoted_id: row.quoted_id,
                    quoted_sender: row.quoted_sender,
                    quoted_text: row.quoted_text,
                    edited_at: None,
                    revoked_at: None,
                    media_ref: row.media_ref,
                };
                outcome.stored.push((message, chat));
            }
            ChatWrite::Ack {
                device_id,
                wa_ids,
                status,
            } => outcome.acks.push((device_id, wa_ids, status)),
            // Nothing stored to change: reactions, edits and deletions need storage.
            ChatWrite::Change { .. } => {}
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::{ContactCard, Location};

    #[test]
    fn nul_characters_never_reach_the_database() {
        let message = WaMessage {
            id: "3EB0\0A".into(),
            chat: "60123456789@s.whatsapp.net".into(),
            sender: "60123456789@s.whatsapp.net".into(),
            push_name: Some("Ai\0syah".into()),
            text: Some("STOP\0".into()),
            file_name: Some("a\0.pdf".into()),
            location: Some(Location {
                latitude: 1.0,
                longitude: 2.0,
                name: Some("\0KLCC".into()),
            }),
            contact: Some(ContactCard {
                display_name: "A\0".into(),
                vcard: "BEGIN\0".into(),
            }),
            ..WaMessage::default()
        };
        let clean = storable(message);
        assert_eq!(clean.id, "3EB0A");
        assert_eq!(clean.push_name.as_deref(), Some("Aisyah"));
        assert_eq!(clean.text.as_deref(), Some("STOP"));
        assert_eq!(clean.file_name.as_deref(), Some("a.pdf"));
        assert_eq!(clean.location.unwrap().name.as_deref(), Some("KLCC"));
        let card = clean.contact.unwrap();
        assert_eq!(
            (card.display_name.as_str(), card.vcard.as_str()),
            ("A", "BEGIN")
        );
    }

    #[test]
    fn receipts_are_merged_per_device_and_status_in_the_order_a_message_moves() {
        let ack = |tenant: i64, device: i64, ids: &[&str], status: &'static str| {
            (
                tenant,
                ChatWrite::Ack {
                    device_id: device,
                    wa_ids: ids.iter().map(|id| id.to_string()).collect(),
                    status,
                },
            )
        };
        let batch = vec![
            ack(1, 7, &["a"], "read"),
            ack(1, 7, &["a", "b"], "delivered"),
            ack(2, 9, &["c"], "delivered"),
            ack(1, 7, &["b"], "delivered"),
            ack(1, 7, &["c"], "read"),
        ];
        let (live, receipts) = committable(&batch);
        assert!(live.is_empty());
        let got: Vec<_> = receipts
            .iter()
            .map(|r| (r.tenant_id, r.device_id, r.status, r.message_ids.join(",")))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 7, "delivered", "a,b".to_string()),
                (1, 7, "read", "a,c".to_string()),
                (2, 9, "delivered", "c".to_string()),
            ]
        );
    }
}
