//! Why the campaign engine refused a request; the web layer maps each variant to its API error.

use crate::db::DbError;

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// No such campaign.
    #[error("campaign not found")]
    NotFound,
    /// The campaign is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The campaign cannot run as configured (no leads, bad template, pacing out of bounds…).
    #[error("{0}")]
    Invalid(String),
    /// The database failed (its message: the error is answered to callers, so it stays `Clone`).
    #[error("{0}")]
    Db(String),
}

impl From<DbError> for EngineError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::NotFound => EngineError::NotFound,
            other => EngineError::Db(other.to_string()),
        }
    }
}
