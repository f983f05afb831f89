//! Device health and quarantine on both backends: a device WhatsApp rate-limits mid-campaign is
//! quarantined at once (DEVICE_QUARANTINED live, audited, shown on the device and its health
//! report), its messages go out through the healthy device, each lead gets one message, and an
//! owner lifts the quarantine; both reach outbound webhooks. A device whose connection keeps
//! dropping is quarantined by its score before its first send, without any failed send; an
//! owner drains a device for some hours and campaigns leave it out.

use serde_json::{json, Value};
use wafleet::whatsapp::sim::Fault;

use crate::campaigns::{
    assert_each_lead_once, create, messages, next_frame, seed_leads, start, subscribe, test_pacing,
    wait_status, FAST_SIM,
};
use crate::helpers::{wait_until, TestApp, UserClient};
use crate::outbound_webhooks::{assert_signed, endpoint, types_of, Receiver, WEBHOOK_TEST};

crate::both_backends!(with &[super::FAST_SIM, super::WEBHOOK_TEST].concat();
    a_rate_limited_device_is_quarantined_and_its_queue_moves,
    a_drained_device_sends_nothing,
);

crate::both_backends!(with &[super::FAST_SIM, super::STRICT_HEALTH].concat();
    a_device_that_keeps_dropping_is_quarantined_before_it_sends,
);

/// One dropped connection (score 90) is below this threshold.
const STRICT_HEALTH: &[(&str, &str)] = &[("WAFLEET__BROADCAST__HEALTH__THRESHOLD", "95")];

const LEADS: usize = 16;

async fn a_rate_limited_device_is_quarantined_and_its_queue_moves(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let limited = app.paired_device(&owner, "Limited").await;
    let healthy = app.paired_device(&owner, "Healthy").await;
    let healthy_before = health(&owner, healthy).await;
    assert_eq!(healthy_before["health"]["score"], 100);
    // WhatsApp refuses the limited device's first send with a rate limit.
    let sim = app.state.fleet.sim.clone().unwrap();
    sim.inject(
        limited,
        Fault::RateLimit {
            sends: 1,
            retry_after_ms: 60_000,
        },
    )
    .await
    .unwrap();
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(
        &owner,
        json!({"url": receiver.url, "description": "CRM",
               "events": ["device.quarantined", "device.quarantine_lifted"]}),
    )
    .await;
    let mut ws = subscribe(&app, &owner, "device-status").await;
    let id = launch(&app, &owner).await;

    let quarantined = next_event(&mut ws, "DEVICE_QUARANTINED").await;
    assert_eq!(quarantined["data"]["device_id"], limited, "{quarantined}");
    assert_eq!(quarantined["data"]["reason"], "rate limited by WhatsApp");

    // Every lead gets one message, all through the healthy device.
    all_through(&app, &owner, id, healthy).await;

    let device: Value = owner
        .get(&format!("/api/v1/devices/{limited}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(device["quarantined_until"].is_string(), "{device}");
    assert_eq!(device["quarantine_reason"], "rate limited by WhatsApp");
    let report = health(&owner, limited).await;
    assert_eq!(report["health"]["signals"]["rate_limits"], 1, "{report}");
    assert_eq!(report["health"]["score"], 80, "{report}");
    let kinds: Vec<&str> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..2], ["quarantined", "rate_limited"], "{report}");
    assert!(kinds.contains(&"status"), "{report}");
    assert_audited(&app, owner.tenant_id, "device.quarantined").await;

    // The owner lifts it (announced); a second lift finds nothing to lift.
    let lifted = lift(&owner, limited).await;
    assert_eq!(lifted.status(), 200);
    let lifted: Value = lifted.json().await.unwrap();
    assert!(lifted["quarantined_until"].is_null(), "{lifted}");
    let frame = next_event(&mut ws, "DEVICE_QUARANTINE_LIFTED").await;
    assert_eq!(frame["data"]["device_id"], limited);
    let again = lift(&owner, limited).await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_state");
    assert_audited(&app, owner.tenant_id, "device.quarantine_lifted").await;

    // Both reached the tenant's webhook receiver, signed.
    let received = wait_until(
        "both quarantine events at the receiver",
        std::time::Duration::from_secs(30),
        || {
            let receiver = receiver.clone();
            async move {
                let received = receiver.received();
                let types = types_of(&received);
                (types.contains("device.quarantined") && types.contains("device.quarantine_lifted"))
                    .then_some(received)
            }
        },
    )
    .await;
    for delivery in &received {
        assert_signed(delivery, &secret, owner.tenant_id);
        assert_eq!(delivery.json()["data"]["device_id"], limited);
    }
}

