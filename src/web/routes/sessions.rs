//! The caller's own browser sessions: list them (the current one marked) and sign one out.
//!
//! A session is shown by its row id, times, address and browser; its cookie digest and CSRF
//! token never leave the server.

use actix_web::{delete, get, web, HttpResponse};
use chrono::{Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::model::Session;
use crate::auth::{store, Credential};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_sessions).service(revoke_session);
}

/// One of the caller's sessions as listed (never its secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// Id, for `DELETE /me/sessions/{id}`.
    pub id: i64,
    /// Sign-in time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last request (kept to the minute).
    pub last_seen_at: chrono::DateTime<Utc>,
    /// When it ends at the latest.
    pub expires_at: chrono::DateTime<Utc>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Browser at sign-in.
    pub user_agent: Option<String>,
    /// The session this request was made with.
    pub current: bool,
}

impl SessionInfo {
    /// The listed form of `session`; `current` is the caller's own session id, if any.
    fn of(session: &Session, current: Option<i64>) -> Self {
        Self {
            id: session.id,
            created_at: utc(session.created_at),
            last_seen_at: utc(session.last_seen_at),
            expires_at: utc(session.expires_at),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            current: current == Some(session.id),
        }
    }
}

/// The caller's live browser sessions, most recently used first; the one making this request
/// has `current: true` (an API token has none).
#[utoipa::path(tag = "auth", responses((status = 200, body = [SessionInfo])))]
#[get("/me/sessions")]
pub async fn list_sessions(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<Vec<SessionInfo>>, ApiError> {
    let now = Utc::now().naive_utc();
    let idle = Duration::minutes(state.settings.auth.session_idle_minutes as i64);
    let sessions = store::list_user_sessions(&state.db, caller.user.id, now, now - idle).await?;
    let current = match caller.credential {
        Credential::Session { session_id, .. } => Some(session_id),
        Credential::Token { .. } => None,
    };
    Ok(web::Json(
        sessions
            .iter()
            .map(|s| SessionInfo::of(s, current))
            .collect(),
    ))
}

/// Signs one of the caller's sessions out (its next request is 401). Ending the current one
/// signs this browser out. Only from a browser session; another user's session id is 404.
#[utoipa::path(tag = "auth", params(("id" = i64, Path, description = "session id")), responses(
    (status = 204),
    (status = 403, body = crate::web::ErrorBody),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/me/sessions/{id}")]
pub async fn revoke_session(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    if caller.is_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "API tokens cannot end sessions; sign in",
        ));
    }
    store::delete_user_session(&state.db, caller.user.id, *id).await?;
    state.auth.changes.user_changed(caller.user.id);
    audit
        .record("auth.session_revoke", Target::User(caller.user.id))
        .detail(serde_json::json!({ "session_id": *id }))
        .await;
    Ok(HttpResponse::NoContent().finish())
}
