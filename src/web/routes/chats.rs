//! A device's chats: the list, a conversation's history, mark read, its groups, and sending
//! text and files.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{secret, store as accounts, Caller};
use crate::chat::media::files;
use crate::chat::media::Reservation;
use crate::chat::model::MAX_NAME_CHARS;
use crate::chat::model::{ChatView, MessageView};
use crate::chat::store::Only;
use crate::chat::{changes, chat_view, media, message_view, store};
use crate::device::messages::{
    DeviceError, FetchMedia, ListGroups, MarkRead, SendLocation, SendMedia, SendText,
};
use crate::hub::{HubEvent, Topic};
use crate::web::access::visible_device;
use crate::web::auth::{require, Auth};
use crate::web::headers;
use crate::web::input::{check_message_text, read_upload, store_file, MAX_MESSAGE_CHARS};
use crate::web::{ApiError, AppState, ErrorCode};
use crate::whatsapp::{Group, Location, Media, MessageKind, OutgoingMedia};

/// Most chats in one list.
const MAX_CHATS: i64 = 500;
/// Most messages in one page.
const MAX_PAGE: i64 = 200;

/// Registers the routes of this file.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_chats)
        .service(list_messages)
        .service(list_media)
        .service(mark_read)
        .service(list_groups)
        .service(send_message)
        .service(open_media)
        .service(download_media);
}

/// Query of the chat list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ChatQuery {
    /// Search in names, numbers and message text.
    pub q: Option<String>,
    /// Activity window in days (default `chat.window_days`, 30).
    pub days: Option<u32>,
    /// Most chats to return (default 200, at most 500).
    pub limit: Option<i64>,
}

/// Query of a message page.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MessageQuery {
    /// Cursor from the previous page's `next_before`; absent for the newest page.
    pub before: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<MessageView>,
    /// Cursor for the next (older) page; absent at the beginning of the chat.
    pub next_before: Option<String>,
}

/// JSON body of `POST /devices/{id}/messages`: a text, or a place to share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTextRequest {
    /// Recipient: phone number in international form, or a JID (a group's too).
    pub to: String,
    /// The text (1–4096 characters); absent when sharing a place.
    #[serde(default)]
    pub text: Option<String>,
    /// A place to share instead of a text (latitude −90..90, longitude −180..180, an optional
    /// name of at most 256 characters).
    #[serde(default)]
    pub location: Option<Location>,
}

/// A place to share, checked: finite coordinates in range, a short name.
fn checked_place(place: Location) -> Result<Location, ApiError> {
    let in_range =
        (-90.0..=90.0).contains(&place.latitude) && (-180.0..=180.0).contains(&place.longitude);
    let named = place
        .name
        .as_deref()
        .is_none_or(|n| n.chars().count() <= MAX_NAME_CHARS);
    if !in_range || !named {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "location needs latitude −90..90, longitude −180..180 and a name of at most 256 characters",
        ));
    }
    Ok(place)
}

/// The tenant's time zone.
async fn zone_of(state: &AppState, caller: &Caller) -> Result<Tz, ApiError> {
    let tenant = accounts::get_tenant(&state.db, caller.tenant_id).await?;
    Ok(tenant.time_zone.parse().unwrap_or(Tz::UTC))
}

/// Encodes a message position as an opaque cursor.
fn cursor(sent_at: DateTime<Utc>, id: i64) -> String {
    format!("{}.{id}", sent_at.timestamp_micros())
}

/// Decodes a cursor, or 400 `invalid_cursor`.
fn parse_cursor(raw: &str) -> Result<(chrono::NaiveDateTime, i64), ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "use next_before from the previous page",
        )
    };
    let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let id: i64 = id.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((at.naive_utc(), id))
}

