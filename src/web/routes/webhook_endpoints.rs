//! Outbound webhooks for owners: endpoints (CRUD, secret rotation, a test event) and the
//! delivery log (filters, replay). The dispatcher and the queue live in [`crate::webhooks`];
//! this file validates input, maps errors and writes the audit log. Secrets are shown once,
//! when made, and never logged.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::webhook::new_secret;
use crate::device::store as device_store;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::views::{keyset_page, utc};
use crate::web::{ApiError, AppState, ErrorCode};
use crate::webhooks::events::EventType;
use crate::webhooks::guard;
use crate::webhooks::messages::{ReloadEndpoints, SendTest, Wake};
use crate::webhooks::model::{Delivery, DeliveryStatus, Endpoint, EndpointFields};
use crate::webhooks::store::{self, LogFilter};

/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// Most devices an endpoint may be limited to.
const MAX_DEVICES: usize = 1_000;
/// Highest concurrency and rate an endpoint may ask for.
const MAX_CONCURRENCY: i64 = 64;
const MAX_RATE: i64 = 1_000;
/// Largest page of the delivery log.
const MAX_LIMIT: i64 = 200;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_event_types)
        .service(list_endpoints)
        .service(create_endpoint)
        .service(get_endpoint)
        .service(update_endpoint)
        .service(delete_endpoint)
        .service(rotate_endpoint_secret)
        .service(send_test_event)
        .service(list_deliveries)
        .service(get_delivery)
        .service(replay_delivery);
}

/// An event type receivers can subscribe to.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    /// Wire name, e.g. `message.received`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it means.
    pub meaning: &'static str,
}

/// An endpoint as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// Id.
    pub id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Event types delivered; empty = every type.
    pub events: Vec<String>,
    /// Devices whose events are delivered; empty = every device (events of no device, such as
    /// campaign progress, go to every endpoint whose device list is empty).
    pub device_ids: Vec<i64>,
    /// Deliveries are made only while active.
    pub active: bool,
    /// Deliveries in flight at most.
    pub max_concurrency: i64,
    /// Deliveries started per second at most.
    pub rate_per_second: i64,
    /// Since when every attempt failed, if they do.
    pub failing_since: Option<chrono::DateTime<Utc>>,
    /// Why the daemon switched it off (410 Gone, failing too long).
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<Utc>,
    /// Last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url.clone(),
            description: e.description.clone(),
            events: e
                .event_types()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            device_ids: e.devices(),
            active: e.active,
            max_concurrency: e.max_concurrency,
            rate_per_second: e.rate_per_second,
            failing_since: e.failing_since.map(utc),
            disabled_reason: e.disabled_reason.clone(),
            created_at: utc(e.created_at),
            updated_at: utc(e.updated_at),
        }
    }
}

/// Answer of a create or a rotation: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: EndpointView,
    /// The signing secret (HMAC-SHA256 key: these 64 characters as text).
    pub secret: String,
}

/// Body of `POST /webhooks/endpoints`; `PATCH` takes the same fields, each optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// `http://` or `https://` URL; no private, loopback or link-local target unless the server
    /// allows them.
    pub url: Option<String>,
    /// Free text (at most 200 characters).
    pub description: Option<String>,
    /// Event types to deliver (see `GET /webhooks/event-types`); empty or absent = all.
    pub events: Option<Vec<String>>,
    /// Only events of these devices; empty or absent = all.
    pub device_ids: Option<Vec<i64>>,
    /// Default true.
    pub active: Option<bool>,
    /// Deliveries in flight at most (1–64; default from the server's settings).
    pub max_concurrency: Option<i64>,
    /// Deliveries started per second at most (1–1000; default from the server's settings).
    pub rate_per_second: Option<i64>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidWebhook, message)
}

