//! Team management: the owner lists, adds, edits and removes the tenant's users, resets their
//! passwords (a one-time password shown once) and assigns devices to members.

use actix_web::{delete, get, patch, post, put, web, HttpResponse};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::model::{NewUser, Role, UserPatch};
use crate::auth::{secret, store, Caller};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::{required_text, validate_email, EMAIL_TAKEN};
use crate::web::views::UserView;
use crate::web::{ApiError, AppState, ErrorCode};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_users)
        .service(create_user)
        .service(get_user)
        .service(update_user)
        .service(delete_user)
        .service(reset_password)
        .service(get_user_devices)
        .service(set_user_devices);
}

/// Body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Login email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Initial password (10 to 256 characters).
    pub password: String,
    /// `owner`, `member` or `viewer`.
    pub role: Role,
}

/// Body of `PATCH /users/{id}`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    /// New display name.
    pub display_name: Option<String>,
    /// New role (`owner`, `member`, `viewer`).
    pub role: Option<Role>,
    /// Enable or disable sign-in (disabling ends their sessions).
    pub is_active: Option<bool>,
    /// Set a new password for another user (ends their sessions; they must choose their own at
    /// next sign-in). Needs a recent sign-in; not for one's own account nor for API tokens.
    pub password: Option<String>,
}

/// Device ids assigned to a member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceAssignment {
    /// Device ids of the tenant.
    pub device_ids: Vec<i64>,
}

/// A device assigned to a member, named so a picker can show it without another request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignedDevice {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Lifecycle status (`online`, `logged_out`, …).
    pub status: String,
}

/// The devices assigned to a member: their ids, and each with its name and status.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignedDevices {
    /// Device ids, ascending.
    pub device_ids: Vec<i64>,
    /// The same devices, named.
    pub devices: Vec<AssignedDevice>,
}

impl AssignedDevices {
    /// The assignments of `user_id` as stored now.
    async fn of(state: &AppState, user_id: i64) -> Result<Self, ApiError> {
        let rows = store::assigned_devices(&state.db, user_id).await?;
        Ok(Self {
            device_ids: rows.iter().map(|(id, _, _)| *id).collect(),
            devices: rows
                .into_iter()
                .map(|(id, name, status)| AssignedDevice { id, name, status })
                .collect(),
        })
    }
}

/// Answer of `POST /users/{id}/password-reset`: the only time the password is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetView {
    /// The one-time password the server chose; the member signs in with it and must then
    /// choose their own.
    pub password: String,
}

/// API tokens act on members and viewers only: a leaked write token must not be able to make
/// or take over an owner (who could then mint tokens of their own).
fn token_may_touch(caller: &Caller, role: Role) -> Result<(), ApiError> {
    if caller.is_token() && role > Role::Member {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "API tokens manage members and viewers only; sign in as an owner for that",
        ));
    }
    Ok(())
}

/// Roles an owner may hand out (admin is a platform role, not granted through the API).
fn grantable(role: Role) -> Result<&'static str, ApiError> {
    if role == Role::Admin {
        return Err(ApiError::new(
            ErrorCode::InvalidRole,
            "role must be owner, member or viewer",
        ));
    }
    Ok(role.as_str())
}

/// The tenant's users.
#[utoipa::path(tag = "team", responses((status = 200, body = [UserView])))]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
) -> Result<web::Json<Vec<UserView>>, ApiError> {
    let users = store::list_tenant_users(&state.db, caller.tenant_id).await?;
    Ok(web::Json(users.iter().map(UserView::from).collect()))
}

/// Adds a team member (or another owner, or a viewer).
#[utoipa::path(tag = "team", request_body = CreateUserRequest, responses(
    (status = 201, body = UserView),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = validate_email(&body.email)?;
    let display_name = required_text("display_name", &body.display_name)?;
    let role = grantable(body.role)?;
    token_may_touch(&caller, body.role)?;
    let hash = state.auth.hasher.hash(&body.password).await?;
    let now = Utc::now().naive_utc();
    let user = store::insert_user(
        &state.db,
        NewUser {
            tenant_id: Some(caller.tenant_id),
            email: &email,
            display_name,
            password_hash: &hash,
            role,
            is_active: true,
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .map_err(ApiError::on_conflict(ErrorCode::EmailTaken, EMAIL_TAKEN))?;
    audit.record("member.create", Target::User(user.id)).await;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

/// One user of the tenant.
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
) -> Result<web::Json<UserView>, ApiError> {
    let user = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(UserView::from(&user)))
}