/// A recipient as a JID: digits become `<digits>@s.whatsapp.net`.
fn recipient_jid(to: &str) -> Result<String, ApiError> {
    let to = to.trim();
    if to.contains('@') {
        return Ok(to.to_string());
    }
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    if (8..=15).contains(&digits.len()) {
        Ok(crate::phone::jid_of(&digits))
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidRecipient,
            "to must be a phone number in international form (8–15 digits) or a JID",
        ))
    }
}

/// Chats of a device active in the window, most recent first, with previews and unread counts.
#[utoipa::path(tag = "chats", params(("id" = i64, Path, description = "device id"), ChatQuery), responses(
    (status = 200, body = [ChatView]),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}/chats")]
pub async fn list_chats(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
    query: web::Query<ChatQuery>,
) -> Result<web::Json<Vec<ChatView>>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let days = query
        .days
        .unwrap_or(state.settings.chat.window_days)
        .min(3650);
    let since = (Utc::now() - ChronoDuration::days(i64::from(days))).naive_utc();
    let limit = query.limit.unwrap_or(200).clamp(1, MAX_CHATS);
    let chats = store::list_chats(
        &state.db,
        caller.tenant_id,
        device.id,
        since,
        query.q.as_deref(),
        limit,
    )
    .await?;
    let zone = zone_of(&state, &caller).await?;
    let now = Utc::now();
    Ok(web::Json(
        chats.iter().map(|c| chat_view(c, now, zone)).collect(),
    ))
}

/// A conversation's messages, newest first, cursor-paginated.
#[utoipa::path(tag = "chats", params(
    ("id" = i64, Path, description = "device id"),
    ("chat" = String, Path, description = "chat JID"),
    MessageQuery
), responses((status = 200, body = MessagePage), (status = 404, body = crate::web::ErrorBody)))]
#[get("/devices/{id}/chats/{chat}/messages")]
pub async fn list_messages(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    path: web::Path<(i64, String)>,
    query: web::Query<MessageQuery>,
) -> Result<web::Json<MessagePage>, ApiError> {
    message_page(&state, &caller, path.into_inner(), &query, Only::All).await
}

/// A chat's media gallery: its messages with a file (pictures, videos, stickers, voice notes,
/// audio, documents), newest first, cursor-paginated like the conversation.
#[utoipa::path(tag = "chats", params(
    ("id" = i64, Path, description = "device id"),
    ("chat" = String, Path, description = "chat JID"),
    MessageQuery
), responses((status = 200, body = MessagePage), (status = 404, body = crate::web::ErrorBody)))]
#[get("/devices/{id}/chats/{chat}/media")]
pub async fn list_media(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    path: web::Path<(i64, String)>,
    query: web::Query<MessageQuery>,
) -> Result<web::Json<MessagePage>, ApiError> {
    message_page(&state, &caller, path.into_inner(), &query, Only::Media).await
}

/// A page of a chat's messages (all, or those with a file), with their reactions.
async fn message_page(
    state: &AppState,
    caller: &Caller,
    (device_id, jid): (i64, String),
    query: &MessageQuery,
    only: Only,
) -> Result<web::Json<MessagePage>, ApiError> {
    let device = visible_device(state, caller, device_id).await?;
    let chat = store::get_chat(&state.db, caller.tenant_id, device.id, &jid).await?;
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let rows = store::list_messages(&state.db, chat.id, only, before, limit).await?;
    let ids = rows.iter().map(|m| m.wa_id.clone()).collect();
    let reactions = changes::reactions_of(&state.db, device.id, ids).await?;
    let zone = zone_of(state, caller).await?;
    let now = Utc::now();
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|m| cursor(m.sent_at.and_utc(), m.id)))
        .flatten();
    Ok(web::Json(MessagePage {
        items: rows
            .iter()
            .map(|m| {
                let reactions = reactions.get(&m.wa_id).map_or(&[][..], Vec::as_slice);
                message_view(m, &chat.jid, reactions, now, zone)
            })
            .collect(),
        next_before,
    }))
}

