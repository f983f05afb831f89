//! `DeviceActor`: one per device, owning its WhatsApp session.
//!
//! Handles: `Admitted`, `Reconnect`, `Retire`, `Park`, `GetDeviceState`, `RequestPairCode`,
//! `Logout`, `InjectPanic`, and the session's events as a stream. Emits: `RequestAdmission`,
//! `ConnectSettled`, `StatusChanged`, `ActorRestarted` to the supervisor, and `DeviceEvent`s on
//! the bus after each committed transition.
//!
//! Supervised twice: `actix::Supervisor` restarts it in place when it stops itself (the
//! `restarting` hook drops the session and asks for a new connect slot), and the
//! `DeviceSupervisor` re-creates it on a fresh arbiter when a panic took its arbiter down.
//! Reconnects never loop on their own: each one waits out a backoff and the admission queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures_util::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::admission::Priority;
use super::backoff::Backoff;
use super::events::{DeviceEvent, EventBus, StatusChange};
use super::messages::*;
use super::model::{DeviceStatus, DeviceStatusPatch};
use super::store;
use super::supervisor::DeviceSupervisor;
use crate::chat::messages::{ChatInbox, RecordChange, RecordMessages, RecordReceipt};
use crate::db::{Db, Fence};
use crate::whatsapp::{
    Connector, ConnectorEvent, Group, Session, SessionRequest, WaMessage, EVENT_CHANNEL_CAPACITY,
};

/// What every device actor needs from the daemon.
#[derive(Clone)]
pub struct DeviceDeps {
    /// Database.
    pub db: Db,
    /// How to reach WhatsApp.
    pub connector: Arc<dyn Connector>,
    /// Where device events go.
    pub bus: EventBus,
    /// The supervisor.
    pub supervisor: Addr<DeviceSupervisor>,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Where chat traffic goes.
    pub chat: ChatInbox,
    /// The device's lease as this daemon holds it (PostgreSQL clusters); its sessions' store
    /// writes are fenced with it.
    pub fence: Option<Fence>,
}

/// An item of a session's event stream; `event: None` marks the end of that session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SessionItem {
    epoch: u64,
    event: Option<ConnectorEvent>,
}

/// One device.
pub struct DeviceActor {
    /// Device id.
    device_id: i64,
    /// Owning tenant.
    tenant_id: i64,
    /// JID from the last login; `None` means the next connect pairs anew.
    jid: Option<String>,
    /// Phone number of the linked account (kept after logout, for events).
    phone: Option<String>,
    /// Current lifecycle status (persisted on every change).
    status: DeviceStatus,
    /// Why it is in that status.
    reason: Option<String>,
    /// QR payload while awaiting a scan.
    qr: Option<String>,
    /// Pairing code while awaiting one.
    pair_code: Option<String>,
    /// The open session.
    session: Option<Arc<dyn Session>>,
    /// Incremented for every session, so events of an old one are ignored.
    epoch: u64,
    /// Consecutive failed connects, for the backoff.
    failures: u32,
    /// Whether the current connect holds an admission slot.
    holding_slot: bool,
    /// Last event from the session.
    last_event_at: Option<Instant>,
    /// Set by `Retire`/`Park`/`Logout`: never connect again in this incarnation.
    retired: bool,
    deps: DeviceDeps,
}

impl DeviceActor {
    /// A device actor for a stored device.
    pub fn new(device: &super::model::Device, deps: DeviceDeps) -> Self {
        Self {
            device_id: device.id,
            tenant_id: device.tenant_id,
            jid: device.jid.clone(),
            phone: device.phone.clone(),
            status: DeviceStatus::parse(&device.status).unwrap_or(DeviceStatus::New),
            reason: device.status_reason.clone(),
            qr: None,
            pair_code: None,
            session: None,
            epoch: 0,
            failures: 0,
            holding_slot: false,
            last_event_at: None,
            retired: false,
            deps,
        }
    }

