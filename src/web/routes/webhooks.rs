//! The inbound lead webhook: owners make (and rotate) the tenant's signing secret; other systems
//! then push leads with `POST /webhooks/leads`, signed with it, without a session.
//!
//! The checks and the lead upsert live in [`crate::broadcast::webhook`]; this file reads the raw
//! body (the signature covers its exact bytes), maps errors to responses, logs refusals (tenant
//! and peer address, never the secret or the signature) and writes the audit log.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::broadcast::events;
use crate::broadcast::settings;
use crate::broadcast::webhook::{
    self, WebhookError, WebhookLead, MAX_BODY_BYTES, SIGNATURE_HEADER, TENANT_HEADER,
    TIMESTAMP_HEADER,
};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::client_ip;
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_webhook_settings)
        .service(rotate_webhook_secret)
        .service(receive_lead);
}

/// Answer of `GET /settings/webhook`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSettingsView {
    /// The tenant has a signing secret (deliveries can be accepted).
    pub configured: bool,
    /// When the current secret was made.
    pub created_at: Option<chrono::DateTime<Utc>>,
    /// The value senders put in `X-Wafleet-Tenant`.
    pub tenant_id: i64,
}

/// Answer of `POST /settings/webhook/secret`: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    /// The new signing secret (the HMAC key, as these characters). The previous one no longer
    /// works.
    pub secret: String,
    /// The value senders put in `X-Wafleet-Tenant`.
    pub tenant_id: i64,
}

/// Answer of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookLeadResult {
    /// The lead written.
    pub lead_id: i64,
    /// Its list.
    pub list_id: i64,
    /// `true` when the lead is new to the list (201), `false` when it was updated (200).
    pub created: bool,
}

/// Whether the tenant has a signing secret, and since when. The secret itself is never shown
/// again after it was made.
#[utoipa::path(tag = "webhooks", responses((status = 200, body = WebhookSettingsView)))]
#[get("/settings/webhook")]
pub async fn get_webhook_settings(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
) -> Result<web::Json<WebhookSettingsView>, ApiError> {
    let secret = webhook::get_secret(&state.db, caller.tenant_id).await?;
    Ok(web::Json(WebhookSettingsView {
        configured: secret.is_some(),
        created_at: secret.map(|s| utc(s.created_at)),
        tenant_id: caller.tenant_id,
    }))
}

/// Makes a new signing secret for the tenant and shows it once; the previous secret stops
/// working at once.
#[utoipa::path(tag = "webhooks", responses((status = 201, body = WebhookSecretView)))]
#[post("/settings/webhook/secret")]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
) -> Result<HttpResponse, ApiError> {
    let row = webhook::rotate_secret(&state.db, caller.tenant_id).await?;
    tracing::info!(tenant_id = caller.tenant_id, "webhook secret rotated");
    audit
        .record("webhook.secret.rotate", Target::Tenant(caller.tenant_id))
        .await;
    Ok(HttpResponse::Created().json(WebhookSecretView {
        secret: row.secret.clone(),
        tenant_id: caller.tenant_id,
    }))
}

