//! Every kind of message a contact sends, on both backends, through the simulator's real bytes:
//! each arrives and is stored with what it carries, its file is served only with safe headers
//! (inline for pictures and sound, a named download for documents, always sandboxed), and the
//! chat list previews it. Documents and voice notes go out through the API, checked by their
//! bytes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{wait_until, TestApp, UserClient};

crate::both_backends!(
    every_kind_arrives_is_stored_and_served_safely,
    documents_and_voice_notes_go_out_and_bad_files_are_refused,
    a_place_goes_out_and_bad_places_are_refused,
);

/// How long a message may take to be mirrored.
const WAIT: Duration = Duration::from_secs(20);
const CONTACT: &str = "60198765432";
const JID: &str = "60198765432@s.whatsapp.net";

/// Makes the contact send a message of `kind` with `text`; returns the HTTP status and body.
async fn send(admin: &UserClient, device: i64, kind: &str, text: &str) -> (u16, Value) {
    let sent = admin
        .post(
            "/api/v1/sim/inbound",
            &json!({"device_id": device, "from": CONTACT, "kind": kind, "text": text,
                    "addressing": "phone"}),
        )
        .await;
    (sent.status().as_u16(), sent.json().await.unwrap())
}

/// The stored view of message `id` in the contact's chat.
async fn stored(admin: &UserClient, device: i64, id: &str) -> Value {
    wait_until(&format!("message {id} to be stored"), WAIT, || async {
        let items = admin.chat_messages(device, JID).await;
        items.into_iter().find(|m| m["id"] == id)
    })
    .await
}

