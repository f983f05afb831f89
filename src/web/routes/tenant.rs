//! The tenant itself: its name and time zone (everyone reads them, owners change them), and the
//! daemon's data retention, which ops set in `[retention]` and the settings page only shows.
//!
//! A new time zone takes effect without a restart: routes and engines read it from the
//! database when they need it, and the chat mirror, which caches it for its time labels, is told
//! ([`TenantZoneChanged`]).

use actix_web::{get, patch, web};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::model::TenantPatch;
use crate::auth::store;
use crate::chat::messages::TenantZoneChanged;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::required_text;
use crate::web::views::TenantView;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_tenant)
        .service(update_tenant)
        .service(get_retention);
}

/// Body of `PATCH /tenant`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// Business name (1 to 200 characters).
    pub name: Option<String>,
    /// IANA time zone, e.g. `Asia/Kuala_Lumpur`: schedules, quiet hours, send windows and the
    /// times the dashboard shows.
    pub time_zone: Option<String>,
}

/// The example body of `PATCH /tenant` in the OpenAPI document.
fn tenant_example() -> serde_json::Value {
    serde_json::json!({ "name": "Kedai Aisyah", "time_zone": "Asia/Jakarta" })
}

/// `raw` as a time zone, or 422 `invalid_time_zone` naming the field.
fn parse_zone(raw: &str) -> Result<Tz, ApiError> {
    raw.trim().parse::<Tz>().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidTimeZone,
            format!(
                "time_zone: {:?} is not an IANA time zone (such as Asia/Kuala_Lumpur)",
                raw.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// The caller's tenant: id, name, time zone.
#[utoipa::path(tag = "settings", responses((status = 200, body = TenantView)))]
#[get("/tenant")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<TenantView>, ApiError> {
    let tenant = store::get_tenant(&state.db, caller.tenant_id).await?;
    Ok(web::Json(TenantView::from(&tenant)))
}

/// Renames the tenant or changes its time zone (owners). The zone applies at once to the times
/// the dashboard and the chat events show, to schedules, sequence send windows and quiet hours;
/// a campaign already running keeps the zone (like the pacing) its run was set up with.
#[utoipa::path(tag = "settings", request_body(content = UpdateTenantRequest, examples(
    ("rename" = (summary = "A new name and zone", value = json!(tenant_example())))
)), responses(
    (status = 200, body = TenantView),
    (status = 400, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[patch("/tenant")]
pub async fn update_tenant(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<UpdateTenantRequest>,
) -> Result<web::Json<TenantView>, ApiError> {
    let name = match &body.name {
        Some(name) => Some(required_text("name", name)?.to_string()),
        None => None,
    };
    let zone = body.time_zone.as_deref().map(parse_zone).transpose()?;
    let patch = TenantPatch {
        name,
        time_zone: zone.map(|z| z.name().to_string()),
        ..Default::default()
    };
    let before = store::get_tenant(&state.db, caller.tenant_id).await?;
    let tenant = if patch.name.is_none() && patch.time_zone.is_none() {
        before.clone()
    } else {
        store::update_tenant(&state.db, caller.tenant_id, patch).await?
    };
    if let Some(zone) = zone {
        state.chat_zones.do_send(TenantZoneChanged {
            tenant_id: tenant.id,
            zone,
        });
    }
    let detail = serde_json::json!({
        "name": { "from": before.name, "to": tenant.name },
        "time_zone": { "from": before.time_zone, "to": tenant.time_zone },
    });
    audit
        .record("tenant.update", Target::Tenant(tenant.id))
        .detail(detail)
        .await;
    Ok(web::Json(TenantView::from(&tenant)))
}

/// How long the daemon keeps rows (days; 0 = kept for ever). Set by ops in `[retention]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionView {
    /// Chat messages and reactions.
    pub messages_days: u32,
    /// Outbox rows of finished campaigns and sent sequence messages (reports keep the counts).
    pub outbox_days: u32,
    /// Audit log entries.
    pub audit_days: u32,
    /// Outbound webhook deliveries.
    pub webhooks_days: u32,
    /// The home page's hourly figures and the devices' history.
    pub stats_days: u32,
    /// Hours between two sweeps.
    pub interval_hours: u32,
    /// Always `config`: the daemon's configuration decides, for every tenant (read-only here).
    pub source: &'static str,
}

/// The daemon's data retention, read-only: it is the same for every tenant and set by ops in
/// the `[retention]` configuration section (docs/operations.md).
#[utoipa::path(tag = "settings", responses((status = 200, body = RetentionView)))]
#[get("/settings/retention")]
pub async fn get_retention(
    state: web::Data<AppState>,
    _caller: Auth<require::Viewer>,
) -> Result<web::Json<RetentionView>, ApiError> {
    let r = &state.settings.retention;
    Ok(web::Json(RetentionView {
        messages_days: r.messages_days,
        outbox_days: r.outbox_days,
        audit_days: r.audit_days,
        webhooks_days: r.webhooks_days,
        stats_days: r.stats_days,
        interval_hours: r.interval_hours,
        source: "config",
    }))
}
