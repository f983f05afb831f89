//! What the contacts of `wafleet bench inbound` send (`--mix`): which messages carry media, of
//! which kind and size, the media's bytes, and how long a device takes to download them.
//!
//! With `--mix media` one message in [`MEDIA_ONE_IN`] carries a file, its kind drawn evenly from
//! [`KINDS`] (picture, voice note, audio, document, sticker) and its size from that kind's usual
//! range, about 1 MiB on average. The draw is a hash of the message's number: every run sends
//! the same mix, spread over the devices whatever their count.
//!
//! A file starts with its format's signature (PNG, `OggS`, `%PDF`, `RIFF….WEBP`), then the
//! message's number, then noise cut from one buffer made once and shared ([`Samples`]). The
//! number makes every file different: the chat mirror stores files by SHA-256, so equal files
//! would be written once and hide the cost of storing them. No actix here.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::Mix;
use crate::whatsapp::MessageKind;

/// One message in this many carries media with `--mix media` (20 %).
pub const MEDIA_ONE_IN: u64 = 5;
/// How fast a device downloads media, in bytes per simulated second (WhatsApp's media servers
/// as a phone on a good connection sees them).
pub const DOWNLOAD_BYTES_PER_S: f64 = 20_000_000.0;

/// A media kind of the mix: what it is, how it is typed, how big it usually is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaKind {
    /// The message kind.
    pub kind: MessageKind,
    /// Its MIME type.
    pub mime: &'static str,
    /// A document's file name, `None` for the others.
    pub file_name: Option<&'static str>,
    /// Smallest size, bytes.
    min_bytes: usize,
    /// Largest size, bytes.
    max_bytes: usize,
}

/// One KiB.
const KIB: usize = 1024;

/// The kinds of the mix, drawn evenly; mean sizes 1.5 MiB, 300 KiB, 2 MiB, 1 MiB and 250 KiB,
/// about 1 MiB over all (each within the default `chat.media_max_mb` of its kind).
pub const KINDS: [MediaKind; 5] = [
    MediaKind {
        kind: MessageKind::Image,
        mime: "image/png",
        file_name: None,
        min_bytes: 768 * KIB,
        max_bytes: 2304 * KIB,
    },
    MediaKind {
        kind: MessageKind::Voice,
        mime: "audio/ogg; codecs=opus",
        file_name: None,
        min_bytes: 100 * KIB,
        max_bytes: 500 * KIB,
    },
    MediaKind {
        kind: MessageKind::Audio,
        mime: "audio/ogg",
        file_name: None,
        min_bytes: 1024 * KIB,
        max_bytes: 3072 * KIB,
    },
    MediaKind {
        kind: MessageKind::Document,
        mime: "application/pdf",
        file_name: Some("quotation.pdf"),
        min_bytes: 512 * KIB,
        max_bytes: 1536 * KIB,
    },
    MediaKind {
        kind: MessageKind::Sticker,
        mime: "image/webp",
        file_name: None,
        min_bytes: 50 * KIB,
        max_bytes: 450 * KIB,
    },
];

/// What message number `n` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Text only.
    Text,
    /// A file of this kind and size (bytes).
    Media(MediaKind, usize),
}

/// What message `n` of a run with `mix` carries.
pub fn content(mix: Mix, n: u32) -> Content {
    let hash = mixed(u64::from(n));
    if mix == Mix::Text || !hash.is_multiple_of(MEDIA_ONE_IN) {
        return Content::Text;
    }
    let kind = KINDS[((hash >> 8) % KINDS.len() as u64) as usize];
    let spread = (kind.max_bytes - kind.min_bytes) as u64;
    let size = kind.min_bytes + ((hash >> 24) % (spread + 1)) as usize;
    Content::Media(kind, size)
}

/// How long a device takes to download `size` bytes at [`DOWNLOAD_BYTES_PER_S`], on a
/// simulated clock running `time_scale` times faster than real time.
pub fn download_time(size: usize, time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    Duration::from_secs_f64(size as f64 / DOWNLOAD_BYTES_PER_S / scale)
}

/// Media bytes made from one noise buffer, built once and shared by every device's session.
#[derive(Debug, Clone)]
pub struct Samples {
    /// Noise as long as the largest file of [`KINDS`].
    noise: Arc<Vec<u8>>,
}

impl Samples {
    /// Builds the noise buffer (a few milliseconds).
    pub fn generate() -> Samples {
        let longest = KINDS.iter().map(|k| k.max_bytes).max().unwrap_or(0);
        let noise = (0..longest.div_ceil(8) as u64)
            .flat_map(|i| mixed(i).to_le_bytes())
            .take(longest)
            .collect();
        Samples {
            noise: Arc::new(noise),
        }
    }

