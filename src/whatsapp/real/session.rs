//! [`RealSession`]: one device's running whatsapp-rust client, as its device actor holds it,
//! and [`Live`], the running client itself (its run task and event forwarder).
//!
//! Every call hops onto the client runtime. Dropping the session (an actor restart) stops the
//! client in the background, like `disconnect` without waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use whatsapp_rust::bot::Bot;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::media::{
    audio_message, document_message, image_message, video_message, AudioOptions, DocumentOptions,
    ImageOptions, VideoOptions,
};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::upload::UploadResponse;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, Jid, SendOptions, Server, UploadOptions};

use super::events::{self, Outcome};
use super::media::MediaPolicy;
use super::runtime::ClientRuntime;
use super::Tap;
use crate::whatsapp::{
    ConnectorError, ConnectorEvent, Group, Location, MessageKind, OutgoingMedia, Session,
};

/// How long a session call waits for the stopped client's run loop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// An item on the way from the tap to the forwarder.
pub enum Fwd {
    /// A library event.
    Event(Arc<Event>),
    /// The client's run loop ended: nothing follows.
    End,
}

/// A started client: what `forget`, the session and the forwarder share.
pub struct Live {
    /// The client.
    client: Arc<Client>,
    /// Its tap (the `closed` switch).
    tap: Arc<Tap>,
    /// Becomes `true` when the run loop ended.
    done: watch::Receiver<bool>,
}

impl Live {
    /// Starts `bot`: its run loop, the task that waits for its end, and the forwarder into
    /// `events`. Must be called on the client runtime.
    pub fn start(
        bot: Bot,
        tap: Arc<Tap>,
        events: mpsc::Sender<ConnectorEvent>,
        runtime: Arc<ClientRuntime>,
        media: Arc<MediaPolicy>,
    ) -> Arc<Live> {
        let handle = runtime.handle().clone();
        drop(runtime);
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let _ = tap.queue.set(queue_tx.clone());
        let client = bot.client();
        let (done_tx, done_rx) = watch::channel(false);
        let run = bot.spawn();
        handle.spawn(async move {
            run.await;
            let _ = done_tx.send(true);
            let _ = queue_tx.send(Fwd::End);
        });
        handle.spawn(forward(
            queue_rx,
            events,
            Arc::downgrade(&client),
            tap.clone(),
            media,
        ));
        Arc::new(Live {
            client,
            tap,
            done: done_rx,
        })
    }

    /// Stops the client for good (no event is reported after this) and waits up to `timeout`
    /// for its run loop to end (the client flushes its state on the way out).
    pub async fn stop(&self, timeout: Duration) {
        self.tap.closed.store(true, Ordering::SeqCst);
        self.client
            .enable_auto_reconnect
            .store(false, Ordering::SeqCst);
        self.client.disconnect().await;
        self.wait(timeout).await;
    }

    /// Waits up to `timeout` for the run loop to end.
    async fn wait(&self, timeout: Duration) {
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(timeout, done.wait_for(|ended| *ended)).await;
    }
}

