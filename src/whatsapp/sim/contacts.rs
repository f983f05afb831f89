//! Simulated contacts: what happens after a device's message reaches someone (a delivered and
//! a read receipt, then perhaps an answer, text or image) and messages a contact writes first
//! ([`SimNetwork::deliver_inbound`], [`SimNetwork::deliver`]).
//!
//! As on WhatsApp, a share of contacts (`lid_probability`) is addressed by LID: they write from
//! `<lid>@lid` and their phone comes only as the alternate sender; [`Addressing::LidHidden`]
//! leaves even that out (a LID whose phone is not known yet).
//!
//! Each delivered message gets one short task that sleeps until each step, emits it and ends;
//! it stops at once when the session ends. A contact answers after about `reply_delay_ms`
//! (uniformly 0.5x to 1.5x) from the send, and never before it has read the message.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::seq::IndexedRandom;
use rand::Rng;
use tokio::time::Instant;

use serde::Deserialize;
use utoipa::ToSchema;

use super::address::{addressed_by_lid, last_digits, lid_of};
use super::error::SimError;
use super::groups;
use super::network::SimNetwork;
use super::outbox::{Outbox, Stop};
use super::samples;
use crate::phone::{jid_of, lid_jid, parse_international};
use crate::whatsapp::{
    Change, ConnectorEvent, Media, MessageChange, MessageKind, Quote, Receipt, ReceiptKind,
    WaMessage,
};

/// What contacts answer. Deliberately free of opt-out words, so that random answers never
/// unsubscribe a lead (tests of opt-outs use `deliver_inbound`).
const ANSWERS: &[&str] = &[
    "Hi! Yes, I'm interested",
    "How much is it?",
    "Thanks, I'll have a look",
    "Can you call me later?",
    "Ok 👍",
    "Who is this?",
    "Send me more details please",
    "Is this still available?",
];

/// What demo contacts write first ([`SimNetwork::start_chatter`]).
const OPENERS: &[&str] = &[
    "Hi, do you deliver to Penang?",
    "Hello! Saw your post, what's the price?",
    "Good morning, is the shop open today?",
    "Can I still order for this week?",
    "Hi, I'd like to book an appointment",
    "Do you have this in blue?",
];

/// What a history sync's conversations say, in turn (contact, us, contact).
const HISTORY_LINES: [&str; 3] = [
    "Hi, is the promo still on?",
    "Yes, until the end of the month",
    "Great, thanks!",
];

/// How many demo contacts write first (phones `60177000000` onwards).
const CHATTY_CONTACTS: u32 = 12;

/// Caption of the image answer.
const PHOTO_CAPTION: &str = "Like this one?";

/// What a contact will do with one message, drawn when it is delivered; offsets from the send.
#[derive(Debug)]
struct Plan {
    /// How WhatsApp names the contact (their receipts and answer come from that JID).
    from: Addressing,
    /// When the delivered receipt comes.
    delivered: Duration,
    /// When the read receipt comes.
    read: Duration,
    /// When and what the contact answers, if it does.
    answer: Option<(Duration, WaMessage)>,
}

impl Plan {
    /// Draws the plan for a message to `phone` with the network's settings.
    fn draw(network: &SimNetwork, phone: &str) -> Self {
        let from = Addressing::of(network, phone);
        network.introduce(phone, from);
        let settings = network.settings();
        let clock = network.clock();
        let mut rng = rand::rng();
        let delivered = clock.ms(settings.delivered_after_ms);
        let read = delivered.saturating_add(clock.ms(settings.read_after_ms));
        let answer = chance(&mut rng, settings.reply_probability).then(|| {
            let factor: f64 = rng.random_range(0.5..1.5);
            let delay = clock.ms((settings.reply_delay_ms as f64 * factor) as u64);
            let message = if chance(&mut rng, settings.image_reply_probability) {
                let photo = Media {
                    mime: "image/png".into(),
                    data: Arc::new(samples::PHOTO_PNG.to_vec()),
                    reference: Some(media_reference(MessageKind::Image)),
                };
                contact_message(phone, from, Some(PHOTO_CAPTION.into()), Some(photo))
            } else {
                let text = ANSWERS.choose(&mut rng).copied().unwrap_or("Ok");
                contact_message(phone, from, Some(text.into()), None)
            };
            (delay.max(read), message)
        });
        Self {
            from,
            delivered,
            read,
            answer,
        }
    }
}

/// True with probability `p`; values outside 0..=1 (or NaN) act as never or always.
fn chance(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// How a contact's messages name their sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// From the phone's JID.
    Phone,
    /// From the contact's LID, the phone JID as the alternate sender.
    Lid,
    /// From the contact's LID with no phone at all.
    LidHidden,
}

