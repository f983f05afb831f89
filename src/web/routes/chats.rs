//! A device's chats: the list, a conversation's history, mark read, its groups, and sending
//! text and files.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::chat::media::Reservation;
use crate::chat::model::ChatView;
use crate::chat::model::MAX_NAME_CHARS;
use crate::chat::store::Only;
use crate::chat::{chat_view, media, store};
use crate::device::messages::{DeviceError, FetchMedia, ListGroups, MarkRead};
use crate::hub::{HubEvent, Topic};
use crate::web::access::visible_device;
use crate::web::actions::chats::{
    self, file_kind, max_file_bytes, zone_of, ChatQuery, MessagePage, MessageQuery, Outgoing,
    Sender, SentMessage,
};
use crate::web::auth::{require, Auth};
use crate::web::headers;
use crate::web::input::{read_upload, store_file, MAX_MESSAGE_CHARS};
use crate::web::{ApiError, AppState, ErrorCode};
use crate::whatsapp::{Group, Location, MessageKind};

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

/// The example JSON body of `POST /devices/{id}/messages` in the OpenAPI document.
fn send_text_example() -> serde_json::Value {
    serde_json::json!({
        "to": "+60 12-345 6789",
        "text": "Hi Aisyah, your order #1042 is on its way."
    })
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
    Ok(web::Json(chats::list(&state, &caller, *id, &query).await?))
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
    let (device_id, jid) = path.into_inner();
    let page = chats::messages(&state, &caller, (device_id, &jid), &query, Only::All).await?;
    Ok(web::Json(page))
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
    let (device_id, jid) = path.into_inner();
    let page = chats::messages(&state, &caller, (device_id, &jid), &query, Only::Media).await?;
    Ok(web::Json(page))
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

/// Reads a multipart body (fields `to`, `caption` or `text`, then `image`, or one file field
/// named by its kind, and an optional `file_name`) within the upload budget and deadline (see
/// [`read_upload`]). Answers the body's room in the upload budget too, to be held until the
/// picture is prepared.
async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Reservation, Outgoing), ApiError> {
    let form = actix_multipart::Multipart::new(req.headers(), payload);
    read_upload(req, |_| read_form(form)).await
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
    };
    let mut file_name = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| bad(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_string();
        let kind = file_kind(&name);
        let limit = kind.map_or(MAX_MESSAGE_CHARS * 4, max_file_bytes);
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

/// Sends a text (JSON `{to, text}`) or a file (multipart `to`, `caption`, and one of `image`,
/// `document`, `voice`, `audio`, `video`, `sticker`, plus an optional `file_name`) from the
/// device. Pictures are checked by content (JPEG, PNG, GIF, WebP) and re-encoded to a JPEG of at
/// most 350 KB; other files (≤ 16 MiB) are checked by their bytes: a voice note must be
/// OGG/Opus, a sticker WebP, a video MP4/3GP, audio OGG/MP3/MP4, and a document anything but a
/// web page, SVG or XML (415 otherwise). The message appears in the chat (and as `NEW_MESSAGE`)
/// once stored; its ticks follow as `MESSAGE_ACK`.
#[utoipa::path(tag = "chats", params(("id" = i64, Path, description = "device id")), request_body(
    content((SendTextRequest = "application/json", examples(
        ("text" = (summary = "A text to a phone number", value = json!(send_text_example())))
    )), (String = "multipart/form-data"))
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
    // The device first: a device the caller may not use is refused before the body is read.
    let sender = Sender::for_device(&state, &caller, *id).await?;
    let content_type = req.content_type().to_ascii_lowercase();
    // A multipart body's room in the upload budget is held until its picture is prepared.
    let (_room, outgoing) = if content_type.starts_with("multipart/form-data") {
        let (room, outgoing) = read_multipart(&req, payload).await?;
        (Some(room), outgoing)
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
        let outgoing = Outgoing {
            to: body.to,
            text: body.text,
            place: body.location.map(checked_place).transpose()?,
            file: None,
        };
        (None, outgoing)
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send JSON {to, text} or {to, location} or multipart/form-data with to, caption and one of image, document, voice, audio, video or sticker",
        ));
    };
    let sent = sender.send(&state, outgoing).await?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(sent))
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
