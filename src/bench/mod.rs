//! `wafleet bench <scenario>`: runs the real daemon in-process against the simulator, measures
//! one scenario and prints one JSON object on stdout (logs, warnings and up only, go to stderr).
//!
//! # Flow
//! [`run`] starts an actix `System` and the scenario, which:
//! 1. creates a fresh database ([`ScratchDatabase`]: a temporary SQLite file, or
//!    `wafleet_bench_<random>` on the PostgreSQL server given with `--db`), migrates it and
//!    creates the admin account ([`prepare`]), exactly as a first start of the daemon would;
//! 2. builds [`Settings`] the way the integration tests do, from the compiled-in defaults and
//!    `config/` plus a fixed set of overrides ([`settings`]), so the user's environment cannot
//!    change the figures;
//! 3. starts [`Application`] on port 0 ([`RunningApp`]), measures, stops it and drops the
//!    database;
//! 4. returns its figures, which [`run`] wraps with the machine, commit and date.
//!
//! # Files
//! [`boot`] stored devices to all online; [`broadcast`] a campaign through the outbox;
//! [`inbound`] simulator→WebSocket latency of inbound messages (and memory, with Redis up or
//! down), text only or with the media of [`mix`] (kinds, sizes, bytes, download times; pure,
//! unit-tested); [`images`] the image pipeline's peak memory under parallel uploads and bombs;
//! [`import`] a CSV of leads through the importer; [`fanout`] hub events to many WebSocket
//! subscribers; [`clients`] real whatsapp-rust clients on the database-backed store and their
//! memory; [`webhooks`] outbound webhook deliveries to a local receiver, steady and after an
//! outage; [`home`] the home page's figures over N devices × D days of hourly rows; [`scale`]
//! list, search and chat pages over 1M leads and 10M messages, and deleting a big list;
//! [`cluster`] several daemon processes sharing one fleet while nodes are SIGKILLed;
//! [`report`] machine description, memory, percentiles and targets (pure, unit-tested).

pub mod boot;
pub mod broadcast;
pub mod clients;
pub mod cluster;
pub mod fanout;
pub mod home;
pub mod images;
pub mod import;
pub mod inbound;
pub mod mix;
pub mod report;
pub mod scale;
pub mod webhooks;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;

use actix_web::dev::ServerHandle;
use actix_web::web::Data;
use anyhow::Context;
use clap::Parser;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::auth::model::User;
use crate::auth::password::PasswordHasher;
use crate::auth::{bootstrap, secret, store};
use crate::cli::{BenchArgs, Cli, Scenario};
use crate::config::Settings;
use crate::db::scratch::ScratchDatabase;
use crate::db::{migrate, Db};
use crate::startup::Application;
use crate::web::AppState;
use report::Machine;

/// Log filter of a benchmark run: problems only, so logging does not skew the figures.
const LOG_FILTER: &str = "warn";
/// Simulated clock speed of scenarios that wait on pacing, unless `--time-scale` says otherwise.
const DEFAULT_TIME_SCALE: f64 = 100.0;
/// Simulated clock speed of the cluster scenario: paced sends that outlast a few kills.
const CLUSTER_TIME_SCALE: f64 = 10.0;
/// The admin account every benchmark database starts with.
const ADMIN_EMAIL: &str = "bench@wafleet.local";

/// Runs the scenario of `args` and prints its report.
pub fn run(args: &BenchArgs, time_scale: Option<f64>) -> anyhow::Result<()> {
    init_logging();
    let machine = Machine::probe();
    let started_at = chrono::Utc::now();
    let figures = actix_web::rt::System::new().block_on(async {
        match args.scenario {
            Scenario::Boot => boot::run(args).await,
            Scenario::Fanout => fanout::run(args).await,
            Scenario::Inbound => inbound::run(args, time_scale).await,
            Scenario::Import => import::run(args).await,
            Scenario::Broadcast => {
                broadcast::run(args, time_scale.unwrap_or(DEFAULT_TIME_SCALE)).await
            }
            Scenario::Clients => clients::run(args).await,
            Scenario::Images => images::run(args).await,
            Scenario::Webhooks => webhooks::run(args).await,
            Scenario::Home => home::run(args).await,
            Scenario::Scale => scale::run(args).await,
            Scenario::Cluster => cluster::run(args, time_scale.unwrap_or(CLUSTER_TIME_SCALE)).await,
        }
    })?;
    let mut report = json!({
        "scenario": args.scenario.name(),
        "date": started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": report::commit(),
        "machine": machine,
    });
    report::merge(&mut report, figures);
    report::print(&report)
}