    /// Persists a transition, then tells the supervisor and the bus. Blocks the mailbox until
    /// the write commits so transitions are stored in order.
    fn transition(
        &mut self,
        status: DeviceStatus,
        reason: Option<String>,
        patch: DeviceStatusPatch,
        ctx: &mut Context<Self>,
    ) {
        let persist = self.commit(status, reason, patch);
        ctx.wait(persist.into_actor(self));
    }

    /// Records a transition in the actor and returns the future that persists and publishes
    /// it (for handlers that must answer only once it is stored).
    fn commit(
        &mut self,
        status: DeviceStatus,
        reason: Option<String>,
        patch: DeviceStatusPatch,
    ) -> impl std::future::Future<Output = ()> + 'static {
        self.status = status;
        self.reason = reason.clone();
        let patch = DeviceStatusPatch {
            status: Some(status.as_str().to_string()),
            status_reason: Some(reason.clone()),
            ..patch
        };
        let db = self.deps.db.clone();
        let device_id = self.device_id;
        let change = StatusChange {
            device_id,
            tenant_id: self.tenant_id,
            status,
            reason,
            jid: self.jid.clone(),
            phone: self.phone.clone(),
            at: Utc::now(),
        };
        let bus = self.deps.bus.clone();
        let supervisor = self.deps.supervisor.clone();
        let jid = self.jid.clone();
        async move {
            match store::update_status(&db, device_id, patch).await {
                Ok(()) => {
                    supervisor.do_send(StatusChanged {
                        device_id,
                        status,
                        jid,
                    });
                    bus.publish(DeviceEvent::DeviceStatus(change));
                }
                Err(err) => {
                    tracing::error!(device_id, error = %err, "cannot persist device status")
                }
            }
        }
    }

    /// Frees the admission slot if this connect holds one.
    fn settle(&mut self) {
        if std::mem::take(&mut self.holding_slot) {
            self.deps.supervisor.do_send(ConnectSettled {
                device_id: self.device_id,
            });
        }
    }

    /// Asks for the next connect slot after the backoff for the current failure count.
    fn schedule_reconnect(&mut self, is_restart: bool) {
        if self.retired {
            return;
        }
        let after = if self.failures == 0 {
            Duration::ZERO
        } else {
            self.deps.backoff.delay(self.failures)
        };
        self.deps.supervisor.do_send(RequestAdmission {
            device_id: self.device_id,
            after,
            priority: if is_restart {
                Priority::High
            } else {
                Priority::Normal
            },
            is_restart,
        });
    }

    /// Closes the current session (without logging out) and ignores its remaining events.
    fn drop_session(&mut self, ctx: &mut Context<Self>) {
        self.epoch += 1;
        self.qr = None;
        self.pair_code = None;
        if let Some(session) = self.session.take() {
            ctx.spawn(async move { session.disconnect().await }.into_actor(self));
        }
    }

    /// Handles a connect failure: back off and try again.
    fn connect_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.failures = self.failures.saturating_add(1);
        self.settle();
        tracing::warn!(device_id = self.device_id, failures = self.failures, %reason, "connect failed");
        self.transition(
            DeviceStatus::Reconnecting,
            Some(reason),
            DeviceStatusPatch::default(),
            ctx,
        );
        self.schedule_reconnect(false);
    }

    /// Handles a session event.
    fn on_event(&mut self, event: ConnectorEvent, ctx: &mut Context<Self>) {
        self.last_event_at = Some(Instant::now());
        match event {
            ConnectorEvent::Qr { code } => {
                self.settle();
                self.qr = Some(code.clone());
                self.deps.bus.publish(DeviceEvent::QrUpdated {
                    device_id: self.device_id,
                    tenant_id: self.tenant_id,
                    code,
                });
                if self.status != DeviceStatus::AwaitingQr {
                    self.transition(
                        DeviceStatus::AwaitingQr,
                        None,
                        DeviceStatusPatch::default(),
                        ctx,
                    );
                }
            }
            ConnectorEvent::PairCode { code } => {
                self.settle();
                self.qr = None;
                self.pair_code = Some(code);
                self.transition(
                    DeviceStatus::AwaitingPairCode,
                    None,
                    DeviceStatusPatch::default(),
                    ctx,
                );
            }
            ConnectorEvent::Connected { jid, push_name } => {
                self.settle();
                self.failures = 0;
                self.qr = None;
                self.pair_code = None;
                let phone = crate::phone::phone_of_jid(&jid).map(str::to_string);
                self.jid = Some(jid.clone());
                self.phone.clone_from(&phone);
                let patch = DeviceStatusPatch {
                    jid: Some(Some(jid)),
                    phone: Some(phone),
                    push_name: Some(push_name),
                    last_seen: Some(Some(Utc::now().naive_utc())),
                    ..Default::default()
                };
                self.transition(DeviceStatus::Online, None, patch, ctx);
            }
            ConnectorEvent::Disconnected { reason } => self.session_lost(reason, ctx),
            ConnectorEvent::LoggedOut { reason } => {
                let persist = self.end_for_good(DeviceStatus::LoggedOut, reason, true, ctx);
                ctx.wait(persist.into_actor(self));
            }
            ConnectorEvent::Banned { reason } => {
                let persist = self.end_for_good(DeviceStatus::Banned, reason, false, ctx);
                ctx.wait(persist.into_actor(self));
            }
            ConnectorEvent::Message(message) => {
                let record = self.deps.chat.messages.send(RecordMessages {
                    tenant_id: self.tenant_id,
                    device_id: self.device_id,
                    messages: vec![*message],
                    history: false,
                });
                wait_for_mirror(record, ctx);
            }
            ConnectorEvent::Change(change) => {
                let record = self.deps.chat.changes.send(RecordChange {
                    tenant_id: self.tenant_id,
                    device_id: self.device_id,
                    change: *change,
                });
                wait_for_mirror(record, ctx);
            }
            ConnectorEvent::Receipt(receipt) => {
                let record = self.deps.chat.receipts.send(RecordReceipt {
                    tenant_id: self.tenant_id,
                    device_id: self.device_id,
                    receipt,
                });
                wait_for_mirror(record, ctx);
            }
            ConnectorEvent::HistorySync(batch) => {
                let record = self.deps.chat.messages.send(RecordMessages {
                    tenant_id: self.tenant_id,
                    device_id: self.device_id,
                    messages: batch,
                    history: true,
                });
                wait_for_mirror(record, ctx);
            }
        }
    }

    /// The session dropped: reconnect after a backoff (counts against the budget if it was
    /// online, so a flapping device ends up parked).
    fn session_lost(&mut self, reason: String, ctx: &mut Context<Self>) {
        let was_online = self.status == DeviceStatus::Online;
        self.drop_session(ctx);
        self.settle();
        if self.retired {
            return;
        }
        if !was_online {
            self.failures = self.failures.saturating_add(1);
        }
        self.transition(
            DeviceStatus::Reconnecting,
            Some(reason),
            DeviceStatusPatch::default(),
            ctx,
        );
        self.schedule_reconnect(was_online);
    }

    /// Logged out or banned: keep the actor idle, never reconnect by itself. Returns the
    /// persisting future.
    fn end_for_good(
        &mut self,
        status: DeviceStatus,
        reason: String,
        forget_credentials: bool,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        self.drop_session(ctx);
        self.settle();
        self.retired = true;
        let mut patch = DeviceStatusPatch::default();
        let mut forget = None;
        if forget_credentials {
            self.jid = None;
            patch.jid = Some(None);
            patch.paired_at = Some(None);
            // The connector's session store (real: every `wa_` row) goes with the credentials.
            let (connector, device_id) = (self.deps.connector.clone(), self.device_id);
            forget = Some(async move {
                if let Err(err) = connector.forget(device_id).await {
                    tracing::error!(device_id, error = %err, "cannot forget the session store");
                }
            });
        }
        let commit = self.commit(status, Some(reason), patch);
        async move {
            commit.await;
            if let Some(forget) = forget {
                forget.await;
            }
        }
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Events may queue while a transition is being written; give the mailbox room.
        ctx.set_mailbox_capacity(64);
        if !self.retired {
            self.schedule_reconnect(false);
        }
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        self.drop_session(ctx);
        self.settle();
        Running::Stop
    }
}

