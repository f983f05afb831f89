//! Members act only on what is theirs: they change, start, pause, cancel and delete only the
//! campaigns and sequences they created (403 for a teammate's, which they can read), choose only
//! devices assigned to them, and what they created sends only through the devices assigned to
//! them now, whichever way the devices are picked (a stored set, an AI distribution, a
//! sequence's device for each lead).

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use wafleet::broadcast::sequence::engine::Tick;
use wafleet::db::schema::{leads, outbox, sequences};

use crate::campaigns::{create, messages, seed_leads, start, test_pacing, wait_status};
use crate::helpers::{wait_until, TestApp, UserClient};
use crate::sequences::{lead_ids, try_create_sequence};

crate::both_backends!(with &[crate::campaigns::FAST_SIM, crate::sequences::TICK_ON_REQUEST].concat();
    members_change_only_their_own_campaigns_and_sequences,
    a_members_distribution_never_sends_through_an_unassigned_device,
    a_members_sequence_sends_only_through_their_devices,
    members_chain_only_into_their_own_sequences,
);

crate::both_backends!(with &[crate::campaigns::FAST_SIM, crate::sequences::TICK_ON_REQUEST, super::NO_TICKS].concat();
    a_running_lane_stops_when_its_device_is_unassigned,
);

/// The campaign engine's periodic report every 10 minutes: what happens within a test happens
/// because the engine was told, not because a report came round.
const NO_TICKS: &[(&str, &str)] = &[("WAFLEET__BROADCAST__PROGRESS_INTERVAL_MS", "600000")];

