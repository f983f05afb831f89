//! First start: with no user in the database, create the platform admin (and a tenant for it,
//! so the admin can also use the dashboard and `--simulate` has somewhere to put devices).
//!
//! Without `admin.password` a one-time password is generated and written to
//! `auth.admin_password_file` (mode 0600; only its path is logged), and the admin must replace
//! it at first sign-in (`must_change_password`): the API answers nothing else until then. If the
//! file cannot be written, the password is logged once instead, still to be replaced at once.

use std::io::Write;
use std::path::Path;

use chrono::Utc;
use secrecy::ExposeSecret;

use super::model::{NewUser, Role, User, UserPatch};
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
/// The password comes from `admin.password` (the operator's own choice, kept); when that is
/// empty a one-time password is generated, handed over as the module docs say, and must be
/// changed at first sign-in.
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
    let Some(one_time) = generated else {
        tracing::info!(email = %admin.email, "created the admin account");
        return Ok(Some(admin));
    };
    let admin = store::update_user(
        db,
        tenant.id,
        admin.id,
        UserPatch {
            must_change_password: Some(true),
            ..Default::default()
        },
    )
    .await?;
    let file = &settings.auth.admin_password_file;
    match write_private(file, &one_time) {
        Ok(()) => tracing::warn!(
            email = %admin.email,
            file = %file.display(),
            "created the admin account with a one-time password in this file; sign in, set a new password and delete the file"
        ),
        Err(err) => tracing::warn!(
            email = %admin.email,
            password = %one_time,
            file = %file.display(),
            error = %err,
            "created the admin account with a one-time password (the file could not be written); sign in and set a new password now"
        ),
    }
    Ok(Some(admin))
}

/// Writes `secret` to `path` readable by the owner only (creating the directory).
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // An older file keeps its mode on open: narrow it before writing the secret.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(format!("{secret}\n").as_bytes())
}
