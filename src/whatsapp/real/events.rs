//! From whatsapp-rust's events to ours: pure mapping functions, no I/O.
//!
//! | whatsapp-rust                | [`ConnectorEvent`]                                      |
//! |------------------------------|---------------------------------------------------------|
//! | `PairingQrCode`              | `Qr`                                                    |
//! | `PairingCode`                | `PairCode`                                              |
//! | `Connected`                  | `Connected` (JID and push name from the device record)  |
//! | `Disconnected`               | `Disconnected` (ends the session: our supervisor reconnects) |
//! | `StreamReplaced`             | `Disconnected` ("replaced"; credentials stay valid)      |
//! | `LoggedOut`                  | `LoggedOut` (remote unlink, 401, 516, logged-out failure) |
//! | `TemporaryBan`               | `Banned`                                                |
//! | `Messages`                   | `Message` per chat message of any kind (text, image, video, audio, voice, document, sticker, location, contact; media downloaded by the session; a reply keeps its quote; a group's title added by the session); LID senders keep their alternate phone JID |
//! | `Messages`: reaction, `protocolMessage` REVOKE / MESSAGE_EDIT | `Change` (`Reaction`, `Revoke`, `Edit`) naming the message it changes |
//! | `Receipt` delivered / read   | `Receipt` `Delivered` / `Read`                          |
//! | `ServerAck` of a message     | `Receipt` `Sent` (accepted) or `Failed` (nack)          |
//! | `HistorySync`                | `HistorySync` (decoded off the event path)              |
//!
//! Everything else (presence, app-state, group notifications, calls, …) is not ours to report yet.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use whatsapp_rust::download::Downloadable;

use crate::whatsapp::{
    Change, ConnectorEvent, ContactCard, Location, Media, MessageChange, MessageKind, Quote,
    Receipt, ReceiptKind, WaMessage,
};

/// Reason given when the server says another connection took this device's stream.
pub const REPLACED: &str = "stream replaced: another connection of this device took over";

/// What an event means for the session, besides the events it yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing special.
    Continue,
    /// The session is over (the event said why); nothing more is reported after it.
    Terminal,
}

/// Maps one library event. `Connected` (it needs the device record), `Messages` (their media
/// is downloaded first; see [`inbound`]) and `HistorySync` (it needs a blocking decode) are not
/// handled here; they return `None`.
pub fn map(event: &Event) -> Option<(Vec<ConnectorEvent>, Outcome)> {
    let one = |e| Some((vec![e], Outcome::Continue));
    let last = |e| Some((vec![e], Outcome::Terminal));
    match event {
        Event::PairingQrCode(qr) => one(ConnectorEvent::Qr {
            code: qr.code.clone(),
        }),
        Event::PairingCode(code) => one(ConnectorEvent::PairCode {
            code: code.code.clone(),
        }),
        Event::Disconnected(d) => last(ConnectorEvent::Disconnected {
            reason: format!("disconnected: {}", d.reason),
        }),
        Event::StreamReplaced(_) => last(ConnectorEvent::Disconnected {
            reason: REPLACED.into(),
        }),
        Event::LoggedOut(out) => last(ConnectorEvent::LoggedOut {
            reason: format!("logged out by WhatsApp ({:?})", out.reason),
        }),
        Event::TemporaryBan(ban) => last(ConnectorEvent::Banned {
            reason: format!(
                "temporarily banned ({}), for {} s",
                ban.code,
                ban.expire.num_seconds()
            ),
        }),
        Event::Receipt(r) => {
            let kind = match r.r#type {
                ReceiptType::Delivered => ReceiptKind::Delivered,
                ReceiptType::Read | ReceiptType::ReadSelf => ReceiptKind::Read,
                _ => return None,
            };
            one(ConnectorEvent::Receipt(Receipt {
                chat: r.source.chat.to_string(),
                message_ids: r.message_ids.iter().map(|id| id.to_string()).collect(),
                kind,
                timestamp: r.timestamp,
            }))
        }
        Event::ServerAck(ack) if ack.class.as_deref() == Some("message") => {
            let kind = if ack.error.is_some() {
                ReceiptKind::Failed
            } else {
                ReceiptKind::Sent
            };
            one(ConnectorEvent::Receipt(Receipt {
                chat: ack.from.as_ref().map(|j| j.to_string()).unwrap_or_default(),
                message_ids: vec![ack.id.clone()],
                kind,
                timestamp: ack.timestamp.unwrap_or_else(Utc::now),
            }))
        }
        _ => None,
    }
}

