//! Campaigns: a message to many leads through many devices at a human pace.
//!
//! - [`model`]: campaign rows, states, targets, device choices.
//! - [`store`]: campaign queries (and which device owns an AI distribution's leads).
//! - [`messages`]: what the engine handles (start, watch, pause/resume/cancel).
//! - [`error`]: why the engine refuses a request.
//! - [`engine`]: the CampaignEngine actor that runs, pauses and completes campaigns.
//! - [`materialize`]: a campaign's start: its leads become outbox rows, a page at a time.
//! - [`distribution`]: how rows are spread over devices (broadcast, AI); pure.
//! - [`devices`]: the devices a campaign may use, their capacity and health.
//! - [`export`]: its results as CSV lines (quoted, formulas neutralised, tenant's zone).
//! - [`lane`]: one device sending one campaign's rows.
//! - `run`: a campaign the engine runs in this process, and its lanes' control channels.
//! - [`progress`]: counts, rate and ETA, as published on `campaign/<id>`.

pub mod devices;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod export;
pub mod lane;
pub mod materialize;
pub mod messages;
pub mod model;
pub mod progress;
mod run;
pub mod store;