impl Addressing {
    /// How WhatsApp addresses the contact at `phone` on this network (`lid_probability`).
    fn of(network: &SimNetwork, phone: &str) -> Self {
        if addressed_by_lid(phone, network.settings().lid_probability) {
            Addressing::Lid
        } else {
            Addressing::Phone
        }
    }
}

/// A message from the contact at `phone`, addressed `from`, with a fresh WhatsApp-style id.
fn contact_message(
    phone: &str,
    from: Addressing,
    text: Option<String>,
    media: Option<Media>,
) -> WaMessage {
    let phone_jid = jid_of(phone);
    let (jid, alt) = match from {
        Addressing::Phone => (phone_jid, None),
        Addressing::Lid => (lid_jid(&lid_of(phone)), Some(phone_jid)),
        Addressing::LidHidden => (lid_jid(&lid_of(phone)), None),
    };
    WaMessage {
        id: format!("3EB0{:016X}", rand::random::<u64>()),
        chat: jid.clone(),
        sender: jid,
        sender_alt: alt.clone(),
        chat_alt: alt,
        push_name: Some(format!("Contact {}", last_digits(phone))),
        from_me: false,
        kind: if media.is_some() {
            MessageKind::Image
        } else {
            MessageKind::Text
        },
        text,
        media,
        timestamp: Utc::now(),
        ..WaMessage::default()
    }
}

/// The sample file a contact sends as media of `kind`: MIME type and bytes (`None` for kinds
/// without a file).
pub(super) fn sample_file(kind: MessageKind) -> Option<(&'static str, Arc<Vec<u8>>)> {
    match kind {
        MessageKind::Image => Some(("image/png", Arc::new(samples::PHOTO_PNG.to_vec()))),
        MessageKind::Voice | MessageKind::Audio => {
            Some(("audio/ogg; codecs=opus", samples::voice_ogg()))
        }
        MessageKind::Document => Some(("application/pdf", samples::document_pdf())),
        MessageKind::Sticker => Some(("image/webp", samples::sticker_webp())),
        MessageKind::Video => Some(("video/mp4", Arc::new(samples::CLIP_MP4.to_vec()))),
        _ => None,
    }
}

/// The reference a simulated message's media carries: `sim:<kind>`.
pub(super) fn media_reference(kind: MessageKind) -> String {
    format!("sim:{}", kind.as_str())
}

/// `message` made a message of `kind` with the sample bytes or details of that kind.
fn with_content(mut message: WaMessage, kind: MessageKind, phone: &str) -> WaMessage {
    message.kind = kind;
    if let Some((mime, data)) = sample_file(kind) {
        message.media = Some(Media {
            mime: mime.into(),
            data,
            reference: Some(media_reference(kind)),
        });
    }
    match kind {
        MessageKind::Document => message.file_name = Some(samples::DOCUMENT_NAME.into()),
        MessageKind::Location => message.location = Some(samples::place()),
        MessageKind::Contact => {
            let name = message
                .push_name
                .clone()
                .unwrap_or_else(|| phone.to_string());
            message.contact = Some(samples::card(&name, phone));
        }
        _ => {}
    }
    message
}

/// Starts what follows the delivery of `message_id` to `phone`: receipts, perhaps an answer.
pub(super) fn follow_up(
    network: &SimNetwork,
    device_id: i64,
    (outbox, stop): (Outbox, Stop),
    phone: &str,
    message_id: &str,
) {
    let plan = Plan::draw(network, phone);
    let chat = match plan.from {
        Addressing::Phone => jid_of(phone),
        _ => lid_jid(&lid_of(phone)),
    };
    let network = network.clone();
    let message_id = message_id.to_owned();
    tokio::spawn(async move {
        let mut stop = stop;
        let start = Instant::now();
        for (after, kind) in [
            (plan.delivered, ReceiptKind::Delivered),
            (plan.read, ReceiptKind::Read),
        ] {
            let receipt = || {
                ConnectorEvent::Receipt(Receipt {
                    chat: chat.clone(),
                    message_ids: vec![message_id.clone()],
                    kind,
                    timestamp: Utc::now(),
                })
            };
            if !emit_at(&outbox, &mut stop, start, after, receipt).await {
                return;
            }
        }
        if let Some((after, message)) = plan.answer {
            let answer = || {
                let message = WaMessage {
                    timestamp: Utc::now(),
                    ..message
                };
                ConnectorEvent::Message(Box::new(network.as_received(device_id, message)))
            };
            if emit_at(&outbox, &mut stop, start, after, answer).await {
                network.count(|stats| stats.inbound += 1);
            }
        }
    });
}

/// Sleeps until `after` past `start`, then emits the event made then (so it carries that
/// time); false when the session ended first.
async fn emit_at(
    outbox: &Outbox,
    stop: &mut Stop,
    start: Instant,
    after: Duration,
    event: impl FnOnce() -> ConnectorEvent,
) -> bool {
    match start.checked_add(after) {
        Some(at) => stop.sleep_until(at).await && outbox.emit(event(), stop).await,
        None => false,
    }
}

