//! The device fleet end to end: QR pairing over HTTP, logout and re-pairing, crash recovery,
//! reconnects, operator restarts, parking, draining, member visibility, and a 3,000-device boot.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::broadcast::Receiver;
use wafleet::device::events::DeviceEvent;
use wafleet::device::DeviceStatus;

use crate::helpers::{spawn_app_with, wait_until, Backend, TestApp, UserClient};

/// Fast supervision for tests: quick health checks and short backoffs.
const FAST_FLEET: &[(&str, &str)] = &[
    ("WAFLEET__FLEET__HEALTH_CHECK_MS", "50"),
    ("WAFLEET__FLEET__BACKOFF_BASE_MS", "50"),
    ("WAFLEET__FLEET__BACKOFF_MAX_MS", "400"),
    ("WAFLEET__FLEET__ARBITERS", "2"),
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
];

crate::both_backends!(with super::FAST_FLEET;
    pairs_by_qr_logs_out_and_pairs_again,
    a_crashed_actor_is_restarted_and_others_stay_up,
    a_dropped_connection_reconnects,
    restart_all_brings_every_device_back,
    a_flapping_device_is_parked_until_restarted,
    drain_disconnects_and_fails_readiness,
    members_see_only_assigned_devices,
);

/// Device status events as a test sees them: waiting for one device does not lose the events
/// of others that arrive meanwhile.
struct Events {
    rx: Receiver<DeviceEvent>,
    pending: Vec<(i64, DeviceStatus)>,
}

impl Events {
    fn new(app: &TestApp) -> Self {
        Self {
            rx: app.state.fleet.bus.subscribe(),
            pending: Vec::new(),
        }
    }

