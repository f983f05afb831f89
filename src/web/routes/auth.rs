//! Sign-in, sign-out, sign-up, the caller's profile and password change.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::model::{NewSession, NewUser, Role, User, UserPatch};
use crate::auth::{secret, store, Credential};
use crate::web::audit::Audit;
use crate::web::auth::{check_same_origin, cookie_name, require, Auth};
use crate::web::input::{client_ip, required_text, validate_email, EMAIL_TAKEN};
use crate::web::views::UserView;
use crate::web::{ApiError, AppState, ErrorCode};

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
    audit: Audit,
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
            ErrorCode::RateLimited,
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
            let (tenant, actor) = (
                other.as_ref().and_then(|u| u.tenant_id),
                other.map(|u| u.id),
            );
            let target = Target::Email(email);
            audit
                .record("auth.login_failed", target)
                .by(tenant, actor)
                .await;
            return Err(ApiError::new(
                ErrorCode::InvalidCredentials,
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
    let target = Target::User(user.id);
    audit
        .record("auth.login", target)
        .by(user.tenant_id, Some(user.id))
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
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    audit: Audit,
) -> Result<HttpResponse, ApiError> {
    if let Credential::Session { session_id, .. } = caller.credential {
        store::delete_session(&state.db, session_id).await?;
        audit.record("auth.logout", None).await;
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
    audit: Audit,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req)?;
    if !state.settings.auth.allow_signup {
        return Err(ApiError::new(
            ErrorCode::SignupDisabled,
            "sign-up is disabled on this server; ask an administrator for an account",
        ));
    }
    let email = validate_email(&body.email)?;
    let company = required_text("company", &body.company)?;
    let display_name = required_text("display_name", &body.display_name)?;
    let hash = state.auth.hasher.hash(&body.password).await?;
    if store::find_user_by_email(&state.db, &email)
        .await?
        .is_some()
    {
        return Err(ApiError::new(ErrorCode::EmailTaken, EMAIL_TAKEN));
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
    .map_err(ApiError::on_conflict(ErrorCode::EmailTaken, EMAIL_TAKEN))?;
    let owner = Some(user.id);
    audit
        .record("auth.signup", None)
        .by(Some(tenant.id), owner)
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
    audit: Audit,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    if caller.is_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "API tokens cannot change passwords",
        ));
    }
    let ok = state
        .auth
        .hasher
        .verify(&body.current_password, Some(&caller.user.password_hash))
        .await;
    if !ok {
        return Err(ApiError::new(
            ErrorCode::WrongPassword,
            "the current password is wrong",
        ));
    }
    let hash = state.auth.hasher.hash(&body.new_password).await?;
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
    audit
        .record("auth.password_changed", Target::User(user.id))
        .await;
    start_session(&req, &state, &user, StatusCode::OK).await
}
