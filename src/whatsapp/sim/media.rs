//! Received media on the simulated network, handled as the real connector handles it
//! (`chat.media_download`): downloaded as the message arrives (eager), left behind its reference
//! until someone opens it (lazy), or not at all (off). A `media_unavailable` fault makes a
//! device's next downloads fail, so a message arrives without its bytes and the file is fetched
//! later through [`SimNetwork::download`].

use super::contacts::sample_file;
use super::network::SimNetwork;
use crate::config::MediaDownload;
use crate::whatsapp::{ConnectorError, MessageKind, WaMessage};

impl SimNetwork {
    /// `message` as the device receives it: its media's bytes kept when they are downloaded
    /// now (eager, no fault), its reference kept unless downloads are off.
    pub(super) fn as_received(&self, device_id: i64, mut message: WaMessage) -> WaMessage {
        let Some(media) = &mut message.media else {
            return message;
        };
        let fetched_now = match self.media_download() {
            MediaDownload::Off => {
                media.reference = None;
                false
            }
            MediaDownload::Lazy => false,
            MediaDownload::Eager => !self.media_fault(device_id),
        };
        if !fetched_now {
            media.data = Default::default();
        }
        message
    }

    /// Downloads received media by its reference (`sim:<kind>`), as the device `device_id`;
    /// fails while a `media_unavailable` fault is armed.
    pub(super) fn download(
        &self,
        device_id: i64,
        kind: MessageKind,
        reference: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let refused = |why: &str| Err(ConnectorError::Other(why.to_string()));
        if reference != super::contacts::media_reference(kind) {
            return refused("not a media reference of the simulator");
        }
        if self.media_fault(device_id) {
            return refused("simulated: the media server did not answer");
        }
        let Some((_, data)) = sample_file(kind) else {
            return refused("no such media");
        };
        if data.len() as u64 > max_bytes {
            return refused("media over its cap");
        }
        Ok(data.to_vec())
    }

    /// Whether received media is downloaded, and when (`chat.media_download`).
    pub fn set_media_download(&self, mode: MediaDownload) {
        self.lock().media_download = mode;
    }

    /// The current media download mode.
    fn media_download(&self) -> MediaDownload {
        self.lock().media_download
    }

    /// Uses up one armed media failure of the device; true when this download must fail.
    fn media_fault(&self, device_id: i64) -> bool {
        self.lock()
            .devices
            .get_mut(&device_id)
            .is_some_and(|device| device.faults.fail_media())
    }
}
