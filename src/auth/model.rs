//! Tenant and user rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::tenants;

/// A business using wafleet; owns devices, leads, campaigns and chats.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    /// Primary key.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// IANA time zone used for schedules and displayed times.
    pub time_zone: String,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
}

/// Insert form for a tenant.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant<'a> {
    /// Display name.
    pub name: &'a str,
    /// IANA time zone.
    pub time_zone: &'a str,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
}
