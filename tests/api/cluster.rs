//! Several daemons sharing one fleet on PostgreSQL: kills with failover (the cluster
//! benchmark's CI form), balancing, drains and command forwarding between real daemon processes,
//! fencing of a node that lost a device's lease (outbox and session store), and the single-node
//! answers on SQLite.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};
use wafleet::broadcast::outbox::model::OutboxStatus;
use wafleet::broadcast::outbox::store as outbox;
use wafleet::db::{Db, DbError, Fence};
use wafleet::whatsapp::real::store::WaStore;
use wafleet::whatsapp::remote::SimControl;
use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::{ProtocolStore, SignalStore};

use crate::campaigns::{create, messages, seed_leads_in, start, test_pacing};
use crate::fault::{free_port, spawn_daemon, spawn_sim, wafleet, Process};
use crate::helpers::{
    login_at, spawn_app, wait_until, Backend, TestDatabase, UserClient, ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// Lease and heartbeat of the test clusters: a dead node's devices move within seconds.
const FAST_LEASES: &[(&str, &str)] = &[
    ("WAFLEET__CLUSTER__LEASE_SECS", "12"),
    ("WAFLEET__CLUSTER__HEARTBEAT_SECS", "3"),
];
/// Longest wait for devices to settle on their nodes.
const SETTLE: Duration = Duration::from_secs(90);

/// The cluster benchmark in its CI form: 3 nodes, 300 devices, a campaign, 3 SIGKILLs (lease
/// 12 s, heartbeat 3 s: a node stops its devices 9 s after its last renewal).
#[actix_web::test]
async fn three_nodes_lose_and_double_nothing_across_three_kills() {
    let _heavy = crate::helpers::heavy_test().await;
    let Ok(server) = std::env::var("DATABASE_URL") else {
        eprintln!("skipped the cluster benchmark: DATABASE_URL is not set");
        return;
    };
    let env: Vec<(String, String)> = FAST_LEASES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let output = wafleet(&env)
        .args(["bench", "cluster", "--nodes", "3", "--devices", "300"])
        .args(["--messages", "3000", "--kills", "3", "--db", &server])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
    println!("{report}");
    assert!(output.status.success(), "{report}");
    assert_eq!(report["campaign_completed"], true, "{report}");
    assert_eq!(report["rows"], 3000, "{report}");
    for figure in [
        "lost",
        "duplicate_message_ids",
        "extra_delivered",
        "pacing_violations",
    ] {
        assert_eq!(report[figure], 0, "{figure}: {report}");
    }
    assert_eq!(report["double_sessions"], 0, "{report}");
    let failovers = report["failovers"].as_array().unwrap();
    assert_eq!(failovers.len(), 3, "{report}");
    for failover in failovers {
        assert!(failover["devices"].as_i64().unwrap() > 0, "{report}");
        assert!(failover["seconds"].as_f64().unwrap() <= 30.0, "{report}");
    }
}

/// Two daemon processes on one database and simulator.
struct Pair {
    _sim: Process,
    control: SimControl,
    nodes: Vec<(Process, String)>,
    admin: UserClient,
    db: Db,
    _media: tempfile::TempDir,
}

/// Where `libfaketime` lives (Debian package `faketime`); the pair's nodes run with skewed
/// clocks through it.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The clock skew of each node of a [`Pair`]: node 0 runs 5 s behind, node 1 5 s ahead, so a
/// lease decision made on a node's own clock would let node 1 take node 0's devices early.
const SKEWS: [&str; 2] = ["-5s", "+5s"];

impl Pair {
    /// Two nodes; node 0 reaches the database at `node_0_db` when given (a [`Gate`]).
    async fn start(database: &TestDatabase, node_0_db: Option<String>) -> Pair {
        assert!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "the cluster drills need {LIBFAKETIME} (Debian package faketime; .ci/run installs it)"
        );
        let media = tempfile::tempdir().unwrap();
        let log = if std::env::var_os("TEST_LOG").is_some() {
            "info"
        } else {
            "warn"
        };
        let mut env: Vec<(String, String)> = [
            ("DB_URI", database.url.as_str()),
            ("RUST_LOG", log),
            ("WAFLEET__SERVER__HOST", "127.0.0.1"),
            ("WAFLEET__SERVER__WORKERS", "1"),
            ("WAFLEET__ADMIN__EMAIL", ADMIN_EMAIL),
            ("WAFLEET__ADMIN__PASSWORD", ADMIN_PASSWORD),
            ("WAFLEET__AUTH__SECURE_COOKIES", "false"),
            ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
            ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
            (
                "WAFLEET__CHAT__MEDIA_DIR",
                &media.path().display().to_string(),
            ),
        ]
        .iter()
        .chain(FAST_LEASES)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (sim, sim_address) = spawn_sim(&env);
        env.push(("WAFLEET__SIM__REMOTE".into(), sim_address.clone()));
        let control = SimControl::connect(&sim_address).await.unwrap();
        let mut nodes = Vec::new();
        for (n, skew) in SKEWS.iter().enumerate() {
            let port = free_port();
            let mut node_env = env.clone();
            node_env.push(("WAFLEET__CLUSTER__NODE_ID".into(), format!("node-{n}")));
            node_env.push(("LD_PRELOAD".into(), LIBFAKETIME.into()));
            node_env.push(("FAKETIME".into(), (*skew).into()));
            node_env.push(("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()));
            if let (0, Some(url)) = (n, &node_0_db) {
                node_env.push(("DB_URI".into(), url.clone()));
            }
            let process = spawn_daemon(&node_env, port);
            let address = format!("http://127.0.0.1:{port}");
            wait_until("a node to serve", SETTLE, || async {
                let ready = reqwest::get(format!("{address}/readyz")).await.ok()?;
                ready.status().is_success().then_some(())
            })
            .await;
            nodes.push((process, address));
        }
        let admin = login_at(&nodes[0].1, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let settings = crate::helpers::settings_with(&[("DB_URI", database.url.as_str())]);
        let db = Db::connect(&settings.database).await.unwrap();
        Pair {
            _sim: sim,
            control,
            nodes,
            admin,
            db,
            _media: media,
        }
    }

    /// Devices each node runs, by node name, as `GET /admin/nodes` on `node` tells.
    async fn loads(&self, node: usize) -> Vec<(String, i64)> {
        let admin = login_at(&self.nodes[node].1, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let nodes: Value = admin.get("/api/v1/admin/nodes").await.json().await.unwrap();
        nodes
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["live"] == true)
            .map(|n| {
                (
                    n["id"].as_str().unwrap().to_owned(),
                    n["devices"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    async fn online(&self) -> u64 {
        self.control.stats().await.unwrap().online
    }

    /// Creates `n` devices through node 0 (so they first run there), each paired at once.
    async fn create_devices(&self, n: usize) -> Vec<i64> {
        let mut devices = Vec::new();
        for k in 0..n {
            let body = json!({ "name": format!("Cluster {k}") });
            let created: Value = self
                .admin
                .post("/api/v1/devices", &body)
                .await
                .json()
                .await
                .unwrap();
            let id = created["id"].as_i64().unwrap();
            wait_until("pairing to start", SETTLE, || async {
                self.control.scan(id).await.ok()
            })
            .await;
            devices.push(id);
        }
        devices
    }

    /// Waits until both nodes are live with half of the `total` devices each, every device
    /// online once.
    async fn wait_even(&self, total: i64) {
        wait_until("the nodes to share the devices evenly", SETTLE, || async {
            let loads = self.loads(1).await;
            let even = loads.len() == 2 && loads.iter().all(|(_, n)| *n == total / 2);
            (even && self.online().await == total as u64).then_some(())
        })
        .await;
    }
}

#[derive(diesel::QueryableByName)]
struct Lease {
    #[diesel(sql_type = Text)]
    node_id: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// The live lease of `device`.
async fn lease_of(db: &Db, device: i64) -> Option<Lease> {
    let Db::Postgres(pool) = db else {
        panic!("leases live on PostgreSQL")
    };
    let mut conn = pool.get().await.unwrap();
    let rows: Vec<Lease> = diesel::sql_query(
        "SELECT node_id, epoch FROM device_leases WHERE device_id = $1 AND expires_at > now()",
    )
    .bind::<BigInt, _>(device)
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().next()
}

/// The fence of `device`'s live lease.
async fn fence_of(db: &Db, device: i64) -> Fence {
    let lease = lease_of(db, device).await.expect("the device's lease");
    Fence {
        device_id: device,
        node_id: lease.node_id.into(),
        epoch: lease.epoch,
    }
}

/// Another node takes `device` over: its lease gets a new holder and epoch.
async fn steal(db: &Db, device: i64) {
    let Db::Postgres(pool) = db else {
        panic!("leases live on PostgreSQL")
    };
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query(
        "UPDATE device_leases SET node_id = 'thief', epoch = epoch + 1000 WHERE device_id = $1",
    )
    .bind::<BigInt, _>(device)
    .execute(&mut conn)
    .await
    .unwrap();
}

#[actix_web::test]
async fn nodes_balance_forward_commands_and_a_drain_moves_every_device_once() {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        eprintln!("skipped the cluster drill: DATABASE_URL is not set");
        return;
    };
    let pair = Pair::start(&database, None).await;
    // Ten devices created (and so first run) on node 0; node 1 takes its share by hand-overs.
    let devices = pair.create_devices(10).await;
    pair.wait_even(10).await;

    // A command for a device of node 0, sent to node 1, reaches the device.
    let mut on_node_0 = None;
    for id in &devices {
        if lease_of(&pair.db, *id)
            .await
            .is_some_and(|l| l.node_id == "node-0")
        {
            on_node_0 = Some(*id);
        }
    }
    let device = on_node_0.expect("node 0 runs some devices");
    let other = login_at(&pair.nodes[1].1, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let delivered = pair.control.stats().await.unwrap().delivered;
    let sent = other
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": "60123456789", "text": "across nodes"}),
        )
        .await;
    assert_eq!(sent.status(), 202, "{}", sent.text().await.unwrap());
    wait_until("the forwarded send to be delivered", SETTLE, || async {
        (pair.control.stats().await.ok()?.delivered > delivered).then_some(())
    })
    .await;
    // The device's live state comes from the node that runs it.
    let view: Value = other
        .get(&format!("/api/v1/devices/{device}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["live"]["status"], "online", "{view}");
    // An operator's restart of all ten, asked of node 1, restarts each on the node running it.
    let restarted: Value = other
        .post("/api/v1/admin/devices/restart", &json!({ "ids": devices }))
        .await
        .json()
        .await
        .unwrap();
    let mut expected = devices.clone();
    expected.sort_unstable();
    assert_eq!(restarted["restarted"], json!(expected), "{restarted}");
    assert_eq!(restarted["unknown"], json!([]), "{restarted}");
    wait_until(
        "the restarted devices to be back online",
        SETTLE,
        || async { (pair.online().await == 10).then_some(()) },
    )
    .await;

    // Draining node 0 (asked of node 1) moves every device to node 1, none twice at once.
    let drained = other
        .post("/api/v1/admin/nodes/node-0/drain", &json!({}))
        .await;
    assert_eq!(drained.status(), 202);
    wait_until("node 0 to hand every device over", SETTLE, || async {
        let loads = pair.loads(1).await;
        let moved =
            loads.contains(&("node-1".to_owned(), 10)) && loads.contains(&("node-0".to_owned(), 0));
        (moved && pair.online().await == 10).then_some(())
    })
    .await;
    let stats = pair.control.stats().await.unwrap();
    assert_eq!(stats.double_sessions, 0, "{stats:?}");
    let unknown = other
        .post("/api/v1/admin/nodes/nowhere/drain", &json!({}))
        .await;
    assert_eq!(unknown.status(), 404);
    drop(pair.nodes);
}

/// A TCP gate in front of PostgreSQL for one node: open, it forwards; shut, it goes silent both
/// ways and holds new connections unanswered (a partition, not a refusal); reopened, it closes
/// the connections it silenced and forwards new ones.
struct Gate {
    address: std::net::SocketAddr,
    state: tokio::sync::watch::Sender<(u64, bool)>,
}

impl Gate {
    async fn start(target: String) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (state, _) = tokio::sync::watch::channel((0_u64, true));
        let states = state.clone();
        actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mut watch, target) = (states.subscribe(), target.clone());
                actix_web::rt::spawn(async move {
                    let Ok(&(generation, _)) = watch.wait_for(|(_, open)| *open).await.as_deref()
                    else {
                        return;
                    };
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let ((client_in, client_out), (server_in, server_out)) =
                        (client.into_split(), server.into_split());
                    let up = Gate::pump(client_in, server_out, watch.clone(), generation);
                    let down = Gate::pump(server_in, client_out, watch, generation);
                    futures_util::future::select(Box::pin(up), Box::pin(down)).await;
                });
            }
        });
        Gate { address, state }
    }

    /// Copies `from` to `to` while the gate is open; holds still while it is shut; returns
    /// (closing both) once it reopens for a later generation.
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut watch: tokio::sync::watch::Receiver<(u64, bool)>,
        generation: u64,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let Ok(state) = watch.wait_for(|(_, open)| *open).await.map(|s| *s) else {
                return;
            };
            if state.0 != generation {
                return;
            }
            tokio::select! {
                read = from.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                },
                _ = watch.changed() => {}
            }
        }
    }

    /// `url` with its host and port pointed at the gate.
    fn url_for(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).unwrap();
        url.set_ip_host(self.address.ip()).unwrap();
        url.set_port(Some(self.address.port())).unwrap();
        url.to_string()
    }

    fn shut(&self) {
        self.state.send_modify(|(_, open)| *open = false);
    }

    fn reopen(&self) {
        self.state.send_modify(|(generation, open)| {
            *generation += 1;
            *open = true;
        });
    }
}

/// Seconds until the last of `node`'s device leases expires, by the database's clock (negative
/// once all have).
async fn lease_time_left(db: &Db, node: &str) -> f64 {
    #[derive(diesel::QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::Double)]
        seconds: f64,
    }
    let Db::Postgres(pool) = db else {
        panic!("leases live on PostgreSQL")
    };
    let mut conn = pool.get().await.unwrap();
    let rows: Vec<Left> = diesel::sql_query(
        "SELECT COALESCE(EXTRACT(EPOCH FROM MAX(expires_at) - now()), -1)::float8 AS seconds \
         FROM device_leases WHERE node_id = $1",
    )
    .bind::<Text, _>(node)
    .load(&mut conn)
    .await
    .unwrap();
    rows[0].seconds
}

