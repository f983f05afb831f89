//! HTTP: the actix-web application, its shared state and its routes by feature.
//!
//! - [`auth`]: the `Auth<R>` extractor, the authentication middleware and the CSRF checks.
//! - [`error`]: [`ApiError`] and [`ErrorCode`] (one status per code) with a `From` impl per
//!   domain error.
//! - [`audit`]: the `Audit` extractor, one line per audited action.
//! - [`input`], [`access`], [`views`]: what routes share: input checks, device visibility,
//!   output shapes. Route files import these, never each other.
//! - [`actions`]: what a caller can do, written once for the REST routes and the MCP tools.
//! - [`routes`]: one file per feature; [`mcp`]: the MCP server at `/mcp` (its own protocol, so
//!   outside the OpenAPI document); [`ws`]: the real-time stream; [`health`], [`observe`],
//!   [`assets`]: probes, request logging, the dashboard's files; [`scrape`]: `/metrics`;
//!   [`headers`]: the security headers of every answer and the safe serving of media.
//!
//! Every route under `/api/v1` is registered through `utoipa_actix_web`, which only accepts
//! handlers carrying `#[utoipa::path]`; the OpenAPI document at `/api/v1/openapi.json` is thus
//! generated from the same definitions that route requests and cannot drift from them.

pub mod access;
pub mod actions;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod error;
pub mod forward;
pub mod headers;
pub mod health;
pub mod input;
pub mod mcp;
pub mod observe;
pub mod routes;
pub mod scrape;
pub mod views;
pub mod ws;

use std::sync::{Arc, OnceLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App, HttpResponse};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

pub use error::{ApiError, ErrorBody, ErrorCode};

use crate::auth::AuthService;
use crate::config::Settings;
use crate::db::Db;
use crate::device::Fleet;
use crate::metrics::Metrics;

/// What every handler can reach, shared by all workers.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The loaded settings.
    pub settings: Arc<Settings>,
    /// Prometheus collectors.
    pub metrics: Metrics,
    /// Password hashing and login throttling.
    pub auth: AuthService,
    /// The device fleet.
    pub fleet: Fleet,
    /// Which node runs which device (several daemons on PostgreSQL).
    pub cluster: crate::cluster::Cluster,
    /// The real-time hub.
    pub hub: actix::Addr<crate::hub::Hub>,
    /// Hub and WebSocket metrics.
    pub hub_metrics: crate::hub::HubMetrics,
    /// The campaign engine.
    pub campaigns: actix::Addr<crate::broadcast::campaign::engine::CampaignEngine>,
    /// The sequence engine.
    pub sequences: actix::Addr<crate::broadcast::sequence::engine::SequenceEngine>,
    /// The chat mirror's zone cache: told when a tenant's time zone changes.
    pub chat_zones: actix::Recipient<crate::chat::messages::TenantZoneChanged>,
    /// The outbound webhook dispatcher.
    pub webhooks: actix::Addr<crate::webhooks::Dispatcher>,
    /// The clock sequences are scheduled on (tests move it).
    pub clock: crate::clock::Clock,
    /// The OpenAPI document, serialised once by the first worker that builds the app.
    pub openapi_json: OnceLock<String>,
    /// Set once the daemon is stopping: every WebSocket session closes with 1001 (going away).
    pub going_away: tokio::sync::watch::Sender<bool>,
}

/// The top of the OpenAPI document; paths are added by the route registrations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wafleet",
        description = "WhatsApp fleet daemon: devices, chats, campaigns and real-time events.\n\n\
            Authenticate with an API token (`Authorization: Bearer wfl_…`, made under `tokens`) or \
            with the session cookie `POST /api/v1/auth/login` sets; writes made with the cookie \
            also send `X-CSRF-Token`. Errors are `{\"error\":{\"code\",\"message\"}}`."
    ),
    // One entry per `tag = "…"` of the route files, in the order a reader meets them; a test
    // fails on an operation whose tag is not described here.
    tags(
        (name = "auth", description = "Sign in and out, sign up, the signed-in user (`/me`) and \
            their password. A session is a cookie; writes made with it send `X-CSRF-Token`."),
        (name = "stats", description = "The home page's figures: messages sent, delivered, read, \
            replied and failed today or in 7 or 30 days in the tenant's zone, per hour or day and \
            per device, with charts as SVG images. Members see their devices' figures only."),
        (name = "devices", description = "The WhatsApp accounts of the fleet: create, pair by QR \
            code or pairing code, rename, reconnect, log out, delete."),
        (name = "chats", description = "Each device's chats and groups, message history and \
            media, read marks, and sending texts, places and files."),
        (name = "leads", description = "Lead lists and leads: create, edit, search, CSV import."),
        (name = "opt-outs", description = "Phone numbers that asked for no more messages; \
            campaigns and sequences skip them."),
        (name = "campaigns", description = "Broadcasts and AI lead distribution: draft, schedule, \
            start, pause, resume, cancel, progress and per-message status."),
        (name = "sequences", description = "Drip sequences: timed steps per lead, enrolments, \
            pause and resume, and the funnel report."),
        (name = "settings", description = "The tenant (name, time zone), its broadcast settings \
            (pacing within the configured safe bounds) and the daemon's data retention."),
        (name = "webhooks", description = "Signed webhooks both ways: the inbound lead webhook \
            with the tenant's signing secret, and outbound endpoints (events, test, delivery log, \
            replay); see docs/webhooks.md."),
        (name = "realtime", description = "The WebSocket of live events (device status, messages \
            and receipts, campaign and import progress); protocol in docs/websocket.md."),
        (name = "team", description = "Users of the tenant, their roles and the devices assigned \
            to them (owners and admins)."),
        (name = "tokens", description = "API tokens with `read`, `write` or `admin` scopes, \
            created from a signed-in session and shown once."),
        (name = "admin", description = "Platform administration across tenants: device restarts, \
            supervision state, draining a node."),
        (name = "ops", description = "Probes and metrics for orchestrators and Prometheus."),
        (name = "simulator", description = "The simulated WhatsApp network (the `sim` connector \
            only): scan a QR code, inject inbound messages and faults, read counters.")
    ),
    components(schemas(
        ErrorBody,
        error::ErrorDetail,
        ErrorCode,
        routes::campaigns::ControlAction
    ))
)]
struct ApiDoc;

