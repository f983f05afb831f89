//! `GET /api/v1/ws`: the real-time stream. Everything actix-web-actors specific lives in this
//! module, so moving to actix-ws later stays local.

pub mod access;
pub mod protocol;
pub mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, web, FromRequest, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use access::{Credentials, Secret};
use session::{Metered, SessionConfig, WsSession};

use crate::auth::Credential;
use crate::hub::messages::SessionLink;
use crate::web::auth::{authenticate, authorize, check_same_origin, cookie_name, require, Auth};
use crate::web::{ApiError, AppState, ErrorCode};

/// Session ids, unique per daemon.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Registers the route of this module.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(websocket);
}

/// Query of `GET /ws`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// An API token, for clients that cannot set headers on a WebSocket upgrade.
    pub token: Option<String>,
}

/// Upgrades to the WebSocket stream. Authenticated by the session cookie (same origin only),
/// `Authorization: Bearer`, or `?token=`; 401 before any upgrade otherwise. Protocol:
/// docs/websocket.md.
#[utoipa::path(tag = "realtime", params(WsQuery), responses(
    (status = 101, description = "switching to the WebSocket protocol"),
    (status = 401, body = crate::web::ErrorBody)
))]
#[get("/ws")]
pub async fn websocket(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<WsQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = match &query.token {
        Some(token) => authenticate(&req, Some(token.clone())).await?,
        None => {
            let caller = Auth::<require::Viewer>::extract(&req).await?.into_caller();
            if matches!(caller.credential, Credential::Session { .. }) {
                check_same_origin(&req)?;
            }
            caller
        }
    };
    authorize::<require::Viewer>(&caller)?;
    let secret = secret(&req, &state, query.into_inner().token, &caller)?;
    // Subscribed before the upgrade answers, so no change after it is missed.
    let changes = state.auth.changes.subscribe();
    let settings = &state.settings;
    let config = SessionConfig {
        hub: state.hub.clone(),
        db: state.db.clone(),
        metrics: state.hub_metrics.clone(),
        max_backlog: settings.ws.max_pending_kib.saturating_mul(1024),
        credentials: Credentials {
            secret,
            db: state.db.clone(),
            idle: chrono::Duration::minutes(settings.auth.session_idle_minutes as i64),
        },
        changes,
        recheck_every: Duration::from_secs(settings.ws.recheck_secs.max(1)),
        max_lifetime: Duration::from_secs(settings.ws.max_lifetime_secs.max(1)),
        going_away: state.going_away.subscribe(),
    };
    let link = Arc::new(SessionLink::default());
    let session = WsSession::new(
        NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        caller,
        link.clone(),
        config,
    );
    let mut response =
        ws::handshake(&req).map_err(|e| ApiError::new(ErrorCode::NotAWebsocket, e.to_string()))?;
    // The default codec caps client frames at 64 KiB.
    let stream = ws::WebsocketContext::create(session, payload);
    Ok(response.streaming(Metered::new(stream, link)))
}

/// The secret the caller authenticated with, in the order credentials are read: `?token=`, the
/// bearer header, then the session cookie.
fn secret(
    req: &HttpRequest,
    state: &AppState,
    query_token: Option<String>,
    caller: &crate::auth::Caller,
) -> Result<Secret, ApiError> {
    if let Some(token) = query_token {
        return Ok(Secret::Token(token));
    }
    let found = match caller.credential {
        Credential::Token { .. } => req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| Secret::Token(token.trim().to_string())),
        Credential::Session { .. } => req
            .cookie(cookie_name(state.settings.auth.secure_cookies))
            .map(|c| Secret::Cookie(c.value().to_string())),
    };
    found.ok_or_else(|| ApiError::internal("the credential of an authenticated caller is missing"))
}
