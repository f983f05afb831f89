//! Settings: the only module that reads the environment.
//!
//! Layers, each overriding the one before: the defaults compiled in from `config/default.toml`
//! → `config/default.toml` on disk → `config/<WAFLEET_ENV>.toml` → the `--config` file → the
//! familiar variables `DB_URI`/`DATABASE_URL`, `REDIS_URL`, `PORT`, `TZ`, `RUST_LOG` →
//! `WAFLEET__SECTION__KEY` → command-line flags. Unknown keys are errors, so a typo never
//! silently falls back to a default.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Map, Source, Value};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, LogFormat};

/// The defaults, compiled in so that the binary runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Every setting of the daemon. See `config/default.toml` for each key's meaning and default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Optional Redis for multi-node event sharing.
    pub redis: RedisSettings,
    /// Logging.
    pub log: LogSettings,
    /// Defaults for tenants.
    pub tenant: TenantSettings,
    /// The simulated WhatsApp network.
    pub sim: SimSettings,
    /// Sessions, sign-up and login limits.
    pub auth: AuthSettings,
    /// The first platform admin.
    pub admin: AdminSettings,
    /// Which connector devices use.
    pub whatsapp: WhatsappSettings,
    /// Device supervision: arbiters, admission, backoff, restart budget.
    pub fleet: FleetSettings,
    /// WebSocket sessions.
    pub ws: WsSettings,
    /// Chat mirroring.
    pub chat: ChatSettings,
    /// Leads, campaigns, pacing.
    pub broadcast: BroadcastSettings,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsSettings,
}

/// `[metrics]`: access to the Prometheus endpoint, which reveals fleet size and traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of a separate listener serving only `/metrics` without credentials (bind it to
    /// a private address); empty serves `/metrics` on the main listener, behind credentials.
    pub listen: String,
    /// Bearer token a scraper sends to the main listener's `/metrics`; empty means only a
    /// platform admin's session or API token is accepted there.
    pub token: SecretString,
}

/// `[broadcast]`: leads, campaigns and the outbox; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastSettings {
    /// ISO 3166 country for phone numbers written without a country code (tenants may override).
    pub default_country: String,
    /// Inbound texts that opt the sender out (compared trimmed, case-insensitively).
    pub opt_out_keywords: Vec<String>,
    /// Pacing every campaign starts from (tenants and campaigns override within `limits`).
    pub pacing: Pacing,
    /// The safe bounds no tenant or campaign may leave.
    pub limits: PacingLimits,
    /// Seconds a claimed outbox row stays leased to its sender; a crash leaves it to be re-sent
    /// after this.
    pub lease_secs: u64,
    /// Attempts before a row is marked failed.
    pub max_attempts: u32,
    /// Milliseconds between campaign progress events.
    pub progress_interval_ms: u64,
    /// Milliseconds between the sequence engine's rounds (enrol tagged leads, queue due steps).
    pub sequence_tick_ms: u64,
    /// Enrolments the sequence engine handles per kind of work per round.
    pub sequence_batch: i64,
}

/// Effective pacing of one device in one campaign (`[broadcast.pacing]` holds the defaults;
/// the rules live in `broadcast::pacing`). Durations are in simulated time (the
/// Throttle divides them by the time scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// Shortest wait between two sends of a device.
    pub min_delay_ms: u64,
    /// Longest wait; each wait is uniform between min and max.
    pub max_delay_ms: u64,
    /// Most sends of a device in any minute.
    pub per_minute: u32,
    /// Most sends of a device in any 24 hours (before warm-up).
    pub per_day: u32,
    /// Show "typing…" before a message, for a time proportional to its length.
    pub typing: bool,
    /// Local hours without sends, e.g. `22:00-08:00`; empty for none.
    pub quiet_hours: String,
    /// Days over which a newly linked device ramps up to `per_day` (0 = no warm-up).
    pub warmup_days: u32,
    /// Daily cap on a new device's first day.
    pub warmup_first_day: u32,
}

/// The bounds nobody can configure past (`[broadcast.limits]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacingLimits {
    /// Smallest allowed `min_delay_ms`.
    pub min_delay_ms: u64,
    /// Largest allowed `per_minute`.
    pub max_per_minute: u32,
    /// Largest allowed `per_day`.
    pub max_per_day: u32,
}

/// `[chat]`: chat mirroring; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Store chats and messages at all.
    pub storage: bool,
    /// Default activity window of the chat list, in days.
    pub window_days: u32,
    /// Batch window of ChatSync.
    pub batch_window_ms: u64,
    /// Largest batch of ChatSync.
    pub batch_max: usize,
    /// Records ChatSync holds at most while the database is slow or down; past it device
    /// actors wait (and stop reading their sessions) until the mirror catches up.
    pub queue_max: usize,
    /// Media directory.
    pub media_dir: PathBuf,
}

