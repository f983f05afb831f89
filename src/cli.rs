//! The command line: `wafleet [serve]`, `wafleet migrate`, `wafleet bench <scenario>`,
//! `wafleet sim --listen <addr>`, the operator's `wafleet healthcheck`, `wafleet config check`
//! and `wafleet backup FILE`, global `--config` and `--log-format`.
//!
//! Parsing only; [`crate::config::Settings::load`] folds the flags into the settings so that a
//! flag always wins over files and environment.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Keeps a fleet of WhatsApp accounts online, broadcasts campaigns and mirrors chats.
#[derive(Debug, Parser)]
#[command(name = "wafleet", version, about)]
pub struct Cli {
    /// Extra configuration file, read after config/default.toml and config/<WAFLEET_ENV>.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: readable lines (auto, pretty) or one JSON object per line (json).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Demo mode: make sure N simulated devices exist for the admin's tenant and pair them
    /// automatically (simulator connector only).
    #[arg(long, global = true, value_name = "N")]
    pub simulate: Option<u32>,

    /// Run the simulator's pacing, schedules and backoff K times faster (demos, tests, benchmarks).
    #[arg(long, global = true, value_name = "K")]
    pub time_scale: Option<f64>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run a benchmark scenario on the real daemon in-process with simulated devices and print
    /// one JSON object (docs/benchmarks.md).
    Bench(BenchArgs),
    /// Run the simulated WhatsApp network alone, for daemons configured with
    /// `[sim] remote = "<addr>"` (fault drills: it survives the daemon being killed). Prints
    /// `{"listening":"<addr>"}` on stdout once it accepts connections.
    Sim(SimArgs),
    /// Ask the daemon on this machine for GET /healthz on its main listener (server.port):
    /// exit 0 when it answers 200, else one line on stderr and exit 1 (container health checks).
    Healthcheck,
    /// Inspect the configuration.
    Config(ConfigArgs),
    /// Copy the SQLite database to FILE, consistently, while the daemon may be running
    /// (PostgreSQL: use pg_dump, see docs/operations.md).
    Backup(BackupArgs),
}

/// `wafleet config …`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The sub-commands of `wafleet config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the settings as `serve` would (files, environment, flags) and print the
    /// effective ones with every secret redacted; exit 2 on an invalid setting.
    Check(ConfigCheckArgs),
}

/// Flags of `wafleet config check`.
#[derive(Debug, clap::Args)]
pub struct ConfigCheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Toml)]
    pub format: ConfigFormat,
}

/// How `wafleet config check` prints the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    /// TOML, in the shape of config/default.toml.
    Toml,
    /// One JSON object.
    Json,
}

/// Flags of `wafleet backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist yet.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Flags of `wafleet sim`. The network's behaviour comes from the `[sim]` settings as usual.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to accept daemons on; port 0 picks a free port (printed on stdout).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

/// Flags of `wafleet bench`. The benchmark builds its own settings (defaults plus what the
/// scenario needs), so the global flags and the environment do not change its figures.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Devices stored before the daemon starts (boot, broadcast, inbound); real clients built
    /// (clients).
    #[arg(long, value_name = "N", default_value_t = 3000)]
    pub devices: u32,

    /// WebSocket subscribers (fanout: on one topic; inbound: on every device's messages).
    #[arg(long, value_name = "S", default_value_t = 200)]
    pub subscribers: u32,

    /// Events published into the hub (fanout).
    #[arg(long, value_name = "M", default_value_t = 20_000)]
    pub events: u32,

    /// Messages in the campaign (broadcast), sent by contacts (inbound), or CSV rows (import).
    #[arg(long, value_name = "M", default_value_t = 5_000)]
    pub messages: u32,

    /// Pace the campaign like a person (delays 5–15 s on the simulator's clock, see
    /// --time-scale) or send as fast as the outbox allows (broadcast).
    #[arg(long, value_enum, default_value_t = Pacing::On)]
    pub pacing: Pacing,

    /// Events published per second; as fast as the hub takes them when omitted (fanout).
    /// Inbound messages per second (inbound; default 300). Events per second (webhooks;
    /// default 1000).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// A PostgreSQL server (postgres://user:pass@host/db) on which a fresh database
    /// wafleet_bench_<random> is created and dropped; a temporary SQLite file when omitted.
    #[arg(long, value_name = "URL", value_parser = parse_secret)]
    pub db: Option<SecretString>,

    /// A Redis server for the hub's bridge, as a daemon of several would use (inbound); an
    /// unreachable one (e.g. redis://127.0.0.1:1) measures the bridge while Redis is down.
    #[arg(long, value_name = "URL", value_parser = parse_secret)]
    pub redis: Option<SecretString>,

    /// Uploads at once (images).
    #[arg(long, value_name = "P", default_value_t = 6)]
    pub parallel: u32,

    /// What the contacts send (inbound): text only, or one message in five with a file of
    /// about 1 MB (pictures, voice notes, audio, documents, stickers).
    #[arg(long, value_enum, default_value_t = Mix::Text)]
    pub mix: Mix,

    /// Webhook endpoints on the local receiver (webhooks).
    #[arg(long, value_name = "E", default_value_t = 10)]
    pub endpoints: u32,

    /// Seconds of steady events (webhooks).
    #[arg(long, value_name = "D", default_value_t = 60)]
    pub seconds: u32,

    /// Seconds the receiver answers 503 while events keep coming; 0 skips the phase (webhooks).
    #[arg(long, value_name = "O", default_value_t = 30)]
    pub outage: u32,

    /// Days of hourly figures for every device (home).
    #[arg(long, value_name = "D", default_value_t = 30)]
    pub days: u32,

    /// Leads built in 100 lists, each with a chat of ten messages (scale).
    #[arg(long, value_name = "L", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub leads: u32,

    /// Daemon processes sharing the fleet (cluster).
    #[arg(long, value_name = "K", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,

    /// Nodes SIGKILLed one after another during the campaign, each restarted once its devices
    /// are online elsewhere (cluster).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub kills: u32,
}

