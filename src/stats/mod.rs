//! What the fleet did, for the home page: counts per device and UTC hour (`stats_hourly`)
//! kept as messages are mirrored, receipts applied and sends given up, in the same
//! transactions ([`store::apply`]); read back per range in the tenant's zone
//! ([`overview::overview`]) and drawn as SVG ([`chart`]). Reading costs a few hundred rows
//! however many messages are stored.

pub mod chart;
pub mod model;
pub mod overview;
pub mod store;
