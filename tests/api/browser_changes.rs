//! Replies, reactions, edits, deletions and the media gallery on the WhatsApp Web page in headless
//! chromium, at 1280 and 390 px: a reply shows the message it quotes, a reaction sits under its
//! message, a deleted message says so; an edit and a reaction made while the page is open show
//! live; the gallery lists the chat's picture and document. Screenshots:
//! `test-artifacts/screenshots/whatsapp-changes-<width>.png`.

use std::time::Duration;

use serde_json::json;
use wafleet::whatsapp::sim::{Addressing, SimChange, SimInbound, SimNetwork};
use wafleet::whatsapp::{Change, MessageKind};

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::browser_media::{open_contact_chat, shop_front};
use crate::helpers::wait_until;

const WAIT: Duration = Duration::from_secs(30);
const CONTACT: &str = "60198765432";
const JID: &str = "60198765432@s.whatsapp.net";

/// Makes the contact write (or change a message); returns the id.
async fn contact(sim: &SimNetwork, device: i64, message: SimInbound) -> String {
    let message = SimInbound {
        from: CONTACT.into(),
        addressing: Some(Addressing::Phone),
        ..message
    };
    sim.deliver(device, &message).await.unwrap()
}

/// A change of the contact's to message `target`.
fn change(target: &str, change: Change) -> SimInbound {
    SimInbound {
        change: Some(SimChange {
            target: target.into(),
            change,
        }),
        ..SimInbound::default()
    }
}

/// A text of the contact's, perhaps a reply.
fn text(text: &str, reply_to: Option<&str>) -> SimInbound {
    SimInbound {
        text: text.into(),
        reply_to: reply_to.map(str::to_string),
        ..SimInbound::default()
    }
}

#[actix_web::test]
async fn replies_reactions_deletions_and_the_gallery_render_in_chromium() {
    let driver = Chromedriver::start().await;
    let (app, admin, device) = shop_front().await;
    let sim = app.state.fleet.sim.clone().unwrap();
    let question = contact(&sim, device, text("Is the blue one in stock?", None)).await;
    let reply = contact(&sim, device, text("and in red?", Some(&question))).await;
    let photo = SimInbound {
        kind: MessageKind::Image,
        text: "this one".into(),
        ..SimInbound::default()
    };
    let photo = contact(&sim, device, photo).await;
    let document = SimInbound {
        kind: MessageKind::Document,
        ..SimInbound::default()
    };
    contact(&sim, device, document).await;
    let oops = contact(&sim, device, text("oops, wrong chat", None)).await;
    let heart = Change::Reaction {
        emoji: "❤️".into()
    };
    contact(&sim, device, change(&question, heart)).await;
    contact(&sim, device, change(&oops, Change::Revoke)).await;
    wait_until("the deletion to be stored", WAIT, || async {
        let messages = admin.chat_messages(device, JID).await;
        messages
            .iter()
            .any(|m| m["id"] == oops.as_str() && m["deleted"] == true)
            .then_some(())
    })
    .await;

    for width in [1280, 390] {
        Browser::session(&driver, width, "whatsapp-changes", async |b| {
            open_contact_chat(b, &app, device).await;
            let bubble = |id: &str| format!("document.querySelector('.bubble[data-id=\"{id}\"]')");
            let seen = b
                .wait_js(
                    &format!(
                        "const q = {}; const r = {}; const gone = {}; \
                         if (!q || !r || !gone) return null; \
                         return [r.querySelector('.bubble-quote .quote-text')?.textContent, \
                                 q.querySelector('.bubble-reactions')?.textContent, \
                                 gone.querySelector('.bubble-text.deleted')?.textContent]",
                        bubble(&question),
                        bubble(&reply),
                        bubble(&oops)
                    ),
                    "the quote, the reaction and the deletion",
                )
                .await;
            assert_eq!(
                seen,
                json!([
                    "Is the blue one in stock?",
                    "❤️",
                    "🚫 This message was deleted"
                ])
            );

            // Live, while the page is open: an edit and a reaction (a new one per width: one
            // reaction per person, the later replaces the earlier).
            b.wait_js(
                "return document.getElementById('wa-app').dataset.live === 'connected'",
                "the WebSocket subscription",
            )
            .await;
            let edited = format!("and in green? ({width})");
            let emoji = if width == 1280 { "👍" } else { "😮" };
            let edit = Change::Edit {
                text: edited.clone(),
            };
            contact(&sim, device, change(&reply, edit)).await;
            let reaction = Change::Reaction {
                emoji: emoji.into(),
            };
            contact(&sim, device, change(&photo, reaction)).await;
            let live = b
                .wait_js_args(
                    &format!(
                        "const r = {}; const p = {}; \
                         const text = r?.querySelector('.bubble-text')?.textContent; \
                         const edited = !!r?.querySelector('.bubble-edited'); \
                         const reacted = p?.querySelector('.bubble-reactions')?.textContent; \
                         return text === arguments[0] && edited && reacted === arguments[1] ? true : null",
                        bubble(&reply),
                        bubble(&photo)
                    ),
                    vec![json!(edited), json!(emoji)],
                    "the edit and the reaction to show live",
                )
                .await;
            assert_eq!(live, json!(true));
            b.settled_screenshot("conversation").await;

            // The gallery: the picture as a decoded tile, the document as a named row.
            b.find("#gallery-button").await.click().await.unwrap();
            let gallery = b
                .wait_js(
                    "const tiles = document.querySelectorAll('#gallery-tiles img'); \
                     const files = document.querySelectorAll('#gallery-files li'); \
                     if (tiles.length !== 1 || tiles[0].naturalWidth !== 16) return null; \
                     return [files.length, files[0].textContent.includes('price list.pdf'), \
                             document.getElementById('gallery-status').textContent]",
                    "the gallery",
                )
                .await;
            assert_eq!(gallery, json!([1, true, "2 items"]));
            b.settled_screenshot("gallery").await;
            b.find("#gallery-close").await.click().await.unwrap();
            let closed = b
                .js("return document.getElementById('gallery').hidden")
                .await;
            assert_eq!(closed, json!(true));
        })
        .await;
    }
}