async fn a_device_that_keeps_dropping_is_quarantined_before_it_sends(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let flaky = app.paired_device(&owner, "Flaky").await;
    let healthy = app.paired_device(&owner, "Healthy").await;
    // Its connection drops once and comes back: no send has failed, but its score falls to 90.
    let sim = app.state.fleet.sim.clone().unwrap();
    sim.inject(flaky, Fault::Disconnect).await.unwrap();
    // The device may still show online from before the drop: wait for the drop to be counted.
    let report = wait_until(
        "the drop counted and the device online again",
        std::time::Duration::from_secs(20),
        || async {
            let report = health(&owner, flaky).await;
            (report["health"]["signals"]["disconnects"] == 1
                && report["device"]["status"] == "online")
                .then_some(report)
        },
    )
    .await;
    assert_eq!(report["health"]["signals"]["failed"], 0, "{report}");
    assert!(
        report["device"]["quarantined_until"].is_null(),
        "not judged before it sends: {report}"
    );

    let mut ws = subscribe(&app, &owner, "device-status").await;
    let id = launch(&app, &owner).await;
    let quarantined = next_event(&mut ws, "DEVICE_QUARANTINED").await;
    assert_eq!(quarantined["data"]["device_id"], flaky, "{quarantined}");
    assert_eq!(quarantined["data"]["reason"], "health score 90 below 95");
    assert_eq!(quarantined["data"]["score"], 90);

    all_through(&app, &owner, id, healthy).await;
}

async fn a_drained_device_sends_nothing(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let drained = app.paired_device(&owner, "Drained").await;
    let healthy = app.paired_device(&owner, "Healthy").await;
    let path = format!("/api/v1/devices/{drained}/drain");
    for hours in [json!(0), json!(721)] {
        let refused = owner.post(&path, &json!({ "hours": hours })).await;
        assert_eq!(refused.status(), 422);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_drain", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("hours"));
    }
    let member = app.create_user(owner.tenant_id, "member").await;
    assert_eq!(member.post(&path, &json!({})).await.status(), 403);
    let other = app.new_tenant("Other").await;
    assert_eq!(other.post(&path, &json!({})).await.status(), 404);
    assert!(health(&owner, drained).await["device"]["quarantined_until"].is_null());

    let mut ws = subscribe(&app, &owner, "device-status").await;
    let answer = owner.post(&path, &json!({"hours": 2})).await;
    assert_eq!(answer.status(), 200);
    let device: Value = answer.json().await.unwrap();
    assert!(device["quarantined_until"].is_string(), "{device}");
    assert_eq!(device["quarantine_reason"], "drained by an operator");
    let frame = next_event(&mut ws, "DEVICE_QUARANTINED").await;
    assert_eq!(frame["data"]["device_id"], drained);
    let again = owner.post(&path, &json!({})).await;
    assert_eq!(again.status(), 409);
    assert_audited(&app, owner.tenant_id, "device.quarantined").await;

    let id = launch(&app, &owner).await;
    all_through(&app, &owner, id, healthy).await;
    assert_eq!(lift(&owner, drained).await.status(), 200);
}

/// A campaign of `LEADS` new leads over the tenant's devices, started; its id.
async fn launch(app: &TestApp, owner: &UserClient) -> i64 {
    let list = seed_leads(app, owner.tenant_id, "Expo", LEADS, 0).await;
    let id = create(
        owner,
        json!({"name": "Launch", "message": "Hello {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(owner, id).await;
    id
}

/// Waits for campaign `id` to complete: every lead got one message, all through `device`.
async fn all_through(app: &TestApp, owner: &UserClient, id: i64, device: i64) {
    wait_status(owner, id, "completed").await;
    let rows = messages(owner, id).await;
    assert_each_lead_once(app, &rows, LEADS);
    assert!(rows.iter().all(|r| r["device_id"] == device), "{rows:?}");
}

/// Asserts the tenant's latest audit entries hold `action`.
async fn assert_audited(app: &TestApp, tenant_id: i64, action: &str) {
    let actions = wafleet::audit::recent_actions(&app.db, tenant_id, 20)
        .await
        .unwrap();
    assert!(actions.iter().any(|a| a == action), "{actions:?}");
}

/// `GET /devices/{id}/health` as `owner`.
async fn health(owner: &UserClient, device: i64) -> Value {
    owner
        .get(&format!("/api/v1/devices/{device}/health"))
        .await
        .json()
        .await
        .unwrap()
}

/// The next frame of `event` on `ws` (others are skipped).
async fn next_event(ws: &mut crate::campaigns::Ws, event: &str) -> Value {
    loop {
        let frame = next_frame(ws).await;
        if frame["event"] == event {
            return frame;
        }
    }
}

/// `DELETE /devices/{id}/quarantine` as `owner`.
async fn lift(owner: &UserClient, device: i64) -> reqwest::Response {
    owner
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/devices/{device}/quarantine"),
        )
        .send()
        .await
        .unwrap()
}