    /// The file of message `n`: `size` bytes of `kind`, its signature first.
    pub fn file(&self, kind: MessageKind, size: usize, n: u32) -> Vec<u8> {
        let mut file = Vec::with_capacity(size);
        file.extend_from_slice(&signature(kind, size));
        file.extend_from_slice(&n.to_le_bytes());
        let rest = size.saturating_sub(file.len()).min(self.noise.len());
        file.extend_from_slice(&self.noise[..rest]);
        file.truncate(size);
        file
    }
}

/// The first bytes of a `size`-byte file of `kind`: PNG's signature, an Ogg page's capture
/// pattern (version 0, first page), a PDF header, or a RIFF header whose length is the file's.
fn signature(kind: MessageKind, size: usize) -> Vec<u8> {
    match kind {
        MessageKind::Image => b"\x89PNG\r\n\x1a\n".to_vec(),
        MessageKind::Voice | MessageKind::Audio => b"OggS\x00\x02".to_vec(),
        MessageKind::Document => b"%PDF-1.7\n".to_vec(),
        MessageKind::Sticker => {
            let length = u32::try_from(size.saturating_sub(8)).unwrap_or(u32::MAX);
            let mut riff = b"RIFF".to_vec();
            riff.extend_from_slice(&length.to_le_bytes());
            riff.extend_from_slice(b"WEBPVP8 ");
            riff
        }
        _ => Vec::new(),
    }
}

/// SplitMix64 of `n`: a fixed, well-spread hash for the mix and the noise.
fn mixed(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media of messages 0..n of the media mix.
    fn media_of(n: u32) -> Vec<(MediaKind, usize)> {
        (0..n)
            .filter_map(|n| match content(Mix::Media, n) {
                Content::Media(kind, size) => Some((kind, size)),
                Content::Text => None,
            })
            .collect()
    }

    #[test]
    fn the_text_mix_is_all_text() {
        assert!((0..10_000).all(|n| content(Mix::Text, n) == Content::Text));
    }

    #[test]
    fn one_message_in_five_carries_media_of_every_kind_about_1_mib_on_average() {
        let media = media_of(20_000);
        let share = media.len() as f64 / 20_000.0;
        assert!((0.18..0.22).contains(&share), "share {share}");
        for kind in KINDS {
            let count = media.iter().filter(|(k, _)| *k == kind).count();
            assert!(count > media.len() / 7, "{:?}: {count}", kind.kind);
            assert!(media
                .iter()
                .filter(|(k, _)| *k == kind)
                .all(|(_, size)| (kind.min_bytes..=kind.max_bytes).contains(size)));
        }
        let mean = media.iter().map(|(_, size)| *size as f64).sum::<f64>() / media.len() as f64;
        let mib = mean / (1024.0 * 1024.0);
        assert!((0.9..1.1).contains(&mib), "mean {mib} MiB");
    }

    #[test]
    fn the_mix_is_the_same_every_run_and_spread_over_devices() {
        assert_eq!(media_of(1000), media_of(1000));
        // With 50 devices taking messages in turn, every device gets some media.
        let devices: std::collections::HashSet<u32> = (0..3000)
            .filter(|n| content(Mix::Media, *n) != Content::Text)
            .map(|n| n % 50)
            .collect();
        assert_eq!(devices.len(), 50);
    }

    #[test]
    fn files_have_their_size_and_signature_and_differ_by_message() {
        let samples = Samples::generate();
        for kind in KINDS {
            let file = samples.file(kind.kind, kind.max_bytes, 7);
            assert_eq!(file.len(), kind.max_bytes);
            let other = samples.file(kind.kind, kind.max_bytes, 8);
            assert_ne!(file, other, "{:?}", kind.kind);
        }
        assert!(samples
            .file(MessageKind::Image, 5000, 1)
            .starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(samples
            .file(MessageKind::Voice, 5000, 1)
            .starts_with(b"OggS"));
        assert!(samples
            .file(MessageKind::Audio, 5000, 1)
            .starts_with(b"OggS"));
        assert!(samples
            .file(MessageKind::Document, 5000, 1)
            .starts_with(b"%PDF-"));
        let sticker = samples.file(MessageKind::Sticker, 5000, 1);
        assert_eq!(&sticker[..4], b"RIFF");
        assert_eq!(&sticker[8..12], b"WEBP");
        assert_eq!(
            u32::from_le_bytes([sticker[4], sticker[5], sticker[6], sticker[7]]),
            4992
        );
    }

    #[test]
    fn downloads_take_size_over_speed_on_the_simulated_clock() {
        assert_eq!(download_time(2_000_000, 1.0), Duration::from_millis(100));
        assert_eq!(download_time(2_000_000, 10.0), Duration::from_millis(10));
        assert_eq!(download_time(2_000_000, 0.0), Duration::from_millis(100));
    }
}
