//! Media files and the image pipeline.
//!
//! Files are stored content-addressed (`<media_dir>/<aa>/<sha256>`), so the same picture sent to
//! a thousand leads is stored once and a path can never be chosen by a client. Pictures to send
//! are validated by their bytes (JPEG, PNG, GIF, WebP only), bounded against decompression bombs,
//! and re-encoded as JPEG of at most 350 KB with the best quality that fits, keeping the aspect
//! ratio; a GIF becomes its first frame. Both are CPU/disk work: call them on a blocking thread.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

/// Largest picture accepted for sending, before re-encoding.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Largest file sent to WhatsApp.
pub const MAX_SENT_BYTES: usize = 350 * 1024;
/// Most pixels decoded (a 10,000 × 5,000 picture); beyond is refused as a likely bomb.
const MAX_PIXELS: u64 = 50_000_000;
/// Longest side of a sent picture (WhatsApp shows less anyway).
const MAX_SIDE: u32 = 1600;
/// JPEG qualities tried, best first.
const QUALITIES: [u8; 6] = [88, 80, 72, 64, 55, 45];

/// Why a picture was refused (a 4xx for the client).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageRejected {
    /// Not JPEG, PNG, GIF or WebP, by content.
    #[error("not a JPEG, PNG, GIF or WebP image")]
    UnsupportedFormat,
    /// Over [`MAX_UPLOAD_BYTES`].
    #[error("the image is larger than 32 MiB")]
    TooLarge,
    /// Declares more pixels than allowed (decompression bomb defence).
    #[error("the image has too many pixels ({0}); at most 50 megapixels")]
    TooManyPixels(u64),
    /// Truncated or corrupt.
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

/// A picture ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    /// JPEG bytes, at most [`MAX_SENT_BYTES`].
    pub data: Vec<u8>,
    /// Width after resizing.
    pub width: u32,
    /// Height after resizing.
    pub height: u32,
}

/// Validates and re-encodes a picture for sending.
pub fn prepare_image(bytes: &[u8]) -> Result<PreparedImage, ImageRejected> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(ImageRejected::TooLarge);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageRejected::UnsupportedFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(ImageRejected::UnsupportedFormat);
    }
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_alloc = Some(512 * 1024 * 1024);
        reader.limits(limits);
        reader
    };
    let (width, height) = reader()
        .into_dimensions()
        .map_err(|e| ImageRejected::Corrupt(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(ImageRejected::TooManyPixels(pixels));
    }
    let decoded = reader()
        .decode()
        .map_err(|e| ImageRejected::Corrupt(e.to_string()))?;
    let mut picture = fit_within(decoded, MAX_SIDE);
    loop {
        let rgb = DynamicImage::ImageRgb8(picture.to_rgb8());
        for quality in QUALITIES {
            let data = encode_jpeg(&rgb, quality)?;
            if data.len() <= MAX_SENT_BYTES {
                return Ok(PreparedImage {
                    data,
                    width: rgb.width(),
                    height: rgb.height(),
                });
            }
        }
        // Even the lowest quality is too big: shrink by a quarter and try again.
        let side = (picture.width().max(picture.height()) * 3 / 4).max(1);
        picture = fit_within(picture, side);
    }
}

/// Scales down (never up) so the longest side is at most `side`, keeping the aspect ratio.
fn fit_within(picture: DynamicImage, side: u32) -> DynamicImage {
    if picture.width() <= side && picture.height() <= side {
        picture
    } else {
        picture.resize(side, side, image::imageops::FilterType::Triangle)
    }
}

/// JPEG at `quality`.
fn encode_jpeg(picture: &DynamicImage, quality: u8) -> Result<Vec<u8>, ImageRejected> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(picture)
        .map_err(|e| ImageRejected::Corrupt(e.to_string()))?;
    Ok(out)
}

/// Content-addressed media files under one directory.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

