//! Devices of the caller's tenant: list, create, read, rename, delete, QR code, pairing code,
//! logout, reconnect. Members see and act only on devices assigned to them (others are 404).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use qrcode::render::svg;
use qrcode::QrCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::device::admission::Priority;
use crate::device::messages::{
    DeviceError, DeviceSnapshot, GetDeviceState, Logout, RequestPairCode, RestartDevices,
    StopDevice,
};
use crate::device::model::DeviceStatusPatch;
use crate::device::{store, DeviceStatus};
use crate::web::access::{sees_pairing, visible_device};
use crate::web::actions::devices::{self, DevicePage, DeviceQuery, DeviceView};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::required_text;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_devices)
        .service(create_device)
        .service(get_device)
        .service(rename_device)
        .service(delete_device)
        .service(qr_svg)
        .service(pair_code)
        .service(logout)
        .service(reconnect);
}

/// Body of `POST /devices` and `PATCH /devices/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceNameRequest {
    /// Label, 1–200 characters.
    pub name: String,
}

/// Body of `POST /devices/{id}/pair-code`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PairCodeRequest {
    /// Phone number of the WhatsApp account to link, international form (e.g. 60123456789).
    pub phone: String,
}

/// Answer of `POST /devices/{id}/pair-code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairCodeView {
    /// Enter on the phone: WhatsApp → Linked devices → Link with phone number.
    pub code: String,
}

/// The device's live state, if its actor runs.
async fn live_state(state: &AppState, device_id: i64) -> Option<DeviceSnapshot> {
    let addr = state.fleet.actor(device_id).await?;
    addr.send(GetDeviceState).await.ok()
}

/// The tenant's devices (a member's: those assigned), filtered and paginated.
#[utoipa::path(tag = "devices", params(DeviceQuery), responses((status = 200, body = DevicePage)))]
#[get("/devices")]
pub async fn list_devices(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<DeviceQuery>,
) -> Result<web::Json<DevicePage>, ApiError> {
    Ok(web::Json(devices::list(&state, &caller, &query).await?))
}

/// Adds a device and starts pairing it: fetch `qr.svg` (or ask for a pairing code) next.
#[utoipa::path(tag = "devices", request_body = DeviceNameRequest, responses(
    (status = 201, body = DeviceView),
    (status = 400, body = crate::web::ErrorBody)
))]
#[post("/devices")]
pub async fn create_device(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<DeviceNameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = required_text("name", &body.name)?;
    let device = store::insert_device(&state.db, caller.tenant_id, name).await?;
    state
        .cluster
        .run_device(&state.fleet.supervisor, device.clone(), Priority::High)
        .await?;
    audit
        .record("device.create", Target::Device(device.id))
        .await;
    Ok(HttpResponse::Created().json(DeviceView::from_row(&device)))
}

/// One device, with its live state when its actor runs (without the pairing QR payload and code
/// for viewers).
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}")]
pub async fn get_device(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<DeviceView>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let mut view = DeviceView::from_row(&device);
    view.live = live_state(&state, device.id).await.map(|mut live| {
        if !sees_pairing(caller.role) {
            live.qr = None;
            live.pair_code = None;
        }
        live
    });
    Ok(web::Json(view))
}

