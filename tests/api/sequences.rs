//! Drip sequences and AI lead distribution on both backends. Sequences run on a test clock
//! (`AppState::clock`) and the engine's rounds are driven by hand (`Tick`), so days of steps
//! take seconds and every assertion follows a known round; the sends themselves go through the
//! real lanes, Throttle and simulator on a fast clock.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};
use wafleet::broadcast::sequence::engine::Tick;

use crate::campaigns::{create, messages, seed_leads, start, test_pacing, wait_status};
use crate::helpers::{wait_until, TestApp, UserClient};

/// Sequence rounds only when a test asks for one (with the campaigns' fast simulator).
pub(crate) const TICK_ON_REQUEST: &[(&str, &str)] =
    &[("WAFLEET__BROADCAST__SEQUENCE_TICK_MS", "3600000")];

crate::both_backends!(with &[crate::campaigns::FAST_SIM, super::TICK_ON_REQUEST].concat();
    three_steps_follow_their_delays_and_windows,
    a_reply_after_step_one_stops_the_rest,
    a_voice_note_step_goes_out_as_a_voice_note,
    a_paused_sequence_sends_nothing_due_until_resumed,
    editing_a_step_before_it_is_due_changes_what_is_sent,
    completing_leads_chain_into_the_next_sequence,
    an_opt_out_stops_the_enrolment,
    a_webhook_lead_with_the_trigger_tag_is_enrolled,
    sequences_are_validated_and_tenant_scoped,
    ai_distribution_fills_each_device_to_its_limit,
    a_device_lost_mid_distribution_hands_its_share_on,
    a_device_that_errors_mid_distribution_is_left_out,
    a_lead_another_distribution_claimed_is_skipped,
);

// Two enrolments a round, so one round cannot see every enrolment at once.
crate::both_backends!(with &[
        crate::campaigns::FAST_SIM,
        super::TICK_ON_REQUEST,
        &[("WAFLEET__BROADCAST__SEQUENCE_BATCH", "2")],
    ].concat();
    a_sent_step_moves_on_while_older_ones_still_wait,
);

const WAIT: Duration = Duration::from_secs(60);

/// 2030-01-07 (a Monday) `hh:mm` in Kuala Lumpur, the test tenants' zone.
fn kl(day: u32, hh_mm: &str) -> DateTime<Utc> {
    let local =
        NaiveDateTime::parse_from_str(&format!("2030-01-{day:02} {hh_mm}"), "%Y-%m-%d %H:%M")
            .unwrap();
    chrono_tz::Asia::Kuala_Lumpur
        .from_local_datetime(&local)
        .unwrap()
        .with_timezone(&Utc)
}

/// One engine round, awaited.
async fn tick(app: &TestApp) {
    app.state.sequences.send(Tick).await.unwrap();
}