/// `[ws]`: WebSocket sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// Unsent bytes (KiB) after which a slow subscriber is closed with 1013.
    pub max_pending_kib: usize,
    /// Seconds between re-checks of an open session's credential (token or cookie still valid,
    /// user active, same role and devices); closed with 4401 otherwise. A change made on this
    /// daemon is checked at once; this is the fallback for changes made on another daemon.
    pub recheck_secs: u64,
    /// Seconds a session may stay open at most; then it is closed with 4401 and reconnects.
    pub max_lifetime_secs: u64,
}

/// `[whatsapp]`: the connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappSettings {
    /// `sim` or `real`.
    pub connector: ConnectorKind,
    /// WhatsApp Web version the real connector announces (`2.3000.1042742319`); empty = fetch
    /// the current one and refresh it every `version_refresh_hours`.
    pub version: String,
    /// Hours between refreshes of a fetched version.
    pub version_refresh_hours: u64,
    /// WebSocket endpoint of WhatsApp (tests point it at a loopback responder).
    pub ws_url: String,
    /// Worker threads of the runtime the real clients share; 0 = one per core (at least 2).
    pub runtime_threads: usize,
    /// Skip the history sync a phone sends after linking.
    pub skip_history_sync: bool,
}

impl WhatsappSettings {
    /// The pinned version, if `version` is set: `Ok(None)` means "fetch the current one".
    pub fn pinned_version(&self) -> Result<Option<(u32, u32, u32)>, ConfigError> {
        let text = self.version.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let parts: Vec<Option<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [Some(a), Some(b), Some(c)] => Ok(Some((*a, *b, *c))),
            _ => Err(ConfigError(format!(
                "whatsapp.version: {text:?} is not a version like \"2.3000.1042742319\""
            ))),
        }
    }
}

/// Which connector the fleet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    /// The in-process simulated network.
    Sim,
    /// whatsapp-rust.
    Real,
}

/// `[fleet]`: how devices are supervised; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// Arbiters hosting device actors; 0 = two per core.
    pub arbiters: usize,
    /// Connects in flight at once.
    pub max_connects_in_flight: usize,
    /// Connects started per second.
    pub connects_per_second: f64,
    /// First reconnect delay.
    pub backoff_base_ms: u64,
    /// Longest reconnect delay.
    pub backoff_max_ms: u64,
    /// Restarts allowed per window before parking.
    pub restart_budget: u32,
    /// The restart window.
    pub restart_window_secs: u64,
    /// Liveness and health check period.
    pub health_check_ms: u64,
    /// Connect timeout.
    pub connect_timeout_secs: u64,
}

/// `[auth]`: how people sign in; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Whether `/api/v1/auth/signup` creates tenants.
    pub allow_signup: bool,
    /// `__Host-` cookie with Secure (true) or a plain cookie for http on a LAN (false).
    pub secure_cookies: bool,
    /// Idle expiry of a browser session.
    pub session_idle_minutes: u64,
    /// Absolute expiry of a browser session.
    pub session_max_hours: u64,
    /// Failed logins allowed per account and per address within the window.
    pub login_max_failures: u32,
    /// The rate-limit window.
    pub login_window_secs: u64,
    /// The longest wait an account is made to take between sign-in attempts after failures.
    pub login_max_delay_secs: u64,
    /// How often expired and idle sessions are deleted.
    pub session_purge_interval_secs: u64,
    /// How recent the caller's sign-in must be to set another user's password.
    pub step_up_minutes: u64,
    /// Where the generated first-start admin password is written (mode 0600).
    pub admin_password_file: PathBuf,
}

/// `[admin]`: the account created on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Its email (login name).
    pub email: String,
    /// Its password; empty means generate a one-time password.
    pub password: SecretString,
}

/// `[server]`: where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
}

/// An address block such as `10.0.0.0/8` or `::1/128` (a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address.
    pub fn parse(text: &str) -> Result<Cidr, ConfigError> {
        let text = text.trim();
        let invalid = || ConfigError(format!("server.trusted_proxies: {text:?} is not a CIDR"));
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(invalid)?,
            None => bits,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    a.iter().zip(b).enumerate().all(|(i, (x, y))| {
        let bits = (usize::from(prefix)).saturating_sub(i * 8).min(8);
        let mask = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        x & mask == y & mask
    })
}

