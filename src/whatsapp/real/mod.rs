//! The real WhatsApp connector: each device is a linked WhatsApp device through whatsapp-rust.
//!
//! [`RealConnector::connect`] builds one whatsapp-rust client per device on the dedicated
//! [`ClientRuntime`] (whatsapp-rust needs a multi-thread runtime; arbiters are
//! current-thread), with its session store [`WaStore`] on our database, and starts it. The
//! client's events travel:
//!
//! ```text
//! client event bus ──(inline, non-blocking)──▶ Tap ──unbounded──▶ forwarder task ──mpsc──▶ DeviceActor
//! ```
//!
//! The [`Tap`] runs on the client's dispatch path, so it only flips the reconnect switch (see
//! below) and queues the event; the forwarder task maps it ([`events`]), decodes history syncs
//! on a blocking thread, and waits on the actor's bounded channel (backpressure stops at the
//! forwarder, never in a client callback).
//!
//! ## One reconnect policy: ours
//! whatsapp-rust reconnects by itself (Fibonacci backoff up to 15 min). We switch that off
//! (`enable_auto_reconnect = false`) before the client starts, so its run loop ends after the
//! first failed connect or the first lost connection; the forwarder then reports
//! `Disconnected` and ends the stream, and the device actor reconnects through its supervisor
//! (backoff with jitter, admission queue). One exception is protocol, not policy: after a
//! successful QR/code pairing the server closes the stream (code 515) and the client must
//! reconnect at once to log in. The tap turns the switch on when `PairSuccess` arrives and off
//! again on `Connected`; if that login does not happen within [`PAIR_LOGIN_TIMEOUT`] the
//! session is closed and our policy takes over. The client stops for good by itself after a
//! logout or a replaced stream; we report those as `LoggedOut` / `Disconnected`.
//!
//! ## Sends and acknowledgements
//! Sends carry our pre-generated message id (`SendOptions::with_message_id`), so a retry is
//! deduplicated by WhatsApp. A send returns before the server accepts it: the server's ack
//! arrives as `Receipt { kind: Sent }` (or `Failed` for a nack), then delivered/read receipts.
//!
//! ## Store lifetime
//! Logout deletes nothing in whatsapp-rust; [`Connector::forget`] (called by the device actor
//! after a logout) ends the client and then deletes every `wa_` row of the device in one
//! transaction ([`store::wipe_device`]). Deleting a device deletes its rows by cascade.

pub mod events;
pub mod media;
pub mod runtime;
pub mod session;
pub mod store;
pub mod version;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::http::HttpClient;
use whatsapp_rust::transport::TransportFactory;
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::Client;

pub use self::runtime::ClientRuntime;
use self::session::{Fwd, Live, RealSession};
pub use self::store::WaStore;
use self::version::AppVersion;
use crate::config::{ChatSettings, WhatsappSettings};
use crate::db::{Db, Fence};
use crate::whatsapp::{Connector, ConnectorError, ConnectorEvent, Session, SessionRequest};

/// How long the login after a successful pairing may take before our policy takes over.
pub const PAIR_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `disconnect`/`forget` wait for a client's run loop to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens real WhatsApp sessions; one per daemon, shared by every device actor.
pub struct RealConnector {
    /// Where every device's session store lives.
    db: Db,
    /// The runtime all clients run on.
    runtime: Arc<ClientRuntime>,
    /// How clients reach WhatsApp (WebSocket + Noise; swappable for tests).
    transport: Arc<dyn TransportFactory>,
    /// HTTP for media uploads and version fetches.
    http: Arc<dyn HttpClient>,
    /// The announced WhatsApp Web version.
    version: Arc<AppVersion>,
    /// Skip history syncs.
    skip_history_sync: bool,
    /// What is downloaded of received media.
    media: Arc<media::MediaPolicy>,
    /// Running clients by device, so `forget` can stop one before wiping its rows.
    live: Arc<Mutex<HashMap<i64, Weak<Live>>>>,
}

impl std::fmt::Debug for RealConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealConnector")
            .field("backend", &self.db.backend_name())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Delegates to a shared transport factory (the builder takes one by value).
struct SharedTransport(Arc<dyn TransportFactory>);

#[whatsapp_rust::async_trait]
impl TransportFactory for SharedTransport {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn whatsapp_rust::transport::Transport>,
            whatsapp_rust::async_channel::Receiver<whatsapp_rust::transport::TransportEvent>,
        ),
        whatsapp_rust::anyhow::Error,
    > {
        self.0.create_transport().await
    }
}