/// Renames a device.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), request_body = DeviceNameRequest, responses(
    (status = 200, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[patch("/devices/{id}")]
pub async fn rename_device(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
    body: web::Json<DeviceNameRequest>,
) -> Result<web::Json<DeviceView>, ApiError> {
    let name = required_text("name", &body.name)?;
    let device = store::rename_device(&state.db, caller.tenant_id, *id, name).await?;
    Ok(web::Json(DeviceView::from_row(&device)))
}

/// Deletes a device: stops its actor and removes its session and chats (and its assignments;
/// members' open WebSockets re-check their access).
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/devices/{id}")]
pub async fn delete_device(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    state
        .fleet
        .supervisor
        .send(StopDevice {
            device_id: device.id,
            forget: true,
        })
        .await
        .map_err(ApiError::internal)?;
    store::delete_device(&state.db, caller.tenant_id, device.id).await?;
    // Members assigned to it lost it: their open WebSockets re-check their access now.
    for user in crate::auth::store::list_tenant_users(&state.db, caller.tenant_id).await? {
        if user.role() == crate::auth::Role::Member {
            state.auth.changes.user_changed(user.id);
        }
    }
    let detail = serde_json::json!({ "name": device.name, "phone": device.phone });
    audit
        .record("device.delete", Target::Device(device.id))
        .detail(detail)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// The pairing QR code as an SVG image, while the device awaits a scan (it changes about every
/// 20 s; fetch again or listen for QR_UPDATED). 409 when there is nothing to scan.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, content_type = "image/svg+xml", body = String),
    (status = 409, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}/qr.svg")]
pub async fn qr_svg(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let code = live_state(&state, device.id)
        .await
        .and_then(|live| live.qr)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoQr,
                "the device is not waiting for a QR scan; reconnect it to pair again",
            )
        })?;
    let qr = QrCode::new(code.as_bytes()).map_err(ApiError::internal)?;
    let image = qr
        .render::<svg::Color<'_>>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build();
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("cache-control", "no-store"))
        .body(image))
}

/// Switches pairing to a code for a phone number (link with phone number instead of QR).
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), request_body = PairCodeRequest, responses(
    (status = 200, body = PairCodeView),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/devices/{id}/pair-code")]
pub async fn pair_code(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
    body: web::Json<PairCodeRequest>,
) -> Result<web::Json<PairCodeView>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let phone: String = body.phone.chars().filter(char::is_ascii_digit).collect();
    if !(8..=15).contains(&phone.len()) {
        return Err(ApiError::new(
            ErrorCode::InvalidPhone,
            "phone must be 8 to 15 digits in international form, e.g. 60123456789",
        ));
    }
    let addr = state
        .fleet
        .actor(device.id)
        .await
        .ok_or(DeviceError::NotRunning)?;
    let code = addr
        .send(RequestPairCode { phone })
        .await
        .map_err(|_| DeviceError::Gone)??;
    Ok(web::Json(PairCodeView { code }))
}

/// Unlinks the device from its phone and forgets its credentials; reconnect to pair again.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[post("/devices/{id}/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<web::Json<DeviceView>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let actor = state.fleet.actor(device.id).await;
    match actor {
        Some(addr) => addr.send(Logout).await.map_err(|_| DeviceError::Gone)??,
        None => {
            let patch = DeviceStatusPatch {
                status: Some(DeviceStatus::LoggedOut.as_str().into()),
                status_reason: Some(Some("logged out by user".into())),
                jid: Some(None),
                ..Default::default()
            };
            store::update_status(&state.db, device.id, patch).await?;
        }
    }
    audit
        .record("device.logout", Target::Device(device.id))
        .await;
    let device = store::get_device(&state.db, caller.tenant_id, device.id).await?;
    Ok(web::Json(DeviceView::from_row(&device)))
}

/// Connects the device again now (resets its restart budget); a logged-out device starts
/// pairing anew.
#[utoipa::path(tag = "devices", params(("id" = i64, Path, description = "device id")), responses(
    (status = 202, body = DeviceView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[post("/devices/{id}/reconnect")]
pub async fn reconnect(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let report = state
        .fleet
        .supervisor
        .send(RestartDevices {
            ids: Some(vec![device.id]),
        })
        .await
        .map_err(ApiError::internal)?;
    if !report.unknown.is_empty() {
        // Not registered (never started, or deleted from the registry): start it.
        state
            .cluster
            .run_device(&state.fleet.supervisor, device.clone(), Priority::High)
            .await?;
    }
    Ok(HttpResponse::Accepted().json(DeviceView::from_row(&device)))
}
