//! The dashboard: plain HTML/CSS/JS from `static/`, compiled into the binary (no build step, no
//! files to ship beside it). Pages are served at their names, assets under `/static/`.
//!
//! The API reference at `/api/docs` is one of these pages: RapiDoc, vendored under
//! `static/vendor/rapidoc/` (its README names the release), renders `/api/v1/openapi.json` with
//! nothing loaded from another origin.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpResponse};
use rust_embed::Embed;

use super::headers::DOCS_POLICY;
use super::ApiError;

/// Files under `static/`.
#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// How long browsers may cache assets; pages revalidate every time.
const ASSET_MAX_AGE_SECS: u32 = 300;

/// Answers an embedded file with its content type.
fn serve(path: &str, max_age: u32) -> Result<HttpResponse, ApiError> {
    let file = Assets::get(path).ok_or_else(|| ApiError::not_found("file"))?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    // Pages revalidate on every load, so a deploy is visible at once; assets may be cached.
    let cache = if path.ends_with(".html") {
        "no-cache".to_string()
    } else {
        format!("private, max-age={max_age}")
    };
    Ok(HttpResponse::Ok()
        .content_type(mime.as_ref())
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(file.data.into_owned()))
}

/// The dashboard's start page.
#[get("/")]
pub async fn index() -> Result<HttpResponse, ApiError> {
    serve("index.html", 0)
}

/// The WhatsApp-Web-like view of one device (the page reads the device id from its URL).
#[get("/device/{id}/whatsapp-web")]
pub async fn whatsapp_web(_id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    serve("whatsapp.html", 0)
}

/// A device's page: health, quarantine, its day against its cap, history, failures, actions.
#[get("/device/{id}")]
pub async fn device_page(_id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    serve("device.html", 0)
}

/// The team page (owners), also at `/static/team.html`.
#[get("/team")]
pub async fn team() -> Result<HttpResponse, ApiError> {
    serve("team.html", 0)
}

/// The settings page (every role; owners edit), also at `/static/settings.html`.
#[get("/settings")]
pub async fn settings() -> Result<HttpResponse, ApiError> {
    serve("settings.html", 0)
}

/// The signed-in user's profile page, also at `/static/profile.html`.
#[get("/profile")]
pub async fn profile() -> Result<HttpResponse, ApiError> {
    serve("profile.html", 0)
}

/// The API reference: RapiDoc over the OpenAPI document, for signed-in users. The page holds
/// no part of the document (its script fetches it, and sends a signed-out visitor to sign in),
/// so it is served to anyone like the other pages. Its Content-Security-Policy allows inline
/// styles, which RapiDoc needs (see [`DOCS_POLICY`]); every other page keeps the strict one.
#[get("/api/docs")]
pub async fn api_docs() -> Result<HttpResponse, ApiError> {
    let mut page = serve("api-docs.html", 0)?;
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_POLICY),
    );
    Ok(page)
}

/// Scripts, styles and images of the dashboard.
#[get("/static/{path:.*}")]
pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&path, ASSET_MAX_AGE_SECS)
}