/// Host and port of a database URL.
fn host_port(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

/// A node cut off from PostgreSQL stops its devices before its leases expire (by the database's
/// clock), the other node takes them over with no device connected twice, and the cut-off node
/// rejoins once it reaches the database again. Node 0 runs 5 s slow and node 1 5 s fast.
#[actix_web::test]
async fn a_node_cut_off_from_postgres_stops_its_devices_before_its_leases_expire() {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        eprintln!("skipped the partition drill: DATABASE_URL is not set");
        return;
    };
    let gate = Gate::start(host_port(&database.url)).await;
    let pair = Pair::start(&database, Some(gate.url_for(&database.url))).await;
    pair.create_devices(6).await;
    pair.wait_even(6).await;

    // Cut node 0 off; the latest moment its leases may still count, by the database's clock.
    gate.shut();
    assert!(
        lease_time_left(&pair.db, "node-0").await > 0.0,
        "node 0 holds leases at the cut"
    );
    // Its three devices go offline while their leases still run.
    wait_until("node 0 to stop its devices", SETTLE, || async {
        (pair.online().await <= 3).then_some(())
    })
    .await;
    let margin = lease_time_left(&pair.db, "node-0").await;
    println!("node 0 stopped its devices {margin:.1} s before its leases expired");
    assert!(
        margin > 0.0,
        "node 0 stopped its devices {:.1} s after its leases expired",
        -margin
    );
    // Node 1 takes them over; nothing ever runs twice.
    wait_until("node 1 to run every device", SETTLE, || async {
        let loads = pair.loads(1).await;
        (loads == [("node-1".to_owned(), 6)] && pair.online().await == 6).then_some(())
    })
    .await;
    // Node 0 reaches the database again and takes its share back by hand-overs.
    gate.reopen();
    pair.wait_even(6).await;
    let stats = pair.control.stats().await.unwrap();
    assert_eq!(stats.double_sessions, 0, "{stats:?}");
    drop(pair.nodes);
}

