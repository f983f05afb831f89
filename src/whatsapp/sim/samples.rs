//! Real bytes for what simulated contacts send: a PNG photo, a WebP sticker, an OGG/Opus voice
//! note, a PDF document, a vCard and a place. Small, valid files (a browser plays, shows or
//! opens them), built once in code rather than shipped as fixtures.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::whatsapp::{ContactCard, Location};

/// The photo contacts send: a valid 16x16 PNG (green and white squares), kept tiny so that
/// thousands of answers cost next to nothing.
pub const PHOTO_PNG: [u8; 91] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x91, 0x68,
    0x36, 0x00, 0x00, 0x00, 0x22, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x50, 0xbd, 0x9c, 0x06,
    0x47, 0xff, 0x91, 0x00, 0x2e, 0x71, 0x86, 0x41, 0xa8, 0x81, 0x18, 0x45, 0xc8, 0xe2, 0x83, 0x51,
    0xc3, 0x68, 0x3c, 0x0c, 0x0a, 0x0d, 0x00, 0xc0, 0x8b, 0x2d, 0x9f, 0x03, 0xc6, 0xc3, 0x22, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The video contacts send: one second of a 32x32 green H.264 (baseline) clip in an MP4, made
/// once with ffmpeg (libx264, `-crf 40`, faststart, bit-exact) and kept as bytes; a browser
/// plays it.
pub const CLIP_MP4: &[u8] = include_bytes!("clip.mp4");

/// File name of the document contacts send.
pub(super) const DOCUMENT_NAME: &str = "price list.pdf";

/// A 32x32 lossless WebP sticker (a green disc on transparency).
pub(super) fn sticker_webp() -> Arc<Vec<u8>> {
    static STICKER: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    STICKER
        .get_or_init(|| {
            let size = 32u32;
            let mut pixels = Vec::with_capacity((size * size * 4) as usize);
            for y in 0..size {
                for x in 0..size {
                    let (dx, dy) = (x as i32 - 16, y as i32 - 16);
                    let inside = dx * dx + dy * dy <= 14 * 14;
                    pixels.extend_from_slice(if inside {
                        &[37, 211, 102, 255]
                    } else {
                        &[0; 4]
                    });
                }
            }
            let mut out = Cursor::new(Vec::new());
            // Lossless encoding of a buffer this size cannot fail.
            let encoded = WebPEncoder::new_lossless(&mut out).write_image(
                &pixels,
                size,
                size,
                ExtendedColorType::Rgba8,
            );
            debug_assert!(encoded.is_ok());
            Arc::new(out.into_inner())
        })
        .clone()
}

/// A one-page PDF saying "Price list", with a correct cross-reference table.
pub(super) fn document_pdf() -> Arc<Vec<u8>> {
    static PDF: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    PDF.get_or_init(|| {
        let stream = "BT /F1 24 Tf 72 720 Td (Price list) Tj ET";
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_string(),
            format!(
                "<< /Length {} >>\nstream\n{stream}\nendstream",
                stream.len()
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        ];
        let mut pdf = String::from("%PDF-1.4\n");
        let mut offsets = Vec::new();
        for (n, body) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.push_str(&format!("{} 0 obj\n{body}\nendobj\n", n + 1));
        }
        let xref = pdf.len();
        pdf.push_str(&format!(
            "xref\n0 {}\n0000000000 65535 f \n",
            objects.len() + 1
        ));
        for offset in offsets {
            pdf.push_str(&format!("{offset:010} 00000 n \n"));
        }
        pdf.push_str(&format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        ));
        Arc::new(pdf.into_bytes())
    })
    .clone()
}

