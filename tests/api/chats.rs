//! Chat mirroring on both backends: inbound and outbound messages through the REST API and the
//! `messages/<device>` WebSocket topic, idempotent replays, unread counts, the activity window,
//! search and gap-free pagination.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wafleet::chat::store::{self, ChatWrite, NewMessage};

use crate::helpers::TestApp;

/// Quick receipts and no random replies.
const CHAT_SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__DELIVERED_AFTER_MS", "20"),
    ("WAFLEET__SIM__READ_AFTER_MS", "20"),
];

/// A history sync of four recent chats (and one older than 30 days) on pairing,
/// every contact addressed by LID (the phone as alternate).
const HISTORY_SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__HISTORY_CHATS", "4"),
    ("WAFLEET__SIM__LID_PROBABILITY", "1"),
];

crate::both_backends!(with super::HISTORY_SIM; a_newly_paired_device_shows_its_history);

crate::both_backends!(with super::CHAT_SIM;
    images_are_prepared_sent_and_served,
    inbound_and_outbound_messages_flow,
    replays_store_one_row_and_the_window_applies,
    pagination_has_no_gaps_or_repeats_under_inserts,
    a_batch_of_many_chats_is_filed_like_one_message_at_a_time,
    receipts_of_many_devices_move_only_their_own_messages,
);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(ws: &mut Ws, event: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["event"] == event {
                    return value;
                }
            }
        }
        panic!("stream ended")
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} frame"))
}