/// A node that lost a device's lease can neither claim nor finish the device's outbox rows:
/// the rows stay for the new owner, which re-sends them under the same ids.
#[actix_web::test]
async fn a_node_that_lost_a_lease_cannot_claim_or_finish_the_devices_rows() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped the fencing test: DATABASE_URL is not set");
        return;
    };
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "Fenced").await;
    let list = seed_leads_in(&app.db, admin.tenant_id, "Fenced", 20, 0).await;
    let campaign = create(
        &admin,
        json!({"name": "Fenced", "message": "Hi {name}", "target": {"list_ids": [list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(&admin, campaign).await;
    let paused = admin
        .post(&format!("/api/v1/campaigns/{campaign}/pause"), &json!({}))
        .await;
    assert_eq!(paused.status(), 200);
    let fence = fence_of(&app.db, device).await;
    let now = chrono::Utc::now().naive_utc();
    let until = now + chrono::Duration::seconds(60);
    // Holding the lease: one row claimed and finished.
    let claimed = outbox::claim(&app.db, campaign, device, 1, now, until, Some(&fence))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let finished = outbox::finish(
        &app.db,
        &[claimed[0].id],
        OutboxStatus::Sent,
        None,
        Some(&fence),
    )
    .await
    .unwrap();
    assert_eq!(finished, 1);
    let second = outbox::claim(&app.db, campaign, device, 1, now, until, Some(&fence))
        .await
        .unwrap();
    steal(&app.db, device).await;
    let refused = outbox::claim(&app.db, campaign, device, 1, now, until, Some(&fence)).await;
    assert!(
        matches!(refused, Err(DbError::LeaseLost(id)) if id == device),
        "{refused:?}"
    );
    let refused = outbox::finish(
        &app.db,
        &[second[0].id],
        OutboxStatus::Sent,
        None,
        Some(&fence),
    )
    .await;
    assert!(matches!(refused, Err(DbError::LeaseLost(_))), "{refused:?}");
    let row = messages(&admin, campaign)
        .await
        .into_iter()
        .find(|r| r["message_id"] == second[0].message_id.as_str())
        .unwrap();
    assert_eq!(row["status"], "sending", "{row}");
}

/// A node that lost a device's lease cannot write the device's WhatsApp session store (single
/// writes, batches, deletes, takes): the keys and sessions the new owner uses stay as they were.
#[actix_web::test]
async fn a_node_that_lost_a_lease_cannot_write_the_devices_session_store() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped the store fencing test: DATABASE_URL is not set");
        return;
    };
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "Fenced store").await;
    let store = WaStore::new(app.db.clone(), device).fenced(Some(fence_of(&app.db, device).await));
    let peer = "60111222333@s.whatsapp.net";
    // Holding the lease: every kind of write lands.
    store.put_identity(peer, [1; 32]).await.unwrap();
    let sessions = [(peer.into(), b"session one".to_vec().into())];
    store.put_sessions_batch(&sessions).await.unwrap();
    store
        .store_sent_message(peer, "M1", b"payload")
        .await
        .unwrap();
    store
        .store_sent_message(peer, "M2", b"payload")
        .await
        .unwrap();
    let taken = store.take_sent_message(peer, "M1").await.unwrap();
    assert_eq!(taken.as_deref(), Some(&b"payload"[..]));

    steal(&app.db, device).await;
    let lost = |result: Result<(), StoreError>| match result {
        Err(StoreError::Database(err)) => {
            matches!(err.downcast_ref::<DbError>(), Some(DbError::LeaseLost(id)) if *id == device)
        }
        _ => false,
    };
    assert!(lost(store.put_identity(peer, [2; 32]).await));
    let sessions = [(peer.into(), b"session two".to_vec().into())];
    assert!(lost(store.put_sessions_batch(&sessions).await));
    assert!(lost(store.delete_identity(peer).await));
    assert!(lost(store.take_sent_message(peer, "M2").await.map(|_| ())));
    // Reads still answer, and nothing changed.
    assert_eq!(store.load_identity(peer).await.unwrap(), Some([1; 32]));
    let session = store.get_session(peer).await.unwrap().unwrap();
    assert_eq!(&session[..], b"session one");
    let unfenced = WaStore::new(app.db.clone(), device);
    let kept = unfenced.take_sent_message(peer, "M2").await.unwrap();
    assert_eq!(kept.as_deref(), Some(&b"payload"[..]));
}

#[actix_web::test]
async fn a_single_sqlite_daemon_has_no_nodes() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let admin = app.admin().await;
    for answer in [
        admin.get("/api/v1/admin/nodes").await,
        admin
            .post("/api/v1/admin/nodes/any/drain", &json!({}))
            .await,
    ] {
        assert_eq!(answer.status(), 409);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "single_node", "{body}");
    }
}
