//! Drip sequences: create and edit (steps, windows, chain), pause/resume, pictures per step,
//! enrolments (list, enrol by hand, stop) and the per-step report.

use std::collections::HashMap;

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::Caller;
use crate::broadcast::attachment::{self, FileInfo};
use crate::broadcast::campaign::messages::{Action, ControlCampaign, WatchCampaign};
use crate::broadcast::sequence::branch::OnReply;
use crate::broadcast::sequence::engine::Enrol;
use crate::broadcast::sequence::model::{
    enrollment_status as es, Sequence, SequenceFields, SequenceStatus, Step, StepFields, Window,
};
use crate::broadcast::sequence::report::{report, Report};
use crate::broadcast::sequence::store;
use crate::broadcast::template::Template;
use crate::db::DbError;
use crate::web::access::may_change;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::{receive_file, receive_image, required_text, FileQuery};
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_sequences)
        .service(create_sequence)
        .service(get_sequence)
        .service(update_sequence)
        .service(delete_sequence)
        .service(toggle_sequence)
        .service(put_step_image)
        .service(put_step_attachment)
        .service(delete_step_image)
        .service(list_enrollments)
        .service(enrol_leads)
        .service(stop_enrollment)
        .service(sequence_report);
}

/// Longest step delay: a year.
const MAX_DELAY_MINUTES: i64 = 366 * 24 * 60;
/// Most steps in one sequence.
const MAX_STEPS: usize = 50;

/// A step as written by a client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Text with `{name}`-style variables and `{Hi|Hello}` spintax (the caption when the step
    /// has a picture).
    pub message: String,
    /// Wait after the previous step (after enrolment for step 1): minutes, hours and days add up.
    #[serde(default)]
    pub delay_minutes: i64,
    /// See `delay_minutes`.
    #[serde(default)]
    pub delay_hours: i64,
    /// See `delay_minutes`.
    #[serde(default)]
    pub delay_days: i64,
    /// Daily send window in the tenant's zone (`{"start":"09:00","end":"18:00"}`).
    #[serde(default)]
    pub window: Option<Window>,
    /// What a reply to this step does: `{"action": "continue" | "stop" | "jump", "keyword"?,
    /// "sequence_id"?}` (absent: the sequence's `stop_on_reply`).
    #[serde(default)]
    pub on_reply: Option<OnReply>,
}

/// A sequence as written by a client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceRequest {
    /// Label, unique in the tenant.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Leads that get this tag are enrolled (case-insensitive).
    #[serde(default)]
    pub trigger_tag: Option<String>,
    /// An inbound message from the lead stops its future steps (default true).
    #[serde(default = "yes")]
    pub stop_on_reply: bool,
    /// `active` (default) or `paused` (on create only; use toggle later).
    #[serde(default)]
    pub status: Option<SequenceStatus>,
    /// Leads completing this sequence are enrolled in that one.
    #[serde(default)]
    pub next_sequence_id: Option<i64>,
    /// At least one.
    pub steps: Vec<StepRequest>,
}

fn yes() -> bool {
    true
}

/// A step as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// 1, 2, 3 …
    pub position: i64,
    /// Template text.
    pub message: String,
    /// Whether it sends a picture.
    pub has_image: bool,
    /// The file it sends, if any: a picture, document, video, voice note or audio file.
    pub file: Option<FileInfo>,
    /// Wait after the previous step.
    pub delay_minutes: i64,
    /// Send window.
    pub window: Option<Window>,
    /// What a reply to this step does (absent: the sequence's default).
    pub on_reply: Option<OnReply>,
}

