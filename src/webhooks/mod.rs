//! Outbound webhooks: tenants register endpoints, and every event they subscribe to (messages,
//! receipts, chats, device status, campaigns, sequences, leads) is POSTed to them, signed,
//! through a durable queue in the database with retries.
//!
//! Flow: features publish on the hub → the hub's tap hands each local event of a tenant with an
//! active endpoint to the [`dispatcher::Dispatcher`] → [`events::from_hub`] makes it a webhook
//! event → one `webhook_queue` row per endpoint that wants it → claimed under a lease, signed
//! (HMAC-SHA256 over `"<timestamp>.<body>"`, the inbound lead webhook's scheme) and POSTed →
//! delivered, retried with backoff ([`retry`]), or given up; the row stays as the delivery log.
//! Endpoint URLs pass the SSRF [`guard`] when saved and again when a delivery connects.
//!
//! Events come only from the hub, so an event that happens on another daemon is queued by that
//! daemon (once); any daemon may deliver it (claims skip rows another daemon holds).

pub mod attempt;
pub mod dispatcher;
pub mod events;
pub mod guard;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod retry;
pub mod store;

use actix::{Addr, Supervisor};

pub use dispatcher::{Dispatcher, DispatcherDeps};

/// Bytes of a receiver's answer kept in the delivery log.
pub const MAX_RESPONSE_BYTES: usize = 1_024;

/// Starts the dispatcher under a supervisor (a restart keeps the same dispatcher, see
/// [`Dispatcher`]); it taps the hub at once. Fails only when the HTTP client cannot be built.
pub fn start(deps: DispatcherDeps) -> Result<Addr<Dispatcher>, reqwest::Error> {
    let dispatcher = Dispatcher::new(deps)?;
    Ok(Supervisor::start(move |_| dispatcher))
}
