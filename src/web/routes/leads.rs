//! Lead lists and leads of the caller's tenant: list CRUD with lead counts, lead CRUD and
//! search with keyset pagination, and the streamed CSV import (`IMPORT_PROGRESS` events on
//! `lead-lists/<id>`). Viewers read; members and up change.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::leads::import::{self, ImportReport};
use crate::broadcast::leads::model::{
    decode_tags, encode_tags, fields_json, normalize_status, normalize_tags, parse_fields, Lead,
    LeadInput, LeadList, LeadPatch,
};
use crate::broadcast::leads::store::{self, LeadFilter};
use crate::broadcast::settings;
use crate::db::DbError;
use crate::hub::{HubEvent, Topic};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::{required_text, tenant_phone};
use crate::web::views::{keyset_page, utc};
use crate::web::{ApiError, AppState, ErrorCode};

/// Largest page of the lead search.
const MAX_LIMIT: i64 = 500;
/// Longest name of a lead.
const MAX_NAME_CHARS: usize = 200;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_lists)
        .service(create_list)
        .service(get_list)
        .service(rename_list)
        .service(delete_list)
        .service(import_leads)
        .service(search_leads)
        .service(create_lead)
        .service(get_lead)
        .service(update_lead)
        .service(delete_lead);
}

/// A lead list as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadListView {
    /// Id.
    pub id: i64,
    /// Name, unique within the tenant.
    pub name: String,
    /// Leads in the list.
    pub lead_count: i64,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change of the list or its leads.
    pub updated_at: chrono::DateTime<Utc>,
}

impl LeadListView {
    fn new(list: &LeadList, lead_count: i64) -> Self {
        Self {
            id: list.id,
            name: list.name.clone(),
            lead_count,
            created_at: utc(list.created_at),
            updated_at: utc(list.updated_at),
        }
    }
}

/// A lead as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadView {
    /// Id.
    pub id: i64,
    /// Its list.
    pub list_id: i64,
    /// Name (may be empty).
    pub name: String,
    /// E.164 digits without the plus.
    pub phone: String,
    /// Niche.
    pub niche: Option<String>,
    /// Lower-case tags.
    pub tags: Vec<String>,
    /// Lower-case status word.
    pub status: String,
    /// Custom fields (CSV columns beyond the known ones).
    pub fields: BTreeMap<String, String>,
    /// The lead's own device, once chosen.
    pub device_id: Option<i64>,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<&Lead> for LeadView {
    fn from(lead: &Lead) -> Self {
        Self {
            id: lead.id,
            list_id: lead.list_id,
            name: lead.name.clone(),
            phone: lead.phone.clone(),
            niche: lead.niche.clone(),
            tags: decode_tags(&lead.tags),
            status: lead.status.clone(),
            fields: parse_fields(&lead.fields),
            device_id: lead.device_id,
            created_at: utc(lead.created_at),
            updated_at: utc(lead.updated_at),
        }
    }
}

/// Body of `POST /lead-lists` and `PATCH /lead-lists/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeadListRequest {
    /// Name, 1–200 characters, unique within the tenant.
    pub name: String,
}

/// Query of `GET /leads`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LeadQuery {
    /// Only this list.
    pub list_id: Option<i64>,
    /// Substring of the name or phone.
    pub q: Option<String>,
    /// Only leads with this tag.
    pub tag: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this niche (case-insensitive).
    pub niche: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Leads per page (1–500, default 50).
    pub limit: Option<i64>,
}

/// A page of leads, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    /// The leads.
    pub items: Vec<LeadView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// Body of `POST /leads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLeadRequest {
    /// The list to add to.
    pub list_id: i64,
    /// Phone number in any common form; without a country code it is read with the tenant's
    /// default country.
    pub phone: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Niche.
    #[serde(default)]
    pub niche: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Status word (default `prospect`).
    #[serde(default)]
    pub status: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// Body of `PATCH /leads/{id}`: absent fields stay; an empty niche clears it; tags and fields
/// replace the stored ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLeadRequest {
    /// New phone number.
    pub phone: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New niche (empty clears it).
    pub niche: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New status word.
    pub status: Option<String>,
    /// New custom fields.
    pub fields: Option<BTreeMap<String, String>>,
}

/// The message of 409 `duplicate_name`.
const DUPLICATE_NAME: &str = "a lead list with this name exists";
/// The message of 409 `duplicate_phone`.
const DUPLICATE_PHONE: &str = "this phone is already in the list";

/// 422 `invalid_lead` with the reason.
fn invalid_lead(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidLead, message)
}

/// A lead name: trimmed, at most [`MAX_NAME_CHARS`].
fn lead_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid_lead(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// Normalized tags, or 422.
fn lead_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    normalize_tags(tags.iter().map(String::as_str)).map_err(invalid_lead)
}

/// A normalized status, or 422.
fn lead_status(raw: &str) -> Result<String, ApiError> {
    normalize_status(raw).map_err(invalid_lead)
}

