//! Campaign operations on both backends, through the simulator: retrying failed messages
//! resends only those (the simulator counts each message id once and no duplicate), cloning
//! makes a draft with the same settings and file, and the CSV export quotes, neutralises
//! formulas and shows a member only their devices' rows.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use wafleet::db::schema::leads;
use wafleet::db_run;

use crate::campaigns::{
    create, messages, next_frame, progress, seed_leads, start, subscribe, test_pacing, wait_status,
};
use crate::helpers::{TestApp, UserClient};

/// The campaigns' fast simulator, with two attempts per message, so injected failures end rows
/// quickly.
const OPS_SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__TIME_SCALE", "100"),
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__DELIVERED_AFTER_MS", "500"),
    ("WAFLEET__SIM__READ_AFTER_MS", "500"),
    ("WAFLEET__BROADCAST__PROGRESS_INTERVAL_MS", "100"),
    ("WAFLEET__BROADCAST__LEASE_SECS", "2"),
    ("WAFLEET__BROADCAST__MAX_ATTEMPTS", "2"),
];

crate::both_backends!(with super::OPS_SIM;
    retry_failed_resends_only_the_failed_messages,
    a_clone_is_a_draft_with_the_same_settings_and_file,
    the_csv_export_quotes_neutralises_and_keeps_members_to_their_devices,
);

/// `POST /campaigns/{id}/retry-failed` with `body` (none when `None`).
async fn retry(user: &UserClient, id: i64, body: Option<&str>) -> (u16, Value) {
    let mut request = user.request(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/retry-failed"),
    );
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Rows of `rows` in `status`.
fn in_status<'a>(rows: &'a [Value], status: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["status"] == status).collect()
}

