//! The inbound lead webhook on both backends: owners rotate the signing secret, signed
//! deliveries create and then update leads (tags merged), and every refusal has its code: bad
//! or missing signature, stale timestamp, replay, another tenant's secret, malformed bodies
//! (422 naming the field), oversized bodies.
//!
//! Signatures are computed here with the `hmac` crate directly, not with the daemon's helper, so
//! the tests check the documented scheme rather than the code against itself.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{TestApp, UserClient};

crate::both_backends!(
    only_owners_see_and_rotate_the_secret,
    a_signed_delivery_creates_then_updates_its_lead,
    bad_stale_and_replayed_deliveries_are_refused,
    another_tenants_secret_cannot_write_here,
    malformed_bodies_are_422_naming_the_field,
);

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, as docs/webhooks.md describes it.
fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// POSTs `body` to the webhook with the given headers (`None` leaves a header out).
async fn deliver(
    app: &TestApp,
    tenant: Option<i64>,
    timestamp: Option<i64>,
    signature: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = crate::helpers::new_client()
        .post(app.url("/api/v1/webhooks/leads"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(tenant) = tenant {
        request = request.header("X-Wafleet-Tenant", tenant.to_string());
    }
    if let Some(timestamp) = timestamp {
        request = request.header("X-Wafleet-Timestamp", timestamp.to_string());
    }
    if let Some(signature) = signature {
        request = request.header("X-Wafleet-Signature", signature);
    }
    request.send().await.unwrap()
}

/// A correctly signed delivery of `body` for `tenant` at `timestamp`.
pub(crate) async fn signed(
    app: &TestApp,
    tenant: i64,
    secret: &str,
    timestamp: i64,
    body: &str,
) -> reqwest::Response {
    let sig = signature(secret, timestamp, body);
    deliver(app, Some(tenant), Some(timestamp), Some(&sig), body).await
}

/// The response's status and JSON body, asserting the status.
pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    body
}

/// Asserts a 401 with `code`.
async fn refused(response: reqwest::Response, code: &str) {
    let body = json_of(response, 401).await;
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// Rotates the tenant's secret as its owner; the new secret.
pub(crate) async fn rotate(owner: &UserClient) -> String {
    let body = json_of(
        owner
            .post("/api/v1/settings/webhook/secret", &json!({}))
            .await,
        201,
    )
    .await;
    assert_eq!(body["tenant_id"], owner.tenant_id);
    body["secret"].as_str().unwrap().to_string()
}

/// Every lead of the caller's tenant.
async fn leads_of(user: &UserClient) -> Vec<Value> {
    let page = json_of(user.get("/api/v1/leads?limit=500").await, 200).await;
    page["items"].as_array().unwrap().clone()
}

async fn only_owners_see_and_rotate_the_secret(app: TestApp) {
    let owner = app.new_tenant("Hooks").await;
    let member = app.create_user(owner.tenant_id, "member").await;

    let settings = json_of(owner.get("/api/v1/settings/webhook").await, 200).await;
    assert_eq!(settings["configured"], false);
    assert_eq!(settings["created_at"], Value::Null);
    assert_eq!(settings["tenant_id"], owner.tenant_id);

    let denied = member
        .post("/api/v1/settings/webhook/secret", &json!({}))
        .await;
    assert_eq!(denied.status(), 403);
    assert_eq!(member.get("/api/v1/settings/webhook").await.status(), 403);
    // The member's attempt made no secret.
    let settings = json_of(owner.get("/api/v1/settings/webhook").await, 200).await;
    assert_eq!(settings["configured"], false);

    let first = rotate(&owner).await;
    assert_eq!(first.len(), 64, "32 random bytes in hex");
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    let settings = json_of(owner.get("/api/v1/settings/webhook").await, 200).await;
    assert_eq!(settings["configured"], true);
    assert!(settings["created_at"].is_string());
    assert!(
        !settings.to_string().contains(&first),
        "the secret is shown once"
    );

    let second = rotate(&owner).await;
    assert_ne!(first, second);
    let body = r#"{"phone":"0123456789"}"#;
    refused(
        signed(&app, owner.tenant_id, &first, now(), body).await,
        "bad_signature",
    )
    .await;
    json_of(
        signed(&app, owner.tenant_id, &second, now(), body).await,
        201,
    )
    .await;

    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 20)
        .await
        .unwrap();
    let rotations = actions
        .iter()
        .filter(|a| *a == "webhook.secret.rotate")
        .count();
    assert_eq!(rotations, 2, "{actions:?}");
}

async fn a_signed_delivery_creates_then_updates_its_lead(app: TestApp) {
    let owner = app.new_tenant("Hooks").await;
    let secret = rotate(&owner).await;
    let ts = now();

    let body = json!({"phone": "012-345 6789", "name": "Ali", "tags": ["Cold"],
                      "niche": "Food", "fields": {"city": "KL"}})
    .to_string();
    let created = json_of(signed(&app, owner.tenant_id, &secret, ts, &body).await, 201).await;
    assert_eq!(created["created"], true);
    let lead_id = created["lead_id"].as_i64().unwrap();
    let list_id = created["list_id"].as_i64().unwrap();

    let list = json_of(
        owner.get(&format!("/api/v1/lead-lists/{list_id}")).await,
        200,
    )
    .await;
    assert_eq!(list["name"], "Webhook");
    assert_eq!(list["lead_count"], 1);
    let leads = leads_of(&owner).await;
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(lead["id"], lead_id);
    assert_eq!(lead["phone"], "60123456789");
    assert_eq!(lead["name"], "Ali");
    assert_eq!(lead["niche"], "Food");
    assert_eq!(lead["tags"], json!(["cold"]));
    assert_eq!(lead["status"], "prospect");
    assert_eq!(lead["fields"], json!({"city": "KL"}));
    let first_update: chrono::DateTime<chrono::Utc> =
        lead["updated_at"].as_str().unwrap().parse().unwrap();

    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 20)
        .await
        .unwrap();
    assert!(
        actions.iter().any(|a| a == "lead.create.webhook"),
        "{actions:?}"
    );

    // The same phone in another form, a new timestamp: the lead is updated, tags merged.
    let body = json!({"phone": "+60 12-345 6789", "tags": ["VIP", "cold"],
                      "status": "Hot", "fields": {"age": 30}})
    .to_string();
    let updated = json_of(
        signed(&app, owner.tenant_id, &secret, ts + 1, &body).await,
        200,
    )
    .await;
    assert_eq!(updated["created"], false);
    assert_eq!(updated["lead_id"], lead_id);
    assert_eq!(updated["list_id"], list_id);
    let lead = json_of(owner.get(&format!("/api/v1/leads/{lead_id}")).await, 200).await;
    assert_eq!(lead["tags"], json!(["cold", "vip"]));
    assert_eq!(lead["name"], "Ali", "absent fields keep their value");
    assert_eq!(lead["niche"], "Food");
    assert_eq!(lead["status"], "hot");
    assert_eq!(lead["fields"], json!({"age": "30", "city": "KL"}));
    let second_update: chrono::DateTime<chrono::Utc> =
        lead["updated_at"].as_str().unwrap().parse().unwrap();
    assert!(
        second_update > first_update,
        "updated_at moves: {first_update} → {second_update}"
    );

    // Even an update that changes nothing moves updated_at (the sequence engine scans by it).
    let body = r#"{"phone":"60123456789"}"#;
    json_of(
        signed(&app, owner.tenant_id, &secret, ts + 2, body).await,
        200,
    )
    .await;
    let lead = json_of(owner.get(&format!("/api/v1/leads/{lead_id}")).await, 200).await;
    let third_update: chrono::DateTime<chrono::Utc> =
        lead["updated_at"].as_str().unwrap().parse().unwrap();
    assert!(third_update > second_update);
    assert_eq!(lead["tags"], json!(["cold", "vip"]));

    // A named list is created on first use; the same phone there is a new lead.
    let body = json!({"phone": "0123456789", "list": "Facebook ads"}).to_string();
    let other = json_of(
        signed(&app, owner.tenant_id, &secret, ts + 3, &body).await,
        201,
    )
    .await;
    assert_ne!(other["list_id"], list_id);
    assert_ne!(other["lead_id"], lead_id);
    let lists = json_of(owner.get("/api/v1/lead-lists").await, 200).await;
    let names: Vec<&str> = lists
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Facebook ads", "Webhook"]);
}