/// A sequence as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct SequenceView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Entry tag.
    pub trigger_tag: Option<String>,
    /// Stop on reply.
    pub stop_on_reply: bool,
    /// Active or paused.
    pub status: SequenceStatus,
    /// Chained sequence.
    pub next_sequence_id: Option<i64>,
    /// Steps in order.
    pub steps: Vec<StepView>,
    /// Enrolments by state.
    pub counts: HashMap<String, i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `{"sequences": […]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SequenceList {
    /// Newest first.
    pub sequences: Vec<SequenceView>,
}

/// An enrolment as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentView {
    /// Id.
    pub id: i64,
    /// Lead.
    pub lead_id: i64,
    /// Lead name.
    pub lead_name: String,
    /// E.164 digits.
    pub phone: String,
    /// The device writing to the lead.
    pub device_id: Option<i64>,
    /// waiting, active, completed, stopped or failed.
    pub status: String,
    /// Step due next or being sent.
    pub step: i64,
    /// When the waiting step is due.
    pub next_due_at: Option<DateTime<Utc>>,
    /// Why it stopped or failed.
    pub reason: Option<String>,
    /// The lead's first reply.
    pub replied_at: Option<DateTime<Utc>>,
    /// tag, manual or chain.
    pub source: String,
    /// When.
    pub enrolled_at: DateTime<Utc>,
}

/// A page of enrolments.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentPage {
    /// In id order.
    pub enrollments: Vec<EnrollmentView>,
}

/// Query of the enrolments page.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EnrollmentQuery {
    /// Only this state.
    pub status: Option<String>,
    /// After this enrolment id.
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Leads to enrol by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// Lead ids (at most 10,000).
    pub lead_ids: Vec<i64>,
}

/// What enrolling did.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolReport {
    /// Newly enrolled.
    pub enrolled: usize,
    /// Already enrolled, opted out, or not found.
    pub already: usize,
}

/// Optional body of the toggle.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToggleRequest {
    /// Active (true) or paused (false); absent flips.
    pub active: Option<bool>,
}

/// The message of 409 `duplicate`.
const NAME_TAKEN: &str = "a sequence with this name exists";

/// A sequence of the caller's tenant that the caller may change (members: one they created;
/// 403 otherwise), or 404.
async fn changeable(state: &AppState, caller: &Caller, id: i64) -> Result<Sequence, ApiError> {
    let sequence = store::get_sequence(&state.db, caller.tenant_id, id).await?;
    may_change(caller, sequence.created_by, "sequence")?;
    Ok(sequence)
}

/// A 422 naming what is wrong.
fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSequence, message)
}

/// Checks a request (templates, delays, windows, chain) and turns it into stored fields.
async fn validate(
    state: &AppState,
    caller: &Caller,
    id: Option<i64>,
    body: &SequenceRequest,
) -> Result<(SequenceFields, Vec<StepFields>), ApiError> {
    let name = required_text("name", &body.name)?;
    if body.steps.is_empty() || body.steps.len() > MAX_STEPS {
        return Err(invalid(format!("steps: give 1 to {MAX_STEPS} steps")));
    }
    let mut steps = Vec::with_capacity(body.steps.len());
    for (index, step) in body.steps.iter().enumerate() {
        let at = index + 1;
        if step.message.trim().is_empty() {
            return Err(invalid(format!("steps[{at}].message: must not be empty")));
        }
        Template::parse(&step.message)
            .map_err(|e| invalid(format!("steps[{at}].message: {}", e.0)))?;
        let parts = [step.delay_minutes, step.delay_hours, step.delay_days];
        if parts.iter().any(|p| *p < 0) {
            return Err(invalid(format!("steps[{at}]: delays cannot be negative")));
        }
        let delay = step
            .delay_minutes
            .saturating_add(step.delay_hours.saturating_mul(60))
            .saturating_add(step.delay_days.saturating_mul(24 * 60));
        if delay > MAX_DELAY_MINUTES {
            return Err(invalid(format!(
                "steps[{at}]: the delay is longer than a year"
            )));
        }
        if let Some(window) = step.window {
            if window.start == window.end {
                return Err(invalid(format!(
                    "steps[{at}].window: start and end must differ"
                )));
            }
        }
        let on_reply = match &step.on_reply {
            Some(rule) => Some(check_reply_rule(state, caller, id, at, rule).await?),
            None => None,
        };
        steps.push(StepFields {
            message: step.message.clone(),
            delay_minutes: delay,
            window: step.window,
            on_reply,
        });
    }
    let trigger_tag = body
        .trigger_tag
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    if trigger_tag
        .as_deref()
        .is_some_and(|t| t.contains(',') || t.chars().count() > 64)
    {
        return Err(invalid(
            "trigger_tag: one tag, without commas, at most 64 characters",
        ));
    }
    if let Some(next) = body.next_sequence_id {
        check_chain(state, caller.tenant_id, id, name, next).await?;
        // A chain enrols leads into the next sequence: members only into their own.
        changeable(state, caller, next).await?;
    }
    Ok((
        SequenceFields {
            name: name.to_string(),
            description: body.description.trim().to_string(),
            trigger_tag,
            stop_on_reply: body.stop_on_reply,
            next_sequence_id: body.next_sequence_id,
        },
        steps,
    ))
}

/// Checks step `at`'s reply rule: its shape, and for a jump a target that is another
/// sequence of the tenant (not this one: a lead is enrolled once per sequence, so jumps cannot
/// loop) that the caller may change (members jump only into their own sequences).
async fn check_reply_rule(
    state: &AppState,
    caller: &Caller,
    id: Option<i64>,
    at: usize,
    rule: &OnReply,
) -> Result<OnReply, ApiError> {
    let rule = rule
        .checked()
        .map_err(|e| invalid(format!("steps[{at}].on_reply: {e}")))?;
    if let Some(target) = rule.sequence_id {
        if Some(target) == id {
            return Err(invalid(format!(
                "steps[{at}].on_reply: a step cannot jump to its own sequence"
            )));
        }
        match store::get_sequence(&state.db, caller.tenant_id, target).await {
            Ok(_) => {}
            Err(DbError::NotFound) => {
                return Err(invalid(format!(
                    "steps[{at}].on_reply: sequence {target} not found"
                )))
            }
            Err(err) => return Err(err.into()),
        }
        changeable(state, caller, target).await?;
    }
    Ok(rule)
}

/// Refuses a chain into a missing sequence or one that leads back to this one.
async fn check_chain(
    state: &AppState,
    tenant_id: i64,
    id: Option<i64>,
    name: &str,
    next: i64,
) -> Result<(), ApiError> {
    let chains = store::chains(&state.db, tenant_id).await?;
    let by_id: HashMap<i64, (&str, Option<i64>)> = chains
        .iter()
        .map(|(id, name, next)| (*id, (name.as_str(), *next)))
        .collect();
    if !by_id.contains_key(&next) {
        return Err(invalid(format!(
            "next_sequence_id: sequence {next} not found"
        )));
    }
    let mut path = vec![name.to_string()];
    let mut at = Some(next);
    while let Some(current) = at {
        let Some((current_name, following)) = by_id.get(&current) else {
            break;
        };
        path.push(current_name.to_string());
        if Some(current) == id || path.len() > by_id.len() + 1 {
            return Err(invalid(format!(
                "next_sequence_id: the chain {} is a cycle",
                path.join(" → ")
            )));
        }
        at = *following;
    }
    Ok(())
}

/// The sequence as shown.
async fn view(state: &AppState, sequence: Sequence) -> Result<SequenceView, ApiError> {
    views(state, vec![sequence])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("the sequence view is missing"))
}

/// Sequences as shown, with their steps and enrolment counts.
async fn views(state: &AppState, sequences: Vec<Sequence>) -> Result<Vec<SequenceView>, ApiError> {
    let ids: Vec<i64> = sequences.iter().map(|s| s.id).collect();
    let mut steps = store::steps_of(&state.db, &ids).await?;
    let mut counts: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    for (id, status, n) in store::status_counts(&state.db, &ids).await? {
        counts.entry(id).or_default().insert(status, n);
    }
    Ok(sequences
        .into_iter()
        .map(|s| {
            let mut by_status: HashMap<String, i64> =
                es::ALL.iter().map(|st| (st.to_string(), 0)).collect();
            by_status.extend(counts.remove(&s.id).unwrap_or_default());
            SequenceView {
                id: s.id,
                status: s.state(),
                steps: steps
                    .remove(&s.id)
                    .unwrap_or_default()
                    .iter()
                    .map(step_view)
                    .collect(),
                counts: by_status,
                created_at: utc(s.created_at),
                updated_at: utc(s.updated_at),
                name: s.name,
                description: s.description,
                trigger_tag: s.trigger_tag,
                stop_on_reply: s.stop_on_reply,
                next_sequence_id: s.next_sequence_id,
            }
        })
        .collect())
}

fn step_view(step: &Step) -> StepView {
    StepView {
        position: step.position,
        message: step.message.clone(),
        has_image: step.image_sha256.is_some() && step.attachment.is_none(),
        file: attachment::describe(step.image_sha256.as_deref(), step.attachment.as_deref()),
        delay_minutes: step.delay_minutes,
        window: step.window(),
        on_reply: step.on_reply(),
    }
}

/// Tells the campaign engine to run (or pause) a sequence's carrier.
async fn sync_carrier(state: &AppState, sequence: &Sequence) -> Result<(), ApiError> {
    let campaign_id = sequence.campaign_id;
    let action = match sequence.state() {
        SequenceStatus::Active => Action::Resume,
        SequenceStatus::Paused => Action::Pause,
    };
    // A carrier already in the wanted state answers a conflict; that is fine.
    let _ = state
        .campaigns
        .send(ControlCampaign {
            campaign_id,
            action,
        })
        .await
        .map_err(ApiError::internal)?;
    state
        .campaigns
        .send(WatchCampaign { campaign_id })
        .await
        .map_err(ApiError::internal)??;
    Ok(())
}

/// The tenant's sequences, newest first.
#[utoipa::path(tag = "sequences", responses((status = 200, body = SequenceList)))]
#[get("/sequences")]
pub async fn list_sequences(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<SequenceList>, ApiError> {
    let rows = store::list_sequences(&state.db, caller.tenant_id).await?;
    Ok(web::Json(SequenceList {
        sequences: views(&state, rows).await?,
    }))
}

/// Creates a sequence (active unless `status` is `paused`); leads already carrying its trigger
/// tag are enrolled on the engine's next round.
#[utoipa::path(tag = "sequences", request_body = SequenceRequest, responses(
    (status = 201, body = SequenceView),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/sequences")]
pub async fn create_sequence(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    body: web::Json<SequenceRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, steps) = validate(&state, &caller, None, &body).await?;
    let status = body.status.unwrap_or_default();
    let sequence = store::insert_sequence(
        &state.db,
        caller.tenant_id,
        Some(caller.user.id),
        &fields,
        status,
        &steps,
    )
    .await
    .map_err(ApiError::on_conflict(ErrorCode::Duplicate, NAME_TAKEN))?;
    state
        .campaigns
        .send(WatchCampaign {
            campaign_id: sequence.campaign_id,
        })
        .await
        .map_err(ApiError::internal)??;
    audit
        .record("sequence.create", Target::Sequence(sequence.id))
        .await;
    Ok(HttpResponse::Created().json(view(&state, sequence).await?))
}

/// One sequence.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), responses(
    (status = 200, body = SequenceView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/sequences/{id}")]
pub async fn get_sequence(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<SequenceView>, ApiError> {
    let sequence = store::get_sequence(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(view(&state, sequence).await?))
}

/// Replaces a sequence's fields and steps. Steps are matched by position and their messages
/// are rendered only when due, so an edit applies to every message not yet sent.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), request_body = SequenceRequest, responses(
    (status = 200, body = SequenceView),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/sequences/{id}")]
pub async fn update_sequence(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<SequenceRequest>,
) -> Result<web::Json<SequenceView>, ApiError> {
    changeable(&state, &caller, *id).await?;
    let (fields, steps) = validate(&state, &caller, Some(*id), &body).await?;
    let sequence = store::update_sequence(&state.db, caller.tenant_id, *id, &fields, &steps)
        .await
        .map_err(ApiError::on_conflict(ErrorCode::Duplicate, NAME_TAKEN))?;
    audit.record("sequence.update", Target::Sequence(*id)).await;
    Ok(web::Json(view(&state, sequence).await?))
}

/// Deletes a sequence; its future steps are dropped.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/sequences/{id}")]
pub async fn delete_sequence(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    changeable(&state, &caller, *id).await?;
    store::delete_sequence(&state.db, caller.tenant_id, *id).await?;
    audit.record("sequence.delete", Target::Sequence(*id)).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Pauses or resumes a sequence (`{"active": bool}`; no body flips it). Paused, nothing is sent,
/// not even messages already due; resumed, what came due meanwhile goes out.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), request_body = ToggleRequest, responses(
    (status = 200, body = SequenceView)
))]
#[post("/sequences/{id}/toggle")]
pub async fn toggle_sequence(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    body: Option<web::Json<ToggleRequest>>,
) -> Result<web::Json<SequenceView>, ApiError> {
    let sequence = changeable(&state, &caller, *id).await?;
    let active = body
        .and_then(|b| b.active)
        .unwrap_or(sequence.state() == SequenceStatus::Paused);
    let status = if active {
        SequenceStatus::Active
    } else {
        SequenceStatus::Paused
    };
    let sequence = store::set_status(&state.db, caller.tenant_id, *id, status).await?;
    sync_carrier(&state, &sequence).await?;
    audit
        .record(
            &format!("sequence.{}", status.as_str()),
            Target::Sequence(*id),
        )
        .await;
    Ok(web::Json(view(&state, sequence).await?))
}

/// Sets a step's picture: the request body is the image; the step's message becomes its caption.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id"), ("position" = i64, Path, description = "step position")),
    request_body(content = Vec<u8>, content_type = "image/jpeg"), responses(
    (status = 200, body = SequenceView),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/sequences/{id}/steps/{position}/image")]
pub async fn put_step_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    path: web::Path<(i64, i64)>,
    mut payload: web::Payload,
) -> Result<web::Json<SequenceView>, ApiError> {
    let (id, position) = path.into_inner();
    let sequence = changeable(&state, &caller, id).await?;
    let sha = receive_image(&state, &req, &mut payload).await?;
    set_step_image(&state, &audit, sequence, position, Some((&sha, None))).await
}

/// Sets a step's file (replacing any picture): the body is the file, `kind` what it is; checked
/// as `PUT /campaigns/{id}/attachment` checks it. The step's message is the caption of a
/// picture, video or document; voice notes and audio carry none.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id"), ("position" = i64, Path, description = "step position"), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses(
    (status = 200, body = SequenceView),
    (status = 413, body = crate::web::ErrorBody),
    (status = 415, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[put("/sequences/{id}/steps/{position}/attachment")]
pub async fn put_step_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    path: web::Path<(i64, i64)>,
    query: web::Query<FileQuery>,
    mut payload: web::Payload,
) -> Result<web::Json<SequenceView>, ApiError> {
    let (id, position) = path.into_inner();
    let sequence = changeable(&state, &caller, id).await?;
    let (sha, info) = receive_file(&state, &req, &mut payload, &query).await?;
    let info = info.map(|i| i.to_json());
    set_step_image(
        &state,
        &audit,
        sequence,
        position,
        Some((&sha, info.as_deref())),
    )
    .await
}

/// Removes a step's picture.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id"), ("position" = i64, Path, description = "step position")), responses(
    (status = 200, body = SequenceView)
))]
#[delete("/sequences/{id}/steps/{position}/image")]
pub async fn delete_step_image(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    path: web::Path<(i64, i64)>,
) -> Result<web::Json<SequenceView>, ApiError> {
    let (id, position) = path.into_inner();
    let sequence = changeable(&state, &caller, id).await?;
    set_step_image(&state, &audit, sequence, position, None).await
}

/// Stores a step's file (its SHA-256 and, when not a picture, what it is as JSON), or its
/// absence, and answers the sequence.
async fn set_step_image(
    state: &AppState,
    audit: &Audit,
    sequence: Sequence,
    position: i64,
    file: Option<(&str, Option<&str>)>,
) -> Result<web::Json<SequenceView>, ApiError> {
    let (sha, info) = file.map_or((None, None), |(sha, info)| (Some(sha), info));
    if !store::set_step_image(&state.db, sequence.id, position, sha, info).await? {
        return Err(ApiError::not_found("step"));
    }
    audit
        .record("sequence.image", Target::Sequence(sequence.id))
        .await;
    Ok(web::Json(view(state, sequence).await?))
}

/// A page of the sequence's enrolments.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id"), EnrollmentQuery), responses(
    (status = 200, body = EnrollmentPage)
))]
#[get("/sequences/{id}/enrollments")]
pub async fn list_enrollments(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
    query: web::Query<EnrollmentQuery>,
) -> Result<web::Json<EnrollmentPage>, ApiError> {
    let sequence = store::get_sequence(&state.db, caller.tenant_id, *id).await?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    if status.is_some_and(|s| !es::ALL.contains(&s)) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("status must be one of {}", es::ALL.join(", ")),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = store::enrollments_page(
        &state.db,
        sequence.id,
        status,
        query.after.unwrap_or(0),
        limit,
    )
    .await?;
    Ok(web::Json(EnrollmentPage {
        enrollments: rows.into_iter().map(enrollment_view).collect(),
    }))
}

fn enrollment_view((e, lead_name): store::EnrollmentRow) -> EnrollmentView {
    EnrollmentView {
        id: e.id,
        lead_id: e.lead_id,
        lead_name,
        phone: e.phone,
        device_id: e.device_id,
        status: e.status,
        step: e.step,
        next_due_at: e.next_due_at.map(utc),
        reason: e.reason,
        replied_at: e.replied_at.map(utc),
        source: e.source,
        enrolled_at: utc(e.enrolled_at),
    }
}

/// Enrols leads by hand (a lead is in a sequence at most once; opted-out leads are left out).
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), request_body = EnrolRequest, responses(
    (status = 200, body = EnrolReport),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/sequences/{id}/enrollments")]
pub async fn enrol_leads(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<EnrolRequest>,
) -> Result<web::Json<EnrolReport>, ApiError> {
    let sequence = changeable(&state, &caller, *id).await?;
    if body.lead_ids.is_empty() || body.lead_ids.len() > 10_000 {
        return Err(invalid("lead_ids: give 1 to 10000 lead ids"));
    }
    let asked = body.lead_ids.len();
    let enrolled = state
        .sequences
        .send(Enrol {
            sequence,
            lead_ids: body.into_inner().lead_ids,
            source: "manual",
        })
        .await
        .map_err(ApiError::internal)??;
    audit.record("sequence.enrol", Target::Sequence(*id)).await;
    Ok(web::Json(EnrolReport {
        enrolled,
        already: asked.saturating_sub(enrolled),
    }))
}

/// Stops one enrolment (no further steps).
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id"), ("enrollment" = i64, Path, description = "enrolment id")), responses(
    (status = 200, body = EnrollmentView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/sequences/{id}/enrollments/{enrollment}")]
pub async fn stop_enrollment(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    audit: Audit,
    path: web::Path<(i64, i64)>,
) -> Result<web::Json<EnrollmentView>, ApiError> {
    let (id, enrollment_id) = path.into_inner();
    let sequence = changeable(&state, &caller, id).await?;
    let find = || store::get_enrollment(&state.db, sequence.id, enrollment_id);
    find()
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    store::stop_open(
        &state.db,
        caller.tenant_id,
        None,
        Some(enrollment_id),
        "stopped by user",
    )
    .await?;
    let found = find()
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    audit
        .record(
            "sequence.stop_enrollment",
            Target::Enrollment(enrollment_id),
        )
        .await;
    Ok(web::Json(enrollment_view(found)))
}

/// Per step and per device: reached, sent, delivered, read, replied, stopped, failed.
#[utoipa::path(tag = "sequences", params(("id" = i64, Path, description = "sequence id")), responses(
    (status = 200, body = Report)
))]
#[get("/sequences/{id}/report")]
pub async fn sequence_report(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<Report>, ApiError> {
    let sequence = store::get_sequence(&state.db, caller.tenant_id, *id).await?;
    let steps = store::steps_of(&state.db, &[sequence.id]).await?;
    let count = steps.get(&sequence.id).map_or(0, |s| s.len() as i64);
    Ok(web::Json(report(&state.db, &sequence, count).await?))
}
