//! Settings: the only module that reads the environment.
//!
//! Layers, each overriding the one before: the defaults compiled in from `config/default.toml`
//! → `config/default.toml` on disk → `TZ` → `config/<WAFLEET_ENV>.toml` → the `--config` file →
//! the familiar variables `DB_URI`/`DATABASE_URL`, `REDIS_URL`, `PORT`,
//! `WHATSAPP_CHAT_STORAGE`, `RUST_LOG` → `WAFLEET__SECTION__KEY` → command-line flags. Unknown
//! keys are errors, so a typo never silently falls back to a default.
//!
//! `TZ` sits low on purpose: it is the operating system's time-zone variable, often set by a
//! host or container for libc, so it only replaces the default tenant zone; any zone an operator
//! writes (a file or `WAFLEET__TENANT__DEFAULT_TIME_ZONE`) wins over it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Map, Source, Value};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, ConfigFormat, LogFormat};

mod cidr;
mod sections;

pub use cidr::Cidr;
pub use sections::{
    redact_url, AdminSettings, AuthSettings, BroadcastSettings, ChatSettings, ClusterSettings,
    ConnectorKind, DatabaseSettings, FleetSettings, HealthSettings, LogSettings, MediaCaps,
    MediaDownload, MetricsSettings, Pacing, PacingLimits, RedisSettings, RetentionSettings,
    ServerSettings, SimSettings, TenantSettings, WebhookSettings, WhatsappSettings, WsSettings,
};

/// The defaults, compiled in so that the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../config/default.toml");
/// Largest `database.sqlite_cache_mib`: 4 GiB a connection, times up to 8 connections.
const MAX_SQLITE_CACHE_MIB: u32 = 4096;

/// Every setting of the daemon. See `config/default.toml` for each key's meaning and default.
///
/// Serializes with every secret redacted (passwords in URLs, tokens, the admin password), so
/// its output can be shown (`wafleet config check`).
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Nodes sharing one fleet (PostgreSQL).
    pub cluster: ClusterSettings,
    /// WebSocket sessions.
    pub ws: WsSettings,
    /// Chat mirroring.
    pub chat: ChatSettings,
    /// Leads, campaigns, pacing.
    pub broadcast: BroadcastSettings,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsSettings,
    /// How long old messages, outbox rows and audit entries are kept.
    pub retention: RetentionSettings,
    /// Outbound webhook deliveries.
    pub webhooks: WebhookSettings,
}

