//! The tenant-wide opt-out list: numbers no campaign or sequence may message. Viewers read,
//! members add, owners remove (taking someone off the list is a compliance decision).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::events;
use crate::broadcast::leads::model::OptOut;
use crate::broadcast::leads::opt_out::{self, Source};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::tenant_phone;
use crate::web::views::{keyset_page, utc};
use crate::web::{ApiError, AppState, ErrorCode};

/// Largest page.
const MAX_LIMIT: i64 = 500;
/// Longest reason, in characters.
const MAX_REASON_CHARS: usize = 500;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_opt_outs)
        .service(add_opt_out)
        .service(remove_opt_out);
}

/// An opt-out as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutView {
    /// Id.
    pub id: i64,
    /// E.164 digits without the plus.
    pub phone: String,
    /// `keyword`, `manual` or `import`.
    pub source: String,
    /// The keyword received, or what the user wrote.
    pub reason: Option<String>,
    /// When it was added.
    pub created_at: chrono::DateTime<Utc>,
}

impl From<&OptOut> for OptOutView {
    fn from(o: &OptOut) -> Self {
        Self {
            id: o.id,
            phone: o.phone.clone(),
            source: o.source.clone(),
            reason: o.reason.clone(),
            created_at: utc(o.created_at),
        }
    }
}

/// Query of `GET /opt-outs`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct OptOutQuery {
    /// Digits the phone contains.
    pub q: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Entries per page (1–500, default 50).
    pub limit: Option<i64>,
}

/// A page of opt-outs, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutPage {
    /// The entries.
    pub items: Vec<OptOutView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// Body of `POST /opt-outs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    /// Phone number in any common form (tenant's default country when it has no code).
    pub phone: String,
    /// Why (free text).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The opt-out list, oldest first, optionally searched by digits.
#[utoipa::path(tag = "opt-outs", params(OptOutQuery), responses((status = 200, body = OptOutPage)))]
#[get("/opt-outs")]
pub async fn list_opt_outs(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<OptOutQuery>,
) -> Result<web::Json<OptOutPage>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let rows = opt_out::list_opt_outs(
        &state.db,
        caller.tenant_id,
        query.q.as_deref(),
        query.cursor,
        limit + 1,
    )
    .await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |o| o.id);
    Ok(web::Json(OptOutPage {
        items: rows.iter().map(OptOutView::from).collect(),
        next_cursor,
    }))
}

/// Puts a number on the opt-out list (201; 200 with the existing entry when it is already on).
#[utoipa::path(tag = "opt-outs", request_body = OptOutRequest, responses(
    (status = 201, body = OptOutView),
    (status = 200, body = OptOutView),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/opt-outs")]
pub async fn add_opt_out(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    body: web::Json<OptOutRequest>,
) -> Result<HttpResponse, ApiError> {
    let phone = tenant_phone(&state, caller.tenant_id, &body.phone).await?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::new(
            ErrorCode::InvalidReason,
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let (entry, added) =
        opt_out::add_opt_out(&state.db, caller.tenant_id, &phone, Source::Manual, reason).await?;
    if !added {
        return Ok(HttpResponse::Ok().json(OptOutView::from(&entry)));
    }
    events::opted_out(&state.hub, caller.tenant_id, &phone, "manual", reason);
    audit.record("opt_out.add", Target::Phone(phone)).await;
    Ok(HttpResponse::Created().json(OptOutView::from(&entry)))
}

/// Takes a number off the opt-out list.
#[utoipa::path(tag = "opt-outs", params(("phone" = String, Path, description = "phone number")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/opt-outs/{phone}")]
pub async fn remove_opt_out(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    raw: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Anything that is not a valid number cannot be on the list.
    let phone = tenant_phone(&state, caller.tenant_id, &raw)
        .await
        .map_err(|_| ApiError::not_found("opt-out"))?;
    opt_out::remove_opt_out(&state.db, caller.tenant_id, &phone).await?;
    audit.record("opt_out.remove", Target::Phone(phone)).await;
    Ok(HttpResponse::NoContent().finish())
}
