//! The campaigns page (`/static/campaigns.html`) in headless chromium, on a fast simulated clock.
//!
//! At 1280 px: a list of 40 leads is seeded in the database and two simulated devices are
//! paired → sign in through the login page, which returns to the campaigns page → "New
//! campaign" → a message with an unclosed `{` is refused by the API and the error shows above
//! the form, the message box marked → a valid message (the character count follows) and a
//! picture are saved from the form, targeting the seeded list (checkboxes when the server has
//! the lead-lists API, else the list-id field) → its page shows the picture and previews 40
//! leads → Start → the progress bar reaches 100 % and the status "Completed", pushed over the
//! WebSocket (the page never polls `…/progress`) → the device table lists both devices, whose
//! counts add up to 40, and the results list 40 messages → the page links the CSV export and
//! offers "Clone" (no "Retry failed": nothing failed); Clone opens the copy, a draft named "… (copy)" → the list
//! shows the campaign completed, 40 / 40, and an empty schedule.
//!
//! At 390 px (device emulation): the list (with a campaign scheduled two days ahead on the
//! timeline, under its day), the form and the finished campaign (its facts, then its progress)
//! fit the width; then a viewer of the same business sees the campaign and its
//! progress but neither "New campaign" nor any button to control it.
//!
//! Retry failed, at 1280 px: a campaign on one device whose first sends WhatsApp refuses ends
//! with two failed messages → "Retry failed" (confirmed) → it runs again and completes with none
//! failed; only the two failed leads were sent to again, each lead got one message.
//!
//! Screenshots: `test-artifacts/screenshots/campaigns-<step>-<width>.png` (the viewer's:
//! `campaigns-viewer-…`); a failed wait saves `campaigns-failure-<width>.png`. chromium and
//! chromedriver are required, as in `browser.rs`.

use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::{json, Value};

use crate::browser::Chromedriver;
use crate::browser_chat::{Browser, PNG};
use crate::campaigns::{messages, seed_leads, start, test_pacing, wait_status, FAST_SIM};
use crate::helpers::{
    spawn_app_with, Backend, TestApp, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};

/// Leads in the seeded list.
const LEADS: usize = 40;
const DEVICES: [&str; 2] = ["Sales A", "Sales B"];
const MESSAGE: &str = "{Hi|Hello} {name}, the Expo deal ends on Friday!";
/// The campaign created from the form.
const NAME: &str = "Expo follow-up";
/// A read-only team member (the sequences page test signs in as them too).
pub(crate) const VIEWER_EMAIL: &str = "viewer@shop.test";

#[actix_web::test]
async fn campaign_created_started_and_watched_live_in_chromium() {
    let driver = Chromedriver::start().await;
    let settings = [
        FAST_SIM,
        &[
            ("WAFLEET__AUTH__SECURE_COOKIES", "true"),
            ("WAFLEET__BROADCAST__MAX_ATTEMPTS", "2"),
        ],
    ]
    .concat();
    let app = spawn_app_with(Backend::Sqlite, &settings).await.unwrap();
    let admin = app.admin().await;
    let mut devices = Vec::new();
    for name in DEVICES {
        devices.push(app.paired_device(&admin, name).await);
    }
    let list = seed_leads(&app, admin.tenant_id, "Expo visitors", LEADS, 0).await;
    add_viewer(&admin).await;

    let campaign = Browser::session(&driver, 1280, "campaigns", async |b| {
        create_and_watch(&app, list, b).await
    })
    .await;

    let slow = slow_campaign(&admin, list).await;
    let later = scheduled_campaign(&admin, list).await;
    Browser::session(&driver, 390, "campaigns", async |b| {
        phone_layout(&app, campaign, slow, later, b).await
    })
    .await;

    Browser::session(&driver, 390, "campaigns-viewer", async |b| {
        viewer_sees_no_controls(&app, campaign, b).await
    })
    .await;

    let flaky = failing_campaign(&app, &admin, devices[0]).await;
    let sim = app.state.fleet.sim.clone().unwrap();
    let delivered_before = sim.stats().delivered;
    Browser::session(&driver, 1280, "campaigns", async |b| {
        retry_failed_in_the_page(&app, flaky, b).await
    })
    .await;
    let rows = messages(&admin, flaky).await;
    let phones: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), phones.len()), (RETRY_LEADS, RETRY_LEADS));
    assert!(
        rows.iter()
            .all(|r| ["sent", "delivered", "read"].contains(&r["status"].as_str().unwrap())),
        "{rows:?}"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.delivered - delivered_before,
        2,
        "only the two failed messages went out again: {stats:?}"
    );
    assert_eq!(stats.duplicates, 0, "{stats:?}");
}

