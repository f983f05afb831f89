//! A session's end of its event channel, shared by everything that emits on it, and the scopes
//! whose end stops a session's timers.
//!
//! Emitters (connect, the pairing timer, scans, receipts and replies, faults) take turns on one
//! async lock, the [`Turn`]. Whoever changes session state and announces it holds the turn
//! across both, so every later emitter sees the change: no `Qr` can follow `Connected`, nothing
//! follows the event that ends a session.
//!
//! Timers and emitters also watch a [`Stop`] of their [`Scope`] (a session, a pairing) and give
//! up the moment it is dropped: they neither keep a dead session's tasks alive nor hold the turn
//! that closing needs. Closing drops the only `Sender`, which ends the device actor's stream.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::whatsapp::ConnectorEvent;

/// The sender, or `None` once the session is closed.
type Slot = Option<mpsc::Sender<ConnectorEvent>>;

/// Shared handle on a session's event sender.
#[derive(Debug, Clone)]
pub(super) struct Outbox(Arc<Mutex<Slot>>);

/// The exclusive right to emit on an outbox, held across a state change and its event.
#[derive(Debug)]
pub(super) struct Turn(OwnedMutexGuard<Slot>);

impl Outbox {
    /// Wraps the device actor's sender; this outbox becomes its only holder.
    pub(super) fn new(events: mpsc::Sender<ConnectorEvent>) -> Self {
        Self(Arc::new(Mutex::new(Some(events))))
    }

    /// Waits for the turn to emit.
    pub(super) async fn turn(&self) -> Turn {
        Turn(Arc::clone(&self.0).lock_owned().await)
    }

    /// Emits `event` in turn, unless `stop` fires first; true when it was sent.
    pub(super) async fn emit(&self, event: ConnectorEvent, stop: &mut Stop) -> bool {
        let turn = tokio::select! {
            biased;
            () = stop.fired() => return false,
            turn = self.turn() => turn,
        };
        turn.send(event, stop).await
    }

    /// Emits `last` (if any) and drops the sender, which ends the stream. Idempotent. Waits for
    /// channel space: the actor still reads until the stream ends.
    pub(super) async fn close(&self, last: Option<ConnectorEvent>) {
        let mut slot = self.0.lock().await;
        if let (Some(events), Some(event)) = (slot.as_ref(), last) {
            // An error means the actor is gone already; nothing is left to tell.
            let _ = events.send(event).await;
        }
        *slot = None;
    }
}

impl Turn {
    /// Sends `event` unless the outbox is closed or `stop` fires first, and gives up the turn;
    /// true when it was sent.
    pub(super) async fn send(self, event: ConnectorEvent, stop: &mut Stop) -> bool {
        let Some(events) = self.0.as_ref() else {
            return false;
        };
        tokio::select! {
            biased;
            () = stop.fired() => false,
            sent = events.send(event) => sent.is_ok(),
        }
    }
}

/// A lifetime (a session, a pairing) that timers and emitters watch; dropping it stops them.
#[derive(Debug)]
pub(super) struct Scope(watch::Sender<()>);

/// Fires when its [`Scope`] is dropped.
#[derive(Debug)]
pub(super) struct Stop(watch::Receiver<()>);

impl Scope {
    /// A new, running scope.
    pub(super) fn new() -> Self {
        Self(watch::channel(()).0)
    }

    /// A signal that fires when this scope ends.
    pub(super) fn stop(&self) -> Stop {
        Stop(self.0.subscribe())
    }
}

impl Stop {
    /// Resolves once the scope has ended (nothing is ever sent, so only the drop wakes it).
    pub(super) async fn fired(&mut self) {
        while self.0.changed().await.is_ok() {}
    }

    /// Sleeps until `deadline`; false when the scope ended first.
    pub(super) async fn sleep_until(&mut self, deadline: Instant) -> bool {
        tokio::select! {
            biased;
            () = self.fired() => false,
            () = tokio::time::sleep_until(deadline) => true,
        }
    }
}
