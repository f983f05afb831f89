//! The dashboard in a real browser: Debian chromium driven through chromedriver (WebDriver, via
//! fantoccini), once at a phone width and once at a desktop width.
//!
//! Flow per width: open `/` signed out → redirected to the sign-in page → a wrong password shows
//! an error → sign in as the admin → the dashboard greets them → the team page adds a member
//! through its form and lists it → an API token is created and its secret shown once. Each page
//! is saved as `test-artifacts/screenshots/<page>-<width>.png`; a failed wait saves
//! `failure-<width>.png` and reports the page's URL and text.
//!
//! Devices, per width: the devices view lists a small fleet and goes live over the WebSocket →
//! "Add device" → a name → the QR code image loads → the simulated phone scans it (the test calls
//! `POST /api/v1/sim/scan` as the admin) → the dialog closes and the card turns "Online", pushed
//! over the WebSocket: the page is not reloaded and the list is not fetched again.
//!
//! Chrome keeps windows at least 500 px wide, so the phone width comes from device emulation.
//!
//! The app runs with Secure `__Host-` cookies on plain `http://127.0.0.1`, which Chrome accepts
//! because loopback addresses are secure contexts. chromium and chromedriver are required: when
//! either is missing the test fails with a message saying so rather than skipping (CI installs
//! them).

use std::fs;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::json;

