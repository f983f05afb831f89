//! Received media in the real connector: what `chat.media_download` and `chat.media_max_mb`
//! allow, and the download itself (whatsapp-rust fetches and decrypts). A message is never lost
//! to its media: a download that is off, lazy, too large, slow or failing leaves the message
//! with its kind and type and no bytes (and, unless downloads are off, the reference that
//! fetches them when someone opens the file).

use std::time::Duration;

use whatsapp_rust::download::Downloadable;
use whatsapp_rust::Client;

use crate::config::{ChatSettings, MediaCaps, MediaDownload};
use crate::whatsapp::MessageKind;

/// Longest a download may take before the message goes on without its file.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What the connector downloads of received media.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Downloads on or off.
    download: MediaDownload,
    /// Caps per kind, in MiB.
    caps: MediaCaps,
}

impl MediaPolicy {
    /// The policy the chat settings give.
    pub fn new(chat: &ChatSettings) -> Self {
        Self {
            download: chat.media_download,
            caps: chat.media_max_mb.clone(),
        }
    }

    /// The largest media of `kind` downloaded, in bytes; 0 when downloads are off.
    pub fn cap(&self, kind: MessageKind) -> u64 {
        if self.download == MediaDownload::Off {
            return 0;
        }
        kind.download_cap(&self.caps)
    }

    /// Whether received media is downloaded as it arrives.
    pub fn eager(&self) -> bool {
        self.download == MediaDownload::Eager
    }

    /// Whether received media may be downloaded at all (now or when opened).
    pub fn allowed(&self) -> bool {
        self.download != MediaDownload::Off
    }

    /// The bytes of a message's media part as it arrives, when the policy downloads it then
    /// (eager, declared size and actual size within the cap) and the download succeeds in
    /// time; `None` otherwise (the message keeps its reference for a later try).
    pub async fn fetch(
        &self,
        client: &Client,
        part: &dyn Downloadable,
        kind: MessageKind,
        declared: u64,
    ) -> Option<Vec<u8>> {
        if !self.eager() {
            return None;
        }
        let cap = self.cap(kind);
        if declared > cap {
            tracing::info!(kind = kind.as_str(), declared, cap, "media not downloaded");
            return None;
        }
        download(client, part, kind, cap)
            .await
            .inspect_err(
                |err| tracing::warn!(kind = kind.as_str(), error = %err, "media not downloaded"),
            )
            .ok()
    }
}

/// Downloads a media part within `cap` bytes and [`DOWNLOAD_TIMEOUT`].
pub async fn download(
    client: &Client,
    part: &dyn Downloadable,
    kind: MessageKind,
    cap: u64,
) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(DOWNLOAD_TIMEOUT, client.download(part)).await {
        Ok(Ok(bytes)) if bytes.len() as u64 <= cap => Ok(bytes),
        Ok(Ok(bytes)) => Err(format!(
            "{} of {} bytes is over its cap of {cap}",
            kind.as_str(),
            bytes.len()
        )),
        Ok(Err(err)) => Err(format!("download failed: {err}")),
        Err(_) => Err("download timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(download: MediaDownload) -> MediaPolicy {
        MediaPolicy {
            download,
            caps: MediaCaps {
                image: 16,
                video: 64,
                audio: 16,
                voice: 8,
                document: 100,
                sticker: 1,
            },
        }
    }

    #[test]
    fn caps_are_per_kind_and_zero_when_off_or_without_media() {
        let eager = policy(MediaDownload::Eager);
        assert_eq!(eager.cap(MessageKind::Voice), 8 * 1024 * 1024);
        assert_eq!(eager.cap(MessageKind::Document), 100 * 1024 * 1024);
        assert_eq!(eager.cap(MessageKind::Sticker), 1024 * 1024);
        assert_eq!(eager.cap(MessageKind::Location), 0);
        assert_eq!(policy(MediaDownload::Off).cap(MessageKind::Image), 0);
    }
}
