//! `wafleet bench cluster`: K daemon processes (`wafleet serve`, this binary) share N devices
//! on one PostgreSQL (and Redis, with `--redis`), the simulator in its own process
//! (`wafleet sim`) so that it outlives every kill and judges the whole run. A paced campaign
//! to `--messages` leads runs on every device; `--kills` times a node is SIGKILLed, its devices
//! must come online on the other nodes, and the node is restarted (it takes its share back by
//! hand-overs). At the end the campaign must complete with every lead's message id delivered
//! exactly once.
//!
//! Figures: seconds to boot the cluster (every device online); per kill, seconds from the kill
//! until every device is online again (goal ≤ 30) and how many devices the victim ran; lost
//! messages, extra deliveries, refused resends of an in-flight message (the same id again,
//! which the recipient sees once), pacing violations and double sessions (a device connected
//! from two daemons at once) as the simulator counted them; peak RSS per node; cluster
//! statements per second per node in steady state (`wafleet_cluster_statements_total`).
//!
//! Settings of the spawned daemons come from the compiled-in defaults plus the run's own; any
//! `WAFLEET__CLUSTER__*` or `WAFLEET__FLEET__*` variable in this process's environment is
//! passed on (the integration test shortens the lease time that way).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::report::{round, Memory};
use super::{boot, broadcast, fanout};
use crate::auth::model::Scope;
use crate::broadcast::campaign::model::CampaignStatus;
use crate::cli::BenchArgs;
use crate::db::schema::{campaigns as campaign_rows, outbox};
use crate::db::{Db, DbError};
use crate::db_run;
use crate::whatsapp::remote::SimControl;

/// Longest wait for the cluster to come up, or for a failover.
const WAIT: Duration = Duration::from_secs(600);
/// Longest wait for the campaign to complete after the last kill.
const CAMPAIGN_WAIT: Duration = Duration::from_secs(1800);
/// The failover goal of the scale-out issue.
const FAILOVER_GOAL_SECS: f64 = 30.0;
/// How often the run looks at the simulator.
const POLL: Duration = Duration::from_millis(100);
/// Steady-state window over which cluster statements are counted.
const STEADY: Duration = Duration::from_secs(10);

/// The run's shape.
struct Plan {
    nodes: u32,
    devices: u32,
    leads: u32,
    kills: u32,
    time_scale: f64,
    redis: Option<String>,
}

impl Plan {
    /// Each node's `cluster.capacity`: enough for the nodes left after a kill to run every
    /// device (a dead node's devices need room elsewhere), and never below the configured
    /// one. An operator sizes a real cluster the same way (docs/scaling.md).
    fn capacity(&self, configured: u32) -> u32 {
        let survivors = self.nodes.saturating_sub(1).max(1);
        self.devices.div_ceil(survivors).max(configured)
    }
}

/// Runs the scenario with `--nodes`, `--devices`, `--messages`, `--kills`, `--db` (PostgreSQL,
/// required) and `--redis`.
pub async fn run(args: &BenchArgs, time_scale: f64) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.db.is_some(),
        "bench cluster needs --db postgres://… : several daemons share a fleet on PostgreSQL"
    );
    let plan = Plan {
        nodes: args.nodes,
        devices: args.devices,
        leads: args.messages,
        kills: args.kills,
        time_scale,
        redis: args.redis.as_ref().map(|r| r.expose_secret().to_owned()),
    };
    super::with_database(args, |url| measure(url, plan)).await
}

/// A child process, SIGKILLed and reaped when dropped (also when the run fails half-way).
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes' media folder, removed when dropped.
struct MediaDir(std::path::PathBuf);

