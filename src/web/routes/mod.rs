//! Routes under `/api/v1`, one file per feature, each registered through utoipa so it documents
//! itself in the OpenAPI document.
//!
//! A route file imports no other route file: what several share lives beside this folder
//! ([`crate::web::input`], [`crate::web::access`], [`crate::web::views`], [`crate::web::audit`]).

pub mod admin;
pub mod auth;
pub mod broadcast_settings;
pub mod campaigns;
pub mod chats;
pub mod device_health;
pub mod devices;
pub mod leads;
pub mod opt_outs;
pub mod sequences;
pub mod sessions;
pub mod sim;
pub mod stats;
pub mod tenant;
pub mod tokens;
pub mod users;
pub mod webhook_endpoints;
pub mod webhooks;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every `/api/v1` route (the caller mounts this under the scope).
pub fn configure(cfg: &mut ServiceConfig) {
    auth::configure(cfg);
    sessions::configure(cfg);
    tenant::configure(cfg);
    users::configure(cfg);
    tokens::configure(cfg);
    devices::configure(cfg);
    device_health::configure(cfg);
    chats::configure(cfg);
    campaigns::configure(cfg);
    sequences::configure(cfg);
    leads::configure(cfg);
    opt_outs::configure(cfg);
    broadcast_settings::configure(cfg);
    webhooks::configure(cfg);
    webhook_endpoints::configure(cfg);
    admin::configure(cfg);
    sim::configure(cfg);
    stats::configure(cfg);
    crate::web::ws::configure(cfg);
}
