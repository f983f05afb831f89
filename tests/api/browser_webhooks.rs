//! The webhooks page (`/static/webhooks.html`) in headless chromium, at 1280 px and 390 px.
//!
//! An owner signs in through the login page → adds an endpoint for a local receiver with two
//! event types ticked → the signing secret is shown once and the table lists the endpoint with
//! its events → "Send test" queues a test event: the receiver gets it, signed with that secret,
//! and the delivery log shows it delivered with the receiver's answer → "Body" shows what was
//! sent → "Replay" sends it again (same event id) → "Switch off" greys the endpoint out, and
//! the API agrees. At 390 px the page fits the width. A member gets the "owners only" notice.
//! Screenshots: `test-artifacts/screenshots/webhooks-<step>-<width>.png`.

use serde_json::Value;

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::helpers::{
    spawn_app_with, Backend, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};
use crate::outbound_webhooks::{assert_signed, Receiver, WEBHOOK_TEST};

#[actix_web::test]
async fn endpoints_tested_logged_and_replayed_in_chromium() {
    let driver = Chromedriver::start().await;
    let mut settings = vec![("WAFLEET__AUTH__SECURE_COOKIES", "true")];
    settings.extend_from_slice(WEBHOOK_TEST);
    let app = spawn_app_with(Backend::Sqlite, &settings).await.unwrap();
    let receiver = Receiver::start().await;
    let admin = app.admin().await;

    Browser::session(&driver, 1280, "webhooks", async |b| {
        add_test_and_replay(&app, &receiver, b).await
    })
    .await;
    let endpoints: Value = admin
        .get("/api/v1/webhooks/endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        endpoints[0]["active"], false,
        "switched off in the page: {endpoints}"
    );

    Browser::session(&driver, 390, "webhooks", async |b| {
        b.sign_in_at(&app, "webhooks", ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        b.wait_css("#endpoint-list tbody tr[data-endpoint-id]", "the endpoint")
            .await;
        b.wait_css("#delivery-list tbody tr[data-delivery-id]", "the log")
            .await;
        b.assert_fits("phone").await;
        b.settled_screenshot("phone").await;
    })
    .await;

    let member = app.create_user(admin.tenant_id, "member").await;
    let email: Value = member.get("/api/v1/me").await.json().await.unwrap();
    let email = email["user"]["email"].as_str().unwrap().to_string();
    Browser::session(&driver, 1280, "webhooks-member", async |b| {
        b.goto(&app.url("/static/webhooks.html")).await;
        b.wait_css("#email", "the sign-in form").await;
        b.fill("#email", &email).await;
        b.fill("#password", USER_PASSWORD).await;
        b.find("#login").await.click().await.unwrap();
        b.wait_css("#not-allowed:not([hidden])", "the owners-only notice")
            .await;
        let hidden = b
            .js("return document.getElementById('endpoints').hidden")
            .await;
        assert_eq!(hidden, true, "a member sees no endpoints");
    })
    .await;
}

async fn add_test_and_replay(app: &TestApp, receiver: &Receiver, b: &Browser) {
    b.sign_in_at(app, "webhooks", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    b.wait_css(
        "#event-types input[value='message.received']",
        "the event types",
    )
    .await;
    b.fill("#endpoint-url", &receiver.url).await;
    b.fill("#endpoint-description", "CRM").await;
    b.find("#event-types input[value='message.received']")
        .await
        .click()
        .await
        .unwrap();
    b.find("#event-types input[value='lead.created']")
        .await
        .click()
        .await
        .unwrap();
    b.find("#add-endpoint").await.click().await.unwrap();
    b.wait_css("#new-secret:not([hidden])", "the secret shown once")
        .await;
    let secret = b
        .find("#new-secret-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(secret.len(), 64, "the secret: {secret:?}");
    let row = b
        .wait_css(
            "#endpoint-list tbody tr[data-endpoint-id]",
            "the new endpoint",
        )
        .await;
    let text = row.text().await.unwrap();
    assert!(text.contains("message.received, lead.created"), "{text}");
    assert!(text.contains("Active"), "{text}");
    b.settled_screenshot("added").await;

    b.find("#endpoint-list button[aria-label^='Send a test event']")
        .await
        .click()
        .await
        .unwrap();
    let delivered = b
        .wait_xpath(
            "//table[@id='delivery-list']//tr[@data-status='delivered' and .//code[.='webhook.test']]",
            "the test event delivered in the log",
        )
        .await;
    let text = delivered.text().await.unwrap();
    assert!(text.contains("HTTP 200"), "{text}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_signed(&received[0], &secret, app.admin().await.tenant_id);
    assert_eq!(received[0].json()["type"], "webhook.test");

    b.find("#delivery-list button[aria-label^='Show the body']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_css("#delivery-payload:not([hidden])", "the body sent")
        .await;
    let body = b.find("#delivery-payload").await.text().await.unwrap();
    assert!(body.contains("\"webhook.test\""), "{body}");

    b.find("#delivery-list button[aria-label^='Replay']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_xpath(
        "//*[@id='deliveries-alert' and contains(., 'queued again')]",
        "the replay confirmation",
    )
    .await;
    let event_id = received[0].header("x-wafleet-event-id").to_string();
    crate::helpers::wait_until(
        "the replayed event",
        std::time::Duration::from_secs(30),
        || {
            let receiver = receiver.clone();
            let event_id = event_id.clone();
            async move {
                let again = receiver.received();
                (again.len() == 2 && again[1].header("x-wafleet-event-id") == event_id)
                    .then_some(())
            }
        },
    )
    .await;
    b.assert_fits("log").await;
    b.settled_screenshot("log").await;

    b.find("#endpoint-list button[aria-label^='Switch off']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_css(
        "#endpoint-list tbody tr.inactive",
        "the endpoint switched off",
    )
    .await;
}
