//! The bridge from actix-web to rmcp's streamable-HTTP service.
//!
//! rmcp serves MCP as a tower service over `http` 1.x requests; actix-web has its own request
//! types. [`endpoint`] does what must happen on our side first (the bearer token, the body
//! bound), then copies method, URI, headers and the read body into an `http::Request`, awaits
//! `StreamableHttpService::handle` and copies status, headers and body back. The service is made
//! for each request around an [`McpServer`] bound to the request's caller, in rmcp's stateless
//! mode with JSON answers: each POST carries one JSON-RPC message and gets its answer, and no
//! session, stream or event is kept once the response is sent.

use std::convert::Infallible;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::McpServer;
use crate::chat::media;
use crate::chat::media::Reservation;
use crate::web::auth::token_caller;
use crate::web::input::{client_ip, collect_body, declared_length, read_body};
use crate::web::{ApiError, AppState};

/// Largest body of a request: a 32 MiB picture in base64 and room for the rest of the call.
pub const MAX_BODY_BYTES: usize = media::MAX_UPLOAD_BYTES.div_ceil(3) * 4 + 64 * 1024;
/// Bodies declared at most this long are read outside the upload budget (as JSON bodies of the
/// REST API are), so small calls never wait behind file uploads.
const SMALL_BODY_BYTES: u64 = 1 << 20;
/// The 413 message of an oversize body.
const TOO_LARGE: &str = "the request is larger than 43 MiB (a 32 MiB file in base64)";

/// Every request to `/mcp`.
pub async fn endpoint(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = token_caller(&req).await?;
    // Held until the answer is built: the body's room in the upload budget.
    let (_room, body) = read(&req, &mut payload).await?;
    let request = to_http(&req, body)?;
    let server = McpServer::new(state, caller, client_ip(&req));
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config(),
    );
    Ok(from_http(service.handle(request).await).await)
}

/// rmcp's settings: stateless, JSON answers, our body bound. Host checks are off: they keep web
/// pages from reaching an unauthenticated server on localhost through DNS rebinding, while every
/// call here needs an API token such a page does not have, and the daemon answers under
/// whatever names its operators give it.
fn config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .disable_allowed_hosts()
}

/// A POST's body: up to 1 MiB when declared that small, otherwise within the upload budget
/// and deadline and at most [`MAX_BODY_BYTES`] (413 `too_large` past it). Other methods carry
/// none that matters.
async fn read(
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<(Option<Reservation>, Vec<u8>), ApiError> {
    if req.method() != actix_web::http::Method::POST {
        return Ok((None, Vec::new()));
    }
    match declared_length(req) {
        Some(length) if length <= SMALL_BODY_BYTES => {
            let body = collect_body(payload, length as usize, MAX_BODY_BYTES, TOO_LARGE).await?;
            Ok((None, body))
        }
        _ => {
            let (room, body) = read_body(req, payload, MAX_BODY_BYTES, TOO_LARGE).await?;
            Ok((Some(room), body))
        }
    }
}

/// The actix request as rmcp takes it.
fn to_http(req: &HttpRequest, body: Vec<u8>) -> Result<http::Request<Full<web::Bytes>>, ApiError> {
    let mut request = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    request
        .body(Full::new(web::Bytes::from(body)))
        .map_err(ApiError::internal)
}

/// rmcp's answer as an actix response: a JSON (or plain) body whole, an event stream streamed.
async fn from_http(response: http::Response<BoxBody<web::Bytes, Infallible>>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        // actix frames the body itself.
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            answer.append_header((name.as_str(), value.as_bytes()));
        }
    }
    let stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if stream {
        return answer.streaming(body.into_data_stream());
    }
    match body.collect().await {
        Ok(collected) => answer.body(collected.to_bytes()),
        Err(never) => match never {},
    }
}
