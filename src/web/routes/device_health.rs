//! A device's health for its page: score and what it is made of, quarantine, its day against
//! its cap, its history (status changes, quarantines, rate limits) and its latest failed sends;
//! draining a device (owners and operators: a quarantine asked for) and lifting a quarantine.

use actix_web::{delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::health::{self, DayCapacity, Health, HealthDeps};
use crate::device::store;
use crate::web::access::visible_device;
use crate::web::actions::devices::DeviceView;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// History entries and failures shown.
const SHOWN: i64 = 20;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_health)
        .service(drain)
        .service(lift_quarantine);
}

/// One entry of a device's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// `status`, `quarantined`, `quarantine_lifted` or `rate_limited`.
    pub kind: String,
    /// The new status (and why), or the quarantine's reason.
    pub detail: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A failed send of the device.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedSend {
    /// The recipient.
    pub phone: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When the message was queued.
    pub queued_at: DateTime<Utc>,
}

/// A device's health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceHealthView {
    /// The device.
    pub device: DeviceView,
    /// Score, threshold and signals.
    pub health: Health,
    /// Its day against its cap.
    pub today: DayCapacity,
    /// Latest history entries, newest first.
    pub history: Vec<HistoryEntry>,
    /// Latest failed sends, newest first.
    pub recent_failures: Vec<FailedSend>,
}

/// What scores and quarantines devices, from the daemon's settings.
fn health_deps(state: &AppState) -> HealthDeps {
    HealthDeps {
        db: state.db.clone(),
        hub: state.hub.clone(),
        settings: state.settings.broadcast.health.clone(),
        time_scale: state.settings.sim.time_scale,
    }
}

/// The device's health: score (formula in docs/broadcast.md), quarantine, today's sends
/// against its cap and warm-up day, history and latest failures.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, body = DeviceHealthView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}/health")]
pub async fn get_health(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<DeviceHealthView>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let health = health_deps(&state).health_of(&device).await?;
    let today = health::day_capacity(
        &state.db,
        &state.settings.broadcast,
        state.settings.sim.time_scale,
        &device,
    )
    .await?;
    let history = store::history(&state.db, device.id, SHOWN)
        .await?
        .into_iter()
        .map(|e| HistoryEntry {
            kind: e.kind,
            detail: e.detail,
            at: utc(e.at),
        })
        .collect();
    let recent_failures =
        crate::broadcast::outbox::store::recent_failures(&state.db, device.id, SHOWN)
            .await?
            .into_iter()
            .map(|(phone, error, at)| FailedSend {
                phone,
                error,
                queued_at: utc(at),
            })
            .collect();
    Ok(web::Json(DeviceHealthView {
        device: DeviceView::from_row(&device),
        health,
        today,
        history,
        recent_failures,
    }))
}

/// Longest drain a user may ask for: 30 days.
const MAX_DRAIN_HOURS: u64 = 720;

/// How long to drain a device.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Hours (1–720); absent: the configured quarantine time (`broadcast.health.quarantine_secs`).
    pub hours: Option<u64>,
}

/// Drains the device: quarantined for the hours asked, so campaigns and sequences leave it out
/// and its pending campaign messages move to healthy devices (sequence steps keep their lead's
/// device and wait, as on a device loss). Announced as `DEVICE_QUARANTINED` and audited.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), request_body = DrainRequest, responses(
    (status = 200, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/devices/{id}/drain")]
pub async fn drain(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
    body: web::Json<DrainRequest>,
) -> Result<web::Json<DeviceView>, ApiError> {
    let secs = match body.hours {
        None => state.settings.broadcast.health.quarantine_secs,
        Some(hours @ 1..=MAX_DRAIN_HOURS) => hours * 3600,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidDrain,
                format!("hours: must be between 1 and {MAX_DRAIN_HOURS}"),
            ))
        }
    };
    let device = visible_device(&state, &caller, *id).await?;
    if health_deps(&state)
        .drain(&device, secs, caller.user.id)
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            ErrorCode::WrongState,
            "the device is already quarantined",
        ));
    }
    let device = store::get_device(&state.db, caller.tenant_id, device.id).await?;
    Ok(web::Json(DeviceView::from_row(&device)))
}

/// Lifts a device's quarantine now: campaigns and sequences may use it again at once.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[delete("/devices/{id}/quarantine")]
pub async fn lift_quarantine(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<web::Json<DeviceView>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    if !health::lift(&state.db, &state.hub, &device).await? {
        return Err(ApiError::new(
            ErrorCode::WrongState,
            "the device is not quarantined",
        ));
    }
    audit
        .record("device.quarantine_lifted", Target::Device(device.id))
        .await;
    let device = store::get_device(&state.db, caller.tenant_id, device.id).await?;
    Ok(web::Json(DeviceView::from_row(&device)))
}
