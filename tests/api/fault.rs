//! The fault harness: the simulated WhatsApp network runs in its own process (`wafleet sim`),
//! the daemon (`wafleet serve`, `[sim] remote`) is SIGKILLed at random points of a broadcast K
//! times and restarted on the same database, and at the end every lead has exactly one message
//! id, which the simulator delivered exactly once.
//!
//! K is `WAFLEET_FAULT_KILLS` (default 20, the CI form). Run the long form with
//! `WAFLEET_FAULT_KILLS=100 cargo test --release --test api fault -- --nocapture`. Each run
//! prints one JSON summary line (`fault_harness …`). See docs/benchmarks.md.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use wafleet::whatsapp::remote::SimControl;
use wafleet::whatsapp::sim::SimStats;

use crate::campaigns::{
    create, messages, seed_leads_in, start, test_pacing, wait_status, FAST_SIM,
};
use crate::helpers::{
    login_at, settings_with, wait_until, Backend, TestApp, TestDatabase, UserClient, ADMIN_EMAIL,
    ADMIN_PASSWORD,
};

/// Kills in the CI form.
const DEFAULT_KILLS: usize = 20;
/// Devices sending the campaign.
const DEVICES: usize = 10;
/// Leads per planned kill: enough that the campaign is still sending at the last kill (about
/// 200 sends/s at most with 10 devices at 100× time, some 110 sends per kill cycle).
const LEADS_PER_KILL: usize = 120;
/// A per-day cap no run reaches: at 100× a simulated day is 864 s, and the long form sends
/// more than the default 1,000 per device within it. Pacing per send stays at the safe bounds.
const NO_DAY_CAP: &str = "1000000";
/// How long one restart may take to send again and to bring every device back.
const RESTART_WAIT: Duration = Duration::from_secs(30);

#[actix_web::test]
async fn sigkill_during_a_broadcast_loses_and_doubles_nothing_sqlite() {
    harness(Backend::Sqlite).await;
}

#[actix_web::test]
async fn sigkill_during_a_broadcast_loses_and_doubles_nothing_postgres() {
    harness(Backend::Postgres).await;
}

/// The `wafleet` binary with a clean environment and the test's settings.
pub(crate) fn wafleet(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wafleet"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if std::env::var_os("TEST_LOG").is_none() {
        cmd.stderr(Stdio::null());
    }
    cmd
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves none.
pub(crate) struct Process(pub(crate) Child);

impl Process {
    /// SIGKILLs the process and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `wafleet sim` on a free port; returns the process and its `host:port`.
pub(crate) fn spawn_sim(env: &[(String, String)]) -> (Process, String) {
    let mut child = wafleet(env)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let address = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let value: Value = serde_json::from_str(&line).ok()?;
            value["listening"].as_str().map(str::to_owned)
        })
        .expect("wafleet sim prints the address it listens on");
    (process, address)
}

/// Starts `wafleet serve` on `port`.
pub(crate) fn spawn_daemon(env: &[(String, String)], port: u16) -> Process {
    let mut cmd = wafleet(env);
    cmd.args(["serve", "--port", &port.to_string()]);
    if std::env::var_os("TEST_LOG").is_none() {
        cmd.stdout(Stdio::null());
    }
    Process(cmd.spawn().unwrap())
}

/// A port free right now (the daemon keeps it across restarts, so clients need not learn it).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends the simulator has seen: delivered plus refused resends.
fn sends(stats: &SimStats) -> u64 {
    stats.delivered + stats.duplicates
}

/// Median and maximum in milliseconds.
fn p50_max(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let ms = |d: Option<&Duration>| d.map_or(0, |d| d.as_millis());
    json!({"p50_ms": ms(samples.get(samples.len() / 2)), "max_ms": ms(samples.last())})
}

/// Seeds `leads` leads and starts a campaign named `name` to them on every device of `user`'s
/// tenant, at the safe pacing bounds; returns its id.
pub(crate) async fn start_drill(
    db: &wafleet::db::Db,
    user: &UserClient,
    name: &str,
    leads: usize,
    pacing: Value,
) -> i64 {
    let list = seed_leads_in(db, user.tenant_id, name, leads, 0).await;
    let campaign = create(
        user,
        json!({"name": name, "message": "Hello {name}",
               "target": {"list_ids": [list]}, "pacing": pacing}),
    )
    .await;
    start(user, campaign).await;
    campaign
}