/// What a message is, besides its media bytes.
#[derive(Debug, Clone, PartialEq)]
struct Described {
    /// The kind.
    kind: MessageKind,
    /// The media's MIME type, for kinds with media.
    mime: Option<String>,
    /// A document's file name.
    file_name: Option<String>,
    /// A shared place.
    location: Option<Location>,
    /// A shared contact card.
    contact: Option<ContactCard>,
}

impl Described {
    /// A kind with nothing else.
    fn kind(kind: MessageKind) -> Self {
        Self {
            kind,
            mime: None,
            file_name: None,
            location: None,
            contact: None,
        }
    }
}

/// A document, also when it is wrapped to carry a caption.
fn document(message: &wa::Message) -> Option<&wa::message::DocumentMessage> {
    message.document_message.as_option().or_else(|| {
        message
            .document_with_caption_message
            .as_option()?
            .message
            .as_option()?
            .document_message
            .as_option()
    })
}

/// The downloadable part of a message: the part whatsapp-rust fetches, its kind, the size
/// WhatsApp declares for it, its MIME type (a kind's usual one when the message names none) and
/// a document's file name.
pub struct MediaPart<'a> {
    /// What `Client::download` takes.
    pub part: &'a dyn Downloadable,
    /// Image, video, audio, voice, document or sticker.
    pub kind: MessageKind,
    /// Declared size in bytes (0 when not declared).
    pub declared: u64,
    /// MIME type.
    pub mime: String,
    /// A document's file name (or title).
    pub file_name: Option<String>,
}

/// The downloadable part of a message, if it has one.
pub fn media_part(message: &wa::Message) -> Option<MediaPart<'_>> {
    use MessageKind as K;
    let make = |part, kind, declared: Option<u64>, mime: Option<&String>, fallback: &str| {
        Some(MediaPart {
            part,
            kind,
            declared: declared.unwrap_or(0),
            mime: mime.map_or(fallback, |m| m.as_str()).to_string(),
            file_name: None,
        })
    };
    if let Some(image) = message.image_message.as_option() {
        return make(
            image,
            K::Image,
            image.file_length,
            image.mimetype.as_ref(),
            "image/jpeg",
        );
    }
    let video = message.video_message.as_option();
    if let Some(video) = video.or_else(|| message.ptv_message.as_option()) {
        return make(
            video,
            K::Video,
            video.file_length,
            video.mimetype.as_ref(),
            "video/mp4",
        );
    }
    if let Some(audio) = message.audio_message.as_option() {
        let kind = if audio.ptt == Some(true) {
            K::Voice
        } else {
            K::Audio
        };
        return make(
            audio,
            kind,
            audio.file_length,
            audio.mimetype.as_ref(),
            "audio/ogg",
        );
    }
    if let Some(doc) = document(message) {
        let fallback = "application/octet-stream";
        let media = make(
            doc,
            K::Document,
            doc.file_length,
            doc.mimetype.as_ref(),
            fallback,
        )?;
        return Some(MediaPart {
            file_name: doc.file_name.clone().or_else(|| doc.title.clone()),
            ..media
        });
    }
    let sticker = message.sticker_message.as_option()?;
    make(
        sticker,
        K::Sticker,
        sticker.file_length,
        sticker.mimetype.as_ref(),
        "image/webp",
    )
}

/// Prefix of the media references the real connector makes (a version, should the format
/// change).
const REFERENCE_PREFIX: &str = "wa1:";

