//! An open WebSocket follows its credential: it is closed with 4401 once its token is revoked,
//! its session signed out, its user disabled or its devices changed (at once when the change is
//! announced on this daemon, else at the periodic re-check), and at its maximum lifetime.
//! Viewers never receive pairing secrets, on the stream or over REST.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, UserClient, USER_PASSWORD};
use crate::ws::{connect, next_json, subscribe, Ws, WsAuth};

/// Re-checks every second, so the periodic path is what closes.
const RECHECK_FAST: &[(&str, &str)] = &[("WAFLEET__WS__RECHECK_SECS", "1")];
/// Sessions live two seconds.
const SHORT_LIFE: &[(&str, &str)] = &[("WAFLEET__WS__MAX_LIFETIME_SECS", "2")];

crate::both_backends!(with super::RECHECK_FAST;
    a_revoked_token_closes_its_websocket,
    signing_out_closes_the_sessions_websocket,
    disabling_a_user_closes_their_websocket,
    a_changed_assignment_closes_a_members_websocket,
);

// The default re-check period (30 s) is far beyond the waits: only the immediate path closes.
crate::both_backends!(
    deleting_a_device_rechecks_its_members_at_once,
    an_access_change_on_this_daemon_rechecks_at_once,
    viewers_never_see_pairing_secrets,
);

crate::both_backends!(with super::SHORT_LIFE; a_session_closes_at_its_maximum_lifetime);

/// How long a close may take: a re-check, or a period of one second plus the round trip.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Reads until the server closes; answers the close code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Message::Close(None)) => panic!("closed without a code"),
                Ok(_) => {}
                Err(err) => panic!("stream failed before a close: {err}"),
            }
        }
        panic!("stream ended without a close");
    };
    tokio::time::timeout(CLOSE_WITHIN, read)
        .await
        .expect("the WebSocket was not closed in time")
}

/// Asserts a 4401 close whose reason contains `reason`.
async fn assert_closed_4401(ws: &mut Ws, reason: &str) {
    let (code, text) = closed(ws).await;
    assert_eq!(code, 4401, "{text}");
    assert!(text.contains(reason), "{text:?} should mention {reason:?}");
}

/// A token of `user` with its id.
async fn token_with_id(user: &UserClient) -> (String, i64) {
    let created: Value = user
        .post("/api/v1/tokens", &json!({"name": "ws", "scopes": ["read"]}))
        .await
        .json()
        .await
        .unwrap();
    (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_i64().unwrap(),
    )
}

