//! Logging through `tracing`: readable lines (coloured on a terminal), or JSON lines for log
//! shippers with `--log-format json` / `log.format = "json"`.
//!
//! The filter comes from `log.filter` (or `RUST_LOG`, folded in by [`crate::config`]). Secrets
//! never reach a log line: settings hold them as `SecretString`, URLs are logged redacted, and
//! the request log records paths without query strings (tokens may travel as `?token=`).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::cli::LogFormat;
use crate::config::LogSettings;

/// Installs the global subscriber once; later calls (tests start many apps) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = settings.format == LogFormat::Json;
    let builder = fmt().with_env_filter(filter).with_target(true);
    // An Err here means a subscriber is already installed, which is fine.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
}