use crate::fault::free_port;
use crate::helpers::{
    spawn_app_with, wait_until, Backend, TestApp, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// Debian's chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for any page state; generous for a loaded 2-core CI machine.
const WAIT: Duration = Duration::from_secs(30);
/// Phone and desktop viewport widths.
const WIDTHS: [u32; 2] = [360, 1280];
/// Display name and tenant of the bootstrap admin (see `auth::bootstrap`).
const ADMIN_NAME: &str = "Administrator";
const ADMIN_TENANT: &str = "Default";
/// The session cookie's name with secure cookies on.
const SECURE_COOKIE: &str = "__Host-wafleet_session";

#[actix_web::test]
async fn dashboard_sign_in_and_team_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    for width in WIDTHS {
        let browser = Browser::open(&driver, width).await;
        // Close the session even when the walk fails, so no chromium outlives the test.
        let outcome = AssertUnwindSafe(walk_through(&app, &browser))
            .catch_unwind()
            .await;
        browser.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// An account with a one-time password is asked for its own on the sign-in page, and reaches
/// the dashboard once it is set (the API refuses everything else until then).
#[actix_web::test]
async fn a_one_time_password_is_replaced_at_sign_in_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let admin = wafleet::auth::store::find_user_by_email(&app.db, ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let patch = wafleet::auth::model::UserPatch {
        must_change_password: Some(true),
        ..Default::default()
    };
    wafleet::auth::store::update_user(&app.db, admin.tenant_id.unwrap(), admin.id, patch)
        .await
        .unwrap();
    let browser = Browser::open(&driver, WIDTHS[1]).await;
    let outcome = AssertUnwindSafe(async {
        submit_sign_in(&app, &browser).await;
        browser
            .wait_until_js(
                "return !document.getElementById('password-form').hidden",
                "the new-password form",
            )
            .await;
        let chosen = "my own long passphrase";
        browser
            .find("#new-password")
            .await
            .send_keys(chosen)
            .await
            .unwrap();
        browser
            .find("#repeat-password")
            .await
            .send_keys(chosen)
            .await
            .unwrap();
        browser.find("#set-password").await.click().await.unwrap();
        wait_for_dashboard(&browser, "the dashboard after the new password").await;
        let renewed = app.login(ADMIN_EMAIL, chosen).await;
        assert_eq!(renewed.get("/api/v1/devices").await.status(), 200);
    })
    .catch_unwind()
    .await;
    browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Sign-in, dashboard and team pages at the browser's width.
async fn walk_through(app: &TestApp, browser: &Browser) {
    // Signed out, the dashboard sends us to the sign-in page.
    browser.goto(&app.url("/")).await;
    let email = browser
        .wait_for(Locator::Css("#email"), "the sign-in form")
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/static/login.html", "redirected to {url}");
    browser.assert_fits("login").await;
    browser.screenshot("login").await;

    // A wrong password is explained on the page.
    let password = browser.find("#password").await;
    email.send_keys(ADMIN_EMAIL).await.unwrap();
    password.send_keys("not-the-password").await.unwrap();
    browser.find("#login").await.click().await.unwrap();
    browser
        .wait_for(
            Locator::XPath(
                "//*[@id='login-error' and not(@hidden) and contains(., 'Wrong email or password')]",
            ),
            "the wrong-password message",
        )
        .await;

    // The right password leads to the dashboard, which greets the admin.
    password.clear().await.unwrap();
    password.send_keys(ADMIN_PASSWORD).await.unwrap();
    browser.find("#login").await.click().await.unwrap();
    let whoami = format!(
        "//*[@id='whoami' and contains(., '{ADMIN_NAME}') and contains(., '{ADMIN_TENANT}')]"
    );
    browser
        .wait_for(Locator::XPath(&whoami), "the greeting in #whoami")
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/", "after sign-in the browser is at {url}");
    let cookie = browser
        .client
        .get_named_cookie(SECURE_COOKIE)
        .await
        .unwrap_or_else(|e| panic!("no {SECURE_COOKIE} cookie after sign-in: {e}"));
    assert_eq!(cookie.secure(), Some(true), "the session cookie is Secure");
    assert_eq!(
        cookie.http_only(),
        Some(true),
        "the session cookie is HttpOnly"
    );
    browser.find("section#devices").await;
    browser.find("#nav-team").await;
    browser.assert_fits("dashboard").await;
    browser.screenshot("dashboard").await;

    // The team page lists the admin; the form adds a member who then shows in the table.
    browser.find("#nav-team").await.click().await.unwrap();
    let admin_row = format!("//table[@id='members']/tbody/tr[td[contains(., '{ADMIN_EMAIL}')]]");
    browser
        .wait_for(Locator::XPath(&admin_row), "the admin in the members table")
        .await;
    let member_email = format!("agent-{}@shop.test", browser.width);
    browser
        .find("#member-email")
        .await
        .send_keys(&member_email)
        .await
        .unwrap();
    browser
        .find("#member-name")
        .await
        .send_keys("Aisyah Agent")
        .await
        .unwrap();
    browser
        .find("#member-password")
        .await
        .send_keys("member-password-1")
        .await
        .unwrap();
    browser
        .find("#member-role")
        .await
        .select_by_value("viewer")
        .await
        .unwrap();
    browser.find("#add-member").await.click().await.unwrap();
    let member_row = format!(
        "//table[@id='members']/tbody/tr[td[contains(., '{member_email}')] and td[contains(., 'Viewer')]]"
    );
    browser
        .wait_for(
            Locator::XPath(&member_row),
            "the new member in the members table",
        )
        .await;
    browser
        .wait_for(
            Locator::XPath("//*[@id='team-alert' and contains(., 'was added')]"),
            "the confirmation of the new member",
        )
        .await;
    browser.assert_fits("team").await;
    browser.screenshot("team").await;

    // A new API token is shown once, then listed by its prefix only.
    let token_name = format!("CRM sync {}", browser.width);
    browser
        .find("#token-name")
        .await
        .send_keys(&token_name)
        .await
        .unwrap();
    browser.find("#scope-write").await.click().await.unwrap();
    browser.find("#create-token").await.click().await.unwrap();
    browser
        .wait_for(
            Locator::XPath("//*[@id='new-token' and not(@hidden)]"),
            "the new token's secret",
        )
        .await;
    let secret = browser
        .find("#new-token-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(secret.starts_with("wfl_"), "token shown once: {secret:?}");
    let token_row = format!(
        "//table[@id='token-list']/tbody/tr[td[contains(., '{token_name}')] and td[contains(., 'write')]]"
    );
    browser
        .wait_for(
            Locator::XPath(&token_row),
            "the new token in the token list",
        )
        .await;
    browser
        .client
        .execute(
            "document.getElementById('tokens').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    browser.assert_fits("tokens").await;
    browser.screenshot("tokens").await;
}

#[actix_web::test]
async fn devices_add_and_pair_live_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    // The test's own admin session, standing in for the phone (the simulator's scan).
    let admin = app.admin().await;
    // A small fleet for the view to show: one device online, one waiting for its QR scan.
    let front_desk = create_device(&admin, "Front desk").await;
    scan(&admin, front_desk).await;
    create_device(&admin, "Warehouse").await;
    for width in WIDTHS {
        let browser = Browser::open(&driver, width).await;
        let outcome = AssertUnwindSafe(add_device_live(&app, &admin, &browser))
            .catch_unwind()
            .await;
        browser.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Devices view, "Add device", QR code, pairing seen live, at the browser's width.
async fn add_device_live(app: &TestApp, admin: &UserClient, browser: &Browser) {
    sign_in(app, browser).await;
    browser
        .wait_for(
            Locator::XPath("//*[@id='live-indicator' and normalize-space()='Live']"),
            "the live indicator to say Live",
        )
        .await;
    browser
        .wait_for(
            Locator::XPath(&card_status_xpath("Front desk", "Online")),
            "the online device's card",
        )
        .await;
    browser
        .wait_for(
            Locator::XPath(
                "//*[@id='status-chips']/button[@data-status='online']\
                 [.//*[@class='chip-count' and normalize-space()!='0']]",
            ),
            "the Online chip with its count",
        )
        .await;
    browser.assert_fits("devices").await;
    browser.screenshot("devices").await;

    // Marks this page: were it reloaded, the mark would be gone.
    browser
        .client
        .execute("window.wafleetTestMark = 'same page';", vec![])
        .await
        .unwrap();

    // "Add device": a name, then the QR code to scan.
    browser.find("#add-device").await.click().await.unwrap();
    let name = browser
        .wait_for(
            Locator::XPath("//dialog[@id='add-device-dialog' and @open]//input[@id='device-name']"),
            "the Add device dialog",
        )
        .await;
    let device_name = format!("Sales {}", browser.width);
    name.send_keys(&device_name).await.unwrap();
    browser.find("#create-device").await.click().await.unwrap();
    browser
        .wait_until_js(
            "const img = document.querySelector('img#qr-image'); \
             return !!img && !img.hidden && img.complete && img.naturalWidth > 0 \
               && img.getAttribute('src').startsWith('/api/v1/devices/');",
            "the QR code image to load",
        )
        .await;
    browser.assert_fits("add-device-qr").await;
    browser.screenshot("add-device-qr").await;

    // How often the page has read the device list so far (the count refreshes use per_page=1).
    const LIST_READS: &str = "return performance.getEntriesByType('resource') \
        .filter((e) => e.name.includes('/api/v1/devices?') && e.name.includes('per_page=200')).length;";
    let reads_before = browser.client.execute(LIST_READS, vec![]).await.unwrap();

    // The phone scans the code.
    let id = device_id(admin, &device_name).await;
    scan(admin, id).await;

    // The news arrives over the WebSocket: the dialog closes with a message, the card turns
    // Online, on the same page and without reading the list again.
    let card = format!(
        "//article[@data-device-id='{id}']//*[contains(@class, 'status-badge') and normalize-space()='Online']"
    );
    browser
        .wait_for(
            Locator::XPath(&card),
            "the new device's card to show Online",
        )
        .await;
    browser
        .wait_for(
            Locator::XPath(&format!(
                "//*[@id='devices-alert' and not(@hidden) and contains(., '{device_name}') \
                 and contains(., 'linked and online')]"
            )),
            "the success message",
        )
        .await;
    let state = browser
        .client
        .execute(
            "return [document.getElementById('add-device-dialog').open, window.wafleetTestMark];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        state,
        json!([false, "same page"]),
        "dialog closed, page kept"
    );
    let reads_after = browser.client.execute(LIST_READS, vec![]).await.unwrap();
    assert_eq!(
        reads_after, reads_before,
        "the card changed from the WebSocket event, not by reading the list again"
    );
    browser
        .client
        .execute(
            &format!(
                "document.querySelector(\"article[data-device-id='{id}']\").scrollIntoView({{block: 'center'}});"
            ),
            vec![],
        )
        .await
        .unwrap();
    browser.assert_fits("device-online").await;
    browser.screenshot("device-online").await;
}

/// Signs in as the admin through the sign-in page and waits for the dashboard.
async fn sign_in(app: &TestApp, browser: &Browser) {
    submit_sign_in(app, browser).await;
    wait_for_dashboard(browser, "the dashboard after sign-in").await;
}

/// Opens the sign-in page and submits the bootstrap admin's credentials.
async fn submit_sign_in(app: &TestApp, browser: &Browser) {
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(Locator::Css("#email"), "the sign-in form")
        .await
        .send_keys(ADMIN_EMAIL)
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.find("#login").await.click().await.unwrap();
}

/// Waits until the dashboard greets the admin.
async fn wait_for_dashboard(browser: &Browser, what: &str) {
    browser
        .wait_for(
            Locator::XPath(&format!(
                "//*[@id='whoami' and contains(., '{ADMIN_NAME}')]"
            )),
            what,
        )
        .await;
}

/// XPath of the status badge reading `status` on the card of the device named `name`.
fn card_status_xpath(name: &str, status: &str) -> String {
    format!(
        "//article[contains(@class, 'device-card')][.//h3[normalize-space()='{name}']]\
         //*[contains(@class, 'status-badge') and normalize-space()='{status}']"
    )
}

/// Creates a device through the API; returns its id.
async fn create_device(admin: &UserClient, name: &str) -> i64 {
    let response = admin
        .post("/api/v1/devices", &json!({ "name": name }))
        .await;
    assert_eq!(response.status(), 201, "create device {name}");
    let device: serde_json::Value = response.json().await.unwrap();
    device["id"].as_i64().unwrap()
}

/// The id of the device named `name`.
async fn device_id(admin: &UserClient, name: &str) -> i64 {
    let page: serde_json::Value = admin
        .get("/api/v1/devices?per_page=500")
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["id"].as_i64())
        .unwrap_or_else(|| panic!("no device named {name} in {page}"))
}

/// Completes the device's pending QR pairing with the simulator, once its pairing has started.
async fn scan(admin: &UserClient, id: i64) {
    wait_until("the simulator to scan the QR code", WAIT, || async move {
        let response = admin
            .post("/api/v1/sim/scan", &json!({ "device_id": id }))
            .await;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// A chromedriver child process on a free port, killed when dropped.
pub(crate) struct Chromedriver {
    child: Child,
    pub(crate) url: String,
    /// One browser test (or fault drill) at a time.
    _heavy: tokio::sync::MutexGuard<'static, ()>,
}

impl Chromedriver {
    /// Starts chromedriver and waits until it accepts connections.
    pub(crate) async fn start() -> Chromedriver {
        let heavy = crate::helpers::heavy_test().await;
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the browser test needs {path} (Debian package {package}), which is missing; \
                 install it with: apt-get install chromium chromium-driver"
            );
        }
        let port = free_port();
        let log = artifacts_dir().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _heavy: heavy,
        };
        wait_until("chromedriver to listen", WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop)
        })
        .await;
        driver
    }
}

impl Drop for Chromedriver {
    /// Asks chromedriver to quit every browser it started and exit (a killed chromedriver would
    /// leave its chromium running), then kills it if it has not exited within a few seconds.
    fn drop(&mut self) {
        let address = self.url.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request =
                format!("GET /shutdown HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts headless chromium with a fresh profile (returned: it must outlive the session) and a
/// viewport `width` × `height` CSS pixels. Windows are never narrower than 500 px, so the width
/// comes from device emulation (below 768 px: a phone, with touch and the viewport meta tag).
pub(crate) async fn start_chromium(
    driver: &Chromedriver,
    width: u32,
    height: u32,
) -> (Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--window-size={width},900"),
    ];
    let phone = width < 768;
    let emulation = json!({ "deviceMetrics": {
        "width": width, "height": height, "pixelRatio": 1.0, "mobile": phone, "touch": phone
    }});
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args, "mobileEmulation": emulation }),
    );
    // chromedriver is on loopback: plain HTTP, no TLS connector needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver did not start chromium: {e}"));
    (client, profile)
}

/// One headless chromium session with its own fresh profile.
struct Browser {
    client: Client,
    width: u32,
    // Removed after the session is closed (field order: dropped after `client`).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens chromium with a window `width` pixels wide.
    async fn open(driver: &Chromedriver, width: u32) -> Browser {
        let (client, profile) = start_chromium(driver, width, 900).await;
        Browser {
            client,
            width,
            _profile: profile,
        }
    }

    /// Ends the WebDriver session, which quits chromium.
    async fn close(self) {
        let _ = self.client.close().await;
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The element matching `css`, which must be on the page now.
    async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => self.fail(&format!("{css} is not on the page ({e})")).await,
        }
    }

    /// Polls until `locator` matches, failing with the page's URL, text and a screenshot.
    async fn wait_for(&self, locator: Locator<'_>, what: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.client.wait().at_most(left).for_element(locator).await {
                Ok(element) => return element,
                // A page's script sent the browser elsewhere while the driver looked (`/` sends
                // a signed-out visitor on to sign in): look again on the new page.
                Err(e) if e.to_string().contains("aborted by navigation") && !left.is_zero() => {}
                Err(e) => {
                    return self
                        .fail(&format!(
                            "timed out after {WAIT:?} waiting for {what} ({e})"
                        ))
                        .await
                }
            }
        }
    }

    /// Polls until `script` returns true, failing like [`Browser::wait_for`].
    async fn wait_until_js(&self, script: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.execute(script, vec![]).await {
                Ok(serde_json::Value::Bool(true)) => return,
                Ok(_) => {}
                Err(e) => {
                    self.fail::<()>(&format!("{what}: script failed ({e})"))
                        .await
                }
            }
            if Instant::now() >= deadline {
                self.fail::<()>(&format!("timed out after {WAIT:?} waiting for {what}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts the page is laid out for this width and needs no sideways scrolling.
    async fn assert_fits(&self, page: &str) {
        let widths = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert_eq!(
            inner,
            u64::from(self.width),
            "viewport width of the {page} page"
        );
        if scroll > inner {
            self.fail::<()>(&format!(
                "the {page} page is {scroll}px wide in a {inner}px window"
            ))
            .await;
        }
    }

    /// Saves the viewport as `<name>-<width>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let path = screenshots_dir().join(format!("{name}-{}.png", self.width));
        fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Fails the test, saying where the browser is and what it shows.
    async fn fail<T>(&self, problem: &str) -> T {
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
            let _ = fs::write(
                screenshots_dir().join(format!("failure-{}.png", self.width)),
                png,
            );
        }
        panic!(
            "at width {}: {problem}\n  page: {url}\n  text: {}",
            self.width,
            text.replace('\n', " | ")
        );
    }
}

/// `test-artifacts/` under the crate root (gitignored), created on demand.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `test-artifacts/screenshots/`, created on demand.
fn screenshots_dir() -> PathBuf {
    let dir = artifacts_dir().join("screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}