/// Custom fields without empty values.
fn lead_fields(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// The tenant's lead lists by name, with their lead counts.
#[utoipa::path(tag = "leads", responses((status = 200, body = Vec<LeadListView>)))]
#[get("/lead-lists")]
pub async fn list_lists(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<Vec<LeadListView>>, ApiError> {
    let lists = store::list_lists(&state.db, caller.tenant_id).await?;
    Ok(web::Json(
        lists
            .iter()
            .map(|(list, count)| LeadListView::new(list, *count))
            .collect(),
    ))
}

/// Creates an empty lead list; fill it with `POST /lead-lists/{id}/import` or `POST /leads`.
#[utoipa::path(tag = "leads", request_body = LeadListRequest, responses(
    (status = 201, body = LeadListView),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/lead-lists")]
pub async fn create_list(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    body: web::Json<LeadListRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = required_text("name", &body.name)?;
    let list = store::insert_list(&state.db, caller.tenant_id, name)
        .await
        .map_err(ApiError::on_conflict(
            ErrorCode::DuplicateName,
            DUPLICATE_NAME,
        ))?;
    Ok(HttpResponse::Created().json(LeadListView::new(&list, 0)))
}

/// One lead list with its lead count.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead list id")), responses(
    (status = 200, body = LeadListView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/lead-lists/{id}")]
pub async fn get_list(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<LeadListView>, ApiError> {
    let (list, count) = store::get_list(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(LeadListView::new(&list, count)))
}

/// Renames a lead list.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead list id")), request_body = LeadListRequest, responses(
    (status = 200, body = LeadListView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[patch("/lead-lists/{id}")]
pub async fn rename_list(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
    body: web::Json<LeadListRequest>,
) -> Result<web::Json<LeadListView>, ApiError> {
    let name = required_text("name", &body.name)?;
    store::rename_list(&state.db, caller.tenant_id, *id, name)
        .await
        .map_err(ApiError::on_conflict(
            ErrorCode::DuplicateName,
            DUPLICATE_NAME,
        ))?;
    let (list, count) = store::get_list(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(LeadListView::new(&list, count)))
}

/// Deletes a lead list and every lead in it.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead list id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/lead-lists/{id}")]
pub async fn delete_list(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (list, count) = store::get_list(&state.db, caller.tenant_id, *id).await?;
    store::delete_list(&state.db, caller.tenant_id, list.id).await?;
    let detail = serde_json::json!({ "name": list.name, "leads": count });
    audit
        .record("lead_list.delete", Target::LeadList(list.id))
        .detail(detail)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Imports a CSV file into the list, streamed (body `text/csv`, or multipart field `file`).
///
/// Columns by header name, any case: `name`, `phone` (required), `niche`, `tags` (split on `;`
/// or `|`), `status`; other columns become custom fields. Phones are normalized with the
/// tenant's default country. A phone already in the list updates that lead with the row's
/// non-empty values (`updated`); a phone repeated in the file counts once (`duplicates`); a bad
/// row is counted in `failed` and listed in `errors` with its line (the header is line 1) and
/// reason (the first 1,000). Progress: `IMPORT_PROGRESS` on `lead-lists/<id>` every 1,000 rows.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead list id")), request_body(
    content((String = "text/csv"), (String = "multipart/form-data"))
), responses(
    (status = 200, body = ImportReport),
    (status = 404, body = crate::web::ErrorBody),
    (status = 413, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/lead-lists/{id}/import")]
pub async fn import_leads(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    payload: web::Payload,
) -> Result<web::Json<ImportReport>, ApiError> {
    let (list, _) = store::get_list(&state.db, caller.tenant_id, *id).await?;
    let country = settings::effective(&state.db, &state.settings.broadcast, caller.tenant_id)
        .await?
        .country;
    let started = std::time::Instant::now();
    let hub = state.hub.clone();
    let tenant_id = caller.tenant_id;
    let progress = move |report: &ImportReport| {
        tracing::info!(
            tenant_id,
            list_id = report.list_id,
            rows = report.rows,
            imported = report.imported,
            updated = report.updated,
            failed = report.failed,
            "lead import progress"
        );
        hub.do_send(HubEvent {
            tenant_id,
            topic: Topic::LeadList(report.list_id),
            device_id: None,
            event: "IMPORT_PROGRESS".into(),
            data: serde_json::json!({
                "list_id": report.list_id,
                "rows": report.rows,
                "imported": report.imported,
                "updated": report.updated,
                "failed": report.failed,
            }),
            ts: Utc::now(),
        });
    };
    let db = &state.db;
    let outcome = if req
        .content_type()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        let mut form = actix_multipart::Multipart::new(req.headers(), payload);
        let bad = |message: String| ApiError::new(ErrorCode::InvalidMultipart, message);
        let file = loop {
            match form.next().await {
                Some(Ok(field)) if field.name() == Some("file") => break field,
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(bad(err.to_string())),
                None => return Err(bad("the form has no field named file".into())),
            }
        };
        import::import_csv(db, tenant_id, list.id, country, file, progress).await
    } else {
        import::import_csv(db, tenant_id, list.id, country, payload, progress).await
    };
    let report = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        tenant_id,
        list_id = list.id,
        rows = report.rows,
        imported = report.imported,
        updated = report.updated,
        duplicates = report.duplicates,
        failed = report.failed,
        seconds,
        "lead import finished"
    );
    let detail = serde_json::json!({
        "rows": report.rows,
        "imported": report.imported,
        "updated": report.updated,
        "duplicates": report.duplicates,
        "failed": report.failed,
    });
    audit
        .record("lead_list.import", Target::LeadList(list.id))
        .detail(detail)
        .await;
    Ok(web::Json(report))
}

/// Leads of the tenant, filtered, by id with keyset pagination (`cursor` = `next_cursor`).
#[utoipa::path(tag = "leads", params(LeadQuery), responses((status = 200, body = LeadPage)))]
#[get("/leads")]
pub async fn search_leads(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<LeadQuery>,
) -> Result<web::Json<LeadPage>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let filter = LeadFilter {
        list_id: query.list_id,
        search: blank(&query.q),
        tag: blank(&query.tag).map(|t| t.to_lowercase()),
        status: blank(&query.status).map(|s| s.to_lowercase()),
        niche: blank(&query.niche),
        after_id: query.cursor,
    };
    let rows = store::search_leads(&state.db, caller.tenant_id, &filter, limit + 1).await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |l| l.id);
    Ok(web::Json(LeadPage {
        items: rows.iter().map(LeadView::from).collect(),
        next_cursor,
    }))
}

/// Adds a lead to a list; its phone already in the list is 409 `duplicate_phone`.
#[utoipa::path(tag = "leads", request_body = CreateLeadRequest, responses(
    (status = 201, body = LeadView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/leads")]
pub async fn create_lead(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    body: web::Json<CreateLeadRequest>,
) -> Result<HttpResponse, ApiError> {
    let (list, _) = store::get_list(&state.db, caller.tenant_id, body.list_id)
        .await
        .map_err(|err| match err {
            DbError::NotFound => ApiError::not_found("lead list"),
            other => other.into(),
        })?;
    let input = LeadInput {
        name: lead_name(body.name.as_deref().unwrap_or_default())?,
        phone: tenant_phone(&state, caller.tenant_id, &body.phone).await?,
        niche: body
            .niche
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        tags: lead_tags(body.tags.as_deref().unwrap_or_default())?,
        status: body.status.as_deref().map(lead_status).transpose()?,
        fields: lead_fields(&body.fields.clone().unwrap_or_default()),
    };
    let row = input.into_new(caller.tenant_id, list.id, Utc::now().naive_utc());
    let lead = store::insert_lead(&state.db, &row)
        .await
        .map_err(ApiError::on_conflict(
            ErrorCode::DuplicatePhone,
            DUPLICATE_PHONE,
        ))?;
    Ok(HttpResponse::Created().json(LeadView::from(&lead)))
}

/// One lead.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead id")), responses(
    (status = 200, body = LeadView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/leads/{id}")]
pub async fn get_lead(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<LeadView>, ApiError> {
    let lead = store::get_lead(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(LeadView::from(&lead)))
}

/// Changes a lead; a phone already used by another lead of the list is 409 `duplicate_phone`.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead id")), request_body = UpdateLeadRequest, responses(
    (status = 200, body = LeadView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[patch("/leads/{id}")]
pub async fn update_lead(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
    body: web::Json<UpdateLeadRequest>,
) -> Result<web::Json<LeadView>, ApiError> {
    let lead = store::get_lead(&state.db, caller.tenant_id, *id).await?;
    let phone = match &body.phone {
        Some(raw) => Some(tenant_phone(&state, caller.tenant_id, raw).await?),
        None => None,
    };
    let patch = LeadPatch {
        name: body.name.as_deref().map(lead_name).transpose()?,
        phone,
        niche: body
            .niche
            .as_deref()
            .map(|n| Some(n.trim().to_string()).filter(|n| !n.is_empty())),
        tags: body
            .tags
            .as_deref()
            .map(|t| lead_tags(t).map(|t| encode_tags(&t)))
            .transpose()?,
        status: body.status.as_deref().map(lead_status).transpose()?,
        fields: body.fields.as_ref().map(|f| fields_json(&lead_fields(f))),
        updated_at: Some(Utc::now().naive_utc()),
    };
    let lead = store::update_lead(&state.db, caller.tenant_id, lead.id, &patch)
        .await
        .map_err(ApiError::on_conflict(
            ErrorCode::DuplicatePhone,
            DUPLICATE_PHONE,
        ))?;
    Ok(web::Json(LeadView::from(&lead)))
}

/// Deletes a lead.
#[utoipa::path(tag = "leads", params(("id" = i64, Path, description = "lead id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/leads/{id}")]
pub async fn delete_lead(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    store::delete_lead(&state.db, caller.tenant_id, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
