//! Who is calling: the one place requests are authenticated and authorized.
//!
//! A handler takes `Auth<R>` where `R` names the least role (and token scope) the route needs:
//! [`require::Viewer`], [`require::Member`], [`require::Owner`] or [`require::Admin`]. There is no
//! other way to learn the caller's tenant, so a tenant-scoped route cannot be written without
//! choosing its requirement. Credentials, in order: `Authorization: Bearer <api token>`, then the
//! session cookie. Cookie-authenticated state-changing requests must pass the CSRF check (same
//! origin, and `X-CSRF-Token` equal to the session's token); bearer requests are exempt.
//!
//! Answers: 401 without valid credentials, 403 when the role or scope is insufficient. Object ids
//! of another tenant are 404, enforced by the tenant-scoped stores and [`Caller::can_see_device`].

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{Duration as ChronoDuration, NaiveDateTime, Utc};

use super::model::{Role, Scope, User};
use super::secret;
use super::store;
use crate::web::{ApiError, AppState};

/// Session cookie name with the `__Host-` prefix (Secure, Path=/, no Domain).
pub const SECURE_COOKIE: &str = "__Host-wafleet_session";
/// Session cookie name when `auth.secure_cookies` is off (plain http on a LAN).
pub const PLAIN_COOKIE: &str = "wafleet_session";
/// Header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Last-seen and last-used stamps are written at most this often (seconds).
const TOUCH_EVERY_SECS: i64 = 60;

/// The session cookie's name under the current settings.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        PLAIN_COOKIE
    }
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
            let caller = outcome?.ok_or_else(|| unauthenticated("sign in or send an API token"))?;
            authorize::<R>(&caller)?;
            Ok(Auth {
                caller,
                _requirement: PhantomData,
            })
        })
    }
}

/// Checks role and scope against `R`.
pub fn authorize<R: Requirement>(caller: &Caller) -> Result<(), ApiError> {
    if caller.role < R::ROLE {
        return Err(forbidden("your role does not allow this"));
    }
    if let Credential::Token { scopes, .. } = &caller.credential {
        if !scopes.contains(&R::SCOPE) {
            return Err(forbidden(&format!(
                "this token lacks the {:?} scope",
                R::SCOPE.as_str()
            )));
        }
    }
    Ok(())
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
    resolve(req, token)
        .await?
        .ok_or_else(|| unauthenticated("sign in or send an API token"))
}

/// Like [`authenticate`], but `Ok(None)` when the request carries no credentials at all.
async fn resolve(req: &HttpRequest, token: Option<String>) -> Result<Option<Caller>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let now = Utc::now().naive_utc();
    if let Some(token) = token {
        return token_caller(state, &token, now).await.map(Some);
    }
    let Some(cookie) = req.cookie(cookie_name(state.settings.auth.secure_cookies)) else {
        return Ok(None);
    };
    let caller = session_caller(state, cookie.value(), now).await?;
    check_csrf(req, &caller)?;
    Ok(Some(caller))
}

/// Looks up an API token.
async fn token_caller(
    state: &AppState,
    token: &str,
    now: NaiveDateTime,
) -> Result<Caller, ApiError> {
    let (row, user) = store::find_token(&state.db, &secret::digest(token))
        .await?
        .ok_or_else(|| unauthenticated("invalid or revoked API token"))?;
    if row
        .last_used_at
        .is_none_or(|t| (now - t).num_seconds() >= TOUCH_EVERY_SECS)
    {
        store::touch_token(&state.db, row.id, now).await?;
    }
    let credential = Credential::Token {
        token_id: row.id,
        scopes: Scope::parse_list(&row.scopes),
    };
    caller_for(state, user, Some(row.tenant_id), credential).await
}

/// Looks up a live browser session.
async fn session_caller(
    state: &AppState,
    cookie: &str,
    now: NaiveDateTime,
) -> Result<Caller, ApiError> {
    let idle = ChronoDuration::minutes(state.settings.auth.session_idle_minutes as i64);
    let (session, user) = store::find_session(&state.db, &secret::digest(cookie), now, now - idle)
        .await?
        .ok_or_else(|| unauthenticated("your session has expired; sign in again"))?;
    if (now - session.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
        store::touch_session(&state.db, session.id, now).await?;
    }
    let tenant = user.tenant_id;
    let credential = Credential::Session {
        session_id: session.id,
        csrf_token: session.csrf_token,
    };
    caller_for(state, user, tenant, credential).await
}

/// Builds the caller once the credential is known to be valid.
async fn caller_for(
    state: &AppState,
    user: User,
    tenant_id: Option<i64>,
    credential: Credential,
) -> Result<Caller, ApiError> {
    if !user.is_active {
        return Err(unauthenticated("this account is disabled"));
    }
    let tenant_id = tenant_id
        .or(user.tenant_id)
        .ok_or_else(|| forbidden("this account belongs to no tenant"))?;
    let role = user.role();
    let assigned_devices = if role == Role::Member {
        Some(store::assigned_device_ids(&state.db, user.id).await?)
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

/// 401 with a reason.
fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// 403 with a reason.
fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// 403 for a failed CSRF check.
fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", message)
}