async fn create_sequence(user: &UserClient, body: Value) -> Value {
    let (status, body) = try_create_sequence(user, body).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// `POST /api/v1/sequences` as `user`: the status and the answer.
pub(crate) async fn try_create_sequence(user: &UserClient, body: Value) -> (u16, Value) {
    let response = user.post("/api/v1/sequences", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The ids of the leads `user` can see (the first 100), in order.
pub(crate) async fn lead_ids(user: &UserClient) -> Vec<i64> {
    let page: Value = user
        .get("/api/v1/leads?limit=100")
        .await
        .json()
        .await
        .unwrap();
    let mut ids: Vec<i64> = page["items"]
        .as_array()
        .or_else(|| page["leads"].as_array())
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
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

/// The sequence's outbox rows (through its carrier): (phone, step) → (status, body).
pub(crate) async fn step_rows(
    app: &TestApp,
    sequence_id: i64,
) -> HashMap<(String, i64), (String, String)> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use wafleet::db::schema::{outbox, sequences};
    let db = &app.db;
    let rows: Vec<(String, i64, String, String)> = async {
        wafleet::db_run!(db, |conn| {
            outbox::table
                .inner_join(sequences::table.on(sequences::campaign_id.eq(outbox::campaign_id)))
                .filter(sequences::id.eq(sequence_id))
                .select((outbox::phone, outbox::step, outbox::status, outbox::body))
                .load(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    rows.into_iter()
        .map(|(phone, step, status, body)| ((phone, step), (status, body)))
        .collect()
}

/// Waits until `count` rows of step `step` were accepted by WhatsApp.
pub(crate) async fn wait_sent(app: &TestApp, sequence_id: i64, step: i64, count: usize) {
    wait_until(
        &format!("{count} step-{step} messages sent"),
        WAIT,
        || async {
            let sent = step_rows(app, sequence_id)
                .await
                .into_iter()
                .filter(|((_, s), (status, _))| {
                    *s == step && ["sent", "delivered", "read"].contains(&status.as_str())
                })
                .count();
            (sent >= count).then_some(())
        },
    )
    .await;
}

fn rows_of_step(rows: &HashMap<(String, i64), (String, String)>, step: i64) -> usize {
    rows.keys().filter(|(_, s)| *s == step).count()
}

async fn three_steps_follow_their_delays_and_windows(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    seed_leads(&app, owner.tenant_id, "Expo", 4, 0).await; // leads 0 and 2 are tagged vip
    let sequence = create_sequence(
        &owner,
        json!({"name": "COLD", "trigger_tag": "VIP", "steps": [
            {"message": "Hi {name}, one"},
            {"message": "two", "delay_hours": 20, "window": {"start": "09:00", "end": "18:00"}},
            {"message": "three", "delay_hours": 2, "window": {"start": "09:00", "end": "18:00"}}
        ]}),
    )
    .await;
    let id = sequence["id"].as_i64().unwrap();
    assert_eq!(sequence["steps"][1]["delay_minutes"], 1200);
    app.state.clock.set(kl(7, "10:00"));

    tick(&app).await; // enrols the two tagged leads and queues step 1 (due at once)
    let listed = enrollments(&owner, id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .all(|e| e["source"] == "tag" && e["status"] == "active"));
    wait_sent(&app, id, 1, 2).await;
    let rows = step_rows(&app, id).await;
    assert_eq!(rows[&("60120000000".to_string(), 1)].1, "Hi Lead 0, one");
    assert_eq!(rows_of_step(&rows, 2), 0);

    tick(&app).await; // step 1 sent → waiting for step 2, due 20 h later (06:00, before the window)
    for e in enrollments(&owner, id).await {
        assert_eq!(
            (e["status"].as_str(), e["step"].as_i64()),
            (Some("waiting"), Some(2)),
            "{e}"
        );
    }
    app.state.clock.set(kl(8, "06:30"));
    tick(&app).await; // due, but outside the window: moved to its opening
    assert_eq!(
        rows_of_step(&step_rows(&app, id).await, 2),
        0,
        "nothing before 09:00"
    );
    for e in enrollments(&owner, id).await {
        let due: DateTime<Utc> = e["next_due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(due, kl(8, "09:00"), "{e}");
    }
    app.state.clock.set(kl(8, "08:59"));
    tick(&app).await;
    assert_eq!(
        rows_of_step(&step_rows(&app, id).await, 2),
        0,
        "still before 09:00"
    );

    app.state.clock.set(kl(8, "09:01"));
    tick(&app).await;
    wait_sent(&app, id, 2, 2).await;
    tick(&app).await; // waiting for step 3, due 11:01
    assert_eq!(rows_of_step(&step_rows(&app, id).await, 3), 0);
    app.state.clock.set(kl(8, "11:02"));
    tick(&app).await;
    wait_sent(&app, id, 3, 2).await;
    tick(&app).await;
    let done = enrollments(&owner, id).await;
    assert!(done.iter().all(|e| e["status"] == "completed"), "{done:?}");

    let rows = step_rows(&app, id).await;
    assert_eq!(
        rows.len(),
        6,
        "three messages for each of two leads: {rows:?}"
    );
    assert_eq!(rows[&("60120000002".to_string(), 3)].1, "three");
    let stats = app.state.fleet.sim.clone().unwrap().stats();
    assert_eq!(
        (stats.delivered, stats.duplicates, stats.violations),
        (6, 0, 0),
        "{stats:?}"
    );
    let report: Value = owner
        .get(&format!("/api/v1/sequences/{id}/report"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["enrolled"], 2);
    assert_eq!(report["by_status"]["completed"], 2);
    for step in 0..3 {
        assert_eq!(report["steps"][step]["sent"], 2, "{report}");
    }
    assert_eq!(report["devices"].as_array().unwrap().len(), 1, "{report}");
}

/// A one-device tenant with leads 0..n and a sequence of `steps` entered by manual enrolment.
async fn enrolled(app: &TestApp, leads: usize, body: Value) -> (UserClient, i64, i64, Vec<i64>) {
    let owner = app.new_tenant("Acme").await;
    let device = app.paired_device(&owner, "Sales").await;
    seed_leads(app, owner.tenant_id, "Expo", leads, 0).await;
    let sequence = create_sequence(&owner, body).await;
    let id = sequence["id"].as_i64().unwrap();
    let lead_ids = lead_ids(&owner).await;
    let report: Value = owner
        .post(
            &format!("/api/v1/sequences/{id}/enrollments"),
            &json!({"lead_ids": lead_ids}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["enrolled"], leads as i64, "{report}");
    (owner, device, id, lead_ids)
}

/// A step may send a voice note (checked as OGG/Opus): it goes out as one, without a caption.
async fn a_voice_note_step_goes_out_as_a_voice_note(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let (owner, device, id, _) = enrolled(
        &app,
        1,
        json!({"name": "VOICE", "steps": [{"message": "listen"}]}),
    )
    .await;
    // A real voice note: one a contact sent, as the server stored it.
    let sim = app.state.fleet.sim.clone().unwrap();
    let note = wafleet::whatsapp::sim::SimInbound {
        from: "60199999999".into(),
        kind: wafleet::whatsapp::MessageKind::Voice,
        addressing: Some(wafleet::whatsapp::sim::Addressing::Phone),
        ..Default::default()
    };
    sim.deliver(device, &note).await.unwrap();
    let stored = wait_until("the contact's voice note", WAIT, || async {
        owner
            .chat_messages(device, "60199999999@s.whatsapp.net")
            .await
            .into_iter()
            .find(|m| m["kind"] == "voice")
    })
    .await;
    let ogg = owner
        .get(stored["media"]["url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap();
    let put = owner
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/sequences/{id}/steps/1/attachment?kind=voice"),
        )
        .body(ogg.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let sequence: Value = put.json().await.unwrap();
    assert_eq!(sequence["steps"][0]["file"]["kind"], "voice", "{sequence}");
    tick(&app).await;
    wait_sent(&app, id, 1, 1).await;
    let sent = wait_until("the step in the lead's chat", WAIT, || async {
        owner
            .chat_messages(device, "60120000000@s.whatsapp.net")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(sent["kind"], "voice", "{sent}");
    assert_eq!(sent["text"], Value::Null, "a voice note carries no caption");
    assert_eq!(sent["media"]["size"], ogg.len());
}

/// A reply after the first step (written from the lead's LID) stops that lead's enrolment; the other
/// lead goes on through every step.
async fn a_reply_after_step_one_stops_the_rest(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let (owner, device, id, lead_ids) = enrolled(
        &app,
        2,
        json!({"name": "COLD", "steps": [
            {"message": "one"}, {"message": "two", "delay_hours": 1}, {"message": "three", "delay_hours": 1}
        ]}),
    )
    .await;
    // Enrolling again changes nothing: once per sequence.
    let again: Value = owner
        .post(
            &format!("/api/v1/sequences/{id}/enrollments"),
            &json!({"lead_ids": lead_ids}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (again["enrolled"].as_i64(), again["already"].as_i64()),
        (Some(0), Some(2))
    );
    tick(&app).await;
    wait_sent(&app, id, 1, 2).await;
    tick(&app).await;
    let sim = app.state.fleet.sim.clone().unwrap();
    // From the lead's LID, the phone only as the alternate sender, as WhatsApp often sends it.
    let reply = wafleet::whatsapp::sim::SimInbound {
        from: "60120000000".into(),
        text: "who is this?".into(),
        addressing: Some(wafleet::whatsapp::sim::Addressing::Lid),
        ..Default::default()
    };
    sim.deliver(device, &reply).await.unwrap();
    wait_until("the reply to stop the enrolment", WAIT, || async {
        enrollments(&owner, id)
            .await
            .into_iter()
            .find(|e| e["phone"] == "60120000000" && e["status"] == "stopped")
    })
    .await;
    app.state.clock.set(kl(7, "13:00"));
    for _ in 0..2 {
        tick(&app).await;
        wait_until("the other lead's next step", WAIT, || async {
            let rows = step_rows(&app, id).await;
            let max = rows
                .keys()
                .filter(|(p, _)| p == "60120000001")
                .map(|(_, s)| *s)
                .max();
            let last_sent = rows.iter().any(|((p, s), (status, _))| {
                p == "60120000001" && Some(*s) == max && status != "pending" && status != "sending"
            });
            last_sent.then_some(())
        })
        .await;
        tick(&app).await;
        app.state
            .clock
            .set(app.state.clock.now() + chrono::Duration::hours(2));
    }
    tick(&app).await;
    let rows = step_rows(&app, id).await;
    let steps_of = |phone: &str| rows.keys().filter(|(p, _)| p == phone).count();
    assert_eq!(
        steps_of("60120000000"),
        1,
        "the replier got step 1 only: {rows:?}"
    );
    assert_eq!(
        steps_of("60120000001"),
        3,
        "the other lead got all three: {rows:?}"
    );
    let listed = enrollments(&owner, id).await;
    let replier = listed.iter().find(|e| e["phone"] == "60120000000").unwrap();
    assert_eq!(replier["reason"], "replied");
    assert!(replier["replied_at"].is_string());
    let report: Value = owner
        .get(&format!("/api/v1/sequences/{id}/report"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["steps"][0]["replied"], 1, "{report}");
    assert_eq!(report["steps"][1]["stopped"], 1, "{report}");
    assert_eq!(report["by_status"]["completed"], 1, "{report}");
}

async fn a_paused_sequence_sends_nothing_due_until_resumed(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let (owner, _, id, _) = enrolled(
        &app,
        3,
        json!({"name": "COLD", "steps": [{"message": "one", "delay_hours": 1}]}),
    )
    .await;
    let paused: Value = owner
        .post(
            &format!("/api/v1/sequences/{id}/toggle"),
            &json!({"active": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paused["status"], "paused");
    app.state.clock.set(kl(7, "12:00"));
    tick(&app).await;
    tick(&app).await;
    assert!(
        step_rows(&app, id).await.is_empty(),
        "a paused sequence queued a message"
    );
    let resumed: Value = owner
        .post(&format!("/api/v1/sequences/{id}/toggle"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["status"], "active");
    tick(&app).await;
    wait_sent(&app, id, 1, 3).await;
}

async fn editing_a_step_before_it_is_due_changes_what_is_sent(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let body = |second: &str| {
        json!({"name": "COLD", "steps": [
            {"message": "one"}, {"message": second, "delay_days": 1}
        ]})
    };
    let (owner, _, id, _) = enrolled(&app, 1, body("old {name}")).await;
    tick(&app).await;
    wait_sent(&app, id, 1, 1).await;
    tick(&app).await;
    let edited = owner
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/sequences/{id}"),
            &body("new {first_name}"),
        )
        .await;
    assert_eq!(edited.status(), 200);
    app.state.clock.set(kl(8, "10:01"));
    tick(&app).await;
    wait_sent(&app, id, 2, 1).await;
    let rows = step_rows(&app, id).await;
    assert_eq!(rows[&("60120000000".to_string(), 2)].1, "new Lead");
}

async fn completing_leads_chain_into_the_next_sequence(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    seed_leads(&app, owner.tenant_id, "Expo", 2, 0).await;
    let warm = create_sequence(
        &owner,
        json!({"name": "WARM", "steps": [{"message": "warm"}]}),
    )
    .await;
    let warm_id = warm["id"].as_i64().unwrap();
    let cold = create_sequence(
        &owner,
        json!({"name": "COLD", "trigger_tag": "vip", "next_sequence_id": warm_id,
               "steps": [{"message": "cold"}]}),
    )
    .await;
    let cold_id = cold["id"].as_i64().unwrap();
    // WARM → COLD → WARM would loop.
    let cycle = owner
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/sequences/{warm_id}"),
            &json!({"name": "WARM", "next_sequence_id": cold_id, "steps": [{"message": "warm"}]}),
        )
        .await;
    assert_eq!(cycle.status(), 422);
    let error: Value = cycle.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cycle") && message.contains("WARM → COLD → WARM"),
        "{message}"
    );

    tick(&app).await;
    wait_sent(&app, cold_id, 1, 1).await;
    tick(&app).await; // COLD completes and enrols the lead in WARM, due at once
    let chained = enrollments(&owner, warm_id).await;
    assert_eq!(chained.len(), 1, "{chained:?}");
    assert_eq!(chained[0]["source"], "chain");
    tick(&app).await;
    wait_sent(&app, warm_id, 1, 1).await;
    assert_eq!(enrollments(&owner, cold_id).await[0]["status"], "completed");
}

async fn an_opt_out_stops_the_enrolment(app: TestApp) {
    app.state.clock.set(kl(7, "10:00"));
    let (owner, _, id, _) = enrolled(
        &app,
        1,
        json!({"name": "COLD", "steps": [{"message": "one", "delay_hours": 1}]}),
    )
    .await;
    let added = owner
        .post("/api/v1/opt-outs", &json!({"phone": "+60120000000"}))
        .await;
    assert!(added.status().is_success(), "{}", added.status());
    let listed = enrollments(&owner, id).await;
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["reason"].as_str()),
        (Some("stopped"), Some("opted out"))
    );
    app.state.clock.set(kl(7, "12:00"));
    tick(&app).await;
    assert!(step_rows(&app, id).await.is_empty());
}

async fn a_webhook_lead_with_the_trigger_tag_is_enrolled(app: TestApp) {
    use crate::webhooks::{json_of, now, rotate, signed};
    app.state.clock.set(kl(7, "10:00"));
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let sequence = create_sequence(
        &owner,
        json!({"name": "COLD", "trigger_tag": "cold", "steps": [{"message": "Hi {name}"}]}),
    )
    .await;
    let id = sequence["id"].as_i64().unwrap();
    tick(&app).await; // nothing tagged yet
    assert!(enrollments(&owner, id).await.is_empty());
    let secret = rotate(&owner).await;
    let body = json!({"phone": "+60 12-345 6789", "name": "Aina", "tags": ["COLD"]}).to_string();
    json_of(
        signed(&app, owner.tenant_id, &secret, now(), &body).await,
        201,
    )
    .await;
    tick(&app).await;
    let listed = enrollments(&owner, id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["phone"].as_str(), listed[0]["source"].as_str()),
        (Some("60123456789"), Some("tag"))
    );
    wait_sent(&app, id, 1, 1).await;
    assert_eq!(
        step_rows(&app, id).await[&("60123456789".to_string(), 1)].1,
        "Hi Aina"
    );
    // The same lead tagged again is not enrolled twice.
    let again = json!({"phone": "60123456789", "tags": ["cold", "vip"]}).to_string();
    json_of(
        signed(&app, owner.tenant_id, &secret, now() + 1, &again).await,
        200,
    )
    .await;
    tick(&app).await;
    assert_eq!(enrollments(&owner, id).await.len(), 1);
}

async fn sequences_are_validated_and_tenant_scoped(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let bad = [
        (json!({"name": "x", "steps": []}), "steps"),
        (
            json!({"name": "x", "steps": [{"message": "Hi {name"}]}),
            "steps[1].message",
        ),
        (
            json!({"name": "x", "steps": [{"message": "a", "delay_hours": -1}]}),
            "negative",
        ),
        (
            json!({"name": "x", "steps": [{"message": "a", "window": {"start": "09:00", "end": "09:00"}}]}),
            "window",
        ),
        (
            json!({"name": "x", "next_sequence_id": 999999, "steps": [{"message": "a"}]}),
            "not found",
        ),
        (
            json!({"name": "x", "trigger_tag": "a,b", "steps": [{"message": "a"}]}),
            "trigger_tag",
        ),
    ];
    for (body, needle) in bad {
        let answer = owner.post("/api/v1/sequences", &body).await;
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 422, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    let window = owner
        .post("/api/v1/sequences", &json!({"name": "x", "steps": [{"message": "a", "window": {"start": "9am", "end": "18:00"}}]}))
        .await;
    assert!(window.status().is_client_error());
    let made = create_sequence(&owner, json!({"name": "Mine", "steps": [{"message": "a"}]})).await;
    let dup = owner
        .post(
            "/api/v1/sequences",
            &json!({"name": "Mine", "steps": [{"message": "a"}]}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let other = app.new_tenant("Other").await;
    let id = made["id"].as_i64().unwrap();
    for path in [
        format!("/api/v1/sequences/{id}"),
        format!("/api/v1/sequences/{id}/report"),
        format!("/api/v1/sequences/{id}/enrollments"),
    ] {
        assert_eq!(other.get(&path).await.status(), 404, "{path}");
    }
    let listed: Value = other.get("/api/v1/sequences").await.json().await.unwrap();
    assert_eq!(listed["sequences"].as_array().unwrap().len(), 0);
    // The carrier campaign is not a campaign to users.
    let campaigns: Value = owner.get("/api/v1/campaigns").await.json().await.unwrap();
    assert_eq!(
        campaigns["campaigns"].as_array().unwrap().len(),
        0,
        "{campaigns}"
    );
}

/// Seeds `count` pool leads with niche "insurance" (every third lead is "property").
async fn seed_pool(app: &TestApp, tenant_id: i64, count: usize) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use wafleet::db::schema::leads;
    seed_leads(app, tenant_id, "Pool", count, 0).await;
    let db = &app.db;
    let done: Result<usize, wafleet::db::DbError> = async {
        wafleet::db_run!(db, |conn| {
            diesel::update(leads::table.filter(leads::tenant_id.eq(tenant_id)))
                .set(leads::niche.eq("Insurance"))
                .execute(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await;
    done.unwrap();
}

async fn ai_distribution_fills_each_device_to_its_limit(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let mut devices = Vec::new();
    for n in 0..7 {
        devices.push(app.paired_device(&owner, &format!("Sales {n}")).await);
    }
    seed_pool(&app, owner.tenant_id, 1000).await;
    let pool: Value = owner
        .get("/api/v1/lead-pool?niche=insurance")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (pool["unassigned"].as_i64(), pool["online_devices"].as_i64()),
        (Some(1000), Some(7)),
        "{pool}"
    );
    let id = create(
        &owner,
        json!({"name": "Spread", "kind": "ai", "per_device_limit": 100, "message": "Hi {name}",
               "target": {"niches": ["insurance"]}, "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    wait_status(&owner, id, "completed").await;
    let rows = messages(&owner, id).await;
    assert_eq!(rows.len(), 1000);
    let mut per_device: HashMap<i64, usize> = HashMap::new();
    for row in rows.iter().filter(|r| r["status"] != "skipped") {
        *per_device
            .entry(row["device_id"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_device.len(), 7, "{per_device:?}");
    assert!(
        per_device.values().all(|n| *n == 100),
        "evenly, at the limit: {per_device:?}"
    );
    let left: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(left.len(), 300);
    assert!(left
        .iter()
        .all(|r| r["error"] == "no device capacity left" && r["device_id"].is_null()));
    let pool: Value = owner
        .get("/api/v1/lead-pool?niche=insurance")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        pool["unassigned"], 300,
        "the leads left over stay in the pool"
    );
    let stats = app.state.fleet.sim.clone().unwrap().stats();
    assert_eq!(
        (stats.delivered, stats.duplicates, stats.violations),
        (700, 0, 0)
    );
    // An AI campaign needs a limit.
    let bad = owner
        .post(
            "/api/v1/campaigns",
            &json!({"name": "x", "kind": "ai", "message": "Hi", "target": {}}),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

/// Starts an AI distribution of 300 pool leads over four devices (limit 100) of `owner`'s
/// tenant and waits until the first device has sent a few; answers (owner, campaign, devices).
async fn distribution_under_way(app: &TestApp, owner: UserClient) -> (UserClient, i64, Vec<i64>) {
    let mut devices = Vec::new();
    for n in 0..4 {
        devices.push(app.paired_device(&owner, &format!("Sales {n}")).await);
    }
    seed_pool(app, owner.tenant_id, 300).await;
    let id = create(
        &owner,
        json!({"name": "Spread", "kind": "ai", "per_device_limit": 100, "message": "Hi {name}",
               "target": {"niches": ["insurance"]}, "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    let first = devices[0];
    wait_until("the first device to send a few", WAIT, || async {
        let rows = messages(&owner, id).await;
        let sent = rows
            .iter()
            .filter(|r| {
                r["device_id"] == first && r["status"] != "pending" && r["status"] != "sending"
            })
            .count();
        (sent >= 3).then_some(())
    })
    .await;
    (owner, id, devices)
}

/// Waits for the distribution to complete and checks every lead got its message, the device
/// taken out sent less than its share, and no device went over the limit.
async fn assert_share_moved_on(owner: &UserClient, id: i64, out: i64) {
    wait_status(owner, id, "completed").await;
    let rows = messages(owner, id).await;
    let mut per_device: HashMap<i64, usize> = HashMap::new();
    for row in &rows {
        assert!(
            ["sent", "delivered", "read"].contains(&row["status"].as_str().unwrap()),
            "{row}"
        );
        *per_device
            .entry(row["device_id"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert!(
        per_device[&out] < 75,
        "the device kept its share: {per_device:?}"
    );
    assert!(
        per_device.values().all(|n| *n <= 100),
        "a device went over its limit: {per_device:?}"
    );
    assert_eq!(per_device.values().sum::<usize>(), 300);
}

async fn a_device_that_errors_mid_distribution_is_left_out(app: TestApp) {
    // Faults are injected by the platform admin, so the distribution runs in the admin's tenant.
    let (owner, id, devices) = distribution_under_way(&app, app.admin().await).await;
    let fault = owner
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": devices[0], "fault": {"kind": "rate_limit", "sends": 1000, "retry_after_ms": 600000}}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    assert_share_moved_on(&owner, id, devices[0]).await;
}

async fn a_device_lost_mid_distribution_hands_its_share_on(app: TestApp) {
    let (owner, id, devices) = distribution_under_way(&app, app.new_tenant("Acme").await).await;
    let lost = devices[0];
    let out = owner
        .post(&format!("/api/v1/devices/{lost}/logout"), &json!({}))
        .await;
    assert!(out.status().is_success());
    assert_share_moved_on(&owner, id, lost).await;
}

/// Two distributions started at the same moment can read the same pool leads; the claim that
/// follows the outbox write gives each lead to one of them, and the other's row for it is
/// skipped, so no lead is written to twice. Repeating the claim (a restarted start) is a no-op.
async fn a_lead_another_distribution_claimed_is_skipped(app: TestApp) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use wafleet::broadcast::campaign::{materialize, store};
    use wafleet::broadcast::outbox::model::{new_message_id, OutboxRow, OutboxStatus};
    use wafleet::broadcast::outbox::store as outbox_store;
    use wafleet::db::schema::leads;
    let owner = app.new_tenant("Acme").await;
    let first = app.paired_device(&owner, "One").await;
    let second = app.paired_device(&owner, "Two").await;
    seed_pool(&app, owner.tenant_id, 3).await;
    let id = create(
        &owner,
        json!({"name": "Spread", "kind": "ai", "per_device_limit": 10, "message": "Hi",
               "target": {"niches": ["insurance"]}, "pacing": test_pacing()}),
    )
    .await;
    let db = &app.db;
    let tenant_id = owner.tenant_id;
    let pool: Vec<(i64, String)> = async {
        wafleet::db_run!(db, |conn| {
            leads::table
                .filter(leads::tenant_id.eq(tenant_id))
                .order(leads::id)
                .select((leads::id, leads::phone))
                .load(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    let rows: Vec<OutboxRow> = pool
        .iter()
        .map(|(lead_id, phone)| OutboxRow {
            lead_id: *lead_id,
            device_id: Some(first),
            phone: phone.clone(),
            body: "Hi".into(),
            message_id: new_message_id(),
            status: OutboxStatus::Pending,
            error: None,
            step: 0,
            image_sha256: None,
            attachment: None,
        })
        .collect();
    assert_eq!(
        outbox_store::write(db, tenant_id, id, &mut std::iter::once(rows))
            .await
            .unwrap(),
        3
    );
    // The other distribution claimed the second lead between this one's read and its claim.
    let contested = pool[1].0;
    async {
        wafleet::db_run!(db, |conn| {
            diesel::update(leads::table.find(contested))
                .set(leads::device_id.eq(Some(second)))
                .execute(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    assert_eq!(
        store::claim_pool_leads(db, id, materialize::TAKEN)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store::claim_pool_leads(db, id, materialize::TAKEN)
            .await
            .unwrap(),
        0,
        "a repeated claim changes nothing"
    );
    let owners: Vec<Option<i64>> = async {
        wafleet::db_run!(db, |conn| {
            leads::table
                .filter(leads::tenant_id.eq(tenant_id))
                .order(leads::id)
                .select(leads::device_id)
                .load(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    assert_eq!(owners, vec![Some(first), Some(second), Some(first)]);
    let out = messages(&owner, id).await;
    let state_of = |lead: i64| {
        let row = out.iter().find(|r| r["lead_id"] == lead).unwrap();
        (row["status"].clone(), row["error"].clone())
    };
    assert_eq!(
        state_of(contested),
        (json!("skipped"), json!(materialize::TAKEN))
    );
    assert_eq!(state_of(pool[0].0), (json!("pending"), Value::Null));
    assert_eq!(state_of(pool[2].0), (json!("pending"), Value::Null));
}

/// A round reads only enrolments whose message went out: however many older ones still wait for
/// a device (more than a round's batch here), the one that was sent moves on.
async fn a_sent_step_moves_on_while_older_ones_still_wait(app: TestApp) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use wafleet::db::schema::sequence_enrollments;
    app.state.clock.set(kl(7, "10:00"));
    let (owner, idle, id, lead_ids) = enrolled(
        &app,
        3,
        json!({"name": "COLD", "steps": [{"message": "one"}, {"message": "two", "delay_hours": 1}]}),
    )
    .await;
    // The last lead writes from a second device; the first device goes offline, so the first
    // two leads' messages wait for it.
    let other = app.paired_device(&owner, "Other").await;
    let db = &app.db;
    let last = lead_ids[2];
    async {
        wafleet::db_run!(db, |conn| {
            diesel::update(
                sequence_enrollments::table.filter(sequence_enrollments::lead_id.eq(last)),
            )
            .set(sequence_enrollments::device_id.eq(Some(other)))
            .execute(conn)
            .await
            .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    let out = owner
        .post(&format!("/api/v1/devices/{idle}/logout"), &json!({}))
        .await;
    assert!(out.status().is_success(), "{}", out.status());

    tick(&app).await; // queues the first two (a round's batch)
    tick(&app).await; // queues the third
    wait_sent(&app, id, 1, 1).await;
    tick(&app).await; // the third's message went out: it waits for step 2
    let state: HashMap<i64, (String, i64)> = enrollments(&owner, id)
        .await
        .iter()
        .map(|e| {
            (
                e["lead_id"].as_i64().unwrap(),
                (
                    e["status"].as_str().unwrap().to_string(),
                    e["step"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(state[&last], ("waiting".to_string(), 2), "{state:?}");
    assert_eq!(state[&lead_ids[0]], ("active".to_string(), 1), "{state:?}");
    assert_eq!(state[&lead_ids[1]], ("active".to_string(), 1), "{state:?}");
}
