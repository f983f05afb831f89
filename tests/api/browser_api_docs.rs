//! The API reference (`/api/docs`) in headless chromium, with nothing but the daemon to reach.
//!
//! At 1280 px: open `/api/docs` signed out → sent to the sign-in page, which returns there →
//! RapiDoc lists the operations by tag (`/api/v1/devices` and the devices tag's description) →
//! every resource the page loaded came from the daemon's origin, no web font was added, and the
//! viewer's inline styles apply (the page's own policy allows them) → "Try" on `POST
//! /api/v1/tokens` sends the documented example with the session cookie and `X-CSRF-Token`: 201,
//! and the token exists → the dashboard's footer link "API" leads back to the reference.
//! At 390 px (device emulation): the reference renders and fits the width.
//!
//! Screenshots: `test-artifacts/screenshots/api-docs-<step>-<width>.png`. chromium and
//! chromedriver are required, as in `browser.rs`.
//!
//! Without a browser: the page holds no part of the OpenAPI document, names only this origin,
//! and is the only page served with inline styles allowed; every dashboard page links it.

use serde_json::Value;
use wafleet::web::headers::{DOCS_POLICY, PAGE_POLICY};

use crate::browser::Chromedriver;
use crate::browser_chat::Browser;
use crate::helpers::{spawn_app_with, Backend, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The dashboard's pages, each with the footer link "API" to the reference. (The WhatsApp-Web
/// view of one device fills the window like the app it imitates and has no footer.)
const DASHBOARD_PAGES: [&str; 6] = [
    "/",
    "/static/leads.html",
    "/static/campaigns.html",
    "/static/sequences.html",
    "/static/team.html",
    "/static/webhooks.html",
];

/// Defines `text(node)`: the text under `node`, shadow roots included. RapiDoc renders into
/// nested shadow roots, which neither XPath nor the page's `innerText` reach.
const DEEP_TEXT: &str = "const text = (node) => { \
    let out = node.nodeType === Node.TEXT_NODE ? node.data : ''; \
    if (node.shadowRoot) out += text(node.shadowRoot); \
    for (const child of node.childNodes) out += text(child); \
    return out; };";

/// Defines `tryPanel(method, path)`: the request panel of one operation, or null.
const TRY_PANEL: &str = "const tryPanel = (method, path) => { \
    const root = document.querySelector('rapi-doc')?.shadowRoot; \
    if (!root) return null; \
    return [...root.querySelectorAll('api-request')].find((r) => \
      r.getAttribute('method').toLowerCase() === method \
      && r.getAttribute('path') === path) || null; };";

/// The devices tag's description in the OpenAPI document (src/web/mod.rs).
const DEVICES_TAG_TEXT: &str = "The WhatsApp accounts of the fleet";
/// The name in the documented example of `POST /api/v1/tokens`.
const EXAMPLE_TOKEN_NAME: &str = "CRM sync";

#[actix_web::test]
async fn api_reference_renders_offline_in_chromium() {
    let driver = Chromedriver::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    Browser::session(&driver, 1280, "api-docs", async |b| {
        read_and_try(&app, b).await
    })
    .await;
    Browser::session(&driver, 390, "api-docs", async |b| {
        sign_in_to_reference(&app, b).await;
        b.settled_screenshot("reference").await;
    })
    .await;
}

/// The walk at desktop width (see the module doc).
async fn read_and_try(app: &TestApp, b: &Browser) {
    sign_in_to_reference(app, b).await;
    b.settled_screenshot("reference").await;

    // Everything came from the daemon: the page, its scripts and styles, the document.
    let loaded = b
        .js("return [location.origin, performance.getEntriesByType('resource').map((e) => e.name)]")
        .await;
    let origin = format!("{}/", loaded[0].as_str().unwrap());
    let resources: Vec<&str> = loaded[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    for wanted in [
        "/static/vendor/rapidoc/rapidoc-min.js",
        "/static/api-docs.js",
        "/static/app.css",
        "/api/v1/openapi.json",
    ] {
        assert!(
            resources.iter().any(|name| name.contains(wanted)),
            "{wanted} was not loaded: {resources:?}"
        );
    }
    let foreign: Vec<_> = resources
        .iter()
        .filter(|name| !name.starts_with(&origin))
        .collect();
    assert!(foreign.is_empty(), "loaded from elsewhere: {foreign:?}");
    let fonts = b
        .js("return [...document.fonts].map((f) => f.family)")
        .await;
    assert!(
        !fonts.to_string().contains("Open Sans"),
        "RapiDoc's web font was added: {fonts}"
    );
    // The viewer's styles live in its templates (inline): the page's own policy lets them
    // apply, so the "Try" button wears the primary colour set on <rapi-doc>.
    let try_colour = b
        .js(&format!(
            "{TRY_PANEL} const panel = tryPanel('get', '/api/v1/devices'); \
             const button = panel?.shadowRoot?.querySelector('button[part~=\"btn-try\"]'); \
             return button ? getComputedStyle(button).backgroundColor : null;"
        ))
        .await;
    assert_eq!(try_colour, "rgb(0, 128, 105)", "the viewer's inline styles");

    // "Try" on POST /api/v1/tokens sends the documented example as the signed-in owner.
    let response_text = format!(
        "{DEEP_TEXT} {TRY_PANEL} const panel = tryPanel('post', '/api/v1/tokens'); \
         const message = panel?.shadowRoot?.querySelector('.response-message'); \
         return message ? text(message) : null;"
    );
    let clicked = b
        .js(&format!(
            "{TRY_PANEL} const panel = tryPanel('post', '/api/v1/tokens'); \
             const button = panel?.shadowRoot?.querySelector('button[part~=\"btn-try\"]'); \
             if (!button) return false; \
             panel.scrollIntoView({{block: 'start'}}); button.click(); return true;"
        ))
        .await;
    assert_eq!(clicked, true, "the Try button of POST /api/v1/tokens");
    let status = b
        .wait_js(
            &response_text,
            "the answer to POST /api/v1/tokens in the reference",
        )
        .await;
    assert!(
        status.as_str().unwrap().contains("201"),
        "Try POST /api/v1/tokens answered {status}"
    );
    let admin = app.admin().await;
    let tokens: Value = admin.get("/api/v1/tokens").await.json().await.unwrap();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == EXAMPLE_TOKEN_NAME),
        "the example's token was created: {tokens}"
    );
    b.settled_screenshot("try-token").await;

    // The dashboard's footer leads to the reference.
    b.goto(&app.url("/")).await;
    b.wait_css("#topbar:not([hidden])", "the dashboard").await;
    b.find("footer a#footer-api").await.click().await.unwrap();
    wait_for_reference(b).await;
}

