//! `wafleet bench inbound`: contacts write to N simulated devices at R messages per second while
//! S WebSocket clients subscribe to every device's `messages/<id>` topic; the figure is the
//! end-to-end latency from the simulator emitting a message to a client receiving its
//! `NEW_MESSAGE` frame, which includes ChatSync's batch window and the database commit.
//!
//! Each message's text (a file's caption) is its emission time (µs since an epoch shared with
//! the clients), so the clients time every frame without a side channel. The clients are the
//! same `awc` WebSocket clients as in [`super::fanout`]. With `--redis`, every event is also
//! offered to the Redis bridge; the memory figures show what that costs, and with an
//! unreachable Redis that the bridge's queue stays bounded.
//!
//! # Media (`--mix media`)
//! One message in five carries a file of about 1 MiB ([`super::mix`]). As in the real connector,
//! a device's session downloads a file before it passes the message on, which holds up that
//! device's later messages and no other device's: each device has its own lane (a task) that
//! emits its messages in order, sleeping [`mix::download_time`] (20 MB/s on the simulator's
//! clock) before a file. Emission is the moment the simulator hands a message to its device,
//! after the download; the time a text waited behind its device's download is reported apart
//! (`text_queued_ms`). Messages with files are timed apart from text and count once the chat
//! mirror has committed them (`NEW_MESSAGE` with the file `stored`); the daemon stores them in a
//! fresh media folder in the temporary directory (which must be on disk, as `data/media` is,
//! for the files' syncs to cost what they do in production), removed afterwards.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::rt::time::Instant;
use anyhow::Context;
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::fanout::{self, Listen, StampField};
use super::mix::{self, Content, MediaKind, Samples};
use super::report::{self, round, LatencyMs, Memory, Target};
use super::RunningApp;
use crate::auth::model::Scope;
use crate::cli::{BenchArgs, Mix};
use crate::device::model::DeviceFilter;
use crate::device::store;
use crate::phone::jid_of;
use crate::whatsapp::sim::{SimError, SimNetwork};
use crate::whatsapp::{Media, WaMessage};

/// Messages per second unless `--rate` says otherwise.
const DEFAULT_RATE: f64 = 300.0;
/// Simulated clock speed (downloads included) unless `--time-scale` says otherwise.
const DEFAULT_TIME_SCALE: f64 = 1.0;
/// Issue 11: inbound→WebSocket p99 at most this many milliseconds (300 msg/s, 50 subscribers).
const TARGET_P99_MS: f64 = 25.0;
/// With media: text messages' p99 at most this many milliseconds while files are downloaded
/// and stored (downloads never block the chat batch).
const TARGET_TEXT_P99_WITH_MEDIA_MS: f64 = 50.0;

/// Runs the scenario with `--devices`, `--subscribers`, `--messages`, `--rate`, `--mix` (and
/// `--db`, `--redis`), the simulator's clock at `time_scale` (real time when `None`).
pub async fn run(args: &BenchArgs, time_scale: Option<f64>) -> anyhow::Result<Value> {
    let plan = Plan {
        devices: args.devices,
        subscribers: args.subscribers,
        messages: args.messages,
        rate: args.rate.filter(|r| *r > 0.0).unwrap_or(DEFAULT_RATE),
        mix: args.mix,
        time_scale: time_scale
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(DEFAULT_TIME_SCALE),
    };
    let redis = args
        .redis
        .as_ref()
        .map(|url| url.expose_secret().to_string());
    super::with_database(args, |url| measure(url, plan, redis)).await
}

/// What to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Devices online, taking messages in turn.
    devices: u32,
    /// WebSocket clients, each on every device's messages.
    subscribers: u32,
    /// Messages the contacts send.
    messages: u32,
    /// Messages per second.
    rate: f64,
    /// Text only, or with media.
    mix: Mix,
    /// Speed of the simulator's clock (downloads included).
    time_scale: f64,
}

