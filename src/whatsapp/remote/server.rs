//! `wafleet sim`: one [`SimNetwork`] served over the line protocol of [`super`].
//!
//! Each accepted connection gets a task. Its writer task owns the socket's write half and
//! drains one channel of [`ServerLine`]s, so events and replies never interleave mid-line. A
//! session connection opens a [`SimConnector`] session, forwards its events, and runs each
//! request in its own task (a slow send does not hold up `set_typing`); when the connection
//! closes, the session is disconnected, as a WhatsApp server drops a vanished client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::protocol::{
    read_json, read_line, write_json, ControlCall, Hello, Outcome, ProtocolError, Reply, Request,
    RequestId, ServerLine, SessionCall,
};
use crate::config::SimSettings;
use crate::whatsapp::sim::{SimConnector, SimError, SimNetwork};
use crate::whatsapp::{Connector, ConnectorError, Session, SessionRequest, EVENT_CHANNEL_CAPACITY};

/// Lines waiting for a connection's writer; a slow reader makes events and replies wait.
const OUT_CAPACITY: usize = 64;

/// Runs the simulator on `listen` until SIGINT, with the `[sim]` settings. Prints
/// `{"listening":"<addr>"}` on stdout once bound, so a harness that asked for port 0 learns it.
pub fn run(settings: SimSettings, listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, listen))
}

/// Accepts connections until SIGINT.
async fn serve(settings: SimSettings, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    println!(
        "{}",
        serde_json::json!({ "listening": address.to_string() })
    );
    let network = SimNetwork::new(settings.effective());
    network.start_chatter();
    tracing::info!(%address, time_scale = settings.time_scale, "simulator listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(network.clone(), stream, peer));
                }
                Err(err) => tracing::warn!(error = %err, "accept failed"),
            },
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot wait for SIGINT")?;
                tracing::info!("simulator stopped");
                return Ok(());
            }
        }
    }
}

/// Serves one connection: reads its first line, then a session or the control interface.
#[tracing::instrument(skip(network, stream))]
async fn serve_connection(network: SimNetwork, stream: TcpStream, peer: SocketAddr) {
    // Events are small and latency matters more than packet count.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let (out, lines) = mpsc::channel(OUT_CAPACITY);
    let writer = tokio::spawn(write_lines(write, lines));
    let mut line = String::new();
    match read_json::<Hello, _>(&mut reader, &mut line).await {
        Ok(Some(Hello::Connect {
            device_id,
            jid,
            client,
        })) => {
            let connector = SimConnector::new(network).for_client(client);
            serve_session(connector, reader, out, device_id, jid).await;
        }
        Ok(Some(Hello::Control)) => {
            reply(&out, 0, Ok(Value::Null)).await;
            serve_requests(reader, out, move |call| control(network.clone(), call)).await;
        }
        Ok(None) => drop(out),
        Err(err) => {
            tracing::warn!(error = %err, "bad first line");
            let err = ConnectorError::Other(format!("bad first line: {err}"));
            reply(&out, 0, Err(err)).await;
            drop(out);
        }
    }
    // Every sender is gone now (the arms consumed `out`): the writer flushes and ends.
    if writer.await.is_err() {
        tracing::warn!("connection writer failed");
    }
}

/// Opens a device session, forwards its events, and answers its requests until the client
/// goes; then disconnects it.
#[tracing::instrument(skip(connector, reader, out, jid))]
async fn serve_session(
    connector: SimConnector,
    reader: BufReader<OwnedReadHalf>,
    out: mpsc::Sender<ServerLine>,
    device_id: i64,
    jid: Option<String>,
) {
    let (events, mut stream) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let request = SessionRequest {
        device_id,
        jid,
        fence: None,
    };
    let session: Arc<dyn Session> = match connector.connect(request, events).await {
        Ok(session) => Arc::from(session),
        Err(err) => {
            reply(&out, 0, Err(err)).await;
            return;
        }
    };
    // Before any event: the client learns the connect result first.
    reply(&out, 0, Ok(Value::Null)).await;
    let forward = out.clone();
    tokio::spawn(async move {
        while let Some(event) = stream.recv().await {
            if forward.send(ServerLine::Event(event)).await.is_err() {
                return;
            }
        }
        // The writer may be gone with the client; nothing else to tell then.
        let _ = forward.send(ServerLine::Closed).await;
    });
    let handler = session.clone();
    serve_requests(reader, out, move |call: SessionCall| {
        let session = handler.clone();
        async move { session_call(session.as_ref(), call).await }
    })
    .await;
    session.disconnect().await;
    tracing::debug!("session connection closed");
}

