//! [`SimNetwork`]: the simulated servers' state, shared by every session, the HTTP routes and
//! tests, with the operations sessions run on it and the [`SimStats`] it reports.
//!
//! All state sits behind one `std::sync::Mutex`, held for short synchronous sections and never
//! across an `.await`; events go out after it is released, through the session's [`Outbox`]. A
//! session is known by (device id, generation): a newer connect of a device replaces the old
//! session, and whatever still aims at the old generation finds nothing and does nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::address::parse_recipient;
use super::clock::Clock;
use super::faults::ArmedFaults;
use super::outbox::{Outbox, Scope, Stop};
use super::pacing::{PacingRules, SendLog};
use super::pairing::Pairing;
use crate::config::{MediaDownload, SimSettings};
use crate::whatsapp::{ConnectorError, ConnectorEvent};

/// The simulated WhatsApp network. Cheap to clone: every clone shares the same state.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    /// Shared by all clones, sessions and their tasks.
    inner: Arc<Inner>,
}

/// A network that does not keep it alive (a background task's handle).
pub(super) struct WeakNetwork(Weak<Inner>);

impl WeakNetwork {
    /// The network, while it lives.
    pub(super) fn upgrade(&self) -> Option<SimNetwork> {
        self.0.upgrade().map(|inner| SimNetwork { inner })
    }
}

/// What never changes after start, and the state.
#[derive(Debug)]
struct Inner {
    /// The `[sim]` settings.
    settings: SimSettings,
    /// Time scaling of `settings.time_scale`.
    clock: Clock,
    /// Pacing rules, scaled once.
    pacing: PacingRules,
    /// Everything that changes.
    state: Mutex<State>,
}

/// The network's mutable state.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Per device: session, linked account, recent sends, armed faults.
    pub(super) devices: HashMap<i64, Device>,
    /// Linked accounts by device JID.
    pub(super) accounts: HashMap<String, Account>,
    /// Devices linked so far per phone number, for the `:n` of the next JID.
    pub(super) links_per_phone: HashMap<String, u32>,
    /// Phone numbers handed out to QR pairings (`601` and 8 digits of this counter).
    pub(super) phones_issued: u64,
    /// Last session generation handed out.
    generations: u64,
    /// Send attempts per message id: 1 once delivered, more for every refused resend. Kept for
    /// the life of the network (about 100 bytes per message), so that a resend after any delay
    /// is caught and a harness can account for every message.
    sends: HashMap<String, u32>,
    /// The phone of every contact that wrote from a LID, by LID user part, so that a device
    /// can answer a LID chat as on WhatsApp.
    lids: HashMap<String, String>,
    /// Counters; the gauges in it are filled in by [`SimNetwork::stats`].
    pub(super) stats: SimStats,
    /// When received media is downloaded (`chat.media_download`).
    pub(super) media_download: MediaDownload,
}

/// One device as the network sees it.
#[derive(Debug, Default)]
pub(super) struct Device {
    /// The open session, if any.
    pub(super) session: Option<LiveSession>,
    /// JID of the account the device is linked to (it may be banned).
    pub(super) account: Option<String>,
    /// Recent sends for the pacing rules.
    sends: SendLog,
    /// Faults armed on the device.
    pub(super) faults: ArmedFaults,
}

/// A linked account.
#[derive(Debug)]
pub(super) struct Account {
    /// The device it is linked to; its credentials are valid only there.
    pub(super) device_id: i64,
    /// Profile name sent on login.
    pub(super) push_name: String,
    /// Banned accounts can no longer log in.
    pub(super) banned: bool,
}

/// An open session.
#[derive(Debug)]
pub(super) struct LiveSession {
    /// Tells this session apart from earlier and later ones of the device.
    pub(super) generation: u64,
    /// Where its events go.
    pub(super) outbox: Outbox,
    /// Dropped with the session: stops its receipts, replies and pairing timer.
    pub(super) scope: Scope,
    /// Pairing or online.
    pub(super) phase: Phase,
    /// The daemon that opened it, when told (remote sessions).
    pub(super) client: Option<String>,
}

