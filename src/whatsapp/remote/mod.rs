//! The simulated network in another process: `wafleet sim` serves one [`SimNetwork`] over TCP,
//! and daemons configured with `[sim] remote = "host:port"` reach it through
//! [`RemoteSimConnector`]. The fault harness uses this so that the network, and its record of
//! delivered message ids, survives the daemon being killed.
//!
//! # Protocol
//! One JSON object per line (UTF-8, `\n`-terminated, at most [`MAX_LINE_BYTES`]) in both
//! directions. The first line of a connection says what it is:
//! - `{"op":"connect","device_id":7,"jid":null}`: one device session, exactly what
//!   [`Connector::connect`](crate::whatsapp::Connector::connect) opens in-process;
//! - `{"op":"control"}`: the harness's view of the network (stats, delivered ids, scans, faults).
//!
//! The server answers the first line with reply `0`, then:
//! - requests `{"id":n,"op":"send_text","to":…,"message_id":…,"text":…}` (ops of
//!   [`SessionCall`] or [`ControlCall`]) get `{"reply":{"re":n,"ok":<value>}}` or
//!   `{"reply":{"re":n,"err":{"code":"not_connected"}}}` (a [`ConnectorError`]), in the order
//!   they finish;
//! - a session streams its events as `{"event":{"connected":{"jid":…,"push_name":…}}}` (a
//!   [`ConnectorEvent`], media as base64), and `"closed"` when its stream ends (the device
//!   actor then sees the end of its stream, as in-process).
//!
//! A session ends when its connection closes: a killed daemon's devices go offline at the
//! simulator like a phone whose linked computer vanished, and log in again with their stored
//! JID when the restarted daemon connects. A line that is too long or not UTF-8 closes the
//! connection; a well-formed line with an unknown op gets an error reply.
//!
//! # Files
//! `protocol.rs` the wire types and bounded line I/O; `server.rs` `wafleet sim`; `client.rs`
//! the connector, its sessions and [`SimControl`].
//!
//! [`SimNetwork`]: crate::whatsapp::sim::SimNetwork
//! [`ConnectorError`]: crate::whatsapp::ConnectorError
//! [`ConnectorEvent`]: crate::whatsapp::ConnectorEvent

mod client;
pub mod protocol;
pub mod server;

pub use client::{RemoteSimConnector, SimControl};
pub use protocol::{ControlCall, SessionCall, MAX_LINE_BYTES};
