//! When received media is downloaded (`chat.media_download`), on both backends: a download that
//! fails keeps the message with a retryable file, fetched through the device when someone opens
//! it (and tried again after a failure); `lazy` fetches every file on first view, then serves
//! the stored copy; `off` keeps only what the message said it carried.

use std::time::Duration;

use serde_json::{json, Value};
use wafleet::whatsapp::sim::PHOTO_PNG;

use crate::helpers::{wait_until, TestApp, UserClient};

crate::both_backends!(a_failed_download_is_retried_when_the_file_is_opened);
crate::both_backends!(with &[("WAFLEET__CHAT__MEDIA_DOWNLOAD", "lazy")];
    lazy_downloads_fetch_on_first_view_then_serve_the_stored_file,
);
crate::both_backends!(with &[("WAFLEET__CHAT__MEDIA_DOWNLOAD", "off")];
    with_downloads_off_a_message_keeps_only_what_it_carried,
);

/// How long a message may take to be mirrored.
const WAIT: Duration = Duration::from_secs(20);
const JID: &str = "60198765432@s.whatsapp.net";

/// Makes the contact send a picture; returns its stored view.
async fn picture(admin: &UserClient, device: i64) -> Value {
    let sent: Value = admin
        .post(
            "/api/v1/sim/inbound",
            &json!({"device_id": device, "from": "60198765432", "kind": "image",
                    "text": "this one", "addressing": "phone"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    wait_until("the picture to be stored", WAIT, || async {
        admin
            .chat_messages(device, JID)
            .await
            .into_iter()
            .find(|m| m["id"] == id.as_str())
    })
    .await
}

/// Arms `downloads` failing media downloads on the device.
async fn fail_downloads(admin: &UserClient, device: i64, downloads: u32) {
    let armed = admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": device, "fault": {"kind": "media_unavailable", "downloads": downloads}}),
        )
        .await;
    assert_eq!(armed.status(), 204);
}

/// Opens `url`: the status, the content type and the bytes.
async fn open(admin: &UserClient, url: &str) -> (u16, String, Vec<u8>) {
    let answer = admin.get(url).await;
    let status = answer.status().as_u16();
    let mime = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, mime, answer.bytes().await.unwrap().to_vec())
}

/// The message's file is remote: its URL is the on-demand route of this message.
fn assert_remote(message: &Value, device: i64) -> String {
    let media = &message["media"];
    assert_eq!(media["state"], "remote", "{message}");
    let url = media["url"].as_str().unwrap().to_string();
    let id = message["id"].as_str().unwrap();
    assert_eq!(
        url,
        format!("/api/v1/devices/{device}/chats/{JID}/messages/{id}/media")
    );
    url
}

async fn a_failed_download_is_retried_when_the_file_is_opened(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    // The first download (as the message arrives) and the first retry fail.
    fail_downloads(&admin, device, 2).await;
    let message = picture(&admin, device).await;
    assert_eq!(
        message["text"], "this one",
        "the message is kept: {message}"
    );
    let url = assert_remote(&message, device);

    let (status, _, body) = open(&admin, &url).await;
    assert_eq!(status, 502);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "media_unavailable");
    let again = admin.chat_messages(device, JID).await;
    assert_eq!(again[0]["media"]["state"], "remote", "still retryable");

    let (status, mime, bytes) = open(&admin, &url).await;
    assert_eq!((status, mime.as_str()), (200, "image/png"));
    assert_eq!(bytes, PHOTO_PNG);
    // Stored now: the message points at the stored file.
    let stored = admin.chat_messages(device, JID).await;
    let media = &stored[0]["media"];
    assert_eq!(media["state"], "stored", "{media}");
    assert_eq!(media["size"], PHOTO_PNG.len());
    let (status, _, bytes) = open(&admin, media["url"].as_str().unwrap()).await;
    assert_eq!((status, bytes.as_slice()), (200, &PHOTO_PNG[..]));
}

async fn lazy_downloads_fetch_on_first_view_then_serve_the_stored_file(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    let message = picture(&admin, device).await;
    let url = assert_remote(&message, device);
    let (status, _, bytes) = open(&admin, &url).await;
    assert_eq!((status, bytes.as_slice()), (200, &PHOTO_PNG[..]));
    // Once stored, the same route serves the stored file even with the device offline.
    let stored = admin.chat_messages(device, JID).await;
    assert_eq!(stored[0]["media"]["state"], "stored");
    let offline = admin
        .post(
            "/api/v1/sim/fault",
            &json!({"device_id": device, "fault": {"kind": "media_unavailable", "downloads": 100}}),
        )
        .await;
    assert_eq!(offline.status(), 204);
    let (status, _, bytes) = open(&admin, &url).await;
    assert_eq!((status, bytes.as_slice()), (200, &PHOTO_PNG[..]));
    // Another user's device is not a way in: a stranger tenant gets 404.
    let stranger = app.new_tenant("stranger").await;
    assert_eq!(stranger.get(&url).await.status(), 404);
}

async fn with_downloads_off_a_message_keeps_only_what_it_carried(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "media").await;
    let message = picture(&admin, device).await;
    let media = &message["media"];
    assert_eq!(media["state"], "missing", "{message}");
    assert_eq!(media["url"], Value::Null);
    assert_eq!(media["mime"], "image/png");
    assert_eq!(message["text"], "this one");
    let id = message["id"].as_str().unwrap();
    let url = format!("/api/v1/devices/{device}/chats/{JID}/messages/{id}/media");
    assert_eq!(admin.get(&url).await.status(), 404);
}
