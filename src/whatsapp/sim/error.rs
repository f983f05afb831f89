//! [`SimError`]: why a call on the simulator's own API (scan, faults, inbound messages) failed.
//! Session methods report [`ConnectorError`](super::super::ConnectorError)s instead, like any
//! connector.

/// Why a call on the [`SimNetwork`](super::SimNetwork) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// `scan` for a device that is not pairing (no session, or already online).
    #[error("device {0} has no pairing in progress")]
    NoPairing(i64),
    /// The device has no open session to act on.
    #[error("device {0} has no open session")]
    NoSession(i64),
    /// The device's session is not online (still pairing, or closed).
    #[error("device {0} is not online")]
    NotOnline(i64),
    /// The device is not linked to an account (never paired, or logged out).
    #[error("device {0} has no linked account")]
    NoAccount(i64),
    /// Not a phone number WhatsApp accepts: 8 to 15 digits, optionally after `+`.
    #[error("invalid phone number {0:?}: use 8 to 15 digits")]
    InvalidPhone(String),
    /// Not one of the device's simulated groups.
    #[error("device {0} is in no group {1:?}")]
    UnknownGroup(i64, String),
}

impl SimError {
    /// Stable snake_case code for API error bodies.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::NoPairing(_) => "no_pairing",
            Self::NoSession(_) => "no_session",
            Self::NotOnline(_) => "not_online",
            Self::NoAccount(_) => "no_account",
            Self::InvalidPhone(_) => "invalid_phone",
            Self::UnknownGroup(..) => "invalid_recipient",
        }
    }
}