/// `trusted_proxies` as a TOML list or, from the environment, one comma-separated string.
fn cidr_list<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    let items = match List::deserialize(de)? {
        List::Many(items) => items,
        List::One(text) => text.split(',').map(str::to_string).collect(),
    };
    items
        .iter()
        .filter(|item| !item.trim().is_empty())
        .map(|item| Cidr::parse(item).map_err(serde::de::Error::custom))
        .collect()
}

/// `[database]`: which database and how many connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`; secret because it may carry a password.
    pub url: SecretString,
    /// Pool size (SQLite caps it lower).
    pub max_connections: usize,
    /// Wait for a pooled connection before failing.
    pub acquire_timeout_secs: u64,
    /// SQLite busy timeout.
    pub sqlite_busy_timeout_ms: u32,
}

/// `[redis]`: the optional event bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Empty means no Redis.
    pub url: SecretString,
    /// Pub/sub channel shared by the daemons of one deployment.
    pub channel: String,
    /// Hub events waiting to be published to Redis at most; past it (or while Redis is down)
    /// events are dropped for the other daemons and counted.
    pub queue_capacity: usize,
}

/// `[log]`: tracing filter and format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// An `EnvFilter` directive.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

/// `[tenant]`: defaults for new tenants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// IANA zone name, validated at load.
    pub default_time_zone: String,
}

/// `[sim]`: behaviour of the simulated WhatsApp network; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Chance that a contact answers.
    pub reply_probability: f64,
    /// Mean answer delay.
    pub reply_delay_ms: u64,
    /// Chance that an answer is an image.
    pub image_reply_probability: f64,
    /// Auto-scan pending QR pairings after this long; 0 = never.
    pub auto_scan_after_ms: u64,
    /// QR rotation period.
    pub qr_rotate_ms: u64,
    /// Delay until a sent message is delivered.
    pub delivered_after_ms: u64,
    /// Delay from delivered to read.
    pub read_after_ms: u64,
    /// Shortest allowed gap between sends of one device.
    pub min_send_gap_ms: u64,
    /// Per-device sends allowed per minute.
    pub max_sends_per_minute: u32,
    /// Per-device sends allowed per day.
    pub max_sends_per_day: u32,
    /// Clock speed-up; every simulated duration is divided by it.
    pub time_scale: f64,
    /// Demo devices to keep for the admin's tenant (`--simulate N`); 0 = none.
    pub demo_devices: u32,
    /// `host:port` of a `wafleet sim` process to use instead of an in-process network; empty =
    /// in-process. The daemon's `time_scale` must match the simulator's.
    pub remote: String,
}

impl SimSettings {
    /// The settings the simulator runs with: demo mode scans pending QR codes by itself.
    pub fn effective(&self) -> SimSettings {
        let mut settings = self.clone();
        if settings.demo_devices > 0 && settings.auto_scan_after_ms == 0 {
            settings.auto_scan_after_ms = DEMO_AUTO_SCAN_MS;
        }
        settings
    }
}

/// Auto-scan delay in demo mode when none is configured.
const DEMO_AUTO_SCAN_MS: u64 = 1500;

/// A configuration problem, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Which database a URL points at, decided once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// An SQLite file at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres,
}

