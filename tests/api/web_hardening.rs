//! Security headers, `/metrics` access, media served safely, and the OpenAPI security schemes.

use reqwest::header::HeaderMap;
use serde_json::Value;
use wafleet::chat::media::MediaStore;
use wafleet::chat::store::{write_batch, ChatWrite, NewMessage};

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp, METRICS_TOKEN};

both_backends!(
    metrics_need_the_scrape_token_or_a_platform_admin,
    media_of_unlisted_types_download_sandboxed
);

fn assert_page_headers(headers: &HeaderMap, what: &str) {
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{what}: {directive} in {policy}"
        );
    }
    assert!(!policy.contains("unsafe-inline"), "{what}: {policy}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
}

#[actix_web::test]
async fn pages_api_and_errors_carry_security_headers() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    for path in ["/", "/static/app.js", "/healthz", "/api/v1/me", "/nowhere"] {
        let response = app.get(path).await;
        assert_page_headers(response.headers(), path);
        assert!(
            !response.headers().contains_key("strict-transport-security"),
            "{path}: no HSTS over plain-cookie deployments"
        );
    }
}

#[actix_web::test]
async fn secure_cookie_deployments_send_hsts() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    let response = app.get("/").await;
    assert_page_headers(response.headers(), "/");
    let hsts = response.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age=31536000"), "{hsts}");
}

async fn metrics_need_the_scrape_token_or_a_platform_admin(app: TestApp) {
    let anonymous = crate::helpers::new_client();
    let url = app.url("/metrics");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(anonymous.get(&url).send().await.unwrap()), 401);
    let wrong = anonymous.get(&url).bearer_auth("test-metrics-tokeN");
    assert_eq!(status(wrong.send().await.unwrap()), 401);
    let owner = app.new_tenant("Scrapers").await;
    assert_eq!(owner.get("/metrics").await.status(), 403);

    let scraped = app.metrics().await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("wafleet_http_requests_total"));
    let admin = app.admin().await;
    assert_eq!(admin.get("/metrics").await.status(), 200);
}

#[actix_web::test]
async fn a_metrics_listener_serves_metrics_alone() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__METRICS__LISTEN", "127.0.0.1:0")],
    )
    .await
    .unwrap();
    let port = app.metrics_port.expect("the metrics listener is bound");
    let client = crate::helpers::new_client();
    let own = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("wafleet_ws_sessions"));
    let other = client
        .get(format!("http://127.0.0.1:{port}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "the metrics listener serves nothing else"
    );
    // The main listener no longer serves it, even to the token.
    assert_eq!(app.metrics().await.status(), 404);
    assert_eq!(
        client
            .get(app.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// Stores `bytes` as a media file of an inbound message claiming `mime`; returns its URL.
async fn stored_media(
    app: &TestApp,
    tenant_id: i64,
    device_id: i64,
    mime: &str,
    bytes: &[u8],
) -> String {
    let sha = MediaStore::new(app.settings.chat.media_dir.clone())
        .save(bytes)
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let from = "60123450001@s.whatsapp.net";
    write_batch(
        &app.db,
        vec![ChatWrite::Message {
            chat_jid: from.into(),
            learned: Vec::new(),
            chat_name: None,
            unread: true,
            media: None,
            row: Box::new(NewMessage {
                tenant_id,
                device_id,
                chat_id: 0,
                wa_id: format!("3EB0{}", &sha[..16]),
                sender_jid: from.into(),
                sender_name: None,
                from_me: false,
                body: None,
                media_mime: Some(mime.into()),
                media_size: Some(bytes.len() as i64),
                media_sha256: Some(sha.clone()),
                status: "received".into(),
                sent_at: now,
                created_at: now,
                kind: "text".into(),
                file_name: None,
                detail: None,
                quoted_id: None,
                quoted_sender: None,
                quoted_text: None,
                media_ref: None,
            }),
        }],
    )
    .await
    .unwrap();
    format!("/api/v1/media/{sha}")
}

async fn media_of_unlisted_types_download_sandboxed(app: TestApp) {
    let owner = app.new_tenant("Media").await;
    let device: Value = owner
        .post("/api/v1/devices", &serde_json::json!({ "name": "inbox" }))
        .await
        .json()
        .await
        .unwrap();
    let device = device["id"].as_i64().unwrap();

    let page = b"<html><script>fetch('/api/v1/tokens')</script></html>";
    let url = stored_media(&app, owner.tenant_id, device, "text/html", page).await;
    let served = owner.get(&url).await;
    assert_eq!(served.status(), 200);
    let headers = served.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("sandbox"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(served.bytes().await.unwrap().as_ref(), page);

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>";
    let url = stored_media(&app, owner.tenant_id, device, "image/svg+xml", svg).await;
    assert_eq!(
        owner.get(&url).await.headers()["content-type"],
        "application/octet-stream"
    );

    let voice = b"OggS\0fake-voice-note";
    let url = stored_media(
        &app,
        owner.tenant_id,
        device,
        "audio/ogg; codecs=opus",
        voice,
    )
    .await;
    let served = owner.get(&url).await;
    assert_eq!(served.headers()["content-type"], "audio/ogg");
    assert!(!served.headers().contains_key("content-disposition"));
    assert!(served.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
}

#[actix_web::test]
async fn the_openapi_document_says_how_to_authenticate() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["type"], "apiKey");
    assert_eq!(schemes["session"]["in"], "cookie");
    let global = doc["security"].as_array().unwrap();
    assert_eq!(global.len(), 2, "{global:?}");
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["security"],
        serde_json::json!([]),
        "signing in needs no credential"
    );
    assert!(
        doc["paths"]["/api/v1/devices"]["get"]["security"].is_null(),
        "other operations inherit the global requirement"
    );
}
