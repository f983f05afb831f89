//! `Application`: migrations, pools, actors in dependency order, then the HTTP server.
//!
//! Migrations run first, on a thread without an async runtime (see [`crate::db::migrate`]), so
//! a fresh database is complete before anything reads it. The server handles SIGINT/SIGTERM
//! itself: it stops accepting, lets in-flight requests finish within
//! `server.shutdown_timeout_secs`, and then [`Application::run_until_stopped`] returns.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;

use crate::auth::{bootstrap, AuthService};
use crate::config::Settings;
use crate::db::{migrate, Db};
use crate::metrics::Metrics;
use crate::web::{self as http, AppState};

/// A built, not yet running, daemon.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Migrates and connects the database, binds the listener, and builds the server.
    /// Must run inside an actix `System`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let database_url = settings.database.redacted_url();
        tracing::info!(database = %database_url, "applying migrations");
        let report = migrate::run_pending_async(&settings.database)
            .await
            .with_context(|| format!("cannot migrate database {database_url}"))?;
        tracing::info!(applied = report.applied.len(), versions = ?report.applied, "database schema is current");
        let db = Db::connect(&settings.database)
            .await
            .with_context(|| format!("cannot connect to database {database_url}"))?;

        let auth = AuthService::new(&settings.auth).context("cannot set up password hashing")?;
        bootstrap::ensure_admin(&db, &settings, &auth.hasher)
            .await
            .context("cannot create the admin account")?;

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let state = web::Data::new(AppState {
            db,
            settings: Arc::new(settings),
            metrics: Metrics::new().context("cannot create metrics")?,
            auth,
            openapi_json: OnceLock::new(),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || http::app(app_state.clone()))
            .listen(listener)?
            .workers(workers)
            .shutdown_timeout(shutdown_timeout)
            .client_request_timeout(Duration::from_secs(30))
            .run();
        tracing::info!(
            port,
            workers,
            backend = state.db.backend_name(),
            "wafleet listening"
        );
        Ok(Application {
            port,
            server,
            state,
        })
    }

    /// The port actually bound (useful when the setting was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully (tests and embedders).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The shared state, for tests that look behind the API.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], then shuts down in order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("HTTP server failed")?;
        tracing::info!("HTTP server stopped; shutting down");
        Ok(())
    }
}
