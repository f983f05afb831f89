//! Campaigns: create, edit, clone, preview, start, pause, resume, cancel, retry failed
//! messages, progress, results and their CSV export.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target as AuditTarget;
use crate::auth::{Caller, Role};
use crate::broadcast::campaign::messages::Action;
use crate::broadcast::campaign::model::{
    Campaign, CampaignFields, CampaignKind, CampaignStatus, DeviceChoice, OnDeviceLoss, Target,
};
use crate::broadcast::campaign::progress::Progress;
use crate::broadcast::campaign::store;
use crate::broadcast::outbox::model::OutboxEntry;
use crate::broadcast::outbox::store::outbox_page;
use crate::broadcast::pacing::PacingOverride;
use crate::broadcast::settings as tenant_settings;
use crate::broadcast::template::Template;
use crate::db::DbError;
use crate::web::actions::campaigns::{
    self, changeable, CampaignList, CampaignView, RetryReport, StartReport,
};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::{receive_file, receive_image, required_text, FileQuery};
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_campaigns)
        .service(create_campaign)
        .service(get_campaign)
        .service(update_campaign)
        .service(delete_campaign)
        .service(put_image)
        .service(put_attachment)
        .service(start_campaign)
        // Before `/campaigns/{id}/{action}`, which would take their last segment for an action.
        .service(retry_failed)
        .service(clone_campaign)
        .service(control_campaign)
        .service(preview_campaign)
        .service(campaign_progress)
        .service(campaign_messages)
        .service(export_csv)
        .service(lead_pool);
}

/// A campaign as written by a client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// Label.
    pub name: String,
    /// Text with `{name}`-style variables and `{Hi|Hello}` spintax (the caption when the
    /// campaign has a picture).
    pub message: String,
    /// Which leads.
    pub target: Target,
    /// Which devices send (default: every online device; for members, their devices).
    #[serde(default)]
    pub devices: Option<DeviceChoice>,
    /// Pacing overrides within the safe bounds.
    #[serde(default)]
    pub pacing: PacingOverride,
    /// What happens to a lost device's messages (default `move`).
    #[serde(default)]
    pub on_device_loss: Option<OnDeviceLoss>,
    /// `broadcast` (default) or `ai` (lead distribution over the pool of unassigned leads).
    #[serde(default)]
    pub kind: CampaignKind,
    /// AI distribution: at most this many leads per device (required for `ai`).
    #[serde(default)]
    pub per_device_limit: Option<i64>,
    /// Start automatically at this time: RFC 3339 with offset, or a local `YYYY-MM-DDTHH:MM`
    /// in the tenant's zone. Absent: a draft, started with `POST …/start`.
    #[serde(default)]
    pub scheduled_at: Option<String>,
}

/// The example body of `POST /campaigns` in the OpenAPI document: a draft broadcast to a list
/// and a tag, sent by every online device, at most six messages a minute per device.
fn campaign_example() -> serde_json::Value {
    serde_json::json!({
        "name": "December promo",
        "message": "{Hi|Hello} {name}, our December sale starts today!",
        "target": { "list_ids": [1], "tags": ["vip"] },
        "devices": { "mode": "all_online" },
        "pacing": { "per_minute": 6 }
    })
}

/// One rendered example.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewItem {
    /// Lead.
    pub lead_id: i64,
    /// Lead name.
    pub name: String,
    /// Lead phone.
    pub phone: String,
    /// The text this lead would get (spintax picked at random each time; `{greeting}` as it
    /// would be sent now).
    pub text: String,
}

/// A preview: how many leads match and a few rendered messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// Leads the target matches now (one per phone).
    pub leads: usize,
    /// Variables the template uses.
    pub variables: Vec<String>,
    /// Examples.
    pub samples: Vec<PreviewItem>,
}

/// Query of the preview.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PreviewQuery {
    /// Examples to render (default 5, at most 50).
    pub count: Option<usize>,
}

/// Query of the results page.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MessagesQuery {
    /// Rows after this id (from the previous page's last id).
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// A page of a campaign's messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesPage {
    /// Rows in id order.
    pub messages: Vec<OutboxEntry>,
}

/// A 422 naming what is wrong.
fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidCampaign, message)
}

/// The store refuses to change a campaign that has started: 409 `wrong_state` with its reason.
fn state_error(err: DbError) -> ApiError {
    match err {
        DbError::Conflict(message) => ApiError::new(ErrorCode::WrongState, message),
        other => other.into(),
    }
}

