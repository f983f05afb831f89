//! Pages of a campaign's rows for its CSV export, each with its lead's name and its device's
//! name (read here, in one query per page, so the export never holds more than a page).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{devices, leads, outbox};
use crate::db::{Db, DbError};
use crate::db_run;

/// One row of a campaign's export.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ExportRow {
    /// Row id (the keyset: the next page starts after the last one).
    pub id: i64,
    /// E.164 digits.
    pub phone: String,
    /// The lead's name (none when the lead was deleted).
    pub name: Option<String>,
    /// The device's name (none when no device sent it, or it was deleted).
    pub device: Option<String>,
    /// Outbox state name.
    pub status: String,
    /// Last error.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// When WhatsApp accepted it, UTC.
    pub sent_at: Option<NaiveDateTime>,
    /// When it reached the phone, UTC.
    pub delivered_at: Option<NaiveDateTime>,
    /// When it was read, UTC.
    pub read_at: Option<NaiveDateTime>,
}

/// Up to `limit` rows of a campaign after `after_id` in id order (keyset paging), only those
/// sent through `devices_of` when given (a member's assigned devices).
pub async fn export_page(
    db: &Db,
    campaign_id: i64,
    devices_of: Option<&[i64]>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<ExportRow>, DbError> {
    db_run!(db, |conn| {
        let mut query = outbox::table
            .left_join(leads::table.on(outbox::lead_id.eq(leads::id.nullable())))
            .left_join(devices::table.on(outbox::device_id.eq(devices::id.nullable())))
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::id.gt(after_id))
            .order(outbox::id)
            .limit(limit)
            .select((
                outbox::id,
                outbox::phone,
                leads::name.nullable(),
                devices::name.nullable(),
                outbox::status,
                outbox::error,
                outbox::attempts,
                outbox::sent_at,
                outbox::delivered_at,
                outbox::read_at,
            ))
            .into_boxed();
        if let Some(ids) = devices_of {
            query = query.filter(outbox::device_id.eq_any(ids));
        }
        query.load(conn).await.map_err(DbError::from)
    })
}
