//! One person, one chat: WhatsApp addresses more and more contacts by LID (`…@lid`, an
//! anonymous id) and names their phone only now and then (a message's alternate sender, a
//! history sync's table). What a device learns is kept per device in `lid_phones`; every chat
//! and sender is filed under the phone's JID once the phone is known, and a chat filed under a
//! LID before that is merged into the phone's chat (messages, unread count and preview kept) the
//! moment the mapping is learned. A LID nobody named a phone for stays a LID: it has no phone,
//! so it is never matched to a lead, an opt-out or an enrolment by accident.
//!
//! Runs inside the chat mirror's batch transaction ([`learn`], [`resolve`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::chat::model::StoredReaction;
use crate::db::schema::{chats, lid_phones, messages, reactions};
use crate::db::{Conn, DbError};
use crate::on_conn;
use crate::phone::{jid_of, lid_jid, lid_of_jid, phone_of_jid};
use crate::whatsapp::{MessageChange, WaMessage};

/// A LID known to belong to a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LidPhone {
    /// The LID's user part (digits).
    pub lid: String,
    /// E.164 digits.
    pub phone: String,
}

impl LidPhone {
    /// The mapping a JID and its alternate show, when one is a LID and the other a phone JID
    /// (either way round).
    pub fn from_pair(jid: &str, alt: Option<&str>) -> Option<Self> {
        let alt = alt?;
        let (lid, phone) = match (lid_of_jid(jid), phone_of_jid(alt)) {
            (Some(lid), Some(phone)) => (lid, phone),
            _ => (lid_of_jid(alt)?, phone_of_jid(jid)?),
        };
        Some(Self {
            lid: lid.to_string(),
            phone: phone.to_string(),
        })
    }

    /// The JID to file `jid` under given only `learned`: a LID's phone JID when one of them
    /// names it, else `jid` itself (the chat mirror with storage off).
    pub fn file_under(jid: &str, learned: &[LidPhone]) -> String {
        lid_of_jid(jid)
            .and_then(|lid| learned.iter().find(|m| m.lid == lid))
            .map_or_else(|| jid.to_string(), |m| jid_of(&m.phone))
    }

    /// Every mapping a message shows (its sender's and its chat's), each once.
    pub fn of_message(message: &WaMessage) -> Vec<Self> {
        Self::of_pairs([
            (&message.sender, message.sender_alt.as_deref()),
            (&message.chat, message.chat_alt.as_deref()),
        ])
    }

    /// Every mapping a change to a message shows (its sender's and its chat's), each once.
    pub fn of_change(change: &MessageChange) -> Vec<Self> {
        Self::of_pairs([
            (&change.sender, change.sender_alt.as_deref()),
            (&change.chat, change.chat_alt.as_deref()),
        ])
    }

    /// The mappings of (JID, alternate) pairs, each once.
    fn of_pairs(pairs: [(&String, Option<&str>); 2]) -> Vec<Self> {
        let mut found = Vec::new();
        for pair in pairs
            .into_iter()
            .filter_map(|(jid, alt)| Self::from_pair(jid, alt))
        {
            if !found.contains(&pair) {
                found.push(pair);
            }
        }
        found
    }
}

/// Records what a message taught about a device's contacts, inside the caller's transaction.
/// A new (or changed) mapping moves everything filed under the LID to the phone: the LID's
/// chat merges into the phone's chat and its messages' senders become the phone's JID.
/// Returns the chats merged away, as (LID chat JID, phone chat JID).
pub async fn learn(
    mut conn: Conn<'_>,
    device_id: i64,
    learned: &[LidPhone],
    now: NaiveDateTime,
) -> Result<Vec<(String, String)>, DbError> {
    let mut merged = Vec::new();
    for mapping in learned {
        let known = known_phone(conn.reborrow(), device_id, &mapping.lid).await?;
        if known.as_deref() == Some(mapping.phone.as_str()) {
            continue;
        }
        on_conn!(conn.reborrow(), |c| {
            diesel::insert_into(lid_phones::table)
                .values((
                    lid_phones::device_id.eq(device_id),
                    lid_phones::lid.eq(&mapping.lid),
                    lid_phones::phone.eq(&mapping.phone),
                    lid_phones::learned_at.eq(now),
                ))
                .on_conflict((lid_phones::device_id, lid_phones::lid))
                .do_update()
                .set((
                    lid_phones::phone.eq(&mapping.phone),
                    lid_phones::learned_at.eq(now),
                ))
                .execute(c)
                .await?;
        });
        if merge(conn.reborrow(), device_id, mapping, now).await? {
            merged.push((lid_jid(&mapping.lid), jid_of(&mapping.phone)));
        }
    }
    Ok(merged)
}