/// Benchmark scenarios (issue 11); the others arrive with the features they measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N stored devices to all online: seconds, handshakes/s, RSS per device.
    Boot,
    /// S WebSocket subscribers on one topic: frames/s delivered, drops, latency.
    Fanout,
    /// A campaign of M messages over N devices: sends/s, share of the pacing bound, violations.
    Broadcast,
    /// M inbound messages at R/s over N devices to S WebSocket subscribers: latency.
    Inbound,
    /// A CSV of M leads through the streaming importer: rows/s.
    Import,
    /// N real whatsapp-rust clients on the database-backed store (`--devices`): RSS per client.
    Clients,
    /// P pictures at once through the image pipeline, large ones and bombs: peak memory.
    Images,
    /// E webhook endpoints, R events/s for D s, then an O s receiver outage: deliveries/s,
    /// latency, drain time, losses.
    Webhooks,
    /// The home page's figures over N devices with D days of hourly figures: p50/p99 per range.
    Home,
    /// L leads in 100 lists and 10·L chat messages over N devices: list, search and chat page
    /// p99, deleting a big list beside a chat writer, database size.
    Scale,
    /// K daemon processes share N devices on PostgreSQL during a campaign; nodes are SIGKILLed:
    /// failover seconds, lost and doubled messages, pacing violations, double sessions, RSS.
    Cluster,
}

/// Pacing of the broadcast benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pacing {
    /// Delays 5–15 s (simulated), typing, caps.
    On,
    /// No delays and no caps (safe bounds lifted for the run).
    Off,
}

/// Message mix of the inbound benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Text messages only.
    Text,
    /// 20 % media of mixed kinds, about 1 MB each on average; the rest text.
    Media,
}

impl Mix {
    /// The name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Mix::Text => "text",
            Mix::Media => "media",
        }
    }
}

impl Pacing {
    /// The name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::On => "on",
            Pacing::Off => "off",
        }
    }
}

impl Scenario {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Boot => "boot",
            Scenario::Fanout => "fanout",
            Scenario::Broadcast => "broadcast",
            Scenario::Inbound => "inbound",
            Scenario::Import => "import",
            Scenario::Clients => "clients",
            Scenario::Images => "images",
            Scenario::Webhooks => "webhooks",
            Scenario::Home => "home",
            Scenario::Scale => "scale",
            Scenario::Cluster => "cluster",
        }
    }
}

/// Keeps a URL that may carry a password out of `Debug` output.
fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Flags of `wafleet serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (overrides PORT and the configuration).
    #[arg(long)]
    pub port: Option<u16>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, coloured when stdout is a terminal.
    Auto,
    /// Always human-readable.
    Pretty,
    /// Always one JSON object per line.
    Json,
}

impl Cli {
    /// The serve flags, also when no sub-command was given.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            None => None,
            Some(Command::Serve(args)) => Some(args),
            Some(
                Command::Migrate
                | Command::Bench(_)
                | Command::Sim(_)
                | Command::Healthcheck
                | Command::Config(_)
                | Command::Backup(_),
            ) => None,
        }
    }
}