/// A message a simulated contact writes first (`POST /api/v1/sim/inbound`), or a change they
/// make to an earlier message.
#[derive(Debug, Clone, Default)]
pub struct SimInbound {
    /// The contact's phone, international digits with or without `+`.
    pub from: String,
    /// What they write: the text, or the caption of an image, video or document (may be
    /// empty then).
    pub text: String,
    /// What they send: each kind with real bytes (a PNG photo, an MP4 clip, an OGG/Opus voice
    /// note or audio file, a PDF document, a WebP sticker), a place, or their own contact card.
    pub kind: MessageKind,
    /// How WhatsApp names the sender; `None`: as the network addresses that contact
    /// (`sim.lid_probability`).
    pub addressing: Option<Addressing>,
    /// The device's group they write in; `None`: their own chat with the device.
    pub group: Option<String>,
    /// The id of the message they reply to (quote).
    pub reply_to: Option<String>,
    /// Instead of a message: a reaction to, an edit of or the deletion of an earlier one.
    pub change: Option<SimChange>,
}

/// A change a simulated contact makes to an earlier message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimChange {
    /// The id of the message it changes.
    pub target: String,
    /// What changes.
    pub change: Change,
}

impl SimNetwork {
    /// The history sync a device logged in as `own_jid` receives on pairing: `history_chats`
    /// conversations of three messages (contact, us, contact), the n-th ending n + 1 days ago,
    /// and one more that ended 45 days ago; contacts are `60178000000` onwards, addressed as
    /// the network addresses them. Oldest first.
    pub(super) fn history(&self, own_jid: &str) -> Vec<WaMessage> {
        let chats = self.settings().history_chats;
        if chats == 0 {
            return Vec::new();
        }
        let now = Utc::now();
        let mut messages = Vec::new();
        for chat in 0..=chats {
            let phone = format!("60178{chat:06}");
            let from = Addressing::of(self, &phone);
            self.introduce(&phone, from);
            let days_ago = if chat == chats {
                45
            } else {
                i64::from(chat) + 1
            };
            for (line, text) in HISTORY_LINES.iter().enumerate() {
                let mut message = contact_message(&phone, from, Some((*text).into()), None);
                if line == 1 {
                    message.from_me = true;
                    message.sender = own_jid.to_owned();
                    message.sender_alt = None;
                    message.push_name = None;
                }
                let hours_before_end = 2 - line as i64;
                message.timestamp = now
                    - chrono::Duration::days(days_ago)
                    - chrono::Duration::hours(hours_before_end);
                messages.push(message);
            }
        }
        messages.sort_by_key(|m| m.timestamp);
        messages
    }

    /// Makes the contact at `from_phone` write `text` to a device, as if they wrote first.
    /// Returns the message id. The device must be online.
    pub async fn deliver_inbound(
        &self,
        device_id: i64,
        from_phone: &str,
        text: &str,
    ) -> Result<String, SimError> {
        let inbound = SimInbound {
            from: from_phone.into(),
            text: text.into(),
            ..SimInbound::default()
        };
        self.deliver(device_id, &inbound).await
    }

    /// Lets the network know the LID a contact writes from, if any.
    fn introduce(&self, phone: &str, from: Addressing) {
        if from != Addressing::Phone {
            self.remember_lid(lid_of(phone), phone);
        }
    }

    /// Makes demo contacts write first now and then: every `chatter_interval_ms` (0.5x..1.5x,
    /// scaled) one of them writes to a random online device, for as long as the network lives.
    /// Needs a Tokio runtime; does nothing when the interval is 0.
    pub fn start_chatter(&self) {
        let mean = self.settings().chatter_interval_ms;
        if mean == 0 {
            return;
        }
        let (network, clock) = (self.downgrade(), self.clock());
        tokio::spawn(async move {
            loop {
                let factor: f64 = rand::rng().random_range(0.5..1.5);
                tokio::time::sleep(clock.ms((mean as f64 * factor) as u64)).await;
                let Some(network) = network.upgrade() else {
                    return;
                };
                let (device, inbound) = {
                    let mut rng = rand::rng();
                    let Some(device) = network.online_devices().choose(&mut rng).copied() else {
                        continue;
                    };
                    let text = OPENERS.choose(&mut rng).copied().unwrap_or("Hi").into();
                    let groups = network.settings().groups;
                    // One in three writes in one of the device's groups, when it has some.
                    let inbound = if groups > 0 && rng.random_bool(1.0 / 3.0) {
                        let n = rng.random_range(0..groups);
                        SimInbound {
                            from: groups::member(n, rng.random_range(0..groups::MEMBERS)),
                            text,
                            group: groups::of_device(device, groups)
                                .into_iter()
                                .nth(n as usize)
                                .map(|g| g.jid),
                            ..SimInbound::default()
                        }
                    } else {
                        SimInbound {
                            from: format!("60177{:06}", rng.random_range(0..CHATTY_CONTACTS)),
                            text,
                            ..SimInbound::default()
                        }
                    };
                    (device, inbound)
                };
                // A device that went offline meanwhile misses this one.
                let _ = network.deliver(device, &inbound).await;
            }
        });
    }