/// Checks a request on top of `base` (the stored endpoint, or the defaults) and answers the
/// fields to store.
async fn validate(
    state: &AppState,
    tenant_id: i64,
    body: &EndpointRequest,
    base: EndpointFields,
) -> Result<EndpointFields, ApiError> {
    let settings = &state.settings.webhooks;
    let url = match &body.url {
        Some(raw) => guard::check_url(raw, settings.allow_private_targets)
            .map_err(|e| invalid(e.to_string()))?
            .to_string(),
        None => base.url,
    };
    if url.is_empty() {
        return Err(invalid("url: required"));
    }
    let description = match &body.description {
        Some(text) if text.trim().chars().count() > MAX_DESCRIPTION_CHARS => {
            return Err(invalid(format!(
                "description: must be at most {MAX_DESCRIPTION_CHARS} characters"
            )))
        }
        Some(text) => text.trim().to_string(),
        None => base.description,
    };
    let events = match &body.events {
        Some(names) => {
            let mut kinds = Vec::new();
            for name in names {
                match EventType::parse(name.trim()) {
                    Some(EventType::Test) | None => {
                        return Err(invalid(format!(
                        "events: unknown event type {name:?}; see GET /api/v1/webhooks/event-types"
                    )))
                    }
                    Some(kind) => kinds.push(kind),
                }
            }
            kinds.sort();
            kinds.dedup();
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
        None => base.events,
    };
    let device_ids = match &body.device_ids {
        Some(ids) => {
            if ids.len() > MAX_DEVICES {
                return Err(invalid(format!(
                    "device_ids: at most {MAX_DEVICES} devices"
                )));
            }
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            for id in &ids {
                device_store::get_device(&state.db, tenant_id, *id)
                    .await
                    .map_err(|_| invalid(format!("device_ids: no device {id}")))?;
            }
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        }
        None => base.device_ids,
    };
    let max_concurrency = body.max_concurrency.unwrap_or(base.max_concurrency);
    if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
        return Err(invalid(format!(
            "max_concurrency: must be 1 to {MAX_CONCURRENCY}"
        )));
    }
    let rate_per_second = body.rate_per_second.unwrap_or(base.rate_per_second);
    if !(1..=MAX_RATE).contains(&rate_per_second) {
        return Err(invalid(format!("rate_per_second: must be 1 to {MAX_RATE}")));
    }
    Ok(EndpointFields {
        url,
        description,
        events,
        device_ids,
        active: body.active.unwrap_or(base.active),
        max_concurrency,
        rate_per_second,
    })
}

/// The fields of a stored endpoint.
fn fields_of(e: &Endpoint) -> EndpointFields {
    EndpointFields {
        url: e.url.clone(),
        description: e.description.clone(),
        events: e.events.clone(),
        device_ids: e.device_ids.clone(),
        active: e.active,
        max_concurrency: e.max_concurrency,
        rate_per_second: e.rate_per_second,
    }
}

/// Every event type an endpoint can subscribe to, with what it means.
#[utoipa::path(tag = "webhooks", responses((status = 200, body = Vec<EventTypeView>)))]
#[get("/webhooks/event-types")]
pub async fn list_event_types(_caller: Auth<require::Owner>) -> web::Json<Vec<EventTypeView>> {
    web::Json(
        EventType::ALL
            .iter()
            .filter(|t| **t != EventType::Test)
            .map(|t| EventTypeView {
                kind: t.as_str(),
                meaning: t.meaning(),
            })
            .collect(),
    )
}

/// The tenant's outbound webhook endpoints.
#[utoipa::path(tag = "webhooks", responses((status = 200, body = Vec<EndpointView>)))]
#[get("/webhooks/endpoints")]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
) -> Result<web::Json<Vec<EndpointView>>, ApiError> {
    let endpoints = store::list_endpoints(&state.db, caller.tenant_id).await?;
    Ok(web::Json(
        endpoints.iter().map(EndpointView::from).collect(),
    ))
}

/// Registers an endpoint; answers it with its signing secret, shown this once.
#[utoipa::path(tag = "webhooks", request_body = EndpointRequest, responses(
    (status = 201, body = EndpointWithSecret),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/webhooks/endpoints")]
