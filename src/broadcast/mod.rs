//! The broadcast engine: leads and opt-outs, campaigns, the durable outbox, and the Throttle
//! that paces every device like a person.
//!
//! - [`attachment`]: the file a campaign or step sends (a picture, document, video, voice note).
//! - [`events`]: lead and sequence events on the hub (WebSocket topics, outbound webhooks).
//! - [`greeting`]: `{greeting}`, the time-of-day word filled in at send time.
//! - [`leads`]: lead lists, leads, CSV import and the opt-out list.
//! - [`outbox`]: the durable outbox (one row per message); the only code on its table.
//! - [`replies`]: reacts to the chat mirror's commits (receipts, opt-out keywords, replies).
//! - [`pacing`]: pacing rules (delays, caps, quiet hours, warm-up) and their safe bounds.
//! - [`sequence`]: drip sequences (enrolment, due steps, stop on reply, chains, reports).
//! - [`settings`]: a tenant's broadcast settings over the configured defaults.
//! - [`webhook`]: the signed inbound lead webhook: secrets, signature checks, lead upserts.

pub mod attachment;
pub mod campaign;
pub mod events;
pub mod greeting;
pub mod health;
pub mod leads;
pub mod metrics;
pub mod outbox;
pub mod pacing;
pub mod replies;
pub mod sequence;
pub mod settings;
pub mod template;
pub mod throttle;
pub mod webhook;
