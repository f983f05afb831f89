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
use crate::auth::rate_limit::Reservation;
use crate::auth::{secret, store, Credential};
use crate::web::audit::Audit;
use crate::web::auth::{check_same_origin, cookie_name, require, Auth};
use crate::web::input::{client_ip, login_fields, required_text, validate_email, EMAIL_TAKEN};
use crate::web::views::{TenantView, UserView};
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

/// The example body of `POST /auth/login` in the OpenAPI document.
fn login_example() -> serde_json::Value {
    serde_json::json!({
        "email": "owner@shop.example",
        "password": "correct horse battery staple"
    })
}

/// Answer to a successful sign-in: the user and the CSRF token for later writes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Who signed in.
    pub user: UserView,
    /// Send as `X-CSRF-Token` on every state-changing request made with the cookie.
    pub csrf_token: String,
    /// The password was set by someone else: only `POST /me/password`, `GET /me` and sign-out
    /// work until the user sets their own.
    pub must_change_password: bool,
}

/// Signs in with email and password; sets the session cookie (a new one on every sign-in).
/// Five failures a minute per client address, or a running or delayed attempt on the account
/// (1 s doubling per failure from the fifth, at most `auth.login_max_delay_secs`), answer 429
/// with `Retry-After`. An email over 254 bytes or a password over 256 characters is 400.
#[utoipa::path(tag = "auth", request_body(content = LoginRequest, examples(
    ("owner" = (summary = "An owner signs in", value = json!(login_example())))
)), responses(
    (status = 200, body = SessionView),
    (status = 400, body = crate::web::ErrorBody),
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
    let LoginRequest { email, password } = body.into_inner();
    let email = login_fields(&email, &password)?;
    let reservation = reserve_attempt(&req, &state, &email)?;
    // The attempt runs to its end on a task of its own: a client that goes away mid-hash still
    // has its failure counted and audited.
    let attempt = actix_web::rt::spawn(verify_login(
        state.clone(),
        audit,
        email,
        password,
        reservation,
    ));
    let user = attempt.await.map_err(ApiError::internal)??;
    // Rotation: a session cookie sent along with the sign-in is ended, never reused.
    if let Some(old) = req.cookie(cookie_name(state.settings.auth.secure_cookies)) {
        store::delete_session_by_hash(&state.db, &secret::digest(old.value())).await?;
    }
    start_session(&req, &state, &user, StatusCode::OK).await
}

/// Takes the throttle's reservation for a password check of `email` from this client, or 429.
fn reserve_attempt(
    req: &HttpRequest,
    state: &AppState,
    email: &str,
) -> Result<Reservation, ApiError> {
    let ip = client_ip(req);
    state
        .auth
        .limiter
        .reserve(email, ip.as_deref().unwrap_or("unknown"))
        .map_err(|wait| {
            ApiError::new(
                ErrorCode::RateLimited,
                "too many failed sign-ins; try again later",
            )
            .with_retry_after(wait)
        })
}

/// Checks the password, settles the reservation and audits the outcome; the signed-in user.
async fn verify_login(
    state: web::Data<AppState>,
    audit: Audit,
    email: String,
    password: String,
    reservation: Reservation,
) -> Result<User, ApiError> {
    let user = store::find_user_by_email(&state.db, &email).await?;
    let verified = state
        .auth
        .hasher
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await;
    match user {
        Some(user) if verified && user.is_active => {
            reservation.succeeded();
            store::touch_login(&state.db, user.id).await?;
            audit
                .record("auth.login", Target::User(user.id))
                .by(user.tenant_id, Some(user.id))
                .await;
            Ok(user)
        }
        other => {
            reservation.failed();
            let (tenant, actor) = (
                other.as_ref().and_then(|u| u.tenant_id),
                other.map(|u| u.id),
            );
            audit
                .record("auth.login_failed", Target::Email(email))
                .by(tenant, actor)
                .await;
            Err(ApiError::new(
                ErrorCode::InvalidCredentials,
                "wrong email or password",
            ))
        }
    }
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
            must_change_password: user.must_change_password,
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
        state.auth.changes.user_changed(caller.user.id);
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
    /// Until the user sets a new password (`POST /me/password`), every other route is 403
    /// `password_change_required`.
    pub must_change_password: bool,
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
        tenant: TenantView::from(&tenant),
        assigned_devices: caller.assigned_devices.clone(),
        csrf_token,
        must_change_password: caller.user.must_change_password,
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

/// Changes the caller's password (the only way to change one's own), ends every session of the
/// account and starts a fresh one for this browser. Not available to API tokens. Wrong current
/// passwords count against the sign-in throttle (429 like sign-in).
#[utoipa::path(tag = "auth", request_body = ChangePasswordRequest, responses(
    (status = 200, body = SessionView),
    (status = 400, body = crate::web::ErrorBody),
    (status = 429, body = crate::web::ErrorBody)
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
    login_fields(&caller.user.email, &body.current_password)?;
    if body.new_password == body.current_password {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            "the new password must differ from the current one",
        ));
    }
    let reservation = reserve_attempt(&req, &state, &caller.user.email)?;
    let ok = state
        .auth
        .hasher
        .verify(&body.current_password, Some(&caller.user.password_hash))
        .await;
    if !ok {
        reservation.failed();
        return Err(ApiError::new(
            ErrorCode::WrongPassword,
            "the current password is wrong",
        ));
    }
    reservation.succeeded();
    let hash = state.auth.hasher.hash(&body.new_password).await?;
    let user = store::update_user(
        &state.db,
        caller.tenant_id,
        caller.user.id,
        UserPatch {
            password_hash: Some(hash),
            must_change_password: Some(false),
            ..Default::default()
        },
    )
    .await?;
    store::delete_user_sessions(&state.db, user.id).await?;
    state.auth.changes.user_changed(user.id);
    audit
        .record("auth.password_changed", Target::User(user.id))
        .await;
    start_session(&req, &state, &user, StatusCode::OK).await
}