    /// Waits until `device_id` reports `status` (consuming that device's earlier events).
    async fn wait(&mut self, device_id: i64, status: DeviceStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(at) = self.pending.iter().position(|e| *e == (device_id, status)) {
                let mut index = 0;
                self.pending.retain(|e| {
                    index += 1;
                    e.0 != device_id || index > at + 1
                });
                return;
            }
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Ok(Ok(DeviceEvent::DeviceStatus(change))) => {
                    self.pending.push((change.device_id, change.status))
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("event stream failed: {err}"),
                Err(_) => panic!(
                    "device {device_id} never reached {status:?}; saw {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Events seen but not consumed for `device_id`.
    fn unconsumed(&mut self, device_id: i64) -> Vec<DeviceStatus> {
        while let Ok(event) = self.rx.try_recv() {
            if let DeviceEvent::DeviceStatus(change) = event {
                self.pending.push((change.device_id, change.status));
            }
        }
        self.pending
            .iter()
            .filter(|e| e.0 == device_id)
            .map(|e| e.1)
            .collect()
    }
}

/// Creates a device over HTTP and pairs it through the QR flow; returns its id.
async fn add_online_device(
    app: &TestApp,
    user: &UserClient,
    events: &mut Events,
    name: &str,
) -> i64 {
    let created = user.post("/api/v1/devices", &json!({ "name": name })).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    events.wait(id, DeviceStatus::AwaitingQr).await;
    let scanned = user
        .post("/api/v1/sim/scan", &json!({ "device_id": id }))
        .await;
    assert_eq!(scanned.status(), 200, "{}", scanned.text().await.unwrap());
    events.wait(id, DeviceStatus::Online).await;
    let _ = app;
    id
}

async fn device(user: &UserClient, id: i64) -> Value {
    user.get(&format!("/api/v1/devices/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn pairs_by_qr_logs_out_and_pairs_again(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    let created = admin
        .post("/api/v1/devices", &json!({"name": "Sales 1"}))
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    events.wait(id, DeviceStatus::AwaitingQr).await;

    let qr = admin.get(&format!("/api/v1/devices/{id}/qr.svg")).await;
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let svg = qr.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg:.200}");
    let live = device(&admin, id).await;
    assert_eq!(live["status"], "awaiting_qr");
    assert!(live["live"]["qr"].as_str().unwrap().starts_with("2@"));

    let scanned: Value = admin
        .post("/api/v1/sim/scan", &json!({"device_id": id}))
        .await
        .json()
        .await
        .unwrap();
    let jid = scanned["jid"].as_str().unwrap().to_string();
    events.wait(id, DeviceStatus::Online).await;
    let online = device(&admin, id).await;
    assert_eq!(online["jid"], jid.as_str());
    assert!(jid.starts_with(online["phone"].as_str().unwrap()));
    assert!(online["last_seen"].is_string());
    assert_eq!(online["live"]["connected"], true);
    let no_qr = admin.get(&format!("/api/v1/devices/{id}/qr.svg")).await;
    assert_eq!(no_qr.status(), 409);

    let out = admin
        .post(&format!("/api/v1/devices/{id}/logout"), &json!({}))
        .await;
    assert_eq!(out.status(), 200);
    let out: Value = out.json().await.unwrap();
    assert_eq!(out["status"], "logged_out");
    assert!(out["jid"].is_null(), "credentials forgotten");

    let again = admin
        .post(&format!("/api/v1/devices/{id}/reconnect"), &json!({}))
        .await;
    assert_eq!(again.status(), 202);
    events.wait(id, DeviceStatus::AwaitingQr).await;
    let code: Value = admin
        .post(
            &format!("/api/v1/devices/{id}/pair-code"),
            &json!({"phone": "+60 12-345 6789"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code["code"].as_str().unwrap().len(), 8, "{code}");
    events.wait(id, DeviceStatus::AwaitingPairCode).await;
    admin
        .post("/api/v1/sim/scan", &json!({"device_id": id}))
        .await;
    events.wait(id, DeviceStatus::Online).await;
    assert_eq!(
        device(&admin, id).await["phone"],
        "60123456789",
        "paired to the code's phone"
    );

    let deleted = admin
        .request(Method::DELETE, &format!("/api/v1/devices/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        admin.get(&format!("/api/v1/devices/{id}")).await.status(),
        404
    );
    let actions = wafleet::audit::recent_actions(&app.db, admin.tenant_id, 20)
        .await
        .unwrap();
    assert!(actions.contains(&"device.delete".to_string()));
}

async fn supervision(admin: &UserClient) -> Value {
    admin
        .get("/api/v1/admin/supervision")
        .await
        .json()
        .await
        .unwrap()
}

async fn a_crashed_actor_is_restarted_and_others_stay_up(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    // Ids 1 and 2 land on different arbiters (id % 2).
    let victim = add_online_device(&app, &admin, &mut events, "victim").await;
    let bystander = add_online_device(&app, &admin, &mut events, "bystander").await;
    assert_ne!(victim % 2, bystander % 2);

    let crash = admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": victim, "fault": {"kind": "panic"}}),
        )
        .await;
    assert_eq!(crash.status(), 204);
    events.wait(victim, DeviceStatus::Online).await;
    let snapshot = supervision(&admin).await;
    assert!(
        snapshot["restarts_total"].as_u64().unwrap() >= 1,
        "{snapshot}"
    );
    // tokio contains the panic to the actor's task: its arbiter (and the bystander) live on.
    assert_eq!(snapshot["arbiters_replaced"], 0, "{snapshot}");
    let disturbed = events.unconsumed(bystander);
    assert!(
        disturbed.is_empty(),
        "the bystander was disturbed: {disturbed:?}"
    );
    assert_eq!(device(&admin, bystander).await["live"]["connected"], true);
}

async fn a_dropped_connection_reconnects(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    let id = add_online_device(&app, &admin, &mut events, "flaky").await;
    let fault = admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": id, "fault": {"kind": "disconnect"}}),
        )
        .await;
    assert_eq!(fault.status(), 204);
    events.wait(id, DeviceStatus::Reconnecting).await;
    events.wait(id, DeviceStatus::Online).await;

    // A refused connect backs off and retries.
    admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": id, "fault": {"kind": "refuse_connect", "times": 2}}),
        )
        .await;
    admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": id, "fault": {"kind": "disconnect"}}),
        )
        .await;
    events.wait(id, DeviceStatus::Online).await;
    let stats: Value = admin.get("/api/v1/sim/stats").await.json().await.unwrap();
    assert_eq!(stats["refused_connects"], 2, "{stats}");
}

async fn restart_all_brings_every_device_back(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(add_online_device(&app, &admin, &mut events, &format!("d{n}")).await);
    }
    let bad = admin
        .post("/api/v1/admin/devices/restart", &json!({}))
        .await;
    assert_eq!(bad.status(), 400);
    let report: Value = admin
        .post("/api/v1/admin/devices/restart", &json!({"all": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["restarted"].as_array().unwrap().len(), 3);
    for id in &ids {
        events.wait(*id, DeviceStatus::Online).await;
    }
    let page: Value = admin
        .get("/api/v1/devices?status=online")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3);
    let one: Value = admin
        .post(
            "/api/v1/admin/devices/restart",
            &json!({"ids": [ids[0], 999_999]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["restarted"], json!([ids[0]]));
    assert_eq!(one["unknown"], json!([999_999]));
}

async fn a_flapping_device_is_parked_until_restarted(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    let id = add_online_device(&app, &admin, &mut events, "flapper").await;
    let budget = app.settings.fleet.restart_budget;
    for _ in 0..budget {
        admin
            .post(
                "/api/v1/sim/fault",
                &json!({"device_id": id, "fault": {"kind": "disconnect"}}),
            )
            .await;
        events.wait(id, DeviceStatus::Online).await;
    }
    admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": id, "fault": {"kind": "disconnect"}}),
        )
        .await;
    events.wait(id, DeviceStatus::Parked).await;
    let parked = device(&admin, id).await;
    assert!(
        parked["status_reason"]
            .as_str()
            .unwrap()
            .contains("restart budget"),
        "{parked}"
    );
    let snapshot = supervision(&admin).await;
    assert_eq!(snapshot["parked"][0]["device_id"], id);

    admin
        .post("/api/v1/admin/devices/restart", &json!({"ids": [id]}))
        .await;
    events.wait(id, DeviceStatus::Online).await;
    assert!(supervision(&admin).await["parked"]
        .as_array()
        .unwrap()
        .is_empty());
}

async fn drain_disconnects_and_fails_readiness(app: TestApp) {
    let admin = app.admin().await;
    let mut events = Events::new(&app);
    let id = add_online_device(&app, &admin, &mut events, "drained").await;
    let drained: Value = admin
        .post("/api/v1/admin/drain", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(drained["disconnected"], 1);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("draining"));
    assert_eq!(
        device(&admin, id).await["live"],
        Value::Null,
        "actor stopped"
    );
    admin
        .post("/api/v1/admin/devices/restart", &json!({"all": true}))
        .await;
    events.wait(id, DeviceStatus::Online).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

async fn members_see_only_assigned_devices(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let mut events = Events::new(&app);
    let mine = add_online_device(&app, &owner, &mut events, "mine").await;
    let other = add_online_device(&app, &owner, &mut events, "not mine").await;
    let member = app.create_user(owner.tenant_id, "member").await;
    owner
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{}/devices", member.user_id),
            &json!({"device_ids": [mine]}),
        )
        .await;
    let page: Value = member.get("/api/v1/devices").await.json().await.unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], mine);
    assert_eq!(page["counts"]["online"], 1);
    assert_eq!(
        member
            .get(&format!("/api/v1/devices/{other}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        member
            .get(&format!("/api/v1/devices/{mine}"))
            .await
            .status(),
        200
    );
    let reconnect = member
        .post(&format!("/api/v1/devices/{other}/reconnect"), &json!({}))
        .await;
    assert_eq!(reconnect.status(), 404);
    let owner_page: Value = owner
        .get("/api/v1/devices?q=not")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(owner_page["total"], 1);
    assert_eq!(owner_page["items"][0]["id"], other);
}

/// Resident set size of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 3,000 paired devices stored; the daemon boots them all to online through the admission
/// queue. Prints time to all-online and RSS growth per device (the benchmark tracks them).
#[actix_web::test]
async fn boots_3000_devices_to_online() {
    const DEVICES: i64 = 3000;
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite)
        .await
        .unwrap();
    let settings = crate::helpers::settings_with(&[("DB_URI", database.url.as_str())]);
    wafleet::db::migrate::run_pending(&settings.database).unwrap();
    let db = wafleet::db::Db::connect(&settings.database).await.unwrap();
    let tenant = wafleet::auth::store::insert_tenant(&db, "Fleet", "UTC")
        .await
        .unwrap();
    for n in 0..DEVICES {
        let device = wafleet::device::store::insert_device(&db, tenant.id, &format!("d{n}"))
            .await
            .unwrap();
        let patch = wafleet::device::model::DeviceStatusPatch {
            status: Some("online".into()),
            jid: Some(Some(format!("6010{n:07}:1@s.whatsapp.net"))),
            ..Default::default()
        };
        wafleet::device::store::update_status(&db, device.id, patch)
            .await
            .unwrap();
    }
    drop(db);
    let rss_before = rss_kib();
    let started = Instant::now();
    let app = crate::helpers::spawn_app_on(
        &database,
        &[
            // The simulator's accounts live in memory: stored devices pair again by auto-scan.
            ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "5"),
            ("WAFLEET__SIM__QR_ROTATE_MS", "0"),
            ("WAFLEET__FLEET__CONNECTS_PER_SECOND", "2000"),
            ("WAFLEET__FLEET__MAX_CONNECTS_IN_FLIGHT", "500"),
        ],
    )
    .await;
    let admin = app.admin().await;
    let online = wait_until("3,000 devices online", Duration::from_secs(300), || async {
        let snapshot = supervision(&admin).await;
        let online = snapshot["by_status"]["online"].as_u64().unwrap_or(0);
        (online == DEVICES as u64).then_some(snapshot)
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let rss_growth = rss_kib().saturating_sub(rss_before);
    assert_eq!(online["boot"]["total"], DEVICES);
    println!(
        "{}",
        json!({
            "scenario": "boot_test",
            "devices": DEVICES,
            "seconds_to_all_online": seconds,
            "rss_growth_kib": rss_growth,
            "rss_per_device_kib": rss_growth as f64 / DEVICES as f64,
            "boot_finished_after_ms": online["boot"]["finished_after_ms"],
        })
    );
}

#[actix_web::test]
async fn demo_mode_creates_and_pairs_devices() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("WAFLEET__SIM__DEMO_DEVICES", "3"),
            ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "20"),
        ],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let page = wait_until("3 demo devices online", Duration::from_secs(20), || async {
        let page: Value = admin
            .get("/api/v1/devices?status=online")
            .await
            .json()
            .await
            .unwrap();
        (page["total"] == 3).then_some(page)
    })
    .await;
    assert_eq!(page["items"][0]["name"], "Demo 1");
}
