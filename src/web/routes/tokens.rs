//! API tokens: created by an owner (or admin) in a browser session, shown once, stored as a
//! digest, revoked at once by deletion.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::audit::Target;
use crate::auth::model::{ApiToken, NewApiToken, Role, Scope};
use crate::auth::{secret, store};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::input::required_text;
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// Characters of a token kept to recognise it in lists (`wfl_` + 4).
const SHOWN_PREFIX_LEN: usize = 8;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_tokens)
        .service(create_token)
        .service(delete_token);
}

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    /// Label, e.g. the integration using it.
    pub name: String,
    /// Any of `read`, `write`, `admin` (admin only for admins).
    pub scopes: Vec<Scope>,
}

/// The example body of `POST /tokens` in the OpenAPI document.
fn token_example() -> serde_json::Value {
    serde_json::json!({ "name": "CRM sync", "scopes": ["read", "write"] })
}

/// A token as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Last use.
    pub last_used_at: Option<chrono::DateTime<Utc>>,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            scopes: Scope::parse_list(&t.scopes),
            last_used_at: t.last_used_at.map(utc),
            created_at: utc(t.created_at),
        }
    }
}

/// A freshly created token: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret; send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The stored view.
    #[serde(flatten)]
    pub view: TokenView,
}

/// The tenant's tokens.
#[utoipa::path(tag = "tokens", responses((status = 200, body = [TokenView])))]
#[get("/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
) -> Result<web::Json<Vec<TokenView>>, ApiError> {
    let tokens = store::list_tokens(&state.db, caller.tenant_id).await?;
    Ok(web::Json(tokens.iter().map(TokenView::from).collect()))
}

/// Creates a token acting as the caller, limited to its scopes. Only from a browser session
/// (a token cannot mint tokens).
#[utoipa::path(tag = "tokens", request_body(content = CreateTokenRequest, examples(
    ("integration" = (summary = "A token for an integration", value = json!(token_example())))
)), responses(
    (status = 201, body = CreatedToken),
    (status = 400, body = crate::web::ErrorBody)
))]
#[post("/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    body: web::Json<CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    if caller.is_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "tokens are created from a signed-in session",
        ));
    }
    let name = required_text("name", &body.name)?;
    let mut scopes = body.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidScopes,
            "give at least one scope",
        ));
    }
    if scopes.contains(&Scope::Admin) && caller.role != Role::Admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only admins can create admin tokens",
        ));
    }
    let token = secret::new_api_token();
    let scope_list = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let row = store::insert_token(
        &state.db,
        NewApiToken {
            tenant_id: caller.tenant_id,
            user_id: caller.user.id,
            name,
            token_hash: &secret::digest(&token),
            prefix: &token[..SHOWN_PREFIX_LEN.min(token.len())],
            scopes: &scope_list,
            created_at: Utc::now().naive_utc(),
        },
    )
    .await?;
    let detail = serde_json::json!({ "name": row.name, "scopes": scope_list });
    audit
        .record("token.create", Target::Token(row.id))
        .detail(detail)
        .await;
    Ok(HttpResponse::Created().json(CreatedToken {
        token,
        view: TokenView::from(&row),
    }))
}

/// Revokes a token; the next request with it gets 401.
#[utoipa::path(tag = "tokens", params(("id" = i64, Path, description = "token id")), responses(
    (status = 204),
    (status = 404, body = crate::web::ErrorBody)
))]
#[delete("/tokens/{id}")]
pub async fn delete_token(
    state: web::Data<AppState>,
    caller: Auth<require::Owner>,
    audit: Audit,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let row = store::delete_token(&state.db, caller.tenant_id, *id).await?;
    state.auth.changes.user_changed(row.user_id);
    audit.record("token.revoke", Target::Token(row.id)).await;
    Ok(HttpResponse::NoContent().finish())
}