/// Where a session stands.
#[derive(Debug)]
pub(super) enum Phase {
    /// Waiting for a QR scan or a pair code.
    Pairing(Pairing),
    /// Logged in as this JID.
    Online {
        /// The device JID.
        jid: String,
    },
}

/// What `connect` found, for [`SimConnector`](super::SimConnector) to announce.
#[derive(Debug)]
pub(super) enum Opened {
    /// Logged in with stored credentials.
    Online {
        /// The new session's generation.
        generation: u64,
        /// Its JID.
        jid: String,
        /// Its profile name.
        push_name: String,
        /// Fires when the session ends.
        stop: Stop,
    },
    /// Pairing started.
    Pairing {
        /// The new session's generation.
        generation: u64,
        /// The first QR payload.
        qr: String,
        /// Fires when the session ends.
        stop: Stop,
        /// Fires when the pairing ends.
        pairing: Stop,
    },
    /// The account is banned: no session was opened.
    Banned,
}

/// Counters of the simulated network, as served by `GET /api/v1/sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SimStats {
    /// Messages delivered (each message id once).
    pub delivered: u64,
    /// Resends of an already delivered message id: counted, not delivered again.
    pub duplicates: u64,
    /// Sends that broke at least one pacing rule (still delivered, as WhatsApp punishes later).
    pub violations: u64,
    /// Sends closer than `min_send_gap_ms` to the device's previous send.
    pub min_gap_violations: u64,
    /// Sends over `max_sends_per_minute` in a trailing minute.
    pub per_minute_violations: u64,
    /// Sends over `max_sends_per_day` in a trailing day.
    pub per_day_violations: u64,
    /// Sends refused by a `rate_limit` fault.
    pub rate_limited: u64,
    /// Sends that failed with a server error (a `fail_sends` fault).
    pub failed_sends: u64,
    /// Messages contacts sent to devices (replies and `deliver_inbound`).
    pub inbound: u64,
    /// `set_typing` calls of online sessions.
    pub typing_events: u64,
    /// Connects refused by a `refuse_connect` fault.
    pub refused_connects: u64,
    /// Linked accounts, banned ones included.
    pub accounts: u64,
    /// Sessions online now.
    pub online: u64,
    /// Sessions pairing now (QR or pair code).
    pub pairing: u64,
    /// Connects that replaced a session another daemon still held: the device ran on two
    /// daemons at once (a cluster must never do this).
    #[serde(default)]
    pub double_sessions: u64,
}

