//! SIGKILL during outbound webhook deliveries, on both backends: the daemon (a real process) is
//! killed while a slow receiver has deliveries in flight and more wait in the queue; after a
//! restart on the same database every event arrives, and only deliveries that were in flight or
//! claimed at the kill arrive twice (with the same event id, for receivers to dedupe).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fault::{free_port, spawn_daemon, Process};
use crate::helpers::{login_at, wait_until, Backend, TestDatabase, ADMIN_EMAIL, ADMIN_PASSWORD};
use crate::outbound_webhooks::{assert_signed, endpoint, Receiver};

/// Leads created, hence `lead.created` events.
const EVENTS: usize = 40;
/// The endpoint's concurrency; the dispatcher claims four times that ahead.
const CONCURRENCY: usize = 2;
const WAIT: Duration = Duration::from_secs(90);

#[actix_web::test]
async fn sigkill_during_deliveries_loses_none_sqlite() {
    drill(Backend::Sqlite).await;
}

#[actix_web::test]
async fn sigkill_during_deliveries_loses_none_postgres() {
    drill(Backend::Postgres).await;
}

async fn drill(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        eprintln!("skipped: DATABASE_URL is not set");
        return;
    };
    let _heavy = crate::helpers::heavy_test().await;
    let media = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("DB_URI", database.url.as_str()),
        (
            "RUST_LOG",
            if std::env::var_os("TEST_LOG").is_some() {
                "info"
            } else {
                "off"
            },
        ),
        ("WAFLEET__SERVER__HOST", "127.0.0.1"),
        ("WAFLEET__SERVER__WORKERS", "1"),
        ("WAFLEET__ADMIN__EMAIL", ADMIN_EMAIL),
        ("WAFLEET__ADMIN__PASSWORD", ADMIN_PASSWORD),
        ("WAFLEET__AUTH__SECURE_COOKIES", "false"),
        ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
        (
            "WAFLEET__CHAT__MEDIA_DIR",
            &media.path().display().to_string(),
        ),
        ("WAFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("WAFLEET__WEBHOOKS__TIMEOUT_SECS", "2"),
        ("WAFLEET__WEBHOOKS__RETRY_BASE_MS", "200"),
        ("WAFLEET__WEBHOOKS__RETRY_MAX_SECS", "1"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let ready = || async {
        let ready = reqwest::get(format!("{address}/readyz")).await.ok()?;
        ready.status().is_success().then_some(())
    };
    let mut daemon: Process = spawn_daemon(&env, port);
    wait_until("the daemon to serve", WAIT, ready).await;
    let admin = login_at(&address, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let receiver = Receiver::start().await;
    // Slow answers: deliveries are in flight, and more claimed, when the kill comes.
    receiver.slow_down(Duration::from_millis(300));
    let (_, secret) = endpoint(
        &admin,
        json!({"url": receiver.url, "events": ["lead.created"], "max_concurrency": CONCURRENCY}),
    )
    .await;
    let list: Value = admin
        .post("/api/v1/lead-lists", &json!({"name": "Drill"}))
        .await
        .json()
        .await
        .unwrap();
    let list_id = list["id"].as_i64().unwrap();
    for n in 0..EVENTS {
        let created = admin
            .post(
                "/api/v1/leads",
                &json!({"list_id": list_id, "phone": format!("6012{n:07}")}),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    wait_until("some deliveries", WAIT, || {
        let receiver = receiver.clone();
        async move { (receiver.received().len() >= 4).then_some(()) }
    })
    .await;
    daemon.kill();
    let before_kill = receiver.received().len();
    assert!(
        before_kill < EVENTS,
        "the kill came before the end ({before_kill})"
    );

    receiver.slow_down(Duration::ZERO);
    let _daemon = spawn_daemon(&env, port);
    wait_until("the daemon to serve again", WAIT, ready).await;
    // Rows claimed by the killed daemon come back when their lease ends (timeout × 5 + 5 s).
    let received = wait_until("every event", WAIT, || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            let phones: std::collections::HashSet<String> = received
                .iter()
                .map(|r| r.json()["data"]["phone"].as_str().unwrap().to_string())
                .collect();
            (phones.len() == EVENTS).then_some(received)
        }
    })
    .await;
    let mut times: HashMap<String, usize> = HashMap::new();
    let mut phones_of: HashMap<String, String> = HashMap::new();
    for r in &received {
        assert_signed(r, &secret, admin.tenant_id);
        let body = r.json();
        let id = body["id"].as_str().unwrap().to_string();
        let phone = body["data"]["phone"].as_str().unwrap().to_string();
        // A second delivery of a lead is the same event (same id), never a new one.
        if let Some(known) = phones_of.insert(phone.clone(), id.clone()) {
            assert_eq!(known, id, "lead {phone} came as two different events");
        }
        *times.entry(id).or_default() += 1;
    }
    assert_eq!(times.len(), EVENTS, "every event once at least");
    let doubled = times.values().filter(|n| **n > 1).count();
    assert!(
        times.values().all(|n| *n <= 2),
        "no event more than twice: {times:?}"
    );
    // Only deliveries in flight or claimed ahead at the kill may arrive again.
    assert!(
        doubled <= CONCURRENCY * 4,
        "{doubled} events arrived twice; at most {} were claimed at the kill",
        CONCURRENCY * 4
    );
}
