//! `Application`: migrations, pools, actors in dependency order, then the HTTP server.
//!
//! Migrations run first, on a thread without an async runtime (see [`crate::db::migrate`]), so
//! a fresh database is complete before anything reads it. The server handles SIGINT/SIGTERM
//! itself: it stops accepting, lets in-flight requests finish within
//! `server.shutdown_timeout_secs`, and then [`Application::run_until_stopped`] returns.
//!
//! Every singleton actor (hub, chat mirror, replies, throttle, campaign and sequence engines,
//! device supervisor) runs under an `actix::Supervisor` with a [`crate::metrics::Beacon`] from
//! the liveness registry, so a stopped one is restarted in place and `/readyz` sees it down.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use std::sync::atomic::AtomicBool;

use actix::{Addr, Supervisor};

use crate::auth::changes::AccessChanges;
use crate::auth::{bootstrap, AuthService};
use crate::broadcast::campaign::engine::{CampaignEngine, EngineDeps};
use crate::broadcast::campaign::messages::StopLanes;
use crate::broadcast::metrics::BroadcastMetrics;
use crate::broadcast::replies::Replies;
use crate::broadcast::sequence::engine::{SequenceDeps, SequenceEngine};
use crate::broadcast::throttle::Throttle;
use crate::chat::actor::{ChatMetrics, ChatObserver, ChatSync};
use crate::chat::media::MediaStore;
use crate::chat::messages::ChatInbox;
use crate::chat::messages::Drain;
use crate::clock::Clock;
use crate::cluster::identity::NodeIdentity;
use crate::cluster::{Cluster, ClusterView};
use crate::config::{ConfigError, ConnectorKind, DatabaseKind, Settings};
use crate::db::single_node::{self, FileLock};
use crate::db::{migrate, postgres, Db};
use crate::device::admission::Priority;
use crate::device::events::{self, EventBus};
use crate::device::messages::Shutdown;
use crate::device::supervisor::{DeviceSupervisor, FleetMetrics, SupervisorDeps};
use crate::device::{demo, Fleet};
use crate::hub::{self, HubMetrics};
use crate::metrics::Metrics;
use crate::web::{self as http, AppState};
use crate::whatsapp::real::RealConnector;
use crate::whatsapp::remote::RemoteSimConnector;
use crate::whatsapp::sim::{SimConnector, SimNetwork};
use crate::whatsapp::Connector;

/// A built, not yet running, daemon.
pub struct Application {
    port: u16,
    server: Server,
    /// The `metrics.listen` listener and its port, when configured.
    metrics_server: Option<(Server, u16)>,
    state: web::Data<AppState>,
    /// The chat mirror, written out at shutdown.
    chat: Addr<ChatSync>,
    /// The SQLite file's lock (one daemon per file), held while the daemon runs.
    _single_node: Option<FileLock>,
}

impl Application {
    /// Migrates and connects the database, binds the listener, and builds the server.
    /// Must run inside an actix `System`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        check_tls(&settings).await?;
        let single_node = single_node::lock(&settings.database)
            .map_err(|cause| ConfigError(format!("database.url: {cause}")))?;
        let database_url = settings.database.redacted_url();
        tracing::info!(database = %database_url, "applying migrations");
        let report = migrate::run_pending_async(&settings.database)
            .await
            .with_context(|| format!("cannot migrate database {database_url}"))?;
        tracing::info!(applied = report.applied.len(), versions = ?report.applied, "database schema is current");
        let db = Db::connect(&settings.database)
            .await
            .with_context(|| format!("cannot connect to database {database_url}"))?;

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let identity = NodeIdentity::from_settings(&settings, port);
        let cluster_view = Cluster::view_for(&db, &identity);

        let auth = AuthService::new(&settings.auth).context("cannot set up password hashing")?;
        bootstrap::ensure_admin(&db, &settings, &auth.hasher)
            .await
            .context("cannot create the admin account")?;
        // Deletes expired and idle sessions every auth.session_purge_interval_secs.
        crate::auth::purge::start(db.clone(), &settings.auth);