impl MediaDir {
    fn create() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("wafleet-bench-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for MediaDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One daemon of the cluster.
struct Node {
    port: u16,
    process: Process,
    peak_rss_kib: u64,
}

/// The `wafleet` binary with a clean environment plus `env`; its output goes to this
/// process's stderr with `WAFLEET_BENCH_NODE_LOGS` set, else nowhere.
fn wafleet(env: &[(String, String)]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("cannot find this binary")?);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if std::env::var_os("WAFLEET_BENCH_NODE_LOGS").is_some() {
        use std::os::fd::AsFd;
        let stderr = || std::io::stderr().as_fd().try_clone_to_owned();
        cmd.stdout(Stdio::from(stderr()?))
            .stderr(Stdio::from(stderr()?));
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    Ok(cmd)
}

/// One line of progress on stderr (the report goes to stdout).
fn progress(what: &str, started: Instant) {
    tracing::warn!(
        seconds = round(started.elapsed().as_secs_f64(), 1),
        "bench cluster: {what}"
    );
}

/// Starts `wafleet sim` on a free port; the process and its `host:port`.
fn spawn_sim(env: &[(String, String)]) -> anyhow::Result<(Process, String)> {
    use std::io::BufRead;
    let mut child = wafleet(env)?
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start wafleet sim")?;
    let stdout = child.stdout.take().context("no simulator stdout")?;
    let process = Process(child);
    let address = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let value: Value = serde_json::from_str(&line).ok()?;
            value["listening"].as_str().map(str::to_owned)
        })
        .context("wafleet sim did not say where it listens")?;
    Ok((process, address))
}

/// Starts node `index` (`node-<index>`) on `port`.
fn spawn_node(env: &[(String, String)], index: usize, port: u16) -> anyhow::Result<Process> {
    let child = wafleet(env)?
        .env("WAFLEET__CLUSTER__NODE_ID", format!("node-{index}"))
        .args(["serve", "--port", &port.to_string()])
        .spawn()
        .context("cannot start a node")?;
    Ok(Process(child))
}

