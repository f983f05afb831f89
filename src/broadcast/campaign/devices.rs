//! The devices a campaign may use and what each can take: the online devices of its device
//! choice, their days since linking (warm-up), their remaining daily capacity and (AI
//! distribution) their health. Read by the engine's ticks and by a campaign's start.
//!
//! A campaign or sequence created by a member sends only through the devices assigned to that
//! member now ([`creator_devices`]), whatever its stored choice says: a choice made before an
//! assignment was removed, an "all online" carrier of a sequence, or one edited by an owner.

use std::collections::HashMap;

use chrono::{NaiveDateTime, Utc};

use super::model::{Campaign, DeviceChoice};
use crate::auth::Role;
use crate::broadcast::outbox::store;
use crate::broadcast::pacing::Pacing;
use crate::db::{Db, DbError};
use crate::device::model::{Device, DeviceFilter, DeviceStatus};

/// The devices a campaign or sequence created by `created_by` may send through: `None` for any
/// of the tenant's (created by an owner or admin, or by a user since deleted), the devices
/// assigned to the creator now when they are a member or viewer.
pub async fn creator_devices(
    db: &Db,
    created_by: Option<i64>,
) -> Result<Option<Vec<i64>>, DbError> {
    let Some(user_id) = created_by else {
        return Ok(None);
    };
    let creator = match crate::auth::store::get_user(db, user_id).await {
        Ok(user) => user,
        Err(DbError::NotFound) => return Ok(None),
        Err(err) => return Err(err),
    };
    if creator.role() >= Role::Owner {
        return Ok(None);
    }
    Ok(Some(
        crate::auth::store::assigned_device_ids(db, user_id).await?,
    ))
}

/// The online devices a campaign may use, quarantined ones left out: those of its choice, within its creator's
/// ([`creator_devices`]).
pub async fn online_devices(db: &Db, campaign: &Campaign) -> Result<Vec<Device>, DbError> {
    let chosen = match campaign.device_choice() {
        DeviceChoice::AllOnline => None,
        DeviceChoice::Set { ids } => Some(ids),
        DeviceChoice::Member { user_id } => {
            Some(crate::auth::store::assigned_device_ids(db, user_id).await?)
        }
    };
    let only_ids = match (chosen, creator_devices(db, campaign.created_by).await?) {
        (Some(chosen), Some(allowed)) => Some(
            chosen
                .into_iter()
                .filter(|id| allowed.contains(id))
                .collect(),
        ),
        (chosen, allowed) => chosen.or(allowed),
    };
    let filter = DeviceFilter {
        status: Some(DeviceStatus::Online),
        search: None,
        only_ids,
        healthy_only: true,
    };
    let (devices, _) =
        crate::device::store::list_devices(db, campaign.tenant_id, &filter, 10_000, 0).await?;
    Ok(devices)
}

/// Whole simulated days since `device` was linked (0 when not linked), for warm-up.
pub fn days_linked(device: &Device, time_scale: f64) -> u32 {
    device.paired_at.map_or(0, |at| {
        let secs = (Utc::now().naive_utc() - at).num_seconds().max(0) as f64 * time_scale;
        (secs / 86_400.0) as u32
    })
}

/// The start of the last simulated day.
pub fn day_ago(time_scale: f64) -> NaiveDateTime {
    let day = chrono::Duration::milliseconds((86_400_000.0 / time_scale) as i64);
    (Utc::now() - day).naive_utc()
}

/// Each device's sends left today: its daily cap after warm-up, minus what it sent in the last
/// simulated day (one grouped query for all of them).
pub async fn remaining_capacity(
    db: &Db,
    time_scale: f64,
    devices: &[Device],
    pacing: &Pacing,
) -> Result<Vec<(i64, u64)>, DbError> {
    let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
    let sent = store::sends_by_device_since(db, &ids, day_ago(time_scale)).await?;
    Ok(devices
        .iter()
        .map(|device| {
            let cap = u64::from(pacing.daily_cap(days_linked(device, time_scale)));
            let sent = sent.get(&device.id).copied().unwrap_or(0);
            (device.id, cap.saturating_sub(sent))
        })
        .collect())
}

/// Each device's health for AI distribution, 0.1–1.0: the share of its messages of the last
/// (simulated) day that did not fail. A device without history is healthy.
pub async fn device_health(
    db: &Db,
    time_scale: f64,
    devices: &[Device],
) -> Result<Vec<f64>, DbError> {
    let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
    let history: HashMap<i64, (i64, i64)> =
        store::device_outcomes_since(db, &ids, day_ago(time_scale)).await?;
    Ok(ids
        .iter()
        .map(|id| match history.get(id) {
            Some(&(failed, total)) if total > 0 => (1.0 - failed as f64 / total as f64).max(0.1),
            _ => 1.0,
        })
        .collect())
}
