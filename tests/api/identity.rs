//! One person, one chat, on both backends: contacts WhatsApp names by LID (`…@lid`) are filed
//! under their phone once it is known, a STOP from a LID opts the phone out, a LID chat merges
//! into the phone's chat the moment the phone is learned, and a LID with no known phone is never
//! taken for a number. Messages come through the simulator's `POST /api/v1/sim/inbound`.

use std::time::Duration;

use serde_json::{json, Value};
use wafleet::broadcast::leads::opt_out;

use crate::campaigns::{next_frame, subscribe};
use crate::helpers::{wait_until, TestApp, UserClient};

crate::both_backends!(
    a_stop_from_a_lid_opts_the_phone_out,
    one_person_has_one_chat_whether_named_by_phone_or_lid,
    simulated_inbound_messages_are_validated,
    a_nul_in_a_message_never_blocks_the_mirror,
);

/// How long a message may take to be mirrored.
const WAIT: Duration = Duration::from_secs(20);

/// Makes the contact at `from` write `text`, addressed `addressing`; returns the message id.
async fn write(
    admin: &UserClient,
    device: i64,
    from: &str,
    addressing: &str,
    text: &str,
) -> String {
    let sent = admin
        .post(
            "/api/v1/sim/inbound",
            &json!({"device_id": device, "from": from, "text": text, "addressing": addressing}),
        )
        .await;
    let status = sent.status();
    let body: Value = sent.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// The LID the simulator gives the contact at `phone`, read off a LID-only message's chat.
async fn lid_chat_of(admin: &UserClient, device: i64, wa_id: &str) -> Value {
    wait_until("the LID-only message to be stored", WAIT, || async {
        for chat in admin.chats(device).await {
            let jid = chat["jid"].as_str().unwrap().to_string();
            if admin
                .chat_messages(device, &jid)
                .await
                .iter()
                .any(|m| m["id"] == wa_id)
            {
                return Some(chat);
            }
        }
        None
    })
    .await
}

async fn a_stop_from_a_lid_opts_the_phone_out(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let tenant = admin.tenant_id;
    let opted_out = |phone: &'static str| {
        let db = app.db.clone();
        async move {
            let found = opt_out::opted_out(&db, tenant, &[phone.to_string()])
                .await
                .unwrap();
            found.contains(phone)
        }
    };
    // A LID whose phone nobody named: its STOP cannot name a number.
    write(&admin, device, "60198765431", "lid_hidden", "STOP").await;
    // The phone only as the alternate sender, as WhatsApp sends it.
    write(&admin, device, "60198765432", "lid", "STOP").await;
    wait_until(
        "the LID sender's phone on the opt-out list",
        WAIT,
        || async { opted_out("60198765432").await.then_some(()) },
    )
    .await;
    // Applied in order: the hidden one was handled before, and opted nobody out.
    assert!(!opted_out("60198765431").await);
    let lists: Value = admin.get("/api/v1/opt-outs").await.json().await.unwrap();
    let phones: Vec<&str> = lists["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["60198765432"], "no LID digits taken for a number");
}

async fn one_person_has_one_chat_whether_named_by_phone_or_lid(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let phone_jid = "60198765432@s.whatsapp.net";

    // First by phone, then by LID with the phone alongside: one chat, under the phone.
    write(&admin, device, "60198765432", "phone", "hello").await;
    write(&admin, device, "60198765432", "lid", "it's me again").await;
    let list = wait_until("both messages in one chat", WAIT, || async {
        let list = admin.chats(device).await;
        (list.len() == 1 && list[0]["unread_count"] == 2).then_some(list)
    })
    .await;
    assert_eq!(list[0]["jid"], phone_jid);
    assert_eq!(list[0]["phone"], "60198765432");
    assert_eq!(list[0]["last_message"], "it's me again");
    let stored = admin.chat_messages(device, phone_jid).await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|m| m["sender"] == phone_jid),
        "{stored:?}"
    );

    // Another contact writes by LID alone: an unknown number, in a chat of its own.
    let other_jid = "60198765433@s.whatsapp.net";
    let hidden = write(&admin, device, "60198765433", "lid_hidden", "guess who").await;
    let lid_chat = lid_chat_of(&admin, device, &hidden).await;
    let lid_jid = lid_chat["jid"].as_str().unwrap().to_string();
    assert!(lid_jid.ends_with("@lid"), "{lid_chat}");
    assert!(lid_chat["phone"].is_null(), "{lid_chat}");
    assert_eq!(admin.chats(device).await.len(), 2);

    // Once WhatsApp names the phone, the LID chat merges into the phone's: history, unread count
    // and preview kept, the LID chat gone, and pages are told so.
    let mut ws = subscribe(&app, &admin, &format!("messages/{device}")).await;
    write(
        &admin,
        device,
        "60198765433",
        "lid",
        "my number is on this one",
    )
    .await;
    let removed = loop {
        let frame = next_frame(&mut ws).await;
        if frame["event"] == "CHAT_REMOVED" {
            break frame;
        }
        assert_ne!(
            frame["event"], "NEW_MESSAGE",
            "the merge is announced first: {frame}"
        );
    };
    assert_eq!(removed["data"]["jid"], lid_jid.as_str());
    assert_eq!(removed["data"]["merged_into"], other_jid);
    let merged = wait_until("the LID chat to merge into the phone's", WAIT, || async {
        let list = admin.chats(device).await;
        let merged = list.iter().find(|c| c["jid"] == other_jid)?.clone();
        (list.len() == 2 && merged["unread_count"] == 2).then_some(merged)
    })
    .await;
    assert_eq!(merged["phone"], "60198765433");
    assert_eq!(merged["last_message"], "my number is on this one");
    assert!(admin
        .chats(device)
        .await
        .iter()
        .all(|c| c["jid"] != lid_jid.as_str()));
    let history = admin.chat_messages(device, other_jid).await;
    let ids: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(history.len(), 2);
    assert!(
        ids.contains(&hidden.as_str()),
        "the earlier LID message kept"
    );
    assert!(
        history.iter().all(|m| m["sender"] == other_jid),
        "{history:?}"
    );

    // Later messages by LID alone land in the phone's chat too.
    write(&admin, device, "60198765433", "lid_hidden", "and again").await;
    wait_until("the LID-only message in the phone's chat", WAIT, || async {
        (admin.chat_messages(device, other_jid).await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(admin.chats(device).await.len(), 2);
}

async fn simulated_inbound_messages_are_validated(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let post = |body: Value| {
        let admin = &admin;
        async move {
            let response = admin.post("/api/v1/sim/inbound", &body).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let base = json!({"device_id": device, "from": "60198765432", "text": "hi"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    assert_eq!(post(with("from", json!("bob"))).await.0, 422);
    assert_eq!(post(with("text", json!("  "))).await.0, 400);
    assert_eq!(post(with("text", json!("x".repeat(4097)))).await.0, 400);
    assert_eq!(post(with("addressing", json!("fax"))).await.0, 400);
    assert_eq!(post(with("device_id", json!(device + 1000))).await.0, 404);
    // Admins only: a tenant owner cannot make contacts write.
    let owner = app.new_tenant("Other").await;
    let refused = owner.post("/api/v1/sim/inbound", &base).await;
    assert_eq!(refused.status(), 403);
    assert!(
        admin.chats(device).await.is_empty(),
        "nothing was delivered"
    );
}

/// A message carrying NUL characters (PostgreSQL refuses them in text; WhatsApp carries them)
/// is stored without them, and the messages after it are stored too.
async fn a_nul_in_a_message_never_blocks_the_mirror(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let poisoned = write(&admin, device, "60198765432", "phone", "STOP\u{0}now").await;
    let after = write(&admin, device, "60198765432", "phone", "and this one").await;
    let jid = "60198765432@s.whatsapp.net";
    let stored = wait_until("both messages to be stored", WAIT, || async {
        let items = admin.chat_messages(device, jid).await;
        (items.len() == 2).then_some(items)
    })
    .await;
    let text_of = |id: &str| stored.iter().find(|m| m["id"] == id).unwrap()["text"].clone();
    assert_eq!(text_of(&poisoned), "STOPnow");
    assert_eq!(text_of(&after), "and this one");
}
