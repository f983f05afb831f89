//! `wafleet bench images`: pictures uploaded `--parallel` at a time over HTTP to
//! `PUT /api/v1/campaigns/{id}/image`, the decode → resize → JPEG pipeline that chat and
//! sequence pictures share, while the process's peak memory is watched. Two kinds, one round
//! each: a picture just under the decode limit (4,600 × 4,600 RGB, 60.5 MiB decoded), which
//! decodes, and a decompression bomb (10,000 × 5,000 16-bit RGB, 287 MiB decoded, in a few
//! hundred KB), which the pipeline must refuse from its header. The peak resident set is reset
//! (`/proc/self/clear_refs`) after the pictures are built, and the client streams each upload
//! in slices of one shared copy, so the figure is the server's own.

use std::time::Instant;

use actix_web::web::Bytes;
use anyhow::Context;
use awc::body::SizedStream;
use serde_json::{json, Value};

use super::report::{self, round, Memory, Target};
use crate::auth::model::Scope;
use crate::cli::BenchArgs;

/// Issue 17: peak RSS growth while six pictures are prepared at once, at most this many MiB.
const TARGET_PEAK_GROWTH_MIB: f64 = 150.0;
/// Side of the large picture: 4,600² × 3 bytes stays under the 64 MiB decode limit.
const LARGE_SIDE: u32 = 4_600;
/// The bomb: 10,000 × 5,000 pixels of 16-bit RGB.
const BOMB_SIZE: (u32, u32) = (10_000, 5_000);

/// Runs the scenario with `--parallel` (and `--db`).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let parallel = args.parallel.max(1);
    super::with_database(args, |url| measure(url, parallel)).await
}

async fn measure(database_url: String, parallel: u32) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let token = super::fanout::create_token(&db, &admin, tenant_id, Scope::Write).await?;
    drop(db);
    // One copy of each, shared by every upload (Bytes clones are references).
    let large = Bytes::from(
        actix_web::rt::task::spawn_blocking(large_png)
            .await
            .context("building the large picture failed")??,
    );
    let bomb = Bytes::from(
        actix_web::rt::task::spawn_blocking(bomb_png)
            .await
            .context("building the bomb failed")??,
    );
    let app = super::RunningApp::start(settings).await?;
    let client = Uploader {
        base: format!("http://127.0.0.1:{}/api/v1", app.port),
        token,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .finish(),
    };
    let campaign = client.campaign().await?;
    let mut kinds = serde_json::Map::new();
    let mut worst_growth_mib = 0.0f64;
    for (kind, picture) in [("large", &large), ("bomb", &bomb)] {
        reset_peak();
        let before = Memory::probe()?;
        let cpu_before = report::cpu_seconds();
        let started = Instant::now();
        let uploads = (0..parallel).map(|_| client.upload(campaign, picture));
        let statuses = futures_util::future::join_all(uploads).await;
        let seconds = started.elapsed().as_secs_f64();
        let after = Memory::probe()?;
        let mut answered = serde_json::Map::new();
        for status in statuses {
            let status = status?.to_string();
            let count = answered.get(&status).and_then(Value::as_u64).unwrap_or(0);
            answered.insert(status, json!(count + 1));
        }
        let growth_mib = after.peak_kib.saturating_sub(before.rss_kib) as f64 / 1024.0;
        worst_growth_mib = worst_growth_mib.max(growth_mib);
        kinds.insert(
            kind.into(),
            json!({
                "upload_bytes": picture.len(),
                "answered": answered,
                "seconds": round(seconds, 3),
                "cpu_seconds": report::cpu_seconds()
                    .zip(cpu_before)
                    .map(|(after, before)| round(after - before, 2)),
                "rss_before_mib": round(before.rss_kib as f64 / 1024.0, 1),
                "peak_growth_mib": round(growth_mib, 1),
            }),
        );
    }
    app.stop().await?;
    Ok(json!({
        "params": {"parallel": parallel, "large_side": LARGE_SIDE, "bomb": BOMB_SIZE},
        "kinds": kinds,
        "targets": {
            "peak_growth_mib": Target::at_most(worst_growth_mib, TARGET_PEAK_GROWTH_MIB),
        },
    }))
}