/// Checks a request against the tenant (lists, devices, members, pacing, schedule) and turns
/// it into stored fields and a schedule.
async fn validate(
    state: &AppState,
    caller: &Caller,
    body: &CampaignRequest,
) -> Result<(CampaignFields, Option<NaiveDateTime>), ApiError> {
    let name = required_text("name", &body.name)?;
    Template::parse(&body.message).map_err(|e| invalid(format!("message: {}", e.0)))?;
    let target = &body.target;
    match body.kind {
        CampaignKind::Broadcast => {
            if target.list_ids.is_empty() && target.tags.is_empty() {
                return Err(invalid("target: give list_ids or tags"));
            }
            if body.per_device_limit.is_some() {
                return Err(invalid(
                    "per_device_limit: only an ai campaign has a per-device limit",
                ));
            }
        }
        CampaignKind::Ai => {
            if !body
                .per_device_limit
                .is_some_and(|n| (1..=100_000).contains(&n))
            {
                return Err(invalid(
                    "per_device_limit: an ai campaign needs a limit from 1 to 100000",
                ));
            }
        }
        CampaignKind::Sequence => {
            return Err(invalid(
                "kind: use broadcast or ai (sequences have their own API)",
            ))
        }
    }
    for list_id in &target.list_ids {
        let found =
            crate::broadcast::leads::store::get_list(&state.db, caller.tenant_id, *list_id).await;
        match found {
            Ok(_) => {}
            Err(DbError::NotFound) => {
                return Err(invalid(format!("target: lead list {list_id} not found")))
            }
            Err(err) => return Err(err.into()),
        }
    }
    let devices = match (&body.devices, caller.role) {
        // A member sends through their own devices.
        (None | Some(DeviceChoice::AllOnline), Role::Member) => DeviceChoice::Member {
            user_id: caller.user.id,
        },
        (None, _) => DeviceChoice::AllOnline,
        (Some(choice), _) => choice.clone(),
    };
    match &devices {
        DeviceChoice::Set { ids } => {
            if ids.is_empty() {
                return Err(invalid("devices: the set is empty"));
            }
            for id in ids {
                let mine = crate::device::store::get_device(&state.db, caller.tenant_id, *id)
                    .await
                    .is_ok();
                if !mine || !caller.can_see_device(*id) {
                    return Err(invalid(format!("devices: device {id} not found")));
                }
            }
        }
        DeviceChoice::Member { user_id } => {
            let member = crate::auth::store::get_user(&state.db, *user_id).await.ok();
            let same_tenant = member.is_some_and(|u| u.tenant_id == Some(caller.tenant_id));
            if !same_tenant || (caller.role == Role::Member && *user_id != caller.user.id) {
                return Err(invalid(format!("devices: user {user_id} not found")));
            }
        }
        DeviceChoice::AllOnline => {}
    }
    let effective =
        tenant_settings::effective(&state.db, &state.settings.broadcast, caller.tenant_id).await?;
    let pacing = effective.pacing.with(&body.pacing);
    state
        .settings
        .broadcast
        .limits
        .check(&pacing)
        .map_err(|e| invalid(format!("pacing: {e}")))?;
    let scheduled_at = match body.scheduled_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_schedule(text, effective.time_zone)?),
    };
    Ok((
        CampaignFields {
            name: name.to_string(),
            message: body.message.clone(),
            target: to_json(target),
            devices: to_json(&devices),
            pacing: to_json(&body.pacing),
            on_device_loss: body
                .on_device_loss
                .unwrap_or(OnDeviceLoss::Move)
                .as_str()
                .to_string(),
            kind: body.kind.as_str().to_string(),
            per_device_limit: body.per_device_limit,
        },
        scheduled_at,
    ))
}

/// A JSON column's text (values built by this code always serialise).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Parses a schedule: RFC 3339, or a local date-time in the tenant's zone; must be in the future.
fn parse_schedule(text: &str, zone: chrono_tz::Tz) -> Result<NaiveDateTime, ApiError> {
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .ok_or_else(|| invalid("scheduled_at: use RFC 3339 or YYYY-MM-DDTHH:MM"))?;
            zone.from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| invalid("scheduled_at: that local time does not exist"))?
                .with_timezone(&Utc)
        }
    };
    if at <= Utc::now() {
        return Err(invalid("scheduled_at: must be in the future"));
    }
    Ok(at.naive_utc())
}

