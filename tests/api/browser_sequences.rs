//! The sequences page (`/static/sequences.html`) in headless chromium.
//!
//! At 1280 px: three leads are seeded in a list (no device: nothing is sent) → sign in through
//! the login page, which returns to the sequences page → the empty list → "New sequence": "Stop
//! on reply" is ticked by default; two steps (the second added with "Add step", waiting 2 days
//! 3 hours, sent 09:00–18:00 only; step 1 stops on a reply with the word "stop") → a second step with an unclosed `{` is refused by the API:
//! the error shows above the form and nothing is saved → fixed and saved, the page opens the
//! sequence; the API holds exactly what the form said (trigger tag, stop on reply, delays in
//! minutes, the window on step 2 only) → its report draws the funnel as inline SVG with one
//! group of five bars per step, and a table row per step → the three leads are enrolled by id
//! through the form and listed; the "completed" filter shows none → Pause and Resume through
//! the toggle button, the server agreeing each time → the edit form loads both steps back
//! (delay, window, reply rule) → the list shows the sequence with its trigger tag, status and two steps.
//!
//! At 390 px (device emulation): the list, the form and the report fit the width; then a viewer
//! of the same business sees the sequence and its report but no "New sequence", no row or page
//! buttons, no enrol form, and `#<id>/edit` shows the report instead of the form.
//!
//! A branching sequence (the walk of `sequence_branch`: one lead answers the keyword and jumps to
//! another sequence, one answers something else and stops, one stays silent and completes) is
//! then read on its page: each enrolment shows its path, and the jump target lists the lead
//! that jumped.
//!
//! Screenshots: `test-artifacts/screenshots/sequences-<step>-<width>.png` (the viewer's:
//! `sequences-viewer-…`); a failed wait saves `sequences-failure-<width>.png`. chromium and
//! chromedriver are required, as in `browser.rs`. Written against the sequences API of issue
//! 10 (`/api/v1/sequences`), which this page needs to pass.

use fantoccini::elements::Element;
use serde_json::{json, Value};

use crate::browser::Chromedriver;
use crate::browser_campaigns::{add_viewer, VIEWER_EMAIL};
use crate::browser_chat::Browser;
use crate::campaigns::{seed_leads, FAST_SIM};
use crate::helpers::{
    spawn_app_with, Backend, TestApp, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};
use crate::sequence_branch::{branch_both_ways, Branched};
use crate::sequences::TICK_ON_REQUEST;

/// Leads in the seeded list, enrolled by hand.
const LEADS: usize = 3;
const NAME: &str = "Cold leads";
const TRIGGER: &str = "cold";
const STEP_ONE: &str = "{Hi|Hello} {name}, thanks for your interest!";
const STEP_TWO: &str = "Hi {name}, still thinking about it? Reply STOP to opt out.";
/// Step 2 waits 2 days and 3 hours.
const STEP_TWO_DELAY_MINUTES: i64 = 2 * 24 * 60 + 3 * 60;

#[actix_web::test]
async fn sequence_created_reported_and_toggled_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let list = seed_leads(&app, admin.tenant_id, "Expo visitors", LEADS, 0).await;
    let leads = lead_ids(&admin, list).await;
    add_viewer(&admin).await;

    let sequence = Browser::session(&driver, 1280, "sequences", async |b| {
        create_and_report(&app, &admin, &leads, b).await
    })
    .await;

    Browser::session(&driver, 390, "sequences", async |b| {
        phone_layout(&app, sequence, b).await
    })
    .await;

    Browser::session(&driver, 390, "sequences-viewer", async |b| {
        viewer_sees_no_controls(&app, sequence, b).await
    })
    .await;
}

