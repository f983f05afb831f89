//! The actor system under failure: a silent Redis never grows the bridge's queue past its bound,
//! and a database outage loses no inbound message (the chat mirror keeps, retries and restarts,
//! and `/readyz` says so meanwhile), and receipts whose outbox update fails are applied once it
//! can be.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use wafleet::hub::{HubEvent, Topic};

use crate::campaigns::{create, progress, seed_leads, start, test_pacing, wait_status};
use crate::helpers::{spawn_app_on, spawn_app_with, wait_until, Backend, TestApp, TestDatabase};

/// The value of the first metric line starting with `prefix` (name and labels).
pub async fn metric(app: &TestApp, prefix: &str) -> Option<f64> {
    let text = app.metrics().await.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A TCP server that plays a Redis which accepts connections and never answers, until told to
/// forward new connections to a real Redis (the held ones are closed then).
struct SilentRedis {
    port: u16,
    forward: Arc<Mutex<Option<String>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentRedis {
    async fn start() -> SilentRedis {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forward: Arc<Mutex<Option<String>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (to, keep) = (forward.clone(), held.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = to.lock().unwrap().clone();
                match target {
                    None => keep.lock().unwrap().push(client),
                    Some(target) => {
                        actix_web::rt::spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(target).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                }
            }
        });
        SilentRedis {
            port,
            forward,
            held,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, a real Redis at `target` (host:port) answers.
    fn forward_to(&self, target: &str) {
        *self.forward.lock().unwrap() = Some(target.to_string());
        self.held.lock().unwrap().clear();
    }
}

fn event(n: usize) -> HubEvent {
    HubEvent {
        tenant_id: 1,
        topic: Topic::DeviceStatus,
        device_id: Some(1),
        event: "DEVICE_STATUS".into(),
        data: serde_json::json!({ "n": n }),
        ts: chrono::Utc::now(),
    }
}

/// With Redis accepting and never answering, publishing many events keeps the bridge's queue
/// within `redis.queue_capacity` and counts the dropped ones; once Redis answers (the real one
/// at `REDIS_URL`, when set), events reach it again.
#[actix_web::test]
async fn a_silent_redis_keeps_the_bridge_bounded_and_events_flow_once_it_answers() {
    const CAPACITY: usize = 16;
    const EVENTS: usize = 3_000;
    let redis = SilentRedis::start().await;
    let channel = format!("wafleet-test-{}", uuid::Uuid::new_v4().simple());
    let capacity = CAPACITY.to_string();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("WAFLEET__REDIS__URL", redis.url().as_str()),
            ("WAFLEET__REDIS__CHANNEL", channel.as_str()),
            ("WAFLEET__REDIS__QUEUE_CAPACITY", capacity.as_str()),
        ],
    )
    .await
    .unwrap();
    for n in 0..EVENTS {
        app.state.hub.do_send(event(n));
    }
    let dropped = wait_until(
        "the bridge to drop what it cannot queue",
        Duration::from_secs(20),
        || async {
            let dropped = metric(&app, "wafleet_redis_bridge_dropped_total").await?;
            (dropped >= (EVENTS - CAPACITY - 1) as f64).then_some(dropped)
        },
    )
    .await;
    let queued = metric(&app, "wafleet_redis_bridge_queue").await.unwrap();
    assert!(queued <= CAPACITY as f64, "queue {queued} over its bound");
    assert!(dropped <= EVENTS as f64);
    // Local delivery went on: the hub routed every event.
    wait_until(
        "the hub to route every event",
        Duration::from_secs(20),
        || async {
            let routed = metric(&app, "wafleet_hub_events_total").await?;
            (routed >= EVENTS as f64).then_some(())
        },
    )
    .await;

    let Ok(real) = std::env::var("REDIS_URL") else {
        eprintln!("skipped the reconnect half: REDIS_URL is not set");
        return;
    };
    let target = real
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let client = redis::Client::open(real.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut received = pubsub.into_on_message();
    redis.forward_to(&target);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for n in EVENTS.. {
        app.state.hub.do_send(event(n));
        let next = tokio::time::timeout(Duration::from_millis(200), received.next()).await;
        if let Ok(Some(_)) = next {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never reached Redis again"
        );
    }
}

/// Holds a write lock on a table of a test database until released: an exclusive transaction
/// (the whole file) on SQLite, `LOCK TABLE` in `mode` on PostgreSQL.
enum DbLock {
    Sqlite(diesel::SqliteConnection),
    Postgres(Box<AsyncPgConnection>),
}

impl DbLock {
    async fn take(database: &TestDatabase, table: &str, mode: &str) -> DbLock {
        if let Some(path) = database.url.strip_prefix("sqlite://") {
            let mut conn = diesel::SqliteConnection::establish(path).unwrap();
            conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN EXCLUSIVE;")
                .unwrap();
            DbLock::Sqlite(conn)
        } else {
            let mut conn = AsyncPgConnection::establish(&database.url).await.unwrap();
            conn.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN {mode} MODE;"))
                .await
                .unwrap();
            DbLock::Postgres(Box::new(conn))
        }
    }

    async fn release(self) {
        match self {
            DbLock::Sqlite(mut conn) => conn.batch_execute("COMMIT;").unwrap(),
            DbLock::Postgres(mut conn) => conn.batch_execute("COMMIT;").await.unwrap(),
        }
    }
}

#[actix_web::test]
async fn inbound_messages_survive_a_database_outage_sqlite() {
    inbound_messages_survive_a_database_outage(Backend::Sqlite).await;
}

#[actix_web::test]
async fn inbound_messages_survive_a_database_outage_postgres() {
    inbound_messages_survive_a_database_outage(Backend::Postgres).await;
}

/// While the messages table is locked, inbound messages are kept (the failed batches are
/// retried, the queue stays within `chat.queue_max`, the mirror restarts and `/readyz` reports
/// it down); once the lock goes, every message is stored exactly once and `/readyz` is ready.
async fn inbound_messages_survive_a_database_outage(backend: Backend) {
    const QUEUE_MAX: usize = 4;
    const MESSAGES: usize = 12;
    let Some(database) = TestDatabase::create(backend).await else {
        eprintln!("skipped: DATABASE_URL is not set");
        return;
    };
    // The daemon gives up on a lock quickly, so batches fail while the test holds it.
    let url = match backend {
        Backend::Sqlite => database.url.clone(),
        Backend::Postgres => format!("{}?options=-c%20lock_timeout%3D200", database.url),
    };
    let queue_max = QUEUE_MAX.to_string();
    let app = spawn_app_on(
        &database,
        &[
            ("DB_URI", url.as_str()),
            ("WAFLEET__DATABASE__SQLITE_BUSY_TIMEOUT_MS", "200"),
            ("WAFLEET__CHAT__QUEUE_MAX", queue_max.as_str()),
            ("WAFLEET__CHAT__BATCH_MAX", "2"),
        ],
    )
    .await;
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "outage").await;
    let sim = app.state.fleet.sim.clone().unwrap();

    let lock = DbLock::take(&database, "messages", "ACCESS EXCLUSIVE").await;
    let sender = actix_web::rt::spawn(async move {
        let mut ids = Vec::new();
        for n in 0..MESSAGES {
            let id = sim
                .deliver_inbound(device, "60198765432", &format!("during the outage {n}"))
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    });
    let down = wait_until(
        "/readyz to report the chat mirror down",
        Duration::from_secs(30),
        || async {
            let ready = app.get("/readyz").await;
            if ready.status() != 503 {
                return None;
            }
            let body: Value = ready.json().await.ok()?;
            (body["checks"]["chat_sync"] == "down").then_some(body)
        },
    )
    .await;
    assert_eq!(down["status"], "unavailable", "{down}");
    assert_eq!(down["checks"]["database"], "up", "{down}");
    wait_until(
        "the mirror to restart itself",
        Duration::from_secs(30),
        || async {
            let restarts =
                metric(&app, "wafleet_actor_restarts_total{actor=\"chat_sync\"}").await?;
            (restarts >= 1.0).then_some(())
        },
    )
    .await;
    wait_until(
        "the mirror's queue to fill",
        Duration::from_secs(30),
        || async {
            let queued = metric(&app, "wafleet_chat_queue").await?;
            assert!(queued <= QUEUE_MAX as f64, "queue {queued} over its bound");
            (queued == QUEUE_MAX as f64).then_some(())
        },
    )
    .await;
    assert!(
        metric(&app, "wafleet_chat_failed_batches_total")
            .await
            .unwrap()
            >= 1.0
    );

    lock.release().await;
    let ids = sender.await.unwrap();
    let chat = wait_until(
        "every message to be stored",
        Duration::from_secs(30),
        || async {
            let chat = wafleet::chat::store::get_chat(
                &app.db,
                admin.tenant_id,
                device,
                "60198765432@s.whatsapp.net",
            )
            .await
            .ok()?;
            (chat.unread_count == MESSAGES as i64).then_some(chat)
        },
    )
    .await;
    let stored = wafleet::chat::store::list_messages(
        &app.db,
        chat.id,
        wafleet::chat::store::Only::All,
        None,
        100,
    )
    .await
    .unwrap();
    let mut stored_ids: Vec<String> = stored.iter().map(|m| m.wa_id.clone()).collect();
    stored_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(stored_ids, expected, "each message exactly once");
    wait_until(
        "/readyz to be ready again",
        Duration::from_secs(30),
        || async { (app.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;
}

/// Read receipts whose outbox update fails (a sender holds the outbox past the lock timeout, as
/// in a deadlock with a campaign's sends) are applied again until they land: `/readyz` shows the
/// receipts listener down meanwhile, and every message ends read once the lock goes.
/// PostgreSQL only: SQLite's lock is the whole file, so the mirror would wait with them.
#[actix_web::test]
async fn receipts_held_up_by_a_locked_outbox_land_once_it_frees() {
    const LEADS: usize = 3;
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        eprintln!("skipped: DATABASE_URL is not set");
        return;
    };
    let url = format!("{}?options=-c%20lock_timeout%3D200", database.url);
    // 100x simulated time: delivered after 5 ms, read 5 s later.
    let app = spawn_app_on(
        &database,
        &[
            ("DB_URI", url.as_str()),
            ("WAFLEET__SIM__TIME_SCALE", "100"),
            ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
            ("WAFLEET__SIM__DELIVERED_AFTER_MS", "500"),
            ("WAFLEET__SIM__READ_AFTER_MS", "500000"),
        ],
    )
    .await;
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let list = seed_leads(&app, owner.tenant_id, "Expo", LEADS, 0).await;
    let id = create(
        &owner,
        serde_json::json!({"name": "Launch", "message": "Hi {name}",
                           "target": {"list_ids": [list]}, "pacing": test_pacing()}),
    )
    .await;
    start(&owner, id).await;
    wait_status(&owner, id, "completed").await;
    let count = |p: &Value, status: &str| p["counts"][status].as_u64().unwrap_or(0);
    wait_until(
        "every message to be delivered",
        Duration::from_secs(30),
        || async {
            (count(&progress(&owner, id).await, "delivered") == LEADS as u64).then_some(())
        },
    )
    .await;

    // Reads go on; writes to the outbox wait for the lock and time out.
    let lock = DbLock::take(&database, "outbox", "EXCLUSIVE").await;
    let down = wait_until(
        "/readyz to report the receipts listener down",
        Duration::from_secs(30),
        || async {
            let body: Value = app.get("/readyz").await.json().await.ok()?;
            (body["checks"]["replies"] == "down").then_some(body)
        },
    )
    .await;
    assert_eq!(down["checks"]["chat_sync"], "up", "{down}");
    assert_eq!(count(&progress(&owner, id).await, "read"), 0);

    lock.release().await;
    wait_until(
        "every message to be read",
        Duration::from_secs(30),
        || async { (count(&progress(&owner, id).await, "read") == LEADS as u64).then_some(()) },
    )
    .await;
    wait_until(
        "/readyz to be ready again",
        Duration::from_secs(30),
        || async { (app.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;
}
