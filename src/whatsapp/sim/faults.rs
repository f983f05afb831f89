//! Fault injection: what a test, a benchmark or the demo can do to a device's connection
//! ([`SimNetwork::inject`]), and the faults that stay armed on a device until used up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::SimError;
use super::network::SimNetwork;
use crate::whatsapp::ConnectorEvent;

/// Something going wrong for one device, as WhatsApp would make it go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The connection drops: `Disconnected`, then the stream ends. The account stays linked, so
    /// a reconnect with its JID logs in again.
    Disconnect,
    /// The phone unlinks the device: `LoggedOut`, then the stream ends; the account is
    /// forgotten, so the next connect pairs anew.
    Logout,
    /// WhatsApp bans the number: `Banned` (when a session is open), then the stream ends; later
    /// connects with the account's JID get `Banned` again.
    Ban,
    /// Every later send of the device waits this long (simulated time) before reaching the
    /// network; 0 removes the delay.
    Latency {
        /// Simulated milliseconds per send.
        ms: u64,
    },
    /// The next `times` connects of the device fail with `ConnectFailed`.
    RefuseConnect {
        /// How many connects to refuse.
        times: u32,
    },
    /// The next `sends` sends of the device fail with `RateLimited { retry_after_ms }`.
    RateLimit {
        /// How many sends to refuse.
        sends: u32,
        /// The wait WhatsApp asks for.
        retry_after_ms: u64,
    },
    /// The next `sends` sends of the device fail with a server error (WhatsApp answered 500):
    /// nothing reaches the recipient, and the sender may try again.
    FailSends {
        /// How many sends fail.
        sends: u32,
    },
    /// The next `downloads` media downloads of the device fail (WhatsApp's media server does
    /// not answer): received media arrives without its bytes.
    MediaUnavailable {
        /// How many downloads fail.
        downloads: u32,
    },
}

/// Faults armed on one device.
#[derive(Debug, Default)]
pub(super) struct ArmedFaults {
    /// Delay before each send (real time).
    latency: Duration,
    /// Connects still to refuse.
    refuse_connects: u32,
    /// Sends still to refuse as rate-limited.
    rate_limited_sends: u32,
    /// The wait those refusals ask for.
    retry_after_ms: u64,
    /// Media downloads still to fail.
    media_failures: u32,
    /// Sends still to fail with a server error.
    failing_sends: u32,
}

impl ArmedFaults {
    /// The delay before each send.
    pub(super) fn latency(&self) -> Duration {
        self.latency
    }

    /// Uses up one refusal; true when this connect must fail.
    pub(super) fn refuse_connect(&mut self) -> bool {
        take_one(&mut self.refuse_connects)
    }

    /// Uses up one failing media download; true when this download must fail.
    pub(super) fn fail_media(&mut self) -> bool {
        take_one(&mut self.media_failures)
    }

    /// Uses up one failing send; true when this send must fail.
    pub(super) fn fail_send(&mut self) -> bool {
        take_one(&mut self.failing_sends)
    }

    /// Uses up one rate-limited send; the wait to ask for when this send must fail.
    pub(super) fn rate_limit(&mut self) -> Option<u64> {
        take_one(&mut self.rate_limited_sends).then_some(self.retry_after_ms)
    }
}

/// Decrements a remaining count; true when there was one left.
fn take_one(remaining: &mut u32) -> bool {
    let armed = *remaining > 0;
    *remaining = remaining.saturating_sub(1);
    armed
}

impl SimNetwork {
    /// Injects `fault` into device `device_id`. Armed faults (`Latency`, `RefuseConnect`,
    /// `RateLimit`, `FailSends`, `MediaUnavailable`) apply to a device with or without a session; `Disconnect` needs an open
    /// session, `Logout` and `Ban` a linked account. Returns once the ending event, if any, is
    /// in the device's channel.
    pub async fn inject(&self, device_id: i64, fault: Fault) -> Result<(), SimError> {
        let (session, event) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let device = state.devices.entry(device_id).or_default();
            match fault {
                Fault::Latency { ms } => {
                    device.faults.latency = self.clock().ms(ms);
                    return Ok(());
                }
                Fault::RefuseConnect { times } => {
                    device.faults.refuse_connects = times;
                    return Ok(());
                }
                Fault::RateLimit {
                    sends,
                    retry_after_ms,
                } => {
                    device.faults.rate_limited_sends = sends;
                    device.faults.retry_after_ms = retry_after_ms;
                    return Ok(());
                }
                Fault::FailSends { sends } => {
                    device.faults.failing_sends = sends;
                    return Ok(());
                }
                Fault::MediaUnavailable { downloads } => {
                    device.faults.media_failures = downloads;
                    return Ok(());
                }
                Fault::Disconnect => {
                    let session = device
                        .session
                        .take()
                        .ok_or(SimError::NoSession(device_id))?;
                    let reason = "simulated: connection lost".into();
                    (Some(session), ConnectorEvent::Disconnected { reason })
                }
                Fault::Logout => {
                    let jid = device
                        .account
                        .take()
                        .ok_or(SimError::NoAccount(device_id))?;
                    state.accounts.remove(&jid);
                    let reason = "simulated: device unlinked from the phone".into();
                    (device.session.take(), ConnectorEvent::LoggedOut { reason })
                }
                Fault::Ban => {
                    let account = device
                        .account
                        .as_ref()
                        .and_then(|jid| state.accounts.get_mut(jid))
                        .ok_or(SimError::NoAccount(device_id))?;
                    account.banned = true;
                    let reason = "simulated: number banned".into();
                    (device.session.take(), ConnectorEvent::Banned { reason })
                }
            }
        };
        if let Some(session) = session {
            session.end(Some(event)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_faults_are_used_up() {
        let mut faults = ArmedFaults {
            refuse_connects: 2,
            rate_limited_sends: 1,
            retry_after_ms: 700,
            ..ArmedFaults::default()
        };
        assert!(faults.refuse_connect());
        assert!(faults.refuse_connect());
        assert!(!faults.refuse_connect());
        assert_eq!(faults.rate_limit(), Some(700));
        assert_eq!(faults.rate_limit(), None);
    }

    #[test]
    fn faults_read_as_tagged_json() {
        let fault: Result<Fault, _> = serde_json::from_str(r#"{"kind":"latency","ms":250}"#);
        assert_eq!(fault.ok(), Some(Fault::Latency { ms: 250 }));
        let fault: Result<Fault, _> = serde_json::from_str(r#"{"kind":"ban"}"#);
        assert_eq!(fault.ok(), Some(Fault::Ban));
    }
}