/// A fresh sign-in of `user`: its `name=value` cookie and CSRF token.
async fn cookie_of(app: &TestApp, user: &UserClient) -> (String, String) {
    let me: Value = user.get("/api/v1/me").await.json().await.unwrap();
    let email = me["user"]["email"].as_str().unwrap();
    let response = crate::helpers::new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = response.cookies().next().unwrap();
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    let body: Value = response.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

/// A member of `owner`'s tenant with `devices` assigned, and a WebSocket of theirs.
pub(crate) async fn member_with(
    app: &TestApp,
    owner: &UserClient,
    devices: &[i64],
) -> (UserClient, Ws) {
    let member = app.create_user(owner.tenant_id, "member").await;
    assign(owner, member.user_id, devices).await;
    let (cookie, _) = cookie_of(app, &member).await;
    let ws = connect(app, WsAuth::Cookie(&cookie, None)).await.unwrap();
    (member, ws)
}

async fn assign(owner: &UserClient, user_id: i64, devices: &[i64]) {
    let response = owner
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/users/{user_id}/devices"),
            &json!({ "device_ids": devices }),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn device(app: &TestApp, tenant_id: i64, name: &str) -> i64 {
    wafleet::device::store::insert_device(&app.db, tenant_id, name)
        .await
        .unwrap()
        .id
}

async fn a_revoked_token_closes_its_websocket(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let (token, id) = token_with_id(&owner).await;
    let mut ws = connect(&app, WsAuth::Query(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    let revoked = owner
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &json!({}),
        )
        .await;
    assert!(revoked.status().is_success());
    assert_closed_4401(&mut ws, "revoked").await;
}

async fn signing_out_closes_the_sessions_websocket(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let (cookie, csrf) = cookie_of(&app, &owner).await;
    let mut ws = connect(&app, WsAuth::Cookie(&cookie, None)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    let out = crate::helpers::new_client()
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_closed_4401(&mut ws, "expired").await;
}

async fn disabling_a_user_closes_their_websocket(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let other = app.create_user(owner.tenant_id, "owner").await;
    let (token, _) = token_with_id(&other).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    let disabled = owner
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{}", other.user_id),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    // Disabled ("this account is disabled"), or its token gone with it.
    assert_closed_4401(&mut ws, "").await;
}

async fn a_changed_assignment_closes_a_members_websocket(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let first = device(&app, owner.tenant_id, "One").await;
    let second = device(&app, owner.tenant_id, "Two").await;
    let (member, mut ws) = member_with(&app, &owner, &[first, second]).await;
    let topic = format!("messages/{first}");
    let subscribed = subscribe(&mut ws, &[topic.as_str()]).await;
    assert_eq!(subscribed["topics"], json!([topic]));
    assign(&owner, member.user_id, &[second]).await;
    assert_closed_4401(&mut ws, "access changed").await;
    // Reconnected, the topic of the device no longer theirs is refused.
    let (cookie, _) = cookie_of(&app, &member).await;
    let mut ws = connect(&app, WsAuth::Cookie(&cookie, None)).await.unwrap();
    let op = json!({"op": "subscribe", "topics": [topic]}).to_string();
    futures::SinkExt::send(&mut ws, Message::text(op))
        .await
        .unwrap();
    let refused = next_json(&mut ws, |v| v["event"] == "ERROR").await;
    assert_eq!(refused["error"]["code"], "forbidden_topic");
}

async fn deleting_a_device_rechecks_its_members_at_once(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let first = device(&app, owner.tenant_id, "One").await;
    let (_member, mut ws) = member_with(&app, &owner, &[first]).await;
    subscribe(&mut ws, &[format!("messages/{first}").as_str()]).await;
    let deleted = owner
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/v1/devices/{first}"),
            &json!({}),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_closed_4401(&mut ws, "access changed").await;
}

async fn an_access_change_on_this_daemon_rechecks_at_once(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let (token, id) = token_with_id(&owner).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    // Revoked behind the API's back, then announced as the auth routes announce their changes.
    wafleet::auth::store::delete_token(&app.db, owner.tenant_id, id)
        .await
        .unwrap();
    app.state
        .auth
        .changes
        .user_changed(owner.user_id + 1_000_000);
    app.state.auth.changes.user_changed(owner.user_id);
    assert_closed_4401(&mut ws, "revoked").await;
}

async fn a_session_closes_at_its_maximum_lifetime(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let (token, _) = token_with_id(&owner).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    assert_closed_4401(&mut ws, "session expired, reconnect").await;
}

async fn viewers_never_see_pairing_secrets(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let viewer = app.create_user(owner.tenant_id, "viewer").await;
    let (token, _) = token_with_id(&owner).await;
    let mut owners = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut owners, &["device-status"]).await;
    let (cookie, _) = cookie_of(&app, &viewer).await;
    let mut viewers = connect(&app, WsAuth::Cookie(&cookie, None)).await.unwrap();
    subscribe(&mut viewers, &["device-status"]).await;

    let created: Value = owner
        .post("/api/v1/devices", &json!({"name": "Pairing"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let is_qr = |v: &Value| v["event"] == "QR_UPDATED" && v["data"]["device_id"] == id;
    let seen = next_json(&mut owners, is_qr).await;
    assert!(seen["data"]["code"].as_str().unwrap().starts_with("2@"));
    let hidden = next_json(&mut viewers, is_qr).await;
    assert_eq!(hidden["seq"], seen["seq"], "same frame, same seq");
    assert!(hidden["data"].get("code").is_none(), "{hidden}");

    let path = format!("/api/v1/devices/{id}");
    let live: Value = owner.get(&path).await.json().await.unwrap();
    assert!(live["live"]["qr"].as_str().unwrap().starts_with("2@"));
    let live: Value = viewer.get(&path).await.json().await.unwrap();
    assert!(live["live"].is_object(), "{live}");
    assert!(live["live"]["qr"].is_null(), "{live}");
    assert!(live["live"]["pair_code"].is_null(), "{live}");
    assert_eq!(viewer.get(&format!("{path}/qr.svg")).await.status(), 403);
    let code = viewer
        .post(
            &format!("{path}/pair-code"),
            &json!({"phone": "60123456789"}),
        )
        .await;
    assert_eq!(code.status(), 403);
}
