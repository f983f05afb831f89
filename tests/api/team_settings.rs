//! The team and settings routes over HTTP: an owner's password reset (a one-time password shown
//! once), one's own sessions (listed without secrets, revoked one by one), the tenant's name and
//! time zone (checked, audited, and taken up by the chat mirror's live events without a
//! restart), role changes, named device assignments and the read-only retention.

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{new_client, TestApp, UserClient, USER_PASSWORD};
use crate::ws::{connect, next_json, subscribe, token_for, WsAuth};

crate::both_backends!(
    a_reset_password_is_shown_once_and_must_be_replaced,
    sessions_are_listed_without_secrets_and_revoked_one_by_one,
    the_tenant_zone_is_checked_and_relabels_live_events,
    roles_assignments_and_retention,
);

async fn email_of(user: &UserClient) -> String {
    let me: Value = user.get("/api/v1/me").await.json().await.unwrap();
    me["user"]["email"].as_str().unwrap().to_string()
}

async fn audited(app: &TestApp, tenant_id: i64, action: &str) -> bool {
    wafleet::audit::recent_actions(&app.db, tenant_id, 100)
        .await
        .unwrap()
        .iter()
        .any(|a| a == action)
}

/// Sends `body` with `method` and returns status and JSON answer.
async fn call(user: &UserClient, method: &str, path: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = user.send_json(method, path, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn a_reset_password_is_shown_once_and_must_be_replaced(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let email = email_of(&member).await;
    let path = format!("/api/v1/users/{}/password-reset", member.user_id);

    let (status, answer) = call(&owner, "POST", &path, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let password = answer["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 20, "{answer}");

    // The member's session ended and the old password is refused.
    assert_eq!(member.get("/api/v1/me").await.status(), 401);
    let old = new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the old password no longer works");
    // The one-time password signs in, but only to choose their own.
    let again = app.login(&email, &password).await;
    let me: Value = again.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["must_change_password"], true);
    let refused = again.get("/api/v1/devices").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "password_change_required");

    // Not one's own password, and not from an API token.
    let own = format!("/api/v1/users/{}/password-reset", owner.user_id);
    let (status, body) = call(&owner, "POST", &own, json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "cannot_change_self");
    let token = token_for(&owner, &["read", "write"]).await;
    let by_token = new_client()
        .post(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 403);
    assert!(audited(&app, owner.tenant_id, "member.password_reset").await);
}

async fn sessions_are_listed_without_secrets_and_revoked_one_by_one(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let email = email_of(&owner).await;
    let laptop = app.login(&email, USER_PASSWORD).await;

    let (status, sessions) = call(&owner, "GET", "/api/v1/me/sessions", Value::Null).await;
    assert_eq!(status, 200);
    let sessions = sessions.as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(
        current.len(),
        1,
        "exactly one current session: {sessions:?}"
    );
    for session in &sessions {
        let keys: Vec<&String> = session.as_object().unwrap().keys().collect();
        for secret in ["token_hash", "csrf_token", "token"] {
            assert!(!keys.iter().any(|k| *k == secret), "{session}");
        }
        assert!(session["created_at"].is_string() && session["expires_at"].is_string());
    }
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();

    // Another user's session is not ours to end.
    let stranger = app.create_user(owner.tenant_id, "viewer").await;
    let path = format!("/api/v1/me/sessions/{}", other["id"]);
    let (status, _) = call(&stranger, "DELETE", &path, Value::Null).await;
    assert_eq!(status, 404);
    assert_eq!(laptop.get("/api/v1/me").await.status(), 200);

    let (status, _) = call(&owner, "DELETE", &path, Value::Null).await;
    assert_eq!(status, 204);
    assert_eq!(laptop.get("/api/v1/me").await.status(), 401);
    assert_eq!(owner.get("/api/v1/me").await.status(), 200);
    let (status, _) = call(&owner, "DELETE", &path, Value::Null).await;
    assert_eq!(status, 404, "already ended");
    let (_, left) = call(&owner, "GET", "/api/v1/me/sessions", Value::Null).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert!(audited(&app, owner.tenant_id, "auth.session_revoke").await);

    // A token lists (none is current) but cannot end sessions.
    let token = token_for(&owner, &["read", "write"]).await;
    let listed: Value = new_client()
        .get(app.url("/api/v1/me/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["current"] == false));
    let id = listed[0]["id"].as_i64().unwrap();
    let refused = new_client()
        .delete(app.url(&format!("/api/v1/me/sessions/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// The label of the `NEW_MESSAGE` frame for a message `text` the contact writes now.
async fn live_label(admin: &UserClient, ws: &mut crate::ws::Ws, device: i64, text: &str) -> Value {
    let (status, sent) = call(
        admin,
        "POST",
        "/api/v1/sim/inbound",
        json!({"device_id": device, "from": "60123450001", "text": text}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let frame = next_json(ws, |v| {
        v["event"] == "NEW_MESSAGE" && v["data"]["text"] == text
    })
    .await;
    frame["data"].clone()
}

/// What the label of `message` (a message view) must read in `zone` now.
fn label_in(message: &Value, zone: chrono_tz::Tz) -> String {
    let at: chrono::DateTime<Utc> = message["sent_at"].as_str().unwrap().parse().unwrap();
    wafleet::chat::time::time_label(at, Utc::now(), zone)
}

async fn the_tenant_zone_is_checked_and_relabels_live_events(app: TestApp) {
    let admin = app.admin().await;
    let (status, tenant) = call(&admin, "GET", "/api/v1/tenant", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(tenant["time_zone"], "Asia/Kuala_Lumpur");

    // Bad input is a 4xx naming the field; nothing changes.
    for (body, status, code) in [
        (
            json!({"time_zone": "Mars/Olympus"}),
            422,
            "invalid_time_zone",
        ),
        (json!({"time_zone": ""}), 422, "invalid_time_zone"),
        (json!({"name": "   "}), 400, "invalid_field"),
        (json!({"colour": "red"}), 400, "invalid_json"),
    ] {
        let (got, answer) = call(&admin, "PATCH", "/api/v1/tenant", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}");
    }
    let viewer = app.create_user(admin.tenant_id, "viewer").await;
    let (status, _) = call(&viewer, "PATCH", "/api/v1/tenant", json!({"name": "x"})).await;
    assert_eq!(status, 403);
    let (_, unchanged) = call(&viewer, "GET", "/api/v1/tenant", Value::Null).await;
    assert_eq!(unchanged, tenant, "refused changes change nothing");

    // A live message is labelled in the tenant's zone…
    let device = app.paired_device(&admin, "Zone").await;
    let token = token_for(&admin, &["read"]).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &[&format!("messages/{device}")]).await;
    let before = live_label(&admin, &mut ws, device, "before").await;
    let kl: chrono_tz::Tz = "Asia/Kuala_Lumpur".parse().unwrap();
    assert_eq!(before["time_label"], label_in(&before, kl));

    // …and, once the zone changes, in the new one, with no restart.
    let (status, changed) = call(
        &admin,
        "PATCH",
        "/api/v1/tenant",
        json!({"name": "Kedai Aisyah", "time_zone": "America/Lima"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["time_zone"], "America/Lima");
    assert_eq!(changed["name"], "Kedai Aisyah");
    let me: Value = viewer.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["tenant"]["time_zone"], "America/Lima");
    let lima: chrono_tz::Tz = "America/Lima".parse().unwrap();
    let after = live_label(&admin, &mut ws, device, "after").await;
    assert_eq!(after["time_label"], label_in(&after, lima), "{after}");
    assert_ne!(after["time_label"], label_in(&after, kl), "{after}");
    let settings: Value = admin
        .get("/api/v1/settings/broadcast")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["effective"]["time_zone"], "America/Lima");
    assert!(audited(&app, admin.tenant_id, "tenant.update").await);
}

async fn roles_assignments_and_retention(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let alpha = wafleet::device::store::insert_device(&app.db, owner.tenant_id, "Alpha")
        .await
        .unwrap();
    let beta = wafleet::device::store::insert_device(&app.db, owner.tenant_id, "Beta")
        .await
        .unwrap();
    wafleet::device::store::insert_device(&app.db, owner.tenant_id, "Gamma")
        .await
        .unwrap();

    let path = format!("/api/v1/users/{}/devices", member.user_id);
    let (status, assigned) = call(
        &owner,
        "PUT",
        &path,
        json!({"device_ids": [beta.id, alpha.id]}),
    )
    .await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["device_ids"], json!([alpha.id, beta.id]));
    assert_eq!(assigned["devices"][0]["name"], "Alpha");
    assert_eq!(assigned["devices"][1]["name"], "Beta");
    let (_, read) = call(&owner, "GET", &path, Value::Null).await;
    assert_eq!(read, assigned);
    let seen: Value = member.get("/api/v1/devices").await.json().await.unwrap();
    assert_eq!(seen["total"], 2, "{seen}");

    // A role change is audited with what it was.
    let user = format!("/api/v1/users/{}", member.user_id);
    let (status, changed) = call(&owner, "PATCH", &user, json!({"role": "viewer"})).await;
    assert_eq!(status, 200);
    assert_eq!(changed["role"], "viewer");
    assert!(audited(&app, owner.tenant_id, "member.role_change").await);

    // The pages have short addresses too.
    for (path, title) in [
        ("/team", "Team"),
        ("/settings", "Settings"),
        ("/profile", "Your profile"),
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status(), 200, "{path}");
        assert!(page
            .text()
            .await
            .unwrap()
            .contains(&format!("<title>{title} ")));
    }

    let (status, retention) = call(&member, "GET", "/api/v1/settings/retention", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(retention["source"], "config");
    assert_eq!(retention["audit_days"], 365, "{retention}");
}
