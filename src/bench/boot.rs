//! `wafleet bench boot`: N paired devices stored in the database, the daemon started on it, time
//! until every device is online again, and the memory that costs.
//!
//! The simulator keeps its accounts in memory, so a stored device's JID is unknown to a fresh
//! network: each device connects through the admission queue, gets a QR code, and the simulator
//! scans it by itself (`sim.auto_scan_after_ms`), linking a new account. One device, one full
//! handshake (connect, pairing, login, status persisted), as in the integration test
//! `boots_3000_devices_to_online`. The admission queue keeps its defaults
//! (`fleet.connects_per_second`, `fleet.max_connects_in_flight`), so the figure is what a
//! production daemon does; the report gives the bound they set. "Online" is judged by the
//! simulator (sessions logged in) together with the supervisor's boot progress (every boot
//! device settled), since the supervisor counts a device stored as `online` as online before it
//! has connected.
//!
//! Memory is the process's RSS before the daemon starts, when every device is online, and after
//! [`SETTLE`] of idling; per device it is the growth divided by N, so it includes the daemon's
//! fixed cost (HTTP workers, pools, arbiters) and is an upper bound of the per-device cost. The
//! marginal cost is measured too: the same run with half the devices, in a process of its own
//! (freed memory is not given back, so one process cannot measure both), and the slope between
//! the two idle growths: (growth at N − growth at N/2) ÷ (N − N/2).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::report::{self, round, Memory, Target};
use super::RunningApp;
use crate::cli::BenchArgs;
use crate::db::Db;
use crate::device::messages::GetSupervision;
use crate::device::model::DeviceStatusPatch;
use crate::device::{store, DeviceStatus};

/// Idle time after all-online before the idle memory is read.
const SETTLE: Duration = Duration::from_secs(5);
/// How often supervision is polled while waiting.
const POLL: Duration = Duration::from_millis(25);
/// Giving up: far beyond the 60 s target and the admission bound of the default settings.
const TIMEOUT: Duration = Duration::from_secs(600);
/// Devices written concurrently while seeding (SQLite has one writer anyway).
const SEED_CONCURRENCY: usize = 4;
/// Issue 11: 3,000 devices online within this many seconds.
const TARGET_SECONDS: f64 = 60.0;
/// Issue 19: every device online within the admission queue's bound plus this share of it.
const ADMISSION_SLACK: f64 = 0.10;
/// Issue 11: at most this much RSS per idle simulated device.
const TARGET_KIB_PER_DEVICE: f64 = 8.0;
/// Issue 19: at most this much more RSS per added idle simulated device.
const TARGET_MARGINAL_KIB: f64 = 6.0;
/// Set in the process that measures the half run, so it does not start one of its own.
const HALF_RUN: &str = "WAFLEET_BENCH_BOOT_HALF_RUN";

/// Settings of the boot run besides the defaults: pending pairings are scanned 5 ms after their
/// QR, which never rotates, and contacts stay silent.
const SETTINGS: &[(&str, &str)] = &[
    ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "5"),
    ("WAFLEET__SIM__QR_ROTATE_MS", "0"),
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
];

/// Runs the scenario with `--devices` (and `--db`) and returns its figures.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let devices = args.devices;
    let half = match std::env::var_os(HALF_RUN) {
        None if devices >= 2 => Some(half_run(args).await?),
        _ => None,
    };
    let mut report = super::with_database(args, |url| measure(url, devices)).await?;
    if let Some(half) = half {
        add_slope(&mut report, &half, devices)?;
    }
    Ok(report)
}

/// The boot time goal: the admission queue's bound plus [`ADMISSION_SLACK`], and never more
/// than [`TARGET_SECONDS`] for up to 3,000 devices.
fn boot_goal(devices: u32, fleet: &crate::config::FleetSettings) -> f64 {
    let bound = f64::from(devices) / fleet.connects_per_second * (1.0 + ADMISSION_SLACK);
    if devices <= 3000 {
        bound.min(TARGET_SECONDS)
    } else {
        bound
    }
}

/// This benchmark with half the devices, in a child process; its report.
async fn half_run(args: &BenchArgs) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "bench",
        "boot",
        "--devices",
        &(args.devices / 2).to_string(),
    ])
    .env(HALF_RUN, "1")
    .stdin(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    if let Some(db) = &args.db {
        cmd.args(["--db", db.expose_secret()]);
    }
    let output = actix_web::rt::task::spawn_blocking(move || cmd.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "the half run failed ({})",
        output.status
    );
    serde_json::from_slice(&output.stdout).context("the half run printed no report")
}