/// Installs a subscriber writing to stderr (the daemon's own logs to stdout would mix with the
/// report).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(LOG_FILTER))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Settings of a benchmark daemon on `database_url`: the defaults (compiled in and
/// `config/default.toml`), loopback on port 0, any `WAFLEET__SECTION__KEY` of the process's
/// environment, and `extra` entries in that form.
pub fn settings(database_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<Settings> {
    // Random per run: it is set (never logged as a generated one-time password) and never used.
    let password = secret::new_password();
    let mut env: HashMap<String, String> = [
        ("DB_URI", database_url),
        ("WAFLEET__SERVER__HOST", "127.0.0.1"),
        ("WAFLEET__SERVER__PORT", "0"),
        ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
        ("WAFLEET__ADMIN__EMAIL", ADMIN_EMAIL),
        ("WAFLEET__ADMIN__PASSWORD", password.as_str()),
        ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
        ("RUST_LOG", LOG_FILTER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // A setting to compare (`WAFLEET__DATABASE__SQLITE_CACHE_MIB=64 wafleet bench …`); the
    // scenario's own settings still win.
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with("WAFLEET__")));
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let cli = Cli::try_parse_from(["wafleet"])?;
    Ok(Settings::load_from(&cli, Path::new("config"), &env)?)
}

/// Migrates the database and creates the admin account, as the daemon's first start does, so
/// that starting the daemon afterwards measures a restart on an existing database. Returns a
/// connection pool (drop it before measuring memory) and the admin.
pub async fn prepare(settings: &Settings) -> anyhow::Result<(Db, User)> {
    migrate::run_pending_async(&settings.database)
        .await
        .context("cannot migrate the benchmark database")?;
    let db = Db::connect(&settings.database).await?;
    let hasher = PasswordHasher::new()?;
    bootstrap::ensure_admin(&db, settings, &hasher).await?;
    let admin = store::find_user_by_email(&db, ADMIN_EMAIL)
        .await?
        .context("the admin account was not created")?;
    Ok((db, admin))
}

/// A fresh database for one run: a temporary SQLite file, or a new database on the PostgreSQL
/// server of `--db`; removed with [`remove_database`].
async fn create_database(server_url: Option<&SecretString>) -> anyhow::Result<ScratchDatabase> {
    let database = match server_url {
        None => ScratchDatabase::sqlite("wafleet-bench")?,
        Some(url) => ScratchDatabase::postgres(url, "wafleet_bench")
            .await
            .context("--db: give a postgres:// server URL whose user may create databases")?,
    };
    Ok(database)
}

/// Deletes the run's database; a failure is logged, as the figures are already taken.
async fn remove_database(database: ScratchDatabase) {
    if let Err(err) = database.remove().await {
        tracing::warn!(error = %err, "cannot remove the benchmark database");
    }
}

/// The daemon running in this process.
pub struct RunningApp {
    /// Its shared state: fleet, hub, database.
    pub state: Data<AppState>,
    /// The port it listens on (loopback).
    pub port: u16,
    handle: ServerHandle,
    stopped: actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    /// Builds and starts the application (boots stored devices); must run inside a `System`.
    pub async fn start(settings: Settings) -> anyhow::Result<RunningApp> {
        let application = Application::build(settings).await?;
        Ok(RunningApp {
            state: application.state(),
            port: application.port(),
            handle: application.handle(),
            stopped: actix_web::rt::spawn(application.run_until_stopped()),
        })
    }

    /// Stops the HTTP server and waits for the daemon's orderly shutdown (devices disconnect).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.stopped
            .await
            .context("the daemon's shutdown task failed")?
    }
}

/// The column `n` of every row `sql` answers (the counts and ids a scenario reads back).
pub(super) async fn numbers(db: &Db, sql: &str) -> anyhow::Result<Vec<i64>> {
    Ok(crate::db_run!(db, |conn| {
        diesel_async::RunQueryDsl::load::<Number>(diesel::sql_query(sql), conn)
            .await
            .map(|rows| rows.into_iter().map(|row| row.n).collect())
            .map_err(crate::db::DbError::from)
    })?)
}

/// The column `n` of the first row `sql` answers; `what` names it when there is none.
pub(super) async fn number(db: &Db, sql: &str, what: &str) -> anyhow::Result<i64> {
    numbers(db, sql)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("no {what}"))
}

/// A draft broadcast campaign named `name` over `lists`, on every online device, paced as
/// `pacing` says; its id.
pub(super) async fn draft_campaign(
    db: &Db,
    tenant_id: i64,
    name: &str,
    lists: &[i64],
    pacing: Value,
) -> anyhow::Result<i64> {
    use crate::broadcast::campaign::model::{CampaignFields, CampaignStatus};
    let fields = CampaignFields {
        name: name.into(),
        message: "{Hi|Hello} {name}, this is a benchmark message.".into(),
        target: json!({ "list_ids": lists }).to_string(),
        devices: json!({"mode": "all_online"}).to_string(),
        pacing: pacing.to_string(),
        on_device_loss: "move".into(),
        kind: "broadcast".into(),
        per_device_limit: None,
    };
    let campaign = crate::broadcast::campaign::store::insert_campaign(
        db,
        tenant_id,
        None,
        &fields,
        CampaignStatus::Draft,
        None,
    )
    .await?;
    Ok(campaign.id)
}

/// A number read by `sql_query`.
#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs `scenario` on a fresh database (`--db`) and removes the database afterwards, whether
/// the scenario succeeded or not.
async fn with_database<F, Fut>(args: &BenchArgs, scenario: F) -> anyhow::Result<Value>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let database = create_database(args.db.as_ref()).await?;
    let outcome = scenario(database.url.clone()).await;
    remove_database(database).await;
    outcome
}