/// Maps and forwards a client's events in order, waiting on the actor's bounded channel; ends
/// the stream (dropping `events`) after a terminal event or the end of the run loop, which it
/// reports as `Disconnected` when nothing terminal was said before.
async fn forward(
    mut queue: mpsc::UnboundedReceiver<Fwd>,
    events: mpsc::Sender<ConnectorEvent>,
    client: std::sync::Weak<Client>,
    tap: Arc<Tap>,
    media: Arc<MediaPolicy>,
) {
    let mut connected = false;
    let mut titles = GroupTitles::default();
    while let Some(item) = queue.recv().await {
        let Fwd::Event(event) = item else {
            break;
        };
        if tap.closed.load(Ordering::SeqCst) {
            continue;
        }
        let (out, outcome) = match &*event {
            Event::Connected(_) => {
                connected = true;
                match client.upgrade() {
                    Some(client) => {
                        let device = client.persistence_manager().get_device_snapshot();
                        let jid = device
                            .pn
                            .as_ref()
                            .map(|j| j.to_string())
                            .unwrap_or_default();
                        let push_name =
                            (!device.push_name.is_empty()).then(|| device.push_name.clone());
                        (
                            vec![ConnectorEvent::Connected { jid, push_name }],
                            Outcome::Continue,
                        )
                    }
                    None => continue,
                }
            }
            Event::Messages(batch) => {
                let Some(client) = client.upgrade() else {
                    continue;
                };
                let mut out = Vec::with_capacity(batch.len());
                for item in batch.iter() {
                    if let Some(change) = events::change(&item.message, &item.info) {
                        out.push(ConnectorEvent::Change(Box::new(change)));
                        continue;
                    }
                    // Downloads hold up this device's events only, never the chat mirror.
                    let bytes = match events::media_part(&item.message) {
                        Some(part) => {
                            media
                                .fetch(&client, part.part, part.kind, part.declared)
                                .await
                        }
                        None => None,
                    };
                    if let Some(mut message) = events::inbound(&item.message, &item.info, bytes) {
                        message.group_name = titles.of(&client, &message.chat).await;
                        if !media.allowed() {
                            forget_reference(&mut message);
                        }
                        out.push(ConnectorEvent::Message(Box::new(message)));
                    }
                }
                fill_phones(&client, &mut out).await;
                (out, Outcome::Continue)
            }
            Event::HistorySync(lazy) => {
                let lazy = (**lazy).clone();
                let own = client.upgrade().and_then(|c| {
                    c.persistence_manager()
                        .get_device_snapshot()
                        .pn
                        .as_ref()
                        .map(|j| j.to_non_ad().to_string())
                });
                // Inflating and decoding a chunk takes tens of milliseconds: not on a worker.
                let mut decoded = tokio::task::spawn_blocking(move || {
                    lazy.get()
                        .map(|sync| events::history(sync, own.as_deref()))
                        .unwrap_or_default()
                })
                .await
                .unwrap_or_default();
                if !media.allowed() {
                    decoded.iter_mut().for_each(forget_reference);
                }
                if decoded.is_empty() {
                    continue;
                }
                (
                    vec![ConnectorEvent::HistorySync(decoded)],
                    Outcome::Continue,
                )
            }
            other => match events::map(other) {
                Some((mut out, outcome)) => {
                    if let Some(client) = client.upgrade() {
                        fill_phones(&client, &mut out).await;
                    }
                    (out, outcome)
                }
                None => continue,
            },
        };
        for event in out {
            if events.send(event).await.is_err() {
                // The actor let go of this session: stop the client.
                stop_detached(&client, &tap);
                return;
            }
        }
        if outcome == Outcome::Terminal {
            // Our supervisor decides what happens next; the client must not reconnect.
            stop_detached(&client, &tap);
            return;
        }
    }
    if !tap.closed.load(Ordering::SeqCst) {
        let reason = if connected {
            "connection closed"
        } else {
            "could not connect to WhatsApp"
        };
        let _ = events
            .send(ConnectorEvent::Disconnected {
                reason: reason.into(),
            })
            .await;
    }
}

/// Where WhatsApp keeps a kind of file.
fn upload_type(kind: MessageKind) -> MediaType {
    match kind {
        MessageKind::Video => MediaType::Video,
        MessageKind::Audio | MessageKind::Voice => MediaType::Audio,
        MessageKind::Document => MediaType::Document,
        MessageKind::Sticker => MediaType::Sticker,
        _ => MediaType::Image,
    }
}

