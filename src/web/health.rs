//! Operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve: database
//! reachable and fully migrated, node not draining, every singleton actor up). `/metrics`
//! is in [`super::scrape`].
//!
//! `/readyz` reads the singletons' liveness from [`crate::metrics::Liveness`]: each actor raises
//! its beacon once it runs (with its state loaded) and lowers it when it stops, is restarted, or
//! (the chat mirror) cannot write; a beacon dropped by a dead actor reads as down. Flags, not
//! pings: a ping would wait behind a busy mailbox and call a healthy but loaded actor down. Its
//! answer names only checks and states (`up`, `down`, `pending`); failure details go to the log.
//!
//! [`probe`] is the other end of `/healthz`: `wafleet healthcheck` asks the daemon on this
//! machine with a plain std `TcpStream`, so a container image needs no curl for its
//! HEALTHCHECK.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorDetail;
use super::{ApiError, AppState, ErrorCode};
use crate::config::ServerSettings;
use crate::db::migrate;

/// How long [`probe`] waits to connect, and then for the whole answer's status line.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes of the answer [`probe`] reads at most looking for the status line.
const STATUS_LINE_MAX: usize = 512;

/// Why `wafleet healthcheck` found the daemon unhealthy, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The configured port is 0 (a random one), so there is nothing to probe.
    #[error("server.port is 0 (any free port): set PORT or server.port to the daemon's port")]
    NoPort,
    /// `server.host` is a name that does not resolve.
    #[error("cannot resolve server.host {host:?}: {reason}")]
    Resolve {
        /// The configured host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// Nothing accepted the connection within [`PROBE_TIMEOUT`].
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where the daemon should listen.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The connection was accepted but no status line came back in time.
    #[error("no answer from {addr}: {source}")]
    NoAnswer {
        /// Where the daemon listens.
        addr: SocketAddr,
        /// The socket error (a timeout, a reset).
        source: std::io::Error,
    },
    /// The daemon answered something other than 200.
    #[error("GET /healthz on {addr} answered {status:?}")]
    Unhealthy {
        /// Where the daemon listens.
        addr: SocketAddr,
        /// The answer's status line (or what came instead).
        status: String,
    },
}

/// `wafleet healthcheck`: `GET /healthz` on this machine's main listener (`server.port`), `Ok`
/// when it answers 200. Connects to 127.0.0.1 (::1) when the daemon listens on every address,
/// else to `server.host` itself; every step gives up after [`PROBE_TIMEOUT`].
pub fn probe(server: &ServerSettings) -> Result<(), ProbeError> {
    if server.port == 0 {
        return Err(ProbeError::NoPort);
    }
    let addr = probe_address(&server.host, server.port)?;
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let no_answer = |source| ProbeError::NoAnswer { addr, source };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    stream
        .set_write_timeout(Some(PROBE_TIMEOUT))
        .map_err(no_answer)?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wafleet-healthcheck\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(no_answer)?;
    let mut answer = Vec::with_capacity(STATUS_LINE_MAX);
    let mut chunk = [0u8; 128];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < STATUS_LINE_MAX {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no_answer(std::io::ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(left)).map_err(no_answer)?;
        match stream.read(&mut chunk).map_err(no_answer)? {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default().trim().to_string();
    let mut parts = status.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ if status.is_empty() => Err(ProbeError::Unhealthy {
            addr,
            status: "nothing (connection closed)".into(),
        }),
        _ => Err(ProbeError::Unhealthy { addr, status }),
    }
}

/// Where the daemon listening on `host:port` is reached from this machine: loopback for an
/// unspecified address (`0.0.0.0`, `::`), the address itself otherwise, a name's first address.
fn probe_address(host: &str, port: u16) -> Result<SocketAddr, ProbeError> {
    let resolve_error = |reason: String| ProbeError::Resolve {
        host: host.to_string(),
        reason,
    };
    match host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ok((Ipv4Addr::LOCALHOST, port).into()),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => Ok((Ipv6Addr::LOCALHOST, port).into()),
        Ok(ip) => Ok((ip, port).into()),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| resolve_error(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_error("no address".into())),
    }
}

/// Body of a healthy `/healthz` or a ready `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Daemon version.
    pub version: &'static str,
    /// Backend in use (`sqlite` or `postgres`); only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// Migrations applied; only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<usize>,
    /// Every check and its state; only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<&'static str, &'static str>>,
}

/// Body of a `/readyz` that is not ready (503).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyBody {
    /// Always `unavailable`.
    pub status: &'static str,
    /// Every check and its state (`up`, `down`, `pending`, `draining`), e.g. `database`,
    /// `migrations`, `node`, and one per singleton actor (`hub`, `chat_sync`, …).
    pub checks: BTreeMap<&'static str, &'static str>,
    /// `not_ready` and a short summary naming the failed checks.
    pub error: ErrorDetail,
}

