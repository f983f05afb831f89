//! Reading and checking what clients send, shared by the routes: the client's address, text
//! fields, emails, phone numbers in the tenant's country, and uploaded pictures.

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::{ApiError, AppState, ErrorCode};
use crate::broadcast::settings;
use crate::chat::media::{self, MediaStore};
use crate::phone;

/// Longest required text field, in characters.
const MAX_TEXT_CHARS: usize = 200;
/// Longest email, in bytes (RFC 5321).
const MAX_EMAIL_LEN: usize = 254;

/// The message of 409 `email_taken`.
pub const EMAIL_TAKEN: &str = "an account with this email exists";

/// The client's address as seen by this server (no proxy headers are trusted).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

/// A trimmed non-empty text of at most 200 characters, or 400 `invalid_field`.
pub fn required_text<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, ApiError> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{field} must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text)
}

/// A trimmed, lower-cased email, or 400 `invalid_email`.
pub fn validate_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL_LEN
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidEmail,
            "email must look like name@example.com",
        ))
    }
}

/// `raw` normalized to E.164 digits with the tenant's default country, or 422 `invalid_phone`.
pub async fn tenant_phone(state: &AppState, tenant_id: i64, raw: &str) -> Result<String, ApiError> {
    let effective = settings::effective(&state.db, &state.settings.broadcast, tenant_id).await?;
    Ok(phone::normalize(raw, effective.country)?)
}

/// Reads an uploaded image (the raw request body, at most 32 MiB), prepares it for WhatsApp
/// (resized, JPEG) and stores it; answers its SHA-256 in the media store. 413 `too_large`
/// beyond the limit, 422 `invalid_image` for a picture that cannot be read.
pub async fn receive_image(
    state: &AppState,
    payload: &mut web::Payload,
) -> Result<String, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?;
        if body.len() + chunk.len() > media::MAX_UPLOAD_BYTES {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                "the image is larger than 32 MiB",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let prepared = media::prepare_image_bounded(body).await?;
    let store = MediaStore::new(state.settings.chat.media_dir.clone());
    web::block(move || store.save(&prepared.data))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("cannot store the image: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_email_checks() {
        assert_eq!(required_text("name", "  Acme ").unwrap(), "Acme");
        assert_eq!(
            required_text("name", " ").unwrap_err().code(),
            ErrorCode::InvalidField
        );
        assert!(required_text("name", &"x".repeat(201)).is_err());
        assert_eq!(validate_email(" A@B.co ").unwrap(), "a@b.co");
        for bad in ["a", "@b", "a@", "a@b@c", "a b@c"] {
            assert_eq!(
                validate_email(bad).unwrap_err().code(),
                ErrorCode::InvalidEmail
            );
        }
    }
}