impl SimNetwork {
    /// A network with no accounts, behaving as `settings` say.
    pub fn new(settings: SimSettings) -> Self {
        let clock = Clock::new(settings.time_scale);
        let pacing = PacingRules::new(&settings, clock);
        Self {
            inner: Arc::new(Inner {
                settings,
                clock,
                pacing,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Counters and current gauges.
    pub fn stats(&self) -> SimStats {
        let state = self.lock();
        let mut stats = state.stats.clone();
        stats.accounts = state.accounts.len() as u64;
        for session in state.devices.values().filter_map(|d| d.session.as_ref()) {
            match session.phase {
                Phase::Online { .. } => stats.online += 1,
                Phase::Pairing(_) => stats.pairing += 1,
            }
        }
        stats
    }

    /// Every message id delivered so far, to check that none was lost.
    pub fn delivered_ids(&self) -> HashSet<String> {
        self.lock().sends.keys().cloned().collect()
    }

    /// How often a message id was sent: 0 never, 1 delivered once, n > 1 delivered once and
    /// refused n - 1 times as a duplicate.
    pub fn send_attempts(&self, message_id: &str) -> u32 {
        self.lock().sends.get(message_id).copied().unwrap_or(0)
    }

    /// The JID a device is logged in as, when its session is online.
    pub fn online_jid(&self, device_id: i64) -> Option<String> {
        let state = self.lock();
        match &state.devices.get(&device_id)?.session.as_ref()?.phase {
            Phase::Online { jid } => Some(jid.clone()),
            Phase::Pairing(_) => None,
        }
    }

    /// The settings the network runs with.
    pub(super) fn settings(&self) -> &SimSettings {
        &self.inner.settings
    }

    /// The network's time scaling.
    pub(super) fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The state. Never held across an `.await`; no code panics while holding it, so a poisoned
    /// lock still holds consistent state and is used as is.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A handle that does not keep the network alive.
    pub(super) fn downgrade(&self) -> WeakNetwork {
        WeakNetwork(Arc::downgrade(&self.inner))
    }

    /// The ids of the devices online now.
    pub(super) fn online_devices(&self) -> Vec<i64> {
        let state = self.lock();
        state
            .devices
            .iter()
            .filter(|(_, d)| {
                d.session
                    .as_ref()
                    .is_some_and(|s| matches!(s.phase, Phase::Online { .. }))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Notes that the contact at `phone` wrote from LID `lid`.
    pub(super) fn remember_lid(&self, lid: String, phone: &str) {
        self.lock().lids.insert(lid, phone.to_owned());
    }

    /// The phone a recipient names: a phone number, a phone JID, or the LID JID of a contact
    /// that wrote from it.
    pub(super) fn recipient(&self, to: &str) -> Option<String> {
        parse_recipient(to).or_else(|| {
            let lid = crate::phone::lid_of_jid(to)?;
            self.lock().lids.get(lid).cloned()
        })
    }

    /// Adds to the counters.
    pub(super) fn count(&self, add: impl FnOnce(&mut SimStats)) {
        add(&mut self.lock().stats);
    }

    /// Opens a session of `device_id` on `outbox` for daemon `client`: logs in when `jid`
    /// names an account linked to this device, else starts pairing. Returns what to announce
    /// and the session it replaced, which the caller ends (one another daemon held counts in
    /// `double_sessions`).
    pub(super) fn open_session(
        &self,
        device_id: i64,
        jid: Option<&str>,
        outbox: &Outbox,
        client: Option<&str>,
    ) -> Result<(Opened, Option<LiveSession>), ConnectorError> {
        let mut guard = self.lock();
        let State {
            devices,
            accounts,
            generations,
            stats,
            ..
        } = &mut *guard;
        let device = devices.entry(device_id).or_default();
        if device.faults.refuse_connect() {
            stats.refused_connects += 1;
            return Err(ConnectorError::ConnectFailed(
                "simulated: connection refused".into(),
            ));
        }
        let account = jid.and_then(|jid| {
            accounts
                .get(jid)
                .filter(|account| account.device_id == device_id)
                .map(|account| (jid, account))
        });
        if account.is_some_and(|(_, account)| account.banned) {
            return Ok((Opened::Banned, None));
        }
        *generations += 1;
        let generation = *generations;
        let scope = Scope::new();
        let stop = scope.stop();
        let (phase, opened) = match account {
            Some((jid, account)) => (
                Phase::Online {
                    jid: jid.to_owned(),
                },
                Opened::Online {
                    generation,
                    jid: jid.to_owned(),
                    push_name: account.push_name.clone(),
                    stop,
                },
            ),
            None => {
                let (pairing, pairing_stop) = Pairing::new(None);
                let qr = pairing.qr();
                (
                    Phase::Pairing(pairing),
                    Opened::Pairing {
                        generation,
                        qr,
                        stop,
                        pairing: pairing_stop,
                    },
                )
            }
        };
        let replaced = device.session.replace(LiveSession {
            generation,
            outbox: outbox.clone(),
            scope,
            phase,
            client: client.map(str::to_owned),
        });
        let other_daemon = replaced
            .as_ref()
            .is_some_and(|old| old.client.is_some() && old.client.as_deref() != client);
        if other_daemon {
            stats.double_sessions += 1;
        }
        Ok((opened, replaced))
    }

    /// Removes the session `generation` of a device, if it is still the current one.
    pub(super) fn end_session(&self, device_id: i64, generation: u64) -> Option<LiveSession> {
        self.take_current(device_id, generation, |_, _| {})
    }

    /// Unlinks a device (forgets its account) and takes its session `generation` out; `None`
    /// (and nothing forgotten) when that session is no longer the current one.
    pub(super) fn unlink(&self, device_id: i64, generation: u64) -> Option<LiveSession> {
        self.take_current(device_id, generation, |device, accounts| {
            if let Some(jid) = device.account.take() {
                accounts.remove(&jid);
            }
        })
    }

    /// Takes the session `generation` of a device out when it is the current one, after
    /// applying `also` to the device and the accounts.
    fn take_current(
        &self,
        device_id: i64,
        generation: u64,
        also: impl FnOnce(&mut Device, &mut HashMap<String, Account>),
    ) -> Option<LiveSession> {
        let mut guard = self.lock();
        let State {
            devices, accounts, ..
        } = &mut *guard;
        let device = devices.get_mut(&device_id)?;
        if device.session.as_ref()?.generation != generation {
            return None;
        }
        also(device, accounts);
        device.session.take()
    }

    /// Ok when the session `generation` of a device is current and online.
    pub(super) fn ensure_online(
        &self,
        device_id: i64,
        generation: u64,
    ) -> Result<(), ConnectorError> {
        let state = self.lock();
        match state.devices.get(&device_id) {
            Some(device) if device.online_session(generation).is_some() => Ok(()),
            _ => Err(ConnectorError::NotConnected),
        }
    }

    /// The outbox of a device's online session and a stop for its lifetime, to emit on it.
    pub(super) fn online_outbox(&self, device_id: i64) -> Option<(Outbox, Stop)> {
        let state = self.lock();
        let session = state.devices.get(&device_id)?.session.as_ref()?;
        matches!(session.phase, Phase::Online { .. }).then(|| session.emitter())
    }

    /// The injected latency of a device's sends.
    pub(super) fn latency(&self, device_id: i64) -> std::time::Duration {
        self.lock()
            .devices
            .get(&device_id)
            .map(|device| device.faults.latency())
            .unwrap_or_default()
    }

    /// Takes a send of `message_id` from the session `generation` of a device: refuses it when
    /// offline or rate-limited, counts a duplicate, or delivers it and checks the pacing rules.
    /// Returns the outbox and a session stop for the follow-up (receipts, reply), or `None` for
    /// a duplicate, which has none.
    pub(super) fn accept_send(
        &self,
        device_id: i64,
        generation: u64,
        message_id: &str,
    ) -> Result<Option<(Outbox, Stop)>, ConnectorError> {
        let mut guard = self.lock();
        let State {
            devices,
            sends,
            stats,
            ..
        } = &mut *guard;
        let device = devices
            .get_mut(&device_id)
            .ok_or(ConnectorError::NotConnected)?;
        let follow_up = device
            .online_session(generation)
            .map(LiveSession::emitter)
            .ok_or(ConnectorError::NotConnected)?;
        if let Some(retry_after_ms) = device.faults.rate_limit() {
            stats.rate_limited += 1;
            return Err(ConnectorError::RateLimited { retry_after_ms });
        }
        if device.faults.fail_send() {
            stats.failed_sends += 1;
            return Err(ConnectorError::Other(
                "simulated: server error (500)".into(),
            ));
        }
        if let Some(attempts) = sends.get_mut(message_id) {
            *attempts += 1;
            stats.duplicates += 1;
            return Ok(None);
        }
        sends.insert(message_id.to_owned(), 1);
        stats.delivered += 1;
        let breaches = device.sends.record(Instant::now(), &self.inner.pacing);
        stats.violations += u64::from(breaches.any());
        stats.min_gap_violations += u64::from(breaches.min_gap);
        stats.per_minute_violations += u64::from(breaches.per_minute);
        stats.per_day_violations += u64::from(breaches.per_day);
        Ok(Some(follow_up))
    }
}

impl Device {
    /// The session `generation` when it is the device's current one and online.
    fn online_session(&self, generation: u64) -> Option<&LiveSession> {
        self.session.as_ref().filter(|session| {
            session.generation == generation && matches!(session.phase, Phase::Online { .. })
        })
    }
}

impl LiveSession {
    /// What a task needs to emit on this session: its outbox and a stop for its lifetime.
    fn emitter(&self) -> (Outbox, Stop) {
        (self.outbox.clone(), self.scope.stop())
    }

    /// Ends the session: stops its tasks, then emits `last` (if any) and closes its stream.
    pub(super) async fn end(self, last: Option<ConnectorEvent>) {
        let outbox = self.outbox.clone();
        drop(self);
        outbox.close(last).await;
    }
}