/// Marks a chat read: the unread count goes to 0 and, when the device is online, WhatsApp gets
/// read receipts for its latest messages.
#[utoipa::path(tag = "chats", params(
    ("id" = i64, Path, description = "device id"),
    ("chat" = String, Path, description = "chat JID")
), responses((status = 200, body = ChatView), (status = 404, body = crate::web::ErrorBody)))]
#[post("/devices/{id}/chats/{chat}/read")]
pub async fn mark_read(
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    path: web::Path<(i64, String)>,
) -> Result<web::Json<ChatView>, ApiError> {
    let (device_id, jid) = path.into_inner();
    let device = visible_device(&state, &caller, device_id).await?;
    let chat = store::get_chat(&state.db, caller.tenant_id, device.id, &jid).await?;
    let had_unread = chat.unread_count > 0;
    let chat = store::mark_read(&state.db, chat.id).await?;
    if had_unread {
        let ids = store::latest_inbound_ids(&state.db, chat.id, 20).await?;
        if let Some(addr) = state.fleet.actor(device.id).await {
            // Best effort: read receipts are a courtesy, the local state is already updated.
            let _ = addr
                .send(MarkRead {
                    chat: chat.jid.clone(),
                    message_ids: ids,
                })
                .await;
        }
    }
    let zone = zone_of(&state, &caller).await?;
    let view = chat_view(&chat, Utc::now(), zone);
    // Other open tabs clear the badge too.
    state.hub.do_send(HubEvent {
        tenant_id: caller.tenant_id,
        topic: Topic::Messages(device.id),
        device_id: Some(device.id),
        event: "CHAT_UPDATED".into(),
        data: serde_json::json!(view),
        ts: Utc::now(),
    });
    Ok(web::Json(view))
}

/// The groups the device is in (asked of WhatsApp; the device must be online). Their JIDs are
/// chats to read and recipients to send to.
#[utoipa::path(tag = "chats", params(("id" = i64, Path, description = "device id")), responses(
    (status = 200, body = [Group]),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}/groups")]
pub async fn list_groups(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    id: web::Path<i64>,
) -> Result<web::Json<Vec<Group>>, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let addr = state
        .fleet
        .actor(device.id)
        .await
        .ok_or(DeviceError::NotConnected)?;
    let groups = addr
        .send(ListGroups)
        .await
        .map_err(|_| DeviceError::Gone)??;
    Ok(web::Json(groups))
}

/// What a send carries, from a JSON or a multipart body.
struct Outgoing {
    to: String,
    text: Option<String>,
    /// A place to share (JSON bodies only).
    place: Option<Location>,
    /// The file, if any: its kind (the field's name), bytes and file name.
    file: Option<(MessageKind, Vec<u8>, Option<String>)>,
    /// The multipart body's room in the upload budget, held until the picture is prepared.
    _room: Option<Reservation>,
}

/// Reads a multipart body (fields `to`, `caption` or `text`, then `image`, or one file field
/// named by its kind, and an optional `file_name`) within the upload budget and deadline (see
/// [`read_upload`]).
async fn read_multipart(req: &HttpRequest, payload: web::Payload) -> Result<Outgoing, ApiError> {
    let form = actix_multipart::Multipart::new(req.headers(), payload);
    let (room, mut outgoing) = read_upload(req, |_| read_form(form)).await?;
    outgoing._room = Some(room);
    Ok(outgoing)
}

