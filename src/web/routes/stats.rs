//! The home page's figures: what the fleet did today, in 7 or 30 days (in the tenant's zone),
//! with its charts as SVG images. Members see their assigned devices' figures only.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Caller;
use crate::device::store as devices;
use crate::stats::chart;
use crate::stats::overview::{self, Overview, Range};
use crate::stats::store::{self, Scope};
use crate::web::access::visible_device;
use crate::web::actions::chats::zone_of;
use crate::web::auth::{require, Auth};
use crate::web::{ApiError, AppState};

/// Devices shown by name in the per-device chart; the rest are summed in one bar.
const CHART_DEVICES: usize = 12;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_overview).service(get_chart);
}

/// Query of the home page's routes.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RangeQuery {
    /// `today` (per hour, the default), `7d` or `30d` (per day), in the tenant's zone.
    #[serde(default)]
    #[param(value_type = Option<String>, example = "7d")]
    pub range: Range,
    /// One device's figures only (the device page).
    pub device_id: Option<i64>,
    /// Also draw the three charts (`charts`), from the same figures: one request instead of
    /// four for a page that shows them all.
    #[serde(default)]
    pub charts: bool,
}

/// The three charts of the home page, as SVG documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct Charts {
    /// Sent, failed and replies per hour or day.
    pub sends: String,
    /// Delivery, read and reply rates.
    pub rates: String,
    /// Sent per device.
    pub devices: String,
}

/// The home page's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct HomeView {
    /// Sends, receipts, replies and failures of the range.
    #[serde(flatten)]
    pub overview: Overview,
    /// Numbers put on the opt-out list in the range.
    pub opt_outs: i64,
    /// The caller's devices per status now.
    pub devices_by_status: BTreeMap<String, i64>,
    /// The charts, when asked for (`charts=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charts: Option<Charts>,
    /// The tenant's campaigns per status now.
    pub campaigns_by_status: BTreeMap<String, i64>,
    /// Sequence enrolments waiting for or going through their steps.
    pub open_enrollments: i64,
}

/// Whose figures a caller reads: one device of theirs, a member's devices, or the tenant's.
async fn scope_of(
    state: &AppState,
    caller: &Caller,
    device: Option<i64>,
) -> Result<Scope, ApiError> {
    if let Some(id) = device {
        return Ok(Scope::Devices(vec![
            visible_device(state, caller, id).await?.id,
        ]));
    }
    Ok(match &caller.assigned_devices {
        Some(ids) => Scope::Devices(ids.clone()),
        None => Scope::Tenant,
    })
}

/// The range's figures for the caller (of one device when `device` is given).
async fn figures(
    state: &AppState,
    caller: &Caller,
    range: Range,
    device: Option<i64>,
) -> Result<Overview, ApiError> {
    let zone = zone_of(state, caller).await?;
    let scope = scope_of(state, caller, device).await?;
    Ok(overview::overview(&state.db, caller.tenant_id, &scope, zone, range, Utc::now()).await?)
}

/// Today, the last 7 or 30 days at a glance: totals, rates, a bucket per hour or day, devices'
/// shares, opt-outs, devices and campaigns by status.
#[utoipa::path(tag = "stats", params(RangeQuery), responses(
    (status = 200, body = HomeView),
    (status = 400, body = crate::web::ErrorBody)
))]
#[get("/stats/overview")]
pub async fn get_overview(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<RangeQuery>,
) -> Result<web::Json<HomeView>, ApiError> {
    let overview = figures(&state, &caller, query.range, query.device_id).await?;
    let charts = query.charts.then(|| Charts {
        sends: draw(ChartName::Sends, &overview),
        rates: draw(ChartName::Rates, &overview),
        devices: draw(ChartName::Devices, &overview),
    });
    let db = &state.db;
    let opt_outs = store::opt_outs_since(db, caller.tenant_id, overview.since.naive_utc()).await?;
    let devices_by_status =
        devices::count_by_status(db, caller.tenant_id, caller.assigned_devices.as_deref())
            .await?
            .into_iter()
            .collect();
    let campaigns_by_status = store::campaign_counts(db, caller.tenant_id)
        .await?
        .into_iter()
        .collect();
    let open_enrollments = store::open_enrollments(db, caller.tenant_id).await?;
    Ok(web::Json(HomeView {
        overview,
        opt_outs,
        devices_by_status,
        campaigns_by_status,
        open_enrollments,
        charts,
    }))
}

/// A chart of the home page.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartName {
    /// Messages sent (failures stacked) and replies per bucket.
    Sends,
    /// Delivery, read and reply rates per bucket.
    Rates,
    /// Messages sent per device.
    Devices,
}

/// Draws one chart of `overview`.
fn draw(name: ChartName, overview: &Overview) -> String {
    match name {
        ChartName::Sends => chart::sends(&overview.series),
        ChartName::Rates => chart::rates(&overview.series),
        ChartName::Devices => chart::devices(&overview.devices, CHART_DEVICES),
    }
}

/// Query of the chart route.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ChartQuery {
    /// `sends`, `rates` or `devices`.
    #[param(value_type = String, example = "sends")]
    pub chart: ChartName,
    /// `today` (the default), `7d` or `30d`.
    #[serde(default)]
    #[param(value_type = Option<String>, example = "7d")]
    pub range: Range,
    /// One device's figures only (the device page).
    pub device_id: Option<i64>,
}

/// One of the home page's charts as an SVG image: `sends` (sent, failed and replies per hour or
/// day), `rates` (delivery, read and reply rates) or `devices` (sent per device).
#[utoipa::path(tag = "stats", params(ChartQuery), responses(
    (status = 200, content_type = "image/svg+xml", body = String),
    (status = 400, body = crate::web::ErrorBody)
))]
#[get("/stats/chart.svg")]
pub async fn get_chart(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let overview = figures(&state, &caller, query.range, query.device_id).await?;
    let svg = draw(query.chart, &overview);
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("cache-control", "no-store"))
        .body(svg))
}
