//! Simulated contacts: what happens after a device's message reaches someone (a delivered and
//! a read receipt, then perhaps an answer, text or image) and messages a contact writes first
//! ([`SimNetwork::deliver_inbound`]).
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

use super::address::last_digits;
use super::error::SimError;
use super::network::SimNetwork;
use super::outbox::{Outbox, Stop};
use crate::phone::{jid_of, parse_international};
use crate::whatsapp::{ConnectorEvent, Media, Receipt, ReceiptKind, WaMessage};

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

/// Caption of the image answer.
const PHOTO_CAPTION: &str = "Like this one?";

/// The image contacts send: a valid 16x16 PNG (green and white squares), kept tiny so that
/// thousands of answers cost next to nothing.
const PHOTO_PNG: [u8; 91] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x91, 0x68,
    0x36, 0x00, 0x00, 0x00, 0x22, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x50, 0xbd, 0x9c, 0x06,
    0x47, 0xff, 0x91, 0x00, 0x2e, 0x71, 0x86, 0x41, 0xa8, 0x81, 0x18, 0x45, 0xc8, 0xe2, 0x83, 0x51,
    0xc3, 0x68, 0x3c, 0x0c, 0x0a, 0x0d, 0x00, 0xc0, 0x8b, 0x2d, 0x9f, 0x03, 0xc6, 0xc3, 0x22, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// What a contact will do with one message, drawn when it is delivered; offsets from the send.
#[derive(Debug)]
struct Plan {
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
                    data: Arc::new(PHOTO_PNG.to_vec()),
                };
                contact_message(phone, Some(PHOTO_CAPTION.into()), Some(photo))
            } else {
                let text = ANSWERS.choose(&mut rng).copied().unwrap_or("Ok");
                contact_message(phone, Some(text.into()), None)
            };
            (delay.max(read), message)
        });
        Self {
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

/// A message from the contact at `phone`, with a fresh WhatsApp-style id.
fn contact_message(phone: &str, text: Option<String>, media: Option<Media>) -> WaMessage {
    let jid = jid_of(phone);
    WaMessage {
        id: format!("3EB0{:016X}", rand::random::<u64>()),
        chat: jid.clone(),
        sender: jid,
        push_name: Some(format!("Contact {}", last_digits(phone))),
        from_me: false,
        text,
        media,
        timestamp: Utc::now(),
    }
}

/// Starts what follows the delivery of `message_id` to `phone`: receipts, perhaps an answer.
pub(super) fn follow_up(
    network: &SimNetwork,
    outbox: Outbox,
    stop: Stop,
    phone: &str,
    message_id: &str,
) {
    let plan = Plan::draw(network, phone);
    let chat = jid_of(phone);
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
                ConnectorEvent::Message(WaMessage {
                    timestamp: Utc::now(),
                    ..message
                })
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

impl SimNetwork {
    /// Makes the contact at `from_phone` write `text` to a device, as if they wrote first.
    /// Returns the message id. The device must be online.
    pub async fn deliver_inbound(
        &self,
        device_id: i64,
        from_phone: &str,
        text: &str,
    ) -> Result<String, SimError> {
        let phone = parse_international(from_phone)
            .ok_or_else(|| SimError::InvalidPhone(from_phone.into()))?;
        let (outbox, mut stop) = self
            .online_outbox(device_id)
            .ok_or(SimError::NotOnline(device_id))?;
        let message = contact_message(&phone, Some(text.into()), None);
        let id = message.id.clone();
        if !outbox
            .emit(ConnectorEvent::Message(message), &mut stop)
            .await
        {
            return Err(SimError::NotOnline(device_id));
        }
        self.count(|stats| stats.inbound += 1);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_a_16_by_16_png() {
        assert_eq!(&PHOTO_PNG[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&PHOTO_PNG[12..16], b"IHDR");
        assert_eq!(&PHOTO_PNG[16..24], &[0, 0, 0, 16, 0, 0, 0, 16]);
        assert_eq!(
            &PHOTO_PNG[PHOTO_PNG.len() - 8..PHOTO_PNG.len() - 4],
            b"IEND"
        );
    }

    #[test]
    fn chance_is_never_at_zero_and_always_at_one() {
        let mut rng = rand::rng();
        assert!((0..1000).all(|_| !chance(&mut rng, 0.0)));
        assert!((0..1000).all(|_| chance(&mut rng, 1.0)));
        assert!(!chance(&mut rng, f64::NAN));
    }

    #[test]
    fn contact_messages_come_from_the_contact() {
        let message = contact_message("60123456789", Some("hi".into()), None);
        assert_eq!(message.chat, "60123456789@s.whatsapp.net");
        assert_eq!(message.sender, message.chat);
        assert!(!message.from_me);
        assert!(message.id.starts_with("3EB0") && message.id.len() == 20);
        assert_eq!(message.push_name.as_deref(), Some("Contact 6789"));
    }
}
