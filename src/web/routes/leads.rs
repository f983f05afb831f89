//! Lead lists and leads of the caller's tenant: list CRUD with lead counts, lead CRUD and
//! search with keyset pagination, and the streamed CSV import (`IMPORT_PROGRESS` events on
//! `lead-lists/<id>`). Viewers read; members and up change.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::events;
use crate::broadcast::leads::import::{self, ImportReport};
use crate::broadcast::leads::model::{encode_tags, fields_json, LeadList, LeadPatch};
use crate::broadcast::leads::store;
use crate::broadcast::settings;
use crate::hub::{HubEvent, Topic};
use crate::web::actions::leads::{
    self, lead_fields, lead_name, lead_status, lead_tags, CreateLeadRequest, LeadPage, LeadQuery,
    LeadView, DUPLICATE_PHONE,
};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::{required_text, tenant_phone};
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

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

/// Body of `POST /lead-lists` and `PATCH /lead-lists/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeadListRequest {
    /// Name, 1–200 characters, unique within the tenant.
    pub name: String,
}

/// The example body of `POST /leads` in the OpenAPI document.
fn lead_example() -> serde_json::Value {
    serde_json::json!({
        "list_id": 1,
        "phone": "+60 12-345 6789",
        "name": "Aisyah",
        "niche": "bakery",
        "tags": ["expo", "vip"],
        "fields": { "city": "Kuala Lumpur" }
    })
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
    let mut done = detail.clone();
    done["list_id"] = list.id.into();
    done["seconds"] = seconds.into();
    events::import_done(&state.hub, tenant_id, list.id, done);
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
    Ok(web::Json(leads::search(&state, &caller, &query).await?))
}

/// Adds a lead to a list; its phone already in the list is 409 `duplicate_phone`.
#[utoipa::path(tag = "leads", request_body(content = CreateLeadRequest, examples(
    ("lead" = (summary = "A lead with tags and a custom field", value = json!(lead_example())))
)), responses(
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
    let lead = leads::create(&state, &caller, &body, "api").await?;
    Ok(HttpResponse::Created().json(lead))
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
