//! Who is calling, over HTTP: the one place requests are authenticated and authorized.
//!
//! A handler takes `Auth<R>` where `R` names the least role (and token scope) the route needs:
//! [`require::Viewer`], [`require::Member`], [`require::Owner`] or [`require::Admin`]. There is no
//! other way to learn the caller's tenant, so a tenant-scoped route cannot be written without
//! choosing its requirement. Credentials, in order: `Authorization: Bearer <api token>`, then the
//! session cookie. Cookie-authenticated state-changing requests must pass the CSRF check (same
//! origin, and `X-CSRF-Token` equal to the session's token); bearer requests are exempt.
//!
//! A user whose password someone else set (`must_change_password`) gets 403
//! `password_change_required` everywhere but `/me`, `/me/password` and `/auth/logout`.
//!
//! What a credential resolves to is decided by [`crate::auth::caller`]; this module reads the
//! credentials off the request and answers 401 without valid credentials, 403 when the role or
//! scope is insufficient. Object ids of another tenant are 404, enforced by the tenant-scoped
//! stores and [`Caller::can_see_device`].

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{Duration as ChronoDuration, Utc};

use super::{ApiError, AppState, ErrorCode};
use crate::auth::model::{Role, Scope};
use crate::auth::{caller, secret, Caller, Credential};

/// Session cookie name with the `__Host-` prefix (Secure, Path=/, no Domain).
pub const SECURE_COOKIE: &str = "__Host-wafleet_session";
/// Session cookie name when `auth.secure_cookies` is off (plain http on a LAN).
pub const PLAIN_COOKIE: &str = "wafleet_session";
/// Header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's name under the current settings.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        PLAIN_COOKIE
    }
}

/// A route's minimum role and the token scope it needs.
pub trait Requirement {
    /// Least role allowed.
    const ROLE: Role;
    /// Scope an API token must carry.
    const SCOPE: Scope;
}

/// The requirements routes choose from.
pub mod require {
    use super::{Requirement, Role, Scope};

    /// Anyone of the tenant, read-only (viewer and up; tokens with `read`).
    pub struct Viewer;
    /// Team members and up, changes allowed (tokens with `write`).
    pub struct Member;
    /// Tenant owners and admins (tokens with `write`, created by an owner).
    pub struct Owner;
    /// Platform admins only (tokens with `admin`, created by an admin).
    pub struct Admin;

    impl Requirement for Viewer {
        const ROLE: Role = Role::Viewer;
        const SCOPE: Scope = Scope::Read;
    }
    impl Requirement for Member {
        const ROLE: Role = Role::Member;
        const SCOPE: Scope = Scope::Write;
    }
    impl Requirement for Owner {
        const ROLE: Role = Role::Owner;
        const SCOPE: Scope = Scope::Write;
    }
    impl Requirement for Admin {
        const ROLE: Role = Role::Admin;
        const SCOPE: Scope = Scope::Admin;
    }
}

/// An authenticated caller meeting requirement `R`; derefs to [`Caller`].
pub struct Auth<R: Requirement> {
    caller: Caller,
    _requirement: PhantomData<R>,
}

impl<R: Requirement> Auth<R> {
    /// `caller` as meeting `R`, or 403 as the extractor answers: for callers authenticated
    /// elsewhere than this extractor (the MCP endpoint), so they pass the same check.
    pub fn check(caller: Caller) -> Result<Self, ApiError> {
        authorize::<R>(&caller)?;
        Ok(Auth {
            caller,
            _requirement: PhantomData,
        })
    }

    /// The caller, by value.
    pub fn into_caller(self) -> Caller {
        self.caller
    }
}

impl<R: Requirement> Deref for Auth<R> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// What [`authenticate_requests`] found, kept in the request's extensions.
#[derive(Clone)]
struct Authentication(Result<Option<Caller>, ApiError>);

/// Middleware: authenticates every `/api/` request before any handler extractor runs.
///
/// Extractors of one handler are polled together, so if authentication ran inside `Auth<R>` a
/// malformed body could answer 400 before the caller is known. Resolving here first makes
/// 401/403 come before any input validation. Requests without credentials cost no query.
pub async fn authenticate_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path().starts_with("/api/") {
        let outcome = resolve(req.request(), bearer_token(req.request())).await;
        req.extensions_mut().insert(Authentication(outcome));
    }
    next.call(req).await
}