/// Reads requests until the client closes, answering each from its own task with `handle`.
/// A line that parses but names no known call gets an error reply; a broken line ends the
/// connection, since nothing after it can be trusted to be in step.
async fn serve_requests<C, H, F>(
    mut reader: BufReader<OwnedReadHalf>,
    out: mpsc::Sender<ServerLine>,
    handle: H,
) where
    C: DeserializeOwned + Send + 'static,
    H: Fn(C) -> F,
    F: Future<Output = Result<Value, ConnectorError>> + Send + 'static,
{
    let mut line = String::new();
    loop {
        match read_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "closing connection");
                return;
            }
        }
        match serde_json::from_str::<Request<C>>(&line) {
            Ok(request) => {
                let call = handle(request.call);
                let out = out.clone();
                tokio::spawn(async move { reply(&out, request.id, call.await).await });
            }
            Err(err) => match serde_json::from_str::<RequestId>(&line) {
                Ok(RequestId { id }) => {
                    let err = ConnectorError::Other(format!("bad request: {err}"));
                    reply(&out, id, Err(err)).await;
                }
                Err(_) => {
                    tracing::warn!(error = %err, "closing connection after a line without an id");
                    return;
                }
            },
        }
    }
}

/// Runs one session call.
async fn session_call(session: &dyn Session, call: SessionCall) -> Result<Value, ConnectorError> {
    let done = |()| Value::Null;
    match call {
        SessionCall::RequestPairCode { phone } => {
            session.request_pair_code(&phone).await.map(Value::String)
        }
        SessionCall::SendText {
            to,
            message_id,
            text,
        } => session.send_text(&to, &message_id, &text).await.map(done),
        SessionCall::SendMedia {
            to,
            message_id,
            file,
        } => session.send_media(&to, &message_id, file).await.map(done),
        SessionCall::SendLocation {
            to,
            message_id,
            place,
        } => session
            .send_location(&to, &message_id, &place)
            .await
            .map(done),
        SessionCall::Download {
            kind,
            reference,
            max_bytes,
        } => {
            let bytes = session.download(kind, &reference, max_bytes).await?;
            Ok(Value::String(BASE64.encode(bytes)))
        }
        SessionCall::Groups => {
            let groups = session.groups().await?;
            serde_json::to_value(groups)
                .map_err(|err| ConnectorError::Other(format!("cannot encode: {err}")))
        }
        SessionCall::SetTyping { to, typing } => session.set_typing(&to, typing).await.map(done),
        SessionCall::MarkRead { chat, message_ids } => {
            session.mark_read(&chat, &message_ids).await.map(done)
        }
        SessionCall::Logout => session.logout().await.map(done),
        SessionCall::Disconnect => {
            session.disconnect().await;
            Ok(Value::Null)
        }
    }
}

/// Runs one control call.
async fn control(network: SimNetwork, call: ControlCall) -> Result<Value, ConnectorError> {
    let sim_error = |err: SimError| ConnectorError::Other(format!("{}: {err}", err.error_code()));
    let json = |value: Result<Value, serde_json::Error>| {
        value.map_err(|err| ConnectorError::Other(format!("cannot encode: {err}")))
    };
    match call {
        ControlCall::Stats => json(serde_json::to_value(network.stats())),
        ControlCall::DeliveredIds => {
            let mut ids: Vec<String> = network.delivered_ids().into_iter().collect();
            ids.sort_unstable();
            json(serde_json::to_value(ids))
        }
        ControlCall::SendAttempts { message_id } => {
            Ok(Value::from(network.send_attempts(&message_id)))
        }
        ControlCall::Scan { device_id } => network
            .scan(device_id)
            .await
            .map(Value::String)
            .map_err(sim_error),
        ControlCall::Inject { device_id, fault } => network
            .inject(device_id, fault)
            .await
            .map(|()| Value::Null)
            .map_err(sim_error),
    }
}

/// Queues the reply to request `re`; a closed connection has nobody to tell.
async fn reply(out: &mpsc::Sender<ServerLine>, re: u64, result: Result<Value, ConnectorError>) {
    let outcome = Outcome::from(result);
    let _ = out.send(ServerLine::Reply(Reply { re, outcome })).await;
}

/// Writes queued lines until every sender is gone or the socket fails.
async fn write_lines(mut write: OwnedWriteHalf, mut lines: mpsc::Receiver<ServerLine>) {
    while let Some(line) = lines.recv().await {
        if let Err(err) = write_json(&mut write, &line).await {
            if !matches!(err, ProtocolError::Io(_)) {
                tracing::error!(error = %err, "cannot encode a line");
            }
            return;
        }
    }
    let _ = write.shutdown().await;
}
