//! The simulator's controls, present only when the simulated connector runs: scan a QR code as
//! a phone would, read the network's counters, inject faults for drills, make a contact write.

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::device::messages::InjectPanic;
use crate::web::access::visible_device;
use crate::web::auth::{require, Auth};
use crate::web::input::check_message_text;
use crate::web::{ApiError, AppState, ErrorCode};
use crate::whatsapp::sim::{Addressing, Fault, SimChange, SimInbound, SimNetwork, SimStats};
use crate::whatsapp::{Change, MessageKind};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(scan)
        .service(stats)
        .service(fault)
        .service(inbound);
}

/// Body of `POST /sim/scan`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScanRequest {
    /// The device whose QR code (or pairing code) the simulated phone completes.
    pub device_id: i64,
}

/// Body of `POST /sim/inbound`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// The device the contact writes to.
    pub device_id: i64,
    /// The contact's phone, international digits with or without `+`.
    pub from: String,
    /// What they write: the text, or the caption of an image or document (may be empty then).
    #[serde(default)]
    pub text: String,
    /// What they send (default `text`): any kind, with real bytes.
    #[serde(default)]
    pub kind: MessageKind,
    /// How WhatsApp names the sender: `phone`, `lid` (phone as alternate sender) or
    /// `lid_hidden`; default: as the simulator addresses that contact.
    #[serde(default)]
    pub addressing: Option<Addressing>,
    /// One of the device's simulated groups (`GET /devices/{id}/groups`) to write in instead
    /// of the contact's own chat.
    #[serde(default)]
    pub group: Option<String>,
    /// The id of a message the contact replies to (quotes).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Instead of a message, a change to the message `target`: `{"reaction":{"emoji":"👍"}}`
    /// (empty emoji: reaction taken back), `{"edit":{"text":"…"}}` or `"revoke"`.
    #[serde(default)]
    pub change: Option<Change>,
    /// The id of the message `change` applies to.
    #[serde(default)]
    pub target: Option<String>,
}

/// Body of `POST /sim/fault`: a network fault, or `{"kind":"panic"}` to crash the device actor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FaultRequest {
    /// The device.
    pub device_id: i64,
    /// What to inject.
    pub fault: FaultKind,
}

/// A simulator fault, or a crash of the device's actor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FaultKind {
    /// Crash the device actor (`{"kind":"panic"}`).
    Panic(PanicFault),
    /// A network fault (`{"kind":"disconnect"}`, `{"kind":"latency","ms":250}`, …).
    Network(Fault),
}

/// `{"kind":"panic"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PanicFault {
    /// Always `panic`.
    pub kind: PanicTag,
}

/// The tag of a panic fault.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PanicTag {
    /// Crash the actor.
    Panic,
}

/// The simulated network, or 404 when the daemon runs the real connector or reaches the
/// simulator in another process (`[sim] remote`; its own control connection serves it then).
fn network(state: &AppState) -> Result<&SimNetwork, ApiError> {
    state.fleet.sim.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::SimulatorOff,
            "the simulator does not run in this process",
        )
    })
}

/// Completes the pending pairing of a device as a phone scanning its QR code would.
#[utoipa::path(tag = "simulator", request_body = ScanRequest, responses(
    (status = 200, description = "paired; body has the new JID"),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/sim/scan")]
pub async fn scan(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    body: web::Json<ScanRequest>,
) -> Result<HttpResponse, ApiError> {
    let sim = network(&state)?;
    let device = visible_device(&state, &caller, body.device_id).await?;
    let jid = sim.scan(device.id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "device_id": device.id, "jid": jid })))
}

/// The simulated network's counters: delivered, duplicates, pacing violations, …
#[utoipa::path(tag = "simulator", responses((status = 200, body = SimStats)))]
#[get("/sim/stats")]
pub async fn stats(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
) -> Result<web::Json<SimStats>, ApiError> {
    Ok(web::Json(network(&state)?.stats()))
}

/// Injects a fault into a device's simulated connection, or crashes its actor.
#[utoipa::path(tag = "simulator", request_body = FaultRequest, responses(
    (status = 204),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/sim/fault")]
pub async fn fault(
    state: web::Data<AppState>,
    caller: Auth<require::Admin>,
    body: web::Json<FaultRequest>,
) -> Result<HttpResponse, ApiError> {
    let sim = network(&state)?;
    let device = visible_device(&state, &caller, body.device_id).await?;
    match &body.fault {
        FaultKind::Panic(_) => {
            let addr =
                state.fleet.actor(device.id).await.ok_or_else(|| {
                    ApiError::new(ErrorCode::DeviceNotRunning, "no actor to crash")
                })?;
            addr.do_send(InjectPanic);
        }
        FaultKind::Network(fault) => sim.inject(device.id, *fault).await?,
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Makes a simulated contact write to a device: text or any kind WhatsApp carries (with real
/// bytes), in their chat or one of the device's groups, perhaps quoting a message;
/// or react to, edit or delete an earlier message. Addressed by phone, by LID with the phone
/// as alternate sender, or by LID alone (demos and checks).
#[utoipa::path(tag = "simulator", request_body = InboundRequest, responses(
    (status = 200, description = "delivered; body has the message id"),
    (status = 409, body = crate::web::ErrorBody),
    (status = 422, body = crate::web::ErrorBody)
))]
#[post("/sim/inbound")]
pub async fn inbound(
    state: web::Data<AppState>,
    caller: Auth<require::Admin>,
    body: web::Json<InboundRequest>,
) -> Result<HttpResponse, ApiError> {
    let sim = network(&state)?;
    let device = visible_device(&state, &caller, body.device_id).await?;
    let InboundRequest {
        from,
        text,
        kind,
        addressing,
        group,
        reply_to,
        change,
        target,
        ..
    } = body.into_inner();
    let change = match (change, target) {
        (None, None) => {
            check_message_text(Some(&text), kind == MessageKind::Text)?;
            None
        }
        (Some(change), Some(target)) if !target.trim().is_empty() => {
            if let Change::Edit { text } = &change {
                check_message_text(Some(text), true)?;
            }
            Some(SimChange { target, change })
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "change and target go together: target names the message the change applies to",
            ))
        }
    };
    let message = SimInbound {
        from,
        text,
        kind,
        addressing,
        group,
        reply_to,
        change,
    };
    let id = sim.deliver(device.id, &message).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "device_id": device.id, "id": id })))
}