/// Starts the daemon on `database_url` with `plan.devices` online, runs the clients and the
/// contacts, and reports.
async fn measure(database_url: String, plan: Plan, redis: Option<String>) -> anyhow::Result<Value> {
    let media_dir = MediaDir::create()?;
    let media_path = media_dir.0.display().to_string();
    let time_scale = plan.time_scale.to_string();
    let mut extra = vec![
        ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "5"),
        ("WAFLEET__SIM__QR_ROTATE_MS", "0"),
        ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
        ("WAFLEET__SIM__TIME_SCALE", time_scale.as_str()),
        ("WAFLEET__CHAT__MEDIA_DIR", media_path.as_str()),
    ];
    if let Some(url) = &redis {
        extra.push(("WAFLEET__REDIS__URL", url));
    }
    let settings = super::settings(&database_url, &extra)?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    super::boot::seed(&db, tenant_id, plan.devices).await?;
    let token = fanout::create_token(&db, &admin, tenant_id, Scope::Read).await?;
    let (devices, _) = store::list_devices(
        &db,
        tenant_id,
        &DeviceFilter::default(),
        i64::from(plan.devices),
        0,
    )
    .await?;
    drop(db);
    let device_ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
    let batch = (settings.chat.batch_window_ms, settings.chat.batch_max);

    let app = RunningApp::start(settings).await?;
    super::boot::wait_all_online(&app, plan.devices).await?;
    let sim = app
        .state
        .fleet
        .sim
        .clone()
        .context("the simulator connector is needed")?;
    let listen = Listen {
        topics: device_ids
            .iter()
            .map(|id| format!("messages/{id}"))
            .collect(),
        event: "NEW_MESSAGE",
        stamp: StampField::MessageText,
    };
    let generator = Generator {
        sim,
        device_ids,
        plan,
        samples: Samples::generate(),
    };
    let memory_before = Memory::probe()?;
    let cpu_before = report::cpu_seconds();
    let sent = RefCell::new(Sent::default());
    let outcome = fanout::drive(
        app.port,
        token,
        plan.subscribers,
        listen,
        u64::from(plan.messages),
        |epoch| {
            let (generator, sent) = (&generator, &sent);
            async move { *sent.borrow_mut() = generator.run(epoch).await }
        },
    )
    .await;
    let mut sent = sent.into_inner();
    let cpu = report::cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    let memory_after = Memory::probe()?;
    let backend = app.state.db.backend_name();
    app.stop().await?;
    let (reports, publish_seconds, started) = outcome?;
    let mut figures = json!({
        "params": {
            "devices": plan.devices,
            "subscribers": plan.subscribers,
            "messages": plan.messages,
            "rate_per_s": plan.rate,
            "db": backend,
            "chat_batch_window_ms": batch.0,
            "chat_batch_max": batch.1,
            "redis": redis.is_some(),
            "mix": plan.mix.name(),
            "time_scale": plan.time_scale,
        },
        "memory": {
            "rss_before_mib": round(memory_before.rss_kib as f64 / 1024.0, 1),
            "rss_after_mib": round(memory_after.rss_kib as f64 / 1024.0, 1),
            "peak_growth_mib": round(
                memory_after.peak_kib.saturating_sub(memory_before.rss_kib) as f64 / 1024.0,
                1,
            ),
        },
        "emit_errors": sent.errors,
        "achieved_rate_per_s": round(f64::from(plan.messages) / publish_seconds, 1),
        "cpu_seconds": cpu,
    });
    let expected = u64::from(plan.subscribers) * u64::from(plan.messages);
    report::merge(
        &mut figures,
        fanout::summarize(&reports, expected, publish_seconds, started),
    );
    add_mix_figures(&mut figures, plan.mix, &mut sent, publish_seconds);
    Ok(figures)
}

/// Adds to the clients' figures what the lanes saw (texts' waits; the media sent and their
/// rate) and the target of the mix: p99 of text messages (`latency_ms`, the only ones of the
/// text mix) within [`TARGET_P99_MS`], or [`TARGET_TEXT_P99_WITH_MEDIA_MS`] beside media.
fn add_mix_figures(figures: &mut Value, mix: Mix, sent: &mut Sent, publish_seconds: f64) {
    figures["text_queued_ms"] = json!(LatencyMs::from_micros(&mut sent.text_waits_us));
    if mix == Mix::Media {
        let mut media = figures["media"].take();
        if !media.is_object() {
            media = json!({});
        }
        report::merge(&mut media, sent.media_figures(publish_seconds));
        figures["media"] = media;
    }
    if let Some(p99) = figures["latency_ms"]["p99"].as_f64() {
        figures["targets"] = match mix {
            Mix::Text => json!({"latency_p99_ms": Target::at_most(p99, TARGET_P99_MS)}),
            Mix::Media => json!({
                "text_latency_p99_ms": Target::at_most(p99, TARGET_TEXT_P99_WITH_MEDIA_MS)
            }),
        };
    }
}

/// The contacts: emits the plan's messages at its rate, each through its device's lane.
struct Generator {
    /// The simulated network.
    sim: SimNetwork,
    /// The devices, taking messages in turn.
    device_ids: Vec<i64>,
    /// What to send.
    plan: Plan,
    /// The files' bytes.
    samples: Samples,
}

impl Generator {
    /// Hands message n to device n mod N at n / rate seconds, and waits until every lane has
    /// emitted its messages; `epoch` is the clients' time origin.
    async fn run(&self, epoch: std::time::Instant) -> Sent {
        let (lanes, emitted): (Vec<_>, Vec<_>) = self
            .device_ids
            .iter()
            .map(|&device_id| {
                let (tx, rx) = mpsc::unbounded_channel();
                let lane = Lane {
                    sim: self.sim.clone(),
                    device_id,
                    samples: self.samples.clone(),
                    epoch,
                    time_scale: self.plan.time_scale,
                };
                (tx, actix_web::rt::spawn(lane.run(rx)))
            })
            .unzip();
        if lanes.is_empty() {
            return Sent::default();
        }
        let started = Instant::now();
        for n in 0..self.plan.messages {
            let due = started + Duration::from_secs_f64(f64::from(n) / self.plan.rate);
            actix_web::rt::time::sleep_until(due).await;
            let content = mix::content(self.plan.mix, n);
            // A lane ends only when its sender is dropped, below.
            let _ = lanes[n as usize % lanes.len()].send(Emission { n, due, content });
        }
        drop(lanes);
        let mut sent = Sent::default();
        for lane in emitted {
            sent.add(lane.await.unwrap_or_default());
        }
        sent
    }
}

