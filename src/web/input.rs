//! Reading and checking what clients send, shared by the routes: the client's address (behind
//! trusted proxies), login fields, text fields, emails, phone numbers in the tenant's country,
//! and uploaded pictures.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::{ApiError, AppState, ErrorCode};
use crate::auth::password::MAX_PASSWORD_LEN;
use crate::broadcast::attachment::FileInfo;
use crate::broadcast::settings;
use crate::chat::media::files;
use crate::chat::media::{self, upload_budget, MediaStore, Reservation};
use crate::config::Cidr;
use crate::phone;
use crate::whatsapp::MessageKind;

/// Longest required text field, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest chat message accepted, in characters (WhatsApp's own limit is 65,536).
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// A chat message's text or caption: at most [`MAX_MESSAGE_CHARS`] characters, and not blank
/// when `required` (a message without a file); 400 `invalid_text` otherwise.
pub fn check_message_text(text: Option<&str>, required: bool) -> Result<(), ApiError> {
    let blank = text.is_none_or(|t| t.trim().is_empty());
    if (required && blank) || text.is_some_and(|t| t.chars().count() > MAX_MESSAGE_CHARS) {
        return Err(ApiError::new(
            ErrorCode::InvalidText,
            format!("text must be 1 to {MAX_MESSAGE_CHARS} characters (a caption may be empty)"),
        ));
    }
    Ok(())
}
/// Longest email, in bytes (RFC 5321).
const MAX_EMAIL_LEN: usize = 254;

/// The message of 409 `email_taken`.
pub const EMAIL_TAKEN: &str = "an account with this email exists";

/// The client's address: the TCP peer, or, when the peer is one of `server.trusted_proxies`,
/// the right-most address of `X-Forwarded-For` (else `Forwarded: for=`) that is not a trusted
/// proxy. Used by the login throttle, the audit log and sessions.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.server.trusted_proxies.as_slice())
        .unwrap_or_default();
    if !is_trusted(trusted, peer) {
        return Some(peer.to_string());
    }
    Some(client_behind(peer, trusted, &forwarded_chain(req)).to_string())
}

/// Whether `ip` is a trusted proxy.
fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|cidr| cidr.contains(ip))
}

/// Walks the forwarding chain from the trusted `peer` leftwards to the first untrusted hop; an
/// unreadable hop ends the walk at the proxy that wrote it; all trusted gives the left-most.
fn client_behind(peer: IpAddr, trusted: &[Cidr], chain: &[Option<IpAddr>]) -> IpAddr {
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(ip) = *hop else {
            return client;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            return ip;
        }
    }
    client
}

/// The addresses of `X-Forwarded-For` (every such header, in order), or else of the `for=`
/// parameters of `Forwarded`; `None` for an entry that is not an address.
fn forwarded_chain(req: &HttpRequest) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().map(|hop| parse_hop(hop)).collect();
    }
    values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then(|| parse_hop(value))
            })
        })
        .collect()
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `"[2001:db8::1]:80"`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.rsplit_once(':')?.0.parse().ok()
}

