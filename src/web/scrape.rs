//! `/metrics`: the Prometheus text exposition, which tells fleet size and traffic and so is
//! never public. On the main listener it needs the `metrics.token` bearer or a platform admin;
//! with `metrics.listen` set it is served instead on a listener of its own (bind that to a
//! private address), and the main listener answers 404.

use actix_web::http::header::ContentType;
use actix_web::{get, web, App, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use super::auth::{authenticate, authorize, bearer_token, require};
use super::{ApiError, AppState};
use crate::auth::secret;

/// Prometheus metrics in the text exposition format, for the `metrics.token` bearer or a
/// platform admin (session or API token). 404 when `metrics.listen` serves them elsewhere.
#[utoipa::path(tag = "ops", responses(
    (status = 200, content_type = "text/plain", body = String),
    (status = 401, body = crate::web::ErrorBody),
    (status = 403, body = crate::web::ErrorBody)
))]
#[get("/metrics")]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.metrics.listen.is_empty() {
        return Err(ApiError::not_found("route"));
    }
    let bearer = bearer_token(&req);
    let expected = state.settings.metrics.token.expose_secret();
    let scraper = !expected.is_empty()
        && bearer
            .as_deref()
            .is_some_and(|token| secret::constant_time_eq(token, expected));
    if !scraper {
        let caller = authenticate(&req, bearer).await?;
        authorize::<require::Admin>(&caller)?;
    }
    render(&state)
}

/// The application of the `metrics.listen` listener: `/metrics` without credentials.
pub fn metrics_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .route("/metrics", web::get().to(open_metrics))
}

/// `/metrics` on its own listener.
async fn open_metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    render(&state)
}

/// The text exposition of every collector.
fn render(state: &AppState) -> Result<HttpResponse, ApiError> {
    for (pool_state, connections) in state.db.pool_status() {
        state
            .metrics
            .db_pool
            .with_label_values(&[pool_state])
            .set(connections);
    }
    let text = state.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType(
            "text/plain; version=0.0.4; charset=utf-8"
                .parse()
                .map_err(ApiError::internal)?,
        ))
        .body(text))
}