/// A broadcast drill: the simulator in its own process, the daemon on a fixed port with
/// [`DEVICES`] devices paired and online, and the admin signed in.
pub(crate) struct Drill {
    /// The daemon's environment (restart it with the same).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) sim: Process,
    pub(crate) control: SimControl,
    pub(crate) port: u16,
    /// `http://127.0.0.1:<port>`.
    pub(crate) address: String,
    pub(crate) daemon: Process,
    pub(crate) admin: UserClient,
    /// The database, straight.
    pub(crate) db: wafleet::db::Db,
    pub(crate) media: tempfile::TempDir,
}

impl Drill {
    /// Starts simulator and daemon on `database`; `extra` settings win over the drill's.
    pub(crate) async fn start(database: &TestDatabase, extra: &[(&str, &str)]) -> Drill {
        let media = tempfile::tempdir().unwrap();
        let media_dir = media.path().display().to_string();
        let filter = if std::env::var_os("TEST_LOG").is_some() {
            "info"
        } else {
            "off"
        };
        let mut env: Vec<(String, String)> = FAST_SIM
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(
            [
                ("DB_URI", database.url.as_str()),
                ("RUST_LOG", filter),
                ("WAFLEET__SERVER__HOST", "127.0.0.1"),
                ("WAFLEET__SERVER__WORKERS", "1"),
                ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
                ("WAFLEET__ADMIN__EMAIL", ADMIN_EMAIL),
                ("WAFLEET__ADMIN__PASSWORD", ADMIN_PASSWORD),
                ("WAFLEET__AUTH__SECURE_COOKIES", "false"),
                ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
                ("WAFLEET__CHAT__MEDIA_DIR", media_dir.as_str()),
                ("WAFLEET__BROADCAST__LIMITS__MAX_PER_DAY", NO_DAY_CAP),
                ("WAFLEET__SIM__MAX_SENDS_PER_DAY", NO_DAY_CAP),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (sim, sim_address) = spawn_sim(&env);
        env.push(("WAFLEET__SIM__REMOTE".into(), sim_address.clone()));
        let control = SimControl::connect(&sim_address).await.unwrap();
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let daemon = spawn_daemon(&env, port);
        wait_until("the daemon to serve", RESTART_WAIT, || async {
            let ready = reqwest::get(format!("{address}/readyz")).await.ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        let admin = login_at(&address, ADMIN_EMAIL, ADMIN_PASSWORD).await;

        // Devices paired over the control connection, leads straight into the database.
        for n in 0..DEVICES {
            let created: Value = admin
                .post("/api/v1/devices", &json!({ "name": format!("Fault {n}") }))
                .await
                .json()
                .await
                .unwrap();
            let id = created["id"].as_i64().unwrap();
            wait_until("pairing to start", RESTART_WAIT, || async {
                control.scan(id).await.ok()
            })
            .await;
        }
        wait_until("every device online", RESTART_WAIT, || {
            online(&control, DEVICES as u64)
        })
        .await;
        let db =
            wafleet::db::Db::connect(&settings_with(&[("DB_URI", database.url.as_str())]).database)
                .await
                .unwrap();
        Drill {
            env,
            sim,
            control,
            port,
            address,
            daemon,
            admin,
            db,
            media,
        }
    }
}

/// The safe pacing bounds without a day cap (drills outrun a simulated day).
pub(crate) fn drill_pacing() -> Value {
    let mut pacing = test_pacing();
    pacing["per_day"] = json!(NO_DAY_CAP.parse::<u64>().unwrap());
    pacing
}

/// The simulator's figures once exactly `want` devices are online.
pub(crate) async fn online(control: &SimControl, want: u64) -> Option<SimStats> {
    let stats = control.stats().await.ok()?;
    (stats.online == want).then_some(stats)
}

async fn harness(backend: Backend) {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(database) = TestDatabase::create(backend).await else {
        eprintln!("skipped the fault harness on postgres: DATABASE_URL is not set");
        return;
    };
    let kills: usize = std::env::var("WAFLEET_FAULT_KILLS")
        .ok()
        .map(|k| k.parse().expect("WAFLEET_FAULT_KILLS is a number"))
        .unwrap_or(DEFAULT_KILLS);
    let leads = kills.max(1) * LEADS_PER_KILL;
    let Drill {
        env,
        sim: _sim,
        control,
        port,
        address,
        mut daemon,
        admin,
        db,
        media: _media,
    } = Drill::start(&database, &[("WAFLEET__BROADCAST__LEASE_SECS", "1")]).await;
    let campaign = start_drill(&db, &admin, "Fault drill", leads, drill_pacing()).await;

    // Kill, restart, measure; K times.
    let mut rng = rand::rng();
    let mut first_send = Vec::new();
    let mut all_online = Vec::new();
    let mut done_kills = 0;
    for _ in 0..kills {
        let sending = Duration::from_millis(rng.random_range(100..=600));
        tokio::time::sleep(sending).await;
        if control.stats().await.unwrap().delivered as usize >= leads {
            break; // Nothing left in flight to disturb.
        }
        daemon.kill();
        done_kills += 1;
        // The simulator sees the connections drop, as WhatsApp sees a vanished client.
        wait_until("the simulator to see the daemon gone", RESTART_WAIT, || {
            online(&control, 0)
        })
        .await;
        let at_kill = sends(&control.stats().await.unwrap());
        let restarted = Instant::now();
        daemon = spawn_daemon(&env, port);
        let (mut sent_again, mut back_online) = (None, None);
        while sent_again.is_none() || back_online.is_none() {
            assert!(
                restarted.elapsed() < RESTART_WAIT,
                "restart: no send or not all online after {RESTART_WAIT:?}"
            );
            let stats = control.stats().await.unwrap();
            if sent_again.is_none() && sends(&stats) > at_kill {
                sent_again = Some(restarted.elapsed());
            }
            if back_online.is_none() && stats.online == DEVICES as u64 {
                back_online = Some(restarted.elapsed());
            }
            if stats.delivered as usize >= leads && back_online.is_some() {
                break; // Finished: no further send to wait for.
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first_send.extend(sent_again);
        all_online.extend(back_online);
    }

    // The campaign completes; each lead has one row, its id delivered once.
    let admin = login_at(&address, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    wait_status(&admin, campaign, "completed").await;
    let rows = messages(&admin, campaign).await;
    let stats = control.stats().await.unwrap();
    let delivered = control.delivered_ids().await.unwrap();
    let phones: HashSet<&str> = rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    let ids: HashSet<&str> = rows
        .iter()
        .map(|r| r["message_id"].as_str().unwrap())
        .collect();
    let lost = ids.iter().filter(|id| !delivered.contains(**id)).count();
    let summary = json!({
        "fault_harness": database.url.split(':').next(),
        "kills": done_kills,
        "devices": DEVICES,
        "leads": leads,
        "rows": rows.len(),
        "lost": lost,
        "extra_delivered": stats.delivered as i64 - leads as i64,
        "resends": stats.duplicates,
        "violations": stats.violations,
        "violation_kinds": {
            "min_gap": stats.min_gap_violations,
            "per_minute": stats.per_minute_violations,
            "per_day": stats.per_day_violations,
        },
        "time_to_first_send": p50_max(&mut first_send),
        "time_to_all_online": p50_max(&mut all_online),
    });
    println!("{summary}");
    assert!(
        done_kills > 0,
        "the campaign ended before the first kill: {summary}"
    );
    assert_eq!(rows.len(), leads, "one row per lead: {summary}");
    assert_eq!(phones.len(), leads, "no lead has two rows: {summary}");
    assert_eq!(ids.len(), leads, "no two rows share an id: {summary}");
    for row in &rows {
        let status = row["status"].as_str().unwrap();
        assert!(["sent", "delivered", "read"].contains(&status), "{row}");
    }
    assert_eq!(lost, 0, "{summary}");
    // A restarted daemon rebuilds each device's pacing from the outbox: sends whose receipt
    // beat the sender's own record, and the send in flight at the kill, count too.
    assert_eq!(
        stats.violations, 0,
        "pacing held across the kills: {summary}"
    );
    // The send in flight at a kill counts as sent when the restarted daemon seeds its pacing.
    assert_eq!(
        stats.violations, 0,
        "pacing held across the kills: {summary}"
    );
    assert_eq!(
        stats.delivered as usize, leads,
        "0 lost, 0 extra: {summary}"
    );
    assert!(
        stats.duplicates <= (DEVICES * done_kills) as u64,
        "at most one in-flight resend per device per kill: {summary}"
    );
    drop(daemon);
}

/// How long the database is unavailable in the outage drill.
const OUTAGE: Duration = Duration::from_secs(10);

crate::both_backends!(with super::FAST_SIM; a_database_outage_pauses_sending_and_it_resumes);

/// A database outage for the daemon: on SQLite another connection holds the write lock
/// (`BEGIN EXCLUSIVE`, so every writer is busy); on PostgreSQL the database refuses new
/// connections and its open ones are terminated.
enum Outage {
    Sqlite(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>),
    Postgres { admin_url: String, name: String },
}

impl Outage {
    async fn begin(database_url: &str) -> Outage {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        if let Some(path) = database_url.strip_prefix("sqlite://") {
            let path = path.to_owned();
            let (locked, is_locked) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
                // Queue behind the daemon's writers for a moment each try.
                conn.batch_execute("PRAGMA busy_timeout = 1000").unwrap();
                // The daemon's writers hold the lock in turns; SQLite may answer `BUSY` at
                // once (no busy wait when another writer is mid-transaction), so try again.
                let deadline = Instant::now() + Duration::from_secs(60);
                while let Err(err) = conn.batch_execute("BEGIN EXCLUSIVE") {
                    assert!(Instant::now() < deadline, "cannot lock the database: {err}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                locked.send(()).unwrap();
                let _ = released.recv();
                conn.batch_execute("COMMIT").unwrap();
            });
            is_locked.recv().unwrap();
            return Outage::Sqlite(release, holder);
        }
        let admin_url = std::env::var("DATABASE_URL").unwrap();
        let name = url::Url::parse(database_url)
            .unwrap()
            .path()
            .trim_start_matches('/')
            .to_owned();
        // Two round trips: in one, both statements share a transaction, and connections made
        // before it commits would survive the outage.
        let refuse = format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false");
        Self::postgres(&admin_url, &refuse).await;
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        );
        Self::postgres(&admin_url, &terminate).await;
        Outage::Postgres { admin_url, name }
    }

    /// Runs `sql` as the server's admin (outside the test database).
    async fn postgres(admin_url: &str, sql: &str) {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = diesel_async::AsyncPgConnection::establish(admin_url)
            .await
            .unwrap();
        conn.batch_execute(sql).await.unwrap();
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(release, holder) => {
                release.send(()).unwrap();
                tokio::task::spawn_blocking(move || holder.join().unwrap())
                    .await
                    .unwrap();
            }
            Outage::Postgres { admin_url, name } => {
                Self::postgres(
                    &admin_url,
                    &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
                )
                .await;
            }
        }
    }
}

/// Mid-campaign, the database goes away for 10 s and comes back: sending pauses (at the
/// latest when the lanes' next claim fails) and resumes by itself; the campaign completes with
/// every lead reached once. Prints how long sending went on, and how long resuming took.
async fn a_database_outage_pauses_sending_and_it_resumes(app: TestApp) {
    use secrecy::ExposeSecret;
    let sqlite = app
        .settings
        .database
        .url
        .expose_secret()
        .starts_with("sqlite");
    if sqlite && std::env::var_os("WAFLEET_FAULT_SQLITE_OUTAGE").is_none() {
        // Taking SQLite's write lock from outside can starve behind the daemon's writers on a
        // loaded 2-core machine (the lock is not fair), which makes the drill flaky in CI.
        eprintln!("skipped the SQLite outage drill: set WAFLEET_FAULT_SQLITE_OUTAGE=1 to run it");
        return;
    }
    let _heavy = crate::helpers::heavy_test().await;
    let admin = app.admin().await;
    for n in 0..4 {
        app.paired_device(&admin, &format!("Outage {n}")).await;
    }
    let leads = 1500;
    let campaign = start_drill(&app.db, &admin, "Outage drill", leads, test_pacing()).await;
    let sim = app.state.fleet.sim.clone().unwrap();
    wait_until("sending to start", RESTART_WAIT, || async {
        (sim.stats().delivered >= 100).then_some(())
    })
    .await;

    let outage = Outage::begin(app.settings.database.url.expose_secret()).await;
    let began = Instant::now();
    let at_begin = sim.stats().delivered;
    let (mut last, mut last_send) = (at_begin, Duration::ZERO);
    while began.elapsed() < OUTAGE {
        let delivered = sim.stats().delivered;
        if delivered != last {
            (last, last_send) = (delivered, began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    outage.end().await;
    let ended = Instant::now();
    let at_end = sim.stats().delivered;
    let resumed = if at_end as usize >= leads {
        Duration::ZERO
    } else {
        wait_until("sending to resume", Duration::from_secs(60), || async {
            (sim.stats().delivered > at_end).then(|| ended.elapsed())
        })
        .await
    };

    let done = wait_status(&admin, campaign, "completed").await;
    let rows = messages(&admin, campaign).await;
    let delivered = sim.delivered_ids();
    let stats = sim.stats();
    let summary = json!({
        "outage_drill": app.db.backend_name(),
        "outage_ms": OUTAGE.as_millis(),
        "sent_during_outage": at_end - at_begin,
        "last_send_after_ms": last_send.as_millis(),
        "resumed_after_ms": resumed.as_millis(),
        "leads": leads,
        "resends": stats.duplicates,
        "progress": done["counts"],
    });
    println!("{summary}");
    let phones: HashSet<&str> = rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    assert_eq!(phones.len(), leads, "{summary}");
    for row in &rows {
        assert!(
            delivered.contains(row["message_id"].as_str().unwrap()),
            "{row}"
        );
    }
    assert_eq!(stats.delivered as usize, leads, "{summary}");
}
