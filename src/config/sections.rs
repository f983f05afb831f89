//! The `[section]`s of [`Settings`](super::Settings), one struct each, with what a section
//! computes from its own keys.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::cidr::{cidr_list, Cidr};
use super::{ConfigError, DatabaseKind};
use crate::cli::LogFormat;

/// `[metrics]`: access to the Prometheus endpoint, which reveals fleet size and traffic.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of a separate listener serving only `/metrics` without credentials (bind it to
    /// a private address); empty serves `/metrics` on the main listener, behind credentials.
    pub listen: String,
    /// Bearer token a scraper sends to the main listener's `/metrics`; empty means only a
    /// platform admin's session or API token is accepted there.
    #[serde(serialize_with = "hidden")]
    pub token: SecretString,
}

/// `[retention]`: how long old rows are kept; 0 keeps them forever. A background sweep
/// (`crate::retention`) deletes what is older every `interval_hours`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Chat messages (and reactions) older than this many days are deleted; 0 = kept.
    pub messages_days: u32,
    /// Outbox rows of campaigns finished, and sequence messages sent or given up, more than
    /// this many days ago are deleted, their counts kept for the reports; 0 = kept.
    pub outbox_days: u32,
    /// Audit log entries older than this many days are deleted; 0 = kept.
    pub audit_days: u32,
    /// Outbound webhook deliveries (delivered or given up) older than this many days are
    /// deleted from the delivery log; 0 = kept.
    pub webhooks_days: u32,
    /// The home page's hourly figures and devices' history older than this many days are
    /// deleted; 0 = kept.
    pub stats_days: u32,
    /// Hours between two sweeps (at least 1).
    pub interval_hours: u32,
}

impl RetentionSettings {
    /// Whether any table has a limit, i.e. whether a sweep has anything to do.
    pub fn any(&self) -> bool {
        self.messages_days > 0
            || self.outbox_days > 0
            || self.audit_days > 0
            || self.webhooks_days > 0
            || self.stats_days > 0
    }
}

/// `[webhooks]`: outbound webhook deliveries (`crate::webhooks`); see `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Allow endpoints on private, loopback and link-local addresses (off: such targets are
    /// refused when an endpoint is saved and again when a delivery resolves its host).
    pub allow_private_targets: bool,
    /// Seconds a receiver has to answer one delivery.
    pub timeout_secs: u64,
    /// Delay before the first retry, in milliseconds; each later retry waits twice as long
    /// (with jitter), up to `retry_max_secs`.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// Hours an event is retried before its delivery is given up (dead-lettered).
    pub max_age_hours: u64,
    /// Days of nothing but failures after which an endpoint is switched off; 0 = never.
    pub disable_after_days: u64,
    /// Deliveries in flight per endpoint unless the endpoint says otherwise.
    pub default_concurrency: u32,
    /// Deliveries started per second per endpoint unless the endpoint says otherwise.
    pub default_rate_per_second: u32,
    /// Endpoints one tenant may register.
    pub max_endpoints_per_tenant: u32,
    /// Events waiting in memory to be queued in the database; past this, new events are
    /// dropped and counted (`webhook_events_dropped_total`) until the database catches up.
    pub buffer_capacity: usize,
}

impl WebhookSettings {
    /// Checks the bounds the dispatcher relies on.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout_secs == 0 || self.timeout_secs > 120 {
            return Err("webhooks.timeout_secs: must be 1 to 120".into());
        }
        if self.retry_base_ms == 0 || self.retry_max_secs == 0 {
            return Err("webhooks.retry_base_ms and retry_max_secs: must be at least 1".into());
        }
        if self.max_age_hours == 0 {
            return Err("webhooks.max_age_hours: must be at least 1".into());
        }
        if self.default_concurrency == 0 || self.default_rate_per_second == 0 {
            return Err(
                "webhooks.default_concurrency and default_rate_per_second: must be at least 1"
                    .into(),
            );
        }
        if self.buffer_capacity == 0 {
            return Err("webhooks.buffer_capacity: must be at least 1".into());
        }
        Ok(())
    }
}

