//! End-to-end behaviour of the simulator through the `Connector` and `Session` traits, as a
//! device actor sees it: events are awaited from the channel with a timeout, never slept for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::*;
use crate::config::SimSettings;
use crate::whatsapp::{
    Connector, ConnectorError, ConnectorEvent, Media, OutgoingMedia, Receipt, ReceiptKind, Session,
    SessionRequest, WaMessage, EVENT_CHANNEL_CAPACITY,
};

/// Longest wait for an expected event.
const PATIENCE: Duration = Duration::from_secs(3);

/// Fast, quiet settings: no rotation, no auto-scan, no replies, no pacing rules.
fn settings() -> SimSettings {
    SimSettings {
        reply_probability: 0.0,
        reply_delay_ms: 20,
        image_reply_probability: 0.0,
        lid_probability: 0.0,
        auto_scan_after_ms: 0,
        qr_rotate_ms: 0,
        delivered_after_ms: 5,
        read_after_ms: 5,
        min_send_gap_ms: 0,
        max_sends_per_minute: 0,
        max_sends_per_day: 0,
        time_scale: 1.0,
        demo_devices: 0,
        chatter_interval_ms: 0,
        history_chats: 0,
        groups: 0,
        remote: String::new(),
    }
}

/// A network with `settings()` changed by `tweak`.
fn network(tweak: impl FnOnce(&mut SimSettings)) -> SimNetwork {
    let mut settings = settings();
    tweak(&mut settings);
    SimNetwork::new(settings)
}

type Events = mpsc::Receiver<ConnectorEvent>;

async fn connect(
    network: &SimNetwork,
    device_id: i64,
    jid: Option<&str>,
) -> Result<(Box<dyn Session>, Events), ConnectorError> {
    let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let request = SessionRequest {
        device_id,
        jid: jid.map(str::to_owned),
        fence: None,
    };
    let session = SimConnector::new(network.clone())
        .connect(request, tx)
        .await?;
    Ok((session, rx))
}