async fn assign(owner: &UserClient, user_id: i64, devices: &[i64]) {
    let response = owner
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{user_id}/devices"),
            &json!({ "device_ids": devices }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// Asserts `user`'s `method path` answers 403 `forbidden`.
async fn assert_forbidden(user: &UserClient, method: Method, path: &str, body: &Value) {
    let response = user.send_json(method.clone(), path, body).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 403, "{method} {path}: {answer}");
    assert_eq!(answer["error"]["code"], "forbidden", "{method} {path}");
}

async fn members_change_only_their_own_campaigns_and_sequences(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let alice = app.create_user(owner.tenant_id, "member").await;
    let bob = app.create_user(owner.tenant_id, "member").await;
    let store = |name: &'static str| {
        let db = app.db.clone();
        let tenant = owner.tenant_id;
        async move {
            wafleet::device::store::insert_device(&db, tenant, name)
                .await
                .unwrap()
                .id
        }
    };
    let (hers, his) = (store("Alice's").await, store("Bob's").await);
    assign(&owner, alice.user_id, &[hers]).await;
    assign(&owner, bob.user_id, &[his]).await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", 3, 0).await;
    let body = json!({"name": "Alice's", "message": "Hi", "target": {"list_ids": [list]}});
    let id = create(&alice, body.clone()).await;

    let path = format!("/api/v1/campaigns/{id}");
    assert_eq!(bob.get(&path).await.status(), 200, "teammates can read it");
    let none = json!({});
    for (method, path, body) in [
        (Method::PATCH, path.clone(), &body),
        (Method::POST, format!("{path}/start"), &none),
        (Method::POST, format!("{path}/pause"), &none),
        (Method::POST, format!("{path}/resume"), &none),
        (Method::POST, format!("{path}/cancel"), &none),
        (Method::DELETE, path.clone(), &none),
    ] {
        assert_forbidden(&bob, method, &path, body).await;
    }
    let image = bob
        .request(Method::PUT, &format!("{path}/image"))
        .body(vec![0u8; 16])
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 403);
    for user in [&alice, &owner] {
        let edited = user.send_json(Method::PATCH, &path, &body).await;
        assert_eq!(edited.status(), 200, "its creator and owners still can");
    }

    // Devices not assigned to the member cannot be chosen, by id or through a teammate.
    for devices in [
        json!({"mode": "set", "ids": [hers]}),
        json!({"mode": "set", "ids": [his, hers]}),
        json!({"mode": "member", "user_id": alice.user_id}),
    ] {
        let mut request = body.clone();
        request["devices"] = devices.clone();
        let response = bob.post("/api/v1/campaigns", &request).await;
        assert_eq!(response.status(), 422, "{devices}");
    }
    let mut own = body.clone();
    own["devices"] = json!({"mode": "set", "ids": [his]});
    create(&bob, own).await;

    let sequence: Value = alice
        .post(
            "/api/v1/sequences",
            &json!({"name": "Alice's", "status": "paused", "steps": [{"message": "Hi"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/sequences/{}", sequence["id"]);
    assert_eq!(bob.get(&path).await.status(), 200);
    let edit = json!({"name": "Bob's now", "steps": [{"message": "Hi"}]});
    for (method, path, body) in [
        (Method::PUT, path.clone(), &edit),
        (Method::POST, format!("{path}/toggle"), &none),
        (
            Method::POST,
            format!("{path}/enrollments"),
            &json!({"lead_ids": [1]}),
        ),
        (Method::DELETE, format!("{path}/enrollments/1"), &none),
        (Method::DELETE, format!("{path}/steps/1/image"), &none),
        (Method::DELETE, path.clone(), &none),
    ] {
        assert_forbidden(&bob, method, &path, body).await;
    }
    let toggled = alice
        .send_json(Method::POST, &format!("{path}/toggle"), &none)
        .await;
    assert_eq!(toggled.status(), 200);
}

async fn a_members_distribution_never_sends_through_an_unassigned_device(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let first = app.paired_device(&owner, "One").await;
    let second = app.paired_device(&owner, "Two").await;
    assign(&owner, member.user_id, &[first, second]).await;
    seed_leads(&app, owner.tenant_id, "Pool", 10, 0).await;
    let id = create(
        &member,
        json!({"name": "Spread", "kind": "ai", "per_device_limit": 5, "message": "Hi {name}",
               "target": {"tags": ["even", "odd"]}, "pacing": test_pacing(),
               "devices": {"mode": "set", "ids": [first, second]}}),
    )
    .await;
    // The first device is taken away before the distribution starts.
    assign(&owner, member.user_id, &[second]).await;
    start(&member, id).await;
    wait_status(&member, id, "completed").await;
    let rows = messages(&member, id).await;
    let used: HashSet<i64> = rows
        .iter()
        .filter(|r| r["status"] != "skipped")
        .map(|r| r["device_id"].as_i64().unwrap())
        .collect();
    assert_eq!(used, HashSet::from([second]), "{rows:?}");
    let sent = rows.iter().filter(|r| r["status"] != "skipped").count();
    assert_eq!(sent, 5, "the second device's share, to its limit");
}

/// (device, status) of each row, for failure messages.
fn summary(rows: &[Value]) -> Vec<(i64, String)> {
    rows.iter()
        .map(|r| {
            (
                r["device_id"].as_i64().unwrap_or(0),
                r["status"].to_string(),
            )
        })
        .collect()
}

/// Rows of a campaign sent (or further) by `device`.
fn sent_by(rows: &[Value], device: i64) -> usize {
    rows.iter()
        .filter(|r| r["device_id"] == device)
        .filter(|r| ["sent", "delivered", "read"].contains(&r["status"].as_str().unwrap_or("")))
        .count()
}

async fn a_running_lane_stops_when_its_device_is_unassigned(app: TestApp) {
    // "wait": the unassigned device's rows stay for it, and it must not send them meanwhile.
    // "move": they go to the device the member keeps.
    for on_loss in ["wait", "move"] {
        let owner = app.new_tenant(&format!("Acme {on_loss}")).await;
        let member = app.create_user(owner.tenant_id, "member").await;
        let first = app.paired_device(&owner, "One").await;
        let second = app.paired_device(&owner, "Two").await;
        assign(&owner, member.user_id, &[first, second]).await;
        let list = seed_leads(&app, owner.tenant_id, "Expo", 30, 0).await;
        // 60 s gaps (0.6 s at 100×): each device's share of 15 takes about 9 s, and no
        // periodic report comes within the test (NO_TICKS): the unassigned device's lane must
        // stop because the assignment change reached the engine, and in "move" its rows must
        // move because the withdrawn lane's end did.
        let id = create(
            &member,
            json!({"name": "Both", "message": "Hi {name}", "target": {"list_ids": [list]},
                   "pacing": {"min_delay_ms": 60000, "max_delay_ms": 61000, "per_minute": 12,
                              "per_day": 1000, "warmup_days": 0, "typing": false},
                   "on_device_loss": on_loss,
                   "devices": {"mode": "set", "ids": [first, second]}}),
        )
        .await;
        start(&member, id).await;
        let second_share = wait_until(
            "the first device to send",
            Duration::from_secs(60),
            || async {
                let rows = messages(&member, id).await;
                let share = rows.iter().filter(|r| r["device_id"] == second).count();
                (sent_by(&rows, first) > 0).then_some(share)
            },
        )
        .await;
        assign(&owner, member.user_id, &[second]).await;
        let before = sent_by(&messages(&member, id).await, first);
        let rows = if on_loss == "move" {
            wait_until(
                "the kept device to send every message",
                Duration::from_secs(60),
                || async {
                    let rows = messages(&member, id).await;
                    (sent_by(&rows, first) + sent_by(&rows, second) == 30).then_some(rows)
                },
            )
            .await
        } else {
            wait_until(
                "the kept device to send its share",
                Duration::from_secs(60),
                || async {
                    let rows = messages(&member, id).await;
                    (sent_by(&rows, second) >= second_share).then_some(rows)
                },
            )
            .await
        };
        let after = sent_by(&rows, first);
        // At most the send already under way when the assignment went can still complete.
        assert!(
            after <= before + 1,
            "{on_loss}: the unassigned device sent {before} before and {after} after: {:?}",
            summary(&rows)
        );
        let sent = sent_by(&rows, first) + sent_by(&rows, second);
        if on_loss == "move" {
            assert_eq!(
                sent,
                30,
                "its rows moved to the device kept: {:?}",
                summary(&rows)
            );
        } else {
            assert!(sent < 30, "its rows wait for it: {:?}", summary(&rows));
        }
    }
}

async fn members_chain_only_into_their_own_sequences(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let steps = json!([{"message": "Hi"}]);
    let (_, owners) = try_create_sequence(
        &owner,
        json!({"name": "Owner's", "status": "paused", "steps": steps}),
    )
    .await;
    let (_, mine) = try_create_sequence(
        &member,
        json!({"name": "Mine", "status": "paused", "steps": steps}),
    )
    .await;
    let (status, answer) = try_create_sequence(
        &member,
        json!({"name": "Into the owner's", "steps": steps, "next_sequence_id": owners["id"]}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "forbidden");
    let edit = member
        .send_json(
            Method::PUT,
            &format!("/api/v1/sequences/{}", mine["id"]),
            &json!({"name": "Mine", "steps": steps, "next_sequence_id": owners["id"]}),
        )
        .await;
    assert_eq!(edit.status(), 403);
    let (status, answer) = try_create_sequence(
        &member,
        json!({"name": "Into mine", "steps": steps, "next_sequence_id": mine["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = try_create_sequence(
        &owner,
        json!({"name": "Owner into the member's", "steps": steps, "next_sequence_id": mine["id"]}),
    )
    .await;
    assert_eq!(status, 201, "owners chain into any: {answer}");
}

/// (device, status) of each outbox row of the sequence.
async fn sequence_rows(app: &TestApp, sequence_id: i64) -> Vec<(Option<i64>, String)> {
    let db = &app.db;
    let rows: Result<Vec<(Option<i64>, String)>, wafleet::db::DbError> = async {
        wafleet::db_run!(db, |conn| {
            outbox::table
                .inner_join(sequences::table.on(sequences::campaign_id.eq(outbox::campaign_id)))
                .filter(sequences::id.eq(sequence_id))
                .select((outbox::device_id, outbox::status))
                .load(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await;
    rows.unwrap()
}

async fn a_members_sequence_sends_only_through_their_devices(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let first = app.paired_device(&owner, "One").await;
    let second = app.paired_device(&owner, "Two").await;
    assign(&owner, member.user_id, &[first]).await;
    seed_leads(&app, owner.tenant_id, "Expo", 6, 0).await;
    let lead_ids = lead_ids(&owner).await;
    // One lead already belongs to the device the member does not have.
    let db = &app.db;
    let theirs = lead_ids[0];
    let updated: Result<usize, wafleet::db::DbError> = async {
        wafleet::db_run!(db, |conn| {
            diesel::update(leads::table.filter(leads::id.eq(theirs)))
                .set(leads::device_id.eq(Some(second)))
                .execute(conn)
                .await
                .map_err(wafleet::db::DbError::from)
        })
    }
    .await;
    updated.unwrap();

    let sequence: Value = member
        .post(
            "/api/v1/sequences",
            &json!({"name": "Mine", "steps": [{"message": "Hi {name}"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = sequence["id"].as_i64().unwrap();
    let report: Value = member
        .post(
            &format!("/api/v1/sequences/{id}/enrollments"),
            &json!({ "lead_ids": lead_ids }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        report["enrolled"], 5,
        "the other device's lead is left out: {report}"
    );
    app.state.sequences.send(Tick).await.unwrap();
    let rows = wait_until(
        "five step messages sent",
        Duration::from_secs(60),
        || async {
            let rows = sequence_rows(&app, id).await;
            let sent = rows
                .iter()
                .filter(|(_, s)| ["sent", "delivered", "read"].contains(&s.as_str()))
                .count();
            (sent == 5).then_some(rows)
        },
    )
    .await;
    assert!(
        rows.iter().all(|(device, _)| *device == Some(first)),
        "{rows:?}"
    );
}