/// `[broadcast]`: leads, campaigns and the outbox; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Device health scores and quarantine (`[broadcast.health]`).
    pub health: HealthSettings,
}

/// `[broadcast.health]`: when a device stops taking campaign and sequence sends for a while
/// (the formula is in `device::health`). Durations are in simulated time, like pacing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// A score (0–100) below this quarantines the device.
    pub threshold: u32,
    /// How long a quarantine lasts, in seconds.
    pub quarantine_secs: u64,
    /// The sliding window the score looks at, in seconds.
    pub window_secs: u64,
    /// Sends in the window before delivery and failure rates count.
    pub min_sends: i64,
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// When media of received messages is downloaded.
    pub media_download: MediaDownload,
    /// Largest received media downloaded, per kind, in MiB.
    pub media_max_mb: MediaCaps,
}

/// `chat.media_download`: what happens to the media of a received message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaDownload {
    /// Downloaded and stored as the message arrives (within `chat.media_max_mb`); a download
    /// that fails is tried again when someone opens the file.
    #[default]
    Eager,
    /// Downloaded when someone first opens the file, then stored.
    Lazy,
    /// Never downloaded: the message says what it carried.
    Off,
}

/// `[chat.media_max_mb]`: the largest received media of each kind downloaded, in MiB; a bigger
/// one is kept as a message without its file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaCaps {
    /// Pictures.
    pub image: u64,
    /// Videos.
    pub video: u64,
    /// Audio files.
    pub audio: u64,
    /// Voice notes.
    pub voice: u64,
    /// Documents.
    pub document: u64,
    /// Stickers.
    pub sticker: u64,
}

/// `[ws]`: WebSocket sessions.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    /// The in-process simulated network.
    Sim,
    /// whatsapp-rust.
    Real,
}

/// `[fleet]`: how devices are supervised; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// `[cluster]`: nodes sharing one fleet on PostgreSQL; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's name; "" = `<host name>-<server.port>`.
    pub node_id: String,
    /// Where other nodes forward device commands; "" = derived from the host and port.
    pub advertise_url: String,
    /// The most devices this node runs.
    pub capacity: u32,
    /// Seconds after the last heartbeat that a node and its leases are dead.
    pub lease_secs: u64,
    /// Seconds between heartbeats (each renews all of the node's leases).
    pub heartbeat_secs: u64,
    /// Milliseconds between looks for ownerless devices and balancing.
    pub claim_ms: u64,
    /// Devices handed over per second when balancing or draining.
    pub handovers_per_second: f64,
    /// Timeout of a forwarded device command.
    pub forward_timeout_secs: u64,
}

impl ClusterSettings {
    /// The heartbeat must fit in a lease at least twice, so one late heartbeat loses nothing.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.heartbeat_secs == 0 || self.lease_secs < 2 * self.heartbeat_secs {
            return Err(
                "cluster.lease_secs: must be at least twice cluster.heartbeat_secs (> 0)".into(),
            );
        }
        if self.capacity == 0 || self.claim_ms == 0 || self.forward_timeout_secs == 0 {
            return Err("cluster.capacity, cluster.claim_ms and cluster.forward_timeout_secs: must be positive".into());
        }
        if !(self.handovers_per_second.is_finite() && self.handovers_per_second > 0.0) {
            return Err("cluster.handovers_per_second: must be positive".into());
        }
        let id_ok = self.node_id.len() <= 100
            && self
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !id_ok {
            return Err(format!(
                "cluster.node_id: {:?} must be at most 100 letters, digits or -_.:",
                self.node_id
            ));
        }
        Ok(())
    }
}

/// `[auth]`: how people sign in; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Its email (login name).
    pub email: String,
    /// Its password; empty means generate a one-time password.
    #[serde(serialize_with = "hidden")]
    pub password: SecretString,
}

/// `[server]`: where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// `[database]`: which database and how many connections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`; secret because it may carry a password.
    #[serde(serialize_with = "url_redacted")]
    pub url: SecretString,
    /// Pool size (SQLite caps it lower).
    pub max_connections: usize,
    /// Wait for a pooled connection before failing.
    pub acquire_timeout_secs: u64,
    /// SQLite busy timeout.
    pub sqlite_busy_timeout_ms: u32,
    /// SQLite page cache per pooled connection, MiB.
    pub sqlite_cache_mib: u32,
}