/// A voice note as WhatsApp sends it: an Ogg stream of Opus (`OpusHead`, `OpusTags`, then 50
/// frames of 20 ms silence: one second).
pub(super) fn voice_ogg() -> Arc<Vec<u8>> {
    static OGG: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    OGG.get_or_init(|| {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1]); // version, one channel
        head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
        head.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
        head.extend_from_slice(&[0, 0, 0]); // output gain, mapping family
        let mut tags = b"OpusTags".to_vec();
        let vendor = b"wafleet sim";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        // TOC 0xF8: CELT-only fullband, 20 ms, one frame; 0xFF 0xFE: a silent frame.
        let silence: &[u8] = &[0xf8, 0xff, 0xfe];
        let frames = 50u64;
        let mut out = Vec::new();
        ogg_page(&mut out, 0x02, 0, 0, &[&head]);
        ogg_page(&mut out, 0x00, 0, 1, &[&tags]);
        let audio: Vec<&[u8]> = (0..frames).map(|_| silence).collect();
        ogg_page(&mut out, 0x04, 312 + frames * 960, 2, &audio);
        Arc::new(out)
    })
    .clone()
}

/// Appends one Ogg page (stream serial 1) holding `packets`, each under 255 bytes.
fn ogg_page(out: &mut Vec<u8>, flags: u8, granule: u64, sequence: u32, packets: &[&[u8]]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // checksum, filled in below
    out.push(packets.len() as u8);
    for packet in packets {
        out.push(packet.len() as u8);
    }
    for packet in packets {
        out.extend_from_slice(packet);
    }
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, zero start).
fn ogg_crc(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |mut crc, byte| {
        crc ^= u32::from(*byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// The place contacts share.
pub(super) fn place() -> Location {
    Location {
        latitude: 3.157_8,
        longitude: 101.711_9,
        name: Some("Petronas Twin Towers".into()),
    }
}

/// The card a contact shares: their own, named `name`, at `phone`.
pub(super) fn card(name: &str, phone: &str) -> ContactCard {
    ContactCard {
        display_name: name.to_string(),
        vcard: format!(
            "BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;type=CELL;waid={phone}:+{phone}\nEND:VCARD"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_a_16_by_16_png() {
        assert_eq!(&PHOTO_PNG[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&PHOTO_PNG[12..16], b"IHDR");
        assert_eq!(&PHOTO_PNG[16..24], &[0, 0, 0, 16, 0, 0, 0, 16]);
        assert_eq!(
            &PHOTO_PNG[PHOTO_PNG.len() - 8..PHOTO_PNG.len() - 4],
            b"IEND"
        );
    }

    #[test]
    fn the_sticker_decodes_as_a_32_by_32_webp() {
        let webp = sticker_webp();
        assert_eq!(&webp[..4], b"RIFF");
        assert_eq!(&webp[8..12], b"WEBP");
        let decoded = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (32, 32));
    }

    #[test]
    fn the_voice_note_is_an_ogg_opus_stream_with_valid_checksums() {
        let ogg = voice_ogg();
        let mut at = 0;
        let mut pages = 0;
        while at < ogg.len() {
            assert_eq!(&ogg[at..at + 4], b"OggS", "page {pages}");
            let segments = ogg[at + 26] as usize;
            let body: usize = ogg[at + 27..at + 27 + segments]
                .iter()
                .map(|&l| l as usize)
                .sum();
            let end = at + 27 + segments + body;
            let mut page = ogg[at..end].to_vec();
            let stored = u32::from_le_bytes(page[22..26].try_into().unwrap());
            page[22..26].fill(0);
            assert_eq!(ogg_crc(&page), stored, "page {pages} checksum");
            if pages == 0 {
                assert_eq!(&ogg[at + 28..at + 36], b"OpusHead");
            }
            at = end;
            pages += 1;
        }
        assert_eq!(pages, 3);
        // The CRC of the standard check string, as every Ogg implementation computes it.
        assert_eq!(ogg_crc(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn the_document_is_a_pdf_whose_cross_references_point_at_its_objects() {
        let pdf = document_pdf();
        let text = std::str::from_utf8(&pdf).unwrap();
        assert!(text.starts_with("%PDF-1.4\n") && text.ends_with("%%EOF\n"));
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|tail| tail.lines().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(text[xref_at..].starts_with("xref\n"));
        for (n, line) in text[xref_at..].lines().skip(3).take(5).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                text[offset..].starts_with(&format!("{} 0 obj", n + 1)),
                "{line}"
            );
        }
    }
}