/// The fields of a multipart send.
async fn read_form(mut form: actix_multipart::Multipart) -> Result<Outgoing, ApiError> {
    use futures_util::StreamExt;
    let bad = |message: String| ApiError::new(ErrorCode::InvalidMultipart, message);
    let mut outgoing = Outgoing {
        to: String::new(),
        text: None,
        place: None,
        file: None,
        _room: None,
    };
    let mut file_name = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| bad(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_string();
        let kind = file_kind(&name);
        let limit = match kind {
            Some(MessageKind::Image) => media::MAX_UPLOAD_BYTES,
            Some(_) => files::MAX_FILE_BYTES,
            None => MAX_MESSAGE_CHARS * 4,
        };
        let sent_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| bad(e.to_string()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::TooLarge,
                    format!("field {name} is too large"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "to" => {
                outgoing.to = String::from_utf8(bytes).map_err(|_| bad("to is not text".into()))?
            }
            "caption" | "text" => {
                outgoing.text =
                    Some(String::from_utf8(bytes).map_err(|_| bad("caption is not text".into()))?)
            }
            "file_name" => {
                file_name = Some(
                    String::from_utf8(bytes).map_err(|_| bad("file_name is not text".into()))?,
                )
            }
            other => match kind {
                Some(kind) if outgoing.file.is_none() => {
                    outgoing.file = Some((kind, bytes, sent_name))
                }
                Some(_) => return Err(bad("send one file per message".into())),
                None => return Err(bad(format!("unexpected field {other:?}"))),
            },
        }
    }
    if let (Some((_, _, name)), Some(chosen)) = (outgoing.file.as_mut(), file_name) {
        *name = Some(chosen);
    }
    Ok(outgoing)
}

/// The kind of file a multipart field of this name carries.
fn file_kind(field: &str) -> Option<MessageKind> {
    match field {
        "image" => Some(MessageKind::Image),
        "document" => Some(MessageKind::Document),
        "voice" => Some(MessageKind::Voice),
        "audio" => Some(MessageKind::Audio),
        "video" => Some(MessageKind::Video),
        "sticker" => Some(MessageKind::Sticker),
        _ => None,
    }
}

/// A file checked by its bytes, ready to send (a document keeps its cleaned name).
fn checked_file(
    (kind, bytes, name): (MessageKind, Vec<u8>, Option<String>),
    caption: Option<&str>,
) -> Result<OutgoingMedia, ApiError> {
    let file_name = name.as_deref().and_then(files::clean_name);
    let mime = files::check(kind, &bytes, file_name.as_deref())?;
    let captioned = matches!(kind, MessageKind::Document | MessageKind::Video);
    Ok(OutgoingMedia {
        kind,
        media: Media::bytes(mime, bytes),
        caption: caption.filter(|_| captioned).map(str::to_string),
        file_name: file_name.filter(|_| kind == MessageKind::Document),
    })
}

/// Sends a text (JSON `{to, text}`) or a file (multipart `to`, `caption`, and one of `image`,
/// `document`, `voice`, `audio`, `video`, `sticker`, plus an optional `file_name`) from the
/// device. Pictures are checked by content (JPEG, PNG, GIF, WebP) and re-encoded to a JPEG of at
/// most 350 KB; other files (≤ 16 MiB) are checked by their bytes: a voice note must be
/// OGG/Opus, a sticker WebP, a video MP4/3GP, audio OGG/MP3/MP4, and a document anything but a
/// web page, SVG or XML (415 otherwise). The message appears in the chat (and as `NEW_MESSAGE`)
/// once stored; its ticks follow as `MESSAGE_ACK`.
#[utoipa::path(tag = "chats", params(("id" = i64, Path, description = "device id")), request_body(
    content((SendTextRequest = "application/json"), (String = "multipart/form-data"))
), responses(
    (status = 202, body = SentMessage),
    (status = 400, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 415, body = crate::web::ErrorBody)
))]
#[post("/devices/{id}/messages")]
pub async fn send_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Auth<require::Member>,
    id: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = visible_device(&state, &caller, *id).await?;
    let content_type = req.content_type().to_ascii_lowercase();
    let outgoing = if content_type.starts_with("multipart/form-data") {
        read_multipart(&req, payload).await?
    } else if content_type.starts_with("application/json") {
        let bytes = web::Bytes::from_request(&req, &mut payload.into_inner())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?;
        let body: SendTextRequest = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
        if body.text.is_some() == body.location.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "send either text or location",
            ));
        }
        Outgoing {
            to: body.to,
            text: body.text,
            place: body.location.map(checked_place).transpose()?,
            file: None,
            _room: None,
        }
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send JSON {to, text} or {to, location} or multipart/form-data with to, caption and one of image, document, voice, audio, video or sticker",
        ));
    };
    let to = recipient_jid(&outgoing.to)?;
    let text = outgoing
        .text
        .as_deref()
        .map(str::trim_end)
        .filter(|t| !t.trim().is_empty());
    let place = outgoing.place;
    check_message_text(text, outgoing.file.is_none() && place.is_none())?;
    let addr = state
        .fleet
        .actor(device.id)
        .await
        .ok_or(DeviceError::NotConnected)?;
    let message_id = format!("3EB0{}", secret::random_hex(8).to_uppercase());
    let file = match outgoing.file {
        Some((MessageKind::Image, bytes, _)) => {
            let prepared = media::prepare_image_bounded(bytes).await?;
            let image = Media::bytes("image/jpeg", prepared.data);
            Some(OutgoingMedia::image(image, text.map(str::to_string)))
        }
        Some(file) => Some(checked_file(file, text)?),
        None => None,
    };
    let sent = match (file, place) {
        (_, Some(place)) => {
            addr.send(SendLocation {
                to: to.clone(),
                message_id: message_id.clone(),
                place,
            })
            .await
        }
        (Some(file), None) => {
            addr.send(SendMedia {
                to: to.clone(),
                message_id: message_id.clone(),
                file,
            })
            .await
        }
        (None, None) => {
            addr.send(SendText {
                to: to.clone(),
                message_id: message_id.clone(),
                text: text.unwrap_or_default().to_string(),
            })
            .await
        }
    };
    sent.map_err(|_| DeviceError::Gone)??;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(SentMessage {
        id: message_id,
        to,
        status: "sent",
    }))
}

