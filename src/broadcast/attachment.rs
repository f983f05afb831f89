//! The file a campaign or a sequence step sends with its message: a picture (prepared JPEG), or
//! a document, video, voice note or audio file kept as uploaded. The file lives in the media
//! store under `image_sha256` (the column predates other kinds); what it is, when not a picture,
//! is stored beside it as [`FileInfo`] JSON (`attachment` on campaigns, steps and outbox rows).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::chat::media::MediaStore;
use crate::whatsapp::{Media, MessageKind, OutgoingMedia};

/// What a file other than a picture is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    /// Document, video, voice or audio.
    pub kind: MessageKind,
    /// Its MIME type, as checked on upload.
    pub mime: String,
    /// A document's name as recipients see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl FileInfo {
    /// The info stored as JSON (`None` when absent or unreadable: then the file is a picture).
    pub fn parse(stored: Option<&str>) -> Option<Self> {
        serde_json::from_str(stored?).ok()
    }

    /// The info as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a campaign's or step's file is, for its view: `None` without a file, a JPEG picture
/// when no info is stored.
pub fn describe(sha: Option<&str>, stored: Option<&str>) -> Option<FileInfo> {
    sha?;
    Some(FileInfo::parse(stored).unwrap_or_else(|| FileInfo {
        kind: MessageKind::Image,
        mime: "image/jpeg".into(),
        file_name: None,
    }))
}

/// A file read from the media store, ready to go out with any caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Its kind.
    kind: MessageKind,
    /// Its bytes and type.
    media: Media,
    /// A document's name.
    file_name: Option<String>,
}

impl Prepared {
    /// The file as one message, with `caption` where its kind takes one (pictures, videos and
    /// documents).
    pub fn outgoing(&self, caption: &str) -> OutgoingMedia {
        let captioned = matches!(
            self.kind,
            MessageKind::Image | MessageKind::Video | MessageKind::Document
        );
        OutgoingMedia {
            kind: self.kind,
            media: self.media.clone(),
            caption: Some(caption.to_string()).filter(|c| captioned && !c.is_empty()),
            file_name: self.file_name.clone(),
        }
    }
}

/// Reads the file `sha` as what `info` says it is (a prepared JPEG picture when `None`).
pub async fn load(
    media: &MediaStore,
    sha: &str,
    info: Option<&FileInfo>,
) -> Result<Prepared, String> {
    let path = media
        .path(sha)
        .ok_or_else(|| "the file is missing".to_string())?;
    let data = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("the file cannot be read: {e}"))?;
    Ok(match info {
        Some(info) => Prepared {
            kind: info.kind,
            media: Media::bytes(info.mime.clone(), data),
            file_name: info.file_name.clone(),
        },
        None => Prepared {
            kind: MessageKind::Image,
            media: Media::bytes("image/jpeg", data),
            file_name: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_and_captions_go_where_whatsapp_shows_them() {
        let info = FileInfo {
            kind: MessageKind::Document,
            mime: "application/pdf".into(),
            file_name: Some("Price list.pdf".into()),
        };
        assert_eq!(FileInfo::parse(Some(&info.to_json())), Some(info));
        assert_eq!(FileInfo::parse(None), None);
        assert_eq!(FileInfo::parse(Some("not json")), None);
        let file = |kind| Prepared {
            kind,
            media: Media::bytes("x/y", vec![1]),
            file_name: None,
        };
        let document = file(MessageKind::Document).outgoing("Hi Aisyah");
        assert_eq!(document.caption.as_deref(), Some("Hi Aisyah"));
        assert_eq!(file(MessageKind::Voice).outgoing("Hi").caption, None);
        assert_eq!(file(MessageKind::Image).outgoing("").caption, None);
    }
}
