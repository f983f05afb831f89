//! Branching on a reply, on both backends, through the simulator's inbound messages: a step's
//! `on_reply` rule moves a lead who answers with its keyword to another sequence, the
//! sequence's default stops one who answers anything else, and a lead who does not answer goes
//! on with the next step. Jump targets are checked (same tenant, not the sequence itself).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wafleet::broadcast::sequence::engine::Tick;

use crate::campaign_ops::greetings_since;
use crate::campaigns::seed_leads;
use crate::helpers::{wait_until, TestApp, UserClient};
use crate::sequences::{lead_ids, step_rows, try_create_sequence, wait_sent};

crate::both_backends!(with &[crate::campaigns::FAST_SIM, crate::sequences::TICK_ON_REQUEST].concat();
    a_keyword_reply_jumps_another_reply_stops_and_silence_continues,
);

const WAIT: Duration = Duration::from_secs(60);

/// One engine round, awaited.
async fn tick(app: &TestApp) {
    app.state.sequences.send(Tick).await.unwrap();
}

async fn enrollments(user: &UserClient, id: i64) -> Vec<Value> {
    let page: Value = user
        .get(&format!("/api/v1/sequences/{id}/enrollments?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    page["enrollments"].as_array().unwrap().clone()
}

/// The enrolment of `phone` in sequence `id`, once `ready` holds for it.
async fn enrollment_when(
    user: &UserClient,
    id: i64,
    phone: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, WAIT, || async {
        enrollments(user, id)
            .await
            .into_iter()
            .find(|e| e["phone"] == phone && ready(e))
    })
    .await
}

/// A contact writes `text` to `device` through `POST /sim/inbound` (admin).
async fn reply(admin: &UserClient, device: i64, from: &str, text: &str) {
    let response = admin
        .post(
            "/api/v1/sim/inbound",
            &json!({"device_id": device, "from": from, "text": text}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
}

async fn a_keyword_reply_jumps_another_reply_stops_and_silence_continues(app: TestApp) {
    branch_both_ways(&app).await;
}

/// The two sequences of [`branch_both_ways`]: COLD branches on a reply, WARM is its jump target.
pub(crate) struct Branched {
    /// COLD: step 1 jumps to WARM on "yes", stops on another reply; step 2 an hour later.
    pub cold: i64,
    /// WARM: one step.
    pub warm: i64,
}

/// The whole walk on the admin's tenant: jump targets checked, then three leads through COLD —
/// lead 0 answers "Yes please!" (moved to WARM), lead 1 "no thanks" (stopped), lead 2 stays
/// silent and completes both steps — each checked through the API.
pub(crate) async fn branch_both_ways(app: &TestApp) -> Branched {
    let before = chrono::Utc::now();
    // Inbound messages are injected by the platform admin, on the admin tenant's devices.
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "Sales").await;
    seed_leads(app, admin.tenant_id, "Expo", 3, 0).await;
    let (status, warm) = try_create_sequence(
        &admin,
        json!({"name": "WARM", "steps": [{"message": "{greeting} {first_name}, here are the details"}]}),
    )
    .await;
    assert_eq!(status, 201, "{warm}");
    let warm_id = warm["id"].as_i64().unwrap();
    let rule = json!({"action": "jump", "keyword": "YES", "sequence_id": warm_id});
    let cold_body = |rule: Value| {
        json!({"name": "COLD", "steps": [
            {"message": "Reply YES for details", "on_reply": rule},
            {"message": "step two", "delay_hours": 1}
        ]})
    };

    // Jump targets must be sequences of the tenant; a jump needs one.
    for (bad, needle) in [
        (
            json!({"action": "jump", "sequence_id": 999_999}),
            "not found",
        ),
        (json!({"action": "jump"}), "sequence_id"),
        (
            json!({"action": "stop", "keyword": "two words"}),
            "one word",
        ),
        (json!({"action": "bounce"}), ""),
    ] {
        let (status, body) = try_create_sequence(&admin, cold_body(bad.clone())).await;
        assert!(status == 422 || status == 400, "{bad}: {status} {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{body}"
        );
    }
    let other = app.new_tenant("Other").await;
    let (status, theirs) = try_create_sequence(
        &other,
        json!({"name": "THEIRS", "steps": [{"message": "hi"}]}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = try_create_sequence(
        &admin,
        cold_body(json!({"action": "jump", "sequence_id": theirs["id"]})),
    )
    .await;
    assert_eq!(status, 422, "another tenant's sequence: {body}");

    let (status, cold) = try_create_sequence(&admin, cold_body(rule.clone())).await;
    assert_eq!(status, 201, "{cold}");
    let cold_id = cold["id"].as_i64().unwrap();
    assert_eq!(cold["steps"][0]["on_reply"]["action"], "jump");
    assert_eq!(cold["steps"][0]["on_reply"]["keyword"], "yes");
    assert_eq!(cold["steps"][1]["on_reply"], Value::Null);
    // No self-loops: a step cannot jump to its own sequence.
    let self_loop = admin
        .send_json(
            Method::PUT,
            &format!("/api/v1/sequences/{cold_id}"),
            &cold_body(json!({"action": "jump", "sequence_id": cold_id})),
        )
        .await;
    let status = self_loop.status();
    let body: Value = self_loop.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("own sequence"));

    let leads = lead_ids(&admin).await;
    let enrolled: Value = admin
        .post(
            &format!("/api/v1/sequences/{cold_id}/enrollments"),
            &json!({"lead_ids": leads}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(enrolled["enrolled"], 3, "{enrolled}");
    tick(app).await; // queues step 1 for the three leads
    wait_sent(app, cold_id, 1, 3).await;
    tick(app).await; // step 1 sent: each waits for step 2
    for phone in ["60120000000", "60120000001", "60120000002"] {
        enrollment_when(&admin, cold_id, phone, "waiting for step 2", |e| {
            e["status"] == "waiting" && e["step"] == 2
        })
        .await;
    }

    // Lead 0 answers with the keyword: it moves to WARM.
    reply(&admin, device, "60120000000", "Yes please!").await;
    let moved = enrollment_when(&admin, cold_id, "60120000000", "the jump", |e| {
        e["status"] == "stopped"
    })
    .await;
    assert_eq!(
        moved["reason"],
        format!("replied: moved to sequence {warm_id}")
    );
    let joined = enrollment_when(&admin, warm_id, "60120000000", "the WARM enrolment", |_| {
        true
    })
    .await;
    assert_eq!(joined["source"], "jump");
    // Lead 1 answers something else: the sequence's default (stop on reply).
    reply(&admin, device, "60120000001", "no thanks").await;
    let stopped = enrollment_when(&admin, cold_id, "60120000001", "the stop", |e| {
        e["status"] == "stopped"
    })
    .await;
    assert_eq!(stopped["reason"], "replied");
    // Lead 2 stays silent and continues.
    app.state
        .clock
        .set(app.state.clock.now() + chrono::Duration::hours(2));
    tick(app).await; // step 2 for lead 2, WARM's step 1 for lead 0
    wait_sent(app, cold_id, 2, 1).await;
    wait_sent(app, warm_id, 1, 1).await;
    tick(app).await;

    let cold_rows = step_rows(app, cold_id).await;
    let steps_of = |phone: &str| {
        let mut steps: Vec<i64> = cold_rows
            .keys()
            .filter(|(p, _)| p == phone)
            .map(|(_, s)| *s)
            .collect();
        steps.sort_unstable();
        steps
    };
    assert_eq!(steps_of("60120000000"), [1], "{cold_rows:?}");
    assert_eq!(steps_of("60120000001"), [1], "{cold_rows:?}");
    assert_eq!(steps_of("60120000002"), [1, 2], "{cold_rows:?}");
    let warm_rows = step_rows(app, warm_id).await;
    assert_eq!(warm_rows.len(), 1, "{warm_rows:?}");
    let (_, body) = &warm_rows[&("60120000000".to_string(), 1)];
    // `{greeting}` is the word of the tenant's local time when it was sent.
    let me: Value = admin.get("/api/v1/me").await.json().await.unwrap();
    let words = greetings_since(before, me["tenant"]["time_zone"].as_str().unwrap());
    assert!(
        words
            .iter()
            .any(|w| *body == format!("{w} Lead, here are the details")),
        "{body} is not one of {words:?}"
    );
    let done = enrollment_when(&admin, cold_id, "60120000002", "lead 2 to complete", |e| {
        e["status"] == "completed"
    })
    .await;
    assert_eq!(done["replied_at"], Value::Null);
    Branched {
        cold: cold_id,
        warm: warm_id,
    }
}
