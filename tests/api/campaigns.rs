//! Campaigns on both backends with simulated devices on a fast clock: every lead gets exactly
//! one message, pacing holds (the simulator counts no violation), a lost device's messages move,
//! pause/resume/cancel act at once, receipts advance rows, schedules start by themselves, and
//! progress reaches WebSocket subscribers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wafleet::db::schema::{lead_lists, leads};
use wafleet::db_run;

use crate::helpers::{wait_until, TestApp, UserClient};
use crate::resilience::metric;

/// 100× simulated time: a 2 s gap takes 20 ms, a minute 0.6 s. Quick receipts, no replies.
pub(crate) const FAST_SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__TIME_SCALE", "100"),
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__DELIVERED_AFTER_MS", "500"),
    ("WAFLEET__SIM__READ_AFTER_MS", "500"),
    ("WAFLEET__BROADCAST__PROGRESS_INTERVAL_MS", "100"),
    ("WAFLEET__BROADCAST__LEASE_SECS", "2"),
];

crate::both_backends!(with super::FAST_SIM;
    a_campaign_reaches_every_lead_once_within_the_pacing_rules,
    a_logged_out_device_hands_its_messages_to_the_others,
    pause_holds_sending_and_resume_finishes,
    a_campaign_shows_in_the_metrics,
    cancel_skips_what_is_unsent,
    a_cancel_publishes_the_final_counts_after_in_flight_sends,
    a_scheduled_campaign_starts_by_itself_and_streams_progress,
    opted_out_leads_are_skipped,
    a_picture_campaign_sends_the_picture_with_its_caption,
    a_document_campaign_sends_the_named_document_with_its_caption,
    campaigns_are_validated_and_tenant_scoped,
    a_start_writes_each_phone_once_across_pages_of_leads,
    receipts_move_outbox_rows_forward_in_one_batch,
);

/// How long a whole campaign may take in a test.
const CAMPAIGN_WAIT: Duration = Duration::from_secs(120);

/// Pacing for tests: the simulator's own limits (2 s gap, 12/min), no warm-up, no typing.
pub(crate) fn test_pacing() -> Value {
    json!({"min_delay_ms": 2000, "max_delay_ms": 3000, "per_minute": 12, "per_day": 1000,
           "warmup_days": 0, "typing": false})
}

/// Creates a lead list with `count` leads (phones 60120000000 + n) directly in the database.
pub(crate) async fn seed_leads(
    app: &TestApp,
    tenant_id: i64,
    name: &str,
    count: usize,
    offset: usize,
) -> i64 {
    seed_leads_in(&app.db, tenant_id, name, count, offset).await
}

