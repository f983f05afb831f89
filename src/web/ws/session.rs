//! `WsSession`: one per WebSocket connection, subscribed to hub topics of its caller's tenant.
//!
//! Handles: hub `Frame`s (written out unless the client has fallen too far behind) and the
//! client's frames (subscribe, unsubscribe, ping). Heartbeat: a ping every 5 s; 15 s without
//! hearing from the client closes the connection. A client that does not read is cut off by the
//! hub once its unsent bytes pass the limit and closed with 1013 (see [`SessionLink`]), so a stuck
//! subscriber costs bounded memory.
//!
//! Access: the session re-resolves its credential when its user's access changes on this daemon
//! (`AccessChanges`) and every `ws.recheck_secs`, and closes with 4401 once it no longer holds
//! (see [`super::access`]); it closes with 4401 after `ws.max_lifetime_secs` in any case. Viewers
//! get `QR_UPDATED` frames without their QR payload.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web_actors::ws;
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use super::access::{authorize_topics, changes_of, redact_for_viewer, verdict};
use super::access::{AccessChanged, Credentials, Verdict};
use super::protocol::{ClientOp, ServerFrame, CLOSE_REAUTHENTICATE, CLOSE_TRY_AGAIN_LATER};
use crate::auth::Caller;
use crate::db::Db;
use crate::hub::messages::{Disconnect, Frame, SessionLink, Subscribe, Unsubscribe};
use crate::hub::{Hub, HubMetrics, Topic};
use crate::web::access::sees_pairing;

/// Server ping period.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Silence after which the client is considered gone.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes a frame costs beyond its text (WebSocket header, upper bound).
const FRAME_OVERHEAD: usize = 14;

/// The session's output stream, counting what the HTTP layer takes from it.
pub struct Metered<S> {
    inner: Pin<Box<S>>,
    link: Arc<SessionLink>,
}

impl<S> Metered<S> {
    /// Wraps the WebSocket context's stream.
    pub fn new(inner: S, link: Arc<SessionLink>) -> Self {
        Self {
            inner: Box::pin(inner),
            link,
        }
    }
}

impl<S: Stream<Item = Result<Bytes, actix_web::Error>>> Stream for Metered<S> {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.link.sub(bytes.len());
        }
        polled
    }
}

/// What a session is built with besides its caller.
pub struct SessionConfig {
    /// The router.
    pub hub: Addr<Hub>,
    /// For topic checks.
    pub db: Db,
    /// Hub and session metrics.
    pub metrics: HubMetrics,
    /// Backlog (bytes) past which the session is cut off.
    pub max_backlog: usize,
    /// How to resolve the session's credential again.
    pub credentials: Credentials,
    /// Users whose access changed on this daemon.
    pub changes: broadcast::Receiver<i64>,
    /// Period of the credential re-check.
    pub recheck_every: Duration,
    /// Longest the session stays open.
    pub max_lifetime: Duration,
    /// Turns true when the daemon stops (the session then closes with 1001).
    pub going_away: watch::Receiver<bool>,
}

/// One WebSocket connection.
pub struct WsSession {
    /// Unique id for the hub.
    id: u64,
    /// Who is connected.
    caller: Caller,
    /// The router.
    hub: Addr<Hub>,
    /// For topic checks.
    db: Db,
    /// Last frame or pong from the client.
    last_heard: Instant,
    /// Backlog accounting shared with the hub and the output stream.
    link: Arc<SessionLink>,
    /// Cut off when the backlog passes this.
    max_backlog: usize,
    /// Topics held.
    topics: BTreeSet<Topic>,
    metrics: HubMetrics,
    /// How to resolve the credential again.
    credentials: Credentials,
    /// Access changes, until `started` turns them into a stream.
    changes: Option<broadcast::Receiver<i64>>,
    /// Period of the credential re-check.
    recheck_every: Duration,
    /// Longest the session stays open.
    max_lifetime: Duration,
    /// The daemon's stop signal, until `started` waits on it.
    going_away: Option<watch::Receiver<bool>>,
    /// A re-check is running.
    rechecking: bool,
    /// Another re-check was asked for while one ran.
    recheck_again: bool,
}

impl WsSession {
    /// A session for an authenticated caller.
    pub fn new(id: u64, caller: Caller, link: Arc<SessionLink>, config: SessionConfig) -> Self {
        Self {
            id,
            caller,
            hub: config.hub,
            db: config.db,
            last_heard: Instant::now(),
            link,
            max_backlog: config.max_backlog,
            topics: BTreeSet::new(),
            metrics: config.metrics,
            credentials: config.credentials,
            changes: Some(config.changes),
            recheck_every: config.recheck_every,
            max_lifetime: config.max_lifetime,
            going_away: Some(config.going_away),
            rechecking: false,
            recheck_again: false,
        }
    }

