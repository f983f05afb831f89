//! Received media in the real connector: what `chat.media_download` and `chat.media_max_mb`
//! allow, and the download itself (whatsapp-rust fetches and decrypts). A message is never lost
//! to its media: a download that is off, too large, slow or failing leaves the message with
//! its kind and type and no bytes.

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
        let caps = &self.caps;
        let mib = match kind {
            MessageKind::Image => caps.image,
            MessageKind::Video => caps.video,
            MessageKind::Audio => caps.audio,
            MessageKind::Voice => caps.voice,
            MessageKind::Document => caps.document,
            MessageKind::Sticker => caps.sticker,
            MessageKind::Text | MessageKind::Location | MessageKind::Contact => 0,
        };
        mib.saturating_mul(1024 * 1024)
    }

    /// The bytes of a message's media part when the policy allows them (declared size and
    /// actual size within the cap) and the download succeeds in time; `None` otherwise.
    pub async fn fetch(
        &self,
        client: &Client,
        part: &dyn Downloadable,
        kind: MessageKind,
        declared: u64,
    ) -> Option<Vec<u8>> {
        let cap = self.cap(kind);
        if cap == 0 || declared > cap {
            tracing::info!(kind = kind.as_str(), declared, cap, "media not downloaded");
            return None;
        }
        match tokio::time::timeout(DOWNLOAD_TIMEOUT, client.download(part)).await {
            Ok(Ok(bytes)) if bytes.len() as u64 <= cap => Some(bytes),
            Ok(Ok(bytes)) => {
                tracing::warn!(
                    kind = kind.as_str(),
                    size = bytes.len(),
                    cap,
                    "media over its cap"
                );
                None
            }
            Ok(Err(err)) => {
                tracing::warn!(kind = kind.as_str(), error = %err, "media download failed");
                None
            }
            Err(_) => {
                tracing::warn!(kind = kind.as_str(), "media download timed out");
                None
            }
        }
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
