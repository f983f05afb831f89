//! The durable outbox: one row per intended message (a campaign's, or a sequence step's), with
//! its pre-generated WhatsApp id, its device, its state and its lease. This module is the only
//! code that reads or writes the `outbox` table; campaigns, sequences and chat receipts go
//! through [`store`].
//!
//! - [`model`]: the [`OutboxStatus`](model::OutboxStatus) state machine and the row types.
//! - [`store`]: every query: writing rows, claiming and finishing them, moving, skipping and
//!   counting them, and receipts.

pub mod model;
pub mod store;
