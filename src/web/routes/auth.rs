//! Sign-in, sign-out, sign-up, the caller's profile and password change.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{client_ip, utc};
use crate::audit::{self, AuditEntry};
use crate::auth::caller::{check_same_origin, cookie_name, Credential};
use crate::auth::model::{NewSession, NewUser, Role, User, UserPatch};
use crate::auth::{require, secret, store, Auth};
use crate::db::DbError;
use crate::web::{ApiError, AppState};

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(login)
        .service(logout)
        .service(signup)
        .service(me)
        .service(change_password);
}

/// Credentials for `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Login email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Whether the account can sign in.
    pub is_active: bool,
    /// Last sign-in.
    pub last_login_at: Option<chrono::DateTime<Utc>>,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: user.role(),
            is_active: user.is_active,
            last_login_at: user.last_login_at.map(utc),
            created_at: utc(user.created_at),
        }
    }
}

/// Answer to a successful sign-in: the user and the CSRF token for later writes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Who signed in.
    pub user: UserView,
    /// Send as `X-CSRF-Token` on every state-changing request made with the cookie.
    pub csrf_token: String,
}

/// Signs in with email and password; sets the session cookie (a new one on every sign-in).
/// Five failures a minute per account or address answer 429 with `Retry-After`.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = SessionView),
    (status = 401, body = crate::web::ErrorBody),
    (status = 429, body = crate::web::ErrorBody)
))]
#[post("/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req)?;
    let email = body.email.trim().to_lowercase();
    let ip = client_ip(&req);
    let account_key = format!("acct:{email}");
    let keys = vec![
        account_key.clone(),
        format!("ip:{}", ip.as_deref().unwrap_or("unknown")),
    ];
    if let Err(wait) = state.auth.limiter.check(&keys) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed sign-ins; try again later",
        )
        .with_retry_after(wait));
    }
    let user = store::find_user_by_email(&state.db, &email).await?;
    let verified = state
        .auth
        .hasher
        .verify(
            &body.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await;
    let user = match user {
        Some(user) if verified && user.is_active => user,
        other => {
            state.auth.limiter.record_failure(&keys);
            audit::record(
                &state.db,
                AuditEntry {
                    tenant_id: other.as_ref().and_then(|u| u.tenant_id),
                    actor_user_id: other.as_ref().map(|u| u.id),
                    action: "auth.login_failed",
                    target: Some(format!("email:{email}")),
                    ip,
                    ..Default::default()
                },
            )
            .await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong email or password",
            ));
        }
    };
    state.auth.limiter.clear(&account_key);
    // Rotation: a session cookie sent along with the sign-in is ended, never reused.
    if let Some(old) = req.cookie(cookie_name(state.settings.auth.secure_cookies)) {
        store::delete_session_by_hash(&state.db, &secret::digest(old.value())).await?;
    }
    store::touch_login(&state.db, user.id).await?;
    audit::record(
        &state.db,
        AuditEntry {
            tenant_id: user.tenant_id,
            actor_user_id: Some(user.id),
            action: "auth.login",
            target: Some(format!("user:{}", user.id)),
            ip: ip.clone(),
            ..Default::default()
        },
    )
    .await;
    start_session(&req, &state, &user, StatusCode::OK).await
}

/// Creates a session for `user` and answers with its cookie and CSRF token.
async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let token = secret::new_session_token();
    let csrf_token = secret::random_hex(16);
    let now = Utc::now().naive_utc();
    let max_hours = state.settings.auth.session_max_hours as i64;
    let ip = client_ip(req);
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect::<String>());
    store::insert_session(
        &state.db,
        NewSession {
            user_id: user.id,
            token_hash: &secret::digest(&token),
            csrf_token: &csrf_token,
            ip: ip.as_deref(),
            user_agent: user_agent.as_deref(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + ChronoDuration::hours(max_hours),
        },
    )
    .await?;
    let secure = state.settings.auth.secure_cookies;
    let cookie = Cookie::build(cookie_name(secure), token)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::hours(max_hours))
        .finish();
    Ok(HttpResponse::build(status)
        .cookie(cookie)
        .json(SessionView {
            user: UserView::from(user),
            csrf_token,
        }))
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(tag = "auth", responses((status = 204), (status = 401, body = crate::web::ErrorBody)))]
#[post("/auth/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<HttpResponse, ApiError> {
    if let Credential::Session { session_id, .. } = caller.credential {
        store::delete_session(&state.db, session_id).await?;
        audit::record(
            &state.db,
            AuditEntry {
                tenant_id: Some(caller.tenant_id),
                actor_user_id: Some(caller.user.id),
                action: "auth.logout",
                ip: client_ip(&req),
                ..Default::default()
            },
        )
        .await;
    }
    let secure = state.settings.auth.secure_cookies;
    let mut removal = Cookie::build(cookie_name(secure), "")
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish();
    removal.make_removal();
    Ok(HttpResponse::NoContent().cookie(removal).finish())
}

/// A new business and its owner, for `POST /auth/signup`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    /// Business name.
    pub company: String,
    /// Owner's name.
    pub display_name: String,
    /// Owner's email.
    pub email: String,
    /// Owner's password.
    pub password: String,
}

