//! The simulated WhatsApp network: a real, in-process [`Connector`](super::Connector) used by the
//! demo (`wafleet --simulate N`), the integration tests and the benchmarks.
//!
//! # Who talks to it
//! One [`SimNetwork`] per daemon holds what WhatsApp's servers would: linked accounts, pairings
//! in progress, every device's recent sends, the ids of delivered messages, counters and armed
//! faults. Device actors reach it only through [`SimConnector`] and the sessions it opens; the
//! HTTP layer calls the network itself (`POST /api/v1/sim/scan` → [`SimNetwork::scan`],
//! `GET /api/v1/sim/stats` → [`SimNetwork::stats`]); tests inject faults ([`SimNetwork::inject`])
//! and make contacts write first ([`SimNetwork::deliver_inbound`]; any addressing through
//! `POST /api/v1/sim/inbound` → [`SimNetwork::deliver`]).
//!
//! # Message flow
//! - `connect` with the JID of a linked account → `Connected`; of a banned one → `Banned` and the
//!   stream ends; otherwise pairing starts with `Qr`, re-issued every `qr_rotate_ms`, or
//!   `PairCode` after `request_pair_code`. A scan (the API, or auto-scan after
//!   `auto_scan_after_ms`) links a new account and emits `Connected`.
//! - A send is deduplicated by message id across the whole network (a resend is counted, not
//!   delivered), checked against the pacing rules (a breach is counted but still delivered: real
//!   WhatsApp punishes later), then `Receipt{Delivered}`, `Receipt{Read}` and perhaps a reply, text
//!   or image, follow from the contact.
//! - A session ends by `disconnect`, `logout`, a fault, or a newer `connect` of the same device.
//!   Its event sender is dropped then, so the device actor's stream ends, and its timers stop.
//!
//! # Cost
//! No thread per device: a session is a map entry; its only long-lived task is the pairing timer
//! (QR rotation and auto-scan), which ends with the pairing. Each delivered message has one
//! short task for its receipts and reply, cancelled when the session ends.
//!
//! # Time
//! Every configured duration, pacing windows and injected latency included, is divided by
//! `time_scale`, so `--time-scale 60` runs a simulated minute in a real second.
//!
//! # Files
//! `network.rs` shared state and stats; `connector.rs` and `session.rs` the trait implementations;
//! `outbox.rs` ordered emission and cancellation; `pairing.rs` QR payloads, pair codes, scans;
//! `pacing.rs` the pure pacing rules; `contacts.rs` receipts, replies and contacts writing first
//! (in their chat or a group; messages, reactions, edits, deletions); `groups.rs` each
//! device's groups; `media.rs` received media as `chat.media_download` says; `faults.rs` fault
//! injection; `address.rs` phone numbers and JIDs; `clock.rs` time scaling; `error.rs`.

mod address;
mod clock;
mod connector;
mod contacts;
mod error;
mod faults;
mod groups;
mod media;
mod network;
mod outbox;
mod pacing;
mod pairing;
mod samples;
mod session;
#[cfg(test)]
mod tests;

pub use connector::SimConnector;
pub use contacts::{Addressing, SimChange, SimInbound};
pub use error::SimError;
pub use faults::Fault;
pub use network::{SimNetwork, SimStats};
pub use samples::PHOTO_PNG;