/// Liveness: answers 200 as long as the HTTP server runs.
#[utoipa::path(tag = "ops", responses((status = 200, body = HealthBody)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<HealthBody> {
    web::Json(HealthBody {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: None,
        migrations: None,
        checks: None,
    })
}

/// Readiness: 200 when the database answers, every embedded migration is applied, the node is
/// not draining and every singleton actor is up; 503 naming the failed checks otherwise (load
/// balancers stop routing here).
#[utoipa::path(tag = "ops", responses(
    (status = 200, body = HealthBody),
    (status = 503, body = NotReadyBody)
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut checks = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    if state.fleet.is_draining() {
        checks.insert("node", "draining");
        problems
            .push("this node is draining; restart devices through the admin API to resume".into());
    }
    let applied = match migrate::applied_versions(&state.db).await {
        Ok(applied) => {
            checks.insert("database", "up");
            Some(applied)
        }
        Err(err) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            checks.insert("database", "down");
            problems.push("the database does not answer".into());
            None
        }
    };
    if let Some(applied) = &applied {
        let expected = migrate::embedded_versions(matches!(state.db, crate::db::Db::Postgres(_)))
            .map_err(ApiError::internal)?;
        let pending: Vec<&String> = expected.iter().filter(|v| !applied.contains(v)).collect();
        if let Some(first) = pending.first() {
            checks.insert("migrations", "pending");
            problems.push(format!(
                "{} migration(s) pending, first {first}",
                pending.len()
            ));
        }
    }
    let mut down = Vec::new();
    for (actor, up) in state.metrics.liveness.states() {
        checks.insert(actor, if up { "up" } else { "down" });
        if !up {
            down.push(actor);
        }
    }
    if !down.is_empty() {
        problems.push(format!("down: {}", down.join(", ")));
    }
    if !problems.is_empty() {
        return Ok(HttpResponse::ServiceUnavailable().json(NotReadyBody {
            status: "unavailable",
            checks,
            error: ErrorDetail {
                code: ErrorCode::NotReady,
                message: problems.join("; "),
            },
        }));
    }
    Ok(HttpResponse::Ok().json(HealthBody {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(state.db.backend_name()),
        migrations: applied.map(|a| a.len()),
        checks: Some(checks),
    }))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// Server settings pointing at `port` on every address (the probe goes to loopback).
    fn server(port: u16) -> ServerSettings {
        ServerSettings {
            host: "0.0.0.0".into(),
            port,
            workers: 1,
            shutdown_timeout_secs: 1,
            keep_alive_secs: 1,
            trusted_proxies: Vec::new(),
        }
    }

    /// A one-connection server that reads the request and answers `reply` (nothing when None).
    fn answering(reply: Option<&'static str>) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).unwrap();
            match reply {
                Some(reply) => stream.write_all(reply.as_bytes()).unwrap(),
                None => std::thread::sleep(PROBE_TIMEOUT + Duration::from_millis(500)),
            }
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        (port, handle)
    }

    #[test]
    fn a_200_is_healthy_and_the_request_is_get_healthz() {
        let (port, server_thread) = answering(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        probe(&server(port)).unwrap();
        let request = server_thread.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn anything_else_is_unhealthy() {
        let (port, _server) = answering(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        let err = probe(&server(port)).unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        let (port, _server) = answering(Some("SSH-2.0-OpenSSH\r\n"));
        assert!(matches!(
            probe(&server(port)),
            Err(ProbeError::Unhealthy { .. })
        ));
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        let (port, _server) = answering(None);
        let started = Instant::now();
        let err = probe(&server(port)).unwrap_err();
        assert!(matches!(err, ProbeError::NoAnswer { .. }), "{err}");
        assert!(started.elapsed() < PROBE_TIMEOUT + Duration::from_secs(1));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(matches!(
            probe(&server(port)),
            Err(ProbeError::Connect { .. })
        ));
        assert!(matches!(probe(&server(0)), Err(ProbeError::NoPort)));
    }

    #[test]
    fn the_address_follows_the_listen_host() {
        assert_eq!(
            probe_address("0.0.0.0", 3000).unwrap(),
            "127.0.0.1:3000".parse().unwrap()
        );
        assert_eq!(
            probe_address("::", 3000).unwrap(),
            "[::1]:3000".parse().unwrap()
        );
        assert_eq!(
            probe_address("10.1.2.3", 80).unwrap(),
            "10.1.2.3:80".parse().unwrap()
        );
        assert!(probe_address("localhost", 80).unwrap().ip().is_loopback());
    }
}
