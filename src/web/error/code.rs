//! [`ErrorCode`]: every `code` an error response can carry, each with its one HTTP status.
//!
//! The codes are API names clients match on, so they never change; a new failure either reuses
//! a code whose status and meaning fit or adds a variant here (and a row to `docs/errors.md`,
//! which a test keeps equal to this table).

use actix_web::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ErrorCode`] from one table: variant, wire name, status and meaning. The meaning is
/// both the variant's doc comment and [`ErrorCode::meaning`], so the two cannot differ.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $meaning:literal;)*) => {
        /// The stable snake_case identifier of an error response.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of `docs/errors.md`.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The name sent as `error.code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status every response with this code has.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// What the code means, for the documentation.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson = "invalid_json", BAD_REQUEST,
        "The body is not JSON of the shape the route takes.";
    InvalidQuery = "invalid_query", BAD_REQUEST,
        "The query string is malformed or names an unknown value.";
    InvalidBody = "invalid_body", BAD_REQUEST,
        "The request body could not be read to its end.";
    InvalidMultipart = "invalid_multipart", BAD_REQUEST,
        "The multipart form is malformed, lacks a field or has an unexpected one.";
    InvalidField = "invalid_field", BAD_REQUEST,
        "A required text field is empty or longer than 200 characters.";
    InvalidEmail = "invalid_email", BAD_REQUEST,
        "The email does not look like name@example.com.";
    WeakPassword = "weak_password", BAD_REQUEST,
        "The password breaks the length rules (10 to 256 characters).";
    WrongPassword = "wrong_password", BAD_REQUEST,
        "The current password given to change it is wrong.";
    InvalidRole = "invalid_role", BAD_REQUEST,
        "The role cannot be granted through the API (admin).";
    InvalidScopes = "invalid_scopes", BAD_REQUEST,
        "A token needs at least one scope.";
    CannotChangeSelf = "cannot_change_self", BAD_REQUEST,
        "Owners cannot demote, disable or delete themselves.";
    InvalidSelection = "invalid_selection", BAD_REQUEST,
        "A restart names neither a non-empty id list nor all devices.";
    InvalidCursor = "invalid_cursor", BAD_REQUEST,
        "The page cursor is not one the server handed out.";
    InvalidRecipient = "invalid_recipient", BAD_REQUEST,
        "The recipient is neither a phone number in international form nor a JID.";
    InvalidText = "invalid_text", BAD_REQUEST,
        "A message text is empty or longer than 4096 characters, or a text holds a NUL character.";
    Rejected = "rejected", BAD_REQUEST,
        "The WhatsApp connection refused the request.";
    NotAWebsocket = "not_a_websocket", BAD_REQUEST,
        "The request to the WebSocket route is not a valid upgrade.";
    Unauthenticated = "unauthenticated", UNAUTHORIZED,
        "No valid session or API token: signed out, expired, revoked or disabled.";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED,
        "Wrong email or password at sign-in.";
    BadSignature = "bad_signature", UNAUTHORIZED,
        "A webhook delivery's tenant, signature or headers do not check out.";
    StaleTimestamp = "stale_timestamp", UNAUTHORIZED,
        "A webhook delivery was signed more than 300 seconds from the server's clock.";
    Replayed = "replayed", UNAUTHORIZED,
        "This exact webhook delivery was already accepted.";
    Forbidden = "forbidden", FORBIDDEN,
        "The caller's role or token scope does not allow this.";
    CsrfFailed = "csrf_failed", FORBIDDEN,
        "A cookie-authenticated write came from another site or lacks the CSRF token.";
    SignupDisabled = "signup_disabled", FORBIDDEN,
        "Sign-up is turned off on this server.";
    PasswordChangeRequired = "password_change_required", FORBIDDEN,
        "The account must set a new password (POST /me/password) before anything else.";
    ReauthenticationRequired = "reauthentication_required", FORBIDDEN,
        "Setting another user's password needs a recent sign-in; sign in again.";
    NotFound = "not_found", NOT_FOUND,
        "No such route or object, or it belongs to another tenant.";
    SimulatorOff = "simulator_off", NOT_FOUND,
        "The simulator does not run in this process.";
    Conflict = "conflict", CONFLICT,
        "The object already exists.";
    EmailTaken = "email_taken", CONFLICT,
        "An account with this email exists.";
    DuplicateName = "duplicate_name", CONFLICT,
        "A lead list with this name exists.";
    DuplicatePhone = "duplicate_phone", CONFLICT,
        "The phone is already in the lead list.";
    Duplicate = "duplicate", CONFLICT,
        "A sequence with this name exists.";
    WrongState = "wrong_state", CONFLICT,
        "The campaign or device is not in a state that allows this.";
    DeviceNotRunning = "device_not_running", CONFLICT,
        "The device has no running actor; reconnect it first.";
    DeviceOffline = "device_offline", CONFLICT,
        "The device is not connected to WhatsApp.";
    DeviceMoved = "device_moved", CONFLICT,
        "The device moved to another node of the cluster meanwhile; try again.";
    NoQr = "no_qr", CONFLICT,
        "The device is not waiting for a QR scan.";
    SingleNode = "single_node", CONFLICT,
        "The daemon runs alone on SQLite: it has no cluster nodes.";
    NoPairing = "no_pairing", CONFLICT,
        "Simulator: the device has no pairing in progress.";
    NoSession = "no_session", CONFLICT,
        "Simulator: the device has no open session.";
    NotOnline = "not_online", CONFLICT,
        "Simulator: the device's session is not online.";
    NoAccount = "no_account", CONFLICT,
        "Simulator: the device is not linked to an account.";
    TooLarge = "too_large", PAYLOAD_TOO_LARGE,
        "The body or one of its fields is over the route's size limit.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "The body's content type is not one the route reads, or a file whose bytes are not the kind it was sent as.";
    InvalidPhone = "invalid_phone", UNPROCESSABLE_ENTITY,
        "Not a phone number that can exist.";
    InvalidLead = "invalid_lead", UNPROCESSABLE_ENTITY,
        "A lead's name, tags, status or fields break the rules; the message names the field.";
    InvalidCsv = "invalid_csv", UNPROCESSABLE_ENTITY,
        "The CSV file cannot be imported (no phone column, bad header).";
    InvalidImage = "invalid_image", UNPROCESSABLE_ENTITY,
        "The picture is not a JPEG, PNG, GIF or WebP that can be read.";
    InvalidFile = "invalid_file", UNPROCESSABLE_ENTITY,
        "The file cannot be sent as it is (empty).";
    InvalidCampaign = "invalid_campaign", UNPROCESSABLE_ENTITY,
        "The campaign cannot run as written; the message names the field.";
    InvalidSequence = "invalid_sequence", UNPROCESSABLE_ENTITY,
        "The sequence is not valid; the message names the field.";
    InvalidSettings = "invalid_settings", UNPROCESSABLE_ENTITY,
        "A broadcast setting is outside the configured safe bounds.";
    InvalidTimeZone = "invalid_time_zone", UNPROCESSABLE_ENTITY,
        "The time zone is not an IANA name (such as Asia/Kuala_Lumpur).";
    InvalidReason = "invalid_reason", UNPROCESSABLE_ENTITY,
        "An opt-out reason is longer than 500 characters.";
    InvalidDrain = "invalid_drain", UNPROCESSABLE_ENTITY,
        "A drain's hours are outside 1–720.";
    InvalidWebhook = "invalid_webhook", UNPROCESSABLE_ENTITY,
        "An outbound webhook endpoint is not valid (URL, scheme, private target, event type, device, limits); the message names the field.";
    UploadTimeout = "upload_timeout", REQUEST_TIMEOUT,
        "A picture's body did not arrive within the upload deadline (120 s).";
    RateLimited = "rate_limited", TOO_MANY_REQUESTS,
        "Too many failed sign-ins, or WhatsApp asked the account to slow down.";
    Internal = "internal", INTERNAL_SERVER_ERROR,
        "A server fault; the detail is in the server log under the request id.";
    MediaUnavailable = "media_unavailable", BAD_GATEWAY,
        "WhatsApp did not hand over a received file (download failed, expired or over its size cap); opening it again retries.";
    DatabaseUnavailable = "database_unavailable", SERVICE_UNAVAILABLE,
        "The database cannot be reached; retry after the Retry-After seconds.";
    Busy = "busy", SERVICE_UNAVAILABLE,
        "The pictures being uploaded fill the server's memory budget; retry after the Retry-After seconds.";
    NodeUnreachable = "node_unreachable", SERVICE_UNAVAILABLE,
        "The node that runs the device did not answer a forwarded command; retry after the Retry-After seconds.";
    NotReady = "not_ready", SERVICE_UNAVAILABLE,
        "The node is draining, or its database is unreachable or not migrated.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    /// The wire name is serde's snake_case of the variant, names are unique, and each code
    /// has an error status and a meaning.
    #[test]
    fn every_code_has_one_name_an_error_status_and_a_meaning() {
        let mut names = HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
            assert!(names.insert(code.as_str()), "{code} twice");
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
            assert!(code.meaning().ends_with('.'), "{code} has no meaning line");
        }
    }

    /// Every Rust file under `src/web`.
    fn web_sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                web_sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// No code is dead: each is produced by a route, an extractor or a `From` impl of a domain
    /// error somewhere under `src/web` (outside this table). docs/errors.md says which.
    #[test]
    fn every_code_is_produced_somewhere() {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut files = Vec::new();
        web_sources(&web, &mut files);
        let producers: Vec<&str> = files
            .iter()
            .filter(|(path, _)| !path.ends_with("error/code.rs"))
            // Tests name codes they expect, which produces nothing.
            .filter_map(|(_, text)| text.split("#[cfg(test)]").next())
            .collect();
        for code in ErrorCode::ALL {
            let used = format!("ErrorCode::{code:?}");
            let produced = producers.iter().any(|text| {
                text.match_indices(&used).any(|(at, _)| {
                    !text[at + used.len()..].starts_with(|c: char| c.is_alphanumeric())
                })
            });
            assert!(produced, "{used} is produced nowhere under src/web");
        }
    }

    /// docs/errors.md lists exactly these codes, in this order, with these statuses.
    #[test]
    fn the_documented_table_matches() {
        let doc =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
                .unwrap();
        let rows: Vec<(String, u16)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.get(2)?.parse().ok()?;
                Some((code.to_string(), status))
            })
            .collect();
        let expected: Vec<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.status().as_u16()))
            .collect();
        assert_eq!(rows, expected);
    }
}
