//! The dashboard: plain HTML/CSS/JS from `static/`, compiled into the binary (no build step, no
//! files to ship beside it). Pages are served at their names, assets under `/static/`.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use rust_embed::Embed;

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

/// Scripts, styles and images of the dashboard.
#[get("/static/{path:.*}")]
pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&path, ASSET_MAX_AGE_SECS)
}