pub async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<EndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.webhooks;
    let count = store::count_endpoints(&state.db, caller.tenant_id).await?;
    if count >= i64::from(settings.max_endpoints_per_tenant) {
        return Err(invalid(format!(
            "a tenant may have at most {} endpoints",
            settings.max_endpoints_per_tenant
        )));
    }
    let defaults = EndpointFields {
        url: String::new(),
        description: String::new(),
        events: String::new(),
        device_ids: String::new(),
        active: true,
        max_concurrency: i64::from(settings.default_concurrency),
        rate_per_second: i64::from(settings.default_rate_per_second),
    };
    let fields = validate(&state, caller.tenant_id, &body, defaults).await?;
    let secret = new_secret();
    let now = Utc::now().naive_utc();
    let endpoint =
        store::insert_endpoint(&state.db, caller.tenant_id, &fields, &secret, now).await?;
    state.webhooks.do_send(ReloadEndpoints);
    audit
        .record(
            "webhook.endpoint.create",
            Target::WebhookEndpoint(endpoint.id),
        )
        .detail(serde_json::json!({ "url": endpoint.url }))
        .await;
    Ok(HttpResponse::Created().json(EndpointWithSecret {
        endpoint: EndpointView::from(&endpoint),
        secret,
    }))
}

/// One endpoint.
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "endpoint id")), responses(
    (status = 200, body = EndpointView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/webhooks/endpoints/{id}")]
pub async fn get_endpoint(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
) -> Result<web::Json<EndpointView>, ApiError> {
    let endpoint = store::get_endpoint(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(EndpointView::from(&endpoint)))
}

/// Changes an endpoint (only the fields given). Switching a disabled endpoint on clears why it
/// was switched off; its waiting deliveries go out again.
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "endpoint id")), request_body = EndpointRequest, responses(
    (status = 200, body = EndpointView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[patch("/webhooks/endpoints/{id}")]
pub async fn update_endpoint(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<EndpointRequest>,
) -> Result<web::Json<EndpointView>, ApiError> {
    let stored = store::get_endpoint(&state.db, caller.tenant_id, *id).await?;
    let fields = validate(&state, caller.tenant_id, &body, fields_of(&stored)).await?;
    let now = Utc::now().naive_utc();
    let endpoint = store::update_endpoint(&state.db, caller.tenant_id, *id, &fields, now).await?;
    state.webhooks.do_send(ReloadEndpoints);
    audit
        .record(
            "webhook.endpoint.update",
            Target::WebhookEndpoint(endpoint.id),
        )
        .detail(serde_json::json!({ "url": endpoint.url, "active": endpoint.active }))
        .await;
    Ok(web::Json(EndpointView::from(&endpoint)))
}

/// Deletes an endpoint with its delivery log; nothing more is sent to it.
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "endpoint id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/webhooks/endpoints/{id}")]
pub async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    store::delete_endpoint(&state.db, caller.tenant_id, *id).await?;
    state.webhooks.do_send(ReloadEndpoints);
    audit
        .record("webhook.endpoint.delete", Target::WebhookEndpoint(*id))
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives an endpoint a new signing secret, shown this once; the previous one stops at once
/// (deliveries already signed keep their signature).
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "endpoint id")), responses(
    (status = 201, body = EndpointWithSecret),
    (status = 404, body = crate::web::ErrorBody)
))]
#[post("/webhooks/endpoints/{id}/secret")]
pub async fn rotate_endpoint_secret(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let secret = new_secret();
    let now = Utc::now().naive_utc();
    let endpoint = store::set_secret(&state.db, caller.tenant_id, *id, &secret, now).await?;
    state.webhooks.do_send(ReloadEndpoints);
    audit
        .record(
            "webhook.endpoint.secret.rotate",
            Target::WebhookEndpoint(endpoint.id),
        )
        .await;
    Ok(HttpResponse::Created().json(EndpointWithSecret {
        endpoint: EndpointView::from(&endpoint),
        secret,
    }))
}

/// Answer of `POST /webhooks/endpoints/{id}/test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// The delivery to watch in the log.
    pub delivery_id: i64,
}

/// Queues a `webhook.test` event for this endpoint only (whatever its filters; it must be
/// active to be sent).
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "endpoint id")), responses(
    (status = 202, body = TestQueued),
    (status = 404, body = crate::web::ErrorBody)
))]
#[post("/webhooks/endpoints/{id}/test")]
pub async fn send_test_event(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let delivery_id = state
        .webhooks
        .send(SendTest {
            tenant_id: caller.tenant_id,
            endpoint_id: *id,
        })
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::Internal,
                "the webhook dispatcher is restarting; try again",
            )
        })??;
    Ok(HttpResponse::Accepted().json(TestQueued { delivery_id }))
}