impl MediaStore {
    /// A store rooted at `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Saves `data` and returns its SHA-256 hex; saving the same bytes again is a no-op.
    pub fn save(&self, data: &[u8]) -> std::io::Result<String> {
        let sha = hex::encode(Sha256::digest(data));
        let path = self.file(&sha);
        if path.is_file() {
            return Ok(sha);
        }
        let folder = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(folder)?;
        // Write aside, then rename: a reader never sees half a file.
        let temporary = folder.join(format!(".{sha}.{}", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(sha)
    }

    /// The file of a SHA-256, if `sha` is one (64 hex digits) — never a path of the client's.
    pub fn path(&self, sha: &str) -> Option<PathBuf> {
        let valid = sha.len() == 64
            && sha
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        valid.then(|| self.file(sha))
    }

    /// Where a SHA-256's file lives.
    fn file(&self, sha: &str) -> PathBuf {
        self.dir.join(&sha[..2]).join(sha)
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    /// A picture with `noise_bits` of noise per channel over a gradient (noise compresses
    /// badly, so the size limits are really exercised).
    fn noisy_png(width: u32, height: u32, noise_bits: u32) -> Vec<u8> {
        let mut seed: u32 = 12345;
        let mask = (1u32 << noise_bits) - 1;
        let picture = ImageBuffer::from_fn(width, height, |x, y| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let base = ((x + y) % 256) & !mask;
            let n = |shift: u32| (base | ((seed >> shift) & mask)) as u8;
            Rgb([n(16), n(8), n(0)])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(picture)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_large_png_becomes_a_small_decodable_jpeg_with_its_aspect_ratio() {
        let prepared = prepare_image(&noisy_png(4000, 3000, 3)).unwrap();
        assert!(
            prepared.data.len() <= MAX_SENT_BYTES,
            "{}",
            prepared.data.len()
        );
        let decoded = image::load_from_memory(&prepared.data).unwrap();
        assert_eq!(
            image::guess_format(&prepared.data).unwrap(),
            ImageFormat::Jpeg
        );
        assert_eq!(
            (decoded.width(), decoded.height()),
            (prepared.width, prepared.height)
        );
        let ratio = f64::from(prepared.width) / f64::from(prepared.height);
        assert!((ratio - 4.0 / 3.0).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn a_large_jpeg_is_brought_under_the_limit() {
        let png = noisy_png(2000, 1500, 8);
        let big = encode_jpeg(&image::load_from_memory(&png).unwrap(), 100).unwrap();
        assert!(big.len() > MAX_SENT_BYTES);
        let prepared = prepare_image(&big).unwrap();
        assert!(prepared.data.len() <= MAX_SENT_BYTES);
        assert!(image::load_from_memory(&prepared.data).is_ok());
    }

    #[test]
    fn garbage_truncation_and_bombs_are_refused() {
        assert_eq!(
            prepare_image(b"plain text, not a picture"),
            Err(ImageRejected::UnsupportedFormat)
        );
        let png = noisy_png(64, 64, 8);
        assert!(matches!(
            prepare_image(&png[..png.len() / 2]),
            Err(ImageRejected::Corrupt(_))
        ));
        // A PNG header declaring 100,000 × 100,000 pixels: refused before any decoding.
        let mut bomb = noisy_png(1, 1, 8);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            prepare_image(&bomb),
            Err(ImageRejected::TooManyPixels(_)) | Err(ImageRejected::Corrupt(_))
        ));
        // A TIFF header: a real image format, but not one WhatsApp takes.
        assert_eq!(
            prepare_image(b"II*\0\x08\0\0\0"),
            Err(ImageRejected::UnsupportedFormat)
        );
    }

    #[test]
    fn media_is_content_addressed_and_paths_are_never_the_clients() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path());
        let sha = store.save(b"hello").unwrap();
        assert_eq!(store.save(b"hello").unwrap(), sha);
        assert_eq!(std::fs::read(store.path(&sha).unwrap()).unwrap(), b"hello");
        assert!(store.path("../../etc/passwd").is_none());
        assert!(store.path(&sha.to_uppercase()).is_none());
    }
}