/// [`seed_leads`] on any database handle (the fault harness's daemon runs in another process).
pub(crate) async fn seed_leads_in(
    db: &wafleet::db::Db,
    tenant_id: i64,
    name: &str,
    count: usize,
    offset: usize,
) -> i64 {
    let now = chrono::Utc::now().naive_utc();
    let list_id: i64 = async {
        db_run!(db, |conn| {
            diesel::insert_into(lead_lists::table)
                .values((
                    lead_lists::tenant_id.eq(tenant_id),
                    lead_lists::name.eq(name),
                    lead_lists::created_at.eq(now),
                    lead_lists::updated_at.eq(now),
                ))
                .returning(lead_lists::id)
                .get_result(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    for n in 0..count {
        let phone = format!("6012{:07}", offset + n);
        let tags = if n % 2 == 0 { ",even,vip," } else { ",odd," };
        let fields = json!({"city": "Ipoh"}).to_string();
        let inserted: Result<usize, wafleet::db::DbError> = async {
            db_run!(db, |conn| {
                diesel::insert_into(leads::table)
                    .values((
                        leads::tenant_id.eq(tenant_id),
                        leads::list_id.eq(list_id),
                        leads::name.eq(format!("Lead {n}")),
                        leads::phone.eq(&phone),
                        leads::tags.eq(tags),
                        leads::status.eq("new"),
                        leads::fields.eq(&fields),
                        leads::created_at.eq(now),
                        leads::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
                    .map_err(wafleet::db::DbError::from)
            })
        }
        .await;
        inserted.unwrap();
    }
    list_id
}

/// Creates a campaign and returns its id.
pub(crate) async fn create(user: &UserClient, body: Value) -> i64 {
    let created = user.post("/api/v1/campaigns", &body).await;
    let status = created.status();
    let text = created.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_i64()
        .unwrap()
}

pub(crate) async fn start(user: &UserClient, id: i64) -> Value {
    let started = user
        .post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
        .await;
    let status = started.status();
    let body: Value = started.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) async fn progress(user: &UserClient, id: i64) -> Value {
    user.get(&format!("/api/v1/campaigns/{id}/progress"))
        .await
        .json()
        .await
        .unwrap()
}

/// Waits until the campaign has the status `status`; returns its progress.
pub(crate) async fn wait_status(user: &UserClient, id: i64, status: &str) -> Value {
    wait_until(
        &format!("campaign {id} to be {status}"),
        CAMPAIGN_WAIT,
        || async {
            let p = progress(user, id).await;
            (p["status"] == status).then_some(p)
        },
    )
    .await
}

/// Every outbox row of a campaign.
pub(crate) async fn messages(user: &UserClient, id: i64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = user
            .get(&format!(
                "/api/v1/campaigns/{id}/messages?after={after}&limit=1000"
            ))
            .await
            .json()
            .await
            .unwrap();
        let rows = page["messages"].as_array().unwrap().clone();
        if rows.is_empty() {
            return all;
        }
        after = rows.last().unwrap()["id"].as_i64().unwrap();
        all.extend(rows);
    }
}

/// Asserts each lead got exactly one message: one row per phone, every row accepted by
/// WhatsApp, every message id delivered by the simulator, none twice, no pacing violation.
pub(crate) fn assert_each_lead_once(app: &TestApp, rows: &[Value], leads: usize) {
    assert_eq!(rows.len(), leads);
    let phones: HashSet<&str> = rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    assert_eq!(phones.len(), leads, "one row per lead");
    let sim = app.state.fleet.sim.clone().unwrap();
    let delivered = sim.delivered_ids();
    for row in rows {
        assert!(
            ["sent", "delivered", "read"].contains(&row["status"].as_str().unwrap()),
            "{row}"
        );
        let id = row["message_id"].as_str().unwrap();
        assert!(
            delivered.contains(id),
            "message {id} never reached the simulator"
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.delivered as usize, leads, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert_eq!(stats.violations, 0, "{stats:?}");
}

async fn a_campaign_reaches_every_lead_once_within_the_pacing_rules(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let mut devices = Vec::new();
    for n in 0..10 {
        devices.push(app.paired_device(&owner, &format!("Sales {n}")).await);
    }
    let list = seed_leads(&app, owner.tenant_id, "Expo", 1000, 0).await;
    let id = create(
        &owner,
        json!({"name": "Launch", "message": "{Hi|Hello} {name} from {city}!",
               "target": {"list_ids": [list]}, "pacing": test_pacing()}),
    )
    .await;
    let preview: Value = owner
        .get(&format!("/api/v1/campaigns/{id}/preview?count=3"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["leads"], 1000);
    let samples = preview["samples"].as_array().unwrap();
    let names: Vec<&str> = samples
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Lead 0", "Lead 1", "Lead 2"],
        "the first three by id"
    );
    let sample = preview["samples"][0]["text"].as_str().unwrap();
    assert!(
        sample == "Hi Lead 0 from Ipoh!" || sample == "Hello Lead 0 from Ipoh!",
        "{sample}"
    );
    let started = start(&owner, id).await;
    assert_eq!(started["messages"], 1000);
    assert_eq!(started["campaign"]["status"], "running");

    let done = wait_status(&owner, id, "completed").await;
    assert_eq!(done["percent"], 100.0);
    let rows = messages(&owner, id).await;
    assert_each_lead_once(&app, &rows, 1000);
    // Spread over all ten devices, by capacity (all equal here): 100 each, give or take the
    // tail a busy machine lets idle devices take over.
    let mut per_device: HashMap<i64, usize> = HashMap::new();
    for row in &rows {
        *per_device
            .entry(row["device_id"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_device.len(), 10, "{per_device:?}");
    assert!(
        per_device.values().all(|n| (60..=140).contains(n)),
        "{per_device:?}"
    );
    // Spintax was resolved per lead, variables filled in.
    let bodies: HashSet<&str> = rows.iter().map(|r| r["body"].as_str().unwrap()).collect();
    assert!(
        bodies.iter().any(|b| b.starts_with("Hi "))
            && bodies.iter().any(|b| b.starts_with("Hello "))
    );
    assert!(bodies.iter().all(|b| b.ends_with(" from Ipoh!")));
    // Receipts move rows on to read.
    wait_until(
        "receipts to mark every message read",
        CAMPAIGN_WAIT,
        || async {
            let p = progress(&owner, id).await;
            (p["counts"]["read"] == 1000).then_some(())
        },
    )
    .await;
}

async fn a_logged_out_device_hands_its_messages_to_the_others(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let mut devices = Vec::new();
    for n in 0..4 {
        devices.push(app.paired_device(&owner, &format!("Sales {n}")).await);
    }
    let list = seed_leads(&app, owner.tenant_id, "Expo", 200, 0).await;
    let id = create(
        &owner,
        json!({"name": "Launch", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing(), "on_device_loss": "move"}),
    )
    .await;
    start(&owner, id).await;
    let lost = devices[0];
    wait_until("the first device to send a few", CAMPAIGN_WAIT, || async {
        let p = progress(&owner, id).await;
        let sent = p["per_device"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == lost)
            .map(|d| {
                d["counts"]["sent"].as_i64().unwrap()
                    + d["counts"]["delivered"].as_i64().unwrap()
                    + d["counts"]["read"].as_i64().unwrap()
            })
            .unwrap_or(0);
        (sent >= 3).then_some(())
    })
    .await;
    let out = owner
        .post(&format!("/api/v1/devices/{lost}/logout"), &json!({}))
        .await;
    assert!(out.status().is_success(), "{}", out.status());

    wait_status(&owner, id, "completed").await;
    let rows = messages(&owner, id).await;
    assert_each_lead_once(&app, &rows, 200);
    let kept = rows.iter().filter(|r| r["device_id"] == lost).count();
    assert!(kept < 50, "the lost device kept {kept} of its 50 messages");
    let others: HashSet<i64> = rows
        .iter()
        .filter_map(|r| r["device_id"].as_i64())
        .filter(|d| *d != lost)
        .collect();
    assert_eq!(others.len(), 3);
}

/// Accepted sends so far, as the simulator counts them.
/// Creates and starts the "Launch" campaign to `list` and waits until `sends` were delivered.
async fn launch(app: &TestApp, owner: &UserClient, list: i64, sends: u64) -> i64 {
    let id = create(
        owner,
        json!({"name": "Launch", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(owner, id).await;
    wait_until("the first sends", CAMPAIGN_WAIT, || async {
        (delivered(app) >= sends).then_some(())
    })
    .await;
    id
}

fn delivered(app: &TestApp) -> u64 {
    app.state.fleet.sim.clone().unwrap().stats().delivered
}

async fn pause_holds_sending_and_resume_finishes(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    for n in 0..2 {
        app.paired_device(&owner, &format!("Sales {n}")).await;
    }
    let list = seed_leads(&app, owner.tenant_id, "Expo", 60, 0).await;
    let id = launch(&app, &owner, list, 5).await;
    let paused = owner
        .post(&format!("/api/v1/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(paused.status(), 200);
    // A send already on the wire may land; after that nothing moves.
    let at_pause = delivered(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_settle = delivered(&app);
    assert!(after_settle <= at_pause + 2, "{at_pause} → {after_settle}");
    // Ten minimum gaps (200 ms) of silence: a paused campaign sends nothing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(delivered(&app), after_settle, "sent while paused");
    assert_eq!(progress(&owner, id).await["status"], "paused");
    let again = owner
        .post(&format!("/api/v1/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(again.status(), 409);

    let resumed = owner
        .post(&format!("/api/v1/campaigns/{id}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status(), 200);
    wait_status(&owner, id, "completed").await;
    assert_each_lead_once(&app, &messages(&owner, id).await, 60);
}

async fn cancel_skips_what_is_unsent(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 100, 0).await;
    let id = launch(&app, &owner, list, 3).await;
    let cancelled = owner
        .post(&format!("/api/v1/campaigns/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    let p = wait_until("in-flight rows to settle", CAMPAIGN_WAIT, || async {
        let p = progress(&owner, id).await;
        (p["counts"]["sending"] == 0 && p["counts"]["pending"] == 0).then_some(p)
    })
    .await;
    assert_eq!(p["status"], "cancelled");
    let sent = p["counts"]["sent"].as_i64().unwrap()
        + p["counts"]["delivered"].as_i64().unwrap()
        + p["counts"]["read"].as_i64().unwrap();
    assert_eq!(
        sent as u64,
        delivered(&app),
        "every accepted send is recorded"
    );
    assert_eq!(p["counts"]["skipped"].as_i64().unwrap(), 100 - sent);
    assert!(sent < 100);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delivered(&app), sent as u64, "sent after cancel");
    let restart = owner
        .post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(restart.status(), 409);
    let deleted = owner
        .request(reqwest::Method::DELETE, &format!("/api/v1/campaigns/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

/// A test's WebSocket client.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket of `user` (through a new read token) that asked for `topic`.
async fn ask_for(app: &TestApp, user: &UserClient, topic: &str) -> Ws {
    let created: Value = user
        .post("/api/v1/tokens", &json!({"name": "ws", "scopes": ["read"]}))
        .await
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    let url = format!(
        "{}/api/v1/ws?token={token}",
        app.address.replace("http", "ws")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"op": "subscribe", "topics": [topic]}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

/// A WebSocket of `user` subscribed to `topic`.
pub(crate) async fn subscribe(app: &TestApp, user: &UserClient, topic: &str) -> Ws {
    let mut ws = ask_for(app, user, topic).await;
    loop {
        let frame: Value = next_frame(&mut ws).await;
        if frame["event"] == "SUBSCRIBED" {
            assert_eq!(frame["topics"], json!([topic]));
            return ws;
        }
        assert_ne!(frame["event"], "ERROR", "{frame}");
    }
}

/// The next text frame, within the campaign wait.
pub(crate) async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(CAMPAIGN_WAIT, ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// A send in flight when the campaign is cancelled still ends (sent here); the last progress
/// event comes after it, so watchers see nothing left waiting.
async fn a_cancel_publishes_the_final_counts_after_in_flight_sends(app: TestApp) {
    // Faults are injected by the platform admin, so the campaign runs in the admin's tenant.
    let owner = app.admin().await;
    let device = app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 20, 0).await;
    let id = launch(&app, &owner, list, 1).await;
    // Every further send takes 5 simulated minutes (3 s here): one stays in flight.
    let fault = owner
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": device, "fault": {"kind": "latency", "ms": 300000}}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    wait_until("a send in flight", CAMPAIGN_WAIT, || async {
        let p = progress(&owner, id).await;
        (p["counts"]["sending"] == 1).then_some(())
    })
    .await;
    let mut ws = subscribe(&app, &owner, &format!("campaign/{id}")).await;
    let cancelled = owner
        .post(&format!("/api/v1/campaigns/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    let last = loop {
        let frame = next_frame(&mut ws).await;
        let counts = &frame["data"]["counts"];
        if frame["event"] == "CAMPAIGN_PROGRESS"
            && frame["data"]["status"] == "cancelled"
            && counts["sending"] == 0
            && counts["pending"] == 0
        {
            break frame;
        }
    };
    let counts = &last["data"]["counts"];
    let sent = ["sent", "delivered", "read"]
        .iter()
        .map(|k| counts[*k].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(sent + counts["skipped"].as_i64().unwrap(), 20, "{last}");
    assert!(sent >= 2, "the send in flight went out: {last}");
}

async fn a_scheduled_campaign_starts_by_itself_and_streams_progress(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 20, 0).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let id = create(
        &owner,
        json!({"name": "Later", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing(), "scheduled_at": at}),
    )
    .await;
    let created: Value = owner
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["status"], "scheduled");
    let mut ws = subscribe(&app, &owner, &format!("campaign/{id}")).await;
    let mut percents = Vec::new();
    let last = loop {
        let frame = next_frame(&mut ws).await;
        if frame["event"] != "CAMPAIGN_PROGRESS" {
            continue;
        }
        assert_eq!(frame["topic"], format!("campaign/{id}"));
        percents.push(frame["data"]["percent"].as_f64().unwrap());
        if frame["data"]["status"] == "completed" {
            break frame;
        }
    };
    assert_eq!(last["data"]["percent"], 100.0);
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(percents.len() >= 2, "progress came in steps: {percents:?}");
    assert_each_lead_once(&app, &messages(&owner, id).await, 20);

    // Another tenant cannot listen.
    let other = app.new_tenant("Other").await;
    let mut ws = ask_for(&app, &other, &format!("campaign/{id}")).await;
    loop {
        let frame = next_frame(&mut ws).await;
        if frame["event"] == "ERROR" {
            assert_eq!(frame["error"]["code"], "forbidden_topic");
            break;
        }
        assert_ne!(frame["event"], "SUBSCRIBED", "{frame}");
    }
}

/// What an operator graphs: send results, outbox rows of running campaigns, the Throttle's
/// waits, receipts and the chat mirror's batches, next to the pool, build and process.
async fn a_campaign_shows_in_the_metrics(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 30, 0).await;
    let id = create(
        &owner,
        json!({"name": "Metered", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    owner
        .post(&format!("/api/v1/campaigns/{id}/pause"), &json!({}))
        .await;
    let paused = wait_status(&owner, id, "paused").await;
    assert!(
        paused["counts"]["pending"].as_i64().unwrap() > 0,
        "paused before the end: {paused}"
    );
    // A paused campaign is still run by the engine: its rows show until it ends.
    wait_until("the outbox gauge", Duration::from_secs(10), || async {
        let pending = progress(&owner, id).await["counts"]["pending"].as_f64()?;
        let rows = metric(&app, "wafleet_outbox_rows{status=\"pending\"}").await?;
        (rows == pending && rows > 0.0).then_some(())
    })
    .await;
    owner
        .post(&format!("/api/v1/campaigns/{id}/resume"), &json!({}))
        .await;
    wait_status(&owner, id, "completed").await;
    wait_until("every receipt counted", Duration::from_secs(15), || async {
        let delivered = metric(&app, "wafleet_receipts_total{status=\"delivered\"}").await?;
        (delivered >= 30.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(&app, "wafleet_sends_total{result=\"sent\"}").await,
        Some(30.0)
    );
    let waits = metric(&app, "wafleet_throttle_wait_seconds_count").await;
    assert!(waits.is_some_and(|n| n >= 30.0), "{waits:?}");
    let batches = metric(&app, "wafleet_chat_batch_seconds_count").await;
    assert!(batches.is_some_and(|n| n >= 1.0), "{batches:?}");
    let pool = metric(&app, "wafleet_db_pool_connections{state=\"max\"}").await;
    assert!(pool.is_some_and(|n| n >= 1.0), "{pool:?}");
    let text = app.metrics().await.text().await.unwrap();
    let build = format!(
        "wafleet_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "no {build}");
    assert!(text.contains("wafleet_process_resident_memory_bytes"));
}

async fn opted_out_leads_are_skipped(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 10, 0).await;
    let now = chrono::Utc::now().naive_utc();
    let db = &app.db;
    let tenant_id = owner.tenant_id;
    let opted: Result<usize, wafleet::db::DbError> = async {
        db_run!(db, |conn| {
            use wafleet::db::schema::opt_outs;
            diesel::insert_into(opt_outs::table)
                .values((
                    opt_outs::tenant_id.eq(tenant_id),
                    opt_outs::phone.eq("60120000003"),
                    opt_outs::source.eq("manual"),
                    opt_outs::created_at.eq(now),
                ))
                .execute(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await;
    opted.unwrap();
    // Tags narrow the target: the even leads only (0, 2, 4, 6, 8).
    let id = create(
        &owner,
        json!({"name": "VIP", "message": "Hi {name}", "target": {"list_ids": [list], "tags": ["VIP"]},
               "pacing": test_pacing()}),
    )
    .await;
    let started = start(&owner, id).await;
    assert_eq!(started["messages"], 5);
    let done = wait_status(&owner, id, "completed").await;
    assert_eq!(done["counts"]["skipped"], 0, "lead 3 is odd, not targeted");
    let id = create(
        &owner,
        json!({"name": "All", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    let done = wait_status(&owner, id, "completed").await;
    assert_eq!(done["counts"]["skipped"], 1);
    let rows = messages(&owner, id).await;
    let skipped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped[0]["phone"], "60120000003");
    assert_eq!(skipped[0]["error"], "opted out");
}

async fn campaigns_are_validated_and_tenant_scoped(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 3, 0).await;
    let empty_list = seed_leads(&app, owner.tenant_id, "Empty", 0, 0).await;
    for (body, needle) in [
        (
            json!({"name": "x", "message": "Hi {name", "target": {"list_ids": [list]}}),
            "never closed",
        ),
        (
            json!({"name": "x", "message": "Hi", "target": {}}),
            "target",
        ),
        (
            json!({"name": "x", "message": "Hi", "target": {"list_ids": [999999]}}),
            "not found",
        ),
        (
            json!({"name": "x", "message": "Hi", "target": {"list_ids": [list]},
                "pacing": {"min_delay_ms": 100}}),
            "min_delay_ms",
        ),
        (
            json!({"name": "x", "message": "Hi", "target": {"list_ids": [list]},
                "scheduled_at": "2020-01-01T00:00"}),
            "future",
        ),
        (
            json!({"name": "x", "message": "Hi", "target": {"list_ids": [list]},
                "devices": {"mode": "set", "ids": [999999]}}),
            "device",
        ),
    ] {
        let response = owner.post("/api/v1/campaigns", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_campaign");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message} should mention {needle}"
        );
    }
    let unknown = owner
        .post(
            "/api/v1/campaigns",
            &json!({"name": "x", "message": "Hi", "target": {"list_ids": [list]}, "colour": 1}),
        )
        .await;
    assert!(unknown.status().is_client_error());

    // Nothing to send: 422 at start, and the campaign stays a draft.
    let id = create(
        &owner,
        json!({"name": "Nobody", "message": "Hi", "target": {"list_ids": [empty_list]}}),
    )
    .await;
    let response = owner
        .post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(progress(&owner, id).await["status"], "draft");

    // Drafts can be edited; another tenant sees nothing.
    let id = create(
        &owner,
        json!({"name": "Mine", "message": "Hi", "target": {"list_ids": [list]}}),
    )
    .await;
    let edited = owner
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{id}"),
            &json!({"name": "Mine v2", "message": "Hello {name}", "target": {"list_ids": [list]}}),
        )
        .await;
    assert_eq!(edited.status(), 200);
    assert_eq!(
        edited.json::<Value>().await.unwrap()["message"],
        "Hello {name}"
    );
    let other = app.new_tenant("Other").await;
    for path in [
        format!("/api/v1/campaigns/{id}"),
        format!("/api/v1/campaigns/{id}/progress"),
        format!("/api/v1/campaigns/{id}/preview"),
    ] {
        assert_eq!(other.get(&path).await.status(), 404, "{path}");
    }
    assert_eq!(
        other
            .post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
            .await
            .status(),
        404
    );
    let listed: Value = other.get("/api/v1/campaigns").await.json().await.unwrap();
    assert_eq!(listed["campaigns"], json!([]));
    // Another tenant's list cannot be targeted.
    let response = other
        .post(
            "/api/v1/campaigns",
            &json!({"name": "x", "message": "Hi", "target": {"list_ids": [list]}}),
        )
        .await;
    assert_eq!(response.status(), 422);
}

/// Starts campaign `id` and waits until it completed, each of its `leads` reached once; returns
/// the latest message of the first lead's chat on `device` (what that lead got).
async fn run_to_the_end(
    app: &TestApp,
    owner: &UserClient,
    id: i64,
    device: i64,
    leads: usize,
) -> Value {
    start(owner, id).await;
    wait_status(owner, id, "completed").await;
    assert_each_lead_once(app, &messages(owner, id).await, leads);
    let jid = "60120000001@s.whatsapp.net";
    // The mirror commits a send a moment after the outbox row (its own batch).
    wait_until(
        "the send in the chat mirror",
        Duration::from_secs(10),
        || async {
            let page: Value = owner
                .get(&format!("/api/v1/devices/{device}/chats/{jid}/messages"))
                .await
                .json()
                .await
                .ok()?;
            let first = page["items"][0].clone();
            (!first.is_null()).then_some(first)
        },
    )
    .await
}

async fn a_picture_campaign_sends_the_picture_with_its_caption(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let device = app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 3, 0).await;
    let id = create(
        &owner,
        json!({"name": "Catalogue", "message": "New catalogue for {name}",
               "target": {"list_ids": [list]}, "pacing": test_pacing()}),
    )
    .await;
    let put = |body: Vec<u8>| {
        owner
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/campaigns/{id}/image"),
            )
            .header("content-type", "image/png")
            .body(body)
            .send()
    };
    let garbage = put(b"not a picture".to_vec()).await.unwrap();
    assert_eq!(garbage.status(), 422);
    assert_eq!(put(crate::chats::big_png()).await.unwrap().status(), 204);
    let campaign: Value = owner
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(campaign["has_image"], true);
    // The chat mirror shows what the lead got: the picture, captioned.
    let sent = &run_to_the_end(&app, &owner, id, device, 3).await;
    assert_eq!(sent["text"], "New catalogue for Lead 1");
    assert_eq!(sent["media"]["mime"], "image/jpeg");
    assert!(sent["media"]["size"].as_i64().unwrap() <= 350 * 1024);
    // A started campaign's picture can no longer change.
    assert_eq!(put(crate::chats::big_png()).await.unwrap().status(), 409);
}

async fn a_document_campaign_sends_the_named_document_with_its_caption(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let device = app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 2, 0).await;
    let id = create(
        &owner,
        json!({"name": "Price list", "message": "Prices for {name}",
               "target": {"list_ids": [list]}, "pacing": test_pacing()}),
    )
    .await;
    let put = |query: &str, body: &[u8]| {
        owner
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/campaigns/{id}/attachment?{query}"),
            )
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
    };
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n";
    // Checked by its bytes: a page is not a document, a PDF is not a voice note.
    let page = put(
        "kind=document&file_name=x.html",
        b"<html><script>x</script></html>",
    );
    assert_eq!(page.await.unwrap().status(), 415);
    assert_eq!(put("kind=voice", pdf).await.unwrap().status(), 415);
    assert_eq!(put("kind=document", b"").await.unwrap().status(), 422);
    assert_eq!(put("kind=location", pdf).await.unwrap().status(), 400);
    let named = put("kind=document&file_name=Price%20list%202027.pdf", pdf);
    assert_eq!(named.await.unwrap().status(), 204);
    let campaign: Value = owner
        .get(&format!("/api/v1/campaigns/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(campaign["has_image"], false);
    assert_eq!(
        campaign["file"],
        json!({"kind": "document", "mime": "application/pdf", "file_name": "Price list 2027.pdf"})
    );
    // What the lead got: the named document, captioned, its bytes as uploaded.
    let sent = &run_to_the_end(&app, &owner, id, device, 2).await;
    assert_eq!(sent["kind"], "document", "{sent}");
    assert_eq!(sent["file_name"], "Price list 2027.pdf");
    assert_eq!(sent["text"], "Prices for Lead 1");
    let file = owner.get(sent["media"]["url"].as_str().unwrap()).await;
    assert_eq!(file.bytes().await.unwrap().as_ref(), pdf);
}

/// A start reads its leads a page (1,000) at a time: a target over several pages, with phones
/// repeated across pages, still gets one row per phone, from its first lead by id, and the
/// preview counts the same leads.
async fn a_start_writes_each_phone_once_across_pages_of_leads(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let first = seed_leads(&app, owner.tenant_id, "First", 1500, 0).await;
    // Phones 1000–1499 again, as later leads (the next pages), and 700 new ones.
    let second = seed_leads(&app, owner.tenant_id, "Second", 1200, 1000).await;
    let id = create(
        &owner,
        json!({"name": "Big", "message": "Hi {name}", "target": {"list_ids": [first, second]},
               "pacing": test_pacing()}),
    )
    .await;
    let preview: Value = owner
        .get(&format!("/api/v1/campaigns/{id}/preview"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["leads"], 2200);
    // No device is online: every row is written and waits for one.
    let started = start(&owner, id).await;
    assert_eq!(started["messages"], 2200);
    let rows = messages(&owner, id).await;
    assert_eq!(rows.len(), 2200);
    let phones: HashSet<&str> = rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    assert_eq!(phones.len(), 2200, "one row per phone");
    let body_of = |phone: &str| {
        rows.iter()
            .find(|r| r["phone"] == phone)
            .map(|r| r["body"].clone())
            .unwrap()
    };
    // The first list's lead has the phone first (its name is "Lead 1200"; the second's "Lead 200").
    assert_eq!(body_of("60120001200"), json!("Hi Lead 1200"));
    assert_eq!(body_of("60120002199"), json!("Hi Lead 1199"));
    assert!(rows.iter().all(|r| r["status"] == "pending"));
}

/// A batch of receipts moves its device's rows forward in one call (delivered stamps
/// `delivered_at` once, read stamps `read_at`), never backwards, and leaves pending rows, other
/// devices' rows and other statuses alone.
async fn receipts_move_outbox_rows_forward_in_one_batch(app: TestApp) {
    use wafleet::broadcast::outbox::model::{new_message_id, OutboxRow, OutboxStatus, Receipt};
    use wafleet::broadcast::outbox::store;
    let owner = app.new_tenant("Acme").await;
    let device = app.paired_device(&owner, "One").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 4, 0).await;
    // A draft: nothing sends these rows but this test.
    let id = create(
        &owner,
        json!({"name": "Receipts", "message": "Hi", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    let db = &app.db;
    let tenant_id = owner.tenant_id;
    let lead_ids: Vec<i64> = async {
        db_run!(db, |conn| {
            leads::table
                .filter(leads::list_id.eq(list))
                .order(leads::id)
                .select(leads::id)
                .load(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await
    .unwrap();
    let rows: Vec<OutboxRow> = lead_ids
        .iter()
        .enumerate()
        .map(|(n, lead_id)| OutboxRow {
            lead_id: *lead_id,
            device_id: Some(device),
            phone: format!("6012{n:07}"),
            body: "Hi".into(),
            message_id: new_message_id(),
            status: OutboxStatus::Pending,
            error: None,
            step: 0,
            image_sha256: None,
            attachment: None,
        })
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.message_id.clone()).collect();
    let written = store::write(db, tenant_id, id, &mut std::iter::once(rows))
        .await
        .unwrap();
    assert_eq!(written, 4);
    // Rows 0 and 1 are claimed; 0 is sent, 1 is still being sent, 2 and 3 wait.
    let now = chrono::Utc::now().naive_utc();
    let claimed = store::claim(
        db,
        id,
        device,
        2,
        now,
        now + chrono::Duration::minutes(1),
        None,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 2);
    store::finish(db, &[claimed[0].id], OutboxStatus::Sent, None, None)
        .await
        .unwrap();
    let receipt = |wa_ids: &[String], status| Receipt {
        device_id: device,
        wa_ids: wa_ids.to_vec(),
        status,
    };
    let moved = store::apply_receipts(
        db,
        &[
            receipt(&ids[..3], OutboxStatus::Delivered),
            receipt(&ids[..1], OutboxStatus::Read),
            // Another device's receipt and a status receipts do not move.
            Receipt {
                device_id: device + 1,
                wa_ids: ids.clone(),
                status: OutboxStatus::Read,
            },
            receipt(&ids, OutboxStatus::Failed),
        ],
    )
    .await
    .unwrap();
    // 0 and 1 delivered, then 0 read; 2 is still pending.
    assert_eq!(moved, 3);
    // A late delivery receipt never moves a read row back.
    let late = store::apply_receipts(db, &[receipt(&ids[..1], OutboxStatus::Delivered)])
        .await
        .unwrap();
    assert_eq!(late, 0);
    let page = store::outbox_page(db, id, 0, 10).await.unwrap();
    let states: Vec<&str> = page.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(states, ["read", "delivered", "pending", "pending"]);
    assert!(page[0].delivered_at.is_some() && page[0].read_at.is_some());
    assert!(page[1].delivered_at.is_some() && page[1].read_at.is_none());
    assert!(page[2].delivered_at.is_none());
    // Row 1's receipt beat its sender's record: it still counts as a send of the device (the
    // pacing a restarted daemon rebuilds, daily caps).
    assert!(page[1].sent_at.is_some(), "a delivered row has a send time");
    let sends = store::device_sends_since(db, device, now - chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(sends.len(), 2, "both sends count: {sends:?}");
}