/// Leads of the campaign whose first sends fail.
const RETRY_LEADS: usize = 6;

/// A campaign through `device` whose first four sends WhatsApp refuses (a server error): with
/// two attempts each, two messages fail. Started and run to the end through the API.
async fn failing_campaign(app: &TestApp, admin: &UserClient, device: i64) -> i64 {
    let list = seed_leads(app, admin.tenant_id, "Retry", RETRY_LEADS, 1_000).await;
    let body = json!({"name": "Flaky line", "message": MESSAGE, "target": {"list_ids": [list]},
                      "devices": {"mode": "set", "ids": [device]}, "pacing": test_pacing()});
    let created = admin.post("/api/v1/campaigns", &body).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let fault = admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": device, "fault": {"kind": "fail_sends", "sends": 4}}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    start(admin, id).await;
    let done = wait_status(admin, id, "completed").await;
    assert_eq!(done["counts"]["failed"], 2, "{done}");
    id
}

/// "Retry failed" on the campaign's page: confirmed, the campaign runs again and completes with
/// nothing failed.
async fn retry_failed_in_the_page(app: &TestApp, id: i64, b: &Browser) {
    b.sign_in_at(app, "campaigns", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    b.goto(&app.url(&format!("/static/campaigns.html#{id}")))
        .await;
    let failed = "Number(document.querySelector(\"#status-legend [data-state='failed'] .legend-count\")?.textContent.replace(/\\D/g, ''))";
    b.wait_js(&format!("return {failed} === 2"), "two failed messages")
        .await;
    b.settled_screenshot("failed").await;
    b.wait_css(
        "#detail-actions button[data-action='retry-failed']",
        "Retry failed",
    )
    .await
    .click()
    .await
    .unwrap();
    b.client.accept_alert().await.unwrap();
    b.wait_js(
        &format!(
            "return {failed} === 0 && document.getElementById('detail-status').dataset.status === 'completed'"
        ),
        "the retried campaign completed, nothing failed",
    )
    .await;
    let buttons = b
        .js("return [...document.querySelectorAll('#detail-actions button')].map((e) => e.dataset.action)")
        .await;
    assert!(
        !buttons.to_string().contains("retry-failed"),
        "nothing left to retry: {buttons}"
    );
    b.settled_screenshot("retried").await;
}

/// Adds a viewer to the admin's business through the API.
pub(crate) async fn add_viewer(admin: &UserClient) {
    let body = json!({"email": VIEWER_EMAIL, "display_name": "Vera Viewer",
                      "password": USER_PASSWORD, "role": "viewer"});
    let added = admin.post("/api/v1/users", &body).await;
    assert_eq!(added.status(), 201, "{}", added.text().await.unwrap());
}

/// The whole flow at a desktop width; returns the campaign's id.
async fn create_and_watch(app: &TestApp, list: i64, b: &Browser) -> i64 {
    b.sign_in_at(app, "campaigns", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    b.wait_xpath(
        "//table[@id='campaign-list']//td[contains(., 'No campaigns yet')]",
        "the empty list",
    )
    .await;

    // The form, with the seeded list picked whichever way the server offers lists.
    b.find("#new-campaign").await.click().await.unwrap();
    let fallback = b
        .wait_js(
            "const ids = document.getElementById('list-ids-field'); \
             const boxes = document.getElementById('list-choices'); \
             return !ids.hidden ? 'ids' : (!boxes.hidden && boxes.children.length ? 'boxes' : '')",
            "the lead-list picker",
        )
        .await
        == "ids";
    if fallback {
        b.fill("#target-list-ids", &list.to_string()).await;
    } else {
        b.find(&format!("input[name='list-id'][value='{list}']"))
            .await
            .click()
            .await
            .unwrap();
    }
    b.fill("#campaign-name", NAME).await;
    for (field, value) in [
        ("#min-delay", "2"),
        ("#max-delay", "3"),
        ("#per-minute", "12"),
        ("#per-day", "1000"),
    ] {
        b.fill(field, value).await;
    }

    // The API refuses an unclosed "{"; the page says so next to the form.
    b.fill("#campaign-message", "Hello {name").await;
    b.find("#create-campaign").await.click().await.unwrap();
    b.wait_xpath(
        "//*[@id='form-alert' and not(@hidden) and starts-with(normalize-space(), 'Message')]",
        "the validation error of the message",
    )
    .await;
    b.wait_css(
        "#campaign-message[aria-invalid='true']",
        "the message box marked invalid",
    )
    .await;
    b.settled_screenshot("form-error").await;

    // A valid message (the character count follows the typing) with a picture.
    b.fill("#campaign-message", MESSAGE).await;
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("expo.png");
    std::fs::write(&picture, PNG).unwrap();
    b.find("#campaign-image")
        .await
        .send_keys(picture.to_str().unwrap())
        .await
        .unwrap();
    let count = b
        .js("return document.getElementById('message-count').textContent")
        .await;
    assert_eq!(
        count,
        json!(format!("{} / 4,096", MESSAGE.chars().count())),
        "character count"
    );
    b.find("#create-campaign").await.click().await.unwrap();
    b.wait_xpath(
        "//*[@id='detail' and not(@hidden)]//h2[@id='detail-title' and .='Expo follow-up']",
        "the new campaign's page",
    )
    .await;
    let id: i64 = b
        .js("return location.hash.slice(1)")
        .await
        .as_str()
        .and_then(|h| h.parse().ok())
        .expect("the address names the campaign");
    b.wait_xpath(
        &format!("//*[@id='preview-summary' and starts-with(., '{LEADS} leads match')]"),
        "the preview",
    )
    .await;
    b.wait_css("#detail [data-live].live-live", "the live indicator")
        .await;
    b.wait_xpath(
        "//*[@id='detail-facts']/div[dt='File' and dd[starts-with(., 'a picture (the message is its caption)')]]",
        "the uploaded picture",
    )
    .await;

    // Start, then watch it finish without reading progress over REST.
    b.wait_css("#detail-actions button[data-action='start']", "Start")
        .await
        .click()
        .await
        .unwrap();
    assert_finished(b).await;
    let polls = b
        .js("return performance.getEntriesByType('resource').filter((e) => e.name.includes('/progress')).length")
        .await;
    assert_eq!(polls, 0, "progress came over the WebSocket only");
    b.wait_js(
        &format!(
            "const rows = [...document.querySelectorAll('#results tbody tr[data-message-id]')]; \
             return rows.length === {LEADS} && rows.every((r) => r.cells[2].textContent !== 'pending')"
        ),
        "40 sent messages in the results",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('results-more').hidden")
            .await,
        true,
        "one page holds every result"
    );
    b.settled_screenshot("detail").await;
    // The results download as CSV; a finished campaign can retry its failures or be cloned.
    assert_eq!(
        b.js("return document.getElementById('export-csv').getAttribute('href')")
            .await,
        format!("/api/v1/campaigns/{id}/export.csv")
    );
    let buttons = b
        .js("return [...document.querySelectorAll('#detail-actions button')].map((e) => e.dataset.action)")
        .await;
    assert_eq!(
        buttons,
        json!(["clone", "delete"]),
        "nothing failed: no \"Retry failed\""
    );
    b.find("#detail-actions button[data-action='clone']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_css(
        "#detail-status[data-status='draft']",
        "the copy, a draft, to open",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('detail-title').textContent")
            .await,
        format!("{NAME} (copy)")
    );

    // The list shows it finished, and that nothing is scheduled.
    b.find(".back a").await.click().await.unwrap();
    b.wait_xpath(
        "//section[@id='timeline' and not(@hidden)]//p[.='No campaign is scheduled.']",
        "the empty schedule",
    )
    .await;
    b.wait_xpath(
        &format!(
            "//table[@id='campaign-list']//tr[@data-campaign-id='{id}' and \
             td[contains(., 'Completed')] and td[normalize-space()='{LEADS} / {LEADS}']]"
        ),
        "the completed campaign in the list",
    )
    .await;
    b.settled_screenshot("list").await;
    id
}

/// The campaign shown is completed at 100 %, and its device table lists both devices with
/// counts adding up to every lead.
async fn assert_finished(b: &Browser) {
    b.wait_css(
        "#detail-status[data-status='completed']",
        "the status to become Completed",
    )
    .await;
    b.wait_css("#progress-bar[aria-valuenow='100']", "the bar at 100 %")
        .await;
    assert_eq!(
        b.js("return document.getElementById('progress-percent').textContent")
            .await,
        "100 %"
    );
    let rows: Value = b
        .js("return [...document.querySelectorAll('#device-progress tbody tr')].map((r) => \
               [r.cells[0].textContent, Number(r.querySelector('[data-label=\"Total\"]').textContent.replace(/\\D/g, ''))])")
        .await;
    let rows = rows.as_array().unwrap();
    let mut names: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, DEVICES, "device table: {rows:?}");
    let total: u64 = rows.iter().map(|r| r[1].as_u64().unwrap()).sum();
    assert_eq!(total, LEADS as u64, "device table: {rows:?}");
}

/// The campaign's row in the list, once listed.
async fn list_row(b: &Browser, id: i64) -> Element {
    b.wait_css(
        &format!("#campaign-list tr[data-campaign-id='{id}']"),
        "the campaign in the list",
    )
    .await
}

/// The list, the form and the finished campaign at a phone width.
async fn phone_layout(app: &TestApp, id: i64, slow: i64, later: i64, b: &Browser) {
    b.sign_in_at(app, "campaigns", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    list_row(b, id).await;
    // The scheduled campaign is on the timeline, under its day, with its time.
    b.wait_xpath(
        &format!(
            "//section[@id='timeline' and not(@hidden)]//div[@class='timeline-day' and \
             h3[normalize-space()]]//li[@data-campaign-id='{later}' and time and a[.='Next week']]"
        ),
        "the scheduled campaign on the timeline",
    )
    .await;
    b.settled_screenshot("list").await;
    b.find("#new-campaign").await.click().await.unwrap();
    b.wait_css("#create:not([hidden]) #campaign-name", "the form")
        .await;
    b.settled_screenshot("form").await;
    b.goto(&app.url(&format!("/static/campaigns.html#{id}")))
        .await;
    assert_finished(b).await;
    b.settled_screenshot("detail").await;
    b.js("document.getElementById('progress-bar').scrollIntoView(); return true")
        .await;
    b.settled_screenshot("detail-progress").await;
    pause_resume_cancel(app, slow, b).await;
}

/// A draft to the same leads paced slowly (a minute between two messages: 0.6 s here), so it
/// is still running when the buttons are pressed.
async fn slow_campaign(admin: &UserClient, list: i64) -> i64 {
    let body = json!({"name": "Slow drip", "message": MESSAGE, "target": {"list_ids": [list]},
                      "pacing": {"min_delay_ms": 60000, "max_delay_ms": 60000, "per_minute": 1}});
    let created = admin.post("/api/v1/campaigns", &body).await;
    let status = created.status();
    let created: Value = created.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

/// A campaign scheduled two days ahead (for the timeline).
async fn scheduled_campaign(admin: &UserClient, list: i64) -> i64 {
    let at = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let body = json!({"name": "Next week", "message": MESSAGE, "target": {"list_ids": [list]},
                      "scheduled_at": at});
    let created = admin.post("/api/v1/campaigns", &body).await;
    let status = created.status();
    let created: Value = created.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

/// Presses the button of `action` (answering its confirmation) and waits for `status`.
async fn press(b: &Browser, action: &str, status: &str) {
    b.wait_css(
        &format!("#detail-actions button[data-action='{action}']"),
        action,
    )
    .await
    .click()
    .await
    .unwrap();
    if action == "cancel" {
        b.client.accept_alert().await.unwrap();
    }
    b.wait_css(
        &format!("#detail-status[data-status='{status}']"),
        &format!("the status to become {status}"),
    )
    .await;
}

/// Start, Pause, Resume and Cancel, each shown only where it applies; cancelling skips what
/// was not sent.
async fn pause_resume_cancel(app: &TestApp, id: i64, b: &Browser) {
    b.goto(&app.url(&format!("/static/campaigns.html#{id}")))
        .await;
    press(b, "start", "running").await;
    press(b, "pause", "paused").await;
    let buttons = b
        .js("return [...document.querySelectorAll('#detail-actions button')].map((e) => e.dataset.action)")
        .await;
    assert_eq!(
        buttons,
        json!(["resume", "cancel", "clone"]),
        "buttons of a paused campaign"
    );
    press(b, "resume", "running").await;
    press(b, "cancel", "cancelled").await;
    b.wait_js(
        "const n = (s) => Number(document.querySelector(`#status-legend [data-state='${s}'] .legend-count`).textContent.replace(/\\D/g, '')); \
         return n('waiting') === 0 && n('skipped') > 0",
        "unsent messages to be skipped",
    )
    .await;
    b.js("document.getElementById('progress-bar').scrollIntoView(); return true")
        .await;
    b.settled_screenshot("cancelled").await;
}

/// A viewer reads the campaign and its progress but has nothing to press.
async fn viewer_sees_no_controls(app: &TestApp, id: i64, b: &Browser) {
    b.sign_in_at(app, "campaigns", VIEWER_EMAIL, USER_PASSWORD)
        .await;
    let row = list_row(b, id).await;
    assert_eq!(
        b.js("return document.getElementById('new-campaign').hidden")
            .await,
        true,
        "a viewer cannot create campaigns"
    );
    row.find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_finished(b).await;
    assert_eq!(
        b.js("return document.querySelectorAll('#detail-actions button').length")
            .await,
        0,
        "a viewer has no campaign buttons"
    );
    b.settled_screenshot("detail").await;
}