/// A port free right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn measure(database_url: String, plan: Plan) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    boot::seed(&db, tenant_id, plan.devices).await?;
    let list = broadcast::seed_leads(&db, tenant_id, plan.leads).await?;
    // Paced within the simulator's rules (5–15 s, 12 a minute), no day cap.
    let pacing = json!({"min_delay_ms": 5000, "max_delay_ms": 15000, "per_minute": 12,
                        "per_day": 1_000_000, "warmup_days": 0, "typing": false});
    let campaign = super::draft_campaign(&db, tenant_id, "cluster", &[list], pacing).await?;
    let writer = fanout::create_token(&db, &admin, tenant_id, Scope::Write).await?;
    let operator = fanout::create_token(&db, &admin, tenant_id, Scope::Admin).await?;
    let media = MediaDir::create()?;
    let env = node_env(
        &database_url,
        &settings,
        &plan,
        &media.0.display().to_string(),
    );
    let (_sim, sim_address) = spawn_sim(&env)?;
    let control = SimControl::connect(&sim_address).await?;
    let mut env = env;
    env.push(("WAFLEET__SIM__REMOTE".into(), sim_address));

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut nodes = Vec::new();
    for index in 0..plan.nodes as usize {
        let port = free_port()?;
        let process = spawn_node(&env, index, port)?;
        nodes.push(Node {
            port,
            process,
            peak_rss_kib: 0,
        });
    }
    for node in &nodes {
        wait_ready(&http, node.port).await?;
    }
    progress("nodes ready", started);
    wait_online(&control, &mut nodes, plan.devices).await?;
    progress("every device online", started);
    let boot_seconds = started.elapsed().as_secs_f64();

    let statements_per_s = steady_statements(&http, &nodes, &operator).await?;
    let start = http
        .post(format!(
            "http://127.0.0.1:{}/api/v1/campaigns/{campaign}/start",
            nodes[0].port
        ))
        .bearer_auth(&writer)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    anyhow::ensure!(
        start.status().is_success(),
        "campaign start: {}",
        start.status()
    );

    let mut failovers = Vec::new();
    for kill in 0..plan.kills as usize {
        // Spread the kills over the campaign.
        let due = u64::from(plan.leads) * (kill as u64 + 1) / (u64::from(plan.kills) + 2);
        wait_delivered(&control, &mut nodes, due).await?;
        let victim = kill % nodes.len();
        let owned = owned_by(&db, &format!("node-{victim}")).await?;
        nodes[victim].process.kill();
        let killed = Instant::now();
        wait_online(&control, &mut nodes, plan.devices).await?;
        let seconds = killed.elapsed().as_secs_f64();
        progress(
            &format!("node-{victim} killed; its {owned} devices online elsewhere"),
            killed,
        );
        failovers.push(json!({"node": format!("node-{victim}"), "devices": owned,
                              "seconds": round(seconds, 2)}));
        // Back as a fresh process under the same name: it takes its share back by hand-overs.
        nodes[victim].process = spawn_node(&env, victim, nodes[victim].port)?;
        wait_ready(&http, nodes[victim].port).await?;
    }
    progress("kills done; waiting for the campaign to complete", started);
    let campaign_started = Instant::now();
    let completed = wait_completed(&db, &control, &mut nodes, campaign).await?;
    let stats = control.stats().await?;
    let delivered = control.delivered_ids().await?;
    let ids = message_ids(&db, campaign).await?;
    let lost = ids.iter().filter(|id| !delivered.contains(*id)).count();
    let distinct: HashSet<&String> = ids.iter().collect();
    let worst = failovers
        .iter()
        .filter_map(|f| f["seconds"].as_f64())
        .fold(0.0, f64::max);
    Ok(json!({
        "nodes": plan.nodes,
        "devices": plan.devices,
        "leads": plan.leads,
        "time_scale": plan.time_scale,
        "redis": plan.redis.is_some(),
        "capacity_per_node": plan.capacity(settings.cluster.capacity),
        "boot_seconds": round(boot_seconds, 2),
        "failovers": failovers,
        "failover_seconds_max": {"value": round(worst, 2), "target": FAILOVER_GOAL_SECS,
                                 "met": worst <= FAILOVER_GOAL_SECS},
        "campaign_completed": completed,
        "campaign_tail_seconds": round(campaign_started.elapsed().as_secs_f64(), 1),
        "rows": ids.len(),
        "lost": lost,
        "duplicate_message_ids": ids.len() - distinct.len(),
        "extra_delivered": stats.delivered as i64 - ids.len() as i64,
        "resends_refused": stats.duplicates,
        "pacing_violations": stats.violations,
        "double_sessions": stats.double_sessions,
        "peak_rss_mib_per_node": nodes.iter()
            .map(|n| round(n.peak_rss_kib as f64 / 1024.0, 1)).collect::<Vec<_>>(),
        "cluster_statements_per_s_per_node": statements_per_s,
    }))
}

/// The environment every node and the simulator get.
fn node_env(
    database_url: &str,
    settings: &crate::config::Settings,
    plan: &Plan,
    media_dir: &str,
) -> Vec<(String, String)> {
    let scale = plan.time_scale.to_string();
    let mut env: Vec<(String, String)> = [
        ("DB_URI", database_url),
        ("RUST_LOG", "warn"),
        ("WAFLEET__SERVER__HOST", "127.0.0.1"),
        ("WAFLEET__SERVER__WORKERS", "1"),
        ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
        ("WAFLEET__ADMIN__EMAIL", settings.admin.email.as_str()),
        (
            "WAFLEET__ADMIN__PASSWORD",
            settings.admin.password.expose_secret(),
        ),
        ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
        ("WAFLEET__CHAT__MEDIA_DIR", media_dir),
        ("WAFLEET__SIM__TIME_SCALE", scale.as_str()),
        ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "50"),
        ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
        ("WAFLEET__SIM__MAX_SENDS_PER_DAY", "1000000"),
        ("WAFLEET__BROADCAST__LIMITS__MAX_PER_DAY", "1000000"),
        // A killed node's in-flight sends are re-sent this long after their claim.
        ("WAFLEET__BROADCAST__LEASE_SECS", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "WAFLEET__CLUSTER__CAPACITY".into(),
        plan.capacity(settings.cluster.capacity).to_string(),
    ));
    if let Some(redis) = &plan.redis {
        env.push(("WAFLEET__REDIS__URL".into(), redis.clone()));
    }
    env.extend(
        std::env::vars().filter(|(k, _)| {
            k.starts_with("WAFLEET__CLUSTER__") || k.starts_with("WAFLEET__FLEET__")
        }),
    );
    env
}

