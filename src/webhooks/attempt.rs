//! One delivery attempt: the signed POST and what came of it, as the delivery log keeps it.
//! No actor, no database: the [`Dispatcher`](super::Dispatcher) claims, calls this, records.

use std::time::Instant;

use chrono::Utc;

use super::guard;
use super::model::{Attempt, Claimed, Endpoint};
use super::MAX_RESPONSE_BYTES;
use crate::broadcast::webhook::sign;

/// Headers of a delivery.
pub const EVENT_HEADER: &str = "x-wafleet-event";
/// The event id header (also `id` in the body).
pub const EVENT_ID_HEADER: &str = "x-wafleet-event-id";
/// The delivery (queue row) id header.
pub const DELIVERY_HEADER: &str = "x-wafleet-delivery";

/// POSTs one delivery: signed, no redirects, the answer's start kept for the log.
pub async fn attempt(
    client: reqwest::Client,
    endpoint: Endpoint,
    claimed: Claimed,
    allow_private: bool,
) -> Attempt {
    let started = Instant::now();
    let elapsed =
        |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    // Checked again at every attempt: the setting may have changed since the endpoint was saved.
    let url = match guard::check_url(&endpoint.url, allow_private) {
        Ok(url) => url,
        Err(err) => {
            return Attempt {
                response_status: None,
                response_body: None,
                latency_ms: 0,
                error: Some(err.to_string()),
            }
        }
    };
    let timestamp = Utc::now().timestamp().to_string();
    let signature = sign(&endpoint.secret, &timestamp, claimed.payload.as_bytes());
    let request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, &claimed.event_type)
        .header(EVENT_ID_HEADER, &claimed.event_id)
        .header(DELIVERY_HEADER, claimed.id.to_string())
        .header(
            crate::broadcast::webhook::TENANT_HEADER,
            endpoint.tenant_id.to_string(),
        )
        .header(crate::broadcast::webhook::TIMESTAMP_HEADER, &timestamp)
        .header(crate::broadcast::webhook::SIGNATURE_HEADER, signature)
        .body(claimed.payload);
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            return Attempt {
                response_status: None,
                response_body: None,
                latency_ms: elapsed(started),
                error: Some(describe(&err)),
            }
        }
    };
    let status = response.status();
    let mut body = Vec::new();
    // Only the start of the answer is kept; the rest is not read into memory.
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_RESPONSE_BYTES);
    let text = String::from_utf8_lossy(&body).into_owned();
    Attempt {
        response_status: Some(i64::from(status.as_u16())),
        response_body: (!text.is_empty()).then_some(text),
        latency_ms: elapsed(started),
        error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
    }
}

/// A transport error in a line, with its cause (the SSRF guard's refusal, a timeout, …).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
