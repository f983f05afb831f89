//! The home page's figures on both backends: a simulated campaign's sends, receipts and
//! replies show up in today's, 7 and 30 days' totals, per hour and per device, in the charts,
//! scoped to a member's devices and to the tenant; a given-up send counts as failed.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use wafleet::broadcast::outbox::model::OutboxStatus;
use wafleet::db::schema::outbox;
use wafleet::db_run;

use crate::campaigns::{create, seed_leads, start, test_pacing, wait_status};
use crate::helpers::{wait_until, TestApp, UserClient};

/// The campaign tests' fast clock, with every lead answering.
const REPLYING_SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__TIME_SCALE", "100"),
    ("WAFLEET__SIM__REPLY_PROBABILITY", "1"),
    ("WAFLEET__SIM__IMAGE_REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__DELIVERED_AFTER_MS", "500"),
    ("WAFLEET__SIM__READ_AFTER_MS", "500"),
    ("WAFLEET__BROADCAST__PROGRESS_INTERVAL_MS", "100"),
    ("WAFLEET__BROADCAST__LEASE_SECS", "2"),
];

crate::both_backends!(with super::REPLYING_SIM;
    the_home_figures_count_a_campaign_for_owners_and_members,
);
crate::both_backends!(the_home_figures_are_validated_and_start_at_zero,);

const LEADS: usize = 12;