/// Downloads a stored media file, if a message of the caller's tenant (and, for members, of
/// their devices) carries it; anything else is 404. Content-addressed, so cached for a year.
/// Served inline only for image, audio and video types of an allowlist, otherwise as a
/// download, and always under a sandboxing Content-Security-Policy: the sender chose the bytes.
#[utoipa::path(tag = "chats", params(("sha256" = String, Path, description = "the file's SHA-256")), responses(
    (status = 200, content_type = "application/octet-stream", body = String),
    (status = 404, body = crate::web::ErrorBody)
))]
#[get("/media/{sha256}")]
pub async fn download_media(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    sha: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store_dir = media::MediaStore::new(state.settings.chat.media_dir.clone());
    let path = store_dir
        .path(&sha)
        .ok_or_else(|| ApiError::not_found("media"))?;
    let owners = store::media_owners(&state.db, caller.tenant_id, &sha).await?;
    let (stored, file_name) = owners
        .into_iter()
        .find(|(device_id, _, _)| caller.can_see_device(*device_id))
        .map(|(_, mime, file_name)| (mime, file_name))
        .ok_or_else(|| ApiError::not_found("media"))?;
    let data = read_stored(path).await?;
    let name = file_name.unwrap_or_else(|| format!("{sha}.bin"));
    Ok(serve_media(data, stored.as_deref(), &name))
}

/// A stored media file's bytes (read on a blocking thread); 404 when it is gone.
async fn read_stored(path: std::path::PathBuf) -> Result<Vec<u8>, ApiError> {
    web::block(move || std::fs::read(path))
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| ApiError::not_found("media"))
}