/// Delegates to a shared HTTP client (the builder takes one by value).
struct SharedHttp(Arc<dyn HttpClient>);

#[whatsapp_rust::async_trait]
impl HttpClient for SharedHttp {
    async fn execute(
        &self,
        request: whatsapp_rust::http::HttpRequest,
    ) -> whatsapp_rust::anyhow::Result<whatsapp_rust::http::HttpResponse> {
        self.0.execute(request).await
    }
}

impl RealConnector {
    /// A connector per `settings`: its own client runtime, WhatsApp's WebSocket endpoint
    /// (`ws_url`), ureq for HTTP, and the configured version policy.
    pub fn new(
        db: Db,
        settings: &WhatsappSettings,
        chat: &ChatSettings,
    ) -> Result<Self, ConnectorError> {
        let pinned = settings
            .pinned_version()
            .map_err(|e| ConnectorError::Other(e.to_string()))?;
        let transport = whatsapp_rust::transport::TokioWebSocketTransportFactory::new()
            .with_url(settings.ws_url.clone());
        let http: Arc<dyn HttpClient> = Arc::new(whatsapp_rust::http::UreqHttpClient::new());
        let version = AppVersion::new(
            pinned,
            Duration::from_secs(settings.version_refresh_hours.saturating_mul(3600)),
            http.clone(),
        );
        Ok(Self {
            db,
            runtime: Arc::new(ClientRuntime::start(settings.runtime_threads)?),
            transport: Arc::new(transport),
            http,
            version: Arc::new(version),
            skip_history_sync: settings.skip_history_sync,
            media: Arc::new(media::MediaPolicy::new(chat)),
            live: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Replaces how clients reach WhatsApp (tests: a loopback responder).
    pub fn with_transport(mut self, transport: Arc<dyn TransportFactory>) -> Self {
        self.transport = transport;
        self
    }

    /// Replaces the HTTP client (tests and benchmarks: no network).
    pub fn with_http(mut self, http: Arc<dyn HttpClient>, pinned: (u32, u32, u32)) -> Self {
        self.version = Arc::new(AppVersion::new(
            Some(pinned),
            Duration::from_secs(3600),
            http.clone(),
        ));
        self.http = http;
        self
    }

    /// The runtime the clients run on.
    pub fn runtime(&self) -> &Arc<ClientRuntime> {
        &self.runtime
    }

    /// How many clients are running now.
    pub fn running(&self) -> usize {
        self.live
            .lock()
            .map(|live| live.values().filter(|l| l.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// Builds a device's client with our store, runtime, transport and version, with its
    /// own reconnect loop switched off; its store's writes check `fence`. Does not start it.
    pub async fn build_client(
        &self,
        device_id: i64,
        fence: Option<Fence>,
    ) -> Result<(Bot, Arc<Tap>), ConnectorError> {
        let version = self.version.current().await;
        let tap = Arc::new(Tap::new(self.runtime.handle().clone()));
        let mut builder = Bot::builder()
            .with_backend(WaStore::new(self.db.clone(), device_id).fenced(fence))
            .with_transport_factory(SharedTransport(self.transport.clone()))
            .with_http_client(SharedHttp(self.http.clone()))
            .with_runtime(self.runtime.client_runtime())
            .with_version(version)
            .with_event_handler(TapHandler(tap.clone()));
        if self.skip_history_sync {
            builder = builder.skip_history_sync();
        }
        let bot = builder
            .build()
            .await
            .map_err(|e| ConnectorError::ConnectFailed(format!("cannot build the client: {e}")))?;
        let client = bot.client();
        // Our supervisor reconnects; the client's loop may only do the post-pairing login.
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);
        let _ = tap.client.set(Arc::downgrade(&client));
        Ok((bot, tap))
    }
}

/// What the inline event handler shares with the session: the client (set after build) and
/// the queue into the forwarder task.
pub struct Tap {
    /// The client runtime (the post-pairing watchdog runs there).
    handle: tokio::runtime::Handle,
    /// The client whose reconnect switch the tap flips.
    client: OnceLock<Weak<Client>>,
    /// Into the forwarder task; set when the session starts.
    queue: OnceLock<mpsc::UnboundedSender<Fwd>>,
    /// Set once the forwarder must stop forwarding (local logout or disconnect).
    closed: AtomicBool,
}

impl Tap {
    /// A tap whose tasks run on `handle`.
    fn new(handle: tokio::runtime::Handle) -> Self {
        Self {
            handle,
            client: OnceLock::new(),
            queue: OnceLock::new(),
            closed: AtomicBool::new(false),
        }
    }
}

/// The `EventHandler` registered on the client: runs inline on its dispatch path, so it never
/// blocks, allocates only a queue slot, and ignores event kinds we do not report.
struct TapHandler(Arc<Tap>);

/// The event kinds the tap lets through.
const INTEREST: &[EventKind] = &[
    EventKind::PairingQrCode,
    EventKind::PairingCode,
    EventKind::PairSuccess,
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::StreamReplaced,
    EventKind::LoggedOut,
    EventKind::TemporaryBan,
    EventKind::Messages,
    EventKind::Receipt,
    EventKind::ServerAck,
    EventKind::HistorySync,
];

impl EventHandler for TapHandler {
    fn handle_event(&self, event: Arc<Event>) {
        let tap = &self.0;
        match &*event {
            // The server closes the stream (515) right after this; let the client log in.
            Event::PairSuccess(_) => {
                if let Some(client) = tap.client.get().and_then(Weak::upgrade) {
                    client.enable_auto_reconnect.store(true, Ordering::SeqCst);
                    drop(
                        tap.handle
                            .spawn(pair_login_watchdog(Arc::downgrade(&client))),
                    );
                }
            }
            Event::Connected(_) => {
                if let Some(client) = tap.client.get().and_then(Weak::upgrade) {
                    client.enable_auto_reconnect.store(false, Ordering::SeqCst);
                }
            }
            _ => {}
        }
        if let Some(queue) = tap.queue.get() {
            let _ = queue.send(Fwd::Event(event));
        }
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(INTEREST)
    }
}

/// Closes a session whose post-pairing login did not happen in time (then our policy
/// reconnects it; the credentials stored by the pairing are kept).
async fn pair_login_watchdog(client: Weak<Client>) {
    tokio::time::sleep(PAIR_LOGIN_TIMEOUT).await;
    if let Some(client) = client.upgrade() {
        if !client.is_logged_in() {
            tracing::warn!("no login after pairing in time; closing the session");
            client.enable_auto_reconnect.store(false, Ordering::SeqCst);
            client.disconnect().await;
        }
    }
}

#[async_trait]
impl Connector for RealConnector {
    #[tracing::instrument(skip_all, fields(device_id = request.device_id))]
    async fn connect(
        &self,
        request: SessionRequest,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<Box<dyn Session>, ConnectorError> {
        let SessionRequest {
            device_id, fence, ..
        } = request;
        // A previous client of this device must not share its store with the new one.
        let previous = self.take_live(device_id);
        if let Some(previous) = previous {
            previous.stop(STOP_TIMEOUT).await;
        }
        let this = self.clone_parts();
        let live = self
            .runtime
            .run(async move {
                let (bot, tap) = this.build_client(device_id, fence).await?;
                Ok::<_, ConnectorError>(Live::start(
                    bot,
                    tap,
                    events,
                    this.runtime.clone(),
                    this.media.clone(),
                ))
            })
            .await??;
        if let Ok(mut registry) = self.live.lock() {
            registry.insert(device_id, Arc::downgrade(&live));
        }
        Ok(Box::new(RealSession::new(
            device_id,
            live,
            self.runtime.clone(),
        )))
    }

    fn name(&self) -> &'static str {
        "real"
    }

    /// Stops the device's client if one still runs (its last flush must not land after the
    /// wipe), then deletes all its `wa_` rows in one transaction.
    async fn forget(&self, device_id: i64) -> Result<(), ConnectorError> {
        if let Some(live) = self.take_live(device_id) {
            live.stop(STOP_TIMEOUT).await;
        }
        store::wipe_device(&self.db, device_id)
            .await
            .map_err(|e| ConnectorError::Other(format!("cannot wipe the session store: {e}")))?;
        tracing::info!(device_id, "session store wiped");
        Ok(())
    }
}

impl RealConnector {
    /// The running client of a device, removed from the registry.
    fn take_live(&self, device_id: i64) -> Option<Arc<Live>> {
        self.live
            .lock()
            .ok()
            .and_then(|mut registry| registry.remove(&device_id))
            .and_then(|weak| weak.upgrade())
    }

    /// A copy that can move onto the client runtime (everything inside is shared).
    fn clone_parts(&self) -> RealConnector {
        RealConnector {
            db: self.db.clone(),
            runtime: self.runtime.clone(),
            transport: self.transport.clone(),
            http: self.http.clone(),
            version: self.version.clone(),
            skip_history_sync: self.skip_history_sync,
            media: self.media.clone(),
            live: self.live.clone(),
        }
    }
}