impl actix::Supervised for DeviceActor {
    /// A restart drops the session and its pairing state; the device asks for a new connect
    /// slot in `started`, after telling the supervisor (which may park it instead).
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.session = None;
        self.epoch += 1;
        self.qr = None;
        self.pair_code = None;
        self.holding_slot = false;
        if !self.retired {
            self.failures = self.failures.saturating_add(1);
            self.deps.supervisor.do_send(ActorRestarted {
                device_id: self.device_id,
            });
        }
    }
}

impl Handler<Admitted> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Admitted, ctx: &mut Context<Self>) {
        if self.retired || self.session.is_some() {
            self.deps.supervisor.do_send(ConnectSettled {
                device_id: self.device_id,
            });
            return;
        }
        self.holding_slot = true;
        self.epoch += 1;
        let epoch = self.epoch;
        let request = SessionRequest {
            device_id: self.device_id,
            jid: self.jid.clone(),
            fence: self.deps.fence.clone(),
        };
        let connector = self.deps.connector.clone();
        let timeout = self.deps.connect_timeout;
        self.transition(
            DeviceStatus::Connecting,
            None,
            DeviceStatusPatch::default(),
            ctx,
        );
        let (tx, rx) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let stream = ReceiverStream::new(rx)
            .map(move |event| SessionItem {
                epoch,
                event: Some(event),
            })
            .chain(futures_util::stream::once(async move {
                SessionItem { epoch, event: None }
            }));
        ctx.add_stream(stream);
        ctx.spawn(
            async move { tokio::time::timeout(timeout, connector.connect(request, tx)).await }
                .into_actor(self)
                .map(move |outcome, actor, ctx| {
                    if actor.epoch != epoch {
                        return;
                    }
                    match outcome {
                        Ok(Ok(session)) => actor.session = Some(Arc::from(session)),
                        Ok(Err(err)) => actor.connect_failed(err.to_string(), ctx),
                        Err(_) => actor.connect_failed("connect timed out".into(), ctx),
                    }
                }),
        );
    }
}

