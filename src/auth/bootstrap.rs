//! First start: with no user in the database, create the platform admin (and a tenant for it,
//! so the admin can also use the dashboard and `--simulate` has somewhere to put devices).

use chrono::Utc;
use secrecy::ExposeSecret;

use super::model::{NewUser, Role, User};
use super::password::{PasswordError, PasswordHasher};
use super::{secret, store};
use crate::config::Settings;
use crate::db::{Db, DbError};

/// Why the admin could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configured password breaks the policy.
    #[error("admin.password: {0}")]
    Password(#[from] PasswordError),
}

/// Creates the admin when the database has no user; returns it when created.
///
/// The password comes from `admin.password`; when that is empty a one-time password is
/// generated and written to the log once (the only secret ever logged, by design: it is the
/// only way to sign in the first time, and it should be changed right away).
pub async fn ensure_admin(
    db: &Db,
    settings: &Settings,
    hasher: &PasswordHasher,
) -> Result<Option<User>, BootstrapError> {
    if store::any_user(db).await? {
        return Ok(None);
    }
    let configured = settings.admin.password.expose_secret();
    let generated = configured.is_empty().then(secret::new_password);
    let password = generated.as_deref().unwrap_or(configured);
    let hash = hasher.hash(password).await?;
    let tenant = store::insert_tenant(db, "Default", &settings.tenant.default_time_zone).await?;
    let now = Utc::now().naive_utc();
    let email = settings.admin.email.trim().to_lowercase();
    let created = store::insert_user(
        db,
        NewUser {
            tenant_id: Some(tenant.id),
            email: &email,
            display_name: "Administrator",
            password_hash: &hash,
            role: Role::Admin.as_str(),
            is_active: true,
            created_at: now,
            updated_at: now,
        },
    )
    .await;
    let admin = match created {
        Ok(user) => user,
        // Another node created it at the same moment.
        Err(DbError::Conflict(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    match generated {
        Some(one_time) => tracing::warn!(
            email = %admin.email,
            password = %one_time,
            "created the admin account with a one-time password; sign in and change it now"
        ),
        None => tracing::info!(email = %admin.email, "created the admin account"),
    }
    Ok(Some(admin))
}