/// A media file as the API serves it: inline only for an allowlisted image, audio or video
/// type, otherwise as a download named `name`; always sandboxed; cached (content-addressed).
fn serve_media(data: Vec<u8>, stored_mime: Option<&str>, name: &str) -> HttpResponse {
    let (mime, attachment) = headers::media_disposition(stored_mime);
    let mut response = HttpResponse::Ok();
    response
        .content_type(mime)
        .insert_header(("cache-control", "private, max-age=31536000, immutable"))
        .insert_header(("content-security-policy", headers::MEDIA_POLICY));
    if attachment {
        response.insert_header(("content-disposition", headers::attachment(name)));
    }
    response.body(data)
}

/// Opens a received message's file: the stored one, or, when it was not downloaded yet (lazy
/// downloads, a failed download, a history sync), downloads it from WhatsApp through the
/// device (which must be online), stores it and serves it. Served as `/media/{sha256}` is.
#[utoipa::path(tag = "chats", params(
    ("id" = i64, Path, description = "device id"),
    ("chat" = String, Path, description = "chat JID"),
    ("message" = String, Path, description = "WhatsApp message id")
), responses(
    (status = 200, content_type = "application/octet-stream", body = String),
    (status = 404, body = crate::web::ErrorBody),
    (status = 409, body = crate::web::ErrorBody),
    (status = 502, body = crate::web::ErrorBody)
))]
#[get("/devices/{id}/chats/{chat}/messages/{message}/media")]
pub async fn open_media(
    state: web::Data<AppState>,
    caller: Auth<require::Viewer>,
    path: web::Path<(i64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (device_id, jid, wa_id) = path.into_inner();
    let device = visible_device(&state, &caller, device_id).await?;
    let chat = store::get_chat(&state.db, caller.tenant_id, device.id, &jid).await?;
    let message = store::get_message(&state.db, chat.id, &wa_id).await?;
    let no_file = || ApiError::not_found("media");
    let mime = message.media_mime.clone().ok_or_else(no_file)?;
    let store_dir = media::MediaStore::new(state.settings.chat.media_dir.clone());
    let name = message
        .file_name
        .clone()
        .unwrap_or_else(|| format!("{wa_id}.bin"));
    if let Some(path) = message
        .media_sha256
        .as_deref()
        .and_then(|sha| store_dir.path(sha))
    {
        return Ok(serve_media(read_stored(path).await?, Some(&mime), &name));
    }
    let reference = message.media_ref.clone().ok_or_else(no_file)?;
    let kind = MessageKind::parse(&message.kind).ok_or_else(no_file)?;
    let addr = state
        .fleet
        .actor(device.id)
        .await
        .ok_or(DeviceError::NotConnected)?;
    let fetched = addr
        .send(FetchMedia {
            kind,
            reference,
            max_bytes: kind.download_cap(&state.settings.chat.media_max_mb),
        })
        .await
        .map_err(|_| DeviceError::Gone)?;
    let data = match fetched {
        Ok(data) if !data.is_empty() => data,
        Ok(_) => {
            return Err(ApiError::new(
                ErrorCode::MediaUnavailable,
                "WhatsApp sent an empty file",
            ))
        }
        Err(DeviceError::Connector(why)) => {
            return Err(ApiError::new(ErrorCode::MediaUnavailable, why))
        }
        Err(err) => return Err(err.into()),
    };
    let sha = store_file(&state, data.clone()).await?;
    store::media_fetched(&state.db, message.id, &sha, data.len() as i64).await?;
    Ok(serve_media(data, Some(&mime), &name))
}

/// Answer of a send.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    /// WhatsApp message id.
    pub id: String,
    /// Recipient JID.
    pub to: String,
    /// `sent`.
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_recipients_normalise() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let parsed = parse_cursor(&cursor(at, 42)).unwrap();
        assert_eq!(parsed, (at.naive_utc(), 42));
        assert!(parse_cursor("garbage").is_err());
        assert_eq!(
            recipient_jid("+60 12-345 6789").unwrap(),
            "60123456789@s.whatsapp.net"
        );
        assert_eq!(recipient_jid("60123@g.us").unwrap(), "60123@g.us");
        assert!(recipient_jid("123").is_err());
    }
}