impl StreamHandler<SessionItem> for DeviceActor {
    fn handle(&mut self, item: SessionItem, ctx: &mut Context<Self>) {
        if item.epoch != self.epoch {
            return;
        }
        match item.event {
            Some(event) => self.on_event(event, ctx),
            // The session ended without saying why (its sender was dropped).
            None if self.session.is_some() => self.session_lost("connection closed".into(), ctx),
            None => {}
        }
    }

    /// A session's stream ending is handled as an item; the actor keeps running.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Reconnect> for DeviceActor {
    type Result = ();

    fn handle(&mut self, msg: Reconnect, ctx: &mut Context<Self>) {
        self.drop_session(ctx);
        self.settle();
        self.retired = false;
        self.failures = 0;
        self.transition(
            DeviceStatus::Reconnecting,
            Some(msg.reason),
            DeviceStatusPatch::default(),
            ctx,
        );
        self.deps.supervisor.do_send(RequestAdmission {
            device_id: self.device_id,
            after: Duration::ZERO,
            priority: Priority::High,
            is_restart: false,
        });
    }
}

impl Handler<Retire> for DeviceActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Retire, _ctx: &mut Context<Self>) -> Self::Result {
        self.retired = true;
        self.epoch += 1;
        self.settle();
        let session = self.session.take();
        Box::pin(
            async move {
                if let Some(session) = session {
                    session.disconnect().await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

impl Handler<Park> for DeviceActor {
    type Result = ();

    fn handle(&mut self, msg: Park, ctx: &mut Context<Self>) {
        self.drop_session(ctx);
        self.settle();
        self.retired = true;
        tracing::warn!(device_id = self.device_id, reason = %msg.reason, "device parked");
        self.transition(
            DeviceStatus::Parked,
            Some(msg.reason),
            DeviceStatusPatch::default(),
            ctx,
        );
    }
}

impl Handler<GetDeviceState> for DeviceActor {
    type Result = MessageResult<GetDeviceState>;

    fn handle(&mut self, _: GetDeviceState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(DeviceSnapshot {
            status: self.status,
            reason: self.reason.clone(),
            qr: self.qr.clone(),
            pair_code: self.pair_code.clone(),
            connected: self.session.is_some() && self.status == DeviceStatus::Online,
            last_event_age_ms: self
                .last_event_at
                .map(|t| t.elapsed().as_millis().min(u64::MAX as u128) as u64),
        })
    }
}

impl Handler<RequestPairCode> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<String, DeviceError>>;

    fn handle(&mut self, msg: RequestPairCode, _: &mut Context<Self>) -> Self::Result {
        let session = match (&self.session, self.status) {
            (Some(session), DeviceStatus::AwaitingQr | DeviceStatus::AwaitingPairCode) => {
                session.clone()
            }
            (_, DeviceStatus::Online) => {
                return Box::pin(actix::fut::ready(Err(DeviceError::WrongState(
                    "the device is already paired".into(),
                ))))
            }
            _ => {
                return Box::pin(actix::fut::ready(Err(DeviceError::WrongState(
                    "the device is not waiting to be paired; reconnect it first".into(),
                ))))
            }
        };
        Box::pin(
            async move { session.request_pair_code(&msg.phone).await }
                .into_actor(self)
                .map(|result, _, _| result.map_err(DeviceError::from)),
        )
    }
}

impl Handler<Logout> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, _: Logout, _: &mut Context<Self>) -> Self::Result {
        let session = self.session.clone();
        Box::pin(
            async move {
                match session {
                    Some(session) => session.logout().await,
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .then(|result, actor, ctx| {
                if let Err(err) = &result {
                    // The credentials are forgotten locally either way; WhatsApp expires them.
                    tracing::warn!(device_id = actor.device_id, error = %err, "logout call failed");
                }
                let reason = "logged out by user".to_string();
                actor
                    .end_for_good(DeviceStatus::LoggedOut, reason, true, ctx)
                    .into_actor(actor)
                    .map(|_, _, _| Ok(()))
            }),
        )
    }
}

impl DeviceActor {
    /// The session, when the device is online.
    fn online_session(&self) -> Option<Arc<dyn Session>> {
        self.session
            .clone()
            .filter(|_| self.status == DeviceStatus::Online)
    }

    /// Sends through the session and records the sent message in the chat mirror.
    fn send_and_record<F>(
        &mut self,
        sent: impl FnOnce(String) -> WaMessage,
        send: impl FnOnce(Arc<dyn Session>) -> F,
    ) -> ResponseActFuture<Self, Result<(), DeviceError>>
    where
        F: std::future::Future<Output = Result<(), crate::whatsapp::ConnectorError>> + 'static,
    {
        let (Some(session), Some(jid)) = (self.session.clone(), self.jid.clone()) else {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        };
        if self.status != DeviceStatus::Online {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        }
        let message = sent(jid);
        let (chat, tenant_id, device_id) = (
            self.deps.chat.messages.clone(),
            self.tenant_id,
            self.device_id,
        );
        let sending = send(session);
        Box::pin(
            async move {
                sending.await.map_err(DeviceError::from)?;
                // The answer waits while the mirror's queue is full: senders slow down too.
                let recorded = chat
                    .send(RecordMessages {
                        tenant_id,
                        device_id,
                        messages: vec![message],
                        history: false,
                    })
                    .await;
                if recorded.is_err() {
                    tracing::error!(
                        device_id,
                        "the chat mirror is gone; a sent message was not recorded"
                    );
                }
                Ok(())
            }
            .into_actor(self),
        )
    }
}

/// Backpressure from the chat mirror: the actor handles nothing else (its session's events
/// wait in their bounded channel, so WhatsApp traffic waits in the session) until the mirror has
/// queued the record. The mirror waits only for the database, never for a device actor, so this
/// cannot deadlock; if the mirror is gone the wait ends at once.
fn wait_for_mirror(
    record: impl std::future::Future<Output = Result<(), MailboxError>> + 'static,
    ctx: &mut Context<DeviceActor>,
) {
    ctx.wait(actix::fut::wrap_future::<_, DeviceActor>(async move {
        if record.await.is_err() {
            tracing::error!("the chat mirror is gone; a chat record was not queued");
        }
    }));
}

/// The record of a message this device sent.
fn outgoing(
    id: &str,
    to: &str,
    sender: String,
    text: Option<String>,
    media: Option<crate::whatsapp::Media>,
) -> WaMessage {
    WaMessage {
        id: id.to_string(),
        chat: to.to_string(),
        sender,
        sender_alt: None,
        chat_alt: None,
        push_name: None,
        from_me: true,
        kind: if media.is_some() {
            crate::whatsapp::MessageKind::Image
        } else {
            crate::whatsapp::MessageKind::Text
        },
        text,
        media,
        timestamp: Utc::now(),
        ..WaMessage::default()
    }
}

impl Handler<SendText> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, msg: SendText, _: &mut Context<Self>) -> Self::Result {
        let (id, to, text) = (msg.message_id.clone(), msg.to.clone(), msg.text.clone());
        let record = move |jid| outgoing(&id, &to, jid, Some(text), None);
        self.send_and_record(record, move |session| async move {
            session.send_text(&msg.to, &msg.message_id, &msg.text).await
        })
    }
}

impl Handler<SendLocation> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, msg: SendLocation, _: &mut Context<Self>) -> Self::Result {
        let (id, to, place) = (msg.message_id.clone(), msg.to.clone(), msg.place.clone());
        let record = move |jid| WaMessage {
            kind: crate::whatsapp::MessageKind::Location,
            location: Some(place),
            ..outgoing(&id, &to, jid, None, None)
        };
        self.send_and_record(record, move |session| async move {
            session
                .send_location(&msg.to, &msg.message_id, &msg.place)
                .await
        })
    }
}