        let metrics = Metrics::new().context("cannot create metrics")?;
        let bus = EventBus::new();
        let hub_metrics =
            HubMetrics::register(&metrics.registry).context("cannot register hub metrics")?;
        let liveness = metrics.liveness.clone();
        let hub = hub::start(&settings.redis, hub_metrics.clone(), liveness.beacon("hub"))
            .map_err(|cause| ConfigError(format!("redis.url: {cause}")))?;
        events::forward_to_hub(&bus, hub.clone());
        let settings = Arc::new(settings);
        let replies = Replies::new(
            db.clone(),
            settings.broadcast.clone(),
            hub.clone(),
            liveness.beacon("replies"),
        );
        let replies = Supervisor::start(move |_| replies);
        let chat = ChatSync::new(
            db.clone(),
            hub.clone(),
            settings.chat.clone(),
            vec![replies.recipient()],
            ChatObserver {
                metrics: ChatMetrics::register(&metrics.registry)
                    .context("cannot register chat metrics")?,
                beacon: liveness.beacon("chat_sync"),
            },
        );
        let chat = Supervisor::start(move |_| chat);
        let inbox = ChatInbox {
            messages: chat.clone().recipient(),
            receipts: chat.clone().recipient(),
            changes: chat.clone().recipient(),
        };
        let fleet = start_fleet(&settings, &db, &metrics, bus, inbox, &identity.id).await?;
        let campaigns = start_campaigns(
            &settings,
            &db,
            &fleet,
            &hub,
            &metrics,
            &cluster_view,
            &auth.changes,
        )?;
        let cluster = Cluster::join(
            &db,
            cluster_view.clone(),
            &settings,
            identity,
            &fleet.supervisor,
            &metrics.registry,
        )
        .await
        .context("cannot load devices")?;
        start_demo_devices(&settings, &db, &fleet, &cluster).await?;
        let clock = Clock::system();
        let sequences = SequenceEngine::new(SequenceDeps {
            db: db.clone(),
            hub: hub.clone(),
            broadcast: Arc::new(settings.broadcast.clone()),
            clock: clock.clone(),
            cluster: cluster_view,
        })
        .watched(liveness.beacon("sequence_engine"));
        let sequences = Supervisor::start(move |_| sequences);
        let webhooks = crate::webhooks::start(crate::webhooks::DispatcherDeps {
            db: db.clone(),
            settings: settings.webhooks.clone(),
            hub: hub.clone(),
            metrics: crate::webhooks::metrics::WebhookMetrics::register(&metrics.registry)
                .context("cannot register webhook metrics")?,
            beacon: liveness.beacon("webhooks"),
        })
        .context("cannot build the webhook HTTP client")?;
        // Deletes rows older than [retention] allows every retention.interval_hours.
        crate::retention::start(db.clone(), settings.retention.clone(), clock.clone());

        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let keep_alive_secs = settings.server.keep_alive_secs;
        let state = web::Data::new(AppState {
            db,
            settings,
            metrics,
            auth,
            fleet,
            cluster,
            hub,
            hub_metrics,
            campaigns,
            sequences,
            chat_zones: chat.clone().recipient(),
            webhooks,
            clock,
            openapi_json: OnceLock::new(),
            going_away: tokio::sync::watch::Sender::new(false),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || http::app(app_state.clone()))
            .listen(listener)?
            .workers(workers)
            .shutdown_timeout(shutdown_timeout)
            // SIGINT/SIGTERM are ours: the shutdown runs in order (run_until_stopped).
            .disable_signals()
            .client_request_timeout(Duration::from_secs(30))
            .keep_alive(Duration::from_secs(keep_alive_secs))
            // Small WebSocket frames must not wait for delayed ACKs (~40 ms).
            .tcp_nodelay(true)
            .run();
        tracing::info!(
            port,
            workers,
            backend = state.db.backend_name(),
            "wafleet listening"
        );
        let metrics_server = metrics_listener(&state)?;
        Ok(Application {
            port,
            server,
            metrics_server,
            state,
            chat,
            _single_node: single_node,
        })
    }