async fn next(events: &mut Events) -> ConnectorEvent {
    match timeout(PATIENCE, events.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

/// Waits for the stream to end, failing on any further event.
async fn assert_ended(events: &mut Events) {
    match timeout(PATIENCE, events.recv()).await {
        Ok(None) => {}
        Ok(Some(event)) => panic!("expected the end of the stream, got {event:?}"),
        Err(_) => panic!("the stream did not end within {PATIENCE:?}"),
    }
}

/// Asserts that nothing arrives for `quiet` (used only to show something does not happen).
async fn assert_quiet(events: &mut Events, quiet: Duration) {
    if let Ok(Some(event)) = timeout(quiet, events.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

async fn next_qr(events: &mut Events) -> String {
    match next(events).await {
        ConnectorEvent::Qr { code } => code,
        other => panic!("expected a QR, got {other:?}"),
    }
}

async fn next_connected(events: &mut Events) -> (String, Option<String>) {
    match next(events).await {
        ConnectorEvent::Connected { jid, push_name } => (jid, push_name),
        other => panic!("expected Connected, got {other:?}"),
    }
}

async fn next_receipt(events: &mut Events) -> Receipt {
    match next(events).await {
        ConnectorEvent::Receipt(receipt) => receipt,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

async fn next_message(events: &mut Events) -> WaMessage {
    match next(events).await {
        ConnectorEvent::Message(message) => *message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Connects a new device and scans its QR: an online session and its JID.
async fn paired(network: &SimNetwork, device_id: i64) -> (Box<dyn Session>, Events, String) {
    let (session, mut events) = connect(network, device_id, None).await.unwrap();
    next_qr(&mut events).await;
    let jid = network.scan(device_id).await.unwrap();
    assert_eq!(next_connected(&mut events).await.0, jid);
    (session, events, jid)
}

#[tokio::test]
async fn the_connector_is_called_sim() {
    assert_eq!(SimConnector::new(network(|_| {})).name(), "sim");
}

#[tokio::test]
async fn a_new_device_gets_a_qr_that_rotates_until_scanned() {
    let network = network(|s| s.qr_rotate_ms = 20);
    let (_session, mut events) = connect(&network, 1, None).await.unwrap();
    let first = next_qr(&mut events).await;
    let second = next_qr(&mut events).await;
    let third = next_qr(&mut events).await;
    assert!(first.starts_with("2@") && first.split(',').count() == 4);
    assert!(first != second && second != third);
    // Same keys, new server ref, like WhatsApp.
    let keys = |qr: &str| qr.split_once(',').map(|(_, keys)| keys.to_owned());
    assert_eq!(keys(&first), keys(&third));
    assert_eq!(network.stats().pairing, 1);

    let jid = network.scan(1).await.unwrap();
    // Rotations already in the channel may precede it; none may follow it.
    loop {
        match next(&mut events).await {
            ConnectorEvent::Qr { .. } => continue,
            ConnectorEvent::Connected { jid: connected, .. } => {
                assert_eq!(connected, jid);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_quiet(&mut events, Duration::from_millis(80)).await;
}

#[tokio::test]
async fn a_scan_links_an_account_and_connects() {
    let network = network(|_| {});
    let (session, mut events) = connect(&network, 7, None).await.unwrap();
    next_qr(&mut events).await;
    let jid = network.scan(7).await.unwrap();
    assert!(
        jid.starts_with("601") && jid.ends_with(":1@s.whatsapp.net"),
        "{jid}"
    );
    let (connected, push_name) = next_connected(&mut events).await;
    assert_eq!(connected, jid);
    assert!(push_name.is_some_and(|name| name.starts_with("Sim ")));
    assert_eq!(network.online_jid(7), Some(jid));
    let stats = network.stats();
    assert_eq!((stats.online, stats.pairing, stats.accounts), (1, 0, 1));
    assert_eq!(network.scan(7).await, Err(SimError::NoPairing(7)));
    assert_eq!(network.scan(8).await, Err(SimError::NoPairing(8)));
    drop(session);
}

#[tokio::test]
async fn every_scan_gets_its_own_number() {
    let network = network(|_| {});
    let (_a, _ea, first) = paired(&network, 1).await;
    let (_b, _eb, second) = paired(&network, 2).await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn demo_mode_scans_by_itself() {
    let network = network(|s| {
        s.qr_rotate_ms = 10;
        s.auto_scan_after_ms = 60;
    });
    let (_session, mut events) = connect(&network, 3, None).await.unwrap();
    let jid = loop {
        match next(&mut events).await {
            ConnectorEvent::Qr { .. } => continue,
            ConnectorEvent::Connected { jid, .. } => break jid,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(network.online_jid(3), Some(jid));
    // The pairing timer ended with the pairing: no more QRs.
    assert_quiet(&mut events, Duration::from_millis(60)).await;
}

#[tokio::test]
async fn a_reconnect_with_the_jid_logs_in_without_a_qr() {
    let network = network(|_| {});
    let (session, mut events, jid) = paired(&network, 1).await;
    session.disconnect().await;
    session.disconnect().await; // idempotent
    assert_ended(&mut events).await;
    assert_eq!(network.stats().online, 0);

    let (_session, mut events) = connect(&network, 1, Some(&jid)).await.unwrap();
    let (connected, push_name) = next_connected(&mut events).await;
    assert_eq!(connected, jid);
    assert!(push_name.is_some());
}

#[tokio::test]
async fn credentials_of_another_device_start_a_pairing() {
    let network = network(|_| {});
    let (_session, _events, jid) = paired(&network, 1).await;
    let (_other, mut events) = connect(&network, 2, Some(&jid)).await.unwrap();
    next_qr(&mut events).await;
}

#[tokio::test]
async fn a_newer_connect_replaces_the_session() {
    let network = network(|_| {});
    let (old, mut old_events, jid) = paired(&network, 1).await;
    let (new, mut new_events) = connect(&network, 1, Some(&jid)).await.unwrap();
    next_connected(&mut new_events).await;
    assert!(matches!(
        next(&mut old_events).await,
        ConnectorEvent::Disconnected { .. }
    ));
    assert_ended(&mut old_events).await;
    assert_eq!(
        old.send_text("60123456789", "m-old", "hi").await,
        Err(ConnectorError::NotConnected)
    );
    // Dropping the stale session leaves the new one alone.
    drop(old);
    new.send_text("60123456789", "m-new", "hi").await.unwrap();
}

#[tokio::test]
async fn a_session_replaced_by_another_daemon_counts_as_a_double_session() {
    let network = network(|_| {});
    let (_old, _old_events, jid) = paired(&network, 1).await;
    let open = |client: &str| {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let request = SessionRequest {
            device_id: 1,
            jid: Some(jid.clone()),
            fence: None,
        };
        let connector = SimConnector::new(network.clone()).for_client(Some(client.into()));
        async move { (connector.connect(request, tx).await.unwrap(), rx) }
    };
    // Unnamed sessions (one daemon in process) and a daemon's own reconnect are no violation.
    let (_a, mut a_events) = open("node-a").await;
    next_connected(&mut a_events).await;
    let (_a2, mut a2_events) = open("node-a").await;
    next_connected(&mut a2_events).await;
    assert_eq!(network.stats().double_sessions, 0);
    let (_b, mut b_events) = open("node-b").await;
    next_connected(&mut b_events).await;
    assert_eq!(network.stats().double_sessions, 1);
}

#[tokio::test]
async fn pairing_by_code_links_the_given_number() {
    let network = network(|s| s.qr_rotate_ms = 15);
    let (session, mut events) = connect(&network, 4, None).await.unwrap();
    next_qr(&mut events).await;
    assert!(matches!(
        session.request_pair_code("12-34").await,
        Err(ConnectorError::InvalidRecipient(_))
    ));
    let code = session.request_pair_code("+60123456789").await.unwrap();
    assert_eq!(code.len(), 8);
    loop {
        match next(&mut events).await {
            ConnectorEvent::Qr { .. } => continue,
            ConnectorEvent::PairCode { code: shown } => {
                assert_eq!(shown, code);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A code pairing does not rotate QRs.
    assert_quiet(&mut events, Duration::from_millis(50)).await;
    let jid = network.scan(4).await.unwrap();
    assert_eq!(jid, "60123456789:1@s.whatsapp.net");
    assert_eq!(next_connected(&mut events).await.0, jid);
    assert!(matches!(
        session.request_pair_code("60123456789").await,
        Err(ConnectorError::Other(_))
    ));
}

#[tokio::test]
async fn nothing_can_be_sent_before_pairing() {
    let network = network(|_| {});
    let (session, mut events) = connect(&network, 1, None).await.unwrap();
    next_qr(&mut events).await;
    let not_connected = Err(ConnectorError::NotConnected);
    assert_eq!(
        session.send_text("60123456789", "m1", "hi").await,
        not_connected
    );
    assert_eq!(session.set_typing("60123456789", true).await, not_connected);
    assert_eq!(session.mark_read("60123456789", &[]).await, not_connected);
    assert_eq!(network.stats().delivered, 0);
}

#[tokio::test]
async fn receipts_come_delivered_then_read() {
    let network = network(|_| {});
    let (session, mut events, _) = paired(&network, 1).await;
    session
        .send_text("+60123456789", "m1", "hello")
        .await
        .unwrap();
    let delivered = next_receipt(&mut events).await;
    let read = next_receipt(&mut events).await;
    assert_eq!(delivered.kind, ReceiptKind::Delivered);
    assert_eq!(read.kind, ReceiptKind::Read);
    for receipt in [&delivered, &read] {
        assert_eq!(receipt.chat, "60123456789@s.whatsapp.net");
        assert_eq!(receipt.message_ids, ["m1"]);
    }
    assert!(delivered.timestamp <= read.timestamp);
    assert_eq!(network.stats().delivered, 1);
}

#[tokio::test]
async fn a_resend_with_the_same_id_is_counted_not_delivered() {
    let network = network(|_| {});
    let (session, mut events, _) = paired(&network, 1).await;
    session
        .send_text("60123456789", "m1", "hello")
        .await
        .unwrap();
    session
        .send_text("60123456789", "m1", "hello")
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut events).await.kind, ReceiptKind::Delivered);
    assert_eq!(next_receipt(&mut events).await.kind, ReceiptKind::Read);
    assert_quiet(&mut events, Duration::from_millis(60)).await;
    let stats = network.stats();
    assert_eq!((stats.delivered, stats.duplicates), (1, 1));
    assert_eq!(network.send_attempts("m1"), 2);
    assert_eq!(network.send_attempts("m2"), 0);
    assert!(network.delivered_ids().contains("m1"));

    // Deduplication is network-wide: another device reusing the id is refused too.
    let (other, _other_events, _) = paired(&network, 2).await;
    other.send_text("60123456789", "m1", "hello").await.unwrap();
    assert_eq!(network.stats().duplicates, 2);
}

#[tokio::test]
async fn bad_recipients_and_empty_images_are_refused() {
    let network = network(|_| {});
    let (session, _events, _) = paired(&network, 1).await;
    for to in ["bob", "120363@g.us", "123"] {
        assert!(matches!(
            session.send_text(to, "m1", "hi").await,
            Err(ConnectorError::InvalidRecipient(_))
        ));
    }
    let empty = Media::bytes("image/png", Vec::new());
    assert!(matches!(
        session
            .send_media("60123456789", "m2", OutgoingMedia::image(empty, None))
            .await,
        Err(ConnectorError::Other(_))
    ));
    assert_eq!(network.stats().delivered, 0);
}

#[tokio::test]
async fn images_are_delivered_with_receipts() {
    let network = network(|_| {});
    let (session, mut events, _) = paired(&network, 1).await;
    let image = Media::bytes("image/jpeg", vec![0xff, 0xd8, 0xff]);
    session
        .send_media(
            "60123456789",
            "img1",
            OutgoingMedia::image(image, Some("look".into())),
        )
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut events).await.message_ids, ["img1"]);
}

#[tokio::test]
async fn sends_too_close_together_are_counted_as_violations() {
    // A 2 s gap at 10x is 200 ms: back-to-back sends fall inside it even on a loaded machine.
    let network = network(|s| {
        s.min_send_gap_ms = 2000;
        s.time_scale = 10.0;
    });
    let (session, _events, _) = paired(&network, 1).await;
    session.send_text("60123456789", "a1", "hi").await.unwrap();
    session.send_text("60123456789", "a2", "hi").await.unwrap();
    let stats = network.stats();
    assert_eq!((stats.delivered, stats.violations), (2, 1));
    assert_eq!(stats.min_gap_violations, 1);
}

#[tokio::test]
async fn well_spaced_sends_are_not_violations() {
    let network = network(|s| {
        s.min_send_gap_ms = 2000;
        s.time_scale = 100.0;
    });
    let (session, _events, _) = paired(&network, 1).await;
    for id in ["b1", "b2", "b3"] {
        let sent = Instant::now();
        session.send_text("60123456789", id, "hi").await.unwrap();
        // Time passing is what is under test here: wait out the scaled 20 ms gap.
        tokio::time::sleep_until(sent + Duration::from_millis(30)).await;
    }
    let stats = network.stats();
    assert_eq!((stats.delivered, stats.violations), (3, 0));
}

#[tokio::test]
async fn sends_over_the_minute_cap_are_counted_per_device() {
    let network = network(|s| s.max_sends_per_minute = 3);
    let (first, _e1, _) = paired(&network, 1).await;
    let (second, _e2, _) = paired(&network, 2).await;
    for n in 0..5 {
        first
            .send_text("60123456789", &format!("f{n}"), "hi")
            .await
            .unwrap();
    }
    for n in 0..3 {
        second
            .send_text("60123456789", &format!("s{n}"), "hi")
            .await
            .unwrap();
    }
    let stats = network.stats();
    assert_eq!((stats.delivered, stats.violations), (8, 2));
    assert_eq!(
        (stats.per_minute_violations, stats.per_day_violations),
        (2, 0)
    );
}

#[tokio::test]
async fn contacts_answer_with_text() {
    let network = network(|s| s.reply_probability = 1.0);
    let (session, mut events, _) = paired(&network, 1).await;
    session
        .send_text("60123456789", "m1", "hello")
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut events).await.kind, ReceiptKind::Delivered);
    assert_eq!(next_receipt(&mut events).await.kind, ReceiptKind::Read);
    let answer = next_message(&mut events).await;
    assert_eq!(answer.chat, "60123456789@s.whatsapp.net");
    assert!(!answer.from_me);
    assert!(answer.text.is_some_and(|text| !text.is_empty()));
    assert!(answer.media.is_none());
    assert_eq!(network.stats().inbound, 1);
}

#[tokio::test]
async fn contacts_answer_with_images() {
    let network = network(|s| {
        s.reply_probability = 1.0;
        s.image_reply_probability = 1.0;
    });
    let (session, mut events, _) = paired(&network, 1).await;
    session
        .send_text("60123456789", "m1", "hello")
        .await
        .unwrap();
    next_receipt(&mut events).await;
    next_receipt(&mut events).await;
    let media = next_message(&mut events).await.media.unwrap();
    assert_eq!(media.mime, "image/png");
    assert!(media.data.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[tokio::test]
async fn a_contact_can_write_first() {
    let network = network(|_| {});
    assert_eq!(
        network.deliver_inbound(1, "60123456789", "hi").await,
        Err(SimError::NotOnline(1))
    );
    let (_session, mut events, _) = paired(&network, 1).await;
    assert!(matches!(
        network.deliver_inbound(1, "nobody", "hi").await,
        Err(SimError::InvalidPhone(_))
    ));
    let id = network
        .deliver_inbound(1, "+60129998888", "STOP")
        .await
        .unwrap();
    let message = next_message(&mut events).await;
    assert_eq!(message.id, id);
    assert_eq!(message.sender, "60129998888@s.whatsapp.net");
    assert_eq!(message.text.as_deref(), Some("STOP"));
    assert_eq!(network.stats().inbound, 1);
}

#[tokio::test]
async fn lid_contacts_write_from_their_lid_and_can_be_answered_there() {
    let network = network(|s| s.lid_probability = 1.0);
    let (session, mut events, _) = paired(&network, 1).await;
    let hidden = SimInbound {
        from: "60129998888".into(),
        text: "guess who".into(),
        kind: crate::whatsapp::MessageKind::Text,
        addressing: Some(Addressing::LidHidden),
        ..SimInbound::default()
    };
    network.deliver(1, &hidden).await.unwrap();
    let message = next_message(&mut events).await;
    assert!(message.sender.ends_with("@lid"), "{}", message.sender);
    assert_eq!(message.chat, message.sender);
    assert_eq!(message.sender_alt, None);
    // The network's default for this contact (every contact here): the phone alongside.
    network
        .deliver_inbound(1, "60129998888", "hi")
        .await
        .unwrap();
    let again = next_message(&mut events).await;
    assert_eq!(again.sender, message.sender, "one LID per contact");
    assert_eq!(
        again.sender_alt.as_deref(),
        Some("60129998888@s.whatsapp.net")
    );
    // A LID chat can be answered; an unknown LID cannot.
    session
        .send_text(&message.chat, "3EB0ANSWER", "hello")
        .await
        .unwrap();
    assert_eq!(network.send_attempts("3EB0ANSWER"), 1);
    assert!(matches!(
        session
            .send_text("111111111111111@lid", "3EB0NOBODY", "hello")
            .await,
        Err(ConnectorError::InvalidRecipient(_))
    ));
}

#[tokio::test]
async fn demo_contacts_write_first_now_and_then() {
    let network = network(|s| s.chatter_interval_ms = 20);
    network.start_chatter();
    let (_session, mut events, _) = paired(&network, 1).await;
    for _ in 0..2 {
        let message = next_message(&mut events).await;
        assert!(!message.from_me);
        assert!(message.sender.starts_with("60177"), "{}", message.sender);
    }
    assert!(network.stats().inbound >= 2);
}

#[tokio::test]
async fn typing_and_read_marks_need_an_online_session() {
    let network = network(|_| {});
    let (session, _events, _) = paired(&network, 1).await;
    session.set_typing("60123456789", true).await.unwrap();
    session.set_typing("60123456789", false).await.unwrap();
    session
        .mark_read("60123456789@s.whatsapp.net", &["x".into()])
        .await
        .unwrap();
    assert!(matches!(
        session.mark_read("group@g.us", &[]).await,
        Err(ConnectorError::InvalidRecipient(_))
    ));
    assert_eq!(network.stats().typing_events, 2);
}

#[tokio::test]
async fn logout_forgets_the_account_and_ends_the_stream() {
    let network = network(|_| {});
    let (session, mut events, jid) = paired(&network, 1).await;
    session.logout().await.unwrap();
    assert_ended(&mut events).await;
    assert_eq!(network.stats().accounts, 0);
    assert_eq!(session.logout().await, Err(ConnectorError::NotConnected));
    let (_session, mut events) = connect(&network, 1, Some(&jid)).await.unwrap();
    next_qr(&mut events).await;
}

#[tokio::test]
async fn dropping_a_session_ends_its_stream_and_tasks() {
    let network = network(|s| {
        s.reply_probability = 1.0;
        s.reply_delay_ms = 60_000;
    });
    let (session, mut events, _) = paired(&network, 1).await;
    session.send_text("60123456789", "m1", "hi").await.unwrap();
    drop(session);
    // The pending receipts and answer are cancelled, so the sender goes at once.
    assert_ended(&mut events).await;
    assert_eq!(network.stats().online, 0);
}

#[tokio::test]
async fn fault_disconnect_drops_the_connection_but_keeps_the_account() {
    let network = network(|_| {});
    assert_eq!(
        network.inject(1, Fault::Disconnect).await,
        Err(SimError::NoSession(1))
    );
    let (session, mut events, jid) = paired(&network, 1).await;
    network.inject(1, Fault::Disconnect).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        ConnectorEvent::Disconnected { .. }
    ));
    assert_ended(&mut events).await;
    assert_eq!(
        session.send_text("60123456789", "m1", "hi").await,
        Err(ConnectorError::NotConnected)
    );
    let (_session, mut events) = connect(&network, 1, Some(&jid)).await.unwrap();
    assert_eq!(next_connected(&mut events).await.0, jid);
}

#[tokio::test]
async fn fault_logout_unlinks_the_device() {
    let network = network(|_| {});
    assert_eq!(
        network.inject(1, Fault::Logout).await,
        Err(SimError::NoAccount(1))
    );
    let (_session, mut events, jid) = paired(&network, 1).await;
    network.inject(1, Fault::Logout).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        ConnectorEvent::LoggedOut { .. }
    ));
    assert_ended(&mut events).await;
    let (_session, mut events) = connect(&network, 1, Some(&jid)).await.unwrap();
    next_qr(&mut events).await;
}

#[tokio::test]
async fn fault_ban_bans_the_number_for_good() {
    let network = network(|_| {});
    let (_session, mut events, jid) = paired(&network, 1).await;
    network.inject(1, Fault::Ban).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        ConnectorEvent::Banned { .. }
    ));
    assert_ended(&mut events).await;
    let (session, mut events) = connect(&network, 1, Some(&jid)).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        ConnectorEvent::Banned { .. }
    ));
    assert_ended(&mut events).await;
    assert_eq!(
        session.send_text("60123456789", "m1", "hi").await,
        Err(ConnectorError::NotConnected)
    );
}

#[tokio::test]
async fn fault_latency_delays_sends() {
    let network = network(|_| {});
    let (session, _events, _) = paired(&network, 1).await;
    network.inject(1, Fault::Latency { ms: 120 }).await.unwrap();
    let started = Instant::now();
    session.send_text("60123456789", "m1", "hi").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(120));
    network.inject(1, Fault::Latency { ms: 0 }).await.unwrap();
    let started = Instant::now();
    session.send_text("60123456789", "m2", "hi").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(120));
}

#[tokio::test]
async fn fault_refuse_connect_fails_the_next_connects() {
    let network = network(|_| {});
    network
        .inject(1, Fault::RefuseConnect { times: 2 })
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            connect(&network, 1, None).await,
            Err(ConnectorError::ConnectFailed(_))
        ));
    }
    let (_session, mut events) = connect(&network, 1, None).await.unwrap();
    next_qr(&mut events).await;
    assert_eq!(network.stats().refused_connects, 2);
}

