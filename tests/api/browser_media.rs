//! Every kind of message on the WhatsApp Web page in headless chromium, at 1280 and 390 px: a
//! simulated contact sends a photo, a voice note, an audio file, a sticker, a video, a document,
//! a place and their contact card (real bytes); the page shows the photo, sticker and video
//! decoded, players whose voice note lasts its one second, a named download chip, a map link and
//! the card. Then a
//! document and a voice note go out from the attach menu and the server stores them as such.
//! Screenshots: `test-artifacts/screenshots/whatsapp-media-kinds-<width>.png`.

use std::time::Duration;

use serde_json::json;
use wafleet::whatsapp::sim::{Addressing, SimInbound};
use wafleet::whatsapp::MessageKind;

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::helpers::{
    spawn_app_with, wait_until, Backend, TestApp, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD,
};

const WAIT: Duration = Duration::from_secs(30);
const CONTACT: &str = "60198765432";
const JID: &str = "60198765432@s.whatsapp.net";

/// A daemon on SQLite (secure cookies, contacts that never answer) with the admin signed in
/// over the API and one paired device, "Shop front".
pub(crate) async fn shop_front() -> (TestApp, UserClient, i64) {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("WAFLEET__AUTH__SECURE_COOKIES", "true"),
            ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
        ],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "Shop front").await;
    (app, admin, device)
}

/// Signs in on the device's WhatsApp Web page and opens the contact's chat.
pub(crate) async fn open_contact_chat(b: &Browser, app: &TestApp, device: i64) {
    // Straight to the sign-in page the chat page sends a signed-out visitor to (waiting for that
    // script redirect races the driver's element lookups: "aborted by navigation").
    b.goto(&app.url(&format!(
        "/static/login.html?next=%2Fdevice%2F{device}%2Fwhatsapp-web"
    )))
    .await;
    b.wait_css("#email", "the sign-in form").await;
    b.fill("#email", ADMIN_EMAIL).await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.find("#login").await.click().await.unwrap();
    let item = format!(".chat-item[data-jid='{JID}']");
    b.wait_css(&item, "the contact's chat").await;
    b.find(&item).await.click().await.unwrap();
}

#[actix_web::test]
async fn every_kind_of_message_renders_in_chromium() {
    let driver = Chromedriver::start().await;
    let (app, admin, device) = shop_front().await;
    let sim = app.state.fleet.sim.clone().unwrap();
    let kinds = [
        (MessageKind::Image, "the red one?"),
        (MessageKind::Voice, ""),
        (MessageKind::Audio, ""),
        (MessageKind::Sticker, ""),
        (MessageKind::Video, "watch this"),
        (MessageKind::Document, "as promised"),
        (MessageKind::Location, ""),
        (MessageKind::Contact, ""),
    ];
    for (kind, text) in kinds {
        let message = SimInbound {
            from: CONTACT.into(),
            text: text.into(),
            kind,
            addressing: Some(Addressing::Phone),
            ..SimInbound::default()
        };
        sim.deliver(device, &message).await.unwrap();
    }
    wait_until("every message to be stored", WAIT, || async {
        let chats = admin.chats(device).await;
        (chats.first()?["unread_count"] == kinds.len()).then_some(())
    })
    .await;
    // The contact's voice note, to send one back from the page.
    let messages = admin.chat_messages(device, JID).await;
    let voice = messages.iter().find(|m| m["kind"] == "voice").unwrap();
    let voice_note = admin
        .get(voice["media"]["url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();

    for width in [1280, 390] {
        Browser::session(&driver, width, "whatsapp-media", async |b| {
            open_contact_chat(b, &app, device).await;
            b.wait_css("#conversation .bubble-contact", "the last message")
                .await;
            // Pictures and the video decoded; the voice note's one second read from its Ogg stream.
            let shown = b
                .wait_js(
                    "const img = (c) => document.querySelector(c); \
                     const voice = document.querySelector('.bubble.in .bubble-audio.voice audio'); \
                     const video = document.querySelector('.bubble-video'); \
                     const ok = img('.bubble-image')?.naturalWidth === 16 && img('.bubble-sticker')?.naturalWidth === 32 && voice?.readyState >= 1 && Number.isFinite(voice.duration) && video?.readyState >= 1 && video.videoWidth === 32; \
                     return ok ? [voice.duration, !!document.querySelector('.bubble-audio.audio audio')] : null",
                    "the photo, sticker, video and voice note to load",
                )
                .await;
            let seconds = shown[0].as_f64().unwrap();
            assert!((0.9..=1.1).contains(&seconds), "voice note lasts {seconds} s");
            assert_eq!(shown[1], true, "an audio player");
            let chips = b
                .js("const q = (c) => document.querySelector(c); \
                     const doc = q('.bubble-document'); const place = q('.bubble-location'); \
                     return [doc.getAttribute('download'), doc.textContent.includes('price list.pdf'), \
                             place.textContent.includes('Petronas Twin Towers'), place.href.startsWith('https://www.openstreetmap.org/'), \
                             q('.bubble-contact').textContent.includes('Contact 5432'), q('.bubble-contact').textContent.includes('+60198765432')]")
                .await;
            assert_eq!(chips, json!(["price list.pdf", true, true, true, true, true]));
            b.settled_screenshot("kinds").await;
            send_from_the_page(&admin, device, b, &voice_note).await;
        })
        .await;
    }
}

/// Sends a document (with a caption) and a voice note from the attach menu; each shows as our
/// bubble of its kind and is stored as such on the server.
async fn send_from_the_page(admin: &UserClient, device: i64, b: &Browser, voice_note: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join(format!("Quote {}.pdf", b.width));
    std::fs::write(&pdf, b"%PDF-1.4\n%%EOF\n").unwrap();
    let ogg = dir.path().join(format!("note-{}.ogg", b.width));
    std::fs::write(&ogg, voice_note).unwrap();
    for (path, title, bubble, kind) in [
        (
            &pdf,
            "Send document",
            ".bubble.out .bubble-document",
            "document",
        ),
        (
            &ogg,
            "Send voice note",
            ".bubble.out .bubble-audio.voice",
            "voice",
        ),
    ] {
        let before = b
            .js(&format!(
                "return document.querySelectorAll('{bubble}').length"
            ))
            .await;
        b.find("#attach-input")
            .await
            .send_keys(path.to_str().unwrap())
            .await
            .unwrap();
        b.wait_js_args(
            "return !document.getElementById('attach-preview').hidden && !document.getElementById('attach-file').hidden && document.getElementById('attach-title').textContent === arguments[0]",
            vec![json!(title)],
            "the file preview",
        )
        .await;
        if kind == "document" {
            b.fill("#caption-input", "the quote").await;
        }
        b.find("#send-image").await.click().await.unwrap();
        b.wait_js_args(
            &format!("return document.querySelectorAll('{bubble}').length > arguments[0]"),
            vec![before],
            "our bubble of the file",
        )
        .await;
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        wait_until(&format!("the {kind} to be stored"), WAIT, || async {
            let messages = admin.chat_messages(device, JID).await;
            messages.iter().find(|m| {
                m["from_me"] == true
                    && m["kind"] == kind
                    && (kind != "document"
                        || (m["file_name"] == name.as_str() && m["text"] == "the quote"))
            })?;
            Some(())
        })
        .await;
    }
    b.settled_screenshot("sent").await;
}
