//! The middleware every request passes: a request id, a tracing span, one log line and the HTTP
//! metrics.
//!
//! The request id is taken from an incoming `X-Request-Id` when it is short and plain (so a
//! proxy's id carries through), otherwise generated; it is echoed in the response header and
//! recorded on every log line of the request. Only the path is logged, never the query string,
//! because tokens may travel as `?token=` on WebSocket upgrades.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use tracing::Instrument;

use super::AppState;

/// Header carrying the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest incoming request id accepted as is.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the current request, available to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Wraps a request with its id, span, log line and metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id =
        incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let path = req.path().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span =
        tracing::info_span!("http", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();

    let result = next.call(req).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (
            res.status(),
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into()),
        ),
        Err(err) => (err.as_response_error().status_code(), "unmatched".into()),
    };
    if let Some(state) = state {
        let metrics = &state.metrics;
        metrics
            .http_requests
            .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method.as_str(), route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        let quiet = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms, "request failed");
        } else if quiet {
            tracing::debug!(status = status.as_u16(), latency_ms, "request");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request");
        }
    });
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        res
    })
}

/// A client-supplied id, if it is short and made of safe characters.
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    plain.then(|| value.to_string())
}