/// How to download a message's media later: its media part alone (what the download needs:
/// direct path, key, hashes, size), encoded as protobuf, base64, behind [`REFERENCE_PREFIX`].
pub fn media_reference(message: &wa::Message) -> Option<String> {
    use whatsapp_rust::waproto::buffa::Message as _;
    media_part(message)?;
    let document = document(message).cloned();
    let part = wa::Message {
        image_message: message.image_message.clone(),
        video_message: message.video_message.clone(),
        ptv_message: message.ptv_message.clone(),
        audio_message: message.audio_message.clone(),
        document_message: document.into(),
        sticker_message: message.sticker_message.clone(),
        ..Default::default()
    };
    Some(format!(
        "{REFERENCE_PREFIX}{}",
        BASE64.encode(part.encode_to_vec())
    ))
}

/// The media part a [`media_reference`] names; `None` for anything else.
pub fn media_of_reference(reference: &str) -> Option<wa::Message> {
    use whatsapp_rust::waproto::buffa::Message as _;
    let encoded = reference.strip_prefix(REFERENCE_PREFIX)?;
    let bytes = BASE64.decode(encoded).ok()?;
    let message = wa::Message::decode_from_slice(&bytes).ok()?;
    media_part(&message)?;
    Some(message)
}

/// What a message is; `None` for what is not a chat message of its own (reactions, protocol
/// messages, polls and the like).
fn describe(message: &wa::Message) -> Option<Described> {
    use MessageKind as K;
    if let Some(media) = media_part(message) {
        return Some(Described {
            mime: Some(media.mime),
            file_name: media.file_name,
            ..Described::kind(media.kind)
        });
    }
    if let Some(place) = message.location_message.as_option() {
        return Some(Described {
            location: Some(Location {
                latitude: place.degrees_latitude.unwrap_or(0.0),
                longitude: place.degrees_longitude.unwrap_or(0.0),
                name: place.name.clone().or_else(|| place.address.clone()),
            }),
            ..Described::kind(K::Location)
        });
    }
    if let Some(card) = message.contact_message.as_option() {
        return Some(Described {
            contact: Some(ContactCard {
                display_name: card.display_name.clone().unwrap_or_default(),
                vcard: card.vcard.clone().unwrap_or_default(),
            }),
            ..Described::kind(K::Contact)
        });
    }
    message.text_content().map(|_| Described::kind(K::Text))
}

/// The quote of a reply: the context info of whichever part of the message carries it.
fn quote(message: &wa::Message) -> Option<Quote> {
    let context = [
        message
            .extended_text_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        message
            .image_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        message
            .video_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        message
            .audio_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        document(message).and_then(|m| m.context_info.as_option()),
        message
            .sticker_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        message
            .location_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        message
            .contact_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
    ]
    .into_iter()
    .flatten()
    .find(|c| c.stanza_id.is_some())?;
    let quoted = context.quoted_message.as_option();
    Some(Quote {
        id: context.stanza_id.clone()?,
        sender: context.participant.clone(),
        text: quoted.and_then(|q| {
            q.text_content()
                .or_else(|| q.get_caption())
                .map(str::to_string)
        }),
    })
}

/// A reaction, edit or deletion as ours; `None` for any other message. Edits and deletions
/// arrive as protocol messages naming the message they change; reactions name it in their key.
pub fn change(
    message: &wa::Message,
    info: &whatsapp_rust::types::message::MessageInfo,
) -> Option<MessageChange> {
    use wa::message::protocol_message::Type;
    let message = message.get_base_message();
    let (target, change) = if let Some(reaction) = message.reaction_message.as_option() {
        let emoji = reaction.text.clone().unwrap_or_default();
        (reaction.key.as_option()?, Change::Reaction { emoji })
    } else {
        let protocol = message.protocol_message.as_option()?;
        let change = match protocol.r#type? {
            Type::REVOKE => Change::Revoke,
            Type::MESSAGE_EDIT => {
                let edited = protocol.edited_message.as_option()?;
                let text = edited.text_content().or_else(|| edited.get_caption())?;
                Change::Edit {
                    text: text.to_string(),
                }
            }
            _ => return None,
        };
        (protocol.key.as_option()?, change)
    };
    let (sender, sender_alt, chat_alt) = parties(info);
    Some(MessageChange {
        id: info.id.to_string(),
        chat: info.source.chat.to_string(),
        chat_alt,
        sender,
        sender_alt,
        from_me: info.source.is_from_me,
        target: target.id.clone()?,
        change,
        timestamp: info.timestamp,
    })
}

