//! Sign-in, sessions, CSRF, API tokens, rate limiting, sign-up, team management and audit rows.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use wafleet::db::schema::{api_tokens, sessions};
use wafleet::db::{Db, DbError};
use wafleet::db_run;

use crate::helpers::{
    new_client, spawn_app_with, Backend, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};

crate::both_backends!(
    first_start_creates_the_admin,
    logout_and_password_change_revoke_sessions,
    login_rotates_the_session,
    csrf_is_required_for_cookie_writes,
    tokens_are_hashed_scoped_and_revocable,
    failed_logins_are_rate_limited,
    owners_manage_their_team,
);

async fn first_start_creates_the_admin(app: TestApp) {
    let admin = app.admin().await;
    let me: Value = admin.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["user"]["role"], "admin");
    assert_eq!(me["tenant"]["time_zone"], "Asia/Kuala_Lumpur");
    assert!(me["csrf_token"].as_str().unwrap().len() >= 32);
    let wrong = new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_credentials"
    );
}

/// The session cookie's value as the client holds it.
async fn session_cookie(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let response = new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .cookies()
        .find(|c| c.name() == "wafleet_session")
        .unwrap()
        .value()
        .to_string();
    let csrf = response.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

async fn me_with_cookie(app: &TestApp, cookie: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("wafleet_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn logout_and_password_change_revoke_sessions(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let me: Value = owner.get("/api/v1/me").await.json().await.unwrap();
    let email = me["user"]["email"].as_str().unwrap().to_string();

    // Logout ends exactly that session.
    let (cookie, csrf) = session_cookie(&app, &email, USER_PASSWORD).await;
    assert_eq!(me_with_cookie(&app, &cookie).await, 200);
    let out = reqwest::Client::new()
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", format!("wafleet_session={cookie}"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(me_with_cookie(&app, &cookie).await, 401);
    assert_eq!(
        owner.get("/api/v1/me").await.status(),
        200,
        "other sessions live on"
    );

    // A password change ends every session, and the changing browser gets a fresh one.
    let (other_cookie, _) = session_cookie(&app, &email, USER_PASSWORD).await;
    let changed = owner
        .post(
            "/api/v1/me/password",
            &json!({"current_password": USER_PASSWORD, "new_password": "a-new-password-2"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(me_with_cookie(&app, &other_cookie).await, 401);
    assert_eq!(
        owner.get("/api/v1/me").await.status(),
        200,
        "the changing browser stays in"
    );
    let wrong = owner
        .post(
            "/api/v1/me/password",
            &json!({"current_password": "nope-nope-nope", "new_password": "x"}),
        )
        .await;
    assert_eq!(
        wrong.status(),
        403,
        "the old CSRF token died with the old session"
    );
    app.login(&email, "a-new-password-2").await;
    assert_eq!(
        new_client()
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": USER_PASSWORD}))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn login_rotates_the_session(app: TestApp) {
    let client = new_client();
    let login = || {
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
    };
    let first = login().await.unwrap();
    let first_cookie = first.cookies().next().unwrap().value().to_string();
    let second = login().await.unwrap();
    let second_cookie = second.cookies().next().unwrap().value().to_string();
    assert_ne!(first_cookie, second_cookie);
    assert_eq!(
        me_with_cookie(&app, &first_cookie).await,
        401,
        "the old session ended"
    );
    assert_eq!(me_with_cookie(&app, &second_cookie).await, 200);
    // Only digests are stored.
    let stored = stored_session_hashes(&app.db).await.unwrap();
    assert!(!stored.contains(&second_cookie));
    assert!(stored.contains(&wafleet::auth::secret::digest(&second_cookie)));
}

async fn stored_session_hashes(db: &Db) -> Result<Vec<String>, DbError> {
    db_run!(db, |conn| {
        sessions::table
            .select(sessions::token_hash)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

async fn csrf_is_required_for_cookie_writes(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let body = json!({"name": "ci", "scopes": ["read"]});
    let no_token = owner
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    assert_eq!(
        no_token.json::<Value>().await.unwrap()["error"]["code"],
        "csrf_failed"
    );
    let wrong_token = owner
        .client
        .post(app.url("/api/v1/tokens"))
        .header("x-csrf-token", "0".repeat(32))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 403);
    let cross_site = owner
        .request(Method::POST, "/api/v1/tokens")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let foreign_origin = owner
        .request(Method::POST, "/api/v1/tokens")
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_origin.status(), 403);
    let same_origin = owner
        .request(Method::POST, "/api/v1/tokens")
        .header("origin", &app.address)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 201);
    // A cross-site login attempt (login CSRF) is refused too.
    let login = new_client()
        .post(app.url("/api/v1/auth/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);
}

async fn stored_token_rows(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    db_run!(db, |conn| {
        api_tokens::table
            .select((api_tokens::token_hash, api_tokens::prefix))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

async fn tokens_are_hashed_scoped_and_revocable(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let created = owner
        .post(
            "/api/v1/tokens",
            &json!({"name": "crm", "scopes": ["read", "write"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("wfl_"));

    let rows = stored_token_rows(&app.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, token, "the raw token is not stored");
    assert_eq!(rows[0].0, wafleet::auth::secret::digest(&token));
    assert!(token.starts_with(&rows[0].1));

    let api = reqwest::Client::new();
    let me = api
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(me.json::<Value>().await.unwrap()["csrf_token"].is_null());
    // Bearer writes need no CSRF token.
    let users = api
        .get(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200);
    let listed: Value = owner.get("/api/v1/tokens").await.json().await.unwrap();
    assert!(listed[0]["last_used_at"].is_string());
    assert!(listed[0].get("token").is_none());
    let minted = api
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&json!({"name": "x", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 403, "tokens cannot mint tokens");
    let admin_scope = owner
        .post("/api/v1/tokens", &json!({"name": "x", "scopes": ["admin"]}))
        .await;
    assert_eq!(admin_scope.status(), 403);

    let id = created["id"].as_i64().unwrap();
    let revoked = owner
        .request(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let after = api
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "revocation is immediate");
    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 20)
        .await
        .unwrap();
    assert!(actions.contains(&"token.create".to_string()));
    assert!(actions.contains(&"token.revoke".to_string()));
}

async fn failed_logins_are_rate_limited(app: TestApp) {
    let client = new_client();
    let attempt = |email: &'static str, password: &'static str| {
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            attempt(ADMIN_EMAIL, "wrong-password")
                .await
                .unwrap()
                .status(),
            401
        );
    }
    let limited = attempt(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(limited.status(), 429, "even the right password waits");
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
    // The address is limited too: another account from here is refused.
    assert_eq!(
        attempt("someone@else.test", "whatever-pass")
            .await
            .unwrap()
            .status(),
        429
    );
    let tenant = wafleet::auth::store::find_user_by_email(&app.db, ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .tenant_id
        .unwrap();
    let actions = wafleet::audit::recent_actions(&app.db, tenant, 10)
        .await
        .unwrap();
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.login_failed").count(),
        5
    );
}

async fn owners_manage_their_team(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let created = owner
        .post(
            "/api/v1/users",
            &json!({"email": "Agent@Acme.test", "display_name": "Agent", "password": "agent-password", "role": "member"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let member: Value = created.json().await.unwrap();
    assert_eq!(member["email"], "agent@acme.test");
    let id = member["id"].as_i64().unwrap();
    let duplicate = owner
        .post("/api/v1/users", &json!({"email": "agent@acme.test", "display_name": "x", "password": "agent-password", "role": "viewer"}))
        .await;
    assert_eq!(duplicate.status(), 409);
    let weak = owner
        .post("/api/v1/users", &json!({"email": "b@acme.test", "display_name": "x", "password": "short", "role": "viewer"}))
        .await;
    assert_eq!(
        weak.json::<Value>().await.unwrap()["error"]["code"],
        "weak_password"
    );
    let admin_role = owner
        .post("/api/v1/users", &json!({"email": "c@acme.test", "display_name": "x", "password": "agent-password", "role": "admin"}))
        .await;
    assert_eq!(admin_role.status(), 400);

    let device = wafleet::device::store::insert_device(&app.db, owner.tenant_id, "Sales")
        .await
        .unwrap();
    let assigned = owner
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{id}/devices"),
            &json!({"device_ids": [device.id]}),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    let agent = app.login("agent@acme.test", "agent-password").await;
    let me: Value = agent.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["assigned_devices"], json!([device.id]));

    let disabled = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(
        agent.get("/api/v1/me").await.status(),
        401,
        "disabling ends sessions"
    );
    let self_demote = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/users/{}", owner.user_id),
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(self_demote.status(), 400);
    let removed = owner
        .request(Method::DELETE, &format!("/api/v1/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let list: Value = owner.get("/api/v1/users").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 20)
        .await
        .unwrap();
    for action in [
        "member.create",
        "member.devices",
        "member.update",
        "member.delete",
        "auth.login",
    ] {
        assert!(
            actions.contains(&action.to_string()),
            "{action} audited: {actions:?}"
        );
    }
}

#[actix_web::test]
async fn session_cookie_is_host_prefixed_secure_httponly_lax() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("WAFLEET__AUTH__SECURE_COOKIES", "true")],
    )
    .await
    .unwrap();
    let response = new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("__Host-wafleet_session="), "{cookie}");
    let value = cookie.split(';').next().unwrap().split('=').nth(1).unwrap();
    assert_eq!(value.len(), 32, "128 bits in hex");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Domain"),
        "__Host- cookies carry no Domain: {cookie}"
    );
}

#[actix_web::test]
async fn signup_is_off_by_default_and_creates_a_tenant_when_on() {
    let body = json!({"company": "Kedai Runcit", "display_name": "Aminah", "email": "aminah@kedai.test", "password": "kedai-password"});
    let closed = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let refused = new_client()
        .post(closed.url("/api/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "signup_disabled"
    );

    let open = spawn_app_with(Backend::Sqlite, &[("WAFLEET__AUTH__ALLOW_SIGNUP", "true")])
        .await
        .unwrap();
    let client = new_client();
    let created = client
        .post(open.url("/api/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let me: Value = client
        .get(open.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "owner");
    assert_eq!(me["tenant"]["name"], "Kedai Runcit");
    let again = new_client()
        .post(open.url("/api/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}