/// `[redis]`: the optional event bridge.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Empty means no Redis.
    #[serde(serialize_with = "url_redacted")]
    pub url: SecretString,
    /// Pub/sub channel shared by the daemons of one deployment.
    pub channel: String,
    /// PEM file of the CA that signed a `rediss://` server's certificate; empty: the system's
    /// roots.
    pub tls_ca_file: String,
    /// Hub events waiting to be published to Redis at most; past it (or while Redis is down)
    /// events are dropped for the other daemons and counted.
    pub queue_capacity: usize,
}

/// `[log]`: tracing filter and format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// An `EnvFilter` directive.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

/// `[tenant]`: defaults for new tenants.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// IANA zone name, validated at load.
    pub default_time_zone: String,
}

/// `[sim]`: behaviour of the simulated WhatsApp network; see `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Chance that a contact answers.
    pub reply_probability: f64,
    /// Mean answer delay.
    pub reply_delay_ms: u64,
    /// Chance that an answer is an image.
    pub image_reply_probability: f64,
    /// Share (0..1) of contacts WhatsApp addresses by LID (phone only as alternate sender).
    pub lid_probability: f64,
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
    /// Mean time between demo contacts writing first to a random online device; 0 = never.
    pub chatter_interval_ms: u64,
    /// Chats in the history sync a newly paired device receives (plus one older than 30
    /// days); 0 = no history sync.
    pub history_chats: u32,
    /// Groups each simulated device is in (five contacts each); 0 = none.
    pub groups: u32,
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
        if settings.demo_devices > 0 && settings.chatter_interval_ms == 0 {
            settings.chatter_interval_ms = DEMO_CHATTER_MS;
        }
        if settings.demo_devices > 0 && settings.history_chats == 0 {
            settings.history_chats = DEMO_HISTORY_CHATS;
        }
        if settings.demo_devices > 0 && settings.groups == 0 {
            settings.groups = DEMO_GROUPS;
        }
        settings
    }
}

/// Auto-scan delay in demo mode when none is configured.
const DEMO_AUTO_SCAN_MS: u64 = 1500;
/// Demo mode's history sync on pairing: chats with a past.
const DEMO_HISTORY_CHATS: u32 = 6;
/// Demo mode's groups per device.
const DEMO_GROUPS: u32 = 2;
/// Demo mode's mean time between contacts writing first, so the chat view is alive.
const DEMO_CHATTER_MS: u64 = 20_000;
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

/// Replaces the password of a URL with `***` so it can be logged: the one in the user part
/// (`postgres://u:pw@db/x`) and a `password=` query parameter (`…?password=pw`, which libpq
/// accepts). A URL that does not parse but has a user part loses the whole user part.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(raw) else {
        return match (raw.split_once("://"), raw.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &raw[at..]),
            _ => raw.to_string(),
        };
    };
    let secret_user = parsed.password().is_some();
    if secret_user {
        // Setting a password only fails for URLs that cannot carry one, checked above.
        let _ = parsed.set_password(Some("***"));
    }
    let secret_query = parsed
        .query_pairs()
        .any(|(key, _)| key.eq_ignore_ascii_case("password"));
    if !(secret_user || secret_query) {
        // Nothing to hide: the URL as written, not as re-serialized.
        return raw.to_string();
    }
    if secret_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.eq_ignore_ascii_case("password") {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Writes a secret URL with its password replaced ([`redact_url`]); settings are only ever
/// serialized for display (`wafleet config check`).
fn url_redacted<S: Serializer>(secret: &SecretString, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(&redact_url(secret.expose_secret()))
}

/// Writes a secret as `***`, or as an empty string when it is unset, never its value.
fn hidden<S: Serializer>(secret: &SecretString, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(if secret.expose_secret().is_empty() {
        ""
    } else {
        "***"
    })
}
