//! The admin API (platform admins only): restart devices, read supervision, drain the node,
//! and on a cluster list the nodes and drain one.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::cluster::store::NodeStatus;
use crate::device::messages::{
    Drain, GetSupervision, RestartDevices, RestartReport, SupervisionSnapshot,
};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(restart_devices)
        .service(supervision)
        .service(drain)
        .service(list_nodes)
        .service(drain_node)
        .service(undrain_node);
}

/// Body of `POST /admin/devices/restart`: `{"ids": [..]}` or `{"all": true}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RestartRequest {
    /// Devices to restart.
    pub ids: Option<Vec<i64>>,
    /// Restart every device on this node.
    #[serde(default)]
    pub all: bool,
}

/// Answer of `POST /admin/drain`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrainReport {
    /// Devices disconnected.
    pub disconnected: usize,
}

/// Restarts devices (any tenant): each reconnects through the admission queue with its restart
/// budget reset; parked devices come back too.
#[utoipa::path(tag = "admin", request_body = RestartRequest, responses(
    (status = 200, body = RestartReport),
    (status = 400, body = crate::web::ErrorBody)
))]
#[post("/admin/devices/restart")]
pub async fn restart_devices(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
    audit: Audit,
    body: web::Json<RestartRequest>,
) -> Result<web::Json<RestartReport>, ApiError> {
    let ids = match (&body.ids, body.all) {
        (Some(ids), false) if !ids.is_empty() => Some(ids.clone()),
        (None, true) => None,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidSelection,
                "send either {\"ids\": [..]} with at least one id, or {\"all\": true}",
            ))
        }
    };
    if let (None, Some(node)) = (&ids, state.cluster.view.node_id()) {
        // Undoes `POST /admin/drain` on a cluster too: the node takes its share again.
        state.cluster.set_draining(node, false).await?;
    }
    let report = state
        .fleet
        .supervisor
        .send(RestartDevices { ids })
        .await
        .map_err(ApiError::internal)?;
    let detail = serde_json::json!({ "restarted": report.restarted.len(), "all": body.all });
    audit.record("admin.restart", None).detail(detail).await;
    Ok(web::Json(report))
}

/// Supervision status: devices per state, restarts, parked devices, backoff timers, admission
/// queue, boot progress.
#[utoipa::path(tag = "admin", responses((status = 200, body = SupervisionSnapshot)))]
#[get("/admin/supervision")]
pub async fn supervision(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
) -> Result<web::Json<SupervisionSnapshot>, ApiError> {
    let snapshot = state
        .fleet
        .supervisor
        .send(GetSupervision)
        .await
        .map_err(ApiError::internal)?;
    Ok(web::Json(snapshot))
}

/// Drains the node: stops admitting connects, disconnects every device (without logging out)
/// and makes `/readyz` answer 503, so a load balancer or another node can take over (on a
/// cluster the node is marked draining too, and its devices start on the other nodes).
/// `POST /admin/devices/restart {"all": true}` undoes it.
#[utoipa::path(tag = "admin", responses((status = 200, body = DrainReport)))]
#[post("/admin/drain")]
pub async fn drain(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
    audit: Audit,
) -> Result<web::Json<DrainReport>, ApiError> {
    // On a cluster the node also hands its devices to the others (as a node drain does), so
    // they come back online there rather than waiting for this node.
    if let Some(node) = state.cluster.view.node_id() {
        state.cluster.set_draining(node, true).await?;
    }
    let disconnected = state
        .fleet
        .supervisor
        .send(Drain)
        .await
        .map_err(ApiError::internal)?;
    audit.record("admin.drain", None).await;
    Ok(web::Json(DrainReport { disconnected }))
}

/// 409 `single_node` on SQLite, where one daemon runs everything.
fn require_cluster(state: &AppState) -> Result<(), ApiError> {
    if state.cluster.is_clustered() {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::SingleNode,
        "this daemon runs alone on SQLite; several nodes share a fleet on PostgreSQL",
    ))
}

/// The cluster's nodes: address, version, capacity, devices run, heartbeat age, whether live,
/// draining or leading (dead nodes stay listed for a day).
#[utoipa::path(tag = "admin", responses(
    (status = 200, body = [NodeStatus]),
    (status = 409, body = crate::web::ErrorBody)
))]
#[get("/admin/nodes")]
pub async fn list_nodes(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
) -> Result<web::Json<Vec<NodeStatus>>, ApiError> {
    require_cluster(&state)?;
    Ok(web::Json(state.cluster.nodes().await?))
}

/// Drains a node: it hands every device to the other nodes, one at a time at
/// `cluster.handovers_per_second` (each stops there before it starts elsewhere), and takes no
/// new ones until the drain ends (`DELETE` here, or the node's restart).
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "node name")), responses(
    (status = 202, body = [NodeStatus]),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/admin/nodes/{id}/drain")]
pub async fn drain_node(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
    audit: Audit,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_node_draining(&state, audit, &id, true).await
}

/// Ends a node's drain: it takes its share of the devices again.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "node name")), responses(
    (status = 202, body = [NodeStatus]),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[delete("/admin/nodes/{id}/drain")]
pub async fn undrain_node(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
    audit: Audit,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_node_draining(&state, audit, &id, false).await
}

/// Starts or ends a drain, audits it and answers the nodes.
async fn set_node_draining(
    state: &AppState,
    audit: Audit,
    node: &str,
    draining: bool,
) -> Result<HttpResponse, ApiError> {
    require_cluster(state)?;
    if !state.cluster.set_draining(node, draining).await? {
        return Err(ApiError::not_found("node"));
    }
    let action = if draining {
        "admin.node_drain"
    } else {
        "admin.node_undrain"
    };
    let detail = serde_json::json!({ "node": node });
    audit.record(action, None).detail(detail).await;
    Ok(HttpResponse::Accepted().json(state.cluster.nodes().await?))
}