/// Creates a tenant and its owner and signs the owner in (only when `auth.allow_signup`).
#[utoipa::path(tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SessionView),
    (status = 403, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[post("/auth/signup")]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req)?;
    if !state.settings.auth.allow_signup {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_disabled",
            "sign-up is disabled on this server; ask an administrator for an account",
        ));
    }
    let email = validate_email(&body.email)?;
    let company = required_text("company", &body.company)?;
    let display_name = required_text("display_name", &body.display_name)?;
    let hash = hash_password(&state, &body.password).await?;
    if store::find_user_by_email(&state.db, &email)
        .await?
        .is_some()
    {
        return Err(email_taken());
    }
    let tenant =
        store::insert_tenant(&state.db, company, &state.settings.tenant.default_time_zone).await?;
    let now = Utc::now().naive_utc();
    let user = store::insert_user(
        &state.db,
        NewUser {
            tenant_id: Some(tenant.id),
            email: &email,
            display_name,
            password_hash: &hash,
            role: Role::Owner.as_str(),
            is_active: true,
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .map_err(conflict_as_email_taken)?;
    audit::record(
        &state.db,
        AuditEntry {
            tenant_id: Some(tenant.id),
            actor_user_id: Some(user.id),
            action: "auth.signup",
            ip: client_ip(&req),
            ..Default::default()
        },
    )
    .await;
    start_session(&req, &state, &user, StatusCode::CREATED).await
}

/// The caller, their tenant and, for browser sessions, the CSRF token.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// Who is calling.
    pub user: UserView,
    /// Their tenant.
    pub tenant: TenantView,
    /// For members: the device ids assigned to them (others see every device).
    pub assigned_devices: Option<Vec<i64>>,
    /// The CSRF token of the current session (absent for API tokens).
    pub csrf_token: Option<String>,
}

/// A tenant as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// IANA time zone for schedules and displayed times.
    pub time_zone: String,
}

/// Who am I: user, tenant, assignments, CSRF token.
#[utoipa::path(tag = "auth", responses((status = 200, body = MeView), (status = 401, body = crate::web::ErrorBody)))]
#[get("/me")]
pub async fn me(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
) -> Result<web::Json<MeView>, ApiError> {
    let tenant = store::get_tenant(&state.db, caller.tenant_id).await?;
    let csrf_token = match &caller.credential {
        Credential::Session { csrf_token, .. } => Some(csrf_token.clone()),
        Credential::Token { .. } => None,
    };
    Ok(web::Json(MeView {
        user: UserView::from(&caller.user),
        tenant: TenantView {
            id: tenant.id,
            name: tenant.name,
            time_zone: tenant.time_zone,
        },
        assigned_devices: caller.assigned_devices.clone(),
        csrf_token,
    }))
}

/// Body of `POST /me/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    pub current_password: String,
    /// The new password (10 to 256 characters).
    pub new_password: String,
}

/// Changes the caller's password, ends every session of the account and starts a fresh one
/// for this browser. Not available to API tokens.
#[utoipa::path(tag = "auth", request_body = ChangePasswordRequest, responses(
    (status = 200, body = SessionView),
    (status = 400, body = crate::web::ErrorBody)
))]
#[post("/me/password")]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    if caller.is_token() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "API tokens cannot change passwords",
        ));
    }
    let ok = state
        .auth
        .hasher
        .verify(&body.current_password, Some(&caller.user.password_hash))
        .await;
    if !ok {
        return Err(ApiError::bad_request(
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let hash = hash_password(&state, &body.new_password).await?;
    let user = store::update_user(
        &state.db,
        caller.tenant_id,
        caller.user.id,
        UserPatch {
            password_hash: Some(hash),
            ..Default::default()
        },
    )
    .await?;
    store::delete_user_sessions(&state.db, user.id).await?;
    audit::record(
        &state.db,
        AuditEntry {
            tenant_id: Some(caller.tenant_id),
            actor_user_id: Some(user.id),
            action: "auth.password_changed",
            target: Some(format!("user:{}", user.id)),
            ip: client_ip(&req),
            ..Default::default()
        },
    )
    .await;
    start_session(&req, &state, &user, StatusCode::OK).await
}

/// Hashes a new password, answering 400 `weak_password` when it breaks the policy.
pub async fn hash_password(state: &AppState, password: &str) -> Result<String, ApiError> {
    state.auth.hasher.hash(password).await.map_err(|e| match e {
        crate::auth::password::PasswordError::Policy => {
            ApiError::bad_request("weak_password", e.to_string())
        }
        other => ApiError::internal(other),
    })
}

/// A trimmed, lower-cased email, or 400 `invalid_email`.
pub fn validate_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "email must look like name@example.com",
        ))
    }
}

/// A trimmed non-empty text of at most 200 characters, or 400 `invalid_<field>`.
pub fn required_text<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, ApiError> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be 1 to 200 characters"),
        ));
    }
    Ok(text)
}

/// 409 for an email already in use.
pub fn email_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "email_taken",
        "an account with this email exists",
    )
}

/// Maps a unique violation on insert to [`email_taken`].
pub fn conflict_as_email_taken(err: DbError) -> ApiError {
    match err {
        DbError::Conflict(_) => email_taken(),
        other => other.into(),
    }
}