#[actix_web::test]
async fn a_branching_sequence_takes_both_paths_in_chromium() {
    let driver = Chromedriver::start().await;
    let settings = [FAST_SIM, TICK_ON_REQUEST].concat();
    let app = spawn_app_with(Backend::Sqlite, &settings).await.unwrap();
    let Branched { cold, warm } = branch_both_ways(&app).await;
    Browser::session(&driver, 1280, "sequences-branch", async |b| {
        b.sign_in_at(&app, "sequences", ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        let rows = "return [...document.querySelectorAll('#enrollments tbody tr[data-enrollment-id]')]\
                    .map((r) => [r.cells[1].textContent, r.dataset.status, r.cells[6].textContent]).sort()";
        b.goto(&app.url(&format!("/static/sequences.html#{cold}")))
            .await;
        let paths = b
            .wait_js(
                &format!("const rows = (() => {{ {rows} }})(); return rows.length === 3 && rows"),
                "COLD's three enrolments",
            )
            .await;
        assert_eq!(
            paths,
            json!([
                ["+60120000000", "stopped", format!("replied: moved to sequence {warm}")],
                ["+60120000001", "stopped", "replied"],
                ["+60120000002", "completed", "—"],
            ]),
            "the jump, the stop and the silent lead's whole way"
        );
        b.settled_screenshot("paths").await;
        b.goto(&app.url(&format!("/static/sequences.html#{warm}")))
            .await;
        let joined = b
            .wait_js(
                &format!("const rows = (() => {{ {rows} }})(); return rows.length === 1 && rows"),
                "WARM's enrolment",
            )
            .await;
        assert_eq!(joined[0][0], "+60120000000", "{joined}");
        let source = b
            .js("return document.querySelector('#enrollments .enrol-source').textContent")
            .await;
        assert!(source.as_str().unwrap().contains("jump"), "{source}");
        b.settled_screenshot("jumped").await;
    })
    .await;
}

/// The ids of the leads of `list`, through the leads API.
async fn lead_ids(admin: &UserClient, list: i64) -> Vec<i64> {
    let page: Value = admin
        .get(&format!("/api/v1/leads?list_id={list}&limit=100"))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), LEADS, "seeded leads: {page}");
    ids
}

/// The sequence as the API returns it.
async fn sequence_of(admin: &UserClient, id: i64) -> Value {
    let response = admin.get(&format!("/api/v1/sequences/{id}")).await;
    assert_eq!(response.status(), 200, "GET sequence {id}");
    response.json().await.unwrap()
}

/// Sets a time input the way a picker would (typing into one depends on the browser's locale).
async fn set_time(b: &Browser, css: &str, value: &str) {
    let set = b
        .client
        .execute(
            "const input = document.querySelector(arguments[0]); input.value = arguments[1]; \
             input.dispatchEvent(new Event('input', { bubbles: true })); \
             input.dispatchEvent(new Event('change', { bubbles: true })); return input.value",
            vec![json!(css), json!(value)],
        )
        .await
        .unwrap();
    assert_eq!(set, json!(value), "time input {css}");
}

/// The step card at `position` (1-based) of the editor.
fn step(position: usize, inner: &str) -> String {
    format!("#steps li.step-card:nth-child({position}) {inner}")
}

