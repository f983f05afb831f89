//! All SQL on the `outbox` table, written once for SQLite and PostgreSQL: no other code reads or
//! writes it. Campaigns, sequences and `Replies` (the chat mirror's committed receipts, through
//! [`apply_receipts`]) call these.
//!
//! - `write`: a campaign's rows at its start ([`write()`], streamed, one transaction) and a
//!   sequence step's row inside the sequence's own transaction ([`insert_rows`]).
//! - `lease`: a sender [`claim`]s due rows under a lease, then [`finish`]es or [`release`]s them.
//! - `moves`: rows skipped, reassigned to other devices, retried after failing, read for their
//!   leads (AI distribution), and moved forward by receipts.
//! - `counts`: progress, rates, per-device history, pages of rows, sequence step states.
//! - `export`: pages of a campaign's rows with their lead's name and device's name (CSV export).
//! - `retire`: retention deletes old final rows and keeps their counts in `outbox_tallies`
//!   (this module owns that table too).
//!
//! Functions take the [`Db`](crate::db::Db) and run on a pooled connection, except the few that
//! callers run inside their own transaction: those take a [`Conn`](crate::db::Conn).

mod counts;
mod export;
mod lease;
mod moves;
mod retire;
mod write;

use crate::db::Conn;
use crate::on_conn;

pub use counts::{
    counts, device_claimed, device_outcomes_since, device_sends_since, enrollments_with_moved_rows,
    outbox_page, recent_failures, sends_by_device_since, sent_since, step_row_counts,
    step_row_state, RowState,
};
pub use export::{export_page, ExportRow};
pub use lease::{claim, finish, release, set_body};
pub use moves::{
    apply_receipts, lead_states, pending_lead_devices, reassign, retry_failed_on,
    skip_device_pending, skip_pending_leads, skip_step_row, skip_unsent, LeadState,
};
pub use retire::{retire_finished_campaign_rows, retire_step_rows};
pub use write::{insert_rows, write, RowSource};

/// Rows per INSERT on PostgreSQL, and ids per `IN` list (both backends cap bind parameters).
const CHUNK: usize = 500;