async fn overview(user: &UserClient, range: &str) -> Value {
    let response = user
        .get(&format!("/api/v1/stats/overview?range={range}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sums a field over the series' buckets.
fn series_sum(view: &Value, field: &str) -> i64 {
    view["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[field].as_i64().unwrap())
        .sum()
}

async fn the_home_figures_count_a_campaign_for_owners_and_members(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let first = app.paired_device(&owner, "Sales A").await;
    let second = app.paired_device(&owner, "Sales B").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", LEADS, 0).await;
    let id = create(
        &owner,
        json!({"name": "Launch", "message": "Hello {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    wait_status(&owner, id, "completed").await;

    // Sends, read receipts and every lead's answer reach the figures as the mirror commits them.
    let today = wait_until(
        "every send read and answered in today's figures",
        Duration::from_secs(60),
        || async {
            let view = overview(&owner, "today").await;
            let t = &view["totals"];
            (t["sent"] == LEADS && t["read"] == LEADS && t["replies"] == LEADS).then_some(view)
        },
    )
    .await;
    let totals = &today["totals"];
    assert_eq!(totals["delivered"], LEADS, "{today}");
    assert_eq!(totals["failed"], 0, "{today}");
    assert_eq!(today["rates"]["delivered"], 100.0);
    assert_eq!(today["rates"]["replied"], 100.0);
    assert_eq!(today["time_zone"], "Asia/Kuala_Lumpur");
    assert_eq!(today["series"].as_array().unwrap().len(), 24);
    assert_eq!(series_sum(&today, "sent"), LEADS as i64);
    assert_eq!(today["devices_by_status"]["online"], 2);
    assert_eq!(today["campaigns_by_status"]["completed"], 1);
    let shares = today["devices"].as_array().unwrap();
    assert_eq!(shares.len(), 2, "{today}");
    let share_of = |device: i64| {
        shares
            .iter()
            .find(|s| s["device_id"] == device)
            .map_or(0, |s| s["sent"].as_i64().unwrap())
    };
    assert_eq!(share_of(first) + share_of(second), LEADS as i64);
    assert!(share_of(first) > 0 && share_of(second) > 0, "{today}");
    for range in ["7d", "30d"] {
        let view = overview(&owner, range).await;
        assert_eq!(view["totals"], today["totals"], "{range}");
        assert_eq!(
            view["series"].as_array().unwrap().len(),
            if range == "7d" { 7 } else { 30 }
        );
        assert_eq!(series_sum(&view, "replies"), LEADS as i64);
    }

    // The charts draw those figures.
    let chart = owner
        .get("/api/v1/stats/chart.svg?chart=sends&range=today")
        .await;
    assert_eq!(chart.status(), 200);
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    let svg = chart.text().await.unwrap();
    assert!(
        svg.contains(&format!("{LEADS} sent, 0 failed, {LEADS} replies")),
        "{svg}"
    );
    // The overview draws the same charts when asked, from the same figures.
    let with_charts: Value = owner
        .get("/api/v1/stats/overview?range=today&charts=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(with_charts["charts"]["sends"].as_str(), Some(svg.as_str()));
    assert_eq!(with_charts["totals"], today["totals"]);
    for name in ["rates", "devices"] {
        let alone = owner
            .get(&format!("/api/v1/stats/chart.svg?chart={name}&range=today"))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            with_charts["charts"][name].as_str(),
            Some(alone.as_str()),
            "{name}"
        );
    }
    assert!(
        today.get("charts").is_none(),
        "no charts unless asked: {today}"
    );
    let svg = owner
        .get("/api/v1/stats/chart.svg?chart=devices&range=7d")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        svg.contains("Sales A: ") && svg.contains("Sales B: "),
        "{svg}"
    );

    // A member sees their device's figures only; another tenant sees none of it.
    let member = app.create_user(owner.tenant_id, "member").await;
    let assigned = owner
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{}/devices", member.user_id),
            &json!({ "device_ids": [first] }),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    let theirs = overview(&member, "today").await;
    assert_eq!(theirs["totals"]["sent"], share_of(first), "{theirs}");
    assert_eq!(theirs["devices"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["devices_by_status"]["online"], 1);
    let svg = member
        .get("/api/v1/stats/chart.svg?chart=devices&range=today")
        .await
        .text()
        .await
        .unwrap();
    assert!(!svg.contains("Sales B"), "{svg}");
    // The devices view narrows to one member's devices (the home page's member filter).
    let listed: Value = owner
        .get(&format!("/api/v1/devices?member_id={}", member.user_id))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids, [&json!(first)], "{listed}");

    // One device's figures (the device page); a device of another tenant is not found.
    let one = overview(&member, &format!("today&device_id={first}")).await;
    assert_eq!(one["totals"]["sent"], share_of(first));
    let hidden = member
        .get(&format!("/api/v1/stats/overview?device_id={second}"))
        .await;
    assert_eq!(hidden.status(), 404);
    let stranger = app.new_tenant("Other").await;
    let none = overview(&stranger, "30d").await;
    assert_eq!(none["totals"]["sent"], 0);
    assert!(none["devices"].as_array().unwrap().is_empty());
    let foreign = stranger
        .get(&format!(
            "/api/v1/stats/chart.svg?chart=sends&device_id={first}"
        ))
        .await;
    assert_eq!(foreign.status(), 404);
    let foreign = stranger
        .get(&format!("/api/v1/devices?member_id={}", member.user_id))
        .await;
    assert_eq!(foreign.status(), 404);

    // A send given up counts as failed, in the same transaction as the row.
    let row = claimed_row(&app, id, first).await.unwrap();
    let finished = wafleet::broadcast::outbox::store::finish(
        &app.db,
        &[row],
        OutboxStatus::Failed,
        Some("test"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(finished, 1);
    assert_eq!(overview(&owner, "today").await["totals"]["failed"], 1);
    assert_eq!(overview(&member, "today").await["totals"]["failed"], 1);
}

async fn the_home_figures_are_validated_and_start_at_zero(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let view = overview(&owner, "today").await;
    assert_eq!(view["totals"]["sent"], 0);
    assert_eq!(view["rates"]["delivered"], 0.0);
    assert_eq!(series_sum(&view, "sent"), 0);
    let viewer = app.create_user(owner.tenant_id, "viewer").await;
    assert_eq!(overview(&viewer, "7d").await["range"], "7d");
    for bad in [
        "/api/v1/stats/overview?range=1y",
        "/api/v1/stats/chart.svg?chart=sends&range=x",
        "/api/v1/stats/chart.svg?chart=pie",
    ] {
        let response = owner.get(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}");
    }
    let anonymous = crate::helpers::new_client()
        .get(format!("{}/api/v1/stats/overview", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Puts one of a campaign's rows on `device` back in `sending`, as a sender holds it; its id.
async fn claimed_row(
    app: &TestApp,
    campaign: i64,
    device: i64,
) -> Result<i64, wafleet::db::DbError> {
    db_run!(&app.db, |conn| {
        let row = outbox::table
            .filter(outbox::campaign_id.eq(campaign))
            .filter(outbox::device_id.eq(device))
            .select(outbox::id)
            .first::<i64>(conn)
            .await?;
        diesel::update(outbox::table.find(row))
            .set(outbox::status.eq(OutboxStatus::Sending.as_str()))
            .execute(conn)
            .await?;
        Ok(row)
    })
}