/// The tenant's campaigns, newest first, with progress once started.
#[utoipa::path(tag = "campaigns", responses((status = 200, body = CampaignList)))]
#[get("/campaigns")]
pub async fn list_campaigns(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<CampaignList>, ApiError> {
    Ok(web::Json(campaigns::list(&state, &caller).await?))
}

/// Creates a campaign: a draft, or scheduled when `scheduled_at` is given.
#[utoipa::path(tag = "campaigns", request_body(content = CampaignRequest, examples(
    ("draft" = (summary = "A draft broadcast", value = json!(campaign_example())))
)), responses(
    (status = 201, body = CampaignView),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/campaigns")]
pub async fn create_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    body: web::Json<CampaignRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, scheduled_at) = validate(&state, &caller, &body).await?;
    let status = if scheduled_at.is_some() {
        CampaignStatus::Scheduled
    } else {
        CampaignStatus::Draft
    };
    let campaign = store::insert_campaign(
        &state.db,
        caller.tenant_id,
        Some(caller.user.id),
        &fields,
        status,
        scheduled_at,
    )
    .await?;
    audit
        .record("campaign.create", AuditTarget::Campaign(campaign.id))
        .await;
    Ok(HttpResponse::Created().json(CampaignView::of(&campaign, None)))
}

/// One campaign, with its progress once started.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/campaigns/{id}")]
pub async fn get_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<CampaignView>, ApiError> {
    let campaign = store::get_campaign(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(campaigns::view(&state, &campaign).await?))
}

/// Changes a draft or scheduled campaign (409 once started).
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), request_body = CampaignRequest, responses(
    (status = 200, body = CampaignView),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[patch("/campaigns/{id}")]
pub async fn update_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<CampaignRequest>,
) -> Result<web::Json<CampaignView>, ApiError> {
    changeable(&state, &caller, *id).await?;
    let (fields, scheduled_at) = validate(&state, &caller, &body).await?;
    let campaign = store::update_campaign(&state.db, caller.tenant_id, *id, &fields)
        .await
        .map_err(state_error)?;
    // The schedule decides draft or scheduled.
    let (from, to) = match scheduled_at {
        Some(_) => (
            [CampaignStatus::Draft, CampaignStatus::Scheduled],
            CampaignStatus::Scheduled,
        ),
        None => (
            [CampaignStatus::Scheduled, CampaignStatus::Draft],
            CampaignStatus::Draft,
        ),
    };
    store::transition(&state.db, campaign.id, &from, to, scheduled_at).await?;
    audit
        .record("campaign.update", AuditTarget::Campaign(campaign.id))
        .await;
    let campaign = store::get_campaign(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(CampaignView::of(&campaign, None)))
}