async fn bad_stale_and_replayed_deliveries_are_refused(app: TestApp) {
    let owner = app.new_tenant("Hooks").await;
    let secret = rotate(&owner).await;
    let tenant = owner.tenant_id;
    let body = r#"{"phone":"0123456789","tags":["cold"]}"#;
    let ts = now();

    // Missing headers, each in turn.
    let good = signature(&secret, ts, body);
    refused(
        deliver(&app, None, Some(ts), Some(&good), body).await,
        "bad_signature",
    )
    .await;
    refused(
        deliver(&app, Some(tenant), None, Some(&good), body).await,
        "bad_signature",
    )
    .await;
    refused(
        deliver(&app, Some(tenant), Some(ts), None, body).await,
        "bad_signature",
    )
    .await;
    // Wrong secret, a tampered body, a signature without its prefix.
    refused(
        signed(&app, tenant, "not-the-secret", ts, body).await,
        "bad_signature",
    )
    .await;
    let tampered = r#"{"phone":"0123456780","tags":["cold"]}"#;
    refused(
        deliver(&app, Some(tenant), Some(ts), Some(&good), tampered).await,
        "bad_signature",
    )
    .await;
    refused(
        deliver(&app, Some(tenant), Some(ts), Some(&good[7..]), body).await,
        "bad_signature",
    )
    .await;
    // An unknown tenant looks the same as a wrong signature.
    refused(
        signed(&app, 987_654, &secret, ts, body).await,
        "bad_signature",
    )
    .await;
    // Correctly signed, but too old or too far ahead.
    refused(
        signed(&app, tenant, &secret, ts - 1000, body).await,
        "stale_timestamp",
    )
    .await;
    refused(
        signed(&app, tenant, &secret, ts + 1000, body).await,
        "stale_timestamp",
    )
    .await;
    assert!(
        leads_of(&owner).await.is_empty(),
        "nothing refused was written"
    );

    // The first delivery is accepted; the very same request again is a replay.
    json_of(
        deliver(&app, Some(tenant), Some(ts), Some(&good), body).await,
        201,
    )
    .await;
    refused(
        deliver(&app, Some(tenant), Some(ts), Some(&good), body).await,
        "replayed",
    )
    .await;
    // The same hex in upper case is the same request.
    let upper = format!("sha256={}", good[7..].to_uppercase());
    refused(
        deliver(&app, Some(tenant), Some(ts), Some(&upper), body).await,
        "replayed",
    )
    .await;
    assert_eq!(leads_of(&owner).await.len(), 1);

    // Too large a body is 413 before anything else.
    let big = json!({"phone": "0123456789", "name": "x".repeat(70 * 1024)}).to_string();
    let response = signed(&app, tenant, &secret, ts + 1, &big).await;
    assert_eq!(response.status(), 413);
}