/// The login fields checked before any work (no database, throttle or audit sees an oversize
/// value): 400 `invalid_email` beyond 254 bytes, 400 `weak_password` beyond the longest
/// password. Returns the email trimmed and lower-cased.
pub fn login_fields(email: &str, password: &str) -> Result<String, ApiError> {
    if email.len() > MAX_EMAIL_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidEmail,
            format!("email must be at most {MAX_EMAIL_LEN} bytes"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN * 4 || password.chars().count() > MAX_PASSWORD_LEN {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            format!("password must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(email.trim().to_lowercase())
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

/// How long a picture upload waits for room in the upload budget before 503 `busy`.
const UPLOAD_WAIT: Duration = Duration::from_secs(30);
/// How long a picture's body may take to arrive once its room is reserved (408 after).
const UPLOAD_DEADLINE: Duration = Duration::from_secs(120);
/// Room reserved beyond the picture for a multipart form's other fields and boundaries.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Reads a picture upload within the process's upload budget and deadline: reserves room for
/// it ([`reserve_upload`]), then runs `read` (given the bytes reserved) for at most
/// [`UPLOAD_DEADLINE`] (408 `upload_timeout` after). Answers the reservation, to be held until
/// the picture is prepared, with what `read` answered.
pub async fn read_upload<T, F>(
    req: &HttpRequest,
    read: impl FnOnce(usize) -> F,
) -> Result<(Reservation, T), ApiError>
where
    F: std::future::Future<Output = Result<T, ApiError>>,
{
    let (room, declared) = reserve_upload(req).await?;
    let value = tokio::time::timeout(UPLOAD_DEADLINE, read(declared))
        .await
        .map_err(|_| upload_timeout())??;
    Ok((room, value))
}

/// The body length the request declares (`Content-Length`), if it declares one.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reserves room for a picture upload in the process's upload budget ([`upload_budget`]): the
/// request's declared Content-Length, or the upload limit when it declares none; both capped
/// at the limit (a longer body fails with 413 as it is read). Waits at most [`UPLOAD_WAIT`],
/// then 503 `busy` with `Retry-After`.
async fn reserve_upload(req: &HttpRequest) -> Result<(Reservation, usize), ApiError> {
    let limit = media::MAX_UPLOAD_BYTES as u64 + FORM_OVERHEAD;
    let declared = declared_length(req).map_or(limit, |n| n.min(limit));
    match tokio::time::timeout(UPLOAD_WAIT, upload_budget().reserve(declared)).await {
        Ok(reservation) => Ok((reservation, declared as usize)),
        Err(_) => Err(ApiError::new(
            ErrorCode::Busy,
            "too many pictures are being uploaded; retry shortly",
        )
        .with_retry_after(5)),
    }
}

/// 408 `upload_timeout`: the body did not arrive within [`UPLOAD_DEADLINE`].
fn upload_timeout() -> ApiError {
    ApiError::new(
        ErrorCode::UploadTimeout,
        format!(
            "the picture did not arrive within {} s",
            UPLOAD_DEADLINE.as_secs()
        ),
    )
}

/// Reads an uploaded image (the raw request body, at most 32 MiB, within the upload budget and
/// [`UPLOAD_DEADLINE`]), prepares it for WhatsApp (resized, JPEG) and stores it; answers its
/// SHA-256 in the media store. 413 `too_large` beyond the limit, 422 `invalid_image` for a
/// picture that cannot be read, 503 `busy` when the budget stays full.
pub async fn receive_image(
    state: &AppState,
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<String, ApiError> {
    let (_room, body) = read_body(
        req,
        payload,
        media::MAX_UPLOAD_BYTES,
        "the image is larger than 32 MiB",
    )
    .await?;
    let prepared = media::prepare_image_bounded(body).await?;
    store_file(state, prepared.data).await
}

/// A raw request body of at most `limit` bytes (413 `too_large` with `too_large` past it),
/// read within the upload budget and deadline ([`read_upload`]); answers the budget's
/// reservation with it, to be held while the body is worked on.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    too_large: &'static str,
) -> Result<(Reservation, Vec<u8>), ApiError> {
    read_upload(req, |declared| {
        collect_body(payload, declared.min(limit), limit, too_large)
    })
    .await
}

/// Reads `payload` to its end into a buffer of `capacity` bytes to begin with: at most `limit`
/// bytes (413 `too_large` with `too_large` past it). Outside the upload budget: for bodies
/// already known to be small, or read within [`read_upload`].
pub async fn collect_body(
    payload: &mut web::Payload,
    capacity: usize,
    limit: usize,
    too_large: &'static str,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(capacity.min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(ErrorCode::TooLarge, too_large));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Stores a file in the media store (on a blocking thread); answers its SHA-256.
pub async fn store_file(state: &AppState, data: Vec<u8>) -> Result<String, ApiError> {
    let store = MediaStore::new(state.settings.chat.media_dir.clone());
    web::block(move || store.save(&data))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("cannot store the file: {e}")))
}

/// Query of a campaign's or step's file upload: what the body is.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// `image`, `document`, `video`, `voice`, `audio` or `sticker`.
    pub kind: MessageKind,
    /// A document's name as recipients see it.
    pub file_name: Option<String>,
}

/// A campaign's or sequence step's file from a raw request body, stored in the media store: a
/// picture prepared as [`receive_image`] does, any other kind checked by its bytes (at most
/// [`files::MAX_FILE_BYTES`]). Returns its SHA-256 and, when it is not a picture, what it is.
pub async fn receive_file(
    state: &AppState,
    req: &HttpRequest,
    payload: &mut web::Payload,
    query: &FileQuery,
) -> Result<(String, Option<FileInfo>), ApiError> {
    if query.kind == MessageKind::Image {
        return Ok((receive_image(state, req, payload).await?, None));
    }
    if !query.kind.has_file() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "kind must be image, document, video, voice, audio or sticker",
        ));
    }
    let (_room, body) = read_body(
        req,
        payload,
        files::MAX_FILE_BYTES,
        "the file is larger than 16 MiB",
    )
    .await?;
    let file_name = query
        .file_name
        .as_deref()
        .and_then(files::clean_name)
        .filter(|_| query.kind == MessageKind::Document);
    let mime = files::check(query.kind, &body, file_name.as_deref())?;
    let sha = store_file(state, body).await?;
    let info = FileInfo {
        kind: query.kind,
        mime,
        file_name,
    };
    Ok((sha, Some(info)))
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

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("127.0.0.1").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let chain = |hops: &[&str]| hops.iter().map(|h| parse_hop(h)).collect::<Vec<_>>();
        let peer = ip("127.0.0.1");
        // A client-supplied left-most entry is ignored: the proxy appended the real one.
        let hops = chain(&["6.6.6.6", "203.0.113.9", "10.1.2.3"]);
        assert_eq!(client_behind(peer, &trusted, &hops), ip("203.0.113.9"));
        assert_eq!(
            client_behind(peer, &trusted, &chain(&["10.0.0.1"])),
            ip("10.0.0.1")
        );
        assert_eq!(client_behind(peer, &trusted, &chain(&["junk"])), peer);
        assert_eq!(
            chain(&["\"[2001:db8::1]:4711\"", "192.0.2.4:80"]),
            [Some(ip("2001:db8::1")), Some(ip("192.0.2.4"))]
        );
        assert!(Cidr::parse("::ffff:0:0/96").is_ok());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(trusted[1].contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn oversize_login_fields_are_refused() {
        assert_eq!(login_fields(" A@B.co ", "pw").unwrap(), "a@b.co");
        let long = format!("{}@b.co", "a".repeat(300));
        assert_eq!(
            login_fields(&long, "pw").unwrap_err().code(),
            ErrorCode::InvalidEmail
        );
        assert_eq!(
            login_fields("a@b.co", &"p".repeat(257)).unwrap_err().code(),
            ErrorCode::WeakPassword
        );
    }
}
