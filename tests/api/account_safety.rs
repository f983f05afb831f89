//! Who may set passwords and grant roles, the forced password change, and session purging.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use wafleet::db::schema::sessions;
use wafleet::db::{Db, DbError};
use wafleet::db_run;

use crate::helpers::{new_client, wait_until, TestApp, UserClient, USER_PASSWORD};

crate::both_backends!(
    passwords_change_only_with_the_current_one,
    tokens_cannot_make_or_touch_owners,
);
crate::both_backends!(
    with &[("WAFLEET__AUTH__SESSION_PURGE_INTERVAL_SECS", "1")];
    expired_sessions_are_purged,
);
crate::both_backends!(
    with &[
        ("WAFLEET__ADMIN__PASSWORD", ""),
        ("WAFLEET__AUTH__ADMIN_PASSWORD_FILE", super::admin_password_file().as_str()),
    ];
    the_generated_admin_password_must_be_changed,
);

/// An API token of `owner` with read and write scopes.
async fn write_token(owner: &UserClient) -> String {
    let created: Value = owner
        .post(
            "/api/v1/tokens",
            &json!({"name": "crm", "scopes": ["read", "write"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    created["token"].as_str().unwrap().to_string()
}

/// `method path` with a bearer token.
async fn with_token(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    new_client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Makes every session of `user_id` look signed in `minutes` ago.
async fn age_sessions(db: &Db, user_id: i64, minutes: i64) -> Result<usize, DbError> {
    let then = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(minutes);
    db_run!(db, |conn| {
        diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)))
            .set(sessions::created_at.eq(then))
            .execute(conn)
            .await
            .map_err(DbError::from)
    })
}

/// `PATCH /users/{id}` setting a password, by `by`.
async fn patch_password(by: &UserClient, id: i64, password: &str) -> reqwest::Response {
    let path = format!("/api/v1/users/{id}");
    by.send_json(Method::PATCH, &path, &json!({ "password": password }))
        .await
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn passwords_change_only_with_the_current_one(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let me: Value = member.get("/api/v1/me").await.json().await.unwrap();
    let member_email = me["user"]["email"].as_str().unwrap().to_string();
    // Not one's own, not without the current password.
    let own = patch_password(&owner, owner.user_id, "taken-over-pass").await;
    assert_eq!(own.status(), 400);
    assert_eq!(error_code(own).await, "cannot_change_self");
    assert_eq!(
        owner.get("/api/v1/me").await.status(),
        200,
        "still signed in"
    );
    // Not from an API token, not even for a member.
    let token = write_token(&owner).await;
    let path = format!("/api/v1/users/{}", member.user_id);
    let body = json!({"password": "set-by-token-1"});
    let by_token = with_token(&app, &token, Method::PATCH, &path, &body).await;
    assert_eq!(by_token.status(), 403);
    // Not from an old sign-in.
    age_sessions(&app.db, owner.user_id, 60).await.unwrap();
    let stale = patch_password(&owner, member.user_id, "reset-password-1").await;
    assert_eq!(stale.status(), 403);
    assert_eq!(error_code(stale).await, "reauthentication_required");
    // A fresh sign-in may; the member is signed out and must choose their own.
    let owner_email = wafleet::auth::store::get_user(&app.db, owner.user_id)
        .await
        .unwrap()
        .email;
    let fresh_owner = app.login(&owner_email, USER_PASSWORD).await;
    let reset = fresh_owner
        .send_json(
            Method::PATCH,
            &path,
            &json!({"password": "reset-password-1"}),
        )
        .await;
    assert_eq!(reset.status(), 200);
    assert_eq!(member.get("/api/v1/me").await.status(), 401);
    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 5)
        .await
        .unwrap();
    assert!(actions.contains(&"member.password_reset".to_string()));
    let member = app.login(&member_email, "reset-password-1").await;
    assert_eq!(
        error_code(member.get("/api/v1/devices").await).await,
        "password_change_required"
    );
    let me: Value = member.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["must_change_password"], true);
    let changed = member
        .post(
            "/api/v1/me/password",
            &json!({"current_password": "reset-password-1", "new_password": "my-own-password"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let csrf = changed.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let member = UserClient { csrf, ..member };
    assert_eq!(member.get("/api/v1/devices").await.status(), 200);
}

async fn tokens_cannot_make_or_touch_owners(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let other_owner = app.create_user(owner.tenant_id, "owner").await;
    let token = write_token(&owner).await;
    let new_user = |role: &str| {
        json!({"email": format!("{role}@acme.test"), "display_name": "x",
               "password": "agent-password", "role": role})
    };
    let post = Method::POST;
    let as_owner = with_token(
        &app,
        &token,
        post.clone(),
        "/api/v1/users",
        &new_user("owner"),
    )
    .await;
    assert_eq!(as_owner.status(), 403);
    let as_admin = with_token(
        &app,
        &token,
        post.clone(),
        "/api/v1/users",
        &new_user("admin"),
    )
    .await;
    assert_eq!(as_admin.status(), 400);
    let member = with_token(&app, &token, post, "/api/v1/users", &new_user("member")).await;
    assert_eq!(member.status(), 201);
    let member_id = member.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let promote = json!({"role": "owner"});
    let path = format!("/api/v1/users/{member_id}");
    let promoted = with_token(&app, &token, Method::PATCH, &path, &promote).await;
    assert_eq!(promoted.status(), 403);
    let path = format!("/api/v1/users/{}", other_owner.user_id);
    let disable = json!({"is_active": false});
    let disabled = with_token(&app, &token, Method::PATCH, &path, &disable).await;
    assert_eq!(disabled.status(), 403);
    let deleted = with_token(&app, &token, Method::DELETE, &path, &json!({})).await;
    assert_eq!(deleted.status(), 403);
    assert_eq!(other_owner.get("/api/v1/me").await.status(), 200);
    // A signed-in owner still may.
    let promoted = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/users/{member_id}"),
            &promote,
        )
        .await;
    assert_eq!(promoted.status(), 200);
}

/// Session rows' ids.
async fn session_ids(db: &Db) -> Result<Vec<i64>, DbError> {
    db_run!(db, |conn| {
        sessions::table
            .select(sessions::id)
            .order(sessions::id.asc())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Inserts a session of `user_id` with the given expiry and last use.
async fn insert_stale_session(
    db: &Db,
    user_id: i64,
    expires_at: chrono::NaiveDateTime,
    last_seen_at: chrono::NaiveDateTime,
) -> Result<(), DbError> {
    let digest = wafleet::auth::secret::digest(&uuid::Uuid::new_v4().to_string());
    db_run!(db, |conn| {
        diesel::insert_into(sessions::table)
            .values((
                sessions::user_id.eq(user_id),
                sessions::token_hash.eq(digest.clone()),
                sessions::csrf_token.eq("x"),
                sessions::created_at.eq(last_seen_at),
                sessions::last_seen_at.eq(last_seen_at),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

async fn expired_sessions_are_purged(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let live = session_ids(&app.db).await.unwrap();
    let now = chrono::Utc::now().naive_utc();
    let hour = chrono::Duration::hours(1);
    // One past its absolute expiry, one idle too long (the idle limit is 720 minutes).
    insert_stale_session(&app.db, owner.user_id, now - hour, now - hour)
        .await
        .unwrap();
    insert_stale_session(&app.db, owner.user_id, now + hour, now - hour * 13)
        .await
        .unwrap();
    assert_eq!(session_ids(&app.db).await.unwrap().len(), 3);
    wait_until("the purge", Duration::from_secs(10), || async {
        (session_ids(&app.db).await.ok()? == live).then_some(())
    })
    .await;
    assert_eq!(owner.get("/api/v1/me").await.status(), 200);
}

/// A file path of its own for each run of the first-start test (the macro expands this inside
/// the test's module, hence `super::` there).
fn admin_password_file() -> String {
    let name = format!("wafleet-admin-{}.txt", uuid::Uuid::new_v4().simple());
    std::env::temp_dir().join(name).display().to_string()
}

async fn the_generated_admin_password_must_be_changed(app: TestApp) {
    let file = app.settings.auth.admin_password_file.clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    std::fs::remove_file(&file).unwrap();
    let admin = app.login(crate::helpers::ADMIN_EMAIL, &password).await;
    let blocked = admin.get("/api/v1/devices").await;
    assert_eq!(blocked.status(), 403);
    assert_eq!(error_code(blocked).await, "password_change_required");
    let token = admin
        .post("/api/v1/tokens", &json!({"name": "x", "scopes": ["read"]}))
        .await;
    assert_eq!(error_code(token).await, "password_change_required");
    assert_eq!(admin.get("/api/v1/me").await.status(), 200);
    let changed = admin
        .post(
            "/api/v1/me/password",
            &json!({"current_password": password, "new_password": "chosen-by-admin"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["must_change_password"], false);
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let admin = UserClient { csrf, ..admin };
    assert_eq!(admin.get("/api/v1/devices").await.status(), 200);
}
