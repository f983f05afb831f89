//! Device commands on a cluster. A device runs on one node (see `crate::cluster`); a command
//! for it (its live state and QR, pairing, logout, reconnect, delete, sending, read receipts,
//! groups, media downloads) that reaches another node is forwarded over HTTP to the node that
//! runs it, with the caller's own credentials, and its answer relayed as it is. So every API
//! call works on any node, and the owner checks the caller in full, as for a direct call.
//!
//! Only authenticated requests are forwarded (the caller is resolved first); a forwarded request
//! carries `x-wafleet-forwarded-by` and is never forwarded again (a device that moved meanwhile
//! answers as on a node that does not run it). The client's address goes along as
//! `X-Forwarded-For` (the owner believes it only from `server.trusted_proxies`). An owner that
//! does not answer within `cluster.forward_timeout_secs` gives 503 `node_unreachable`. Commands
//! do not go through Redis: they work while Redis is down.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::auth::authenticated;
use super::{ApiError, AppState, ErrorCode};
use crate::cluster::store::Owner;

/// Marks a forwarded request (value: the forwarding node).
pub const FORWARDED_BY: &str = "x-wafleet-forwarded-by";

/// The largest body forwarded: a 16 MiB file in a multipart form, with room to spare.
const MAX_FORWARDED_BODY: usize = 20 * 1024 * 1024;

/// Seconds a client waits before retrying after `node_unreachable`.
const RETRY_AFTER_SECS: u64 = 5;

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), and lengths the
/// client recomputes.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The device a request commands, when it is a command that needs the device's own node.
pub fn device_command(method: &Method, path: &str) -> Option<i64> {
    let rest = path.strip_prefix("/api/v1/devices/")?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let id: i64 = id.parse().ok()?;
    let chat_read = tail.starts_with("chats/") && tail.ends_with("/read");
    let media =
        tail.starts_with("chats/") && tail.contains("/messages/") && tail.ends_with("/media");
    let command = match *method {
        Method::GET => matches!(tail, "" | "qr.svg" | "groups") || media,
        Method::POST => {
            matches!(tail, "pair-code" | "logout" | "reconnect" | "messages") || chat_read
        }
        Method::DELETE => tail.is_empty(),
        _ => false,
    };
    command.then_some(id)
}

/// Middleware: forwards device commands to the node running the device (see the module).
pub async fn forward_device_commands(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let device_id = device_command(req.method(), req.path());
    let forwardable = state.cluster.is_clustered()
        && !req.headers().contains_key(FORWARDED_BY)
        && authenticated(req.request()).is_some();
    let owner = match device_id.filter(|_| forwardable) {
        Some(device_id) => state.cluster.runs_elsewhere(device_id).await.ok().flatten(),
        None => None,
    };
    let Some(owner) = owner else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(err) => return Ok(req.error_response(err).map_into_right_body()),
    };
    let response = match relay(&state, &req, &owner, body).await {
        Ok(response) => response,
        Err(err) => HttpResponse::from_error(err),
    };
    Ok(req.into_response(response).map_into_right_body())
}

/// The request body, up to [`MAX_FORWARDED_BODY`].
async fn read_body(req: &mut ServiceRequest) -> Result<web::Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(ErrorCode::InvalidBody, "the request body could not be read")
        })?;
        if body.len() + chunk.len() > MAX_FORWARDED_BODY {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("the body is over {MAX_FORWARDED_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// One HTTP client for every forward (no redirects, no proxy from the environment).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default()
    })
}

/// Sends the request to `owner` and turns its answer into ours.
async fn relay(
    state: &AppState,
    req: &ServiceRequest,
    owner: &Owner,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let answer = send_to(state, req.request(), owner, req.method(), path, body).await?;
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status().as_u16())
            .map_err(ApiError::internal)?,
    );
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    let bytes = answer
        .bytes()
        .await
        .map_err(|err| unreachable(owner, &err))?;
    Ok(response.body(bytes))
}

/// Sends `method path` with `body` to `owner` on behalf of `req`'s caller: with the caller's
/// headers (credentials, Host; connection headers left out), its address appended to
/// `X-Forwarded-For`, and marked forwarded so the owner answers it itself.
pub async fn send_to(
    state: &AppState,
    req: &HttpRequest,
    owner: &Owner,
    method: &Method,
    path: &str,
    body: web::Bytes,
) -> Result<reqwest::Response, ApiError> {
    let url = format!("{}{path}", owner.address);
    let method =
        reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(ApiError::internal)?;
    let mut forward = client().request(method, &url).timeout(Duration::from_secs(
        state.settings.cluster.forward_timeout_secs,
    ));
    for (name, value) in req.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::HOST {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    // The owner checks same-origin writes against the Host the client used.
    if let Some(host) = req.headers().get(header::HOST) {
        forward = forward.header("host", host.as_bytes());
    }
    let client_ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let forwarded_for = match req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(chain) => format!("{chain}, {client_ip}"),
        None => client_ip,
    };
    let node = state.cluster.view.node_id().unwrap_or_default().to_owned();
    forward
        .header("x-forwarded-for", forwarded_for)
        .header(FORWARDED_BY, node)
        .body(body)
        .send()
        .await
        .map_err(|err| unreachable(owner, &err))
}

/// 503 naming the node that did not answer.
fn unreachable(owner: &Owner, err: &reqwest::Error) -> ApiError {
    tracing::warn!(node = %owner.node_id, error = %err, "forwarded device command failed");
    ApiError::new(
        ErrorCode::NodeUnreachable,
        format!(
            "node {} runs this device and did not answer; try again",
            owner.node_id
        ),
    )
    .with_retry_after(RETRY_AFTER_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_that_need_the_device_are_forwarded() {
        let post = Method::POST;
        assert_eq!(device_command(&Method::GET, "/api/v1/devices/7"), Some(7));
        assert_eq!(
            device_command(&Method::GET, "/api/v1/devices/7/qr.svg"),
            Some(7)
        );
        assert_eq!(device_command(&post, "/api/v1/devices/7/messages"), Some(7));
        assert_eq!(
            device_command(&post, "/api/v1/devices/7/chats/1@s.whatsapp.net/read"),
            Some(7)
        );
        assert_eq!(
            device_command(&Method::GET, "/api/v1/devices/7/chats/c/messages/m/media"),
            Some(7)
        );
        assert_eq!(
            device_command(&Method::DELETE, "/api/v1/devices/7"),
            Some(7)
        );
        // Database reads and edits answer on any node.
        assert_eq!(
            device_command(&Method::GET, "/api/v1/devices/7/chats"),
            None
        );
        assert_eq!(device_command(&Method::PATCH, "/api/v1/devices/7"), None);
        assert_eq!(device_command(&Method::GET, "/api/v1/devices"), None);
        assert_eq!(device_command(&post, "/api/v1/devices/x/logout"), None);
    }
}