/// Edits a user; owners cannot demote or disable themselves (a tenant keeps its owner). Setting
/// another user's `password` needs a browser session signed in within `auth.step_up_minutes`
/// and makes the user choose their own at next sign-in; one's own password changes only with
/// `POST /me/password`. API tokens cannot set passwords nor touch owners.
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), request_body = UpdateUserRequest, responses(
    (status = 200, body = UserView),
    (status = 403, body = crate::web::ErrorBody),
    (status = 404, body = crate::web::ErrorBody)
))]
#[patch("/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<UpdateUserRequest>,
) -> Result<web::Json<UserView>, ApiError> {
    let target = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    let demoting_self = target.id == caller.user.id
        && (body.role.is_some_and(|r| r != target.role()) || body.is_active == Some(false));
    if demoting_self {
        return Err(ApiError::new(
            ErrorCode::CannotChangeSelf,
            "you cannot change your own role or disable yourself",
        ));
    }
    if target.role() == Role::Admin && caller.role != Role::Admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only admins edit admins",
        ));
    }
    token_may_touch(&caller, target.role())?;
    if let Some(role) = body.role {
        token_may_touch(&caller, role)?;
    }
    let mut patch = UserPatch {
        display_name: match &body.display_name {
            Some(name) => Some(required_text("display_name", name)?.to_string()),
            None => None,
        },
        role: body.role.map(grantable).transpose()?.map(str::to_string),
        is_active: body.is_active,
        ..Default::default()
    };
    if let Some(password) = &body.password {
        check_password_reset(&state, &caller, target.id)?;
        patch.password_hash = Some(state.auth.hasher.hash(password).await?);
        patch.must_change_password = Some(true);
    }
    let resets_password = patch.password_hash.is_some();
    let ends_sessions = resets_password || body.is_active == Some(false);
    let changes_access = ends_sessions || body.role.is_some() || body.is_active.is_some();
    let user = store::update_user(&state.db, caller.tenant_id, target.id, patch).await?;
    if ends_sessions {
        store::delete_user_sessions(&state.db, user.id).await?;
    }
    if changes_access {
        state.auth.changes.user_changed(user.id);
    }
    audit.record("member.update", Target::User(user.id)).await;
    if user.role != target.role {
        let detail = serde_json::json!({ "from": target.role, "to": user.role });
        audit
            .record("member.role_change", Target::User(user.id))
            .detail(detail)
            .await;
    }
    if resets_password {
        // The user learns of it at next sign-in (they must set their own password) and here.
        audit
            .record("member.password_reset", Target::User(user.id))
            .await;
    }
    Ok(web::Json(UserView::from(&user)))
}

/// Gives another user a one-time password chosen by the server and shows it once: their
/// sessions end, and at next sign-in they must choose their own. The same rules as setting a
/// `password` with `PATCH /users/{id}`: not one's own, not from an API token, only from a
/// sign-in less than `auth.step_up_minutes` old (403 `reauthentication_required`).
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), responses(
    (status = 200, body = PasswordResetView),
    (status = 403, body = crate::web::ErrorBody),
    (status = 404, body = crate::web::ErrorBody)
))]
#[post("/users/{id}/password-reset")]
pub async fn reset_password(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<web::Json<PasswordResetView>, ApiError> {
    let target = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    if target.role() == Role::Admin && caller.role != Role::Admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only admins reset admins' passwords",
        ));
    }
    token_may_touch(&caller, target.role())?;
    check_password_reset(&state, &caller, target.id)?;
    let password = secret::new_password();
    let patch = UserPatch {
        password_hash: Some(state.auth.hasher.hash(&password).await?),
        must_change_password: Some(true),
        ..Default::default()
    };
    let user = store::update_user(&state.db, caller.tenant_id, target.id, patch).await?;
    store::delete_user_sessions(&state.db, user.id).await?;
    state.auth.changes.user_changed(user.id);
    audit
        .record("member.password_reset", Target::User(user.id))
        .await;
    Ok(web::Json(PasswordResetView { password }))
}

/// Whether `caller` may set the password of user `target_id`: never their own (that needs the
/// current one, at `/me/password`), never from an API token, and only from a fresh sign-in.
fn check_password_reset(state: &AppState, caller: &Caller, target_id: i64) -> Result<(), ApiError> {
    if target_id == caller.user.id {
        return Err(ApiError::new(
            ErrorCode::CannotChangeSelf,
            "change your own password with POST /me/password (it needs the current one)",
        ));
    }
    if caller.is_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "API tokens cannot set passwords",
        ));
    }
    let fresh = Duration::minutes(state.settings.auth.step_up_minutes as i64);
    if !caller.signed_in_within(Utc::now().naive_utc(), fresh) {
        return Err(ApiError::new(
            ErrorCode::ReauthenticationRequired,
            format!(
                "setting another user's password needs a sign-in less than {} minutes old; sign in again",
                state.settings.auth.step_up_minutes
            ),
        ));
    }
    Ok(())
}

/// Removes a user with their sessions, tokens and assignments.
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/users/{id}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let target = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    if target.id == caller.user.id {
        return Err(ApiError::new(
            ErrorCode::CannotChangeSelf,
            "you cannot delete yourself",
        ));
    }
    if target.role() == Role::Admin && caller.role != Role::Admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only admins remove admins",
        ));
    }
    token_may_touch(&caller, target.role())?;
    store::delete_user(&state.db, caller.tenant_id, target.id).await?;
    state.auth.changes.user_changed(target.id);
    audit.record("member.delete", Target::User(target.id)).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The devices assigned to a user.
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), responses(
    (status = 200, body = AssignedDevices),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/users/{id}/devices")]
pub async fn get_user_devices(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    id: web::Path<i64>,
) -> Result<web::Json<AssignedDevices>, ApiError> {
    let user = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    Ok(web::Json(AssignedDevices::of(&state, user.id).await?))
}

/// Replaces the devices assigned to a user; every id must be a device of the tenant (404).
#[utoipa::path(tag = "team", params(("id" = i64, Path, description = "user id")), request_body = DeviceAssignment, responses(
    (status = 200, body = AssignedDevices),
    (status = 404, body = crate::web::ErrorBody)
))]
#[put("/users/{id}/devices")]
pub async fn set_user_devices(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
    body: web::Json<DeviceAssignment>,
) -> Result<web::Json<AssignedDevices>, ApiError> {
    let user = store::get_tenant_user(&state.db, caller.tenant_id, *id).await?;
    store::set_assigned_devices(&state.db, caller.tenant_id, user.id, &body.device_ids).await?;
    state.auth.changes.user_changed(user.id);
    audit.record("member.devices", Target::User(user.id)).await;
    Ok(web::Json(AssignedDevices::of(&state, user.id).await?))
}
