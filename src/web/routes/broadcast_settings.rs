//! The tenant's broadcast settings: default phone country, opt-out keywords and pacing, stored
//! as overrides of the configured defaults. Members read them; owners change them.

use actix_web::{get, put, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::leads::opt_out::MAX_KEYWORD_CHARS;
use crate::broadcast::pacing::Pacing;
use crate::broadcast::settings::{self, Effective, TenantBroadcast};
use crate::config::Settings;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_broadcast_settings)
        .service(put_broadcast_settings);
}

/// The values in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveView {
    /// ISO 3166 alpha-2 country for numbers without a country code.
    pub default_country: String,
    /// Inbound words that opt the sender out (upper-case; compared ignoring case).
    pub opt_out_keywords: Vec<String>,
    /// Pacing campaigns start from.
    pub pacing: Pacing,
    /// The tenant's time zone.
    pub time_zone: String,
}

/// Answer of the settings routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastSettingsView {
    /// What is in force (the overrides over the configured defaults).
    pub effective: EffectiveView,
    /// What the tenant changed (absent fields follow the configuration).
    pub stored: TenantBroadcast,
}

/// The view of `stored` in force as `effective`.
fn view(config: &Settings, stored: TenantBroadcast, effective: Effective) -> BroadcastSettingsView {
    let country = stored
        .default_country
        .as_deref()
        .unwrap_or(&config.broadcast.default_country)
        .trim()
        .to_uppercase();
    BroadcastSettingsView {
        effective: EffectiveView {
            default_country: country,
            opt_out_keywords: effective.opt_out_keywords,
            pacing: effective.pacing,
            time_zone: effective.time_zone.name().to_string(),
        },
        stored,
    }
}

/// The tenant's broadcast settings: values in force and the stored overrides.
#[utoipa::path(tag = "settings", responses((status = 200, body = BroadcastSettingsView)))]
#[get("/settings/broadcast")]
pub async fn get_broadcast_settings(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
) -> Result<web::Json<BroadcastSettingsView>, ApiError> {
    let (stored, _) = settings::load(&state.db, caller.tenant_id).await?;
    let effective =
        settings::effective(&state.db, &state.settings.broadcast, caller.tenant_id).await?;
    // Stored values that no longer pass the limits are shown, but the defaults are in force.
    let stored_in_force = stored
        .effective(&state.settings.broadcast, effective.time_zone.name())
        .is_ok();
    let shown = if stored_in_force {
        stored.clone()
    } else {
        TenantBroadcast::default()
    };
    let mut answer = view(&state.settings, shown, effective);
    answer.stored = stored;
    Ok(web::Json(answer))
}

/// Replaces the tenant's overrides (absent fields follow the configuration). Every value is
/// checked against the configured safe bounds: 422 with the reason otherwise.
#[utoipa::path(tag = "settings", request_body = TenantBroadcast, responses(
    (status = 200, body = BroadcastSettingsView),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/settings/broadcast")]
pub async fn put_broadcast_settings(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<TenantBroadcast>,
) -> Result<web::Json<BroadcastSettingsView>, ApiError> {
    let stored = body.into_inner();
    let (_, zone) = settings::load(&state.db, caller.tenant_id).await?;
    let effective = stored
        .effective(&state.settings.broadcast, &zone)
        .map_err(|reason| ApiError::new(ErrorCode::InvalidSettings, reason))?;
    if let Some(long) = effective
        .opt_out_keywords
        .iter()
        .find(|k| k.chars().count() > MAX_KEYWORD_CHARS)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidSettings,
            format!("opt_out_keywords: {long:?} is longer than {MAX_KEYWORD_CHARS} characters"),
        ));
    }
    settings::save(&state.db, caller.tenant_id, &stored).await?;
    let detail = serde_json::to_value(&stored).ok();
    let target = Target::Tenant(caller.tenant_id);
    audit
        .record("settings.broadcast.update", target)
        .detail(detail)
        .await;
    Ok(web::Json(view(&state.settings, stored, effective)))
}
