//! Devices: the list a caller may see (a member's: the devices assigned to them), and a device
//! as the API shows it.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::device::messages::DeviceSnapshot;
use crate::device::model::DeviceFilter;
use crate::device::{store, Device, DeviceStatus};
use crate::web::auth::{require, Auth};
use crate::web::views::{page_offset, utc};
use crate::web::{ApiError, AppState};

/// Largest page of the device list.
const MAX_PER_PAGE: i64 = 500;

/// A device as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Why it is in that status.
    pub status_reason: Option<String>,
    /// WhatsApp JID once paired.
    pub jid: Option<String>,
    /// Phone number once paired.
    pub phone: Option<String>,
    /// WhatsApp profile name.
    pub push_name: Option<String>,
    /// Last time seen online.
    pub last_seen: Option<chrono::DateTime<Utc>>,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
    /// Quarantined (no campaign or sequence sends) until then; absent when not quarantined.
    pub quarantined_until: Option<chrono::DateTime<Utc>>,
    /// Why it is quarantined.
    pub quarantine_reason: Option<String>,
    /// Live state from the device's actor (single-device reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<DeviceSnapshot>,
}

impl DeviceView {
    /// The stored view, without live state.
    pub fn from_row(d: &Device) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            status: DeviceStatus::parse(&d.status).unwrap_or(DeviceStatus::New),
            status_reason: d.status_reason.clone(),
            jid: d.jid.clone(),
            phone: d.phone.clone(),
            push_name: d.push_name.clone(),
            last_seen: d.last_seen.map(utc),
            created_at: utc(d.created_at),
            updated_at: utc(d.updated_at),
            quarantined_until: d
                .quarantined_until
                .filter(|_| d.quarantined_at(Utc::now().naive_utc()))
                .map(utc),
            quarantine_reason: d
                .quarantine_reason
                .clone()
                .filter(|_| d.quarantined_at(Utc::now().naive_utc())),
            live: None,
        }
    }
}

/// Which devices to list: the query of `GET /devices`, the arguments of the `list_devices` tool.
#[derive(Debug, Default, Deserialize, IntoParams, schemars::JsonSchema)]
pub struct DeviceQuery {
    /// Only this status.
    pub status: Option<DeviceStatus>,
    /// Substring of the name or phone number.
    pub q: Option<String>,
    /// Page number from 1.
    pub page: Option<i64>,
    /// Devices per page (1–500, default 50).
    pub per_page: Option<i64>,
    /// Only the devices assigned to this user of the tenant (404 for anyone else).
    pub member_id: Option<i64>,
}

/// A page of devices with totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    /// The devices.
    pub items: Vec<DeviceView>,
    /// Devices matching the filter.
    pub total: i64,
    /// This page.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Devices per status (of everything the caller may see, ignoring the filter).
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// The tenant's devices (a member's: those assigned), filtered and paginated.
pub async fn list(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    query: &DeviceQuery,
) -> Result<DevicePage, ApiError> {
    let per_page = query.per_page.unwrap_or(50).clamp(1, MAX_PER_PAGE);
    let page = query.page.unwrap_or(1).max(1);
    let offset = page_offset(page, per_page)?;
    let only_ids = match query.member_id {
        Some(user_id) => {
            let user = crate::auth::store::get_tenant_user(&state.db, caller.tenant_id, user_id)
                .await
                .map_err(|_| ApiError::not_found("user"))?;
            let theirs = crate::auth::store::assigned_device_ids(&state.db, user.id).await?;
            Some(
                theirs
                    .into_iter()
                    .filter(|id| caller.can_see_device(*id))
                    .collect(),
            )
        }
        None => caller.assigned_devices.clone(),
    };
    let filter = DeviceFilter {
        status: query.status,
        search: query.q.clone(),
        only_ids,
        healthy_only: false,
    };
    let (rows, total) =
        store::list_devices(&state.db, caller.tenant_id, &filter, per_page, offset).await?;
    let counts = store::count_by_status(
        &state.db,
        caller.tenant_id,
        caller.assigned_devices.as_deref(),
    )
    .await?
    .into_iter()
    .collect();
    Ok(DevicePage {
        items: rows.iter().map(DeviceView::from_row).collect(),
        total,
        page,
        per_page,
        counts,
    })
}
