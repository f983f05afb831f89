//! One `From` impl per domain error a handler sees: the only place a domain failure gets its
//! [`ErrorCode`] (and so its status). Each keeps the domain error as the source for the log.
//!
//! Some routes refine a mapping for their context first (a unique violation on a lead list's
//! name is `duplicate_name` rather than `conflict`, see [`ApiError::on_conflict`]); the code
//! they pick still has its one status.

use super::{ApiError, ErrorCode};
use crate::auth::password::PasswordError;
use crate::auth::AuthError;
use crate::broadcast::campaign::error::EngineError;
use crate::broadcast::leads::import::ImportError;
use crate::broadcast::webhook::WebhookError;
use crate::chat::media::files::FileRejected;
use crate::chat::media::ImageRejected;
use crate::db::DbError;
use crate::device::messages::DeviceError;
use crate::phone::PhoneError;
use crate::whatsapp::sim::SimError;

/// Seconds a client should wait before retrying when the database is unavailable.
const DB_RETRY_AFTER_SECS: u64 = 5;

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match &err {
            DbError::NotFound => ApiError::not_found("object"),
            DbError::Conflict(what) => {
                ApiError::new(ErrorCode::Conflict, format!("already exists: {what}"))
            }
            DbError::Unavailable(_) => ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable",
            )
            .with_retry_after(DB_RETRY_AFTER_SECS),
            DbError::InvalidText(_) => ApiError::new(
                ErrorCode::InvalidText,
                "text cannot contain NUL characters (\\u0000)",
            ),
            DbError::LeaseLost(_) => ApiError::new(
                ErrorCode::DeviceMoved,
                "the device moved to another node meanwhile; try again",
            ),
            DbError::Migration(_) | DbError::Query(_) => return ApiError::internal(err),
        }
        .with_source(err)
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let code = match err {
            AuthError::InvalidToken | AuthError::SessionExpired | AuthError::Disabled => {
                ErrorCode::Unauthenticated
            }
            AuthError::NoTenant | AuthError::RoleTooLow | AuthError::MissingScope { .. } => {
                ErrorCode::Forbidden
            }
            AuthError::Db(err) => return err.into(),
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Policy => ApiError::new(ErrorCode::WeakPassword, err.to_string()),
            PasswordError::Hashing(_) => ApiError::internal(err),
        }
    }
}

/// The campaign engine, for campaign routes and for the sequences it carries alike.
impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match &err {
            EngineError::NotFound => ApiError::new(ErrorCode::NotFound, err.to_string()),
            EngineError::Conflict(message) => ApiError::new(ErrorCode::WrongState, message),
            EngineError::Invalid(message) => ApiError::new(ErrorCode::InvalidCampaign, message),
            EngineError::Db(_) => return ApiError::internal(err),
        }
        .with_source(err)
    }
}

impl From<DeviceError> for ApiError {
    fn from(err: DeviceError) -> Self {
        match &err {
            DeviceError::NotRunning | DeviceError::Gone => ApiError::new(
                ErrorCode::DeviceNotRunning,
                "the device is not running; reconnect it first",
            ),
            DeviceError::NotConnected => ApiError::new(ErrorCode::DeviceOffline, err.to_string()),
            DeviceError::WrongState(message) => ApiError::new(ErrorCode::WrongState, message),
            DeviceError::Connector(message) => ApiError::new(ErrorCode::Rejected, message),
            DeviceError::InvalidRecipient(_) => {
                ApiError::new(ErrorCode::InvalidRecipient, err.to_string())
            }
            DeviceError::RateLimited { .. } => {
                ApiError::new(ErrorCode::RateLimited, err.to_string())
            }
        }
        .with_source(err)
    }
}