/// Receives a lead from another system. No session: the request is signed with the tenant's
/// secret (see `docs/webhooks.md`).
///
/// Headers: `X-Wafleet-Tenant` (tenant id), `X-Wafleet-Timestamp` (Unix seconds, within 300 s of
/// the server's clock) and `X-Wafleet-Signature: sha256=<hex HMAC-SHA256(secret,
/// "<timestamp>.<raw body>")>`. The lead goes to the list named `list` (default `Webhook`,
/// created when absent); a phone already in that list updates its lead (tags are added, fields
/// merged). 401 `bad_signature` / `stale_timestamp` / `replayed`; 422 `invalid_lead` naming the
/// field; 413 over 64 KiB.
#[utoipa::path(tag = "webhooks", request_body = WebhookLead, params(
    ("X-Wafleet-Tenant" = i64, Header, description = "the tenant id"),
    ("X-Wafleet-Timestamp" = i64, Header, description = "Unix seconds when the request was signed"),
    ("X-Wafleet-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>")
), responses(
    (status = 201, body = WebhookLeadResult, description = "a new lead"),
    (status = 200, body = WebhookLeadResult, description = "the lead with this phone in the list was updated"),
    (status = 401, body = crate::web::ErrorBody),
    (status = 413, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/webhooks/leads")]
pub async fn receive_lead(
    req: HttpRequest,
    state: web::Data<AppState>,
    audit: Audit,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload).await?;
    let tenant = header(&req, TENANT_HEADER).and_then(|t| t.trim().parse::<i64>().ok());
    // Refusals are logged (tenant and peer, never the secret or the signature); a database
    // failure is not a refusal and is logged as the error it is.
    let refused = |err: WebhookError| {
        let refusal = !matches!(err, WebhookError::Db(_));
        let error = ApiError::from(err);
        if refusal {
            tracing::warn!(
                tenant_id = ?tenant,
                peer = ?client_ip(&req),
                reason = error.code().as_str(),
                "webhook delivery refused"
            );
        }
        error
    };
    let (tenant_id, signature) = authenticate(&state, &req, tenant, &body)
        .await
        .map_err(refused)?;

    let lead = WebhookLead::parse(&body)?;
    let country = settings::effective(&state.db, &state.settings.broadcast, tenant_id)
        .await?
        .country;
    let phone = webhook::normalize_phone(&lead.phone, country)?;

    webhook::record_delivery(&state.db, tenant_id, &signature, Utc::now().naive_utc())
        .await
        .map_err(refused)?;
    let upserted = match webhook::upsert_lead(&state.db, tenant_id, &lead, &phone).await {
        Ok(upserted) => upserted,
        Err(err) => {
            // Nothing was written: let the sender retry the same request.
            if let Err(forget) = webhook::forget_delivery(&state.db, tenant_id, &signature).await {
                tracing::warn!(tenant_id, error = %forget, "cannot forget a failed webhook delivery");
            }
            return Err(err.into());
        }
    };
    let result = WebhookLeadResult {
        lead_id: upserted.lead.id,
        list_id: upserted.list.id,
        created: upserted.created,
    };
    tracing::info!(
        tenant_id,
        lead_id = result.lead_id,
        list_id = result.list_id,
        created = result.created,
        "webhook lead written"
    );
    if upserted.created {
        events::lead_created(&state.hub, &upserted.lead, "webhook");
        let detail = serde_json::json!({ "list_id": result.list_id, "list": upserted.list.name });
        audit
            .record("lead.create.webhook", Target::Lead(result.lead_id))
            .by(Some(tenant_id), None)
            .detail(detail)
            .await;
        Ok(HttpResponse::Created().json(result))
    } else {
        Ok(HttpResponse::Ok().json(result))
    }
}

/// The value of header `name` as text, if present and readable.
fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks tenant, signature and timestamp; returns the tenant id and the signature header.
///
/// A tenant that does not exist or has no secret is checked against a throwaway secret, so the
/// answer and its timing are those of a wrong signature.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    tenant: Option<i64>,
    body: &[u8],
) -> Result<(i64, String), WebhookError> {
    let (Some(tenant_id), Some(timestamp), Some(signature)) = (
        tenant,
        header(req, TIMESTAMP_HEADER),
        header(req, SIGNATURE_HEADER),
    ) else {
        return Err(WebhookError::BadSignature);
    };
    let secret = webhook::get_secret(&state.db, tenant_id).await?;
    let known = secret.is_some();
    let key = secret.map_or_else(webhook::new_secret, |s| s.secret);
    webhook::verify_signature(&key, timestamp, body, signature)?;
    if !known {
        return Err(WebhookError::BadSignature);
    }
    webhook::check_timestamp(timestamp, Utc::now())?;
    Ok((tenant_id, signature.to_string()))
}

/// The raw body, at most [`MAX_BODY_BYTES`] (413 `too_large` beyond).
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("the body must be at most {} KiB", MAX_BODY_BYTES / 1024),
        )
    };
    let declared = header(req, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::new(ErrorCode::InvalidBody, err.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
