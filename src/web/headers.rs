//! Security headers on every response, and the safe way to serve stored media.
//!
//! The dashboard's pages load their scripts and styles from `/static` only (no inline script,
//! no inline style attribute), so a strict Content-Security-Policy costs nothing and turns an
//! injected `<script>` into a no-op; the API reference page alone also allows inline styles, for
//! its vendored viewer ([`DOCS_POLICY`]). Frames are refused everywhere (clickjacking),
//! referrers are not sent (URLs may carry ids), and HSTS is sent once cookies are `Secure` (the
//! deployment is HTTPS). Media files come from WhatsApp contacts, that is from strangers: they
//! are served with a type from an allowlist, anything else as a download, under a sandboxing
//! policy.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use super::AppState;

/// The policy of every page and API answer.
pub const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The policy of the API reference page (`/api/docs`) alone: [`PAGE_POLICY`] with inline styles
/// allowed. RapiDoc, the vendored reference viewer, is built of Lit web components whose
/// templates carry `<style>` elements and `style` attributes; under `style-src 'self'` Chromium
/// blocks every one of them and the reference renders unstyled. Nothing else is relaxed:
/// scripts stay `'self'` (no inline script, no eval, no worker), and fetches, fonts and images
/// stay on this origin, so the page still loads and sends nothing elsewhere. An injected style
/// can restyle the page but run nothing.
pub const DOCS_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
/// The policy of a media download: no script, no plugin, no frame, a unique origin.
pub const MEDIA_POLICY: &str = "sandbox; default-src 'none'; frame-ancestors 'none'";
/// HSTS for deployments with Secure cookies (one year, subdomains too).
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Media types a browser may render inline: images and sound or video a WhatsApp chat carries.
/// Never SVG, HTML, XML or PDF, which can run script or navigate.
const INLINE_MEDIA_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/amr",
    "video/mp4",
    "video/3gpp",
];

/// Middleware: adds the security headers a handler did not set itself.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let hsts = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.auth.secure_cookies);
    let mut res = next.call(req).await?;
    add_defaults(res.headers_mut(), hsts);
    Ok(res)
}

/// Inserts each header unless already present (the media route sets a stricter policy).
fn add_defaults(headers: &mut HeaderMap, hsts: bool) {
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}

/// How to serve a stored media file: its type when the allowlist has it (rendered inline),
/// otherwise `application/octet-stream` as an attachment, whatever the sender claimed.
pub fn media_disposition(stored: Option<&str>) -> (&'static str, bool) {
    let essence = stored
        .and_then(|mime| mime.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase());
    match essence.and_then(|mime| INLINE_MEDIA_TYPES.iter().find(|t| **t == mime)) {
        Some(allowed) => (allowed, false),
        None => ("application/octet-stream", true),
    }
}

/// `Content-Disposition: attachment` naming the file `name` (a sender's choice): a plain
/// ASCII fallback with anything risky replaced, and the exact name percent-encoded (RFC 6266).
pub fn attachment(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_break_out_of_the_header() {
        assert_eq!(
            attachment("price list.pdf"),
            "attachment; filename=\"price list.pdf\"; filename*=UTF-8''price%20list.pdf"
        );
        let hostile = attachment("a\"; filename=evil.html\r\nX: y/é.pdf");
        assert!(!hostile.contains('\r') && !hostile.contains('\n'));
        assert!(
            hostile.starts_with("attachment; filename=\"a__ filename_evil.html__X_ y__.pdf\";"),
            "{hostile}"
        );
        assert!(hostile.ends_with("%C3%A9.pdf"));
    }

    #[test]
    fn media_types_outside_the_allowlist_become_downloads() {
        assert_eq!(media_disposition(Some("image/png")), ("image/png", false));
        assert_eq!(
            media_disposition(Some("Audio/OGG; codecs=opus")),
            ("audio/ogg", false)
        );
        for risky in ["text/html", "image/svg+xml", "application/pdf", "text/xml"] {
            assert_eq!(
                media_disposition(Some(risky)),
                ("application/octet-stream", true),
                "{risky}"
            );
        }
        assert_eq!(media_disposition(None), ("application/octet-stream", true));
    }

    #[test]
    fn the_docs_policy_only_adds_inline_styles() {
        assert_eq!(
            DOCS_POLICY,
            PAGE_POLICY.replace("style-src 'self';", "style-src 'self' 'unsafe-inline';")
        );
    }

    #[test]
    fn handler_headers_win_and_hsts_follows_the_setting() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(MEDIA_POLICY),
        );
        add_defaults(&mut headers, false);
        assert_eq!(
            headers.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            MEDIA_POLICY
        );
        assert_eq!(headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        add_defaults(&mut headers, true);
        assert_eq!(
            headers.get(header::STRICT_TRANSPORT_SECURITY).unwrap(),
            HSTS
        );
    }
}