/// The whole flow at a desktop width; returns the sequence's id.
async fn create_and_report(app: &TestApp, admin: &UserClient, leads: &[i64], b: &Browser) -> i64 {
    b.sign_in_at(app, "sequences", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    b.wait_xpath(
        "//table[@id='sequence-list']//td[contains(., 'No sequences yet')]",
        "the empty list",
    )
    .await;

    // The form opens with one step and "Stop on reply" ticked.
    b.find("#new-sequence").await.click().await.unwrap();
    b.wait_css("#editor:not([hidden]) #steps li.step-card", "the form")
        .await;
    assert_eq!(
        b.js("return document.getElementById('sequence-stop-on-reply').checked")
            .await,
        true,
        "stop on reply is on by default"
    );
    b.fill("#sequence-name", NAME).await;
    b.fill("#sequence-trigger", TRIGGER).await;
    b.fill(
        "#sequence-description",
        "Leads from the expo who went quiet",
    )
    .await;
    b.fill(&step(1, ".step-message"), STEP_ONE).await;
    b.fill(&step(1, ".step-days"), "0").await;
    b.fill(&step(1, ".step-hours"), "0").await;
    // A reply with "stop" to step 1 stops the sequence (a choice, then its keyword).
    b.js(&format!(
        "const s = document.querySelector({:?}); s.value = 'stop'; \
         s.dispatchEvent(new Event('change')); return true",
        step(1, ".step-reply-action")
    ))
    .await;
    b.fill(&step(1, ".step-reply-keyword"), "Stop").await;

    // A second step, two days and three hours later, in office hours only.
    b.find("#add-step").await.click().await.unwrap();
    b.wait_css(&step(2, ".step-message"), "the second step")
        .await;
    let titles = b
        .js("return [...document.querySelectorAll('#steps .step-title')].map((t) => t.textContent)")
        .await;
    assert_eq!(titles, json!(["Step 1", "Step 2"]), "step titles");
    b.fill(&step(2, ".step-days"), "2").await;
    b.fill(&step(2, ".step-hours"), "3").await;
    set_time(b, &step(2, ".step-window-start"), "09:00").await;
    set_time(b, &step(2, ".step-window-end"), "18:00").await;

    // The API refuses an unclosed "{" in step 2; the page says so next to the form.
    b.fill(&step(2, ".step-message"), "Hi {name, still there?")
        .await;
    b.find("#save-sequence").await.click().await.unwrap();
    let alert = b
        .wait_xpath(
            "//*[@id='form-alert' and not(@hidden) and contains(., '{')]",
            "the validation error of step 2",
        )
        .await;
    let text = alert.text().await.unwrap();
    assert!(!text.trim().is_empty(), "an error sentence: {text:?}");
    assert_eq!(
        b.js("return document.getElementById('editor').hidden")
            .await,
        false,
        "the form stays open"
    );
    let listed: Value = admin.get("/api/v1/sequences").await.json().await.unwrap();
    assert_eq!(
        listed["sequences"].as_array().map(Vec::len),
        Some(0),
        "nothing saved: {listed}"
    );
    b.settled_screenshot("form-error").await;

    // Fixed, saved: the page opens the new sequence.
    b.fill(&step(2, ".step-message"), STEP_TWO).await;
    b.find("#save-sequence").await.click().await.unwrap();
    b.wait_xpath(
        &format!("//*[@id='detail' and not(@hidden)]//h2[@id='detail-title' and .='{NAME}']"),
        "the new sequence's page",
    )
    .await;
    let id: i64 = b
        .js("return location.hash.slice(1)")
        .await
        .as_str()
        .and_then(|h| h.parse().ok())
        .expect("the address names the sequence");

    // The API holds what the form said.
    let saved = sequence_of(admin, id).await;
    assert_eq!(saved["name"], NAME, "{saved}");
    assert_eq!(saved["trigger_tag"], TRIGGER, "{saved}");
    assert_eq!(saved["stop_on_reply"], true, "{saved}");
    assert_eq!(saved["status"], "active", "{saved}");
    assert_eq!(saved["next_sequence_id"], Value::Null, "{saved}");
    let steps = saved["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{saved}");
    assert_eq!(steps[0]["message"], STEP_ONE, "{saved}");
    assert_eq!(steps[0]["delay_minutes"], 0, "{saved}");
    assert_eq!(steps[0]["window"], Value::Null, "{saved}");
    assert_eq!(
        steps[0]["on_reply"],
        json!({"action": "stop", "keyword": "stop"}),
        "{saved}"
    );
    assert_eq!(steps[1]["on_reply"], Value::Null, "{saved}");
    assert_eq!(steps[1]["message"], STEP_TWO, "{saved}");
    assert_eq!(steps[1]["delay_minutes"], STEP_TWO_DELAY_MINUTES, "{saved}");
    assert_eq!(
        steps[1]["window"],
        json!({"start": "09:00", "end": "18:00"}),
        "{saved}"
    );

    // The report: one group of five bars per step in the funnel, one row per step.
    assert_funnel(b).await;
    b.wait_css("#detail-status[data-status='active']", "the status Active")
        .await;
    b.settled_screenshot("detail").await;

    // Leads enrolled by id through the form are listed.
    enrol_by_hand(b, leads).await;

    // Pause and resume through the toggle button; the server agrees each time.
    press_toggle(b, "paused", "Resume").await;
    assert_eq!(sequence_of(admin, id).await["status"], "paused");
    b.settled_screenshot("paused").await;
    press_toggle(b, "active", "Pause").await;
    assert_eq!(sequence_of(admin, id).await["status"], "active");

    // The edit form loads both steps back.
    b.find("#detail-actions button[data-action='edit']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_css(
        "#editor:not([hidden]) #steps li.step-card:nth-child(2)",
        "the edit form with two steps",
    )
    .await;
    let loaded = b
        .wait_js(
            "const cards = document.querySelectorAll('#steps li.step-card'); \
             if (cards.length !== 2 || document.getElementById('sequence-name').value === '') return null; \
             const v = (card, css) => card.querySelector(css).value; \
             return [document.getElementById('sequence-name').value, document.getElementById('sequence-trigger').value, \
                     v(cards[1], '.step-message'), v(cards[1], '.step-days'), v(cards[1], '.step-hours'), \
                     v(cards[1], '.step-window-start'), v(cards[1], '.step-window-end'), v(cards[0], '.step-window-start'), \
                     v(cards[0], '.step-reply-action'), v(cards[0], '.step-reply-keyword'), v(cards[1], '.step-reply-action')]",
            "the saved sequence in the form",
        )
        .await;
    assert_eq!(
        loaded,
        json!([NAME, TRIGGER, STEP_TWO, "2", "3", "09:00", "18:00", "", "stop", "stop", ""]),
        "the edit form"
    );
    b.find("#cancel-edit").await.click().await.unwrap();
    b.wait_css(
        "#detail:not([hidden]) #funnel g.funnel-group",
        "back on the report",
    )
    .await;

    // The list shows it with its trigger tag, status and two steps.
    b.find("#detail .back a").await.click().await.unwrap();
    let row = list_row(b, id).await;
    let cells = row.text().await.unwrap();
    assert!(cells.contains(NAME), "row: {cells}");
    assert!(cells.contains(TRIGGER), "row: {cells}");
    assert!(cells.contains("Active"), "row: {cells}");
    let steps_cell = b
        .js(&format!(
            "return document.querySelector(\"#sequence-list tr[data-sequence-id='{id}'] td[data-label='Steps']\").textContent"
        ))
        .await;
    assert_eq!(steps_cell, "2", "steps column");
    b.settled_screenshot("list").await;
    id
}

/// The report shows a funnel with one `g.funnel-group` of five bars per step and a table row
/// per step.
async fn assert_funnel(b: &Browser) {
    let shape = b
        .wait_js(
            "const groups = [...document.querySelectorAll('#funnel g.funnel-group')]; \
             const rows = document.querySelectorAll('#step-report tbody tr[data-position]').length; \
             return groups.length === 2 && rows === 2 \
               ? groups.map((g) => [g.dataset.position, g.querySelectorAll('rect.funnel-bar').length]) : null",
            "the funnel with one bar group per step",
        )
        .await;
    assert_eq!(shape, json!([["1", 5], ["2", 5]]), "funnel groups");
    let keys = b
        .js("return [...document.querySelectorAll('#funnel g.funnel-group')[0].querySelectorAll('rect.funnel-bar')].map((r) => r.dataset.key)")
        .await;
    assert_eq!(
        keys,
        json!(["reached", "sent", "delivered", "read", "replied"]),
        "bars of a step"
    );
}

/// Enrols every seeded lead through the form, then checks the list and its status filter.
async fn enrol_by_hand(b: &Browser, leads: &[i64]) {
    let ids: Vec<String> = leads.iter().map(i64::to_string).collect();
    b.fill("#enrol-lead-ids", &ids.join(", ")).await;
    b.find("#enrol").await.click().await.unwrap();
    b.wait_xpath(
        &format!("//*[@id='enrol-alert' and not(@hidden) and starts-with(normalize-space(), '{LEADS} leads enrolled')]"),
        "the enrolment summary",
    )
    .await;
    b.wait_js(
        &format!(
            "return document.querySelectorAll('#enrollments tbody tr[data-enrollment-id]').length === {LEADS}"
        ),
        "the enrolled leads in the list",
    )
    .await;
    let names = b
        .js("return [...document.querySelectorAll('#enrollments tbody tr[data-enrollment-id]')].map((r) => r.cells[0].textContent).sort()")
        .await;
    let expected: Vec<String> = (0..LEADS).map(|n| format!("Lead {n}")).collect();
    assert_eq!(names, json!(expected), "enrolled leads");
    assert_eq!(
        b.js("return document.getElementById('enrollments-more').hidden")
            .await,
        true,
        "one page holds every enrolment"
    );
    // Nothing can have completed (no device sends): the filter leaves the list empty.
    b.client
        .execute(
            "const s = document.getElementById('enrollment-status'); s.value = 'completed'; \
             s.dispatchEvent(new Event('change')); return true",
            vec![],
        )
        .await
        .unwrap();
    b.wait_xpath(
        "//table[@id='enrollments']//td[contains(., 'No completed enrolments')]",
        "the empty filtered list",
    )
    .await;
    b.client
        .execute(
            "const s = document.getElementById('enrollment-status'); s.value = ''; \
             s.dispatchEvent(new Event('change')); return true",
            vec![],
        )
        .await
        .unwrap();
    b.wait_js(
        &format!(
            "return document.querySelectorAll('#enrollments tbody tr[data-enrollment-id]').length === {LEADS}"
        ),
        "every enrolment again",
    )
    .await;
}

/// Presses the toggle button and waits for `status` and the button's new `label`.
async fn press_toggle(b: &Browser, status: &str, label: &str) {
    b.wait_css(
        "#detail-actions button[data-action='toggle']",
        "the toggle button",
    )
    .await
    .click()
    .await
    .unwrap();
    b.wait_css(
        &format!("#detail-status[data-status='{status}']"),
        &format!("the status to become {status}"),
    )
    .await;
    b.wait_xpath(
        &format!("//*[@id='detail-actions']/button[@data-action='toggle' and .='{label}']"),
        &format!("the toggle button to read {label}"),
    )
    .await;
}

/// The sequence's row in the list, once listed.
async fn list_row(b: &Browser, id: i64) -> Element {
    b.wait_css(
        &format!("#sequence-list tr[data-sequence-id='{id}']"),
        "the sequence in the list",
    )
    .await
}

/// The list, the form and the report at a phone width.
async fn phone_layout(app: &TestApp, id: i64, b: &Browser) {
    b.sign_in_at(app, "sequences", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    list_row(b, id).await;
    b.settled_screenshot("list").await;
    b.find("#new-sequence").await.click().await.unwrap();
    b.wait_css("#editor:not([hidden]) #steps li.step-card", "the form")
        .await;
    b.settled_screenshot("form").await;
    b.goto(&app.url(&format!("/static/sequences.html#{id}")))
        .await;
    assert_funnel(b).await;
    b.settled_screenshot("detail").await;
    b.js("document.getElementById('funnel').scrollIntoView(); return true")
        .await;
    b.settled_screenshot("detail-funnel").await;
}

/// A viewer reads the sequence and its report but has nothing to press or edit.
async fn viewer_sees_no_controls(app: &TestApp, id: i64, b: &Browser) {
    b.sign_in_at(app, "sequences", VIEWER_EMAIL, USER_PASSWORD)
        .await;
    list_row(b, id).await;
    assert_eq!(
        b.js("return document.getElementById('new-sequence').hidden")
            .await,
        true,
        "a viewer cannot create sequences"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#sequence-list [data-action]').length")
            .await,
        0,
        "a viewer has no row buttons"
    );
    b.find(&format!("#sequence-list tr[data-sequence-id='{id}'] a"))
        .await
        .click()
        .await
        .unwrap();
    assert_funnel(b).await;
    let controls = b
        .js(
            "return [document.querySelectorAll('#detail-actions button').length, \
                     document.getElementById('enrol-form').hidden, \
                     document.querySelectorAll('#enrollments [data-action]').length]",
        )
        .await;
    assert_eq!(controls, json!([0, true, 0]), "a viewer's controls");
    b.settled_screenshot("detail").await;

    // The edit address shows the report, not the form.
    b.goto(&app.url(&format!("/static/sequences.html#{id}/edit")))
        .await;
    b.wait_css("#detail:not([hidden]) #funnel g.funnel-group", "the report")
        .await;
    assert_eq!(
        b.js("return document.getElementById('editor').hidden")
            .await,
        true,
        "no form for a viewer"
    );
}
