//! The admin API (platform admins only): restart devices, read supervision, drain the node,
//! and on a cluster list the nodes and drain one.

use std::collections::BTreeMap;

use actix_web::http::Method;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::cluster::store::{NodeStatus, Owner};
use crate::device::messages::{
    Drain, GetSupervision, RestartDevices, RestartReport, SupervisionSnapshot,
};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::forward::{self, FORWARDED_BY};
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestartRequest {
    /// Devices to restart (on a cluster, each on the node that runs it).
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
/// budget reset; parked devices come back too. On a cluster, listed devices another node runs
/// are restarted there (asked of it as this caller) and reported here.
#[utoipa::path(tag = "admin", request_body = RestartRequest, responses(
    (status = 200, body = RestartReport),
    (status = 400, body = crate::web::ErrorBody)
))]
#[post("/admin/devices/restart")]
pub async fn restart_devices(
    state: web::Data<AppState>,
    _caller: Auth<require::Admin>,
    audit: Audit,
    req: HttpRequest,
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
    let mut report = RestartReport::default();
    let mut here = ids;
    // Listed devices another node runs are restarted there (a forwarded call stays here).
    let forwarded = req.headers().contains_key(FORWARDED_BY);
    if let (Some(ids), true) = (&here, state.cluster.is_clustered() && !forwarded) {
        let (local, elsewhere) = by_owner(&state, ids).await?;
        for (owner, ids) in elsewhere.into_values() {
            let theirs = restart_on(&state, &req, &owner, ids).await?;
            report.restarted.extend(theirs.restarted);
            report.unknown.extend(theirs.unknown);
        }
        here = (!local.is_empty()).then_some(local);
    }
    if here.is_some() || body.all {
        let ours = state
            .fleet
            .supervisor
            .send(RestartDevices { ids: here })
            .await
            .map_err(ApiError::internal)?;
        report.restarted.extend(ours.restarted);
        report.unknown.extend(ours.unknown);
    }
    report.restarted.sort_unstable();
    report.unknown.sort_unstable();
    let detail = serde_json::json!({ "restarted": report.restarted.len(), "all": body.all });
    audit.record("admin.restart", None).detail(detail).await;
    Ok(web::Json(report))
}

/// Splits `ids` into the devices this node runs (or no node does) and, per other node, the ones
/// it runs.
async fn by_owner(
    state: &AppState,
    ids: &[i64],
) -> Result<(Vec<i64>, BTreeMap<String, (Owner, Vec<i64>)>), ApiError> {
    let mut here = Vec::new();
    let mut elsewhere: BTreeMap<String, (Owner, Vec<i64>)> = BTreeMap::new();
    for &id in ids {
        match state.cluster.runs_elsewhere(id).await? {
            None => here.push(id),
            Some(owner) => {
                elsewhere
                    .entry(owner.node_id.clone())
                    .or_insert_with(|| (owner, Vec::new()))
                    .1
                    .push(id);
            }
        }
    }
    Ok((here, elsewhere))
}

/// Asks `owner` to restart `ids`, as the caller of `req`.
async fn restart_on(
    state: &AppState,
    req: &HttpRequest,
    owner: &Owner,
    ids: Vec<i64>,
) -> Result<RestartReport, ApiError> {
    let body = serde_json::to_vec(&RestartRequest {
        ids: Some(ids),
        all: false,
    })
    .map_err(ApiError::internal)?;
    let path = "/api/v1/admin/devices/restart";
    let answer = forward::send_to(state, req, owner, &Method::POST, path, body.into()).await?;
    if !answer.status().is_success() {
        return Err(ApiError::new(
            ErrorCode::NodeUnreachable,
            format!(
                "node {} answered {} to the restart of its devices; try again",
                owner.node_id,
                answer.status()
            ),
        ));
    }
    let body = answer.bytes().await.map_err(ApiError::internal)?;
    serde_json::from_slice(&body).map_err(ApiError::internal)
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