#[tokio::test]
async fn fault_rate_limit_refuses_the_next_sends() {
    let network = network(|_| {});
    let (session, _events, _) = paired(&network, 1).await;
    let fault = Fault::RateLimit {
        sends: 1,
        retry_after_ms: 500,
    };
    network.inject(1, fault).await.unwrap();
    assert_eq!(
        session.send_text("60123456789", "m1", "hi").await,
        Err(ConnectorError::RateLimited {
            retry_after_ms: 500
        })
    );
    session.send_text("60123456789", "m1", "hi").await.unwrap();
    let stats = network.stats();
    assert_eq!(
        (stats.rate_limited, stats.delivered, stats.duplicates),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn stats_serialize_for_the_api() {
    let json = serde_json::to_value(network(|_| {}).stats()).unwrap();
    for key in ["delivered", "duplicates", "violations"] {
        assert_eq!(json[key], 0, "{key}");
    }
}

#[tokio::test]
async fn three_thousand_devices_fit_in_one_network() {
    let network = network(|_| {});
    let mut fleet = Vec::new();
    for device_id in 0..3000 {
        let (session, mut events) = connect(&network, device_id, None).await.unwrap();
        next_qr(&mut events).await;
        network.scan(device_id).await.unwrap();
        next_connected(&mut events).await;
        let id = format!("fleet-{device_id}");
        session.send_text("60123456789", &id, "hi").await.unwrap();
        fleet.push((session, events));
    }
    let stats = network.stats();
    assert_eq!(
        (stats.online, stats.accounts, stats.delivered),
        (3000, 3000, 3000)
    );
    for (_, events) in &mut fleet {
        assert_eq!(next_receipt(events).await.kind, ReceiptKind::Delivered);
    }
    drop(fleet);
    assert_eq!(network.stats().online, 0);
}
