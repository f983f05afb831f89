//! The WhatsApp Web page of a device (`/device/<id>/whatsapp-web`) in headless chromium, at a
//! desktop width (1280 px) and a phone width (390 px, through device emulation).
//!
//! Per width: a simulated contact writes first → sign in through the login page, which returns
//! to the chat page → the chat is listed with its unread badge → opening it shows the message
//! and clears the badge (also on the server) → a text typed with Shift+Enter (newline) and sent
//! with Enter shows as our bubble and gets its read ticks → the contact's automatic reply appears
//! without a reload, pushed over the WebSocket → an image goes through the preview with a caption
//! and is sent → at the phone width
//! the back button returns to the list. Screenshots: `test-artifacts/screenshots/whatsapp-<step>-
//! <width>.png`; a failed wait saves `whatsapp-failure-<width>.png`. chromium and chromedriver
//! are required (the test fails when they are missing), as in `browser.rs`.

use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};
use wafleet::chat::store::{self, ChatWrite, NewMessage};

use crate::browser::{start_chromium, Chromedriver};
use crate::helpers::{
    spawn_app_with, wait_until, Backend, TestApp, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// Longest wait for any page state (a loaded 2-core CI machine).
const WAIT: Duration = Duration::from_secs(30);
const CONTACT: &str = "60198765432";
/// Messages seeded before the test (more than the page's 50 per request).
const HISTORY: i64 = 70;
const JID: &str = "60198765432@s.whatsapp.net";
/// A 16x16 PNG (the simulator's photo), for the attach flow (and the campaigns page's picture).
pub(crate) use wafleet::whatsapp::sim::PHOTO_PNG as PNG;
/// WebDriver keys (modifiers are held until Null).
const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
const NULL: &str = "\u{E000}";
const CTRL: &str = "\u{E009}";
const BACKSPACE: &str = "\u{E003}";

#[actix_web::test]
async fn whatsapp_web_page_live_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("WAFLEET__AUTH__SECURE_COOKIES", "true"),
            ("WAFLEET__SIM__REPLY_PROBABILITY", "1"),
            ("WAFLEET__SIM__REPLY_DELAY_MS", "300"),
            ("WAFLEET__SIM__IMAGE_REPLY_PROBABILITY", "0"),
        ],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "Shop front").await;
    seed_history(&app, admin.tenant_id, device).await;
    for width in [1280, 390] {
        let browser = Browser::open(&driver, width, "whatsapp").await;
        let outcome = AssertUnwindSafe(walk_through(&app, &admin, device, &browser))
            .catch_unwind()
            .await;
        browser.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Older messages than one page holds, over the last four days (one of them a photo), so the
/// page has history to scroll back through and day separators to show.
async fn seed_history(app: &TestApp, tenant_id: i64, device_id: i64) {
    let now = chrono::Utc::now();
    let writes = (0..HISTORY)
        .map(|n| {
            let at = (now - chrono::Duration::minutes(90 * (HISTORY - n) + 60)).naive_utc();
            let from_me = n % 3 == 1;
            let photo = n == HISTORY - 5;
            ChatWrite::Message {
                chat_jid: JID.into(),
                learned: Vec::new(),
                chat_name: None,
                unread: false,
                media: None,
                row: Box::new(NewMessage {
                    tenant_id,
                    device_id,
                    chat_id: 0,
                    wa_id: format!("HIST{n:03}"),
                    sender_jid: JID.into(),
                    sender_name: None,
                    from_me,
                    body: Some(if photo {
                        "The blue one".into()
                    } else {
                        format!("Earlier message {n}")
                    }),
                    media_mime: photo.then(|| "image/jpeg".into()),
                    media_size: photo.then_some(48_213),
                    media_sha256: None,
                    status: if from_me { "read" } else { "received" }.into(),
                    sent_at: at,
                    created_at: at,
                    kind: if photo { "image" } else { "text" }.into(),
                    file_name: None,
                    detail: None,
                    quoted_id: None,
                    quoted_sender: None,
                    quoted_text: None,
                    media_ref: None,
                }),
            }
        })
        .collect();
    store::write_batch(&app.db, writes).await.unwrap();
}

/// The contact's chat as the REST API lists it.
async fn chat_of(admin: &UserClient, device: i64) -> Option<Value> {
    let chats: Value = admin
        .get(&format!("/api/v1/devices/{device}/chats"))
        .await
        .json()
        .await
        .ok()?;
    chats.as_array()?.iter().find(|c| c["jid"] == JID).cloned()
}

async fn walk_through(app: &TestApp, admin: &UserClient, device: i64, b: &Browser) {
    let w = b.width;
    let phone = w < 768;
    let item = format!(".chat-item[data-jid='{JID}']");

    // The contact writes first; the chat is stored with an unread message.
    let inbound = format!("Hi, is the {w} model in stock?");
    let sim = app.state.fleet.sim.clone().unwrap();
    // Every earlier send has had its automatic reply (probability 1), so no late reply can
    // overtake this message; the earlier pass wrote one message first.
    let written_first = u64::from(phone);
    wait_until("replies to earlier sends", WAIT, || {
        let stats = sim.stats();
        async move { (stats.inbound >= stats.delivered + written_first).then_some(()) }
    })
    .await;
    sim.deliver_inbound(device, CONTACT, &inbound)
        .await
        .unwrap();
    wait_until("the inbound message to be stored", WAIT, || async {
        chat_of(admin, device).await.filter(|c| {
            c["unread_count"].as_i64() > Some(0) && c["last_message"] == inbound.as_str()
        })
    })
    .await;

    // Signed out, the page sends us to sign in, which brings us back.
    b.goto(&app.url(&format!("/device/{device}/whatsapp-web")))
        .await;
    b.wait_css("#email", "the sign-in form")
        .await
        .send_keys(ADMIN_EMAIL)
        .await
        .unwrap();
    b.find("#password")
        .await
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    b.find("#login").await.click().await.unwrap();
    b.wait_css(
        &format!("{item} .unread-badge"),
        "the chat with its unread badge",
    )
    .await;
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.path(), format!("/device/{device}/whatsapp-web"));
    let header = b
        .js("return document.getElementById('device-name').textContent + ' | ' + document.getElementById('device-status').textContent")
        .await;
    assert_eq!(header, "Shop front | online", "device header");
    let row = b
        .js(&format!("const i = document.querySelector(\"{item}\"); return [i.querySelector('.chat-preview').textContent, i.querySelector('.chat-time').textContent, i.querySelector('.unread-badge').textContent]"))
        .await;
    assert_eq!(row[0], inbound.as_str(), "preview");
    assert!(
        row[1].as_str().unwrap().contains(':'),
        "today's time label: {row}"
    );
    assert!(
        row[2].as_str().unwrap().starts_with(char::is_numeric),
        "badge: {row}"
    );
    if !phone {
        b.wait_xpath(
            "//*[@id='empty-state' and not(@hidden) and contains(., 'Select a chat')]",
            "the empty state",
        )
        .await;
    }
    b.wait_js(
        "return document.getElementById('wa-app').dataset.live === 'connected'",
        "the WebSocket subscription",
    )
    .await;
    b.settled_screenshot("list").await;

    // Opening the chat shows the message and marks it read (badge gone, server agrees).
    b.find(&item).await.click().await.unwrap();
    b.wait_xpath(
        &format!("//*[@id='conversation']//div[contains(@class, 'bubble') and contains(@class, 'in') and contains(., '{inbound}')]"),
        "the inbound bubble",
    )
    .await;
    b.wait_js(
        &format!("return !document.querySelector(\"{item} .unread-badge\")"),
        "the badge to clear",
    )
    .await;
    wait_until("the server's unread count to be 0", WAIT, || async {
        chat_of(admin, device)
            .await
            .filter(|c| c["unread_count"] == 0)
    })
    .await;
    if phone {
        b.wait_js(
            "return getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden' && document.getElementById('back-button').offsetWidth > 0",
            "the conversation to cover the list",
        )
        .await;
    }
    b.settled_screenshot("chat").await;

    // Scrolling up loads the older page above, keeping the view in place, in order, once each.
    assert_eq!(
        b.js("return !!document.querySelector(\".bubble[data-id='HIST000']\")")
            .await,
        false,
        "only the newest page is loaded at first"
    );
    b.js("document.getElementById('messages').scrollTop = 0; return true")
        .await;
    b.wait_css(
        ".bubble[data-id='HIST000']",
        "the oldest message after scrolling up",
    )
    .await;
    let history = b
        .js("const ids = [...document.querySelectorAll('#conversation .bubble')].map(b => b.dataset.id); const hist = ids.filter(i => i.startsWith('HIST')); return [ids.length === new Set(ids).size, hist.join() === [...hist].sort().join(), hist.length, document.getElementById('messages').scrollTop > 0, document.querySelectorAll('.day-separator').length, !!document.querySelector('.bubble.has-media .bubble-photo')]")
        .await;
    assert_eq!(
        history,
        json!([true, true, HISTORY, true, history[4], true]),
        "[no repeats, in order, all history, view kept, separators, photo placeholder]"
    );
    assert!(history[4].as_u64() >= Some(2), "day separators: {history}");
    b.wait_xpath(
        "//*[@id='history-status' and not(@hidden) and contains(., 'start of the chat')]",
        "the start-of-chat note",
    )
    .await;
    b.settled_screenshot("history").await;

    // Shift+Enter makes a new line, Enter sends; our bubble gets the server's id, then read ticks.
    b.js("window.__sameDocument = true; return true").await;
    let incoming = b
        .js("return document.querySelectorAll('#conversation .bubble.in').length")
        .await;
    let (first, second) = (format!("Yes, {w} left"), "Want one?");
    let input = b.find("#composer-input").await;
    input.click().await.unwrap();
    input
        .send_keys(&format!("{first}{SHIFT}{ENTER}{NULL}{second}{ENTER}"))
        .await
        .unwrap();
    let text = format!("{first}\n{second}");
    let mine = b
        .wait_js_args(
            "const b = [...document.querySelectorAll('#conversation .bubble.out')].find(b => b.querySelector('.bubble-text')?.textContent === arguments[0]); return b && !b.dataset.id.startsWith('local-') && b.dataset.id",
            vec![json!(text)],
            "our bubble with the server's message id",
        )
        .await;
    let mine = mine.as_str().unwrap().to_string();
    assert_eq!(
        b.js("return document.getElementById('composer-input').value")
            .await,
        ""
    );
    b.wait_css(
        &format!(".bubble[data-id='{mine}'] .tick-read"),
        "the blue read ticks",
    )
    .await;

    // The contact's automatic reply arrives over the WebSocket, without a reload.
    b.wait_js_args(
        "return document.querySelectorAll('#conversation .bubble.in').length > arguments[0]",
        vec![incoming],
        "the contact's reply",
    )
    .await;
    assert_eq!(
        b.js("return window.__sameDocument === true").await,
        true,
        "the page was not reloaded"
    );
    let reply = b
        .js("const r = [...document.querySelectorAll('#conversation .bubble.in')].pop(); return [r.dataset.id, r.querySelector('.bubble-text').textContent]")
        .await;
    let page: Value = admin
        .get(&format!(
            "/api/v1/devices/{device}/chats/{JID}/messages?limit=1"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"][0]["id"], reply[0],
        "the newest stored message"
    );
    assert_eq!(page["items"][0]["text"], reply[1]);
    b.wait_js_args(
        &format!(
            "return document.querySelector(\"{item} .chat-preview\").textContent === arguments[0]"
        ),
        vec![reply[1].clone()],
        "the chat list's preview of the reply",
    )
    .await;
    // Seen in an open chat, the reply is marked read on the server too.
    wait_until("the reply to be marked read", WAIT, || async {
        chat_of(admin, device)
            .await
            .filter(|c| c["unread_count"] == 0)
    })
    .await;
    b.settled_screenshot("reply").await;

    if !phone {
        // Search: no match says so; a number offers a new chat; clearing brings the chat back.
        let search = b.find("#chat-search").await;
        search.send_keys("60111222333").await.unwrap();
        b.wait_xpath(
            "//*[@id='chat-list']//button[@data-jid='60111222333@s.whatsapp.net' and contains(., 'Message +60111222333')]",
            "the offer to start a chat with a number",
        )
        .await;
        search
            .send_keys(&format!("{CTRL}a{NULL}{BACKSPACE}no such chat"))
            .await
            .unwrap();
        b.wait_xpath(
            "//*[@id='chat-list-empty' and not(@hidden) and contains(., 'No chats match')]",
            "the empty search result",
        )
        .await;
        search
            .send_keys(&format!("{CTRL}a{NULL}{BACKSPACE}"))
            .await
            .unwrap();
        b.wait_css(&item, "the chat after clearing the search")
            .await;
    }

    // An image: preview with caption, then sent, or the server's refusal shown.
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    fs::write(&photo, PNG).unwrap();
    b.find("#attach-input")
        .await
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    b.wait_js(
        "const i = document.getElementById('attach-image'); return !document.getElementById('attach-preview').hidden && i.complete && i.naturalWidth === 16",
        "the image preview",
    )
    .await;
    b.find("#caption-input")
        .await
        .send_keys(&format!("Photo at {w}"))
        .await
        .unwrap();
    b.settled_screenshot("attach").await;
    b.find("#send-image").await.click().await.unwrap();
    let outcome = b
        .wait_js_args(
            "const b = [...document.querySelectorAll('#conversation .bubble.out.has-media')].find(b => b.textContent.includes(arguments[0])); const e = document.getElementById('attach-error'); return (b && 'sent') || (!e.hidden && e.textContent)",
            vec![json!(format!("Photo at {w}"))],
            "the image bubble or the server's refusal",
        )
        .await;
    b.settled_screenshot("image").await;
    assert_eq!(outcome, "sent", "the picture was sent");

    b.assert_fits("conversation").await;
    if phone {
        // Back to the list, which slides in again.
        b.find("#back-button").await.click().await.unwrap();
        b.wait_js(
            "return getComputedStyle(document.getElementById('sidebar')).visibility === 'visible' && getComputedStyle(document.getElementById('conversation')).visibility === 'hidden'",
            "the chat list after going back",
        )
        .await;
        b.settled_screenshot("back").await;
    }
}

/// One headless chromium session with a fresh profile, `width` CSS pixels wide; `page` names
/// its screenshots (`<page>-<step>-<width>.png`). Shared with the other page tests.
pub(crate) struct Browser {
    pub(crate) client: Client,
    pub(crate) width: u32,
    page: &'static str,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) async fn open(driver: &Chromedriver, width: u32, page: &'static str) -> Browser {
        let height = if width < 768 { 844 } else { 900 };
        let (client, profile) = start_chromium(driver, width, height).await;
        Browser {
            client,
            width,
            page,
            _profile: profile,
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Opens a browser, runs `walk` in it and closes it even when `walk` panics (so no chromium
    /// outlives the test), then returns what `walk` returned or resumes its panic.
    pub(crate) async fn session<T>(
        driver: &Chromedriver,
        width: u32,
        page: &'static str,
        walk: impl AsyncFnOnce(&Browser) -> T,
    ) -> T {
        let browser = Browser::open(driver, width, page).await;
        let outcome = AssertUnwindSafe(walk(&browser)).catch_unwind().await;
        browser.close().await;
        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Opens `/static/<page>.html` signed out, signs in as `email` on the login page it sends
    /// the browser to, and waits to be back on the page (its nav link current).
    pub(crate) async fn sign_in_at(&self, app: &TestApp, page: &str, email: &str, password: &str) {
        self.goto(&app.url(&format!("/static/{page}.html"))).await;
        let field = self.wait_css("#email", "the sign-in form").await;
        field.send_keys(email).await.unwrap();
        let field = self.find("#password").await;
        field.send_keys(password).await.unwrap();
        self.find("#login").await.click().await.unwrap();
        self.wait_css(
            &format!("#nav-{page}[aria-current='page']"),
            &format!("the {page} page"),
        )
        .await;
    }

    /// Types `text` into the field `css` (emptied first).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub(crate) async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("cannot open {url}: {e}")).await
        }
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => self.fail(&format!("{css} is not on the page ({e})")).await,
        }
    }

    pub(crate) async fn wait_for(&self, locator: Locator<'_>, what: &str) -> Element {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.client.wait().at_most(left).for_element(locator).await {
                Ok(element) => return element,
                // A page's script sent the browser elsewhere while the driver looked (a
                // signed-out visitor sent on to sign in): look again on the new page.
                Err(e) if e.to_string().contains("aborted by navigation") && !left.is_zero() => {}
                Err(e) => {
                    return self
                        .fail(&format!("timed out waiting for {what} ({e})"))
                        .await
                }
            }
        }
    }

    pub(crate) async fn wait_css(&self, css: &str, what: &str) -> Element {
        self.wait_for(Locator::Css(css), what).await
    }

    pub(crate) async fn wait_xpath(&self, xpath: &str, what: &str) -> Element {
        self.wait_for(Locator::XPath(xpath), what).await
    }

    /// Runs `script` in the page and returns its value.
    pub(crate) async fn js(&self, script: &str) -> Value {
        match self.client.execute(script, vec![]).await {
            Ok(value) => value,
            Err(e) => self.fail(&format!("script failed ({e}): {script}")).await,
        }
    }

    pub(crate) async fn wait_js(&self, script: &str, what: &str) -> Value {
        self.wait_js_args(script, vec![], what).await
    }

    /// Polls `script` until it returns something other than null, false, 0 or "".
    pub(crate) async fn wait_js_args(&self, script: &str, args: Vec<Value>, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = match self.client.execute(script, args.clone()).await {
                Ok(value) => value,
                Err(e) => self.fail(&format!("script for {what} failed ({e})")).await,
            };
            let falsy = matches!(&value, Value::Null | Value::Bool(false))
                || value == json!(0)
                || value == json!("");
            if !falsy {
                return value;
            }
            if Instant::now() >= deadline {
                self.fail::<()>(&format!("timed out after {WAIT:?} waiting for {what}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page must fit its width (no sideways scrolling).
    pub(crate) async fn assert_fits(&self, page: &str) {
        let widths = self
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        assert_eq!(widths[1], self.width, "viewport width of the {page} page");
        if widths[0].as_u64() > widths[1].as_u64() {
            self.fail::<()>(&format!(
                "the {page} page is wider than the window: {widths}"
            ))
            .await;
        }
    }

    /// Waits for transitions to end, checks the layout fits, and saves
    /// `<page>-<step>-<width>.png`.
    pub(crate) async fn settled_screenshot(&self, step: &str) {
        self.wait_js(
            "return document.getAnimations().every(a => a.playState !== 'running')",
            "animations to finish",
        )
        .await;
        self.assert_fits(step).await;
        let png = self.client.screenshot().await.unwrap();
        let path = screenshots().join(format!("{}-{step}-{}.png", self.page, self.width));
        fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Fails the test with the page's address, text and a screenshot.
    pub(crate) async fn fail<T>(&self, problem: &str) -> T {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if let Ok(png) = self.client.screenshot().await {
            let name = format!("{}-failure-{}.png", self.page, self.width);
            let _ = fs::write(screenshots().join(name), png);
        }
        panic!(
            "at width {}: {problem}\n  page: {url}\n  text: {}",
            self.width,
            text.replace('\n', " | ")
        );
    }
}

/// `test-artifacts/` under the crate root (gitignored), created on demand.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn screenshots() -> PathBuf {
    let dir = artifacts().join("screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}
