//! Media files and the image pipeline.
//!
//! Files are stored content-addressed (`<media_dir>/<aa>/<sha256>`), so the same picture sent to
//! a thousand leads is stored once and a path can never be chosen by a client. Pictures to send
//! are validated by their bytes (JPEG, PNG, GIF, WebP only), bounded against decompression bombs,
//! and re-encoded as JPEG of at most 350 KB with the best quality that fits, keeping the aspect
//! ratio; a GIF becomes its first frame.
//!
//! Memory is bounded before any pixel is decoded: the header's width × height × bytes per
//! pixel (at the decoder's own depth, so a 16-bit picture counts double) must fit in
//! [`MAX_DECODED_BYTES`], and the decoder runs under [`image::Limits`] (dimensions and total
//! allocation). A picture is brought to 8 bits per channel and down to [`MAX_SIDE`] right after
//! decoding, by area averaging that allocates only the small result. Decoding is CPU work:
//! callers use [`prepare_image_bounded`], which reads the header first, then runs the decode on
//! a blocking thread with at most one decode per core and all decodes together within a memory
//! budget weighed from their headers ([`DecodeGate`]), so parallel uploads cannot add up their
//! peaks; upload bodies are bounded the same way ([`upload_budget`]).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::error::ImageError;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

pub mod files;
mod gate;
pub use gate::{upload_budget, ByteBudget, DecodeGate, Reservation};

/// Largest picture accepted for sending, before re-encoding.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Largest file sent to WhatsApp.
pub const MAX_SENT_BYTES: usize = 350 * 1024;
/// Most pixels decoded (a 10,000 × 5,000 picture); beyond is refused as a likely bomb.
const MAX_PIXELS: u64 = 50_000_000;
/// Most bytes a decoded picture may take (width × height × bytes per pixel, from the header):
/// a 21-megapixel RGB or 16-megapixel RGBA photo at 8 bits per channel; half that at 16 bits.
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// Longest side the decoder accepts (any more is refused from the header).
const MAX_DECODED_SIDE: u32 = 20_000;
/// What a decoder may allocate at once: the picture plus room for its working buffers.
const MAX_DECODER_ALLOC: u64 = MAX_DECODED_BYTES + 32 * 1024 * 1024;
/// Longest side of a sent picture (WhatsApp shows less anyway).
pub const MAX_SIDE: u32 = 1600;
/// Memory a decode needs beyond the decoded picture: the scaled result at up to 16 bits per
/// channel and its 8-bit copy.
const OUTPUT_RESERVE: u64 = MAX_SIDE as u64 * MAX_SIDE as u64 * 4 * 3;
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
    /// Would take more than [`MAX_DECODED_BYTES`] decoded (decompression bomb defence).
    #[error(
        "the image would take {} MiB decoded; at most 64 MiB (fewer pixels, or 8 bits per channel)",
        .0.div_ceil(1024 * 1024)
    )]
    DecodedTooLarge(u64),
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

/// Validates and re-encodes a picture for sending. Pure and synchronous (CPU-bound: call it
/// through [`prepare_image_bounded`] from async code); total for any input (an error, never a
/// panic), the entry point fuzzers call.
pub fn prepare_image(bytes: &[u8]) -> Result<PreparedImage, ImageRejected> {
    encode_within_limit(shrink(bytes)?)
}

/// Decodes `bytes` and scales the picture down to [`MAX_SIDE`] at 8 bits per channel: the
/// large decoded picture is gone when this returns; the result is at most 1600 × 1600 × 3 bytes.
fn shrink(bytes: &[u8]) -> Result<DynamicImage, ImageRejected> {
    let picture = fit_within(decode_bounded(bytes)?, MAX_SIDE);
    Ok(DynamicImage::ImageRgb8(picture.into_rgb8()))
}

/// JPEG of `picture` with the best quality that fits [`MAX_SENT_BYTES`], shrinking it further
/// if even the lowest quality does not.
fn encode_within_limit(mut picture: DynamicImage) -> Result<PreparedImage, ImageRejected> {
    loop {
        for quality in QUALITIES {
            let data = encode_jpeg(&picture, quality)?;
            if data.len() <= MAX_SENT_BYTES {
                return Ok(PreparedImage {
                    data,
                    width: picture.width(),
                    height: picture.height(),
                });
            }
        }
        // Even the lowest quality is too big: shrink by a quarter and try again.
        let side = (picture.width().max(picture.height()) * 3 / 4).max(1);
        picture = fit_within(picture, side);
    }
}

/// Decodes `bytes` after checking, from the header alone, that the result fits the limits.
fn decode_bounded(bytes: &[u8]) -> Result<DynamicImage, ImageRejected> {
    let (decoder, _) = open_bounded(bytes)?;
    DynamicImage::from_decoder(decoder).map_err(rejected)
}

/// Memory a decode of `bytes` needs, from its header: the decoded picture plus its result and
/// working buffers ([`OUTPUT_RESERVE`]). Refuses what [`prepare_image`] would refuse from the
/// header, so a bomb never waits for the gate.
pub fn decode_cost(bytes: &[u8]) -> Result<u64, ImageRejected> {
    open_bounded(bytes).map(|(_, decoded)| decoded + OUTPUT_RESERVE)
}

/// A decoder of `bytes` under [`Limits`] and the bytes it will decode to, after checking the
/// format and, from the header, the size.
fn open_bounded(bytes: &[u8]) -> Result<(impl ImageDecoder + '_, u64), ImageRejected> {
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
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(rejected)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(ImageRejected::TooManyPixels(pixels));
    }
    let decoded_bytes = pixels.saturating_mul(u64::from(decoder.color_type().bytes_per_pixel()));
    if decoded_bytes > MAX_DECODED_BYTES {
        return Err(ImageRejected::DecodedTooLarge(decoded_bytes));
    }
    Ok((decoder, decoded_bytes))
}