/// A message's sender JID, the sender's alternate JID and the chat's alternate JID (in a
/// one-to-one chat, the other party's: the recipient's for our own messages).
fn parties(
    info: &whatsapp_rust::types::message::MessageInfo,
) -> (String, Option<String>, Option<String>) {
    let source = &info.source;
    let non_ad = |jid: &whatsapp_rust::Jid| jid.to_non_ad().to_string();
    let sender_alt = source.sender_alt.as_ref().map(non_ad);
    let chat_alt = if source.is_group || source.chat.server == whatsapp_rust::Server::Group {
        None
    } else if source.is_from_me {
        source.recipient_alt.as_ref().map(non_ad)
    } else {
        sender_alt.clone()
    };
    (non_ad(&source.sender), sender_alt, chat_alt)
}

/// A live message as ours (`None` for reactions, protocol messages and the like), with the
/// media bytes `downloaded` for it (none: not downloaded, the message still says what it
/// carried). A LID sender's phone comes from the message's alternate sender; in a one-to-one
/// chat the chat's other JID is that of the other party (the recipient's for our own messages).
pub fn inbound(
    message: &wa::Message,
    info: &whatsapp_rust::types::message::MessageInfo,
    downloaded: Option<Vec<u8>>,
) -> Option<WaMessage> {
    let described = describe(message)?;
    let text = message
        .text_content()
        .or_else(|| message.get_caption())
        .map(str::to_string);
    let (sender, sender_alt, chat_alt) = parties(info);
    Some(WaMessage {
        id: info.id.to_string(),
        chat: info.source.chat.to_string(),
        sender,
        sender_alt,
        chat_alt,
        push_name: (!info.push_name.is_empty()).then(|| info.push_name.clone()),
        from_me: info.source.is_from_me,
        kind: described.kind,
        text,
        media: described.mime.map(|mime| Media {
            mime,
            data: Arc::new(downloaded.unwrap_or_default()),
            reference: media_reference(message),
        }),
        file_name: described.file_name,
        location: described.location,
        contact: described.contact,
        quoted: quote(message),
        group_name: None,
        timestamp: info.timestamp,
    })
}

/// The chat messages of a decoded history sync (media described, not downloaded), oldest first.
/// A LID chat's phone comes from its conversation (`pnJid`), a LID participant's from the
/// sync's LID-to-phone table.
pub fn history(sync: &wa::HistorySync, own_jid: Option<&str>) -> Vec<WaMessage> {
    let phones: HashMap<&str, &str> = sync
        .phone_number_to_lid_mappings
        .iter()
        .filter_map(|m| Some((m.lid_jid.as_deref()?, m.pn_jid.as_deref()?)))
        .collect();
    let mut out = Vec::new();
    for conversation in &sync.conversations {
        let chat_alt = conversation
            .pn_jid
            .clone()
            .or_else(|| conversation.lid_jid.clone())
            .filter(|alt| *alt != conversation.id);
        for entry in &conversation.messages {
            let Some(info) = entry.message.as_option() else {
                continue;
            };
            let Some(key) = info.key.as_option() else {
                continue;
            };
            let Some(message) = info.message.as_option() else {
                continue;
            };
            let Some(described) = describe(message) else {
                continue;
            };
            let text = message
                .text_content()
                .or_else(|| message.get_caption())
                .map(str::to_string);
            let (Some(id), Some(chat)) = (key.id.clone(), key.remote_jid.clone()) else {
                continue;
            };
            let from_me = key.from_me.unwrap_or(false);
            let sender = if from_me {
                own_jid.unwrap_or_default().to_string()
            } else {
                key.participant
                    .clone()
                    .or_else(|| info.participant.clone())
                    .unwrap_or_else(|| chat.clone())
            };
            let group = chat.ends_with("@g.us");
            let sender_alt = if from_me {
                None
            } else if !group && sender == chat {
                chat_alt.clone()
            } else {
                phones.get(sender.as_str()).map(|pn| pn.to_string())
            };
            out.push(WaMessage {
                id,
                chat,
                sender,
                sender_alt,
                chat_alt: chat_alt.clone().filter(|_| !group),
                push_name: info.push_name.clone(),
                from_me,
                kind: described.kind,
                text,
                // What a history sync's media was; never downloaded (it would hold up pairing).
                media: described.mime.map(|mime| Media {
                    mime,
                    data: Arc::default(),
                    reference: media_reference(message),
                }),
                file_name: described.file_name,
                location: described.location,
                contact: described.contact,
                quoted: quote(message),
                group_name: group.then(|| conversation.name.clone()).flatten(),
                timestamp: timestamp(info.message_timestamp.unwrap_or(0)),
            });
        }
    }
    out.sort_by_key(|m| m.timestamp);
    out
}