impl Handler<SendMedia> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, msg: SendMedia, _: &mut Context<Self>) -> Self::Result {
        let (id, to, file) = (msg.message_id.clone(), msg.to.clone(), msg.file.clone());
        let record = move |jid| WaMessage {
            kind: file.kind,
            file_name: file.file_name,
            ..outgoing(&id, &to, jid, file.caption, Some(file.media))
        };
        self.send_and_record(record, move |session| async move {
            session.send_media(&msg.to, &msg.message_id, msg.file).await
        })
    }
}

impl Handler<SetTyping> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, msg: SetTyping, _: &mut Context<Self>) -> Self::Result {
        let Some(session) = self.online_session() else {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        };
        Box::pin(
            async move { session.set_typing(&msg.to, msg.typing).await }
                .into_actor(self)
                .map(|result, _, _| result.map_err(DeviceError::from)),
        )
    }
}

impl Handler<ListGroups> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<Vec<Group>, DeviceError>>;

    fn handle(&mut self, _: ListGroups, _: &mut Context<Self>) -> Self::Result {
        let Some(session) = self.online_session() else {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        };
        Box::pin(
            async move { session.groups().await }
                .into_actor(self)
                .map(|result, _, _| result.map_err(DeviceError::from)),
        )
    }
}

impl Handler<FetchMedia> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<Vec<u8>, DeviceError>>;

    fn handle(&mut self, msg: FetchMedia, _: &mut Context<Self>) -> Self::Result {
        let Some(session) = self.online_session() else {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        };
        Box::pin(
            async move {
                session
                    .download(msg.kind, &msg.reference, msg.max_bytes)
                    .await
            }
            .into_actor(self)
            .map(|result, _, _| result.map_err(DeviceError::from)),
        )
    }
}

impl Handler<MarkRead> for DeviceActor {
    type Result = ResponseActFuture<Self, Result<(), DeviceError>>;

    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        let Some(session) = self.online_session() else {
            return Box::pin(actix::fut::ready(Err(DeviceError::NotConnected)));
        };
        Box::pin(
            async move { session.mark_read(&msg.chat, &msg.message_ids).await }
                .into_actor(self)
                .map(|result, _, _| result.map_err(DeviceError::from)),
        )
    }
}

impl Handler<InjectPanic> for DeviceActor {
    type Result = ();

    #[allow(clippy::panic)]
    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) {
        // Deliberate: the simulator's fault drill checks that a crash stays contained.
        panic!("injected fault: device {} panicked", self.device_id);
    }
}
