//! PostgreSQL connections, over TLS when the URL asks for it (libpq's `sslmode` and
//! `sslrootcert`, see [`crate::tls`]), for the pool, the migrations and scratch databases.
//!
//! diesel-async's own `establish` knows no TLS; [`PgTarget`] parses the URL once, builds the
//! rustls configuration once (loading the roots), and opens each connection through
//! tokio-postgres with it.

use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::{PgTls, SslMode};

/// Where and how to connect: the driver's configuration and the TLS to use.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    /// The URL or its TLS settings cannot be used (bad `sslmode`, unreadable CA file).
    #[error("{0}")]
    Setting(String),
    /// The TLS handshake failed: untrusted or expired certificate, wrong host name, or a server
    /// without TLS under `require`.
    #[error("TLS: {0}")]
    Tls(String),
    /// Anything else: server down, authentication refused, no such database.
    #[error("{0}")]
    Other(String),
}

impl PgTarget {
    /// Parses a `postgres://` URL with its TLS options and loads what they name.
    pub fn from_url(url: &str) -> Result<PgTarget, PgConnectError> {
        let (plain, tls) = PgTls::split_url(url).map_err(PgConnectError::Setting)?;
        let mut config: tokio_postgres::Config = plain
            .parse()
            .map_err(|e| PgConnectError::Setting(format!("{e}")))?;
        config.ssl_mode(match tls.mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        let tls = tls
            .client_config()
            .map_err(PgConnectError::Setting)?
            .map(MakeRustlsConnect::new);
        Ok(PgTarget { config, tls })
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<AsyncPgConnection, PgConnectError> {
        let connected = match &self.tls {
            None => match self.config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    AsyncPgConnection::try_from_client_and_connection(client, connection).await
                }
                Err(err) => return Err(classify(err)),
            },
            Some(tls) => match self.config.connect(tls.clone()).await {
                Ok((client, connection)) => {
                    AsyncPgConnection::try_from_client_and_connection(client, connection).await
                }
                Err(err) => return Err(classify(err)),
            },
        };
        connected.map_err(|e| PgConnectError::Other(e.to_string()))
    }

    /// A pool manager whose connections are opened by [`PgTarget::connect`].
    pub fn manager(self, url: &str) -> AsyncDieselConnectionManager<AsyncPgConnection> {
        let target = Arc::new(self);
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(move |_url| {
            let target = target.clone();
            async move {
                target
                    .connect()
                    .await
                    .map_err(|e| ConnectionError::BadConnection(e.to_string()))
            }
            .boxed()
        });
        AsyncDieselConnectionManager::new_with_config(url, config)
    }
}

/// Connects once to check the TLS settings before the daemon starts: `Err` names a setting or
/// a certificate that can never work. Any other failure (server down, wrong password) passes
/// here and is reported by the step that needs the database.
pub async fn check_tls(url: &str) -> Result<(), String> {
    match PgTarget::from_url(url)
        .map_err(|e| e.to_string())?
        .connect()
        .await
    {
        Err(err @ (PgConnectError::Tls(_) | PgConnectError::Setting(_))) => Err(err.to_string()),
        Ok(_) | Err(PgConnectError::Other(_)) => Ok(()),
    }
}

/// Tells TLS failures apart: tokio-postgres reports them all as "error performing TLS
/// handshake: …" (a refused certificate, or a server that answered the TLS request with "no").
fn classify(err: tokio_postgres::Error) -> PgConnectError {
    let text = error_chain(&err);
    match text.strip_prefix("error performing TLS handshake: ") {
        Some(cause) => PgConnectError::Tls(cause.to_string()),
        None => PgConnectError::Other(text),
    }
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}
