//! Campaigns: a message to many leads through many devices at a human pace.
//!
//! - [`model`]: campaign and outbox rows, states, targets, device choices.
//! - [`store`]: their queries (claiming due rows, leases, reassignment, counts).
//! - [`engine`]: the CampaignEngine actor that starts, runs, pauses and completes campaigns.
//! - [`lane`]: one device sending one campaign's rows.
//! - [`progress`]: counts, rate and ETA, as published on `campaign/<id>`.

pub mod engine;
pub mod lane;
pub mod model;
pub mod progress;
pub mod store;