async fn every_kind_arrives_is_stored_and_served_safely(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    // (kind, caption, served type, served as a named download)
    let with_files = [
        ("image", "the red one?", "image/png", None),
        ("voice", "", "audio/ogg", None),
        ("audio", "", "audio/ogg", None),
        ("sticker", "", "image/webp", None),
        ("video", "watch this", "video/mp4", None),
        (
            "document",
            "as promised",
            "application/octet-stream",
            Some("price list.pdf"),
        ),
    ];
    for (kind, caption, served, download) in with_files {
        let (status, body) = send(&admin, device, kind, caption).await;
        assert_eq!(status, 200, "{kind}: {body}");
        let message = stored(&admin, device, body["id"].as_str().unwrap()).await;
        assert_eq!(message["kind"], kind, "{message}");
        assert_eq!(
            message["text"],
            if caption.is_empty() {
                Value::Null
            } else {
                json!(caption)
            }
        );
        let url = message["media"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{message}"));
        let file = admin.get(url).await;
        assert_eq!(file.status(), 200, "{kind}");
        let header = |name: &str| {
            file.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(header("content-type").as_deref(), Some(served), "{kind}");
        assert!(header("content-security-policy")
            .unwrap()
            .starts_with("sandbox"));
        match download {
            Some(name) => {
                assert_eq!(message["file_name"], name);
                let disposition = header("content-disposition").unwrap();
                assert!(
                    disposition.contains(&format!("filename=\"{name}\"")),
                    "{disposition}"
                );
            }
            None => assert_eq!(
                header("content-disposition"),
                None,
                "{kind} is shown inline"
            ),
        }
        let size = message["media"]["size"].as_u64().unwrap();
        let bytes = file.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, size, "{kind}");
        let magic: &[u8] = match kind {
            "image" => b"\x89PNG",
            "voice" | "audio" => b"OggS",
            "sticker" => b"RIFF",
            "video" => b"\x00\x00\x00\x20ftyp",
            _ => b"%PDF",
        };
        assert!(bytes.starts_with(magic), "{kind}");
    }

    let (_, body) = send(&admin, device, "location", "").await;
    let place = stored(&admin, device, body["id"].as_str().unwrap()).await;
    assert_eq!(place["kind"], "location");
    assert!(place["media"].is_null());
    assert_eq!(place["location"]["name"], "Petronas Twin Towers");
    assert!((place["location"]["latitude"].as_f64().unwrap() - 3.1578).abs() < 1e-9);

    let (_, body) = send(&admin, device, "contact", "").await;
    let card = stored(&admin, device, body["id"].as_str().unwrap()).await;
    assert_eq!(card["kind"], "contact");
    assert_eq!(card["contact"]["display_name"], "Contact 5432");
    assert!(card["contact"]["vcard"]
        .as_str()
        .unwrap()
        .contains(&format!("waid={CONTACT}")));
    // The chat list previews what the last message carried.
    let chats = admin.chats(device).await;
    assert_eq!(chats[0]["last_message"], "👤 Contact 5432");
    assert_eq!(chats[0]["unread_count"], 8);
    // A text message still needs its text; an unknown kind is a bad request.
    assert_eq!(send(&admin, device, "text", " ").await.0, 400);
    assert_eq!(send(&admin, device, "hologram", "hi").await.0, 400);
}

/// Posts a multipart send of one file field `field` (named `name`) with a caption.
async fn send_file(
    admin: &UserClient,
    device: i64,
    field: &str,
    bytes: Vec<u8>,
    name: &str,
) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("to", CONTACT)
        .text("caption", "for you")
        .part(
            field.to_string(),
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
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
    let status = sent.status().as_u16();
    (status, sent.json().await.unwrap_or(Value::Null))
}

async fn documents_and_voice_notes_go_out_and_bad_files_are_refused(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    // A real voice note: the one a simulated contact sends, downloaded.
    let (_, body) = send(&admin, device, "voice", "").await;
    let theirs = stored(&admin, device, body["id"].as_str().unwrap()).await;
    let ogg = admin
        .get(theirs["media"]["url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let sim = app.state.fleet.sim.clone().unwrap();
    for (field, bytes, name, mime) in [
        ("voice", ogg.clone(), "note.ogg", "audio/ogg"),
        (
            "document",
            pdf.clone(),
            "../Quote 42.pdf",
            "application/octet-stream",
        ),
    ] {
        let (status, sent) = send_file(&admin, device, field, bytes.clone(), name).await;
        assert_eq!(status, 202, "{field}: {sent}");
        let id = sent["id"].as_str().unwrap();
        let mine = stored(&admin, device, id).await;
        assert_eq!(mine["from_me"], true);
        assert_eq!(mine["kind"], field, "{mine}");
        let file = admin.get(mine["media"]["url"].as_str().unwrap()).await;
        assert_eq!(file.headers()["content-type"], mime);
        assert_eq!(
            file.bytes().await.unwrap().to_vec(),
            bytes,
            "{field} stored as sent"
        );
        assert_eq!(sim.send_attempts(id), 1, "{field} reached WhatsApp once");
        if field == "document" {
            assert_eq!(mine["file_name"], "Quote 42.pdf", "the path is dropped");
            assert_eq!(mine["text"], "for you");
        } else {
            assert!(mine["text"].is_null(), "a voice note has no caption");
        }
    }

    // Refused by their bytes, whatever their names say; nothing reaches WhatsApp.
    let delivered = sim.stats().delivered;
    let page = b"<!DOCTYPE html><script>alert(1)</script>".to_vec();
    for (field, bytes, name, status, code) in [
        (
            "document",
            page,
            "invoice.pdf",
            415,
            "unsupported_media_type",
        ),
        (
            "voice",
            pdf.clone(),
            "note.ogg",
            415,
            "unsupported_media_type",
        ),
        (
            "sticker",
            ogg.clone(),
            "smile.webp",
            415,
            "unsupported_media_type",
        ),
        ("document", Vec::new(), "empty.pdf", 422, "invalid_file"),
        (
            "document",
            vec![b'a'; 16 * 1024 * 1024 + 1],
            "big.txt",
            413,
            "too_large",
        ),
    ] {
        let (got, body) = send_file(&admin, device, field, bytes, name).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{field} {name}: {body}"
        );
    }
    assert_eq!(sim.stats().delivered, delivered);
}

async fn a_place_goes_out_and_bad_places_are_refused(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    let path = format!("/api/v1/devices/{device}/messages");
    let send = |body: Value| {
        let (admin, path) = (&admin, &path);
        async move { admin.post(path, &body).await }
    };
    for bad in [
        json!({"to": CONTACT, "location": {"latitude": 91.0, "longitude": 0.0}}),
        json!({"to": CONTACT, "location": {"latitude": 0.0, "longitude": -180.5}}),
        json!({"to": CONTACT, "location": {"latitude": 0.0, "longitude": 0.0, "name": "x".repeat(257)}}),
        json!({"to": CONTACT, "text": "hi", "location": {"latitude": 0.0, "longitude": 0.0}}),
        json!({"to": CONTACT}),
    ] {
        let answer = send(bad.clone()).await;
        assert_eq!(answer.status(), 400, "{bad}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_field", "{bad}: {error}");
    }
    let place = json!({"latitude": 3.1578, "longitude": 101.7117, "name": "KLCC"});
    let sent = send(json!({"to": CONTACT, "location": place})).await;
    assert_eq!(sent.status(), 202);
    let id = sent.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = stored(&admin, device, &id).await;
    assert_eq!(shared["kind"], "location");
    assert_eq!(shared["from_me"], true);
    assert_eq!(shared["location"], place);
    let chats = admin.chats(device).await;
    assert_eq!(chats[0]["last_message"], "📍 KLCC");
}