/// Opens `/api/docs` signed out, signs in as the admin on the sign-in page it sends the browser
/// to, and waits until the reference is back and lists the operations.
async fn sign_in_to_reference(app: &TestApp, b: &Browser) {
    b.goto(&app.url("/api/docs")).await;
    let email = b.wait_css("#email", "the sign-in form").await;
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/static/login.html", "signed out: {url}");
    assert_eq!(url.query(), Some("next=%2Fapi%2Fdocs"), "signed out: {url}");
    email.send_keys(ADMIN_EMAIL).await.unwrap();
    b.fill("#password", ADMIN_PASSWORD).await;
    b.find("#login").await.click().await.unwrap();
    wait_for_reference(b).await;
}

/// Waits until `/api/docs` shows the top bar and RapiDoc lists the operations by tag.
async fn wait_for_reference(b: &Browser) {
    b.wait_css("body.docs-body #topbar:not([hidden])", "the reference page")
        .await;
    b.wait_js(
        &format!(
            "{DEEP_TEXT} const root = document.querySelector('rapi-doc')?.shadowRoot; \
             if (!root || !document.getElementById('docs-status').hidden) return false; \
             const all = text(root); \
             return ['/api/v1/devices', '/api/v1/campaigns', '{DEVICES_TAG_TEXT}'] \
               .every((t) => all.includes(t));"
        ),
        "the reference to list the operations by tag",
    )
    .await;
}

#[actix_web::test]
async fn the_reference_page_holds_no_document_and_alone_allows_inline_styles() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();

    // Signed out, the page is served like every page: it is a shell without data.
    let page = app.get("/api/docs").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["content-security-policy"], DOCS_POLICY);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("<rapi-doc"), "{html}");
    assert!(html.contains(r#"load-fonts="false""#), "web fonts off");
    assert!(
        html.contains(r#"allow-spec-url-load="false""#),
        "no spec URL box"
    );
    for document_text in ["\"paths\"", "/api/v1/devices", "securitySchemes"] {
        assert!(
            !html.contains(document_text),
            "the page holds part of the document: {document_text}"
        );
    }
    // Every address it names is a path on this origin.
    for attribute in ["src=\"", "href=\""] {
        for value in html.split(attribute).skip(1) {
            let address = value.split('"').next().unwrap();
            assert!(
                address.starts_with('/') && !address.starts_with("//"),
                "{attribute}{address}\" leaves the origin"
            );
        }
    }

    // Its scripts are served as JavaScript, under the strict policy of every other answer.
    for script in [
        "/static/vendor/rapidoc/rapidoc-min.js",
        "/static/api-docs.js",
    ] {
        let response = app.get(script).await;
        assert_eq!(response.status(), 200, "{script}");
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.contains("javascript"), "{script}: {kind}");
        assert_eq!(
            response.headers()["content-security-policy"],
            PAGE_POLICY,
            "{script}"
        );
    }
    let license = app.get("/static/vendor/rapidoc/LICENSE.txt").await;
    assert_eq!(license.status(), 200, "the licence ships with the viewer");

    // Every other page keeps the strict policy; the dashboard's pages link the reference.
    for path in DASHBOARD_PAGES {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["content-security-policy"],
            PAGE_POLICY,
            "{path}"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains(r#"<a href="/api/docs" id="footer-api">API</a>"#),
            "{path} has no footer link to the reference"
        );
    }
    for path in ["/static/login.html", "/device/1/whatsapp-web"] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["content-security-policy"],
            PAGE_POLICY,
            "{path}"
        );
    }
}
