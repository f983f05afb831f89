//! Every kind of message a contact sends, on both backends, through the simulator's real bytes:
//! each arrives and is stored with what it carries, its file is served only with safe headers
//! (inline for pictures and sound, a named download for documents, always sandboxed), and the
//! chat list previews it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{wait_until, TestApp, UserClient};

crate::both_backends!(every_kind_arrives_is_stored_and_served_safely);

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
        let page: Value = admin
            .get(&format!(
                "/api/v1/devices/{device}/chats/{JID}/messages?limit=50"
            ))
            .await
            .json()
            .await
            .ok()?;
        page["items"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
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
    let chats: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chats[0]["last_message"], "👤 Contact 5432");
    assert_eq!(chats[0]["unread_count"], 7);

    // Video is not simulated: refused, nothing stored.
    let (status, body) = send(&admin, device, "video", "").await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    // A text message still needs its text; an unknown kind is a bad request.
    assert_eq!(send(&admin, device, "text", " ").await.0, 400);
    assert_eq!(send(&admin, device, "hologram", "hi").await.0, 400);
}
