//! The team, settings and profile pages in headless chromium, at 1280 px and 390 px.
//!
//! An owner signs in on the team page → adds a member → opens the device picker (a business of
//! 63 devices, searched on the server) → ticks two devices found by search (one with the
//! mouse, one from the keyboard) and saves → resets the member's password: the one-time password
//! is shown once. The member signs in with it in another browser, chooses their own, and sees
//! exactly those two devices. Back as the owner, the settings page refuses an unknown time zone
//! under the field, then takes America/Lima: the page's clock, the team page's sign-in times and
//! the time of a chat on a device's WhatsApp-Web page are relabelled. The profile page lists the owner's sessions, this one marked, and signs
//! another of them out. At 390 px the pages fit the width. Screenshots: `test-artifacts/screenshots/team-settings-<step>-<width>.png`.

use std::time::Duration;

use serde_json::Value;

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::helpers::{spawn_app_with, wait_until, Backend, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

const MEMBER_EMAIL: &str = "agent@shop.test";
const MEMBER_NAME: &str = "Aisyah Agent";
const MEMBER_OWN_PASSWORD: &str = "aisyah's own passphrase";

#[actix_web::test]
async fn team_assignments_and_the_tenant_zone_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let (db, tenant_id) = (&app.db, admin.tenant_id);
    let insert = |name: String| async move {
        wafleet::device::store::insert_device(db, tenant_id, &name)
            .await
            .unwrap()
    };
    for n in 0..60 {
        insert(format!("Filler {n:02}")).await;
    }
    let alpha = insert("Alpha Sales".into()).await;
    let beta = insert("Beta Support".into()).await;
    insert("Gamma Ops".into()).await;

    let one_time = Browser::session(&driver, 1280, "team-settings", async |b| {
        assign_and_reset(&app, b).await
    })
    .await;
    let member: Value = admin.get("/api/v1/users").await.json().await.unwrap();
    let member_id = member
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == MEMBER_EMAIL)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let assigned: Value = admin
        .get(&format!("/api/v1/users/{member_id}/devices"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        assigned["device_ids"],
        serde_json::json!([alpha.id, beta.id])
    );

    Browser::session(&driver, 1280, "team-settings-member", async |b| {
        member_sees_two_devices(&app, b, &one_time).await
    })
    .await;

    // A chat with a message, whose time the WhatsApp-Web page labels in the tenant's zone.
    let chatty = app.paired_device(&admin, "Chatty").await;
    let sent = admin
        .post(
            "/api/v1/sim/inbound",
            &serde_json::json!({"device_id": chatty, "from": "60198765432", "text": "Hello there"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    wait_until(
        "the message in the chat list",
        Duration::from_secs(30),
        || async { (!admin.chats(chatty).await.is_empty()).then_some(()) },
    )
    .await;
    Browser::session(&driver, 1280, "team-settings", async |b| {
        relabel_with_a_new_zone(&app, b, chatty).await
    })
    .await;
    let tenant: Value = admin.get("/api/v1/tenant").await.json().await.unwrap();
    assert_eq!(tenant["time_zone"], "America/Lima");

    let other = app.admin().await;
    let sessions: Value = other.get("/api/v1/me/sessions").await.json().await.unwrap();
    let other_session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    Browser::session(&driver, 390, "team-settings", async |b| {
        b.sign_in_at(&app, "settings", ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        b.wait_js(
            "return document.getElementById('tenant-zone').value === 'America/Lima' && document.querySelector('#retention-list dd')",
            "the settings loaded",
        )
        .await;
        b.settled_screenshot("settings-phone").await;
        b.find("#nav-team").await.click().await.unwrap();
        b.wait_css("#members tbody tr[data-user-id]", "the members").await;
        b.find(&format!("button[aria-label='Assign devices to {MEMBER_EMAIL}']"))
            .await
            .click()
            .await
            .unwrap();
        b.wait_css("#device-results li", "the picker").await;
        b.settled_screenshot("picker-phone").await;
        b.find("#nav-profile").await.click().await.unwrap();
        b.wait_css("#session-list tr[data-current='true']", "this session, marked")
            .await;
        b.settled_screenshot("profile-phone").await;
        // Another browser of the same account is signed out from here.
        let row = format!("#session-list tr[data-session-id='{other_session}']");
        b.wait_css(&row, "the other session").await;
        b.find(&format!("{row} button")).await.click().await.unwrap();
        b.wait_xpath(
            "//*[@id='sessions-alert' and contains(., 'was signed out')]",
            "the session signed out",
        )
        .await;
        let gone = b
            .js(&format!("return document.querySelector(\"{row}\") === null"))
            .await;
        assert_eq!(gone, true, "the ended session is no longer listed");
    })
    .await;
    assert_eq!(
        other.get("/api/v1/me").await.status(),
        401,
        "the session signed out on the profile page ended"
    );
}

/// Adds the member, assigns Alpha and Beta through the picker, resets the member's password;
/// returns the one-time password the page showed.
async fn assign_and_reset(app: &TestApp, b: &Browser) -> String {
    b.sign_in_at(app, "team", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    b.wait_css(".live.live-live", "the live indicator").await;
    b.fill("#member-email", MEMBER_EMAIL).await;
    b.fill("#member-name", MEMBER_NAME).await;
    b.fill("#member-password", "member-password-1").await;
    b.find("#member-role")
        .await
        .select_by_value("member")
        .await
        .unwrap();
    b.find("#add-member").await.click().await.unwrap();
    let open = format!("button[aria-label='Assign devices to {MEMBER_EMAIL}']");
    b.wait_css(&open, "the new member's Devices button").await;
    b.find(&open).await.click().await.unwrap();

    // The picker shows one page of the fleet, not all of it.
    b.wait_xpath(
        "//*[@id='device-results-summary' and contains(., 'of 63 devices')]",
        "the first page of devices",
    )
    .await;
    let shown = b
        .js("return document.querySelectorAll('#device-results li').length")
        .await;
    assert_eq!(shown, 20, "one page of the picker");

    // Search on the server; tick Alpha with the mouse.
    b.fill("#device-search", "Alpha").await;
    b.wait_js(
        "const rows = document.querySelectorAll('#device-results li'); return rows.length === 1 && rows[0].textContent.includes('Alpha Sales')",
        "the search for Alpha",
    )
    .await;
    b.find("#device-results input[type='checkbox']")
        .await
        .click()
        .await
        .unwrap();
    // Beta from the keyboard: the search field, then Space on the checkbox.
    b.fill("#device-search", "beta").await;
    b.wait_js(
        "const rows = document.querySelectorAll('#device-results li'); return rows.length === 1 && rows[0].textContent.includes('Beta Support')",
        "the search for Beta",
    )
    .await;
    b.find("#device-results input[type='checkbox']")
        .await
        .send_keys(" ")
        .await
        .unwrap();
    b.wait_xpath("//*[@id='assigned-count' and .='2']", "two devices ticked")
        .await;
    b.find("#save-assign").await.click().await.unwrap();
    b.wait_xpath(
        "//*[@id='assign-alert' and contains(., 'now sees 2 devices')]",
        "the assignment saved",
    )
    .await;
    b.settled_screenshot("assigned").await;

    // A role select and a reset that shows the one-time password once.
    b.wait_css(
        &format!("select[aria-label='Role of {MEMBER_EMAIL}']"),
        "the role select",
    )
    .await;
    b.js("window.confirm = () => true; return true").await;
    b.find(&format!(
        "button[aria-label='Reset the password of {MEMBER_EMAIL}']"
    ))
    .await
    .click()
    .await
    .unwrap();
    b.wait_css("#one-time:not([hidden])", "the one-time password")
        .await;
    let password = b
        .find("#one-time-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(password.len(), 20, "one-time password: {password:?}");
    b.settled_screenshot("one-time-password").await;
    b.find("#dismiss-one-time").await.click().await.unwrap();
    let left = b
        .js("return document.getElementById('one-time-value').value")
        .await;
    assert_eq!(left, "", "the password is not kept on the page");
    password
}

/// The member signs in with the one-time password, chooses their own and sees exactly the two
/// assigned devices.
async fn member_sees_two_devices(app: &TestApp, b: &Browser, one_time: &str) {
    b.goto(&app.url("/")).await;
    b.wait_css("#email", "the sign-in form").await;
    b.fill("#email", MEMBER_EMAIL).await;
    b.fill("#password", one_time).await;
    b.find("#login").await.click().await.unwrap();
    b.wait_js(
        "return !document.getElementById('password-form').hidden",
        "the new-password form",
    )
    .await;
    b.fill("#new-password", MEMBER_OWN_PASSWORD).await;
    b.fill("#repeat-password", MEMBER_OWN_PASSWORD).await;
    b.find("#set-password").await.click().await.unwrap();
    let names = b
        .wait_js(
            "const names = [...document.querySelectorAll('article.device-card h3')].map(h => h.textContent.trim()); \
             return names.includes('Alpha Sales') && names.includes('Beta Support') && names",
            "the member's devices",
        )
        .await;
    let mut names: Vec<String> = serde_json::from_value(names).unwrap();
    names.sort();
    assert_eq!(
        names,
        ["Alpha Sales", "Beta Support"],
        "exactly the assigned devices"
    );
    b.settled_screenshot("member-devices").await;
}

/// The owner changes the zone on the settings page: a bad name is refused under the field, a
/// good one relabels the page's clock and the team page's times.
async fn relabel_with_a_new_zone(app: &TestApp, b: &Browser, chatty: i64) {
    b.sign_in_at(app, "team", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let chat_before = chat_time(app, b, chatty).await;
    b.goto(&app.url("/team")).await;
    let label_of_admin = format!(
        "return [...document.querySelectorAll('#members tbody tr')].filter(r => r.textContent.includes('{ADMIN_EMAIL}')).map(r => r.querySelector('.last-login').textContent)[0]"
    );
    let before = b.wait_js(&label_of_admin, "the admin's last sign-in").await;
    assert_ne!(before, "Never");

    b.find("#nav-settings").await.click().await.unwrap();
    b.wait_js(
        "return document.getElementById('tenant-zone').value === 'Asia/Kuala_Lumpur'",
        "the tenant's zone",
    )
    .await;
    let clock = "return document.getElementById('zone-now').textContent";
    let kl_now = b.js(clock).await;

    b.fill("#tenant-zone", "Mars/Olympus").await;
    b.find("#save-business").await.click().await.unwrap();
    let note = b
        .wait_css("#tenant-zone-error", "the refusal under the zone field")
        .await;
    assert!(note.text().await.unwrap().contains("IANA"));
    b.wait_css(
        "#tenant-zone[aria-invalid='true']",
        "the zone marked invalid",
    )
    .await;
    b.settled_screenshot("zone-refused").await;

    b.fill("#tenant-zone", "America/Lima").await;
    b.find("#save-business").await.click().await.unwrap();
    b.wait_xpath(
        "//*[@id='business-alert' and contains(., 'America/Lima')]",
        "the zone saved",
    )
    .await;
    let missing = b
        .js("return document.getElementById('tenant-zone-error') === null")
        .await;
    assert_eq!(missing, true, "the refusal is cleared");
    let lima_now = b
        .wait_js(
            "const c = document.getElementById('zone-now'); return c.dataset.zone === 'America/Lima' && c.textContent",
            "the clock in the new zone",
        )
        .await;
    assert_ne!(lima_now, kl_now, "the clock is relabelled");
    b.settled_screenshot("zone-changed").await;

    b.find("#nav-team").await.click().await.unwrap();
    let after = b.wait_js(&label_of_admin, "the admin's last sign-in").await;
    assert_ne!(after, before, "the sign-in time shows in the new zone");
    b.settled_screenshot("team-relabelled").await;

    // Kuala Lumpur is 13 hours ahead of Lima: the chat's time moves back by 13 hours.
    let chat_after = chat_time(app, b, chatty).await;
    let minutes = |label: &str| -> i64 {
        let (h, m) = label
            .split_once(':')
            .unwrap_or_else(|| panic!("{label} is no HH:MM"));
        h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()
    };
    assert_eq!(
        (minutes(&chat_before) - minutes(&chat_after)).rem_euclid(24 * 60),
        13 * 60,
        "{chat_before} in Kuala Lumpur, {chat_after} in Lima"
    );
    b.settled_screenshot("chat-relabelled").await;
}

/// The time label of the only chat on `device`'s WhatsApp-Web page.
async fn chat_time(app: &TestApp, b: &Browser, device: i64) -> String {
    b.goto(&app.url(&format!("/device/{device}/whatsapp-web")))
        .await;
    let label = b
        .wait_js(
            "const t = document.querySelector('.chat-time'); return t && t.textContent",
            "the chat's time",
        )
        .await;
    label.as_str().unwrap_or_default().to_string()
}