/// A delivery in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Id (also the `X-Wafleet-Delivery` header).
    pub id: i64,
    /// Endpoint.
    pub endpoint_id: i64,
    /// Event id (the body's `id`; the same across endpoints and retries).
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// `pending`, `delivering`, `delivered` or `dead` (given up).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending).
    pub next_attempt_at: chrono::DateTime<Utc>,
    /// Queued (or replayed).
    pub created_at: chrono::DateTime<Utc>,
    /// Delivered.
    pub delivered_at: Option<chrono::DateTime<Utc>>,
    /// The last attempt's HTTP status.
    pub response_status: Option<i64>,
    /// The start of the last answer's body (at most 1 KiB).
    pub response_body: Option<String>,
    /// The last attempt's time, in milliseconds.
    pub latency_ms: Option<i64>,
    /// What went wrong in the last attempt.
    pub error: Option<String>,
    /// The body sent (`GET /webhooks/deliveries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

impl DeliveryView {
    fn of(d: &Delivery, with_payload: bool) -> Self {
        Self {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            next_attempt_at: utc(d.next_attempt_at),
            created_at: utc(d.created_at),
            delivered_at: d.delivered_at.map(utc),
            response_status: d.response_status,
            response_body: d.response_body.clone(),
            latency_ms: d.latency_ms,
            error: d.error.clone(),
            payload: with_payload.then(|| serde_json::from_str(&d.payload).unwrap_or_default()),
        }
    }
}

/// Query of `GET /webhooks/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// One endpoint.
    pub endpoint_id: Option<i64>,
    /// `pending`, `delivering`, `delivered` or `dead`.
    pub status: Option<String>,
    /// One event type.
    pub event_type: Option<String>,
    /// One event id.
    pub event_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Entries per page (1–200, default 50).
    pub limit: Option<i64>,
}

/// A page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The entries.
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// The delivery log, newest first, filtered by endpoint, status, event type or event id.
#[utoipa::path(tag = "webhooks", params(DeliveryQuery), responses(
    (status = 200, body = DeliveryPage),
    (status = 400, body = crate::web::ErrorBody)
))]
#[get("/webhooks/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    query: web::Query<DeliveryQuery>,
) -> Result<web::Json<DeliveryPage>, ApiError> {
    let status = match query.status.as_deref() {
        Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "status must be pending, delivering, delivered or dead",
            )
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let filter = LogFilter {
        endpoint_id: query.endpoint_id,
        status,
        event_type: query.event_type.clone(),
        event_id: query.event_id.clone(),
        before: query.cursor,
    };
    let rows = store::list_deliveries(&state.db, caller.tenant_id, &filter, limit + 1).await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |d| d.id);
    Ok(web::Json(DeliveryPage {
        items: rows.iter().map(|d| DeliveryView::of(d, false)).collect(),
        next_cursor,
    }))
}

/// One delivery, with the body sent.
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "delivery id")), responses(
    (status = 200, body = DeliveryView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/webhooks/deliveries/{id}")]
pub async fn get_delivery(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
) -> Result<web::Json<DeliveryView>, ApiError> {
    let delivery = store::get_delivery(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(DeliveryView::of(&delivery, true)))
}

/// Sends a delivery again, now (same event id: receivers that have it dedupe it). 409 while it
/// is being sent.
#[utoipa::path(tag = "webhooks", params(("id" = i64, Path, description = "delivery id")), responses(
    (status = 202, body = DeliveryView),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/webhooks/deliveries/{id}/replay")]
pub async fn replay_delivery(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now().naive_utc();
    let delivery = store::replay(&state.db, caller.tenant_id, *id, now).await?;
    state.webhooks.do_send(Wake {
        endpoint_id: delivery.endpoint_id,
    });
    audit
        .record(
            "webhook.delivery.replay",
            Target::WebhookEndpoint(delivery.endpoint_id),
        )
        .detail(serde_json::json!({ "delivery_id": delivery.id, "event_id": delivery.event_id }))
        .await;
    Ok(HttpResponse::Accepted().json(DeliveryView::of(&delivery, false)))
}
