//! Tenants and users: who owns what. Every tenant-facing query is scoped by a tenant id that
//! comes from here.

pub mod model;
pub mod store;

pub use model::Tenant;