/// The JID to file `jid` under on a device: a LID's phone JID when the phone is known, else
/// `jid` itself.
pub async fn resolve(conn: Conn<'_>, device_id: i64, jid: &str) -> Result<String, DbError> {
    let Some(lid) = lid_of_jid(jid) else {
        return Ok(jid.to_string());
    };
    Ok(known_phone(conn, device_id, lid)
        .await?
        .map_or_else(|| jid.to_string(), |phone| jid_of(&phone)))
}

/// The phone a device knows for a LID.
async fn known_phone(conn: Conn<'_>, device_id: i64, lid: &str) -> Result<Option<String>, DbError> {
    on_conn!(conn, |c| {
        Ok(lid_phones::table
            .filter(lid_phones::device_id.eq(device_id))
            .filter(lid_phones::lid.eq(lid))
            .select(lid_phones::phone)
            .first::<String>(c)
            .await
            .optional()?)
    })
}

/// Moves what a device filed under `mapping`'s LID to its phone: the LID chat's messages into
/// the phone's chat (created when missing, named as the LID chat was), its unread count added,
/// the newer preview kept; then the LID chat goes. Senders named by the LID (in any chat,
/// groups included) become the phone's JID. True when there was a LID chat to merge.
async fn merge(
    conn: Conn<'_>,
    device_id: i64,
    mapping: &LidPhone,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let (lid, phone) = (lid_jid(&mapping.lid), jid_of(&mapping.phone));
    on_conn!(conn, |c| {
        diesel::update(
            messages::table
                .filter(messages::device_id.eq(device_id))
                .filter(messages::sender_jid.eq(&lid)),
        )
        .set(messages::sender_jid.eq(&phone))
        .execute(c)
        .await?;
        diesel::update(
            messages::table
                .filter(messages::device_id.eq(device_id))
                .filter(messages::quoted_sender.eq(&lid)),
        )
        .set(messages::quoted_sender.eq(&phone))
        .execute(c)
        .await?;
        // Their reactions under the LID become the phone's (one per message: a reaction they
        // made under the phone meanwhile stays).
        let reacted: Vec<StoredReaction> = diesel::delete(
            reactions::table
                .filter(reactions::device_id.eq(device_id))
                .filter(reactions::sender_jid.eq(&lid)),
        )
        .returning(StoredReaction::as_returning())
        .get_results(c)
        .await?;
        for reaction in reacted {
            diesel::insert_into(reactions::table)
                .values((
                    reactions::device_id.eq(device_id),
                    reactions::message_wa_id.eq(reaction.message_wa_id),
                    reactions::sender_jid.eq(&phone),
                    reactions::emoji.eq(reaction.emoji),
                    reactions::from_me.eq(reaction.from_me),
                    reactions::reacted_at.eq(reaction.reacted_at),
                ))
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
        }
        let Some(old) = chats::table
            .filter(chats::device_id.eq(device_id))
            .filter(chats::jid.eq(&lid))
            .select(crate::chat::model::Chat::as_select())
            .first(c)
            .await
            .optional()?
        else {
            return Ok(false);
        };
        diesel::insert_into(chats::table)
            .values((
                chats::tenant_id.eq(old.tenant_id),
                chats::device_id.eq(device_id),
                chats::jid.eq(&phone),
                chats::name.eq(&old.name),
                chats::unread_count.eq(0i64),
                chats::created_at.eq(old.created_at),
                chats::updated_at.eq(now),
            ))
            .on_conflict((chats::device_id, chats::jid))
            .do_nothing()
            .execute(c)
            .await?;
        let into = chats::table
            .filter(chats::device_id.eq(device_id))
            .filter(chats::jid.eq(&phone))
            .select(crate::chat::model::Chat::as_select())
            .first(c)
            .await?;
        diesel::update(messages::table.filter(messages::chat_id.eq(old.id)))
            .set(messages::chat_id.eq(into.id))
            .execute(c)
            .await?;
        let old_is_newer = match (old.last_message_at, into.last_message_at) {
            (Some(old_at), Some(into_at)) => old_at > into_at,
            (old_at, _) => old_at.is_some(),
        };
        let (text, at) = if old_is_newer {
            (old.last_message_text.clone(), old.last_message_at)
        } else {
            (into.last_message_text.clone(), into.last_message_at)
        };
        diesel::update(chats::table.find(into.id))
            .set((
                chats::unread_count.eq(into.unread_count + old.unread_count),
                chats::name.eq(into.name.clone().or(old.name.clone())),
                chats::last_message_text.eq(text),
                chats::last_message_at.eq(at),
                chats::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
        diesel::delete(chats::table.find(old.id)).execute(c).await?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        sender: &str,
        sender_alt: Option<&str>,
        chat: &str,
        chat_alt: Option<&str>,
    ) -> WaMessage {
        WaMessage {
            id: "3EB0".into(),
            chat: chat.into(),
            sender: sender.into(),
            sender_alt: sender_alt.map(str::to_string),
            chat_alt: chat_alt.map(str::to_string),
            ..WaMessage::default()
        }
    }

    fn mapping(lid: &str, phone: &str) -> LidPhone {
        LidPhone {
            lid: lid.into(),
            phone: phone.into(),
        }
    }

    #[test]
    fn a_lid_and_a_phone_jid_make_a_mapping_either_way_round() {
        let expected = Some(mapping("123456789012345", "60123456789"));
        assert_eq!(
            LidPhone::from_pair("123456789012345@lid", Some("60123456789@s.whatsapp.net")),
            expected
        );
        assert_eq!(
            LidPhone::from_pair(
                "60123456789:2@s.whatsapp.net",
                Some("123456789012345:2@lid")
            ),
            expected
        );
        assert_eq!(LidPhone::from_pair("123456789012345@lid", None), None);
        assert_eq!(
            LidPhone::from_pair("123456789012345@lid", Some("999@lid")),
            None,
            "two LIDs name no phone"
        );
        assert_eq!(
            LidPhone::from_pair("120363000000@g.us", Some("60123456789@s.whatsapp.net")),
            None,
            "a group is not a person"
        );
    }

    #[test]
    fn a_message_yields_each_mapping_once() {
        let lid = "123456789012345@lid";
        let phone = "60123456789@s.whatsapp.net";
        let one_to_one = message(lid, Some(phone), lid, Some(phone));
        assert_eq!(
            LidPhone::of_message(&one_to_one),
            vec![mapping("123456789012345", "60123456789")]
        );
        let in_group = message(lid, Some(phone), "120363000000@g.us", None);
        assert_eq!(LidPhone::of_message(&in_group).len(), 1);
        let hidden = message(lid, None, lid, None);
        assert!(LidPhone::of_message(&hidden).is_empty());
    }

    #[test]
    fn a_lid_is_filed_under_the_phone_a_mapping_names() {
        let learned = [mapping("123456789012345", "60123456789")];
        assert_eq!(
            LidPhone::file_under("123456789012345:3@lid", &learned),
            "60123456789@s.whatsapp.net"
        );
        assert_eq!(LidPhone::file_under("999@lid", &learned), "999@lid");
        assert_eq!(
            LidPhone::file_under("60100000000@s.whatsapp.net", &learned),
            "60100000000@s.whatsapp.net"
        );
    }
}