    /// Closes the connection with `code` and `reason`.
    fn close(&self, code: u16, reason: String, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(code),
            description: Some(reason),
        }));
        ctx.stop();
    }

    /// Resolves the credential again; closes with 4401 when it no longer gives the same access.
    fn recheck(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.rechecking {
            // The running check may have read the state before this change.
            self.recheck_again = true;
            return;
        }
        self.rechecking = true;
        let credentials = self.credentials.clone();
        let check = async move { credentials.resolve().await };
        ctx.spawn(check.into_actor(self).map(|now, this, ctx| {
            this.rechecking = false;
            match verdict(&this.caller, now) {
                Verdict::Close(reason) => {
                    tracing::info!(session = this.id, user = this.caller.user.id, %reason, "closing a WebSocket session whose access no longer holds");
                    this.close(CLOSE_REAUTHENTICATE, reason, ctx);
                }
                Verdict::Keep | Verdict::Unknown => {
                    if std::mem::take(&mut this.recheck_again) {
                        this.recheck(ctx);
                    }
                }
            }
        }));
    }

    /// Writes a hub event; a viewer's `QR_UPDATED` goes without its QR payload.
    fn write_event(&self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let redacted = if sees_pairing(self.caller.role) {
            None
        } else {
            redact_for_viewer(text)
        };
        match redacted {
            Some(shorter) => {
                // The hub counted the original's bytes; the socket takes the shorter text's.
                self.link.sub(text.len().saturating_sub(shorter.len()));
                ctx.text(shorter);
            }
            None => ctx.text(text),
        }
    }

    /// Sends a control frame.
    fn send(&self, frame: &ServerFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let text = frame.to_json();
        self.link.add(text.len() + FRAME_OVERHEAD);
        ctx.text(text);
    }

    /// Checks each topic against the caller's tenant and devices, then subscribes the allowed.
    fn subscribe(&mut self, names: Vec<String>, ctx: &mut ws::WebsocketContext<Self>) {
        let db = self.db.clone();
        let caller = self.caller.clone();
        let check = async move { authorize_topics(&db, &caller, names).await };
        ctx.wait(check.into_actor(self).map(|verdicts, this, ctx| {
            let mut allowed = Vec::new();
            for (name, verdict) in verdicts {
                match verdict {
                    Ok(topic) => allowed.push(topic),
                    Err((code, message)) => {
                        this.send(&ServerFrame::error(code, message, Some(name)), ctx)
                    }
                }
            }
            this.topics.extend(allowed.iter().copied());
            let devices = this
                .caller
                .assigned_devices
                .as_ref()
                .map(|ids| Arc::new(ids.iter().copied().collect()));
            this.hub.do_send(Subscribe {
                session_id: this.id,
                recipient: ctx.address().recipient(),
                tenant_id: this.caller.tenant_id,
                topics: allowed,
                devices,
                link: this.link.clone(),
                max_backlog: this.max_backlog,
            });
            let topics = this.topics.iter().map(ToString::to_string).collect();
            this.send(&ServerFrame::Subscribed { topics }, ctx);
        }));
    }

    /// Handles one text frame from the client.
    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        match serde_json::from_str::<ClientOp>(text) {
            Ok(ClientOp::Subscribe { topics }) => self.subscribe(topics, ctx),
            Ok(ClientOp::Unsubscribe { topics }) => {
                let parsed: Vec<Topic> = topics.iter().filter_map(|t| Topic::parse(t)).collect();
                for topic in &parsed {
                    self.topics.remove(topic);
                }
                self.hub.do_send(Unsubscribe {
                    session_id: self.id,
                    tenant_id: self.caller.tenant_id,
                    topics: parsed,
                });
                self.send(&ServerFrame::Unsubscribed { topics }, ctx);
            }
            Ok(ClientOp::Ping) => self.send(&ServerFrame::Pong, ctx),
            Err(err) => self.send(
                &ServerFrame::error(
                    "invalid_message",
                    format!("cannot read this frame: {err}"),
                    None,
                ),
                ctx,
            ),
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.sessions.inc();
        ctx.run_interval(HEARTBEAT_INTERVAL, |this, ctx| {
            if this.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Policy,
                    description: Some("no heartbeat from the client for 15 s".into()),
                }));
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        if let Some(changes) = self.changes.take() {
            ctx.add_stream(changes_of(changes, self.caller.user.id));
        }
        ctx.run_interval(self.recheck_every, |this, ctx| this.recheck(ctx));
        if let Some(mut going_away) = self.going_away.take() {
            let stopping = async move {
                // Err: the daemon's state is gone, which means stopping too.
                let _ = going_away.wait_for(|away| *away).await;
            };
            ctx.spawn(stopping.into_actor(self).map(|_, _, ctx| {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("the server is restarting, reconnect".into()),
                }));
                ctx.stop();
            }));
        }
        ctx.run_later(self.max_lifetime, |this, ctx| {
            this.close(
                CLOSE_REAUTHENTICATE,
                "session expired, reconnect".into(),
                ctx,
            );
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.hub.do_send(Disconnect {
            session_id: self.id,
        });
        self.metrics.sessions.dec();
    }
}

impl Handler<Frame> for WsSession {
    type Result = ();

    fn handle(&mut self, frame: Frame, ctx: &mut Self::Context) {
        match frame {
            // Frames still queued when the hub cut the session off are dropped.
            Frame::Event(_) if self.link.too_slow.load(Ordering::Relaxed) => {}
            Frame::Event(text) => self.write_event(&text, ctx),
            Frame::TooSlow => self.close(
                CLOSE_TRY_AGAIN_LATER,
                "subscriber too slow; reconnect and re-fetch over REST".into(),
                ctx,
            ),
        }
    }
}

impl StreamHandler<AccessChanged> for WsSession {
    fn handle(&mut self, _: AccessChanged, ctx: &mut Self::Context) {
        self.recheck(ctx);
    }

    /// The daemon's signal closed (shutting down): the periodic re-check goes on.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match message {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) => self.send(
                &ServerFrame::error(
                    "invalid_message",
                    "binary frames are not supported; send JSON text",
                    None,
                ),
                ctx,
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) | Ok(ws::Message::Nop) => {}
            Err(err) => {
                tracing::debug!(session = self.id, error = %err, "WebSocket protocol error");
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Protocol,
                    description: Some(err.to_string()),
                }));
                ctx.stop();
            }
        }
    }
}