/// A decoder's error as the client's: a limit the decoder hit is a picture too large.
fn rejected(err: ImageError) -> ImageRejected {
    match err {
        ImageError::Limits(_) => ImageRejected::DecodedTooLarge(MAX_DECODER_ALLOC),
        ImageError::Unsupported(_) => ImageRejected::UnsupportedFormat,
        other => ImageRejected::Corrupt(other.to_string()),
    }
}

/// [`prepare_image`] on a blocking thread behind [`DecodeGate::global`]: what request handlers
/// call.
pub async fn prepare_image_bounded(bytes: Vec<u8>) -> Result<PreparedImage, ImageRejected> {
    let failed =
        |e: tokio::task::JoinError| ImageRejected::Corrupt(format!("the decoder failed: {e}"));
    let gate = DecodeGate::global();
    // The header is read off the async threads too: a decoder may inflate chunks before it.
    let (bytes, cost) = gate
        .look(move || {
            let cost = decode_cost(&bytes);
            (bytes, cost)
        })
        .await
        .map_err(failed)?;
    gate.run(cost?, move || {
        let picture = shrink(&bytes);
        // The upload is not needed for the encoding: give its memory back first.
        drop(bytes);
        encode_within_limit(picture?)
    })
    .await
    .map_err(failed)?
}

/// Scales down (never up) so the longest side is at most `side`, keeping the aspect ratio. A
/// picture at least twice too large is averaged by area (only the result is allocated, at the
/// picture's own depth); a smaller step is filtered.
fn fit_within(picture: DynamicImage, side: u32) -> DynamicImage {
    let longest = picture.width().max(picture.height());
    if longest <= side {
        picture
    } else if longest / 2 >= side {
        picture.thumbnail(side, side)
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
        assert!(matches!(
            prepare_image(&png_header(100_000, 100_000, 8, 2)),
            Err(ImageRejected::DecodedTooLarge(_))
        ));
        // A TIFF header: a real image format, but not one WhatsApp takes.
        assert_eq!(
            prepare_image(b"II*\0\x08\0\0\0"),
            Err(ImageRejected::UnsupportedFormat)
        );
    }

    /// The bomb of the report: 10,000 × 5,000 pixels of 16-bit RGB (300 MB decoded, 608 MB
    /// peak through the old pipeline) in a 292 KB file.
    const BOMB: &[u8] = include_bytes!("../../tests/fixtures/bomb-10000x5000-rgb16.png");

    /// CRC-32 of PNG chunks (ISO 3309), bit by bit: test pictures only.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    /// A PNG's signature and IHDR chunk, then an empty IDAT: all a decoder reads before the
    /// first pixel. `color` 2 is RGB, 6 RGBA.
    fn png_header(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = png.len();
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            let crc = crc32(&png[start..]);
            png.extend_from_slice(&crc.to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &[]);
        png
    }

    #[test]
    fn the_decoded_size_is_checked_from_the_header_before_decoding() {
        // Exactly at the pixel limit; refused by bytes, from the header, before any allocation
        // of its size (before: decoded, converted and resized, 608 MB and seconds of CPU).
        assert_eq!(&BOMB[..24], &png_header(10_000, 5_000, 16, 2)[..24]);
        let started = std::time::Instant::now();
        assert_eq!(
            prepare_image(BOMB),
            Err(ImageRejected::DecodedTooLarge(300_000_000))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The same pixels at 8 bits (150 MB), and RGBA just past the limit, are refused too.
        assert_eq!(
            prepare_image(&png_header(10_000, 5_000, 8, 2)),
            Err(ImageRejected::DecodedTooLarge(150_000_000))
        );
        let side = (MAX_DECODED_BYTES as f64 / 4.0).sqrt() as u32 + 1;
        assert!(matches!(
            prepare_image(&png_header(side, side, 8, 6)),
            Err(ImageRejected::DecodedTooLarge(_))
        ));
        // Within the limit the header passes and the (empty) data is what fails.
        assert!(matches!(
            prepare_image(&png_header(side - 2, side - 2, 8, 6)),
            Err(ImageRejected::Corrupt(_))
        ));
        let message = ImageRejected::DecodedTooLarge(300_000_000).to_string();
        assert!(
            message.contains("287 MiB decoded; at most 64 MiB"),
            "{message}"
        );
    }

    #[test]
    fn a_16_bit_picture_comes_out_as_an_8_bit_jpeg() {
        let picture = ImageBuffer::from_fn(3200, 1000, |x, y| {
            image::Rgba([(x * 20) as u16, (y * 60) as u16, 30_000, 65_535])
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgba16(picture)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let prepared = prepare_image(&png).unwrap();
        assert_eq!((prepared.width, prepared.height), (1600, 500));
        let decoded = image::load_from_memory(&prepared.data).unwrap();
        assert_eq!(decoded.color(), image::ColorType::Rgb8);
    }

    #[tokio::test]
    async fn six_parallel_bombs_are_refused_quickly() {
        let started = std::time::Instant::now();
        let outcomes =
            futures::future::join_all((0..6).map(|_| prepare_image_bounded(BOMB.to_vec()))).await;
        for outcome in outcomes {
            assert_eq!(outcome, Err(ImageRejected::DecodedTooLarge(300_000_000)));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
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