/// Resets the process's peak resident set (`VmHWM`) to its current size (Linux 4.0+); without
/// it the peak would include building the pictures.
fn reset_peak() {
    if let Err(err) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %err, "cannot reset the peak RSS; the figure includes earlier peaks");
    }
}

/// A `LARGE_SIDE`² RGB picture with a pattern (PNG, a few MB; it decodes in full).
fn large_png() -> anyhow::Result<Vec<u8>> {
    png_by_rows(LARGE_SIDE, LARGE_SIDE, png::BitDepth::Eight, |y, row| {
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let x = x as u32;
            pixel.copy_from_slice(&[x as u8, y as u8, (x ^ y) as u8]);
        }
    })
}

/// The bomb: all black 16-bit RGB.
fn bomb_png() -> anyhow::Result<Vec<u8>> {
    let (width, height) = BOMB_SIZE;
    png_by_rows(width, height, png::BitDepth::Sixteen, |_, row| row.fill(0))
}

/// An RGB PNG written row by row (`row` fills row y), so that building even a bomb takes one
/// row of memory and leaves nothing behind for the uploads to reuse.
fn png_by_rows(
    width: u32,
    height: u32,
    depth: png::BitDepth,
    row: impl Fn(u32, &mut [u8]),
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    let mut stream = writer.stream_writer()?;
    let bytes_per_pixel = if depth == png::BitDepth::Sixteen {
        6
    } else {
        3
    };
    let mut line = vec![0u8; width as usize * bytes_per_pixel];
    for y in 0..height {
        row(y, &mut line);
        std::io::Write::write_all(&mut stream, &line)?;
    }
    stream.finish()?;
    writer.finish()?;
    Ok(out)
}

/// `picture` as 64 KiB slices (no copies), so the client holds one chunk per upload in its
/// write buffer rather than the whole picture, and the figure is the server's.
fn chunks(
    picture: &Bytes,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static {
    let picture = picture.clone();
    let count = picture.len().div_ceil(CHUNK);
    futures_util::stream::iter((0..count).map(move |n| {
        let end = ((n + 1) * CHUNK).min(picture.len());
        Ok(picture.slice(n * CHUNK..end))
    }))
}

/// Bytes per upload chunk.
const CHUNK: usize = 64 * 1024;

/// Uploads pictures as the benchmark's API token.
struct Uploader {
    base: String,
    token: String,
    client: awc::Client,
}

impl Uploader {
    /// Creates a draft campaign to hang the pictures on.
    async fn campaign(&self) -> anyhow::Result<i64> {
        let mut response = self
            .client
            .post(format!("{}/campaigns", self.base))
            .bearer_auth(&self.token)
            .send_json(&json!({"name": "Pictures", "message": "Hi", "target": {"tags": ["bench"]}}))
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the campaign: {e}"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the campaign: {e}"))?;
        body["id"]
            .as_i64()
            .with_context(|| format!("the campaign was not created: {body}"))
    }

    /// Uploads `picture` as the campaign's picture; answers the HTTP status.
    async fn upload(&self, campaign: i64, picture: &Bytes) -> anyhow::Result<u16> {
        let mut response = self
            .client
            .put(format!("{}/campaigns/{campaign}/image", self.base))
            .bearer_auth(&self.token)
            .insert_header(("content-type", "image/png"))
            .send_body(SizedStream::new(picture.len() as u64, chunks(picture)))
            .await
            .map_err(|e| anyhow::anyhow!("upload failed: {e}"))?;
        // Read the answer so the connection is reusable and the server has finished.
        let _ = response.body().await;
        Ok(response.status().as_u16())
    }
}
