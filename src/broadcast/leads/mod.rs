//! Leads: lists of people to broadcast to, their CSV import, and the tenant-wide opt-out list.
//!
//! - [`model`]: rows and the shared rules (tags, statuses, how an import updates a lead).
//! - [`csv`]: the streaming CSV parser (pure), rows with line numbers and reasons.
//! - [`import`]: the import driver: body chunks in, batched transactions out, progress reports.
//! - [`store`]: SQL of lists and leads.
//! - [`opt_out`]: the opt-out list, [`opt_out::opted_out`] for the campaign engine, and the
//!   inbound-keyword rule ChatSync applies.
//!
//! Phones are stored as E.164 digits without the plus, normalized with the tenant's default
//! country ([`crate::broadcast::settings`]).

pub mod csv;
pub mod import;
pub mod model;
pub mod opt_out;
pub mod store;