/// A configuration problem, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
            .add_source(File::from(config_dir.join("default.toml")).required(false))
            // Above the defaults only: a zone set in any file or WAFLEET__ wins over TZ.
            .add_source(FamiliarNames::from_env(env, FALLBACK_NAMES));
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
        builder = builder
            .add_source(FamiliarNames::from_env(env, OVERRIDING_NAMES))
            .add_source(
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

    /// The effective settings as TOML (the shape of `config/default.toml`) or JSON, with every
    /// secret redacted (`wafleet config check`).
    pub fn render(&self, format: ConfigFormat) -> Result<String, ConfigError> {
        match format {
            ConfigFormat::Toml => {
                toml::to_string_pretty(self).map_err(|e| ConfigError(e.to_string()))
            }
            ConfigFormat::Json => serde_json::to_string_pretty(self)
                .map(|json| json + "\n")
                .map_err(|e| ConfigError(e.to_string())),
        }
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
        let health = &self.broadcast.health;
        if health.threshold > 100 || health.quarantine_secs == 0 || health.window_secs == 0 {
            return Err(ConfigError(
                "broadcast.health: threshold must be 0 to 100, quarantine_secs and window_secs 1 or more".into(),
            ));
        }
        if crate::phone::country_code(&self.broadcast.default_country).is_none() {
            return Err(ConfigError(format!(
                "broadcast.default_country: unknown country {:?} (use an ISO code such as MY)",
                self.broadcast.default_country
            )));
        }
        if let DatabaseKind::Postgres = self.database.kind()? {
            // Reads the CA file a verify mode names, so a missing one fails here.
            crate::tls::PgTls::split_url(self.database.url.expose_secret())
                .and_then(|(_, tls)| tls.client_config())
                .map_err(|e| ConfigError(format!("database.url: {e}")))?;
        }
        let redis = self.redis.url.expose_secret();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError(
                "redis.url: must start with redis:// or rediss:// (or be empty)".into(),
            ));
        }
        if !self.redis.tls_ca_file.is_empty() {
            crate::tls::read_pem_certificates(self.redis.tls_ca_file.as_ref())
                .map_err(|e| ConfigError(format!("redis.tls_ca_file: {e}")))?;
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
            ("sim.lid_probability", self.sim.lid_probability),
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
        self.cluster.check().map_err(ConfigError)?;
        self.webhooks.check().map_err(ConfigError)?;
        if self.retention.interval_hours == 0 {
            return Err(ConfigError(
                "retention.interval_hours: must be at least 1".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections: must be at least 1".into(),
            ));
        }
        if !(1..=MAX_SQLITE_CACHE_MIB).contains(&self.database.sqlite_cache_mib) {
            return Err(ConfigError(format!(
                "database.sqlite_cache_mib: must be 1 to {MAX_SQLITE_CACHE_MIB}"
            )));
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
/// Turns a `config` error into one line that names the key.
fn describe(err: config::ConfigError) -> ConfigError {
    ConfigError(err.to_string().replace('\n', " "))
}

/// Environment names and the key each sets; within one entry later names win.
type Aliases = &'static [(&'static [&'static str], &'static str)];

/// Familiar names that override the files: `DB_URI` (the seed's name) over `DATABASE_URL`,
/// `REDIS_URL`, `PORT`, the seed's `WHATSAPP_CHAT_STORAGE`, `RUST_LOG`.
const OVERRIDING_NAMES: Aliases = &[
    (&["DATABASE_URL", "DB_URI"], "database.url"),
    (&["REDIS_URL"], "redis.url"),
    (&["PORT"], "server.port"),
    (&["WHATSAPP_CHAT_STORAGE"], "chat.storage"),
    (&["RUST_LOG"], "log.filter"),
];

/// Familiar names that only replace a default: `TZ`, the operating system's variable.
const FALLBACK_NAMES: Aliases = &[(&["TZ"], "tenant.default_time_zone")];

/// The environment names people know from the seed system and from twelve-factor apps.
#[derive(Debug, Clone)]
struct FamiliarNames(Map<String, Value>);

impl FamiliarNames {
    /// Maps the `aliases` found (non-empty) in `env` to their keys.
    fn from_env(env: &HashMap<String, String>, aliases: Aliases) -> Self {
        let mut map = Map::new();
        for (names, key) in aliases {
            // Later names win: DB_URI (the seed's name) over DATABASE_URL.
            for name in names.iter() {
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
        let cases: [(&str, &str, &str); 7] = [
            ("DB_URI", "nonsense://x", "database.url"),
            ("PORT", "eighty", "server.port"),
            (
                "WAFLEET__TENANT__DEFAULT_TIME_ZONE",
                "Mars/Olympus",
                "tenant.default_time_zone",
            ),
            ("REDIS_URL", "http://x", "redis.url"),
            ("WAFLEET__SERVER__BOGUS", "1", "bogus"),
            (
                "WAFLEET__DATABASE__SQLITE_CACHE_MIB",
                "0",
                "database.sqlite_cache_mib",
            ),
            (
                "WAFLEET__DATABASE__SQLITE_CACHE_MIB",
                "4097",
                "database.sqlite_cache_mib",
            ),
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
        assert_eq!(
            redact_url("postgres://u@db/x?sslmode=disable&password=hunter2"),
            "postgres://u@db/x?sslmode=disable&password=***"
        );
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        // Unparseable (bad port) but with a user part: the whole user part goes.
        assert_eq!(
            redact_url("postgres://u:hunter2@db:99999/x"),
            "postgres://***@db:99999/x"
        );
    }

    /// A file in a fresh directory, for the layers that read files.
    fn file_with(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn tz_replaces_only_the_default_zone() -> Result<(), ConfigError> {
        let zone = |s: Settings| s.tenant.default_time_zone;
        assert_eq!(
            zone(load(&["wafleet"], &[("TZ", "Europe/Berlin")])?),
            "Europe/Berlin",
            "TZ beats the compiled default"
        );
        assert_eq!(
            zone(load(
                &["wafleet"],
                &[
                    ("TZ", "Europe/Berlin"),
                    ("WAFLEET__TENANT__DEFAULT_TIME_ZONE", "Asia/Tokyo")
                ]
            )?),
            "Asia/Tokyo",
            "WAFLEET__ beats TZ"
        );
        let (_dir, path) = file_with("[tenant]\ndefault_time_zone = \"America/Lima\"\n");
        assert_eq!(
            zone(load(
                &["wafleet", "--config", &path],
                &[("TZ", "Europe/Berlin")]
            )?),
            "America/Lima",
            "a --config file beats TZ"
        );
        // The repository's config/default.toml holds the defaults: TZ still replaces them.
        let cli = Cli::try_parse_from(["wafleet"]).map_err(|e| ConfigError(e.to_string()))?;
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let env = HashMap::from([("TZ".to_string(), "Europe/Berlin".to_string())]);
        assert_eq!(
            zone(Settings::load_from(&cli, &repo, &env)?),
            "Europe/Berlin"
        );
        let env = HashMap::from([
            ("TZ".to_string(), "Europe/Berlin".to_string()),
            ("WAFLEET_ENV".to_string(), "tz-test".to_string()),
        ]);
        let dir = tempfile::tempdir().map_err(|e| ConfigError(e.to_string()))?;
        std::fs::write(
            dir.path().join("tz-test.toml"),
            "[tenant]\ndefault_time_zone = \"Africa/Nairobi\"\n",
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        assert_eq!(
            zone(Settings::load_from(&cli, dir.path(), &env)?),
            "Africa/Nairobi",
            "config/<WAFLEET_ENV>.toml beats TZ"
        );
        Ok(())
    }

    #[test]
    fn whatsapp_chat_storage_sets_chat_storage() -> Result<(), ConfigError> {
        assert!(load(&["wafleet"], &[])?.chat.storage);
        assert!(
            !load(&["wafleet"], &[("WHATSAPP_CHAT_STORAGE", "false")])?
                .chat
                .storage
        );
        assert!(
            load(&["wafleet"], &[("WHATSAPP_CHAT_STORAGE", "true")])?
                .chat
                .storage
        );
        let s = load(
            &["wafleet"],
            &[
                ("WHATSAPP_CHAT_STORAGE", "false"),
                ("WAFLEET__CHAT__STORAGE", "true"),
            ],
        )?;
        assert!(s.chat.storage, "WAFLEET__ wins over the familiar name");
        let err = load(&["wafleet"], &[("WHATSAPP_CHAT_STORAGE", "maybe")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chat.storage"), "{err}");
        Ok(())
    }

    #[test]
    fn retention_defaults_and_bounds() -> Result<(), ConfigError> {
        let r = load(&["wafleet"], &[])?.retention;
        assert_eq!(
            r,
            RetentionSettings {
                messages_days: 0,
                outbox_days: 0,
                audit_days: 365,
                webhooks_days: 14,
                stats_days: 400,
                interval_hours: 24,
            }
        );
        assert!(r.any());
        let err = load(&["wafleet"], &[("WAFLEET__RETENTION__INTERVAL_HOURS", "0")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("retention.interval_hours"), "{err}");
        let err = load(&["wafleet"], &[("WAFLEET__RETENTION__MESSAGES_DAYS", "-1")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("retention.messages_days"), "{err}");
        Ok(())
    }

    #[test]
    fn rendered_settings_hide_every_secret() -> Result<(), ConfigError> {
        let s = load(
            &["wafleet"],
            &[
                (
                    "DB_URI",
                    "postgres://u:db-secret@db/x?password=query-secret",
                ),
                ("REDIS_URL", "redis://:redis-secret@cache:6379"),
                ("WAFLEET__ADMIN__PASSWORD", "admin-secret"),
                ("WAFLEET__METRICS__TOKEN", "metrics-secret"),
                ("WAFLEET__SERVER__TRUSTED_PROXIES", "10.0.0.0/8"),
            ],
        )?;
        for format in [ConfigFormat::Toml, ConfigFormat::Json] {
            let text = s.render(format)?;
            for secret in [
                "db-secret",
                "query-secret",
                "redis-secret",
                "admin-secret",
                "metrics-secret",
            ] {
                assert!(!text.contains(secret), "{format:?} shows {secret}: {text}");
            }
            assert!(text.contains("postgres://u:***@db/x"), "{text}");
            assert!(text.contains("10.0.0.0/8"), "{text}");
        }
        // The TOML reads back as settings of the same shape.
        let text = s.render(ConfigFormat::Toml)?;
        let (_dir, path) = file_with(&text);
        let again = load(&["wafleet", "--config", &path], &[])?;
        assert_eq!(again.server.trusted_proxies, s.server.trusted_proxies);
        assert_eq!(again.retention, s.retention);
        let json: serde_json::Value = serde_json::from_str(&s.render(ConfigFormat::Json)?)
            .map_err(|e| ConfigError(e.to_string()))?;
        assert_eq!(json["admin"]["password"], "***");
        assert_eq!(json["metrics"]["token"], "***");
        let bare = load(&["wafleet"], &[])?;
        let json: serde_json::Value = serde_json::from_str(&bare.render(ConfigFormat::Json)?)
            .map_err(|e| ConfigError(e.to_string()))?;
        assert_eq!(
            json["admin"]["password"], "",
            "an unset secret shows as unset"
        );
        Ok(())
    }
}
