//! Operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve: database
//! reachable and fully migrated). `/metrics` is in [`super::scrape`].

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorCode};
use crate::db::migrate;

/// Body of a healthy `/healthz` or a ready `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Daemon version.
    pub version: &'static str,
    /// Backend in use (`sqlite` or `postgres`); only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// Migrations applied; only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<usize>,
}

/// Liveness: answers 200 as long as the HTTP server runs.
#[utoipa::path(tag = "ops", responses((status = 200, body = HealthBody)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<HealthBody> {
    web::Json(HealthBody {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: None,
        migrations: None,
    })
}

/// Readiness: 200 when the database answers, every embedded migration is applied and the node
/// is not draining; 503 with the reason otherwise (load balancers stop routing here).
#[utoipa::path(tag = "ops", responses(
    (status = 200, body = HealthBody),
    (status = 503, body = crate::web::ErrorBody)
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<HealthBody>, ApiError> {
    if state.fleet.is_draining() {
        return Err(ApiError::new(
            ErrorCode::NotReady,
            "this node is draining; restart devices through the admin API to resume",
        ));
    }
    let applied = migrate::applied_versions(&state.db)
        .await
        .map_err(|e| ApiError::new(ErrorCode::NotReady, format!("database unreachable: {e}")))?;
    let expected = migrate::embedded_versions(matches!(state.db, crate::db::Db::Postgres(_)))
        .map_err(ApiError::internal)?;
    let pending: Vec<&String> = expected.iter().filter(|v| !applied.contains(v)).collect();
    if !pending.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotReady,
            format!(
                "{} migration(s) pending, first {}",
                pending.len(),
                pending[0]
            ),
        ));
    }
    Ok(web::Json(HealthBody {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(state.db.backend_name()),
        migrations: Some(applied.len()),
    }))
}