async fn inbound_and_outbound_messages_flow(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let token: Value = admin
        .post("/api/v1/tokens", &json!({"name": "ws", "scopes": ["read"]}))
        .await
        .json()
        .await
        .unwrap();
    let mut request = app
        .address
        .replace("http://", "ws://")
        .add_path("/api/v1/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token["token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let subscribe = json!({"op": "subscribe", "topics": [format!("messages/{device}")]});
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    next_frame(&mut ws, "SUBSCRIBED").await;

    let sim = app.state.fleet.sim.clone().unwrap();
    let wa_id = sim
        .deliver_inbound(device, "60198765432", "Hi, is this in stock?")
        .await
        .unwrap();
    let frame = next_frame(&mut ws, "NEW_MESSAGE").await;
    assert_eq!(frame["topic"], format!("messages/{device}"));
    assert_eq!(frame["data"]["id"], wa_id.as_str());
    assert_eq!(frame["data"]["text"], "Hi, is this in stock?");
    assert_eq!(frame["data"]["from_me"], false);
    // Published after commit: the REST API already has it.
    let chats: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chats[0]["jid"], "60198765432@s.whatsapp.net");
    assert_eq!(chats[0]["phone"], "60198765432");
    assert_eq!(chats[0]["unread_count"], 1);
    assert_eq!(chats[0]["last_message"], "Hi, is this in stock?");
    assert!(
        chats[0]["time_label"].as_str().unwrap().contains(':'),
        "today shows a time"
    );
    let updated = next_frame(&mut ws, "CHAT_UPDATED").await;
    assert_eq!(updated["data"]["unread_count"], 1);

    let jid = "60198765432@s.whatsapp.net";
    let read: Value = admin
        .post(
            &format!("/api/v1/devices/{device}/chats/{jid}/read"),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["unread_count"], 0);

    let sent = admin
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": "+60 19-876 5432", "text": "Yes, 3 left"}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    let sent: Value = sent.json().await.unwrap();
    let mine = next_frame(&mut ws, "NEW_MESSAGE").await;
    assert_eq!(mine["data"]["id"], sent["id"]);
    assert_eq!(mine["data"]["from_me"], true);
    assert_eq!(mine["data"]["status"], "sent");
    let ack = next_frame(&mut ws, "MESSAGE_ACK").await;
    assert_eq!(ack["data"]["ids"][0], sent["id"]);
    let page: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats/{jid}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], sent["id"], "newest first");
    assert!(page["next_before"].is_null());
    crate::helpers::wait_until("the read tick", Duration::from_secs(10), || async {
        let page: Value = admin
            .get(&format!("/api/v1/devices/{device}/chats/{jid}/messages"))
            .await
            .json()
            .await
            .unwrap();
        (page["items"][0]["status"] == "read").then_some(())
    })
    .await;

    let empty = admin
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": "60198765432", "text": "  "}),
        )
        .await;
    assert_eq!(empty.status(), 400);
    let bad_to = admin
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": "12", "text": "x"}),
        )
        .await;
    assert_eq!(bad_to.status(), 400);
    let found: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats?q=STOCK"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "search finds message text"
    );
    let none: Value = admin
        .get(&format!(
            "/api/v1/devices/{device}/chats?q=nothing-like-this"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert!(none.as_array().unwrap().is_empty());
}

trait AddPath {
    fn add_path(self, path: &str) -> String;
}

impl AddPath for String {
    fn add_path(self, path: &str) -> String {
        format!("{self}{path}")
    }
}

fn inbound(
    tenant_id: i64,
    device_id: i64,
    wa_id: &str,
    from: &str,
    text: &str,
    days_ago: i64,
) -> ChatWrite {
    let at = (Utc::now() - chrono::Duration::days(days_ago)).naive_utc();
    ChatWrite::Message {
        chat_jid: format!("{from}@s.whatsapp.net"),
        learned: Vec::new(),
        chat_name: Some(format!("Lead {from}")),
        unread: true,
        media: None,
        row: Box::new(NewMessage {
            tenant_id,
            device_id,
            chat_id: 0,
            wa_id: wa_id.to_string(),
            sender_jid: format!("{from}@s.whatsapp.net"),
            sender_name: None,
            from_me: false,
            body: Some(text.to_string()),
            media_mime: None,
            media_size: None,
            media_sha256: None,
            status: "received".into(),
            sent_at: at,
            created_at: at,
            kind: "text".into(),
            file_name: None,
            detail: None,
            quoted_id: None,
            quoted_sender: None,
            quoted_text: None,
            media_ref: None,
        }),
    }
}

async fn replays_store_one_row_and_the_window_applies(app: TestApp) {
    let admin = app.admin().await;
    let device = wafleet::device::store::insert_device(&app.db, admin.tenant_id, "d")
        .await
        .unwrap();
    let first = store::write_batch(
        &app.db,
        vec![inbound(
            admin.tenant_id,
            device.id,
            "A1",
            "60111",
            "hello",
            0,
        )],
    )
    .await
    .unwrap();
    assert_eq!(first.stored.len(), 1);
    let replay = store::write_batch(
        &app.db,
        vec![
            inbound(admin.tenant_id, device.id, "A1", "60111", "hello", 0),
            inbound(admin.tenant_id, device.id, "A1", "60111", "hello", 0),
        ],
    )
    .await
    .unwrap();
    assert!(replay.stored.is_empty(), "a replayed id stores nothing");
    let chats: Value = admin
        .get(&format!("/api/v1/devices/{}/chats", device.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        chats[0]["unread_count"], 1,
        "a replay does not count as unread"
    );

    store::write_batch(
        &app.db,
        vec![inbound(
            admin.tenant_id,
            device.id,
            "OLD",
            "60222",
            "long ago",
            40,
        )],
    )
    .await
    .unwrap();
    let recent: Value = admin
        .get(&format!("/api/v1/devices/{}/chats", device.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        recent.as_array().unwrap().len(),
        1,
        "40-day-old chat outside the 30-day window"
    );
    let wider: Value = admin
        .get(&format!("/api/v1/devices/{}/chats?days=60", device.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wider.as_array().unwrap().len(), 2);
    assert_eq!(
        wider[1]["time_label"]
            .as_str()
            .unwrap()
            .matches('/')
            .count(),
        2,
        "old chats show a date"
    );
    let by_name: Value = admin
        .get(&format!(
            "/api/v1/devices/{}/chats?q=lead%2060111",
            device.id
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_name.as_array().unwrap().len(), 1);
}

async fn pagination_has_no_gaps_or_repeats_under_inserts(app: TestApp) {
    let admin = app.admin().await;
    let device = wafleet::device::store::insert_device(&app.db, admin.tenant_id, "d")
        .await
        .unwrap();
    let mut expected = HashSet::new();
    let writes: Vec<ChatWrite> = (0..120)
        .map(|n| {
            expected.insert(format!("M{n:03}"));
            inbound(
                admin.tenant_id,
                device.id,
                &format!("M{n:03}"),
                "60333",
                &format!("m{n}"),
                0,
            )
        })
        .collect();
    store::write_batch(&app.db, writes).await.unwrap();
    let jid = "60333@s.whatsapp.net";
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        // Newer messages keep arriving while the client pages back.
        extra += 1;
        store::write_batch(
            &app.db,
            vec![inbound(
                admin.tenant_id,
                device.id,
                &format!("NEW{extra}"),
                "60333",
                "new",
                0,
            )],
        )
        .await
        .unwrap();
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/devices/{}/chats/{jid}/messages?limit=25&before={c}",
                device.id
            ),
            None => format!(
                "/api/v1/devices/{}/chats/{jid}/messages?limit=25",
                device.id
            ),
        };
        let page: Value = admin.get(&path).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_before"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    assert!(expected.is_subset(&unique), "no gaps");
    let bad = admin
        .get(&format!(
            "/api/v1/devices/{}/chats/{jid}/messages?before=zzz",
            device.id
        ))
        .await;
    assert_eq!(bad.status(), 400);
}

/// A noisy 2000 × 1500 PNG (noise does not compress, so the size limit is exercised).
pub(crate) fn big_png() -> Vec<u8> {
    let mut seed: u32 = 7;
    let picture = image::ImageBuffer::from_fn(2000, 1500, |_, _| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        image::Rgb([(seed >> 16) as u8, (seed >> 8) as u8, seed as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn images_are_prepared_sent_and_served(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let png = big_png();
    assert!(png.len() > 350 * 1024);
    let form = reqwest::multipart::Form::new()
        .text("to", "60198765432")
        .text("caption", "Our new catalogue")
        .part(
            "image",
            reqwest::multipart::Part::bytes(png).file_name("catalogue.png"),
        );
    let sent = admin
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{device}/messages"),
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{}", sent.text().await.unwrap());
    let jid = "60198765432@s.whatsapp.net";
    let message = crate::helpers::wait_until(
        "the picture to be stored",
        Duration::from_secs(10),
        || async {
            let page: Value = admin
                .get(&format!("/api/v1/devices/{device}/chats/{jid}/messages"))
                .await
                .json()
                .await
                .unwrap();
            page["items"]
                .as_array()
                .and_then(|items| items.first().cloned())
        },
    )
    .await;
    assert_eq!(message["text"], "Our new catalogue");
    assert_eq!(message["media"]["mime"], "image/jpeg");
    assert!(message["media"]["size"].as_i64().unwrap() <= 350 * 1024);
    let url = message["media"]["url"].as_str().unwrap().to_string();
    let file = admin.get(&url).await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    let bytes = file.bytes().await.unwrap();
    assert!(bytes.len() <= 350 * 1024);
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!(
        decoded.width() * 3,
        decoded.height() * 4,
        "aspect ratio kept"
    );
    let stats = app.state.fleet.sim.clone().unwrap().stats();
    assert_eq!(stats.delivered, 1);

    // Another tenant cannot fetch it, even knowing the hash.
    let other = app.new_tenant("Other").await;
    assert_eq!(other.get(&url).await.status(), 404);
    assert_eq!(
        admin
            .get("/api/v1/media/..%2F..%2Fetc%2Fpasswd")
            .await
            .status(),
        404
    );

    let not_image = reqwest::multipart::Form::new()
        .text("to", "60198765432")
        .part(
            "image",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 not a picture".to_vec()),
        );
    let refused = admin
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{device}/messages"),
        )
        .multipart(not_image)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_image"
    );
    let plain = admin
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{device}/messages"),
        )
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);

    // Six decompression bombs at once (10,000 × 5,000 16-bit pixels, 300 MB decoded, in 292 KB)
    // are refused from their headers, quickly, with a message that says why.
    let started = std::time::Instant::now();
    let bombs = (0..6).map(|_| {
        let form = reqwest::multipart::Form::new()
            .text("to", "60198765432")
            .part(
                "image",
                reqwest::multipart::Part::bytes(BOMB.to_vec()).file_name("bomb.png"),
            );
        admin
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/devices/{device}/messages"),
            )
            .multipart(form)
            .send()
    });
    for refused in futures::future::join_all(bombs).await {
        let refused = refused.unwrap();
        assert_eq!(refused.status(), 422);
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_image");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("287 MiB decoded; at most 64 MiB"),
            "{message}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// 10,000 × 5,000 pixels of 16-bit RGB, all black, compressed to 292 KB.
const BOMB: &[u8] = include_bytes!("../fixtures/bomb-10000x5000-rgb16.png");

/// A newly paired device's history sync fills its 30-day chat list: every recent chat with its
/// three messages (ours among them), read already, LID contacts under their phone; the chat
/// older than the window is stored but not listed.
async fn a_newly_paired_device_shows_its_history(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "history").await;
    let chats = crate::helpers::wait_until(
        "the history to be stored",
        Duration::from_secs(20),
        || async {
            let list = admin.chats(device).await;
            (list.len() == 4).then_some(list)
        },
    )
    .await;
    let jids: Vec<&str> = chats.iter().map(|c| c["jid"].as_str().unwrap()).collect();
    assert_eq!(
        jids,
        (0..4)
            .map(|n| format!("60178{n:06}@s.whatsapp.net"))
            .collect::<Vec<_>>(),
        "most recent first, every contact under their phone"
    );
    for chat in &chats {
        assert_eq!(chat["unread_count"], 0, "history is read already: {chat}");
        assert_eq!(chat["last_message"], "Great, thanks!");
        let jid = chat["jid"].as_str().unwrap();
        let items = admin.chat_messages(device, jid).await;
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items.iter().filter(|m| m["from_me"] == true).count(), 1);
        assert!(items
            .iter()
            .filter(|m| m["from_me"] == false)
            .all(|m| m["sender"] == jid));
    }
    // The older chat is there, outside the default window.
    let wider: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats?days=60"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wider.as_array().unwrap().len(), 5);
    assert_eq!(wider[4]["jid"], "60178000004@s.whatsapp.net");
}

/// `inbound` at `seconds_ago`, or sent by the device (no chat name, not unread) when `from_me`.
fn message_at(
    tenant_id: i64,
    device_id: i64,
    wa_id: &str,
    contact: &str,
    seconds_ago: i64,
    from_me: bool,
) -> ChatWrite {
    let mut write = inbound(
        tenant_id,
        device_id,
        wa_id,
        contact,
        &wa_id.to_lowercase(),
        0,
    );
    if let ChatWrite::Message {
        row,
        unread,
        chat_name,
        ..
    } = &mut write
    {
        row.sent_at = (Utc::now() - chrono::Duration::seconds(seconds_ago)).naive_utc();
        if from_me {
            row.from_me = true;
            row.status = "sent".into();
            row.sender_jid = "60999@s.whatsapp.net".into();
            *unread = false;
            *chat_name = None;
        }
    }
    write
}

async fn a_batch_of_many_chats_is_filed_like_one_message_at_a_time(app: TestApp) {
    let admin = app.admin().await;
    let tenant = admin.tenant_id;
    let device = wafleet::device::store::insert_device(&app.db, tenant, "d")
        .await
        .unwrap();
    // Chat 60444 across the batch (more than one statement's worth of messages): its newest
    // message comes first, an older one later, the device's own reply last; a replay of the
    // first in between. 300 other chats get one or two messages each, the second older.
    let mut writes = vec![message_at(tenant, device.id, "X1", "60444", 10, false)];
    for n in 0..300 {
        writes.push(message_at(
            tenant,
            device.id,
            &format!("C{n}A"),
            &format!("61{n:03}"),
            40,
            false,
        ));
    }
    writes.push(message_at(tenant, device.id, "X1", "60444", 10, false));
    writes.push(message_at(tenant, device.id, "X2", "60444", 30, false));
    for n in (0..300).step_by(3) {
        writes.push(message_at(
            tenant,
            device.id,
            &format!("C{n}B"),
            &format!("61{n:03}"),
            50,
            false,
        ));
    }
    writes.push(message_at(tenant, device.id, "X3", "60444", 20, true));
    let outcome = store::write_batch(&app.db, writes.clone()).await.unwrap();
    assert_eq!(
        outcome.stored.len(),
        3 + 300 + 100,
        "every id once, the replay left out"
    );
    let ids: HashSet<&str> = outcome
        .stored
        .iter()
        .map(|(m, _)| m.wa_id.as_str())
        .collect();
    assert_eq!(ids.len(), outcome.stored.len());
    let order: Vec<&str> = outcome
        .stored
        .iter()
        .map(|(m, _)| m.wa_id.as_str())
        .collect();
    assert_eq!(
        (order[0], order[1], order[301], order[402]),
        ("X1", "C0A", "X2", "X3"),
        "stored in the batch's order"
    );

    let chat = store::get_chat(&app.db, tenant, device.id, "60444@s.whatsapp.net")
        .await
        .unwrap();
    assert_eq!(
        chat.unread_count, 2,
        "two inbound messages, the replay not counted"
    );
    assert_eq!(
        chat.last_message_text.as_deref(),
        Some("x1"),
        "the newest message's preview"
    );
    assert_eq!(
        chat.name.as_deref(),
        Some("Lead 60444"),
        "the device's reply keeps the name"
    );
    for (message, after) in &outcome.stored {
        assert_eq!(message.chat_id, after.id);
        if message.wa_id.starts_with('X') {
            assert_eq!(
                after, &chat,
                "each message comes with its chat as the batch left it"
            );
        }
    }
    for n in 0..300 {
        let chat = store::get_chat(
            &app.db,
            tenant,
            device.id,
            &format!("61{n:03}@s.whatsapp.net"),
        )
        .await
        .unwrap();
        let expected = if n % 3 == 0 { 2 } else { 1 };
        assert_eq!(chat.unread_count, expected, "chat {n}");
        assert_eq!(
            chat.last_message_text,
            Some(format!("c{n}a")),
            "chat {n}: the newer one"
        );
    }

    let replayed = store::write_batch(&app.db, writes).await.unwrap();
    assert!(
        replayed.stored.is_empty(),
        "a replayed batch stores nothing"
    );
    let again = store::get_chat(&app.db, tenant, device.id, "60444@s.whatsapp.net")
        .await
        .unwrap();
    assert_eq!(again.unread_count, 2, "and counts nothing");
}

/// Receipts of several devices in one batch (one statement per status for all of them) move
/// each device's own messages one step each, in the order messages move whatever order they
/// came in, and never another device's message that has the same id.
async fn receipts_of_many_devices_move_only_their_own_messages(app: TestApp) {
    use wafleet::stats::store::{by_device, Scope};
    let admin = app.admin().await;
    let tenant = admin.tenant_id;
    let mut devices = Vec::new();
    for name in ["a", "b"] {
        let device = wafleet::device::store::insert_device(&app.db, tenant, name)
            .await
            .unwrap();
        devices.push(device.id);
    }
    let (a, b) = (devices[0], devices[1]);
    // Both devices sent a message with the same id, and two others each.
    let mut sent = Vec::new();
    for (device, ids) in [(a, ["SAME", "A1", "A2"]), (b, ["SAME", "B1", "B2"])] {
        for id in ids {
            sent.push(message_at(tenant, device, id, "60444", 10, true));
        }
    }
    store::write_batch(&app.db, sent).await.unwrap();
    let ack = |device_id, ids: &[&str], status| ChatWrite::Ack {
        device_id,
        wa_ids: ids.iter().map(|id| id.to_string()).collect(),
        status,
    };
    let receipts = vec![
        ack(a, &["A1"], "read"),
        ack(b, &["B1", "B1"], "read"),
        ack(a, &["A1", "SAME"], "delivered"),
        ack(b, &["B2"], "failed"),
        ack(a, &["A2", "NOPE"], "failed"),
        ack(b, &["NOPE"], "delivered"),
    ];
    let outcome = store::write_batch(&app.db, receipts.clone()).await.unwrap();
    let mut acks: Vec<(i64, Vec<String>, &str)> = outcome
        .acks
        .into_iter()
        .map(|(device, mut ids, status)| {
            ids.sort();
            (device, ids, status)
        })
        .collect();
    acks.sort_by_key(|(device, _, status)| (*device, *status));
    let strings = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        acks,
        [
            (a, strings(&["A1", "SAME"]), "delivered"),
            (a, strings(&["A2"]), "failed"),
            (a, strings(&["A1"]), "read"),
            (b, strings(&["B2"]), "failed"),
            (b, strings(&["B1"]), "read"),
        ]
    );
    let status_of = |device: i64, id: &'static str| {
        let db = app.db.clone();
        async move {
            let chat = store::get_chat(&db, tenant, device, "60444@s.whatsapp.net")
                .await
                .unwrap();
            store::get_message(&db, chat.id, id).await.unwrap().status
        }
    };
    for (device, id, status) in [
        (a, "A1", "read"),
        (a, "SAME", "delivered"),
        (a, "A2", "failed"),
        (b, "SAME", "sent"),
        (b, "B1", "read"),
        (b, "B2", "failed"),
    ] {
        assert_eq!(status_of(device, id).await, status, "{device} {id}");
    }
    // Each step counted once: a read receipt that came first still counts a delivery.
    let counts = || async {
        let now = Utc::now().naive_utc();
        let since = now - chrono::Duration::hours(1);
        let mut rows = by_device(&app.db, tenant, &Scope::Tenant, since, now)
            .await
            .unwrap();
        rows.sort_by_key(|row| row.device_id);
        rows.into_iter()
            .map(|row| {
                let t = row.tally;
                (row.device_id, [t.sent, t.delivered, t.read, t.failed])
            })
            .collect::<Vec<_>>()
    };
    let expected = vec![(a, [3, 2, 1, 1]), (b, [3, 1, 1, 1])];
    assert_eq!(counts().await, expected);
    // The same receipts again move nothing and count nothing.
    let again = store::write_batch(&app.db, receipts).await.unwrap();
    assert!(again.acks.is_empty(), "{:?}", again.acks);
    assert_eq!(counts().await, expected);
}