/// Deletes a campaign that is not running or paused (cancel it first), with its results.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 204),
    (status = 409, body = crate::web::ErrorBody)
))]
#[delete("/campaigns/{id}")]
pub async fn delete_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    changeable(&state, &caller, *id).await?;
    store::delete_campaign(&state.db, caller.tenant_id, *id)
        .await
        .map_err(state_error)?;
    audit
        .record("campaign.delete", AuditTarget::Campaign(*id))
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets the campaign's picture: the request body is the image (JPEG, PNG, GIF or WebP); it is
/// resized and compressed for WhatsApp, and the message becomes its caption.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")),
    request_body(content = Vec<u8>, content_type = "image/jpeg"), responses(
    (status = 204),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/campaigns/{id}/image")]
pub async fn put_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    changeable(&state, &caller, *id).await?;
    let sha = receive_image(&state, &req, &mut payload).await?;
    store::set_image(&state.db, caller.tenant_id, *id, Some(&sha), None)
        .await
        .map_err(state_error)?;
    audit
        .record("campaign.image", AuditTarget::Campaign(*id))
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets the campaign's file (replacing any picture): the request body is the file, `kind` says
/// what it is. A picture is prepared as `PUT /campaigns/{id}/image` does; a document (any type
/// but a web page, SVG or XML), video (MP4/3GP), voice note (OGG/Opus) or audio file is checked
/// by its bytes, at most 16 MiB. The message is the caption of a picture, video or document;
/// voice notes and audio carry none, so the message text is not sent with them.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id"), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses(
    (status = 204),
    (status = 409, body = crate::web::ErrorBody),
    (status = 413, body = crate::web::ErrorBody),
    (status = 415, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/campaigns/{id}/attachment")]
pub async fn put_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    query: web::Query<FileQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    changeable(&state, &caller, *id).await?;
    let (sha, info) = receive_file(&state, &req, &mut payload, &query).await?;
    let info = info.map(|i| i.to_json());
    store::set_image(
        &state.db,
        caller.tenant_id,
        *id,
        Some(&sha),
        info.as_deref(),
    )
    .await
    .map_err(state_error)?;
    audit
        .record("campaign.attachment", AuditTarget::Campaign(*id))
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts a draft or scheduled campaign now: writes one message per lead (each with its own
/// WhatsApp message id) and begins sending at the campaign's pace.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 200, body = StartReport),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/campaigns/{id}/start")]
pub async fn start_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<web::Json<StartReport>, ApiError> {
    Ok(web::Json(
        campaigns::start(&state, &caller, &audit, *id).await?,
    ))
}

/// Optional body of `POST /campaigns/{id}/retry-failed`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Retry only this device's failed messages (all devices' when absent).
    #[serde(default)]
    pub device_id: Option<i64>,
}

/// Puts the campaign's failed messages (all, or one device's with `{"device_id": N}`) back in
/// the queue for a new round of attempts, under their own WhatsApp message ids. Messages that
/// were sent or are being sent are never touched; those to leads who opted out since stay
/// failed. A completed campaign runs again; the change is published as `CAMPAIGN_PROGRESS`.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")),
    request_body = RetryRequest, responses(
    (status = 200, body = RetryReport),
    (status = 400, body = crate::web::ErrorBody),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/campaigns/{id}/retry-failed")]
pub async fn retry_failed(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<web::Json<RetryReport>, ApiError> {
    // No body, or an empty one, retries every device; a body that does not parse is refused
    // (never read as "all devices").
    let request: RetryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RetryRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("body: {e}")))?
    };
    Ok(web::Json(
        campaigns::retry_failed(&state, &caller, &audit, *id, request.device_id).await?,
    ))
}

/// A campaign as a request: its settings, named `name`, with no schedule (a clone).
fn as_request(campaign: &Campaign, name: String) -> CampaignRequest {
    CampaignRequest {
        name,
        message: campaign.message.clone(),
        target: campaign.target(),
        devices: Some(campaign.device_choice()),
        pacing: campaign.pacing_override(),
        on_device_loss: Some(campaign.on_device_loss()),
        kind: campaign.kind(),
        per_device_limit: campaign.per_device_limit,
        scheduled_at: None,
    }
}

/// The name of a copy: `<name> (copy)`, the original shortened to fit the name limit.
fn copy_name(name: &str) -> String {
    const SUFFIX: &str = " (copy)";
    let keep = crate::web::input::MAX_TEXT_CHARS - SUFFIX.chars().count();
    let base: String = name.chars().take(keep).collect();
    format!("{}{SUFFIX}", base.trim_end())
}

/// Copies a campaign of any state into a new draft: the same message, file, targets, devices,
/// pacing and device-loss rule, named `<name> (copy)`, not scheduled. The settings are checked
/// again for the caller (a member's copy sends through the member's devices).
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 201, body = CampaignView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/campaigns/{id}/clone")]
pub async fn clone_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let source = store::get_campaign(&state.db, caller.tenant_id, *id).await?;
    let request = as_request(&source, copy_name(&source.name));
    let (fields, _) = validate(&state, &caller, &request).await?;
    let copy = store::insert_copy(&state.db, &source, Some(caller.user.id), &fields).await?;
    audit
        .record("campaign.clone", AuditTarget::Campaign(copy.id))
        .await;
    Ok(HttpResponse::Created().json(CampaignView::of(&copy, None)))
}

/// What a control path segment asks for.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Pause a running campaign (takes effect within a second; nothing in flight is lost).
    Pause,
    /// Resume a paused campaign where it stopped.
    Resume,
    /// Cancel for good; unsent messages are skipped.
    Cancel,
}

/// Pauses, resumes or cancels a campaign: `POST /campaigns/{id}/pause`, `…/resume`,
/// `…/cancel`.
#[utoipa::path(tag = "campaigns", params(
    ("id" = i64, Path, description = "campaign id"),
    ("action" = ControlAction, Path, description = "pause, resume or cancel")
), responses(
    (status = 200, body = CampaignView),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/campaigns/{id}/{action}")]
pub async fn control_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    path: web::Path<(i64, ControlAction)>,
) -> Result<web::Json<CampaignView>, ApiError> {
    let (id, action) = path.into_inner();
    let action = match action {
        ControlAction::Pause => Action::Pause,
        ControlAction::Resume => Action::Resume,
        ControlAction::Cancel => Action::Cancel,
    };
    let campaign = campaigns::control(&state, &caller, &audit, id, action).await?;
    Ok(web::Json(campaign))
}

