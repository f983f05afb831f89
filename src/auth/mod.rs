//! Accounts: tenants, users and roles, passwords, browser sessions, API tokens, and the
//! [`Caller`] a credential resolves to. No HTTP here: the extractor that reads credentials off
//! a request is `web::auth`.
//!
//! Flow: `POST /auth/login` verifies the password (argon2id, off the arbiter threads, throttled
//! per account and address) and stores a session whose digest is the cookie's only trace in the
//! database. Each later request's token or cookie is resolved by [`caller::by_token`] or
//! [`caller::by_session`] to a [`Caller`] carrying the tenant id every store query is scoped by.
//! Expired sessions are deleted by [`purge`] in the background.

pub mod bootstrap;
pub mod caller;
pub mod changes;
pub mod model;
pub mod password;
pub mod purge;
pub mod rate_limit;
pub mod secret;
pub mod store;

pub use caller::{AuthError, Caller, Credential};
pub use model::{Role, Tenant, User};

use std::time::Duration;

use crate::config::AuthSettings;

/// The shared pieces of authentication held in the application state.
pub struct AuthService {
    /// Password hashing, bounded to one hash per core.
    pub hasher: password::PasswordHasher,
    /// Failed-login throttle.
    pub limiter: rate_limit::LoginLimiter,
    /// Tells open connections whose access changed to re-check it.
    pub changes: changes::AccessChanges,
}

impl AuthService {
    /// Builds the hasher and the limiter from the settings.
    pub fn new(settings: &AuthSettings) -> Result<Self, password::PasswordError> {
        Ok(Self {
            hasher: password::PasswordHasher::new()?,
            limiter: rate_limit::LoginLimiter::new(rate_limit::LoginLimits {
                max_failures: settings.login_max_failures,
                window: Duration::from_secs(settings.login_window_secs),
                max_delay: Duration::from_secs(settings.login_max_delay_secs),
            }),
            changes: changes::AccessChanges::default(),
        })
    }
}