/// The caller [`authenticate_requests`] resolved for this request, if credentials were valid
/// (`None` outside `/api/`, where the middleware does not run).
pub fn authenticated(req: &HttpRequest) -> Option<Caller> {
    match req.extensions().get::<Authentication>() {
        Some(Authentication(Ok(caller))) => caller.clone(),
        _ => None,
    }
}

impl<R: Requirement + 'static> FromRequest for Auth<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let known = req.extensions().get::<Authentication>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let outcome = match known {
                Some(Authentication(outcome)) => outcome,
                None => resolve(&req, bearer_token(&req)).await,
            };
            Auth::check(outcome?.ok_or_else(signed_out)?)
        })
    }
}

/// Checks role and scope against `R`.
pub fn authorize<R: Requirement>(caller: &Caller) -> Result<(), ApiError> {
    Ok(caller.allows(R::ROLE, R::SCOPE)?)
}

/// The bearer token of `Authorization`, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Resolves the caller from `token` (bearer or `?token=`) or else the session cookie, applying
/// the CSRF check to cookie-authenticated writes. 401 without credentials.
pub async fn authenticate(req: &HttpRequest, token: Option<String>) -> Result<Caller, ApiError> {
    resolve(req, token).await?.ok_or_else(signed_out)
}

/// The caller of an API token sent as `Authorization: Bearer`, resolved as for any route; a
/// session cookie does not count (for endpoints meant for programs, such as `/mcp`, which a
/// browser page must not reach with its user's cookie). 401 without a token.
pub async fn token_caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let token = bearer_token(req).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "send an API token as Authorization: Bearer <token>",
        )
    })?;
    authenticate(req, Some(token)).await
}

/// 401 for a request without credentials.
fn signed_out() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "sign in or send an API token")
}

/// Like [`authenticate`], but `Ok(None)` when the request carries no credentials at all.
async fn resolve(req: &HttpRequest, token: Option<String>) -> Result<Option<Caller>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let now = Utc::now().naive_utc();
    if let Some(token) = token {
        let caller = caller::by_token(&state.db, &token, now).await?;
        check_password_set(req, &caller)?;
        return Ok(Some(caller));
    }
    let Some(cookie) = req.cookie(cookie_name(state.settings.auth.secure_cookies)) else {
        return Ok(None);
    };
    let idle = ChronoDuration::minutes(state.settings.auth.session_idle_minutes as i64);
    let caller = caller::by_session(&state.db, cookie.value(), now, idle).await?;
    check_csrf(req, &caller)?;
    check_password_set(req, &caller)?;
    Ok(Some(caller))
}

/// Routes open to a user who must change their password first.
const OPEN_BEFORE_PASSWORD_CHANGE: &[&str] =
    &["/api/v1/me", "/api/v1/me/password", "/api/v1/auth/logout"];

/// 403 `password_change_required` for a user whose password someone else set, on every route
/// but reading `/me`, changing the password and signing out.
fn check_password_set(req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    if !caller.user.must_change_password || OPEN_BEFORE_PASSWORD_CHANGE.contains(&req.path()) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::PasswordChangeRequired,
        "set a new password (POST /api/v1/me/password) before anything else",
    ))
}

/// CSRF defence for cookie-authenticated writes: the request must come from our own origin
/// (`Sec-Fetch-Site`, else `Origin` against `Host`) and carry the session's CSRF token.
fn check_csrf(req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    check_same_origin(req)?;
    let Credential::Session { csrf_token, .. } = &caller.credential else {
        return Ok(());
    };
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if secret::constant_time_eq(sent, csrf_token) {
        Ok(())
    } else {
        Err(csrf_failed("missing or wrong X-CSRF-Token header"))
    }
}

/// Rejects cross-site browser requests (also used by login, which has no session yet).
pub fn check_same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(site) = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
    {
        return if matches!(site, "same-origin" | "none") {
            Ok(())
        } else {
            Err(csrf_failed("cross-site request refused"))
        };
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        // Not a browser (browsers send Origin on cross-origin writes); the token still applies.
        return Ok(());
    };
    let host = req.connection_info().host().to_string();
    let same = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host));
    if same {
        Ok(())
    } else {
        Err(csrf_failed("cross-origin request refused"))
    }
}

/// 403 for a failed CSRF check.
fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(ErrorCode::CsrfFailed, message)
}