impl Settings {
    /// Loads every layer for this command line from the process environment.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(cli, Path::new("config"), &env)
    }

    /// Loads every layer with an explicit config directory and environment (used by tests).
    pub fn load_from(
        cli: &Cli,
        config_dir: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let run_env = env.get("WAFLEET_ENV").map(String::as_str).unwrap_or("");
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false));
        if !run_env.is_empty() {
            let env_file = config_dir.join(format!("{run_env}.toml"));
            if !env_file.is_file() {
                return Err(ConfigError(format!(
                    "WAFLEET_ENV={run_env}: {} does not exist",
                    env_file.display()
                )));
            }
            builder = builder.add_source(File::from(env_file));
        }
        if let Some(path) = &cli.config {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "--config: file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path.as_path()));
        }
        builder = builder.add_source(FamiliarNames::from_env(env)).add_source(
            Environment::with_prefix("WAFLEET")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env.clone().into_iter().collect())),
        );
        if let Some(format) = cli.log_format {
            let name = match format {
                LogFormat::Auto => "auto",
                LogFormat::Pretty => "pretty",
                LogFormat::Json => "json",
            };
            builder = builder.set_override("log.format", name).map_err(describe)?;
        }
        if let Some(devices) = cli.simulate {
            // Demo mode is the simulator's, whatever the configured connector.
            builder = builder
                .set_override("sim.demo_devices", devices)
                .and_then(|b| b.set_override("whatsapp.connector", "sim"))
                .map_err(describe)?;
        }
        if let Some(scale) = cli.time_scale {
            builder = builder
                .set_override("sim.time_scale", scale)
                .map_err(describe)?;
        }
        if let Some(port) = cli.serve_args().and_then(|args| args.port) {
            builder = builder
                .set_override("server.port", port)
                .map_err(describe)?;
        }
        let settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: URL schemes, time zone, ranges.
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.kind()?;
        self.broadcast
            .limits
            .check(&self.broadcast.pacing)
            .map_err(|e| ConfigError(format!("broadcast.pacing: {e}")))?;
        if self.broadcast.sequence_batch < 1 {
            return Err(ConfigError(
                "broadcast.sequence_batch: must be 1 or more".into(),
            ));
        }
        if crate::phone::country_code(&self.broadcast.default_country).is_none() {
            return Err(ConfigError(format!(
                "broadcast.default_country: unknown country {:?} (use an ISO code such as MY)",
                self.broadcast.default_country
            )));
        }
        let redis = self.redis.url.expose_secret();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError(
                "redis.url: must start with redis:// or rediss:// (or be empty)".into(),
            ));
        }
        if self
            .tenant
            .default_time_zone
            .parse::<chrono_tz::Tz>()
            .is_err()
        {
            return Err(ConfigError(format!(
                "tenant.default_time_zone: unknown time zone {:?} (use an IANA name such as Asia/Kuala_Lumpur)",
                self.tenant.default_time_zone
            )));
        }
        for (key, p) in [
            ("sim.reply_probability", self.sim.reply_probability),
            (
                "sim.image_reply_probability",
                self.sim.image_reply_probability,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError(format!(
                    "{key}: must be between 0 and 1, got {p}"
                )));
            }
        }
        if !(self.sim.time_scale.is_finite() && self.sim.time_scale > 0.0) {
            return Err(ConfigError(format!(
                "sim.time_scale: must be a positive number, got {}",
                self.sim.time_scale
            )));
        }
        let auth = &self.auth;
        if auth.login_max_failures == 0
            || auth.login_window_secs == 0
            || auth.login_max_delay_secs == 0
            || auth.session_purge_interval_secs == 0
            || auth.step_up_minutes == 0
        {
            return Err(ConfigError(
                "auth.login_max_failures, login_window_secs, login_max_delay_secs, session_purge_interval_secs and step_up_minutes: must be at least 1".into(),
            ));
        }
        if !self.admin.email.contains('@') {
            return Err(ConfigError(format!(
                "admin.email: {:?} is not an email address",
                self.admin.email
            )));
        }
        self.whatsapp.pinned_version()?;
        if self.whatsapp.version_refresh_hours == 0 {
            return Err(ConfigError(
                "whatsapp.version_refresh_hours: must be at least 1".into(),
            ));
        }
        if !(self.whatsapp.ws_url.starts_with("wss://")
            || self.whatsapp.ws_url.starts_with("ws://"))
        {
            return Err(ConfigError(format!(
                "whatsapp.ws_url: {:?} is not a ws:// or wss:// URL",
                self.whatsapp.ws_url
            )));
        }
        if self.fleet.max_connects_in_flight == 0
            || !(self.fleet.connects_per_second.is_finite() && self.fleet.connects_per_second > 0.0)
        {
            return Err(ConfigError(
                "fleet.max_connects_in_flight and fleet.connects_per_second: must be positive"
                    .into(),
            ));
        }
        if self.fleet.backoff_base_ms == 0 || self.fleet.backoff_max_ms < self.fleet.backoff_base_ms
        {
            return Err(ConfigError(
                "fleet.backoff_base_ms: must be positive and at most fleet.backoff_max_ms".into(),
            ));
        }
        if self.fleet.health_check_ms == 0 || self.fleet.restart_budget == 0 {
            return Err(ConfigError(
                "fleet.health_check_ms and fleet.restart_budget: must be positive".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections: must be at least 1".into(),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return Err(ConfigError(format!(
                "log.filter: {:?} is not a valid filter",
                self.log.filter
            )));
        }
        Ok(())
    }
}

impl DatabaseSettings {
    /// Which backend the URL selects; an unknown scheme is a configuration error.
    pub fn kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.url.expose_secret();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError(
                    "database.url: sqlite:// needs a file path, e.g. sqlite://data/wafleet.db"
                        .into(),
                ));
            }
            return Ok(DatabaseKind::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseKind::Postgres);
        }
        let scheme = url.split("://").next().unwrap_or_default();
        Err(ConfigError(format!(
            "database.url (DB_URI/DATABASE_URL): unsupported scheme {scheme:?}; use sqlite://<path> or postgres://user@host/db"
        )))
    }

    /// The URL with any password replaced, safe for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Replaces the password of a URL with `***` so it can be logged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot carry one, checked above.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => raw.to_string(),
    }
}

