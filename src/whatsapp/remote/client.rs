//! The client side of the `wafleet sim` protocol: [`RemoteSimConnector`] (what a daemon with
//! `[sim] remote` uses instead of the in-process network), its sessions, and [`SimControl`]
//! (what a harness uses to read the simulator's record and to scan or inject faults).
//!
//! Both ride on a [`Link`]: one TCP connection, a reader task that hands replies to their
//! waiting callers (by request id) and session events to the device's channel, and a writer
//! shared by callers. When the connection ends, waiting callers get `NotConnected`, and a
//! session's device gets `Disconnected` and the end of its stream, so the device actor
//! reconnects with backoff as it would after a network drop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::io::BufReader;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::protocol::{
    read_json, write_json, ControlCall, Hello, Outcome, Request, ServerLine, SessionCall,
};
use crate::whatsapp::sim::{Fault, SimStats};
use crate::whatsapp::{
    Connector, ConnectorError, ConnectorEvent, Group, Location, MessageKind, OutgoingMedia,
    Session, SessionRequest,
};

/// How long opening a connection to the simulator may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens device sessions on a `wafleet sim` process; one per daemon.
#[derive(Debug, Clone)]
pub struct RemoteSimConnector {
    /// `host:port` of the simulator.
    address: String,
    /// This daemon's cluster node name, told with each session.
    client: Option<String>,
}

impl RemoteSimConnector {
    /// A connector onto the simulator at `address` (`host:port`). Connects lazily, per session.
    pub fn new(address: String) -> Self {
        Self {
            address,
            client: None,
        }
    }

    /// The same connector, telling the simulator that its sessions are `client`'s.
    pub fn for_client(mut self, client: Option<String>) -> Self {
        self.client = client;
        self
    }
}

#[async_trait]
impl Connector for RemoteSimConnector {
    async fn connect(
        &self,
        request: SessionRequest,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<Box<dyn Session>, ConnectorError> {
        let hello = Hello::Connect {
            device_id: request.device_id,
            jid: request.jid,
            client: self.client.clone(),
        };
        let link = Link::open(&self.address, &hello, Some(events)).await?;
        Ok(Box::new(RemoteSession { link }))
    }

    fn name(&self) -> &'static str {
        "sim"
    }
}

/// One device's session on the remote simulator.
#[derive(Debug)]
struct RemoteSession {
    /// Its connection; dropping it ends the session at the simulator.
    link: Link,
}

#[async_trait]
impl Session for RemoteSession {
    async fn request_pair_code(&self, phone: &str) -> Result<String, ConnectorError> {
        let phone = phone.to_owned();
        self.link.call(SessionCall::RequestPairCode { phone }).await
    }

    async fn send_text(
        &self,
        to: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ConnectorError> {
        let call = SessionCall::SendText {
            to: to.to_owned(),
            message_id: message_id.to_owned(),
            text: text.to_owned(),
        };
        self.link.call(call).await
    }

    async fn send_media(
        &self,
        to: &str,
        message_id: &str,
        file: OutgoingMedia,
    ) -> Result<(), ConnectorError> {
        let call = SessionCall::SendMedia {
            to: to.to_owned(),
            message_id: message_id.to_owned(),
            file,
        };
        self.link.call(call).await
    }

    async fn send_location(
        &self,
        to: &str,
        message_id: &str,
        place: &Location,
    ) -> Result<(), ConnectorError> {
        let call = SessionCall::SendLocation {
            to: to.to_owned(),
            message_id: message_id.to_owned(),
            place: place.clone(),
        };
        self.link.call(call).await
    }

    async fn groups(&self) -> Result<Vec<Group>, ConnectorError> {
        self.link.call(SessionCall::Groups).await
    }

    async fn download(
        &self,
        kind: MessageKind,
        reference: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let call = SessionCall::Download {
            kind,
            reference: reference.to_owned(),
            max_bytes,
        };
        let encoded: String = self.link.call(call).await?;
        BASE64.decode(encoded.as_bytes()).map_err(|err| {
            ConnectorError::Other(format!("unexpected reply from the simulator: {err}"))
        })
    }

    async fn set_typing(&self, to: &str, typing: bool) -> Result<(), ConnectorError> {
        let to = to.to_owned();
        self.link.call(SessionCall::SetTyping { to, typing }).await
    }

    async fn mark_read(&self, chat: &str, message_ids: &[String]) -> Result<(), ConnectorError> {
        let call = SessionCall::MarkRead {
            chat: chat.to_owned(),
            message_ids: message_ids.to_vec(),
        };
        self.link.call(call).await
    }

    async fn logout(&self) -> Result<(), ConnectorError> {
        self.link.call(SessionCall::Logout).await
    }

    /// Asks the simulator to end the session; a link already gone has nothing left to end.
    async fn disconnect(&self) {
        let ended: Result<(), ConnectorError> = self.link.call(SessionCall::Disconnect).await;
        if let Err(err) = ended {
            tracing::debug!(error = %err, "simulator link already gone at disconnect");
        }
    }
}

/// A control connection to a `wafleet sim` process: the network's record and controls, as
/// [`SimNetwork`](crate::whatsapp::sim::SimNetwork) offers them in-process.
#[derive(Debug)]
pub struct SimControl {
    /// The connection.
    link: Link,
}

impl SimControl {
    /// Connects to the simulator at `address` (`host:port`).
    pub async fn connect(address: &str) -> Result<Self, ConnectorError> {
        let link = Link::open(address, &Hello::Control, None).await?;
        Ok(Self { link })
    }

