//! Who is calling, as plain data: the [`Caller`] a credential resolves to, the lookups that
//! resolve an API token or a session cookie to one, and the role and scope check.
//!
//! Nothing here knows HTTP. `web::auth` reads the credentials off the request (bearer header,
//! `?token=`, session cookie), applies the CSRF rules and turns an [`AuthError`] into 401/403.

use chrono::{Duration as ChronoDuration, NaiveDateTime};

use super::model::{Role, Scope, User};
use super::secret;
use super::store;
use crate::db::{Db, DbError};

/// Last-seen and last-used stamps are written at most this often (seconds).
const TOUCH_EVERY_SECS: i64 = 60;

/// Why a credential does not give a caller, or a caller may not do something.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The API token is unknown (never issued, or revoked).
    #[error("invalid or revoked API token")]
    InvalidToken,
    /// The session cookie names no live session (signed out, idle or too old).
    #[error("your session has expired; sign in again")]
    SessionExpired,
    /// The account exists but may not sign in.
    #[error("this account is disabled")]
    Disabled,
    /// The account (a platform admin without a tenant) has nothing to act on.
    #[error("this account belongs to no tenant")]
    NoTenant,
    /// The caller's role is below what the action needs.
    #[error("your role does not allow this")]
    RoleTooLow,
    /// The API token does not carry the scope the action needs.
    #[error("this token lacks the {scope:?} scope")]
    MissingScope {
        /// The scope's name.
        scope: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session.
    Session {
        /// Session row id.
        session_id: i64,
        /// Its CSRF token (returned by `/me` so the dashboard can send it).
        csrf_token: String,
        /// When the password was entered for it (step-up checks its age).
        signed_in_at: NaiveDateTime,
    },
    /// An API token.
    Token {
        /// Token row id.
        token_id: i64,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user (for a token: its creator).
    pub user: User,
    /// The tenant every query is scoped to.
    pub tenant_id: i64,
    /// The user's role.
    pub role: Role,
    /// Session or token.
    pub credential: Credential,
    /// For members: the devices assigned to them; `None` means every device of the tenant.
    pub assigned_devices: Option<Vec<i64>>,
}

impl Caller {
    /// Whether this caller may see the device (tenant ownership is checked by the store).
    pub fn can_see_device(&self, device_id: i64) -> bool {
        self.assigned_devices
            .as_ref()
            .is_none_or(|ids| ids.binary_search(&device_id).is_ok())
    }

    /// Whether the caller is an API token.
    pub fn is_token(&self) -> bool {
        matches!(self.credential, Credential::Token { .. })
    }

    /// Whether the caller is a browser session whose password was entered within `fresh`.
    pub fn signed_in_within(&self, now: NaiveDateTime, fresh: ChronoDuration) -> bool {
        matches!(&self.credential, Credential::Session { signed_in_at, .. } if now - *signed_in_at <= fresh)
    }

    /// Whether the caller has at least `role` and, for an API token, carries `scope`.
    pub fn allows(&self, role: Role, scope: Scope) -> Result<(), AuthError> {
        if self.role < role {
            return Err(AuthError::RoleTooLow);
        }
        match &self.credential {
            Credential::Token { scopes, .. } if !scopes.contains(&scope) => {
                Err(AuthError::MissingScope {
                    scope: scope.as_str(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The caller an API token acts as (its creator, in the token's tenant).
pub async fn by_token(db: &Db, token: &str, now: NaiveDateTime) -> Result<Caller, AuthError> {
    let (row, user) = store::find_token(db, &secret::digest(token))
        .await?
        .ok_or(AuthError::InvalidToken)?;
    if row
        .last_used_at
        .is_none_or(|t| (now - t).num_seconds() >= TOUCH_EVERY_SECS)
    {
        store::touch_token(db, row.id, now).await?;
    }
    let credential = Credential::Token {
        token_id: row.id,
        scopes: Scope::parse_list(&row.scopes),
    };
    caller_for(db, user, Some(row.tenant_id), credential).await
}

/// The caller of a live browser session: the cookie's session, unused for less than `idle`.
pub async fn by_session(
    db: &Db,
    cookie: &str,
    now: NaiveDateTime,
    idle: ChronoDuration,
) -> Result<Caller, AuthError> {
    let (session, user) = store::find_session(db, &secret::digest(cookie), now, now - idle)
        .await?
        .ok_or(AuthError::SessionExpired)?;
    if (now - session.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
        store::touch_session(db, session.id, now).await?;
    }
    let tenant = user.tenant_id;
    let credential = Credential::Session {
        session_id: session.id,
        csrf_token: session.csrf_token,
        signed_in_at: session.created_at,
    };
    caller_for(db, user, tenant, credential).await
}

/// Builds the caller once the credential is known to be valid.
async fn caller_for(
    db: &Db,
    user: User,
    tenant_id: Option<i64>,
    credential: Credential,
) -> Result<Caller, AuthError> {
    if !user.is_active {
        return Err(AuthError::Disabled);
    }
    let tenant_id = tenant_id.or(user.tenant_id).ok_or(AuthError::NoTenant)?;
    let role = user.role();
    let assigned_devices = if role == Role::Member {
        Some(store::assigned_device_ids(db, user.id).await?)
    } else {
        None
    };
    Ok(Caller {
        user,
        tenant_id,
        role,
        credential,
        assigned_devices,
    })
}
