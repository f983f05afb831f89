//! Pairing a device: QR payloads that rotate like WhatsApp's, pair codes, the pairing timer
//! (rotation and demo auto-scan), and the scan that links a new account.
//!
//! Flow: `connect` without valid credentials emits a `Qr`; the timer emits a fresh payload every
//! `qr_rotate_ms` (same keys, new server ref, as WhatsApp does). `request_pair_code` switches to
//! a code for a given phone number (the QR stops rotating). [`SimNetwork::scan`], from
//! `POST /api/v1/sim/scan` or the timer after `auto_scan_after_ms`, completes either: it links an
//! account (a fresh `601…` number for a QR, the given number for a code) and emits `Connected`.
//! The timer belongs to the pairing and ends with it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::seq::IndexedRandom;
use rand::Rng;
use tokio::time::Instant;

use super::address::{device_jid, last_digits};
use super::error::SimError;
use super::network::{Account, Phase, SimNetwork, State};
use super::outbox::{Scope, Stop};
use crate::whatsapp::{ConnectorError, ConnectorEvent};

/// Pair-code characters: no 0/O, I/1 look-alikes or U, as in WhatsApp's linking codes.
const PAIR_CODE_ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// Characters in a pair code.
const PAIR_CODE_LEN: usize = 8;
/// Country and area prefix of the numbers handed out to QR pairings.
const SIM_PHONE_PREFIX: &str = "601";

/// A pairing in progress.
#[derive(Debug)]
pub(super) struct Pairing {
    /// The keys every QR payload of this pairing carries.
    keys: QrKeys,
    /// The phone number of a pair-code pairing; `None` while pairing by QR.
    phone: Option<String>,
    /// Dropped with the pairing, which ends its timer.
    _timer: Scope,
}

impl Pairing {
    /// A new pairing (by code when `phone` is given) and a stop for its timer.
    pub(super) fn new(phone: Option<String>) -> (Self, Stop) {
        let timer = Scope::new();
        let stop = timer.stop();
        let pairing = Self {
            keys: QrKeys::generate(),
            phone,
            _timer: timer,
        };
        (pairing, stop)
    }

    /// A fresh QR payload for this pairing.
    pub(super) fn qr(&self) -> String {
        self.keys.payload()
    }
}

/// The device's keys a QR payload shows the phone, fixed for one pairing.
#[derive(Debug)]
struct QrKeys {
    /// Noise public key, base64.
    noise: String,
    /// Identity public key, base64.
    identity: String,
    /// Advertising secret, base64.
    adv_secret: String,
}

impl QrKeys {
    /// Random keys.
    fn generate() -> Self {
        Self {
            noise: random_base64::<32>(),
            identity: random_base64::<32>(),
            adv_secret: random_base64::<32>(),
        }
    }

    /// A payload with a new server ref, like WhatsApp's `ref,noise,identity,adv`.
    fn payload(&self) -> String {
        format!(
            "2@{},{},{},{}",
            random_base64::<48>(),
            self.noise,
            self.identity,
            self.adv_secret
        )
    }
}

/// `N` random bytes in standard base64.
fn random_base64<const N: usize>() -> String {
    BASE64.encode(rand::rng().random::<[u8; N]>())
}

/// A random pair code: eight characters of the unambiguous alphabet.
pub(super) fn pair_code() -> String {
    let mut rng = rand::rng();
    (0..PAIR_CODE_LEN)
        .filter_map(|_| PAIR_CODE_ALPHABET.choose(&mut rng))
        .map(|&b| char::from(b))
        .collect()
}

/// Starts the timer of a pairing: QR rotation (when `rotate_qr`) and auto-scan, each when
/// configured. It ends when `stop` fires, that is when the pairing ends.
pub(super) fn start_timer(
    network: &SimNetwork,
    device_id: i64,
    generation: u64,
    stop: Stop,
    rotate_qr: bool,
) {
    let settings = network.settings();
    let clock = network.clock();
    let start = Instant::now();
    let rotate = Some(clock.ms(settings.qr_rotate_ms)).filter(|d| rotate_qr && !d.is_zero());
    let scan_at = (settings.auto_scan_after_ms > 0)
        .then(|| start.checked_add(clock.ms(settings.auto_scan_after_ms)))
        .flatten();
    if rotate.is_none() && scan_at.is_none() {
        return;
    }
    let timer = Timer {
        network: network.clone(),
        device_id,
        generation,
        stop,
        rotate,
        scan_at,
    };
    tokio::spawn(timer.run(start));
}

/// A pairing's timer.
struct Timer {
    /// The network to emit on and scan.
    network: SimNetwork,
    /// The pairing device.
    device_id: i64,
    /// Its session.
    generation: u64,
    /// Fires when the pairing ends.
    stop: Stop,
    /// QR rotation period, if rotating.
    rotate: Option<std::time::Duration>,
    /// When to scan automatically, if at all.
    scan_at: Option<Instant>,
}

impl Timer {
    /// Rotates the QR until the pairing ends, or scans it when `scan_at` comes first.
    async fn run(mut self, start: Instant) {
        let mut next_qr = self.rotate.and_then(|period| start.checked_add(period));
        loop {
            let Some(wake) = next_qr.into_iter().chain(self.scan_at).min() else {
                return;
            };
            if !self.stop.sleep_until(wake).await {
                return;
            }
            if self.scan_at.is_some_and(|at| at <= wake) {
                // An error means the pairing ended meanwhile: nothing left to do.
                if let Err(error) = self.network.scan(self.device_id).await {
                    tracing::debug!(device_id = self.device_id, %error, "auto-scan skipped");
                }
                return;
            }
            if !self
                .network
                .rotate_qr(self.device_id, self.generation, &mut self.stop)
                .await
            {
                return;
            }
            next_qr = self.rotate.and_then(|period| wake.checked_add(period));
        }
    }
}

