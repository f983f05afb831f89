//! All SQL about devices. Tenant-facing reads take the tenant id and filter on it, so a device of
//! another tenant is simply "not found".

use std::collections::HashSet;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::{Device, DeviceFilter, DeviceStatus, DeviceStatusPatch, NewDevice};
use crate::db::schema::{device_events, devices};
use crate::db::sql::{like_pattern, lower};
use crate::db::{Db, DbError};
use crate::db_run;

/// Creates a device in status `new`.
pub async fn insert_device(db: &Db, tenant_id: i64, name: &str) -> Result<Device, DbError> {
    let now = Utc::now().naive_utc();
    let row = NewDevice {
        tenant_id,
        name,
        status: DeviceStatus::New.as_str(),
        created_at: now,
        updated_at: now,
    };
    db_run!(db, |conn| {
        diesel::insert_into(devices::table)
            .values(&row)
            .returning(Device::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One device of a tenant.
pub async fn get_device(db: &Db, tenant_id: i64, id: i64) -> Result<Device, DbError> {
    db_run!(db, |conn| {
        devices::table
            .filter(devices::id.eq(id))
            .filter(devices::tenant_id.eq(tenant_id))
            .select(Device::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Which of `ids` are devices of the tenant (a subscription's topics, checked together).
pub async fn tenant_device_ids(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<HashSet<i64>, DbError> {
    Ok(crate::ids_found!(db, ids, i64, |chunk| devices::table
        .filter(devices::tenant_id.eq(tenant_id))
        .filter(devices::id.eq_any(chunk))
        .select(devices::id)))
}

/// A page of a tenant's devices, ordered by id, and the total matching the filter.
pub async fn list_devices(
    db: &Db,
    tenant_id: i64,
    filter: &DeviceFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Device>, i64), DbError> {
    // Built twice (count and page) because a boxed query cannot be cloned.
    macro_rules! filtered {
        () => {{
            let mut query = devices::table
                .filter(devices::tenant_id.eq(tenant_id))
                .into_boxed();
            if let Some(status) = filter.status {
                query = query.filter(devices::status.eq(status.as_str()));
            }
            if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
                let pattern = like_pattern(&search.to_lowercase());
                query = query.filter(
                    lower(devices::name)
                        .like(pattern.clone())
                        .escape('\\')
                        .or(devices::phone.like(pattern).escape('\\')),
                );
            }
            if let Some(ids) = &filter.only_ids {
                query = query.filter(devices::id.eq_any(ids.clone()));
            }
            if filter.healthy_only {
                let now = Utc::now().naive_utc();
                query = query.filter(
                    devices::quarantined_until
                        .is_null()
                        .or(devices::quarantined_until.le(now)),
                );
            }
            query
        }};
    }
    db_run!(db, |conn| {
        let total: i64 = filtered!().count().get_result(conn).await?;
        let page = filtered!()
            .order(devices::id.asc())
            .limit(limit)
            .offset(offset)
            .select(Device::as_select())
            .load(conn)
            .await?;
        Ok((page, total))
    })
}

/// Renames a tenant's device and returns it.
pub async fn rename_device(
    db: &Db,
    tenant_id: i64,
    id: i64,
    name: &str,
) -> Result<Device, DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(
            devices::table
                .filter(devices::id.eq(id))
                .filter(devices::tenant_id.eq(tenant_id)),
        )
        .set((devices::name.eq(name), devices::updated_at.eq(now)))
        .returning(Device::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Records a lifecycle transition (called by the device's own actor, which knows its id).
pub async fn update_status(db: &Db, id: i64, mut patch: DeviceStatusPatch) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    patch.updated_at = Some(now);
    let logged_in = matches!(patch.jid, Some(Some(_)));
    let status = patch.status.clone();
    let detail = match (&patch.status, &patch.status_reason) {
        (Some(status), Some(Some(reason))) => Some(format!("{status}: {reason}")),
        (status, _) => status.clone(),
    };
    let changed = db_run!(db, |conn| {
        // The status before, to record only real changes in the device's history.
        let before: Option<(i64, String)> = match &status {
            Some(_) => devices::table
                .find(id)
                .select((devices::tenant_id, devices::status))
                .first(conn)
                .await
                .optional()?,
            None => None,
        };
        let changed = diesel::update(devices::table.find(id))
            .set(&patch)
            .execute(conn)
            .await?;
        if let (Some((tenant_id, old)), Some(new)) = (&before, &status) {
            if old != new {
                diesel::insert_into(device_events::table)
                    .values((
                        device_events::tenant_id.eq(tenant_id),
                        device_events::device_id.eq(id),
                        device_events::kind.eq(history::STATUS),
                        device_events::detail.eq(&detail),
                        device_events::at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        if logged_in {
            // The first login of a link starts its warm-up.
            diesel::update(devices::table.find(id).filter(devices::paired_at.is_null()))
                .set(devices::paired_at.eq(now))
                .execute(conn)
                .await?;
        }
        Ok::<_, DbError>(changed)
    })?;
    if changed == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Deletes a tenant's device; its chats and session rows go with it (cascades).
pub async fn delete_device(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    let deleted = db_run!(db, |conn| {
        diesel::delete(
            devices::table
                .filter(devices::id.eq(id))
                .filter(devices::tenant_id.eq(tenant_id)),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    if deleted == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// How many of a tenant's devices (or of `only_ids` among them) are in each status; statuses
/// with none are left out.
pub async fn count_by_status(
    db: &Db,
    tenant_id: i64,
    only_ids: Option<&[i64]>,
) -> Result<Vec<(String, i64)>, DbError> {
    // Two spelled-out queries: diesel cannot group a boxed query.
    let ids = only_ids.map(<[i64]>::to_vec);
    db_run!(db, |conn| {
        let base = devices::table.filter(devices::tenant_id.eq(tenant_id));
        let counted = match ids {
            Some(ids) => {
                base.filter(devices::id.eq_any(ids))
                    .group_by(devices::status)
                    .select((devices::status, diesel::dsl::count_star()))
                    .order(devices::status.asc())
                    .load(conn)
                    .await
            }
            None => {
                base.group_by(devices::status)
                    .select((devices::status, diesel::dsl::count_star()))
                    .order(devices::status.asc())
                    .load(conn)
                    .await
            }
        };
        counted.map_err(DbError::from)
    })
}

/// Every device worth connecting at start-up: paired (a JID is stored) and not logged out or
/// banned; previously online ones first, then the most recently seen.
pub async fn list_bootable_devices(db: &Db) -> Result<Vec<Device>, DbError> {
    let excluded = [
        DeviceStatus::LoggedOut.as_str(),
        DeviceStatus::Banned.as_str(),
    ];
    let online = DeviceStatus::Online.as_str();
    db_run!(db, |conn| {
        devices::table
            .filter(devices::jid.is_not_null())
            .filter(devices::status.ne_all(excluded))
            .order((
                devices::status.ne(online),
                devices::last_seen.desc(),
                devices::id.asc(),
            ))
            .select(Device::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// The devices with these ids (cluster nodes load the devices they claim), online ones first.
pub async fn devices_by_ids(db: &Db, ids: &[i64]) -> Result<Vec<Device>, DbError> {
    let online = DeviceStatus::Online.as_str();
    db_run!(db, |conn| {
        devices::table
            .filter(devices::id.eq_any(ids))
            .order((devices::status.ne(online), devices::id.asc()))
            .select(Device::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// At start-up: devices that were pairing (no JID yet) have no session any more; set them back
/// to `new` with a reason instead of leaving a QR status nothing will honour. Returns how many.
pub async fn reset_interrupted_pairings(db: &Db) -> Result<usize, DbError> {
    let pairing = [
        DeviceStatus::AwaitingQr.as_str(),
        DeviceStatus::AwaitingPairCode.as_str(),
        DeviceStatus::Connecting.as_str(),
        DeviceStatus::Reconnecting.as_str(),
    ];
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(
            devices::table
                .filter(devices::jid.is_null())
                .filter(devices::status.eq_any(pairing)),
        )
        .set((
            devices::status.eq(DeviceStatus::New.as_str()),
            devices::status_reason.eq(Some(
                "pairing was interrupted by a restart; reconnect to pair",
            )),
            devices::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// The kinds of a device's history entries.
pub mod history {
    /// The status changed (detail: the new status, and why).
    pub const STATUS: &str = "status";
    /// Quarantined (detail: why).
    pub const QUARANTINED: &str = "quarantined";
    /// The quarantine was lifted by a user.
    pub const QUARANTINE_LIFTED: &str = "quarantine_lifted";
    /// WhatsApp answered a send with a rate limit.
    pub const RATE_LIMITED: &str = "rate_limited";
}

/// One entry of a device's history.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct DeviceHistoryEntry {
    /// What happened (`status`, `quarantined`, `quarantine_lifted`, `rate_limited`).
    pub kind: String,
    /// The new status (and why), or the quarantine's reason.
    pub detail: Option<String>,
    /// When, UTC.
    pub at: chrono::NaiveDateTime,
}

/// Adds an entry to a device's history.
pub async fn add_history(
    db: &Db,
    tenant_id: i64,
    device_id: i64,
    kind: &str,
    detail: Option<&str>,
) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::insert_into(device_events::table)
            .values((
                device_events::tenant_id.eq(tenant_id),
                device_events::device_id.eq(device_id),
                device_events::kind.eq(kind),
                device_events::detail.eq(detail),
                device_events::at.eq(now),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(())
}

/// A device's latest history entries, newest first.
pub async fn history(
    db: &Db,
    device_id: i64,
    limit: i64,
) -> Result<Vec<DeviceHistoryEntry>, DbError> {
    db_run!(db, |conn| {
        device_events::table
            .filter(device_events::device_id.eq(device_id))
            .order((device_events::at.desc(), device_events::id.desc()))
            .limit(limit)
            .select((
                device_events::kind,
                device_events::detail,
                device_events::at,
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A device's history entries since `since` per kind and detail's first word (the status for
/// `status` entries), for the health score.
pub async fn history_counts_since(
    db: &Db,
    device_id: i64,
    since: chrono::NaiveDateTime,
) -> Result<Vec<(String, Option<String>)>, DbError> {
    db_run!(db, |conn| {
        device_events::table
            .filter(device_events::device_id.eq(device_id))
            .filter(device_events::at.ge(since))
            .select((device_events::kind, device_events::detail))
            .limit(10_000)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Quarantines a device until `until` for `reason`, unless it already is at `now`; whether it
/// was quarantined by this call.
pub async fn quarantine(
    db: &Db,
    device_id: i64,
    until: chrono::NaiveDateTime,
    reason: &str,
) -> Result<bool, DbError> {
    let now = Utc::now().naive_utc();
    let changed = db_run!(db, |conn| {
        diesel::update(
            devices::table.find(device_id).filter(
                devices::quarantined_until
                    .is_null()
                    .or(devices::quarantined_until.le(now)),
            ),
        )
        .set((
            devices::quarantined_until.eq(Some(until)),
            devices::quarantine_reason.eq(Some(reason)),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed == 1)
}

/// Ends a tenant's device's quarantine now; whether it was quarantined.
pub async fn lift_quarantine(db: &Db, tenant_id: i64, device_id: i64) -> Result<bool, DbError> {
    let now = Utc::now().naive_utc();
    let changed = db_run!(db, |conn| {
        diesel::update(
            devices::table
                .filter(devices::id.eq(device_id))
                .filter(devices::tenant_id.eq(tenant_id))
                .filter(devices::quarantined_until.gt(now)),
        )
        .set((
            devices::quarantined_until.eq(None::<chrono::NaiveDateTime>),
            devices::quarantine_reason.eq(None::<String>),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed == 1)
}

/// Deletes up to `limit` of the oldest history entries older than `cutoff`; how many went.
pub async fn delete_history_before(
    db: &Db,
    cutoff: chrono::NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    crate::delete_chunk!(
        db,
        device_events,
        device_events::at.lt(cutoff),
        device_events::at,
        limit
    )
}
