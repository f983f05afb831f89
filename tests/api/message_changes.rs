//! Replies, reactions, edits and deletions, and groups, on both backends, through the
//! simulator's `POST /api/v1/sim/inbound`: a reply keeps what it quotes, a reaction shows on its
//! message (one per person), only the author edits or deletes, a deletion wipes the content and
//! the chat preview; a device lists its groups, a group chat keeps its own title and names each
//! message's sender, and the device can write in it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::campaigns::{next_frame, subscribe};
use crate::helpers::{wait_until, TestApp, UserClient};

crate::both_backends!(
    replies_reactions_edits_and_deletions_show_on_their_message,
    changes_are_validated,
);

crate::both_backends!(with &[("WAFLEET__SIM__GROUPS", "2")];
    groups_are_listed_titled_and_writable,
);

/// How long a message may take to be mirrored.
const WAIT: Duration = Duration::from_secs(20);

/// Posts an inbound message or change; returns its id.
async fn inbound(admin: &UserClient, body: Value) -> String {
    let sent = admin.post("/api/v1/sim/inbound", &body).await;
    let status = sent.status();
    let answer: Value = sent.json().await.unwrap();
    assert_eq!(status, 200, "{body} → {answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// The stored message `id` of a chat once `ready` holds for it.
async fn message_when(
    admin: &UserClient,
    device: i64,
    chat: &str,
    id: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, WAIT, || async {
        admin
            .chat_messages(device, chat)
            .await
            .into_iter()
            .find(|m| m["id"] == id && ready(m))
    })
    .await
}

async fn replies_reactions_edits_and_deletions_show_on_their_message(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "changes").await;
    let (phone, chat) = ("60198765432", "60198765432@s.whatsapp.net");
    let write = |extra: Value| {
        let mut body = json!({"device_id": device, "from": phone, "addressing": "phone"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        inbound(&admin, body)
    };
    let question = write(json!({"text": "Is the blue one in stock?"})).await;
    message_when(&admin, device, chat, &question, "the question", |_| true).await;
    let mut ws = subscribe(&app, &admin, &format!("messages/{device}")).await;

    // A reply that quotes without the text: the mirror fills it in from the original.
    let reply = write(json!({"text": "and in red?", "reply_to": question})).await;
    let stored = message_when(&admin, device, chat, &reply, "the reply", |_| true).await;
    assert_eq!(stored["quoted"]["id"], question.as_str());
    assert_eq!(stored["quoted"]["text"], "Is the blue one in stock?");

    // One reaction per person: a second one replaces the first, live and stored.
    write(json!({"target": question, "change": {"reaction": {"emoji": "👍"}}})).await;
    write(json!({"target": question, "change": {"reaction": {"emoji": "❤️"}}})).await;
    let reacted = message_when(
        &admin,
        device,
        chat,
        &question,
        "the second reaction",
        |m| m["reactions"][0]["emoji"] == "❤️",
    )
    .await;
    assert_eq!(
        reacted["reactions"],
        json!([{"emoji": "❤️", "sender": chat, "from_me": false}])
    );
    let updated = loop {
        let frame = next_frame(&mut ws).await;
        if frame["event"] == "MESSAGE_UPDATED" && frame["data"]["reactions"][0]["emoji"] == "❤️"
        {
            break frame;
        }
    };
    assert_eq!(updated["data"]["id"], question.as_str());

    // Someone else cannot edit or delete the reply; changes apply in order, so once the
    // author's reaction after them shows, the stranger's attempts were already turned down.
    let stranger = json!({"device_id": device, "from": "60111111111", "addressing": "phone"});
    for change in [json!({"edit": {"text": "hijacked"}}), json!("revoke")] {
        let mut body = stranger.clone();
        body["target"] = json!(reply);
        body["change"] = change;
        inbound(&admin, body).await;
    }
    write(json!({"target": reply, "change": {"reaction": {"emoji": "👀"}}})).await;
    let untouched = message_when(&admin, device, chat, &reply, "the author's reaction", |m| {
        m["reactions"][0]["emoji"] == "👀"
    })
    .await;
    assert_eq!(untouched["text"], "and in red?", "{untouched}");
    assert_eq!(
        (&untouched["edited"], &untouched["deleted"]),
        (&json!(false), &json!(false))
    );
    write(json!({"target": reply, "change": {"edit": {"text": "and in green?"}}})).await;
    let edited = message_when(&admin, device, chat, &reply, "the edit", |m| {
        m["edited"] == true
    })
    .await;
    assert_eq!(edited["text"], "and in green?");
    assert_eq!(edited["deleted"], false);
    let list = admin.chats(device).await;
    let ours = list.iter().find(|c| c["jid"] == chat).unwrap();
    assert_eq!(
        ours["last_message"], "and in green?",
        "the latest message's edit shows"
    );

    // An empty reaction takes it back.
    write(json!({"target": question, "change": {"reaction": {"emoji": ""}}})).await;
    message_when(
        &admin,
        device,
        chat,
        &question,
        "the reaction taken back",
        |m| m["reactions"] == json!([]),
    )
    .await;

    // Deleting for everyone wipes the content; the latest one's preview says so.
    write(json!({"target": reply, "change": "revoke"})).await;
    let deleted = message_when(&admin, device, chat, &reply, "the deletion", |m| {
        m["deleted"] == true
    })
    .await;
    assert_eq!(deleted["text"], Value::Null);
    assert_eq!(deleted["quoted"], Value::Null);
    let list = admin.chats(device).await;
    let ours = list.iter().find(|c| c["jid"] == chat).unwrap();
    assert_eq!(ours["last_message"], "🚫 This message was deleted");
    // A deleted message takes no more changes.
    write(json!({"target": reply, "change": {"edit": {"text": "back"}}})).await;
    write(json!({"target": question, "change": {"reaction": {"emoji": "🙂"}}})).await;
    message_when(&admin, device, chat, &question, "a later reaction", |m| {
        m["reactions"][0]["emoji"] == "🙂"
    })
    .await;
    let after = admin.chat_messages(device, chat).await;
    let reply_now = after.iter().find(|m| m["id"] == reply.as_str()).unwrap();
    assert_eq!(reply_now["text"], Value::Null, "{reply_now}");
}

async fn changes_are_validated(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "changes").await;
    let refused = |body: Value, code: &'static str| {
        let admin = &admin;
        async move {
            let answer = admin.post("/api/v1/sim/inbound", &body).await;
            assert_eq!(answer.status(), 400, "{body}");
            let error: Value = answer.json().await.unwrap();
            assert_eq!(error["error"]["code"], code, "{body}: {error}");
        }
    };
    let base = json!({"device_id": device, "from": "60198765432"});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    refused(with(json!({"change": "revoke"})), "invalid_field").await;
    refused(with(json!({"target": "3EB0AA"})), "invalid_field").await;
    refused(
        with(json!({"target": "3EB0AA", "change": {"edit": {"text": " "}}})),
        "invalid_text",
    )
    .await;
    refused(
        with(json!({"text": "hi", "group": "120363000000000000@g.us"})),
        "invalid_recipient",
    )
    .await;
    // A change to a message the device never stored changes nothing and hurts nothing.
    inbound(
        &admin,
        with(json!({"target": "3EB0NOSUCH", "change": {"reaction": {"emoji": "👍"}}})),
    )
    .await;
    let hello = inbound(&admin, with(json!({"text": "hello"}))).await;
    let chat = "60198765432@s.whatsapp.net";
    let stored = message_when(&admin, device, chat, &hello, "the next message", |_| true).await;
    assert_eq!(stored["reactions"], json!([]));
}