/// Builds the actix-web application for one worker.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, openapi) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(state.clone())
        .app_data(json_config())
        .app_data(query_config())
        .app_data(path_config())
        .service(health::healthz)
        .service(health::readyz)
        .service(scrape::metrics)
        // Before the scope, which would otherwise answer this path with its own 404.
        .route("/api/v1/openapi.json", web::get().to(openapi_document))
        .service(utoipa_actix_web::scope("/api/v1").configure(routes::configure))
        .split_for_parts();
    if state.openapi_json.get().is_none() {
        let mut openapi = openapi;
        describe_security(
            &mut openapi,
            auth::cookie_name(state.settings.auth.secure_cookies),
        );
        let json = openapi.to_json().unwrap_or_else(|_| "{}".into());
        let _ = state.openapi_json.set(json);
    }
    app.service(mcp::resource())
        .service(assets::index)
        .service(assets::whatsapp_web)
        .service(assets::device_page)
        .service(assets::team)
        .service(assets::settings)
        .service(assets::profile)
        .service(assets::api_docs)
        .service(assets::asset)
        .default_service(web::to(not_found))
        // Inside authentication: only a resolved caller's device commands are forwarded.
        .wrap(middleware::from_fn(forward::forward_device_commands))
        .wrap(middleware::from_fn(auth::authenticate_requests))
        .wrap(middleware::from_fn(headers::security_headers))
        .wrap(middleware::Compress::default())
        .wrap(middleware::from_fn(observe::observe))
}

/// Paths that take no credential (the lead webhook is signed with its own secret instead).
const PUBLIC_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/api/v1/auth/login",
    "/api/v1/auth/signup",
    "/api/v1/webhooks/leads",
];

/// Client errors any operation may answer (bad JSON or query, no or weak credentials, an id
/// that is not the caller's, a conflict, an oversize or mistyped body, a refused value, too many
/// requests), added to each operation that does not describe them itself.
const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "the request is malformed"),
    ("401", "no valid credential"),
    ("403", "the credential may not do this"),
    ("404", "no such object for this caller"),
    ("409", "conflicts with the current state"),
    ("413", "the body is too large"),
    ("415", "the body has an unsupported type"),
    ("422", "a value is refused"),
    ("429", "too many requests; see Retry-After"),
];

/// Declares how to authenticate: an API token as `Authorization: Bearer`, or the session
/// cookie (with `X-CSRF-Token` on writes). Every operation needs one except [`PUBLIC_PATHS`].
/// Also lists the [`COMMON_ERRORS`] on every operation, so clients (and schema-driven testers)
/// know every status a call can answer.
fn describe_security(openapi: &mut utoipa::openapi::OpenApi, cookie: &str) {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Content, Ref, ResponseBuilder};
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            cookie,
            "the cookie POST /api/v1/auth/login sets; writes also send X-CSRF-Token",
        ))),
    );
    openapi.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    for (path, item) in openapi.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if public {
                operation.security = Some(Vec::new());
            }
            let responses = &mut operation.responses.responses;
            for (status, description) in COMMON_ERRORS {
                if !responses.contains_key(*status) {
                    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
                    let response = ResponseBuilder::new()
                        .description(*description)
                        .content("application/json", body)
                        .build();
                    responses.insert((*status).to_string(), response.into());
                }
            }
        }
    }
}

/// The OpenAPI document of every route under `/api/v1`.
async fn openapi_document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.get().cloned().unwrap_or_default())
}

/// Any path no route matches.
async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("route"))
}

/// Malformed JSON bodies answer 400 `invalid_json` with the parser's message.
fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1 << 20)
        .error_handler(|err, _| ApiError::new(ErrorCode::InvalidJson, err.to_string()).into())
}

/// Malformed query strings answer 400 `invalid_query`.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::new(ErrorCode::InvalidQuery, err.to_string()).into())
}

/// Malformed path parameters (e.g. a non-numeric id) answer 404, as an unknown id would.
fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::not_found("object").into())
}