/// A message handed to a device's lane.
#[derive(Debug)]
struct Emission {
    /// Its number in the run.
    n: u32,
    /// When the contact sent it.
    due: Instant,
    /// What it carries.
    content: Content,
}

/// One device's session as the real connector runs it: messages in order, each file downloaded
/// before its message is passed on.
struct Lane {
    /// The simulated network.
    sim: SimNetwork,
    /// The device.
    device_id: i64,
    /// The files' bytes.
    samples: Samples,
    /// The clients' time origin.
    epoch: std::time::Instant,
    /// Speed of the simulated clock.
    time_scale: f64,
}

impl Lane {
    /// Emits the lane's messages until the generator is done; reports what it sent.
    async fn run(self, mut emissions: mpsc::UnboundedReceiver<Emission>) -> Sent {
        let mut sent = Sent::default();
        while let Some(Emission { n, due, content }) = emissions.recv().await {
            let delivered = match content {
                Content::Text => {
                    sent.text_waits_us.push(micros(due.elapsed()));
                    self.send_text(n).await
                }
                Content::Media(kind, size) => {
                    sent.media += 1;
                    sent.media_bytes += size as u64;
                    self.send_file(n, kind, size).await
                }
            };
            sent.errors += u64::from(delivered.is_err());
        }
        sent
    }

    /// Emits message n, a text.
    async fn send_text(&self, n: u32) -> Result<(), SimError> {
        let stamp = self.stamp();
        self.sim
            .deliver_inbound(self.device_id, &contact(n), &stamp)
            .await
            .map(drop)
    }

    /// Downloads message n's file of `kind` and `size`, then emits the message.
    async fn send_file(&self, n: u32, kind: MediaKind, size: usize) -> Result<(), SimError> {
        let file = self.samples.file(kind.kind, size, n);
        actix_web::rt::time::sleep(mix::download_time(size, self.time_scale)).await;
        let message = file_message(n, kind, file, self.stamp());
        self.sim.deliver_sample(self.device_id, message).await
    }

    /// The emission time, as message texts carry it.
    fn stamp(&self) -> String {
        self.epoch.elapsed().as_micros().to_string()
    }
}

/// Message n from its contact: a file of `kind` captioned with `stamp`.
fn file_message(n: u32, kind: MediaKind, file: Vec<u8>, stamp: String) -> WaMessage {
    let jid = jid_of(&contact(n));
    WaMessage {
        id: format!("3EB0{:016X}", rand::random::<u64>()),
        chat: jid.clone(),
        sender: jid,
        push_name: Some(format!("Contact {}", n % 10_000)),
        kind: kind.kind,
        text: Some(stamp),
        media: Some(Media::bytes(kind.mime, file)),
        file_name: kind.file_name.map(str::to_string),
        timestamp: Utc::now(),
        ..WaMessage::default()
    }
}

/// The phone of the contact that writes message n (10,000 contacts in turn).
fn contact(n: u32) -> String {
    format!("6017{:07}", n % 10_000)
}

/// Microseconds of `elapsed`, saturated.
fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

/// What the lanes emitted.
#[derive(Debug, Default)]
struct Sent {
    /// Messages the simulator refused (device offline).
    errors: u64,
    /// How long each text took from its scheduled send to its emission, µs: the timer's
    /// lateness and any wait behind its device's download.
    text_waits_us: Vec<u32>,
    /// Messages with a file.
    media: u64,
    /// Their files' bytes.
    media_bytes: u64,
}

impl Sent {
    /// Adds a lane's figures.
    fn add(&mut self, lane: Sent) {
        self.errors += lane.errors;
        self.text_waits_us.extend(lane.text_waits_us);
        self.media += lane.media;
        self.media_bytes += lane.media_bytes;
    }

    /// The media the contacts sent, and at what rate over `publish_seconds`.
    fn media_figures(&self, publish_seconds: f64) -> Value {
        let mib = self.media_bytes as f64 / (1024.0 * 1024.0);
        json!({
            "messages_sent": self.media,
            "sent_mib": round(mib, 1),
            "offered_mib_per_s": round(mib / publish_seconds.max(f64::EPSILON), 1),
            "share": round(1.0 / mix::MEDIA_ONE_IN as f64, 2),
            "download_mb_per_s": mix::DOWNLOAD_BYTES_PER_S / 1e6,
        })
    }
}

/// The run's media folder (the daemon's `chat.media_dir`) in the temporary directory, removed
/// with everything in it when dropped.
struct MediaDir(PathBuf);

impl MediaDir {
    /// Creates a fresh, empty folder.
    fn create() -> anyhow::Result<MediaDir> {
        let path = std::env::temp_dir().join(format!(
            "wafleet-bench-media-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(MediaDir(path))
    }
}

impl Drop for MediaDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(error = %err, dir = %self.0.display(), "cannot remove the benchmark's media");
        }
    }
}