/// Unix seconds as a UTC time (0 or out of range: the epoch).
fn timestamp(secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use whatsapp_rust::types::events::{
        ConnectFailureReason, LoggedOut, PairingQrCode, ServerAck, StreamReplaced,
    };

    use super::*;

    #[test]
    fn pairing_and_lifecycle_events_map_to_ours() {
        let qr = Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@ref,a,b,c,1".to_string())
                .timeout(Duration::from_secs(20))
                .build(),
        );
        assert_eq!(
            map(&qr),
            Some((
                vec![ConnectorEvent::Qr {
                    code: "2@ref,a,b,c,1".into()
                }],
                Outcome::Continue
            ))
        );

        let replaced = Event::StreamReplaced(StreamReplaced::builder().build());
        assert_eq!(
            map(&replaced),
            Some((
                vec![ConnectorEvent::Disconnected {
                    reason: REPLACED.into()
                }],
                Outcome::Terminal
            )),
            "a replaced stream keeps the credentials: not a logout"
        );

        let out = Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(false)
                .reason(ConnectFailureReason::LoggedOut)
                .build(),
        );
        let (events, outcome) = map(&out).unwrap();
        assert!(matches!(
            events.as_slice(),
            [ConnectorEvent::LoggedOut { .. }]
        ));
        assert_eq!(outcome, Outcome::Terminal);
    }

    /// A message as whatsapp-rust reports it: `text` in `chat` from `sender` (and its
    /// alternate), sent by us when `from_me` (to `recipient_alt`'s other JID).
    fn message_info(
        chat: &str,
        sender: &str,
        sender_alt: Option<&str>,
        recipient_alt: Option<&str>,
        from_me: bool,
    ) -> whatsapp_rust::types::message::MessageInfo {
        let jid = |s: &str| s.parse::<whatsapp_rust::Jid>().unwrap();
        whatsapp_rust::types::message::MessageInfo {
            source: whatsapp_rust::types::message::MessageSource {
                chat: jid(chat),
                sender: jid(sender),
                is_from_me: from_me,
                is_group: chat.ends_with("@g.us"),
                sender_alt: sender_alt.map(jid),
                recipient_alt: recipient_alt.map(jid),
                ..Default::default()
            },
            id: "3EB0LID".into(),
            push_name: "Aisyah".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_lid_senders_phone_comes_along_as_its_alternate() {
        let lid = "123456789012345@lid";
        let phone = "60123456789@s.whatsapp.net";
        let text = wa::Message {
            conversation: Some("STOP".into()),
            ..Default::default()
        };
        let ours = inbound(
            &text,
            &message_info(lid, lid, Some(phone), None, false),
            None,
        )
        .unwrap();
        assert_eq!((ours.chat.as_str(), ours.sender.as_str()), (lid, lid));
        assert_eq!(ours.sender_alt.as_deref(), Some(phone));
        assert_eq!(ours.chat_alt.as_deref(), Some(phone));
        assert_eq!(ours.text.as_deref(), Some("STOP"));

        // Our own message to a LID chat: the chat's phone is the recipient's alternate.
        let own = message_info(lid, "60111111111@s.whatsapp.net", None, Some(phone), true);
        let ours = inbound(&text, &own, None).unwrap();
        assert_eq!(ours.chat_alt.as_deref(), Some(phone));
        assert_eq!(ours.sender_alt, None);

        // In a group the participant's phone is the sender's alternate; a group has none.
        let group = message_info(
            "120363000000000000@g.us",
            "123456789012345:4@lid",
            Some("60123456789:4@s.whatsapp.net"),
            None,
            false,
        );
        let ours = inbound(&text, &group, None).unwrap();
        assert_eq!(ours.sender, lid, "the device suffix is dropped");
        assert_eq!(ours.sender_alt.as_deref(), Some(phone));
        assert_eq!(ours.chat_alt, None);

        // WhatsApp did not say: nothing is made up.
        let ours = inbound(&text, &message_info(lid, lid, None, None, false), None).unwrap();
        assert_eq!((ours.sender_alt, ours.chat_alt), (None, None));
    }

    #[test]
    fn reactions_edits_and_revokes_map_to_changes_of_their_target() {
        use wa::message as m;
        let lid = "123456789012345@lid";
        let phone = "60123456789@s.whatsapp.net";
        let info = message_info(lid, lid, Some(phone), None, false);
        let key = |id: &str| {
            Some(wa::MessageKey {
                remote_jid: Some(lid.into()),
                id: Some(id.into()),
                ..Default::default()
            })
            .into()
        };
        let reaction = wa::Message {
            reaction_message: Some(m::ReactionMessage {
                key: key("3EB0TARGET"),
                text: Some("👍".into()),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let ours = change(&reaction, &info).unwrap();
        assert_eq!(ours.target, "3EB0TARGET");
        assert_eq!(
            ours.change,
            Change::Reaction {
                emoji: "👍".into()
            }
        );
        assert_eq!((ours.chat.as_str(), ours.sender.as_str()), (lid, lid));
        assert_eq!(ours.sender_alt.as_deref(), Some(phone));
        assert_eq!(ours.chat_alt.as_deref(), Some(phone));
        assert!(
            inbound(&reaction, &info, None).is_none(),
            "not a message of its own"
        );

        let revoke = wa::Message {
            protocol_message: Some(m::ProtocolMessage {
                key: key("3EB0GONE"),
                r#type: Some(m::protocol_message::Type::REVOKE),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let ours = change(&revoke, &info).unwrap();
        assert_eq!(
            (ours.target.as_str(), ours.change),
            ("3EB0GONE", Change::Revoke)
        );

        let edit = wa::Message {
            protocol_message: Some(m::ProtocolMessage {
                key: key("3EB0OLD"),
                r#type: Some(m::protocol_message::Type::MESSAGE_EDIT),
                edited_message: Some(wa::Message {
                    conversation: Some("fixed typo".into()),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let ours = change(&edit, &info).unwrap();
        assert_eq!(ours.target, "3EB0OLD");
        assert_eq!(
            ours.change,
            Change::Edit {
                text: "fixed typo".into()
            }
        );
        // The same edit inside the wrapper newer clients use.
        let wrapped = wa::Message {
            edited_message: Some(m::FutureProofMessage {
                message: Some(edit).into(),
            })
            .into(),
            ..Default::default()
        };
        assert_eq!(change(&wrapped, &info).unwrap().target, "3EB0OLD");

        // Other protocol messages are nobody's change.
        let other = wa::Message {
            protocol_message: Some(m::ProtocolMessage {
                r#type: Some(m::protocol_message::Type::EPHEMERAL_SETTING),
                key: key("3EB0X"),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        assert_eq!(change(&other, &info), None);
        let text = wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(change(&text, &info), None);
    }

    #[test]
    fn a_media_reference_brings_back_the_part_to_download() {
        use wa::message as m;
        let voice = wa::Message {
            audio_message: Some(m::AudioMessage {
                ptt: Some(true),
                direct_path: Some("/v/t62.7117-24/abc".into()),
                media_key: Some(vec![7; 32]),
                file_length: Some(4096),
                mimetype: Some("audio/ogg; codecs=opus".into()),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let reference = media_reference(&voice).unwrap();
        assert!(reference.starts_with(REFERENCE_PREFIX));
        let back = media_of_reference(&reference).unwrap();
        let part = media_part(&back).unwrap();
        assert_eq!((part.kind, part.declared), (MessageKind::Voice, 4096));
        assert_eq!(
            back.audio_message
                .as_option()
                .unwrap()
                .direct_path
                .as_deref(),
            Some("/v/t62.7117-24/abc")
        );
        let text = wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(media_reference(&text), None);
        assert!(media_of_reference("wa1:not base64!").is_none());
        assert!(media_of_reference("sim:image").is_none());
    }

    #[test]
    fn a_reply_keeps_the_message_it_quotes() {
        use wa::message as m;
        let chat = "60123456789@s.whatsapp.net";
        let info = message_info(chat, chat, None, None, false);
        let context = || {
            Some(wa::ContextInfo {
                stanza_id: Some("3EB0ASKED".into()),
                participant: Some("60111111111@s.whatsapp.net".into()),
                quoted_message: Some(wa::Message {
                    conversation: Some("Is it in stock?".into()),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .into()
        };
        let reply = wa::Message {
            extended_text_message: Some(m::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: context(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let ours = inbound(&reply, &info, None).unwrap();
        assert_eq!(ours.text.as_deref(), Some("yes"));
        assert_eq!(
            ours.quoted,
            Some(Quote {
                id: "3EB0ASKED".into(),
                sender: Some("60111111111@s.whatsapp.net".into()),
                text: Some("Is it in stock?".into()),
            })
        );
        // A captioned picture can reply too.
        let picture = wa::Message {
            image_message: Some(m::ImageMessage {
                caption: Some("this one".into()),
                context_info: context(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let ours = inbound(&picture, &info, None).unwrap();
        assert_eq!(ours.quoted.unwrap().id, "3EB0ASKED");
        // A plain message quotes nothing.
        let plain = wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(inbound(&plain, &info, None).unwrap().quoted, None);
    }

    #[test]
    fn every_kind_of_chat_message_maps_with_what_it_carries() {
        use wa::message as m;
        let info = message_info(
            "60123456789@s.whatsapp.net",
            "60123456789@s.whatsapp.net",
            None,
            None,
            false,
        );
        let of = |message: wa::Message| inbound(&message, &info, Some(vec![1, 2, 3])).unwrap();

        let image = of(wa::Message {
            image_message: Some(m::ImageMessage {
                mimetype: Some("image/jpeg".into()),
                caption: Some("look".into()),
                file_length: Some(3),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        });
        assert_eq!(image.kind, MessageKind::Image);
        assert_eq!(image.text.as_deref(), Some("look"));
        assert_eq!(
            image
                .media
                .as_ref()
                .map(|m| (m.mime.as_str(), m.data.len())),
            Some(("image/jpeg", 3))
        );

        let voice = wa::Message {
            audio_message: Some(m::AudioMessage {
                mimetype: Some("audio/ogg; codecs=opus".into()),
                ptt: Some(true),
                file_length: Some(5000),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        assert_eq!(of(voice.clone()).kind, MessageKind::Voice);
        let part = media_part(&voice).unwrap();
        assert_eq!((part.kind, part.declared), (MessageKind::Voice, 5000));
        let audio = wa::Message {
            audio_message: Some(m::AudioMessage::default()).into(),
            ..Default::default()
        };
        assert_eq!(of(audio).kind, MessageKind::Audio);

        let doc = of(wa::Message {
            document_message: Some(m::DocumentMessage {
                mimetype: Some("application/pdf".into()),
                file_name: Some("quote.pdf".into()),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        });
        assert_eq!(
            (doc.kind, doc.file_name.as_deref()),
            (MessageKind::Document, Some("quote.pdf"))
        );

        let video = of(wa::Message {
            video_message: Some(m::VideoMessage::default()).into(),
            ..Default::default()
        });
        assert_eq!(
            (video.kind, video.media.unwrap().mime.as_str()),
            (MessageKind::Video, "video/mp4")
        );

        let sticker = of(wa::Message {
            sticker_message: Some(m::StickerMessage {
                is_animated: Some(true),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        });
        assert_eq!(
            (sticker.kind, sticker.media.unwrap().mime.as_str()),
            (MessageKind::Sticker, "image/webp")
        );

        let place = of(wa::Message {
            location_message: Some(m::LocationMessage {
                degrees_latitude: Some(3.1578),
                degrees_longitude: Some(101.7119),
                name: Some("KLCC".into()),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        });
        assert_eq!(place.kind, MessageKind::Location);
        assert!(place.media.is_none());
        assert_eq!(place.location.unwrap().name.as_deref(), Some("KLCC"));

        let card = of(wa::Message {
            contact_message: Some(m::ContactMessage {
                display_name: Some("Aisyah".into()),
                vcard: Some("BEGIN:VCARD\nEND:VCARD".into()),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        });
        assert_eq!(
            (card.kind, card.contact.unwrap().display_name.as_str()),
            (MessageKind::Contact, "Aisyah")
        );

        // Not downloaded: the kind and type stay, the bytes are empty.
        let undownloaded = inbound(&voice, &info, None).unwrap();
        assert!(undownloaded.media.unwrap().data.is_empty());
        // Not a chat message of its own.
        let reaction = wa::Message {
            reaction_message: Some(m::ReactionMessage::default()).into(),
            ..Default::default()
        };
        assert_eq!(inbound(&reaction, &info, None), None);
        assert!(media_part(&reaction).is_none());
    }

    #[test]
    fn a_history_sync_names_lid_chats_and_participants_by_phone() {
        let key = |chat: &str, participant: Option<&str>, id: &str| wa::MessageKey {
            remote_jid: Some(chat.into()),
            from_me: Some(false),
            id: Some(id.into()),
            participant: participant.map(str::to_string),
        };
        let entry = |key: wa::MessageKey| wa::HistorySyncMsg {
            message: Some(wa::WebMessageInfo {
                key: Some(key).into(),
                message: Some(wa::Message {
                    conversation: Some("hi".into()),
                    ..Default::default()
                })
                .into(),
                message_timestamp: Some(1_700_000_000),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let sync = wa::HistorySync {
            conversations: vec![
                wa::Conversation {
                    id: "123456789012345@lid".into(),
                    pn_jid: Some("60123456789@s.whatsapp.net".into()),
                    messages: vec![entry(key("123456789012345@lid", None, "A"))],
                    ..Default::default()
                },
                wa::Conversation {
                    id: "120363000000000000@g.us".into(),
                    messages: vec![entry(key(
                        "120363000000000000@g.us",
                        Some("987654321098765@lid"),
                        "B",
                    ))],
                    ..Default::default()
                },
            ],
            phone_number_to_lid_mappings: vec![wa::PhoneNumberToLIDMapping {
                pn_jid: Some("60199999999@s.whatsapp.net".into()),
                lid_jid: Some("987654321098765@lid".into()),
            }],
            ..Default::default()
        };
        let out = history(&sync, None);
        let one = out.iter().find(|m| m.id == "A").unwrap();
        assert_eq!(
            one.sender_alt.as_deref(),
            Some("60123456789@s.whatsapp.net")
        );
        assert_eq!(one.chat_alt.as_deref(), Some("60123456789@s.whatsapp.net"));
        let group = out.iter().find(|m| m.id == "B").unwrap();
        assert_eq!(
            group.sender_alt.as_deref(),
            Some("60199999999@s.whatsapp.net")
        );
        assert_eq!(group.chat_alt, None);
    }

    #[test]
    fn server_acks_of_messages_confirm_or_fail_the_send() {
        let ack = |error: Option<&str>, class: &str| {
            Event::ServerAck(
                ServerAck::builder()
                    .id("3EB0AA".to_string())
                    .class(class.to_string())
                    .maybe_error(error.map(str::to_string))
                    .build(),
            )
        };
        let kind_of = |event: &Event| match map(event) {
            Some((events, Outcome::Continue)) => match events.as_slice() {
                [ConnectorEvent::Receipt(r)] => {
                    assert_eq!(r.message_ids, vec!["3EB0AA".to_string()]);
                    Some(r.kind)
                }
                other => panic!("unexpected {other:?}"),
            },
            None => None,
            Some(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(kind_of(&ack(None, "message")), Some(ReceiptKind::Sent));
        assert_eq!(
            kind_of(&ack(Some("479"), "message")),
            Some(ReceiptKind::Failed)
        );
        assert_eq!(
            kind_of(&ack(None, "receipt")),
            None,
            "acks of our receipts are not sends"
        );
    }
}
