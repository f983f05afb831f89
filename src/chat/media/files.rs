//! Files sent from the page or the API besides pictures (documents, voice notes, audio, video,
//! stickers): checked by their bytes, never by the name or type the client claims, and sent as
//! the type the bytes show. Nothing is transcoded: a voice note must already be OGG/Opus, as
//! WhatsApp plays it.

use crate::whatsapp::MessageKind;

/// Largest file sent, in bytes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 255;

/// Why a file cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileRejected {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// The bytes are not the kind the sender chose (or a kind never sent, such as a web page).
    #[error("{0}")]
    WrongContent(String),
}

/// The MIME type a file of `kind` is sent as, when its bytes are of that kind: a voice note is
/// OGG/Opus; audio OGG, MP3 or MP4 audio; video MP4 or 3GP; a sticker WebP; a document anything
/// but markup a browser would run (HTML, SVG, XML), typed by its bytes (PDF, ZIP-based office
/// files by their name) or else `application/octet-stream`.
pub fn check(
    kind: MessageKind,
    bytes: &[u8],
    file_name: Option<&str>,
) -> Result<String, FileRejected> {
    if bytes.is_empty() {
        return Err(FileRejected::Empty);
    }
    let wrong = |what: &str| {
        Err(FileRejected::WrongContent(format!(
            "a {} must be {what}",
            kind.as_str()
        )))
    };
    let mime = match kind {
        MessageKind::Voice if is_ogg_opus(bytes) => "audio/ogg; codecs=opus",
        MessageKind::Voice => return wrong("an OGG/Opus file (as WhatsApp records them)"),
        MessageKind::Audio => match audio_type(bytes) {
            Some(mime) => mime,
            None => return wrong("an OGG, MP3 or MP4 audio file"),
        },
        MessageKind::Video if is_mp4(bytes) => {
            if bytes.get(8..11) == Some(b"3gp") {
                "video/3gpp"
            } else {
                "video/mp4"
            }
        }
        MessageKind::Video => return wrong("an MP4 or 3GP video"),
        MessageKind::Sticker
            if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" =>
        {
            "image/webp"
        }
        MessageKind::Sticker => return wrong("a WebP image"),
        MessageKind::Document if is_markup(bytes) => {
            return Err(FileRejected::WrongContent(
                "web pages, SVG and XML files are not sent as documents".into(),
            ))
        }
        MessageKind::Document => return Ok(document_type(bytes, file_name).to_string()),
        _ => return wrong("sent as a picture or text"),
    };
    Ok(mime.to_string())
}

/// A document's file name as the recipient sees it: the last path part, without control
/// characters, at most 255 characters; `None` when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim().to_string();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

/// An Ogg stream whose first packet is an Opus header.
fn is_ogg_opus(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OggS") && bytes.len() > 36 && {
        let segments = usize::from(bytes[26]);
        bytes.get(27 + segments..35 + segments) == Some(b"OpusHead")
    }
}

/// An ISO media file (MP4, M4A, 3GP): `ftyp` at offset 4.
fn is_mp4(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"ftyp")
}

/// The type of an audio file: OGG, MP3 (ID3 tag or frame sync) or MP4 audio.
fn audio_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if bytes.starts_with(b"ID3")
        || (bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0xe0 == 0xe0)
    {
        Some("audio/mpeg")
    } else if is_mp4(bytes) {
        Some("audio/mp4")
    } else {
        None
    }
}

/// Markup a browser would render and run: HTML, SVG or XML, after any byte-order mark and
/// leading blanks.
fn is_markup(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let text = String::from_utf8_lossy(head)
        .trim_start()
        .to_ascii_lowercase();
    [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<script",
        "<svg",
        "<?xml",
        "<iframe",
    ]
    .iter()
    .any(|tag| text.starts_with(tag))
}

/// A document's type from its bytes (and, for ZIP-based office files, its name).
fn document_type(bytes: &[u8], file_name: Option<&str>) -> &'static str {
    let extension = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    if bytes.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return match extension.as_deref() {
            Some("docx") => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Some("pptx") => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            _ => "application/zip",
        };
    }
    if std::str::from_utf8(bytes).is_ok() && extension.as_deref() == Some("csv") {
        return "text/csv";
    }
    if std::str::from_utf8(bytes).is_ok() {
        return "text/plain";
    }
    "application/octet-stream"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first page of an OGG/Opus file (the simulator's voice note starts the same way).
    fn ogg_opus() -> Vec<u8> {
        let mut page = b"OggS\x00\x02".to_vec();
        page.extend_from_slice(&[0; 20]);
        page.push(1); // one segment
        page.push(19);
        page.extend_from_slice(b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00");
        page
    }

    #[test]
    fn each_kind_is_checked_by_its_bytes() {
        assert_eq!(
            check(MessageKind::Voice, &ogg_opus(), None).unwrap(),
            "audio/ogg; codecs=opus"
        );
        assert!(
            check(MessageKind::Voice, b"ID3\x04rest", None).is_err(),
            "an MP3 is no voice note"
        );
        assert_eq!(
            check(MessageKind::Audio, b"ID3\x04rest", None).unwrap(),
            "audio/mpeg"
        );
        assert_eq!(
            check(MessageKind::Video, b"\x00\x00\x00\x18ftypmp42rest", None).unwrap(),
            "video/mp4"
        );
        assert!(check(MessageKind::Video, b"%PDF-1.4", None).is_err());
        assert_eq!(
            check(MessageKind::Sticker, b"RIFF\x10\x00\x00\x00WEBPVP8L", None).unwrap(),
            "image/webp"
        );
        assert!(check(MessageKind::Sticker, b"\x89PNG\r\n\x1a\n", None).is_err());
        assert_eq!(
            check(MessageKind::Document, b"%PDF-1.7 ...", Some("x.exe")).unwrap(),
            "application/pdf"
        );
        assert_eq!(
            check(MessageKind::Document, b"PK\x03\x04...", Some("Quote.DOCX")).unwrap(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(
            check(MessageKind::Document, b"a,b\n1,2\n", Some("leads.csv")).unwrap(),
            "text/csv"
        );
        assert_eq!(
            check(MessageKind::Document, &[0, 159, 146, 150], None).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            check(MessageKind::Document, b"", None),
            Err(FileRejected::Empty)
        );
    }

    #[test]
    fn markup_is_never_a_document() {
        for page in [
            &b"<!DOCTYPE html><script>alert(1)</script>"[..],
            b"\xef\xbb\xbf  <html>",
            b"<svg onload=alert(1)>",
            b"<?xml version='1.0'?>",
        ] {
            assert!(
                matches!(
                    check(MessageKind::Document, page, Some("invoice.pdf")),
                    Err(FileRejected::WrongContent(_))
                ),
                "{}",
                String::from_utf8_lossy(page)
            );
        }
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(
            clean_name("C:\\Users\\me\\price list.pdf").as_deref(),
            Some("price list.pdf")
        );
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("a\r\nb.pdf").as_deref(), Some("ab.pdf"));
        assert_eq!(clean_name(".."), None);
        assert_eq!(clean_name("  "), None);
        assert_eq!(clean_name(&"x".repeat(300)).map(|n| n.len()), Some(255));
    }
}