async fn groups_are_listed_titled_and_writable(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "groups").await;
    let groups: Value = admin
        .get(&format!("/api/v1/devices/{device}/groups"))
        .await
        .json()
        .await
        .unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0]["name"], "Sales team");
    assert_eq!(groups[0]["participants"], 6);
    let group = groups[0]["jid"].as_str().unwrap().to_string();
    assert!(group.ends_with("@g.us"));

    // Two members write; the chat keeps the group's title, each message names its sender.
    for (from, text) in [("60179000001", "Morning all"), ("60179000002", "Hi!")] {
        inbound(
            &admin,
            json!({"device_id": device, "from": from, "text": text, "group": group, "addressing": "phone"}),
        )
        .await;
    }
    // In a group, one member cannot edit another's message (changes apply in order: once the
    // author's later reaction shows, the other member's edit was turned down).
    let morning = wait_until("the first group message", WAIT, || async {
        admin
            .chat_messages(device, &group)
            .await
            .into_iter()
            .find(|m| m["text"] == "Morning all")
    })
    .await;
    let target = morning["id"].as_str().unwrap().to_string();
    for (from, change) in [
        ("60179000002", json!({"edit": {"text": "hijacked"}})),
        ("60179000001", json!({"reaction": {"emoji": "☕"}})),
    ] {
        inbound(
            &admin,
            json!({"device_id": device, "from": from, "group": group, "addressing": "phone",
                   "target": target, "change": change}),
        )
        .await;
    }
    let reacted = message_when(
        &admin,
        device,
        &group,
        &target,
        "the author's reaction",
        |m| m["reactions"][0]["emoji"] == "☕",
    )
    .await;
    assert_eq!(reacted["text"], "Morning all", "{reacted}");
    assert_eq!(reacted["edited"], false);

    // The device writes in the group through the API.
    let sent = admin
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": group, "text": "Meeting at 3"}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    let messages = wait_until("three messages in the group", WAIT, || async {
        let messages = admin.chat_messages(device, &group).await;
        (messages.len() == 3).then_some(messages)
    })
    .await;
    let senders: Vec<(&str, bool)> = messages
        .iter()
        .rev()
        .map(|m| {
            (
                m["sender"].as_str().unwrap(),
                m["from_me"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(senders[0], ("60179000001@s.whatsapp.net", false));
    assert_eq!(senders[1], ("60179000002@s.whatsapp.net", false));
    assert!(senders[2].1, "the device's own message: {senders:?}");
    assert!(messages
        .iter()
        .rev()
        .take(2)
        .all(|m| m["sender_name"].is_string()));
    let list = admin.chats(device).await;
    assert_eq!(
        list.len(),
        1,
        "a group message opens no private chat: {list:?}"
    );
    assert_eq!(list[0]["jid"], group.as_str());
    assert_eq!(list[0]["name"], "Sales team", "not the last speaker's name");
    assert_eq!(list[0]["group"], true);
    assert_eq!(list[0]["phone"], Value::Null);
}
