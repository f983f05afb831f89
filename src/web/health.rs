//! Operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve: database
//! reachable and fully migrated, node not draining, every singleton actor up). `/metrics`
//! is in [`super::scrape`].
//!
//! `/readyz` reads the singletons' liveness from [`crate::metrics::Liveness`]: each actor raises
//! its beacon once it runs (with its state loaded) and lowers it when it stops, is restarted, or
//! (the chat mirror) cannot write; a beacon dropped by a dead actor reads as down. Flags, not
//! pings: a ping would wait behind a busy mailbox and call a healthy but loaded actor down. Its
//! answer names only checks and states (`up`, `down`, `pending`); failure details go to the log.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorDetail;
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
    /// Every check and its state; only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<&'static str, &'static str>>,
}

/// Body of a `/readyz` that is not ready (503).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyBody {
    /// Always `unavailable`.
    pub status: &'static str,
    /// Every check and its state (`up`, `down`, `pending`, `draining`), e.g. `database`,
    /// `migrations`, `node`, and one per singleton actor (`hub`, `chat_sync`, …).
    pub checks: BTreeMap<&'static str, &'static str>,
    /// `not_ready` and a short summary naming the failed checks.
    pub error: ErrorDetail,
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
        checks: None,
    })
}

/// Readiness: 200 when the database answers, every embedded migration is applied, the node is
/// not draining and every singleton actor is up; 503 naming the failed checks otherwise (load
/// balancers stop routing here).
#[utoipa::path(tag = "ops", responses(
    (status = 200, body = HealthBody),
    (status = 503, body = NotReadyBody)
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut checks = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    if state.fleet.is_draining() {
        checks.insert("node", "draining");
        problems
            .push("this node is draining; restart devices through the admin API to resume".into());
    }
    let applied = match migrate::applied_versions(&state.db).await {
        Ok(applied) => {
            checks.insert("database", "up");
            Some(applied)
        }
        Err(err) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            checks.insert("database", "down");
            problems.push("the database does not answer".into());
            None
        }
    };
    if let Some(applied) = &applied {
        let expected = migrate::embedded_versions(matches!(state.db, crate::db::Db::Postgres(_)))
            .map_err(ApiError::internal)?;
        let pending: Vec<&String> = expected.iter().filter(|v| !applied.contains(v)).collect();
        if let Some(first) = pending.first() {
            checks.insert("migrations", "pending");
            problems.push(format!(
                "{} migration(s) pending, first {first}",
                pending.len()
            ));
        }
    }
    let mut down = Vec::new();
    for (actor, up) in state.metrics.liveness.states() {
        checks.insert(actor, if up { "up" } else { "down" });
        if !up {
            down.push(actor);
        }
    }
    if !down.is_empty() {
        problems.push(format!("down: {}", down.join(", ")));
    }
    if !problems.is_empty() {
        return Ok(HttpResponse::ServiceUnavailable().json(NotReadyBody {
            status: "unavailable",
            checks,
            error: ErrorDetail {
                code: ErrorCode::NotReady,
                message: problems.join("; "),
            },
        }));
    }
    Ok(HttpResponse::Ok().json(HealthBody {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(state.db.backend_name()),
        migrations: applied.map(|a| a.len()),
        checks: Some(checks),
    }))
}