/// How many leads the campaign reaches and a few messages as leads would get them.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id"), PreviewQuery), responses(
    (status = 200, body = Preview)
))]
#[get("/campaigns/{id}/preview")]
pub async fn preview_campaign(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
    query: web::Query<PreviewQuery>,
) -> Result<web::Json<Preview>, ApiError> {
    let campaign = store::get_campaign(&state.db, caller.tenant_id, *id).await?;
    let template = Template::parse(&campaign.message).map_err(|e| invalid(e.0))?;
    let count = query.count.unwrap_or(5).min(50);
    let (leads, first) =
        crate::broadcast::campaign::materialize::preview_leads(&state.db, &campaign, count).await?;
    // `{greeting}` as it would be sent now, in the tenant's zone.
    let zone = tenant_settings::effective(&state.db, &state.settings.broadcast, caller.tenant_id)
        .await?
        .time_zone;
    let greeting = crate::broadcast::greeting::at(Utc::now(), zone);
    let mut rng = rand::rng();
    let samples = first
        .iter()
        .map(|lead| {
            let mut vars = lead.variables();
            vars.insert(
                crate::broadcast::greeting::VARIABLE.to_string(),
                greeting.to_string(),
            );
            PreviewItem {
                lead_id: lead.id,
                name: lead.name.clone(),
                phone: lead.phone.clone(),
                text: template.render(&vars, &mut rng),
            }
        })
        .collect();
    Ok(web::Json(Preview {
        leads,
        variables: template.variables(),
        samples,
    }))
}

/// Counts per state and device, rate and ETA (also published as `CAMPAIGN_PROGRESS` on
/// `campaign/<id>`).
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 200, body = Progress)
))]
#[get("/campaigns/{id}/progress")]
pub async fn campaign_progress(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<Progress>, ApiError> {
    Ok(web::Json(
        campaigns::progress_of(&state, &caller, *id).await?,
    ))
}

/// The campaign's messages: to whom, which device, state, attempts, error, times.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id"), MessagesQuery), responses(
    (status = 200, body = MessagesPage)
))]
#[get("/campaigns/{id}/messages")]
pub async fn campaign_messages(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
    query: web::Query<MessagesQuery>,
) -> Result<web::Json<MessagesPage>, ApiError> {
    let campaign = store::get_campaign(&state.db, caller.tenant_id, *id).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let messages = outbox_page(&state.db, campaign.id, query.after.unwrap_or(0), limit).await?;
    Ok(web::Json(MessagesPage { messages }))
}

/// The campaign's messages as CSV (`text/csv`, streamed a page at a time): phone, lead name,
/// device name, state, error, attempts, and sent/delivered/read times in the tenant's zone.
/// Cells a spreadsheet would run as formulas get a leading `'`. Members get the rows of their
/// assigned devices only.
#[utoipa::path(tag = "campaigns", params(("id" = i64, Path, description = "campaign id")), responses(
    (status = 200, content_type = "text/csv", body = String),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/campaigns/{id}/export.csv")]
pub async fn export_csv(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let lines = campaigns::export_csv(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"campaign-{}.csv\"", *id),
        ))
        .streaming(lines))
}

/// Query of the lead pool.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PoolQuery {
    /// Only leads of this niche.
    pub niche: Option<String>,
    /// Only leads with this tag.
    pub tag: Option<String>,
    /// Only leads in this status.
    pub status: Option<String>,
}

/// The pool an AI distribution would take from.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// Leads without a device that match (one per phone).
    pub unassigned: usize,
    /// The devices online now that the caller's distribution could use (a member's: theirs).
    pub online_devices: usize,
}

/// How many unassigned leads match, and how many devices could take them now.
#[utoipa::path(tag = "campaigns", params(PoolQuery), responses((status = 200, body = PoolView)))]
#[get("/lead-pool")]
pub async fn lead_pool(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    query: web::Query<PoolQuery>,
) -> Result<web::Json<PoolView>, ApiError> {
    let some = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| vec![v.to_string()])
            .unwrap_or_default()
    };
    let target = Target {
        list_ids: Vec::new(),
        tags: some(&query.tag),
        statuses: some(&query.status),
        niches: some(&query.niche),
    };
    let (unassigned, _) = crate::broadcast::campaign::materialize::count_matching(
        &state.db,
        caller.tenant_id,
        &target,
        true,
        0,
    )
    .await?;
    let filter = crate::device::model::DeviceFilter {
        status: Some(crate::device::model::DeviceStatus::Online),
        only_ids: caller.assigned_devices.clone(),
        ..Default::default()
    };
    let (_, online) =
        crate::device::store::list_devices(&state.db, caller.tenant_id, &filter, 1, 0).await?;
    Ok(web::Json(PoolView {
        unassigned,
        online_devices: online as usize,
    }))
}