/// Adds the marginal idle RSS per device between the half run and this one, with its target.
fn add_slope(report: &mut Value, half: &Value, devices: u32) -> anyhow::Result<()> {
    let growth = |r: &Value| -> anyhow::Result<f64> {
        let (idle, before) = (r["rss_idle_kib"].as_f64(), r["rss_before_kib"].as_f64());
        idle.zip(before)
            .map(|(idle, before)| idle - before)
            .context("a report without its memory figures")
    };
    let added = f64::from(devices - devices / 2);
    let slope = round((growth(report)? - growth(half)?) / added, 2);
    report["half_run"] = json!({
        "devices": devices / 2,
        "seconds_to_all_online": half["seconds_to_all_online"],
        "idle_rss_per_device_kib": half["idle_rss_per_device_kib"],
    });
    report["idle_rss_marginal_kib_per_device"] = json!(slope);
    report["targets"]["idle_rss_marginal_kib_per_device"] =
        json!(Target::at_most(slope, TARGET_MARGINAL_KIB));
    Ok(())
}

/// Seeds, starts, waits for all online, settles, and reports.
async fn measure(database_url: String, devices: u32) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, SETTINGS)?;
    let seeding = Instant::now();
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    seed(&db, tenant_id, devices).await?;
    drop(db);
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let fleet = settings.fleet.clone();
    let before = Memory::probe()?;
    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let app = RunningApp::start(settings).await?;
    wait_all_online(&app, devices).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    let online = Memory::probe()?;
    actix_web::rt::time::sleep(SETTLE).await;
    let idle = Memory::probe()?;
    // Read again after settling: the boot's finishing time is recorded on the supervisor's tick.
    let snapshot = app.state.fleet.supervisor.send(GetSupervision).await?;
    let sim = app.state.fleet.sim.as_ref().map(|sim| sim.stats());
    let backend = app.state.db.backend_name();
    app.stop().await?;

    let per_device = |memory: Memory| {
        (devices > 0).then(|| {
            round(
                memory.rss_kib.saturating_sub(before.rss_kib) as f64 / f64::from(devices),
                2,
            )
        })
    };
    let handshakes = sim.as_ref().map_or(0, |stats| stats.accounts);
    let mut targets = serde_json::Map::new();
    targets.insert(
        "seconds_to_all_online".into(),
        json!(Target::at_most(seconds, boot_goal(devices, &fleet))),
    );
    if let Some(idle_per_device) = per_device(idle) {
        targets.insert(
            "idle_rss_per_device_kib".into(),
            json!(Target::at_most(idle_per_device, TARGET_KIB_PER_DEVICE)),
        );
    }
    Ok(json!({
        "params": {
            "devices": devices,
            "db": backend,
            "connects_per_second": fleet.connects_per_second,
            "max_connects_in_flight": fleet.max_connects_in_flight,
            "arbiters": snapshot.arbiters,
            "settle_s": SETTLE.as_secs(),
        },
        "seed_seconds": round(seed_seconds, 2),
        "seconds_to_all_online": round(seconds, 3),
        "boot_finished_after_ms": snapshot.boot.finished_after_ms,
        "admission_bound_s": round(f64::from(devices) / fleet.connects_per_second, 2),
        "handshakes": handshakes,
        "handshakes_per_s": round(handshakes as f64 / seconds, 1),
        "cpu_seconds": cpu,
        "restarts": snapshot.restarts_total,
        "rss_before_kib": before.rss_kib,
        "rss_online_kib": online.rss_kib,
        "rss_idle_kib": idle.rss_kib,
        "peak_rss_kib": idle.peak_kib,
        "rss_per_device_kib": per_device(online),
        "idle_rss_per_device_kib": per_device(idle),
        "targets": targets,
    }))
}

/// Stores `count` devices as a daemon leaves them after they were paired and online: a JID and
/// status `online`.
pub(super) async fn seed(db: &Db, tenant_id: i64, count: u32) -> anyhow::Result<()> {
    futures_util::stream::iter(0..count)
        .map(|n| seed_one(db, tenant_id, n))
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("cannot store the benchmark devices")
}

/// Stores device number `n`.
async fn seed_one(db: &Db, tenant_id: i64, n: u32) -> anyhow::Result<()> {
    let device = store::insert_device(db, tenant_id, &format!("bench-{n}")).await?;
    let patch = DeviceStatusPatch {
        status: Some(DeviceStatus::Online.as_str().into()),
        jid: Some(Some(format!("6010{n:07}:1@s.whatsapp.net"))),
        ..Default::default()
    };
    store::update_status(db, device.id, patch).await?;
    Ok(())
}

/// Polls until `devices` sessions are logged in at the simulator and the supervisor has seen
/// every boot device settle; errors after [`TIMEOUT`].
///
/// The simulator is the judge because the supervisor's status cannot be: a device stored as
/// `online` is counted online from the moment it is registered, before it even connects.
pub(super) async fn wait_all_online(app: &RunningApp, devices: u32) -> anyhow::Result<()> {
    let sim = app
        .state
        .fleet
        .sim
        .clone()
        .context("the boot benchmark needs the simulator connector")?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let online = sim.stats().online;
        if online >= u64::from(devices) {
            let snapshot = app.state.fleet.supervisor.send(GetSupervision).await?;
            if snapshot.boot.settled >= snapshot.boot.total {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "only {online} of {devices} devices online after {} s",
                TIMEOUT.as_secs()
            );
        }
        actix_web::rt::time::sleep(POLL).await;
    }
}
