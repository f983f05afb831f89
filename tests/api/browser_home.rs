//! The home page and a device's page in headless chromium, at 1280 px and 390 px.
//!
//! After a simulated campaign, an owner signs in on `/`: the tiles count its sends and the
//! charts are drawn. A second campaign meets a rate limit on one device: its card says
//! "Quarantined" live, and its page (reached from the card) shows the rate limit and the
//! quarantine; "Lift quarantine" ends it, and "Open chats" leads to its WhatsApp-Web page.
//! Screenshots: `test-artifacts/screenshots/home-<step>-<width>.png`.

use serde_json::{json, Value};
use wafleet::whatsapp::sim::Fault;

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::campaigns::{create, seed_leads, start, test_pacing, wait_status, FAST_SIM};
use crate::helpers::{spawn_app_with, wait_until, Backend, TestApp, UserClient, USER_PASSWORD};

const FIRST: usize = 6;

#[actix_web::test]
async fn home_figures_and_a_quarantined_device_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(Backend::Sqlite, FAST_SIM).await.unwrap();
    let owner = app.new_tenant("Acme").await;
    let me: Value = owner.get("/api/v1/me").await.json().await.unwrap();
    let email = me["user"]["email"].as_str().unwrap().to_string();
    let limited = app.paired_device(&owner, "Sales North").await;
    let healthy = app.paired_device(&owner, "Sales South").await;
    campaign(&app, &owner, "First", FIRST, 0).await;
    wait_until(
        "the sends in the figures",
        std::time::Duration::from_secs(30),
        || async {
            let view: Value = owner
                .get("/api/v1/stats/overview")
                .await
                .json()
                .await
                .ok()?;
            (view["totals"]["sent"] == FIRST).then_some(())
        },
    )
    .await;

    Browser::session(&driver, 1280, "home", async |b| {
        b.goto(&app.url("/")).await;
        b.wait_css("#email", "the sign-in form").await;
        b.fill("#email", &email).await;
        b.fill("#password", USER_PASSWORD).await;
        b.find("#login").await.click().await.unwrap();
        b.wait_css("#nav-devices[aria-current='page']", "the home page")
            .await;
        b.wait_js(
            &format!("return document.querySelector('[data-tile=sent] .tile-value')?.textContent === '{FIRST}'"),
            "the sent tile",
        )
        .await;
        for chart in ["chart-sends", "chart-rates", "chart-devices"] {
            b.wait_js(
                &format!("const i = document.getElementById('{chart}'); return i.complete && i.naturalWidth > 0"),
                chart,
            )
            .await;
        }
        b.settled_screenshot("figures").await;

        // A rate limit on one device mid-campaign: its card shows the quarantine live.
        let sim = app.state.fleet.sim.clone().unwrap();
        let fault = Fault::RateLimit {
            sends: 1,
            retry_after_ms: 60_000,
        };
        sim.inject(limited, fault).await.unwrap();
        campaign(&app, &owner, "Second", 4, FIRST).await;
        b.wait_css(
            &format!(".device-card[data-device-id='{limited}'] .device-quarantine"),
            "the quarantine on the card",
        )
        .await;
        b.settled_screenshot("quarantined").await;

        // The device's page, from its card.
        b.find(&format!(".device-card[data-device-id='{limited}'] .device-name a"))
            .await
            .click()
            .await
            .unwrap();
        b.wait_css("#quarantine:not([hidden])", "the quarantine notice").await;
        b.wait_js(
            "return document.querySelector('[data-tile=rate-limits] .tile-value')?.textContent === '1'",
            "one rate limit",
        )
        .await;
        let history = b.find("#history").await.text().await.unwrap();
        assert!(history.contains("rate limited") && history.contains("quarantined"), "{history}");
        b.wait_js(
            "const i = document.getElementById('device-chart'); return i.complete && i.naturalWidth > 0",
            "the device chart",
        )
        .await;
        b.settled_screenshot("device").await;
        // The actions are redrawn on every live event: clicked from the page, never stale.
        b.js("document.querySelector('#device-actions [data-action=lift]').click()")
            .await;
        b.wait_css("#quarantine[hidden]", "the quarantine lifted").await;
        // Drained by hand: the API's refusal shows under the field, then the drain holds.
        b.wait_css("#drain-form:not([hidden])", "the drain form").await;
        b.fill("#drain-hours", "0").await;
        b.find("#drain").await.click().await.unwrap();
        let note = b.wait_css("#drain-hours-error", "the refusal under the hours").await;
        assert!(note.text().await.unwrap().contains("between 1 and 720"));
        b.fill("#drain-hours", "3").await;
        b.find("#drain").await.click().await.unwrap();
        b.wait_xpath(
            "//*[@id='quarantine' and not(@hidden) and contains(., 'drained by an operator')]",
            "the drain in force",
        )
        .await;
        b.wait_css("#drain-form[hidden]", "no second drain").await;
        b.settled_screenshot("drained").await;
        b.js("document.querySelector('#device-actions [data-action=lift]').click()")
            .await;
        b.wait_css("#quarantine[hidden]", "the drain lifted").await;
        b.js("document.querySelector('#device-actions [data-action=chats]').click()")
            .await;
        b.wait_js(
            "return document.getElementById('device-name')?.textContent === 'Sales North'",
            "the device's chats",
        )
        .await;
    })
    .await;
    let device: Value = owner
        .get(&format!("/api/v1/devices/{limited}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        device["quarantined_until"].is_null(),
        "lifted in the page: {device}"
    );
    let view: Value = owner
        .get("/api/v1/stats/overview")
        .await
        .json()
        .await
        .unwrap();
    let south = view["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == healthy)
        .unwrap()["sent"]
        .as_i64()
        .unwrap();
    assert!(
        south >= 4,
        "the second campaign went through the healthy device: {view}"
    );

    Browser::session(&driver, 390, "home", async |b| {
        b.goto(&app.url("/")).await;
        b.wait_css("#email", "the sign-in form").await;
        b.fill("#email", &email).await;
        b.fill("#password", USER_PASSWORD).await;
        b.find("#login").await.click().await.unwrap();
        b.wait_css("[data-tile=sent] .tile-value", "the tiles")
            .await;
        b.settled_screenshot("phone").await;
    })
    .await;
}

/// Runs a campaign of `leads` new leads (phones from `offset`) to completion.
async fn campaign(app: &TestApp, owner: &UserClient, name: &str, leads: usize, offset: usize) {
    let list = seed_leads(app, owner.tenant_id, name, leads, offset).await;
    let id = create(
        owner,
        json!({"name": name, "message": "Hello {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(owner, id).await;
    wait_status(owner, id, "completed").await;
}
