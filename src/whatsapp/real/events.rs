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
//! | `Messages`                   | `Message` per message with text or caption              |
//! | `Receipt` delivered / read   | `Receipt` `Delivered` / `Read`                          |
//! | `ServerAck` of a message     | `Receipt` `Sent` (accepted) or `Failed` (nack)          |
//! | `HistorySync`                | `HistorySync` (decoded off the event path)              |
//!
//! Everything else (presence, app-state, groups, calls, …) is not ours to report yet.

use chrono::{DateTime, TimeZone, Utc};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::whatsapp::{ConnectorEvent, Receipt, ReceiptKind, WaMessage};

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

/// Maps one library event. `Connected` is not handled here (it needs the device record) and
/// `HistorySync` neither (it needs a blocking decode); both return `None`.
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
        Event::Messages(batch) => Some((
            batch
                .iter()
                .filter_map(|m| inbound(&m.message, &m.info))
                .map(ConnectorEvent::Message)
                .collect(),
            Outcome::Continue,
        )),
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

/// A live message as ours, when it carries text or a caption (reactions, protocol messages
/// and the like are skipped).
fn inbound(
    message: &wa::Message,
    info: &whatsapp_rust::types::message::MessageInfo,
) -> Option<WaMessage> {
    let text = message
        .text_content()
        .or_else(|| message.get_caption())
        .map(str::to_string)?;
    Some(WaMessage {
        id: info.id.to_string(),
        chat: info.source.chat.to_string(),
        sender: info.source.sender.to_non_ad().to_string(),
        push_name: (!info.push_name.is_empty()).then(|| info.push_name.clone()),
        from_me: info.source.is_from_me,
        text: Some(text),
        media: None,
        timestamp: info.timestamp,
    })
}

/// The messages of a decoded history sync that carry text or a caption, oldest first per chat.
pub fn history(sync: &wa::HistorySync, own_jid: Option<&str>) -> Vec<WaMessage> {
    let mut out = Vec::new();
    for conversation in &sync.conversations {
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
            let Some(text) = message.text_content().or_else(|| message.get_caption()) else {
                continue;
            };
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
            out.push(WaMessage {
                id,
                chat,
                sender,
                push_name: info.push_name.clone(),
                from_me,
                text: Some(text.to_string()),
                media: None,
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