/// Turns a `config` error into one line that names the key.
fn describe(err: config::ConfigError) -> ConfigError {
    ConfigError(err.to_string().replace('\n', " "))
}

/// The environment names people know from the seed system and from twelve-factor apps.
#[derive(Debug, Clone)]
struct FamiliarNames(Map<String, Value>);

impl FamiliarNames {
    /// Maps `DB_URI` (or `DATABASE_URL`), `REDIS_URL`, `PORT`, `TZ` and `RUST_LOG` to their keys.
    fn from_env(env: &HashMap<String, String>) -> Self {
        let aliases: [(&[&str], &str); 5] = [
            (&["DATABASE_URL", "DB_URI"], "database.url"),
            (&["REDIS_URL"], "redis.url"),
            (&["PORT"], "server.port"),
            (&["TZ"], "tenant.default_time_zone"),
            (&["RUST_LOG"], "log.filter"),
        ];
        let mut map = Map::new();
        for (names, key) in aliases {
            // Later names win: DB_URI (the seed's name) over DATABASE_URL.
            for name in names {
                let usable = |v: &&String| {
                    // TZ is often a POSIX rule (e.g. ":/etc/localtime") meant for libc; only an
                    // IANA name is taken as the tenant default.
                    !v.is_empty() && (*name != "TZ" || v.parse::<chrono_tz::Tz>().is_ok())
                };
                if let Some(value) = env.get(*name).filter(usable) {
                    let origin = (*name).to_string();
                    map.insert(key.to_string(), Value::new(Some(&origin), value.clone()));
                }
            }
        }
        Self(map)
    }
}

impl Source for FamiliarNames {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let cli = Cli::try_parse_from(args).map_err(|e| ConfigError(e.to_string()))?;
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(&cli, Path::new("/nonexistent"), &env)
    }

    #[test]
    fn defaults_make_a_bare_start_work() -> Result<(), ConfigError> {
        let s = load(&["wafleet"], &[])?;
        assert_eq!(s.server.port, 3000);
        assert_eq!(
            s.database.kind()?,
            DatabaseKind::Sqlite(PathBuf::from("data/wafleet.db"))
        );
        assert!(s.redis.url.expose_secret().is_empty());
        assert_eq!(s.tenant.default_time_zone, "Asia/Kuala_Lumpur");
        Ok(())
    }

    #[test]
    fn familiar_names_and_prefixed_env_apply_in_order() -> Result<(), ConfigError> {
        let s = load(
            &["wafleet"],
            &[
                ("PORT", "8080"),
                ("DATABASE_URL", "postgres://a@h/x"),
                ("DB_URI", "postgres://b@h/y"),
                ("TZ", "Europe/Berlin"),
            ],
        )?;
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.database.url.expose_secret(), "postgres://b@h/y");
        assert_eq!(s.tenant.default_time_zone, "Europe/Berlin");
        let s = load(
            &["wafleet", "serve", "--port", "9000"],
            &[("PORT", "8080"), ("WAFLEET__SERVER__PORT", "8081")],
        )?;
        assert_eq!(s.server.port, 9000, "the CLI flag wins");
        let s = load(
            &["wafleet"],
            &[("PORT", "8080"), ("WAFLEET__SERVER__PORT", "8081")],
        )?;
        assert_eq!(s.server.port, 8081, "WAFLEET__ wins over PORT");
        let s = load(&["wafleet"], &[("TZ", ":/etc/localtime")])?;
        assert_eq!(
            s.tenant.default_time_zone, "Asia/Kuala_Lumpur",
            "POSIX TZ is ignored"
        );
        assert!(load(&["wafleet"], &[("WAFLEET_ENV", "nosuchenv")]).is_err());
        Ok(())
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases: [(&str, &str, &str); 5] = [
            ("DB_URI", "nonsense://x", "database.url"),
            ("PORT", "eighty", "server.port"),
            (
                "WAFLEET__TENANT__DEFAULT_TIME_ZONE",
                "Mars/Olympus",
                "tenant.default_time_zone",
            ),
            ("REDIS_URL", "http://x", "redis.url"),
            ("WAFLEET__SERVER__BOGUS", "1", "bogus"),
        ];
        for (name, value, key) in cases {
            let err = load(&["wafleet"], &[(name, value)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(key),
                "{name}={value}: {err:?} should name {key}"
            );
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db/x"),
            "postgres://u:***@db/x"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