    /// Delivers `inbound` to a device; returns the message id. The device must be online.
    pub async fn deliver(&self, device_id: i64, inbound: &SimInbound) -> Result<String, SimError> {
        let phone = parse_international(&inbound.from)
            .ok_or_else(|| SimError::InvalidPhone(inbound.from.clone()))?;
        let group = match inbound.group.as_deref() {
            Some(jid) => Some(
                groups::find(device_id, self.settings().groups, jid)
                    .ok_or_else(|| SimError::UnknownGroup(device_id, jid.into()))?,
            ),
            None => None,
        };
        let from = inbound
            .addressing
            .unwrap_or_else(|| Addressing::of(self, &phone));
        self.introduce(&phone, from);
        let text = Some(inbound.text.clone()).filter(|t| !t.is_empty());
        let mut message = contact_message(&phone, from, text, None);
        if let Some(group) = group {
            message.chat = group.jid;
            message.chat_alt = None;
            message.group_name = Some(group.name);
        }
        let id = message.id.clone();
        let event = match &inbound.change {
            Some(SimChange { target, change }) => ConnectorEvent::Change(Box::new(MessageChange {
                id: message.id,
                chat: message.chat,
                chat_alt: message.chat_alt,
                sender: message.sender,
                sender_alt: message.sender_alt,
                from_me: false,
                target: target.clone(),
                change: change.clone(),
                timestamp: message.timestamp,
            })),
            None => {
                let mut message = with_content(message, inbound.kind, &phone);
                message.quoted = inbound.reply_to.clone().map(|id| Quote {
                    id,
                    ..Quote::default()
                });
                ConnectorEvent::Message(Box::new(self.as_received(device_id, message)))
            }
        };
        self.emit_inbound(device_id, event).await?;
        Ok(id)
    }

    /// Delivers `message`, built whole by the caller (its media's bytes included), to an online
    /// device as a contact writing first; received as `chat.media_download` says, like every
    /// message. [`SimNetwork::deliver`] is the form with the simulator's own samples.
    pub async fn deliver_sample(&self, device_id: i64, message: WaMessage) -> Result<(), SimError> {
        let event = ConnectorEvent::Message(Box::new(self.as_received(device_id, message)));
        self.emit_inbound(device_id, event).await
    }

    /// Emits what a contact sent into an online device's stream and counts it.
    async fn emit_inbound(&self, device_id: i64, event: ConnectorEvent) -> Result<(), SimError> {
        let (outbox, mut stop) = self
            .online_outbox(device_id)
            .ok_or(SimError::NotOnline(device_id))?;
        if !outbox.emit(event, &mut stop).await {
            return Err(SimError::NotOnline(device_id));
        }
        self.count(|stats| stats.inbound += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_is_never_at_zero_and_always_at_one() {
        let mut rng = rand::rng();
        assert!((0..1000).all(|_| !chance(&mut rng, 0.0)));
        assert!((0..1000).all(|_| chance(&mut rng, 1.0)));
        assert!(!chance(&mut rng, f64::NAN));
    }

    #[test]
    fn contact_messages_come_from_the_contact() {
        let message = contact_message("60123456789", Addressing::Phone, Some("hi".into()), None);
        assert_eq!(message.chat, "60123456789@s.whatsapp.net");
        assert_eq!(message.sender, message.chat);
        assert_eq!(message.sender_alt, None);
        assert!(!message.from_me);
        assert!(message.id.starts_with("3EB0") && message.id.len() == 20);
        assert_eq!(message.push_name.as_deref(), Some("Contact 6789"));
    }

    #[test]
    fn lid_contacts_write_from_their_lid_with_or_without_their_phone() {
        let lid = format!("{}@lid", lid_of("60123456789"));
        let message = contact_message("60123456789", Addressing::Lid, None, None);
        assert_eq!(
            (message.chat.as_str(), message.sender.as_str()),
            (lid.as_str(), lid.as_str())
        );
        assert_eq!(
            message.sender_alt.as_deref(),
            Some("60123456789@s.whatsapp.net")
        );
        assert_eq!(message.chat_alt, message.sender_alt);
        let hidden = contact_message("60123456789", Addressing::LidHidden, None, None);
        assert_eq!(hidden.sender, lid);
        assert_eq!((hidden.sender_alt, hidden.chat_alt), (None, None));
    }
}