impl SimNetwork {
    /// Completes the pending pairing of a device, as the phone scanning its QR code (or
    /// confirming its pair code) would: links a new account, emits `Connected` on the session,
    /// then the history sync (`history_chats`), and returns the account's JID.
    pub async fn scan(&self, device_id: i64) -> Result<String, SimError> {
        let (generation, outbox) = {
            let state = self.lock();
            match state
                .devices
                .get(&device_id)
                .and_then(|d| d.session.as_ref())
            {
                Some(session) if matches!(session.phase, Phase::Pairing(_)) => {
                    (session.generation, session.outbox.clone())
                }
                _ => return Err(SimError::NoPairing(device_id)),
            }
        };
        // Linking while holding the turn keeps any later QR from following `Connected`.
        let turn = outbox.turn().await;
        let (jid, push_name, mut stop) = self.link_account(device_id, generation)?;
        turn.send(
            ConnectorEvent::Connected {
                jid: jid.clone(),
                push_name: Some(push_name),
            },
            &mut stop,
        )
        .await;
        // As a phone does after linking: the recent chats, once.
        let history = self.history(&jid);
        if !history.is_empty() {
            outbox
                .emit(ConnectorEvent::HistorySync(history), &mut stop)
                .await;
        }
        Ok(jid)
    }

    /// Links a new account to the pairing session `generation` of a device and puts it online.
    /// Returns the JID, the profile name and a stop for the session.
    fn link_account(
        &self,
        device_id: i64,
        generation: u64,
    ) -> Result<(String, String, Stop), SimError> {
        let mut guard = self.lock();
        let State {
            devices,
            accounts,
            links_per_phone,
            phones_issued,
            ..
        } = &mut *guard;
        let device = devices
            .get_mut(&device_id)
            .ok_or(SimError::NoPairing(device_id))?;
        let session = device
            .session
            .as_mut()
            .filter(|session| session.generation == generation)
            .ok_or(SimError::NoPairing(device_id))?;
        let Phase::Pairing(pairing) = &session.phase else {
            return Err(SimError::NoPairing(device_id));
        };
        let phone = match &pairing.phone {
            Some(phone) => phone.clone(),
            None => {
                *phones_issued += 1;
                format!("{SIM_PHONE_PREFIX}{:08}", *phones_issued)
            }
        };
        let links = links_per_phone.entry(phone.clone()).or_default();
        *links += 1;
        let jid = device_jid(&phone, *links);
        let push_name = format!("Sim {}", last_digits(&phone));
        if let Some(previous) = device.account.replace(jid.clone()) {
            accounts.remove(&previous);
        }
        accounts.insert(
            jid.clone(),
            Account {
                device_id,
                push_name: push_name.clone(),
                banned: false,
            },
        );
        // Replacing the phase drops the pairing, which ends its timer.
        session.phase = Phase::Online { jid: jid.clone() };
        Ok((jid, push_name, session.scope.stop()))
    }

    /// Emits a fresh QR payload for the QR pairing of session `generation`; false when that
    /// pairing is over (or `stop` fired).
    async fn rotate_qr(&self, device_id: i64, generation: u64, stop: &mut Stop) -> bool {
        let next = {
            let state = self.lock();
            state
                .devices
                .get(&device_id)
                .and_then(|device| device.session.as_ref())
                .filter(|session| session.generation == generation)
                .and_then(|session| match &session.phase {
                    Phase::Pairing(pairing) if pairing.phone.is_none() => {
                        Some((pairing.qr(), session.outbox.clone()))
                    }
                    _ => None,
                })
        };
        match next {
            Some((code, outbox)) => outbox.emit(ConnectorEvent::Qr { code }, stop).await,
            None => false,
        }
    }

    /// Switches the pairing session `generation` of a device to a pair code for `phone`
    /// (replacing its QR pairing, whose timer stops). Returns a stop for the new pairing.
    pub(super) fn start_code_pairing(
        &self,
        device_id: i64,
        generation: u64,
        phone: String,
    ) -> Result<Stop, ConnectorError> {
        let mut state = self.lock();
        let session = state
            .devices
            .get_mut(&device_id)
            .and_then(|device| device.session.as_mut())
            .filter(|session| session.generation == generation)
            .ok_or(ConnectorError::NotConnected)?;
        if let Phase::Online { .. } = session.phase {
            return Err(ConnectorError::Other("already logged in".into()));
        }
        let (pairing, stop) = Pairing::new(Some(phone));
        session.phase = Phase::Pairing(pairing);
        Ok(stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_payloads_look_like_whatsapps_and_rotate_the_ref_only() {
        let (pairing, _stop) = Pairing::new(None);
        let first = pairing.qr();
        let second = pairing.qr();
        let parts: Vec<&str> = first.split(',').collect();
        assert_eq!(parts.len(), 4);
        assert!(parts[0].starts_with("2@"));
        for key in &parts[1..] {
            assert_eq!(BASE64.decode(key).map(|k| k.len()).ok(), Some(32));
        }
        assert_ne!(first, second);
        assert_eq!(
            first.split_once(',').map(|p| p.1),
            second.split_once(',').map(|p| p.1)
        );
    }

    #[test]
    fn pair_codes_use_eight_unambiguous_characters() {
        for _ in 0..100 {
            let code = pair_code();
            assert_eq!(code.len(), PAIR_CODE_LEN);
            assert!(code.bytes().all(|b| PAIR_CODE_ALPHABET.contains(&b)));
            assert!(!code.contains(['0', 'O', 'I', 'U']));
        }
    }
}