async fn retry_failed_resends_only_the_failed_messages(app: TestApp) {
    // Faults are injected by the platform admin, so the campaign runs in the admin's tenant.
    let owner = app.admin().await;
    let device = app.paired_device(&owner, "Sales").await;
    let spare = app.paired_device(&owner, "Spare").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 10, 0).await;
    let id = create(
        &owner,
        json!({"name": "Flaky", "message": "Hi {name}", "target": {"list_ids": [list]},
               "devices": {"mode": "set", "ids": [device]}, "pacing": test_pacing()}),
    )
    .await;
    // Nothing to retry before the start.
    let (status, body) = retry(&owner, id, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "wrong_state");
    // The next six sends fail with a server error: with two attempts each, three messages fail.
    let fault = owner
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": device, "fault": {"kind": "fail_sends", "sends": 6}}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    start(&owner, id).await;
    let done = wait_status(&owner, id, "completed").await;
    assert_eq!(done["counts"]["failed"], 3, "{done}");
    let sim = app.state.fleet.sim.clone().unwrap();
    assert_eq!(sim.stats().failed_sends, 6);
    assert_eq!(sim.stats().delivered, 7);
    let before = messages(&owner, id).await;
    let failed: Vec<Value> = in_status(&before, "failed").into_iter().cloned().collect();
    let sent_before: Vec<Value> = before
        .iter()
        .filter(|r| r["status"] != "failed")
        .cloned()
        .collect();
    // One of the failed leads opts out meanwhile: its message stays failed.
    let opted = failed[0]["phone"].as_str().unwrap().to_string();
    let response = owner
        .post("/api/v1/opt-outs", &json!({"phone": format!("+{opted}")}))
        .await;
    assert!(response.status().is_success(), "{}", response.status());

    // Bad input is refused, never read as "every device".
    let (status, body) = retry(&owner, id, Some("{\"device_id\": \"one\"}")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = retry(&owner, id, Some(&json!({"device_id": 999_999}).to_string())).await;
    assert_eq!(status, 422, "{body}");
    // Another device's failures: none, and the campaign stays completed.
    let (status, body) = retry(&owner, id, Some(&json!({"device_id": spare}).to_string())).await;
    assert_eq!((status, &body["retried"]), (200, &json!(0)), "{body}");
    assert_eq!(body["campaign"]["status"], "completed");
    // Another tenant cannot retry it.
    let other = app.new_tenant("Other").await;
    assert_eq!(retry(&other, id, None).await.0, 404);

    // The retry is announced on the campaign's topic: it runs again, then completes.
    let mut ws = subscribe(&app, &owner, &format!("campaign/{id}")).await;
    let (status, body) = retry(&owner, id, Some(&json!({"device_id": device}).to_string())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retried"], 2, "{body}");
    assert_eq!(body["campaign"]["status"], "running");
    loop {
        let frame = next_frame(&mut ws).await;
        if frame["event"] == "CAMPAIGN_PROGRESS" && frame["data"]["status"] == "running" {
            break;
        }
    }
    let done = wait_status(&owner, id, "completed").await;
    assert_eq!(done["counts"]["failed"], 1, "{done}");
    let after = messages(&owner, id).await;
    // The opted-out lead's message is still failed, the rest went out once.
    let still: Vec<&Value> = in_status(&after, "failed");
    assert_eq!(still.len(), 1);
    assert_eq!(still[0]["phone"], opted.as_str());
    let stats = sim.stats();
    assert_eq!(stats.delivered, 9, "{stats:?}");
    assert_eq!(
        stats.duplicates, 0,
        "nothing sent before went out again: {stats:?}"
    );
    for row in &sent_before {
        let message_id = row["message_id"].as_str().unwrap();
        assert_eq!(sim.send_attempts(message_id), 1, "{row}");
    }
    for row in failed.iter().skip(1) {
        let now = after.iter().find(|r| r["id"] == row["id"]).unwrap();
        assert_ne!(now["status"], "failed", "{now}");
        assert_eq!(now["message_id"], row["message_id"], "same WhatsApp id");
        assert_eq!(sim.send_attempts(row["message_id"].as_str().unwrap()), 1);
    }
    // A second retry finds only the opted-out one, which stays.
    let (status, body) = retry(&owner, id, None).await;
    assert_eq!((status, &body["retried"]), (200, &json!(0)), "{body}");
    assert_eq!(progress(&owner, id).await["status"], "completed");
}

async fn a_clone_is_a_draft_with_the_same_settings_and_file(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 3, 0).await;
    let at = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let id = create(
        &owner,
        json!({"name": "Catalogue", "message": "New catalogue for {name}",
               "target": {"list_ids": [list], "tags": ["vip"]}, "pacing": test_pacing(),
               "on_device_loss": "wait", "scheduled_at": at}),
    )
    .await;
    let put = owner
        .request(Method::PUT, &format!("/api/v1/campaigns/{id}/image"))
        .header("content-type", "image/png")
        .body(crate::chats::big_png())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let cloned = owner
        .post(&format!("/api/v1/campaigns/{id}/clone"), &json!({}))
        .await;
    assert_eq!(cloned.status(), 201);
    let copy: Value = cloned.json().await.unwrap();
    let original: Value = owner
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(copy["id"], original["id"]);
    assert_eq!(copy["name"], "Catalogue (copy)");
    assert_eq!(copy["status"], "draft");
    assert_eq!(copy["scheduled_at"], Value::Null);
    for field in [
        "message",
        "target",
        "devices",
        "pacing",
        "on_device_loss",
        "kind",
        "has_image",
    ] {
        assert_eq!(copy[field], original[field], "{field}");
    }
    assert_eq!(copy["has_image"], true);
    // The copy runs on its own; the original stays scheduled.
    let copy_id = copy["id"].as_i64().unwrap();
    let patched = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/campaigns/{copy_id}"),
            &json!({"name": "Now", "message": "Hi {name}", "target": {"list_ids": [list]},
                    "pacing": test_pacing()}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    start(&owner, copy_id).await;
    wait_status(&owner, copy_id, "completed").await;
    assert_eq!(progress(&owner, id).await["status"], "scheduled");
    // A completed campaign clones too; other tenants' do not.
    let again = owner
        .post(&format!("/api/v1/campaigns/{copy_id}/clone"), &json!({}))
        .await;
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["name"], "Now (copy)");
    assert_eq!(again["status"], "draft");
    let other = app.new_tenant("Other").await;
    let refused = other
        .post(&format!("/api/v1/campaigns/{id}/clone"), &json!({}))
        .await;
    assert_eq!(refused.status(), 404);
}

