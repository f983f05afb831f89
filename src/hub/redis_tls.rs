//! `rediss://`: the bridge's Redis client over TLS, and the check at start that the configured
//! roots accept the server's certificate.
//!
//! The bridge never waits for Redis (an unreachable Redis only keeps events local), but a TLS
//! setting that can never work — an untrusted or expired certificate, a name that does not
//! match, a server without TLS — is a configuration error the daemon reports before it starts.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::RedisSettings;
use crate::tls::{self, Roots, Verify};

/// Longest wait for the TCP connection of the check.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the TLS handshake of the check.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis client for `redis.url`; over `rediss://` it trusts `redis.tls_ca_file` when set,
/// the system's roots otherwise.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, String> {
    let url = settings.url.expose_secret();
    let ca_file = settings.tls_ca_file.as_str();
    if !url.starts_with("rediss://") || ca_file.is_empty() {
        return redis::Client::open(url).map_err(|e| e.to_string());
    }
    let root_cert = std::fs::read(ca_file).map_err(|e| format!("cannot read {ca_file}: {e}"))?;
    tls::install_crypto_provider();
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .map_err(|e| e.to_string())
}

/// For `rediss://` (unless `#insecure`): connects once and runs the TLS handshake with the
/// roots the bridge will use. `Err` names what is wrong with the certificate or the server; an
/// unreachable server passes (logged), as the bridge reconnects by itself.
pub async fn check(settings: &RedisSettings) -> Result<(), String> {
    let raw = settings.url.expose_secret();
    if !raw.starts_with("rediss://") {
        return Ok(());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.fragment() == Some("insecure") {
        return Ok(());
    }
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(6379);
    let roots = match settings.tls_ca_file.as_str() {
        "" => Roots::System,
        file => Roots::File(file.into()),
    };
    let config = tls::client_config(Verify::ChainAndName, &roots)?;
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::warn!(host, port, error = %err, "redis is not reachable yet; the bridge keeps trying");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(
                host,
                port,
                "redis did not accept a connection in time; the bridge keeps trying"
            );
            return Ok(());
        }
    };
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("TLS handshake with {host}:{port} failed: {err}")),
        Err(_) => Err(format!(
            "TLS handshake with {host}:{port} timed out (is it a TLS port?)"
        )),
    }
}