    /// Counters and gauges (`SimNetwork::stats`).
    pub async fn stats(&self) -> Result<SimStats, ConnectorError> {
        self.link.call(ControlCall::Stats).await
    }

    /// Every message id delivered so far (`SimNetwork::delivered_ids`).
    pub async fn delivered_ids(&self) -> Result<HashSet<String>, ConnectorError> {
        self.link.call(ControlCall::DeliveredIds).await
    }

    /// How often a message id was sent (`SimNetwork::send_attempts`).
    pub async fn send_attempts(&self, message_id: &str) -> Result<u32, ConnectorError> {
        let message_id = message_id.to_owned();
        self.link
            .call(ControlCall::SendAttempts { message_id })
            .await
    }

    /// Completes a device's pairing as a phone would (`SimNetwork::scan`); returns the JID.
    pub async fn scan(&self, device_id: i64) -> Result<String, ConnectorError> {
        self.link.call(ControlCall::Scan { device_id }).await
    }

    /// Injects a fault into a device (`SimNetwork::inject`).
    pub async fn inject(&self, device_id: i64, fault: Fault) -> Result<(), ConnectorError> {
        self.link
            .call(ControlCall::Inject { device_id, fault })
            .await
    }
}

/// Callers waiting for replies, by request id.
#[derive(Debug, Default)]
struct Pending {
    /// Who waits for which reply.
    waiting: HashMap<u64, oneshot::Sender<Outcome>>,
    /// Set when the connection ended: nobody may wait any more.
    closed: bool,
}

/// One connection to the simulator.
#[derive(Debug)]
struct Link {
    /// Requests go out here, one whole line at a time.
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Shared with the reader task.
    pending: Arc<Mutex<Pending>>,
    /// The next request id (0 was the first line's).
    next_id: AtomicU64,
    /// Reads replies and events; aborted with the link.
    reader: JoinHandle<()>,
}

impl Link {
    /// Connects, sends `hello`, and waits for its reply. Session events go to `events`.
    async fn open(
        address: &str,
        hello: &Hello,
        events: Option<mpsc::Sender<ConnectorEvent>>,
    ) -> Result<Link, ConnectorError> {
        let unreachable =
            |err: String| ConnectorError::ConnectFailed(format!("simulator at {address}: {err}"));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|err| unreachable(err.to_string()))?;
        // Events are small and latency matters more than packet count.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let (read, write) = stream.into_split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_lines(read, pending.clone(), events));
        let link = Link {
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: AtomicU64::new(1),
            reader,
        };
        link.exchange(0, hello).await.map_err(|err| match err {
            ConnectorError::NotConnected => unreachable("closed the connection".into()),
            other => other,
        })?;
        Ok(link)
    }

    /// Sends `call` as a new request and decodes the reply's value.
    async fn call<C: Serialize, T: DeserializeOwned>(&self, call: C) -> Result<T, ConnectorError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let value = self.exchange(id, &Request { id, call }).await?;
        serde_json::from_value(value).map_err(|err| {
            ConnectorError::Other(format!("unexpected reply from the simulator: {err}"))
        })
    }

    /// Writes `line` and waits for reply `id`; `NotConnected` when the connection is gone.
    async fn exchange<L: Serialize>(&self, id: u64, line: &L) -> Result<Value, ConnectorError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return Err(ConnectorError::NotConnected);
            }
            pending.waiting.insert(id, tx);
        }
        let written = write_json(&mut *self.writer.lock().await, line).await;
        if let Err(err) = written {
            lock(&self.pending).waiting.remove(&id);
            tracing::debug!(error = %err, "cannot write to the simulator");
            return Err(ConnectorError::NotConnected);
        }
        match rx.await {
            Ok(Outcome::Ok(value)) => Ok(value),
            Ok(Outcome::Err(err)) => Err(err),
            Err(_) => Err(ConnectorError::NotConnected),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Drops the read half (the write half goes with the link): the simulator sees the
        // connection close and ends the session.
        self.reader.abort();
    }
}

/// The pending map, also after a panic elsewhere (nothing panics while holding it).
fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Dispatches server lines until the connection ends, then fails every waiting caller and, for
/// a session whose stream was still open, reports `Disconnected` and ends the stream.
async fn read_lines(
    read: OwnedReadHalf,
    pending: Arc<Mutex<Pending>>,
    mut events: Option<mpsc::Sender<ConnectorEvent>>,
) {
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let reason = loop {
        match read_json::<ServerLine, _>(&mut reader, &mut line).await {
            Ok(Some(ServerLine::Reply(reply))) => {
                let waiter = lock(&pending).waiting.remove(&reply.re);
                if let Some(waiter) = waiter {
                    // The caller may have given up (its future dropped); nothing to do then.
                    let _ = waiter.send(reply.outcome);
                }
            }
            Ok(Some(ServerLine::Event(event))) => {
                if let Some(sender) = &events {
                    if sender.send(event).await.is_err() {
                        events = None;
                    }
                }
            }
            Ok(Some(ServerLine::Closed)) => events = None,
            Ok(None) => break "the simulator closed the connection".to_owned(),
            Err(err) => break format!("simulator connection failed: {err}"),
        }
    };
    {
        let mut pending = lock(&pending);
        pending.closed = true;
        pending.waiting.clear();
    }
    if let Some(sender) = events {
        tracing::info!(%reason, "simulator link lost");
        let _ = sender.send(ConnectorEvent::Disconnected { reason }).await;
    }
}