async fn another_tenants_secret_cannot_write_here(app: TestApp) {
    let ours = app.new_tenant("Ours").await;
    let theirs = app.new_tenant("Theirs").await;
    let _our_secret = rotate(&ours).await;
    let their_secret = rotate(&theirs).await;
    let body = r#"{"phone":"0123456789"}"#;

    refused(
        signed(&app, ours.tenant_id, &their_secret, now(), body).await,
        "bad_signature",
    )
    .await;
    assert!(leads_of(&ours).await.is_empty());
    assert!(leads_of(&theirs).await.is_empty());

    // A tenant without a secret accepts nothing, whatever the key.
    let bare = app.new_tenant("Bare").await;
    refused(
        signed(&app, bare.tenant_id, "", now(), body).await,
        "bad_signature",
    )
    .await;
    refused(
        signed(&app, bare.tenant_id, &their_secret, now(), body).await,
        "bad_signature",
    )
    .await;
    assert!(leads_of(&bare).await.is_empty());

    // Their own secret writes into their own tenant only.
    json_of(
        signed(&app, theirs.tenant_id, &their_secret, now(), body).await,
        201,
    )
    .await;
    assert_eq!(leads_of(&theirs).await.len(), 1);
    assert!(leads_of(&ours).await.is_empty());
}

async fn malformed_bodies_are_422_naming_the_field(app: TestApp) {
    let owner = app.new_tenant("Hooks").await;
    let secret = rotate(&owner).await;
    let ts = now();
    for (body, field) in [
        (r#"{"name":"Ali"}"#, "phone"),
        (r#"{"phone":"call me"}"#, "phone"),
        (r#"{"phone":"12"}"#, "phone"),
        (r#"{"phone":"0123456789","tags":"vip"}"#, "tags"),
        (r#"{"phone":"0123456789","tags":["ok",3]}"#, "tags"),
        (r#"{"phone":"0123456789","status":"not a word"}"#, "status"),
        (r#"{"phone":"0123456789","fields":["a"]}"#, "fields"),
        (r#"{"phone":"0123456789","phon":"x"}"#, "phon"),
        (r#"{"phone":"0123456789""#, "body"),
        (r#"["0123456789"]"#, "body"),
    ] {
        let response = signed(&app, owner.tenant_id, &secret, ts, body).await;
        let answer = json_of(response, 422).await;
        assert_eq!(answer["error"]["code"], "invalid_lead", "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body}: {message:?} should name {field}"
        );
    }
    assert!(leads_of(&owner).await.is_empty());
    // A rejected body was not recorded as delivered: once fixed, it goes through.
    let fixed = r#"{"phone":"0123456789","tags":["vip"]}"#;
    let created = json_of(signed(&app, owner.tenant_id, &secret, ts, fixed).await, 201).await;
    assert_eq!(created["created"], true);
    // An unsigned malformed body is refused as unsigned, not parsed.
    let response = deliver(&app, Some(owner.tenant_id), Some(ts), None, "{").await;
    refused(response, "bad_signature").await;
}