/// Waits until the node on `port` answers `/readyz` with 200.
async fn wait_ready(http: &reqwest::Client, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "node on port {port} is not ready"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Notes each live node's resident memory.
fn sample_rss(nodes: &mut [Node]) {
    for node in nodes {
        if let Ok(memory) = Memory::of(&node.process.pid()) {
            node.peak_rss_kib = node.peak_rss_kib.max(memory.rss_kib);
        }
    }
}

/// Waits until the simulator has `devices` sessions online.
async fn wait_online(control: &SimControl, nodes: &mut [Node], devices: u32) -> anyhow::Result<()> {
    // A kill shows at the simulator as closed connections: first let it see them.
    tokio::time::sleep(POLL).await;
    let deadline = Instant::now() + WAIT;
    loop {
        sample_rss(nodes);
        let online = control.stats().await?.online;
        if online >= u64::from(devices) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {online} of {devices} devices online after {} s",
            WAIT.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the simulator has delivered `count` messages.
async fn wait_delivered(
    control: &SimControl,
    nodes: &mut [Node],
    count: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CAMPAIGN_WAIT;
    while control.stats().await?.delivered < count {
        sample_rss(nodes);
        anyhow::ensure!(Instant::now() < deadline, "{count} deliveries never came");
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Waits for the campaign to be completed; whether it was within [`CAMPAIGN_WAIT`].
async fn wait_completed(
    db: &Db,
    control: &SimControl,
    nodes: &mut [Node],
    campaign: i64,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + CAMPAIGN_WAIT;
    while Instant::now() < deadline {
        sample_rss(nodes);
        let status: String = db_run!(db, |conn| {
            campaign_rows::table
                .find(campaign)
                .select(campaign_rows::status)
                .first(conn)
                .await
                .map_err(DbError::from)
        })?;
        if status == CampaignStatus::Completed.as_str() {
            return Ok(true);
        }
        control.stats().await?;
        tokio::time::sleep(POLL * 5).await;
    }
    Ok(false)
}

/// Live leases node `node` holds.
async fn owned_by(db: &Db, node: &str) -> anyhow::Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM device_leases WHERE node_id = '{node}' AND expires_at > now()"
    );
    super::number(db, &sql, "lease count").await
}

/// Every message id of the campaign's outbox rows.
async fn message_ids(db: &Db, campaign: i64) -> anyhow::Result<Vec<String>> {
    Ok(db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign))
            .select(outbox::message_id)
            .load::<String>(conn)
            .await
            .map_err(DbError::from)
    })?)
}

/// Cluster statements per second of each node over [`STEADY`], read from `/metrics`.
async fn steady_statements(
    http: &reqwest::Client,
    nodes: &[Node],
    token: &str,
) -> anyhow::Result<Vec<f64>> {
    let count = |port: u16| {
        let request = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth(token);
        async move {
            let text = request.send().await?.text().await?;
            text.lines()
                .find_map(|line| line.strip_prefix("wafleet_cluster_statements_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .context("no wafleet_cluster_statements_total in /metrics")
        }
    };
    let mut before = Vec::new();
    for node in nodes {
        before.push(count(node.port).await?);
    }
    tokio::time::sleep(STEADY).await;
    let mut rates = Vec::new();
    for (node, before) in nodes.iter().zip(before) {
        let after = count(node.port).await?;
        rates.push(round((after - before) / STEADY.as_secs_f64(), 2));
    }
    Ok(rates)
}
