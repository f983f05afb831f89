//! Drip sequences: ordered steps sent to each enrolled lead on its own schedule, through the
//! same outbox, Throttle and lanes as campaigns.
//!
//! - [`model`]: sequences, steps, enrolments and their states; send windows.
//! - [`branch`]: what a step's `on_reply` rule makes of a reply (continue, stop, jump).
//! - [`schedule`]: when a due step may go (window, quiet hours).
//! - [`store`]: queries, written once for both backends.
//! - [`engine`]: the SequenceEngine actor (enrol, queue due steps, advance, chain).
//! - [`report`]: per-step and per-device numbers.

pub mod branch;
pub mod engine;
pub mod model;
pub mod report;
pub mod schedule;
pub mod store;