    /// The port actually bound (useful when the setting was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `metrics.listen` listener, when configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// A handle that stops the server gracefully (tests and embedders).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The shared state, for tests that look behind the API.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], then shuts down.
    ///
    /// On a signal, in this order and within `server.shutdown_timeout_secs` in all: stop
    /// accepting connections; withdraw the campaign lanes (claimed, unsent rows go back to
    /// pending; a send already handed to WhatsApp is recorded as sent); write the chat mirror's
    /// queue; close WebSockets with 1001; let in-flight requests finish; disconnect the devices.
    /// Then, at most 2 s more, write what they delivered meanwhile. A step that runs out of time is logged and the next
    /// one starts: nothing accepted is lost, as the outbox and WhatsApp's redelivery cover it.
    /// After [`ServerHandle::stop`] (tests, embedders) only the devices are disconnected, within
    /// the same budget.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let metrics_handle = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let handle = self.server.handle();
        let mut serving = actix_web::rt::spawn(self.server);
        let signalled = tokio::select! {
            served = &mut serving => Err(served),
            signal = stop_signal() => Ok(signal),
        };
        let state = &self.state;
        let budget = Duration::from_secs(state.settings.server.shutdown_timeout_secs);
        let (deadline, served) = match signalled {
            Ok(signal) => {
                tracing::info!(signal, budget_secs = budget.as_secs(), "stopping");
                let deadline = tokio::time::Instant::now() + budget;
                handle.pause().await;
                state.cluster.freeze();
                step(
                    "campaign lanes withdrawn",
                    deadline,
                    state.campaigns.send(StopLanes),
                )
                .await;
                step("chat mirror written", deadline, self.chat.send(Drain)).await;
                state.going_away.send_replace(true);
                if !step("HTTP requests finished", deadline, handle.stop(true)).await {
                    handle.stop(false).await;
                }
                (deadline, serving.await)
            }
            Err(served) => (tokio::time::Instant::now() + budget, served),
        };
        let served = match served {
            Ok(result) => result.context("HTTP server failed"),
            Err(err) => Err(anyhow::anyhow!("HTTP server task failed: {err}")),
        };
        if let Some(handle) = metrics_handle {
            handle.stop(true).await;
        }
        tracing::info!("HTTP server stopped; disconnecting devices");
        let disconnect = async {
            if state.fleet.supervisor.send(Shutdown).await.is_err() {
                tracing::warn!("device supervisor was already gone at shutdown");
            }
        };
        // Within the budget too: sessions still closing then are dropped with the process.
        step("devices disconnected", deadline, disconnect).await;
        // The other nodes take this node's devices now rather than once the leases expire.
        let left = tokio::time::Instant::now() + Duration::from_secs(2);
        step("device leases given up", left, state.cluster.leave()).await;
        // What the devices delivered while they disconnected.
        let last_writes = tokio::time::Instant::now() + Duration::from_secs(2);
        step("chat mirror written", last_writes, self.chat.send(Drain)).await;
        // Events of the above queued, unstarted deliveries handed back for the next start.
        step(
            "webhook queue written",
            last_writes,
            state.webhooks.send(crate::webhooks::messages::Drain),
        )
        .await;
        tracing::info!("shutdown complete");
        served
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and names it.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// Runs one shutdown step until `deadline`; logs how long it took, or that it ran out of time
/// (answers false then).
async fn step<F: std::future::Future>(what: &str, deadline: tokio::time::Instant, work: F) -> bool {
    let started = std::time::Instant::now();
    match tokio::time::timeout_at(deadline, work).await {
        Ok(_) => {
            tracing::info!(
                step = what,
                ms = started.elapsed().as_millis() as u64,
                "shutdown step done"
            );
            true
        }
        Err(_) => {
            tracing::warn!(
                step = what,
                "shutdown step ran out of time (server.shutdown_timeout_secs)"
            );
            false
        }
    }
}

/// TLS settings that can never work (an untrusted or expired certificate, a host name that does
/// not match, a server without TLS) stop the daemon before it starts, as a [`ConfigError`]
/// naming `database.url` or `redis.url` (exit status 2).
async fn check_tls(settings: &Settings) -> anyhow::Result<()> {
    if let DatabaseKind::Postgres = settings.database.kind()? {
        postgres::check_tls(settings.database.url.expose_secret())
            .await
            .map_err(|cause| ConfigError(format!("database.url: {cause}")))?;
    }
    hub::redis_tls::check(&settings.redis)
        .await
        .map_err(|cause| ConfigError(format!("redis.url: {cause}")))?;
    Ok(())
}

/// Binds the `metrics.listen` listener (one worker, `/metrics` only), when configured.
fn metrics_listener(state: &web::Data<AppState>) -> anyhow::Result<Option<(Server, u16)>> {
    let address = state.settings.metrics.listen.as_str();
    if address.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(address)
        .with_context(|| format!("cannot listen on metrics.listen = {address}"))?;
    let port = listener.local_addr()?.port();
    let app_state = state.clone();
    let server = HttpServer::new(move || http::scrape::metrics_app(app_state.clone()))
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .run();
    tracing::info!(address, port, "metrics listening");
    Ok(Some((server, port)))
}

/// With `--simulate N`: makes sure the demo devices exist and are pairing.
async fn start_demo_devices(
    settings: &Settings,
    db: &Db,
    fleet: &Fleet,
    cluster: &Cluster,
) -> anyhow::Result<()> {
    let count = settings.sim.effective().demo_devices;
    if count == 0 {
        return Ok(());
    }
    let started = demo::ensure_demo_devices(db, settings, count)
        .await
        .context("cannot create demo devices")?;
    for device in started {
        cluster
            .run_device(&fleet.supervisor, device, Priority::Normal)
            .await
            .context("cannot start demo devices")?;
    }
    Ok(())
}

/// Starts the Throttle and the CampaignEngine (which resumes running campaigns).
fn start_campaigns(
    settings: &Arc<Settings>,
    db: &Db,
    fleet: &Fleet,
    hub: &actix::Addr<crate::hub::Hub>,
    metrics: &Metrics,
    cluster: &ClusterView,
    access: &AccessChanges,
) -> anyhow::Result<actix::Addr<CampaignEngine>> {
    // Pacing runs on the simulator's clock; real devices always pace in real time.
    let time_scale = match settings.whatsapp.connector {
        ConnectorKind::Sim => settings.sim.time_scale,
        ConnectorKind::Real => 1.0,
    };
    let broadcast_metrics = BroadcastMetrics::register(&metrics.registry)
        .context("cannot register broadcast metrics")?;
    let throttle = Throttle::new(time_scale)
        .watched(metrics.liveness.beacon("throttle"))
        .observed(broadcast_metrics.clone());
    let throttle = Supervisor::start(move |_| throttle);
    let engine = CampaignEngine::new(EngineDeps {
        db: db.clone(),
        broadcast: Arc::new(settings.broadcast.clone()),
        fleet: fleet.clone(),
        hub: hub.clone(),
        throttle,
        media: MediaStore::new(settings.chat.media_dir.clone()),
        time_scale,
        metrics: broadcast_metrics,
        cluster: cluster.clone(),
        access: access.clone(),
    })
    .watched(metrics.liveness.beacon("campaign_engine"));
    Ok(Supervisor::start(move |_| engine))
}

/// Starts the device supervisor with its connector (the devices start once the node joins,
/// see [`Cluster::join`]).
async fn start_fleet(
    settings: &Settings,
    db: &Db,
    metrics: &Metrics,
    bus: EventBus,
    chat: ChatInbox,
    node_id: &str,
) -> anyhow::Result<Fleet> {
    let sim_settings = settings.sim.effective();
    // The network lives here, or in a `wafleet sim` process (then there is none to expose).
    let (connector, sim): (Arc<dyn Connector>, _) = match settings.whatsapp.connector {
        ConnectorKind::Sim if sim_settings.remote.is_empty() => {
            let sim = SimNetwork::new(sim_settings.clone());
            sim.set_media_download(settings.chat.media_download);
            sim.start_chatter();
            (Arc::new(SimConnector::new(sim.clone())), Some(sim))
        }
        ConnectorKind::Sim => (
            // The simulator tells two daemons' sessions of one device apart by node name.
            Arc::new(
                RemoteSimConnector::new(sim_settings.remote.clone())
                    .for_client(Some(node_id.to_owned())),
            ),
            None,
        ),
        ConnectorKind::Real => (
            Arc::new(
                RealConnector::new(db.clone(), &settings.whatsapp, &settings.chat)
                    .context("cannot start the real WhatsApp connector")?,
            ),
            None,
        ),
    };
    tracing::info!(
        connector = connector.name(),
        remote = sim_settings.remote,
        time_scale = sim_settings.time_scale,
        "device connector ready"
    );
    let draining = Arc::new(AtomicBool::new(false));
    let supervisor = DeviceSupervisor::new(SupervisorDeps {
        db: db.clone(),
        connector,
        bus: bus.clone(),
        settings: settings.fleet.clone(),
        time_scale: sim_settings.time_scale,
        metrics: FleetMetrics::register(&metrics.registry)
            .context("cannot register fleet metrics")?,
        draining: draining.clone(),
        chat,
    })
    .watched(metrics.liveness.beacon("device_supervisor"));
    let supervisor = Supervisor::start(move |_| supervisor);
    Ok(Fleet {
        supervisor,
        bus,
        sim,
        draining,
    })
}