/// The message that carries an uploaded file as its kind.
fn media_message(upload: UploadResponse, file: OutgoingMedia) -> wa::Message {
    let mimetype = Some(file.media.mime.clone());
    match file.kind {
        MessageKind::Video => video_message(
            upload,
            VideoOptions {
                caption: file.caption,
                mimetype,
                ..Default::default()
            },
        ),
        MessageKind::Audio | MessageKind::Voice => audio_message(
            upload,
            AudioOptions {
                mimetype,
                ptt: Some(file.kind == MessageKind::Voice),
                ..Default::default()
            },
        ),
        MessageKind::Document => document_message(
            upload,
            DocumentOptions {
                mimetype,
                file_name: file.file_name.clone(),
                title: file.file_name,
                caption: file.caption,
                ..Default::default()
            },
        ),
        MessageKind::Sticker => wa::Message {
            sticker_message: Some(wa::message::StickerMessage {
                url: Some(upload.url),
                direct_path: Some(upload.direct_path),
                media_key: Some(upload.media_key.to_vec()),
                file_sha256: Some(upload.file_sha256.to_vec()),
                file_enc_sha256: Some(upload.file_enc_sha256.to_vec()),
                file_length: Some(upload.file_length),
                media_key_timestamp: Some(upload.media_key_timestamp),
                mimetype,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        },
        _ => image_message(
            upload,
            ImageOptions {
                caption: file.caption,
                mimetype,
                ..Default::default()
            },
        ),
    }
}

/// Drops the reference that would download a message's media (downloads are off).
fn forget_reference(message: &mut crate::whatsapp::WaMessage) {
    if let Some(media) = &mut message.media {
        media.reference = None;
    }
}

/// Most group titles a session remembers (a full cache starts over).
const MAX_GROUP_TITLES: usize = 4096;

/// The titles of the groups a session's messages arrive in, asked once per group (messages
/// carry no title; whatsapp-rust's group cache keeps none).
#[derive(Default)]
struct GroupTitles {
    /// Group JID → title (`None`: asked, WhatsApp did not answer).
    known: std::collections::HashMap<String, Option<String>>,
}

impl GroupTitles {
    /// The title of `chat` when it is a group; asks WhatsApp the first time.
    async fn of(&mut self, client: &Client, chat: &str) -> Option<String> {
        if !chat.ends_with("@g.us") {
            return None;
        }
        if let Some(title) = self.known.get(chat) {
            return title.clone();
        }
        let jid: Jid = chat.parse().ok()?;
        let title = match client.groups().get_metadata(&jid).await {
            Ok(meta) => Some(meta.subject).filter(|s| !s.is_empty()),
            Err(err) => {
                tracing::debug!(error = %err, "group title not available");
                None
            }
        };
        if self.known.len() >= MAX_GROUP_TITLES {
            self.known.clear();
        }
        self.known.insert(chat.to_string(), title.clone());
        title
    }
}

/// Gives LID senders and one-to-one LID chats that arrived without their phone the phone
/// whatsapp-rust's LID-PN store knows (learned from earlier messages, usync, history).
async fn fill_phones(client: &Client, out: &mut [ConnectorEvent]) {
    for event in out {
        let (sender, sender_alt, chat, chat_alt) = match event {
            ConnectorEvent::Message(m) => (&m.sender, &mut m.sender_alt, &m.chat, &mut m.chat_alt),
            ConnectorEvent::Change(c) => (&c.sender, &mut c.sender_alt, &c.chat, &mut c.chat_alt),
            _ => continue,
        };
        if sender_alt.is_none() {
            *sender_alt = known_phone(client, sender).await;
        }
        if chat_alt.is_none() && !chat.ends_with("@g.us") {
            *chat_alt = known_phone(client, chat).await;
        }
    }
}

/// The phone JID the library's store maps a LID JID to; `None` for other JIDs or unknown LIDs.
async fn known_phone(client: &Client, jid: &str) -> Option<String> {
    crate::phone::lid_of_jid(jid)?;
    let jid: Jid = jid.parse().ok()?;
    let entry = client.get_lid_pn_entry(&jid).await.ok()??;
    Some(crate::phone::jid_of(&entry.phone_number))
}

/// Stops a client without waiting (from the forwarder, on the client runtime).
fn stop_detached(client: &std::sync::Weak<Client>, tap: &Arc<Tap>) {
    tap.closed.store(true, Ordering::SeqCst);
    if let Some(client) = client.upgrade() {
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);
        tokio::spawn(async move { client.disconnect().await });
    }
}

/// A device's session on WhatsApp through whatsapp-rust.
pub struct RealSession {
    /// Our device id (logs).
    device_id: i64,
    /// The running client.
    live: Arc<Live>,
    /// Where its work runs.
    runtime: Arc<ClientRuntime>,
}

impl RealSession {
    /// The session of `device_id` over a started client.
    pub fn new(device_id: i64, live: Arc<Live>, runtime: Arc<ClientRuntime>) -> Self {
        Self {
            device_id,
            live,
            runtime,
        }
    }

    /// Sends a built message to `jid` under our message id.
    async fn send_message(
        &self,
        jid: Jid,
        message_id: &str,
        message: wa::Message,
    ) -> Result<(), ConnectorError> {
        let client = self.online()?;
        let options = SendOptions::default().with_message_id(message_id);
        self.runtime
            .run(async move {
                client
                    .send_message_with_options(jid, message, options)
                    .await
                    .map(drop)
                    .map_err(|e| failed("send", e))
            })
            .await?
    }

    /// The client, if it is logged in (sends need that).
    fn online(&self) -> Result<Arc<Client>, ConnectorError> {
        if self.live.tap.closed.load(Ordering::SeqCst) || !self.live.client.is_logged_in() {
            return Err(ConnectorError::NotConnected);
        }
        Ok(self.live.client.clone())
    }
}

/// A WhatsApp address from what our API accepts: a JID (`…@s.whatsapp.net`, `…@g.us`) or a
/// phone number in international form (digits, optional `+`).
pub fn recipient(to: &str) -> Result<Jid, ConnectorError> {
    let to = to.trim();
    let invalid = || ConnectorError::InvalidRecipient(to.to_string());
    if to.contains('@') {
        return to.parse::<Jid>().map_err(|_| invalid());
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    if (6..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(Jid::new(digits, Server::Pn))
    } else {
        Err(invalid())
    }
}

/// Maps a library error from a send-like call.
fn failed(what: &str, err: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Other(format!("{what} failed: {err}"))
}

#[async_trait]
impl Session for RealSession {
    async fn request_pair_code(&self, phone: &str) -> Result<String, ConnectorError> {
        let digits = phone.trim().trim_start_matches('+').to_string();
        if !(6..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConnectorError::InvalidRecipient(phone.into()));
        }
        let client = self.live.client.clone();
        self.runtime
            .run(async move {
                let options = PairCodeOptions {
                    phone_number: digits,
                    ..Default::default()
                };
                // The code also arrives as a `PairingCode` event (→ `PairCode`).
                client
                    .pair_with_code(options)
                    .await
                    .map_err(|e| failed("pair code request", e))
            })
            .await?
    }

    async fn send_text(
        &self,
        to: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ConnectorError> {
        let message = wa::Message {
            conversation: Some(text.to_string()),
            ..Default::default()
        };
        self.send_message(recipient(to)?, message_id, message).await
    }

    async fn send_location(
        &self,
        to: &str,
        message_id: &str,
        place: &Location,
    ) -> Result<(), ConnectorError> {
        let message = wa::Message {
            location_message: Some(wa::message::LocationMessage {
                degrees_latitude: Some(place.latitude),
                degrees_longitude: Some(place.longitude),
                name: place.name.clone(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        self.send_message(recipient(to)?, message_id, message).await
    }

    /// Uploads the file (encrypted, to WhatsApp's media servers), then sends it as its kind's
    /// message under our message id.
    async fn send_media(
        &self,
        to: &str,
        message_id: &str,
        file: OutgoingMedia,
    ) -> Result<(), ConnectorError> {
        if file.media.data.is_empty() {
            return Err(ConnectorError::Other(format!(
                "empty {}",
                file.kind.as_str()
            )));
        }
        let jid = recipient(to)?;
        let client = self.online()?;
        let (data, kind) = (file.media.data.to_vec(), upload_type(file.kind));
        let upload = self
            .runtime
            .run(async move {
                client
                    .upload(data, kind, UploadOptions::default())
                    .await
                    .map_err(|e| failed("media upload", e))
            })
            .await??;
        self.send_message(jid, message_id, media_message(upload, file))
            .await
    }

    /// The groups WhatsApp says the account is in, with titles and participant counts.
    async fn groups(&self) -> Result<Vec<Group>, ConnectorError> {
        let client = self.online()?;
        self.runtime
            .run(async move {
                let groups = client
                    .groups()
                    .get_participating()
                    .await
                    .map_err(|e| failed("group list", e))?;
                let mut groups: Vec<Group> = groups
                    .into_values()
                    .map(|meta| Group {
                        jid: meta.id.to_string(),
                        name: meta.subject,
                        participants: u32::try_from(meta.participants.len()).unwrap_or(u32::MAX),
                    })
                    .collect();
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(groups)
            })
            .await?
    }

    /// Downloads received media by the reference [`events::media_reference`] made.
    async fn download(
        &self,
        kind: MessageKind,
        reference: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let message = events::media_of_reference(reference).ok_or_else(|| {
            ConnectorError::Other("not a media reference of the real connector".into())
        })?;
        let client = self.online()?;
        self.runtime
            .run(async move {
                let part = events::media_part(&message)
                    .ok_or_else(|| ConnectorError::Other("no media in the reference".into()))?;
                super::media::download(&client, part.part, kind, max_bytes)
                    .await
                    .map_err(ConnectorError::Other)
            })
            .await?
    }

    async fn set_typing(&self, to: &str, typing: bool) -> Result<(), ConnectorError> {
        let jid = recipient(to)?;
        let client = self.online()?;
        self.runtime
            .run(async move {
                let chatstate = client.chatstate();
                let sent = if typing {
                    chatstate.send_composing(&jid).await
                } else {
                    chatstate.send_paused(&jid).await
                };
                sent.map_err(|e| failed("chat state", e))
            })
            .await?
    }

    async fn mark_read(&self, chat: &str, message_ids: &[String]) -> Result<(), ConnectorError> {
        let jid = recipient(chat)?;
        let client = self.online()?;
        let ids = message_ids.to_vec();
        self.runtime
            .run(async move {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                client
                    .mark_as_read(&jid, None, &ids)
                    .await
                    .map_err(|e| failed("mark read", e))
            })
            .await?
    }

    /// Unlinks the device (best effort when offline) and stops the client. Emits no
    /// `LoggedOut`: the actor asked for it. Deleting the stored session is `forget`'s job.
    #[tracing::instrument(skip_all, fields(device_id = self.device_id))]
    async fn logout(&self) -> Result<(), ConnectorError> {
        self.live.tap.closed.store(true, Ordering::SeqCst);
        let live = self.live.clone();
        self.runtime
            .run(async move {
                live.client.logout().await;
                live.wait(STOP_WAIT).await;
            })
            .await
    }

    async fn disconnect(&self) {
        let live = self.live.clone();
        let _ = self
            .runtime
            .run(async move { live.stop(STOP_WAIT).await })
            .await;
    }
}

impl Drop for RealSession {
    fn drop(&mut self) {
        if self.live.tap.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let live = self.live.clone();
        drop(
            self.runtime
                .handle()
                .spawn(async move { live.stop(STOP_WAIT).await }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::recipient;

    #[test]
    fn recipients_are_jids_or_international_numbers() {
        assert_eq!(
            recipient("60123456789").unwrap().to_string(),
            "60123456789@s.whatsapp.net"
        );
        assert_eq!(
            recipient("+60123456789").unwrap().to_string(),
            "60123456789@s.whatsapp.net"
        );
        assert_eq!(
            recipient("60123456789@s.whatsapp.net").unwrap().to_string(),
            "60123456789@s.whatsapp.net"
        );
        assert!(recipient("120363021033254949@g.us").is_ok());
        assert!(recipient("hello").is_err());
        assert!(recipient("12").is_err());
    }
}