/// A file refused by its bytes: empty (422 `invalid_file`) or not what it was sent as (415).
impl From<FileRejected> for ApiError {
    fn from(err: FileRejected) -> Self {
        let code = match err {
            FileRejected::Empty => ErrorCode::InvalidFile,
            FileRejected::WrongContent(_) => ErrorCode::UnsupportedMediaType,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<SimError> for ApiError {
    fn from(err: SimError) -> Self {
        let code = match err {
            SimError::NoPairing(_) => ErrorCode::NoPairing,
            SimError::NoSession(_) => ErrorCode::NoSession,
            SimError::NotOnline(_) => ErrorCode::NotOnline,
            SimError::NoAccount(_) => ErrorCode::NoAccount,
            SimError::InvalidPhone(_) => ErrorCode::InvalidPhone,
            SimError::UnknownGroup(..) => ErrorCode::InvalidRecipient,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<PhoneError> for ApiError {
    fn from(err: PhoneError) -> Self {
        ApiError::new(ErrorCode::InvalidPhone, err.to_string())
    }
}

impl From<ImageRejected> for ApiError {
    fn from(err: ImageRejected) -> Self {
        ApiError::new(ErrorCode::InvalidImage, err.to_string())
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::Header(err) => ApiError::new(ErrorCode::InvalidCsv, err.to_string()),
            ImportError::Body(message) => ApiError::new(ErrorCode::InvalidBody, message),
            ImportError::TooLarge => ApiError::new(ErrorCode::TooLarge, err.to_string()),
            ImportError::Db(err) => err.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        let code = match err {
            WebhookError::BadSignature => ErrorCode::BadSignature,
            WebhookError::StaleTimestamp => ErrorCode::StaleTimestamp,
            WebhookError::Replayed => ErrorCode::Replayed,
            WebhookError::InvalidLead(message) => {
                return ApiError::new(ErrorCode::InvalidLead, message)
            }
            WebhookError::Db(err) => return err.into(),
        };
        ApiError::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::ResponseError;

    use super::*;
    use crate::broadcast::leads::csv::HeaderError;

    /// Asserts the code and the status every case maps to.
    fn check(cases: Vec<(ApiError, ErrorCode, u16)>) {
        for (err, code, status) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(
                err.status_code(),
                StatusCode::from_u16(status).unwrap(),
                "{err}"
            );
        }
    }

    #[test]
    fn database_errors() {
        let unavailable = ApiError::from(DbError::Unavailable("down".into()));
        assert_eq!(unavailable.retry_after_secs, Some(DB_RETRY_AFTER_SECS));
        check(vec![
            (DbError::NotFound.into(), ErrorCode::NotFound, 404),
            (
                DbError::Conflict("x".into()).into(),
                ErrorCode::Conflict,
                409,
            ),
            (unavailable, ErrorCode::DatabaseUnavailable, 503),
            (
                DbError::Migration("x".into()).into(),
                ErrorCode::Internal,
                500,
            ),
        ]);
        let taken = ApiError::on_conflict(ErrorCode::EmailTaken, "taken");
        check(vec![
            (
                taken(DbError::Conflict("x".into())),
                ErrorCode::EmailTaken,
                409,
            ),
            (taken(DbError::NotFound), ErrorCode::NotFound, 404),
        ]);
    }

    #[test]
    fn auth_and_password_errors() {
        check(vec![
            (
                AuthError::InvalidToken.into(),
                ErrorCode::Unauthenticated,
                401,
            ),
            (
                AuthError::SessionExpired.into(),
                ErrorCode::Unauthenticated,
                401,
            ),
            (AuthError::Disabled.into(), ErrorCode::Unauthenticated, 401),
            (AuthError::NoTenant.into(), ErrorCode::Forbidden, 403),
            (AuthError::RoleTooLow.into(), ErrorCode::Forbidden, 403),
            (
                AuthError::MissingScope { scope: "write" }.into(),
                ErrorCode::Forbidden,
                403,
            ),
            (
                AuthError::Db(DbError::NotFound).into(),
                ErrorCode::NotFound,
                404,
            ),
            (PasswordError::Policy.into(), ErrorCode::WeakPassword, 400),
            (
                PasswordError::Hashing("x".into()).into(),
                ErrorCode::Internal,
                500,
            ),
        ]);
    }

    /// Campaign and sequence routes map the engine alike (sequences answered 500 for all).
    #[test]
    fn engine_errors() {
        check(vec![
            (EngineError::NotFound.into(), ErrorCode::NotFound, 404),
            (
                EngineError::Conflict("x".into()).into(),
                ErrorCode::WrongState,
                409,
            ),
            (
                EngineError::Invalid("x".into()).into(),
                ErrorCode::InvalidCampaign,
                422,
            ),
            (EngineError::Db("x".into()).into(), ErrorCode::Internal, 500),
        ]);
    }

    #[test]
    fn device_and_simulator_errors() {
        check(vec![
            (
                DeviceError::NotRunning.into(),
                ErrorCode::DeviceNotRunning,
                409,
            ),
            (DeviceError::Gone.into(), ErrorCode::DeviceNotRunning, 409),
            (
                DeviceError::NotConnected.into(),
                ErrorCode::DeviceOffline,
                409,
            ),
            (
                DeviceError::WrongState("x".into()).into(),
                ErrorCode::WrongState,
                409,
            ),
            (
                DeviceError::Connector("x".into()).into(),
                ErrorCode::Rejected,
                400,
            ),
            (
                DeviceError::InvalidRecipient("x".into()).into(),
                ErrorCode::InvalidRecipient,
                400,
            ),
            (
                DeviceError::RateLimited { retry_after_ms: 1 }.into(),
                ErrorCode::RateLimited,
                429,
            ),
            (SimError::NoPairing(1).into(), ErrorCode::NoPairing, 409),
            (SimError::NoSession(1).into(), ErrorCode::NoSession, 409),
            (SimError::NotOnline(1).into(), ErrorCode::NotOnline, 409),
            (SimError::NoAccount(1).into(), ErrorCode::NoAccount, 409),
            (
                SimError::InvalidPhone("1".into()).into(),
                ErrorCode::InvalidPhone,
                422,
            ),
        ]);
    }

    #[test]
    fn lead_phone_image_and_webhook_errors() {
        check(vec![
            (PhoneError::Empty.into(), ErrorCode::InvalidPhone, 422),
            (
                ImageRejected::UnsupportedFormat.into(),
                ErrorCode::InvalidImage,
                422,
            ),
            (
                ImportError::Header(HeaderError::Empty).into(),
                ErrorCode::InvalidCsv,
                422,
            ),
            (
                ImportError::Body("x".into()).into(),
                ErrorCode::InvalidBody,
                400,
            ),
            (ImportError::TooLarge.into(), ErrorCode::TooLarge, 413),
            (
                ImportError::Db(DbError::NotFound).into(),
                ErrorCode::NotFound,
                404,
            ),
            (
                WebhookError::BadSignature.into(),
                ErrorCode::BadSignature,
                401,
            ),
            (
                WebhookError::StaleTimestamp.into(),
                ErrorCode::StaleTimestamp,
                401,
            ),
            (WebhookError::Replayed.into(), ErrorCode::Replayed, 401),
            (
                WebhookError::InvalidLead("x".into()).into(),
                ErrorCode::InvalidLead,
                422,
            ),
            (
                WebhookError::Db(DbError::Unavailable("x".into())).into(),
                ErrorCode::DatabaseUnavailable,
                503,
            ),
        ]);
    }
}