/// Renames the lead with `phone` in the database.
async fn rename_lead(app: &TestApp, phone: &str, name: &str) {
    let db = &app.db;
    let renamed: Result<usize, wafleet::db::DbError> = async {
        db_run!(db, |conn| {
            diesel::update(leads::table.filter(leads::phone.eq(phone)))
                .set(leads::name.eq(name))
                .execute(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await;
    assert_eq!(renamed.unwrap(), 1);
}

/// The export of campaign `id` as `user` sees it: status, content type, lines.
async fn export(user: &UserClient, id: i64) -> (u16, String, Vec<String>) {
    let response = user
        .get(&format!("/api/v1/campaigns/{id}/export.csv"))
        .await;
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let lines = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (status, kind, lines)
}

async fn the_csv_export_quotes_neutralises_and_keeps_members_to_their_devices(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let first = app.paired_device(&owner, "Front desk").await;
    let second = app.paired_device(&owner, "Back, office").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let assigned = owner
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{}/devices", member.user_id),
            &json!({"device_ids": [first]}),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    let list = seed_leads(&app, owner.tenant_id, "Expo", 12, 0).await;
    rename_lead(&app, "60120000000", "=HYPERLINK(\"http://x\",\"y\")").await;
    rename_lead(&app, "60120000001", "Tan, \"Ah\" Kow").await;
    rename_lead(&app, "60120000002", "@SUM(A1)").await;
    rename_lead(&app, "60120000003", "-1+2").await;
    let id = create(
        &owner,
        json!({"name": "Export", "message": "Hi {first_name}", "target": {"list_ids": [list]},
               "devices": {"mode": "set", "ids": [first, second]}, "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    wait_status(&owner, id, "completed").await;

    let (status, kind, lines) = export(&owner, id).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(
        lines[0],
        "phone,name,device,status,error,attempts,sent_at,delivered_at,read_at"
    );
    assert_eq!(lines.len(), 13, "{lines:#?}");
    let line_of = |phone: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(phone))
            .unwrap_or_else(|| panic!("{phone} missing"))
            .clone()
    };
    assert!(
        line_of("60120000000")
            .starts_with("60120000000,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\","),
        "{}",
        line_of("60120000000")
    );
    assert!(line_of("60120000001").starts_with("60120000001,\"Tan, \"\"Ah\"\" Kow\","));
    assert!(line_of("60120000002").starts_with("60120000002,'@SUM(A1),"));
    assert!(line_of("60120000003").starts_with("60120000003,'-1+2,"));
    // Device names are quoted too; times are in the tenant's zone (Kuala Lumpur, +08:00).
    let rows = messages(&owner, id).await;
    let on_first = rows.iter().filter(|r| r["device_id"] == first).count();
    assert!(
        on_first > 0 && on_first < 12,
        "both devices sent: {on_first}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(",\"Back, office\","))
            .count(),
        12 - on_first
    );
    assert!(
        lines[1..].iter().all(|l| l.contains(" +08:00")),
        "{lines:#?}"
    );

    // A member sees only their device's rows.
    let (status, _, mine) = export(&member, id).await;
    assert_eq!(status, 200);
    assert_eq!(mine.len(), 1 + on_first, "{mine:#?}");
    assert!(
        mine[1..].iter().all(|l| l.contains(",Front desk,")),
        "{mine:#?}"
    );
    // Other tenants get a 404.
    let other = app.new_tenant("Other").await;
    let (status, _, _) = export(&other, id).await;
    assert_eq!(status, 404);
}

crate::both_backends!(with super::OPS_SIM;
    greeting_is_the_time_of_day_word_when_sent,
);

/// The `{greeting}` words that may apply between `before` and now in `zone` (a test can run
/// across an hour boundary).
pub(crate) fn greetings_since(
    before: chrono::DateTime<chrono::Utc>,
    zone: &str,
) -> Vec<&'static str> {
    let zone: chrono_tz::Tz = zone.parse().unwrap();
    let mut words = vec![
        wafleet::broadcast::greeting::at(before, zone),
        wafleet::broadcast::greeting::at(chrono::Utc::now(), zone),
    ];
    words.dedup();
    words
}

async fn greeting_is_the_time_of_day_word_when_sent(app: TestApp) {
    let before = chrono::Utc::now();
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 3, 0).await;
    let id = create(
        &owner,
        json!({"name": "Greet", "message": "{greeting} {first_name}!", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    let preview: Value = owner
        .get(&format!("/api/v1/campaigns/{id}/preview?count=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["variables"], json!(["first_name", "greeting"]));
    let words = greetings_since(before, "Asia/Kuala_Lumpur");
    let sample = preview["samples"][0]["text"].as_str().unwrap();
    assert!(
        words.iter().any(|w| sample == format!("{w} Lead!")),
        "{sample} is not one of {words:?}"
    );
    start(&owner, id).await;
    wait_status(&owner, id, "completed").await;
    let words = greetings_since(before, "Asia/Kuala_Lumpur");
    for row in messages(&owner, id).await {
        let body = row["body"].as_str().unwrap();
        assert!(
            words.iter().any(|w| body == format!("{w} Lead!")),
            "{body} is not one of {words:?}"
        );
    }
}
