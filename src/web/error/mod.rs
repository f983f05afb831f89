//! `ApiError`: the one error type HTTP handlers return, rendered as
//! `{"error":{"code":"snake_case","message":"…"}}` with the status of its [`ErrorCode`].
//!
//! - [`code`]: the codes, each with one status (listed in docs/errors.md).
//! - [`convert`]: a `From` impl per domain error handlers see, so a route writes `?` and every
//!   route answers the same failure alike.
//!
//! An error keeps the domain error it came from as its `source`. It is logged once, when the
//! response is built (inside the request's span, so with the request id): 5xx at error or warn
//! level, 4xx at debug. A 5xx never carries internals: the client gets a generic message.

pub mod code;
pub mod convert;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub use code::ErrorCode;

use crate::db::DbError;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// Code and message of an error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case identifier clients can match on.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// What an error came from, kept for the log only.
type Source = Arc<dyn StdError + Send + Sync>;

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    source: Option<Source>,
    retry_after_secs: Option<u64>,
}

/// A logged detail without an error type of its own (a mailbox failure, a blocking task).
#[derive(Debug)]
struct Detail(String);

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Detail {}

impl ApiError {
    /// An error with `code` (which decides the status) and a message for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
            retry_after_secs: None,
        }
    }

    /// 404 `not_found`: the object does not exist or is not the caller's.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 500 `internal`; `detail` is logged, never sent.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::Internal,
            "internal error; see the server log for this request id",
        )
        .with_source(Detail(detail.to_string()))
    }

    /// Keeps the error this one came from, for the log.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Adds a `Retry-After` header (seconds), for 429 and 503.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Maps a unique-constraint conflict to `code` with `message` (a more telling 409 than
    /// `conflict`, e.g. `email_taken`); other database errors map as usual.
    pub fn on_conflict(code: ErrorCode, message: &'static str) -> impl Fn(DbError) -> ApiError {
        move |err| match err {
            DbError::Conflict(_) => ApiError::new(code, message).with_source(err),
            other => other.into(),
        }
    }

    /// Writes the log line of this error (see the module docs for the levels): when its
    /// response is built, or when an MCP tool answers it.
    pub fn log(&self) {
        let status = self.code.status();
        let source = self.source.as_ref().map(|s| s.to_string());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = %self.code, error = ?source, "internal error");
        } else if status.is_server_error() {
            tracing::warn!(code = %self.code, error = ?source, message = %self.message, "unavailable");
        } else if let Some(source) = source {
            tracing::debug!(code = %self.code, error = %source, "request refused");
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut response = HttpResponse::build(self.code.status());
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        })
    }
}
