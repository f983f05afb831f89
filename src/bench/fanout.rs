//! `wafleet bench fanout`: S real WebSocket clients subscribed to one topic, M events published
//! into the hub, and how many frames arrive, how fast, and how late.
//!
//! # Flow
//! The daemon starts on an empty database with an API token for its admin. S `awc` clients,
//! spread over [`CLIENT_THREADS`] arbiters of their own, connect to `/api/v1/ws` with the token,
//! send `{"op":"subscribe","topics":["device-status"]}` and wait for `SUBSCRIBED`. Then the
//! bench publishes M `HubEvent`s on the admin tenant's `device-status` topic straight into the
//! hub (`hub.do_send`, as the fleet's event forwarder does), each carrying its publish time in
//! `data.t_us` (microseconds since a shared `Instant`). Every client reads continuously, answers
//! pings, and records each event's publish-to-receive latency. A client is done when it has all
//! M events, when the server closes it (1013 when it fell too far behind), or when publishing
//! has ended and nothing came for [`IDLE`].
//!
//! Without `--rate` the events are published as fast as the hub takes them (the publisher
//! yields every [`BATCH`] events so the hub, on the same thread, routes while it publishes);
//! with `--rate R` they are spread evenly at R per second.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Arbiter;
use anyhow::Context;
use awc::error::WsProtocolError;
use awc::ws;
use chrono::Utc;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::report::{self, round, LatencyMs};
use super::RunningApp;
use crate::auth::model::{NewApiToken, Scope, User};
use crate::auth::{secret, store};
use crate::cli::BenchArgs;
use crate::db::Db;
use crate::hub::{HubEvent, Topic};

/// Threads (arbiters) the WebSocket clients run on, apart from the daemon's.
const CLIENT_THREADS: usize = 2;
/// Events published between two yields of an unpaced publisher.
const BATCH: u32 = 100;
/// A client hearing nothing this long after publishing ended stops waiting.
const IDLE: Duration = Duration::from_secs(3);
/// How often a waiting client checks whether it is done.
const TICK: Duration = Duration::from_millis(250);
/// Connecting and subscribing all clients must not take longer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The event name of benchmark frames.
const EVENT: &str = "BENCH_TICK";

/// What the clients subscribe to and which frames they time.
#[derive(Debug, Clone)]
pub(super) struct Listen {
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// The event whose frames are timed.
    pub event: &'static str,
    /// Where the frame carries its emission time (µs since the shared epoch).
    pub stamp: StampField,
}

/// Where a timed frame carries its emission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StampField {
    /// `data.t_us`, a number (events the bench publishes into the hub).
    TimeField,
    /// `data.text`, the digits of a message's text or caption (messages the simulator sends);
    /// a message with a file (`data.media`) is timed apart from text.
    MessageText,
}

impl Listen {
    /// The subscribe operation.
    fn subscribe(&self) -> String {
        json!({"op": "subscribe", "topics": self.topics}).to_string()
    }
}

/// Runs the scenario with `--subscribers`, `--events`, `--rate` (and `--db`).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let plan = Plan {
        subscribers: args.subscribers,
        events: args.events,
        rate: args.rate.filter(|rate| *rate > 0.0),
    };
    super::with_database(args, |url| measure(url, plan)).await
}

/// What to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// WebSocket clients.
    subscribers: u32,
    /// Events published.
    events: u32,
    /// Events per second, or as fast as possible.
    rate: Option<f64>,
}

/// What one client saw.
#[derive(Debug, Default)]
pub(super) struct ClientReport {
    /// Benchmark events received.
    received: u64,
    /// Their bytes.
    bytes: u64,
    /// Publish-to-receive latency of each event without media, in microseconds.
    latencies_us: Vec<u32>,
    /// The same of messages with media, apart.
    media: MediaReport,
    /// When the last one arrived.
    last_at: Option<Instant>,
    /// Close code sent by the server, if it closed the connection.
    close_code: Option<u16>,
    /// Why the client failed, if it did.
    error: Option<String>,
}

/// What one client saw of messages with media.
#[derive(Debug, Default)]
pub(super) struct MediaReport {
    /// Emission-to-receive latency of each, in microseconds.
    latencies_us: Vec<u32>,
    /// Bytes of their files that the chat mirror stored.
    stored_bytes: u64,
    /// Those announced without a stored file.
    not_stored: u64,
    /// When the last one arrived.
    last_at: Option<Instant>,
}

impl MediaReport {
    /// Records a message with media received at `now`, `latency_us` after its emission.
    fn record(&mut self, file: FileSeen, latency_us: u32, now: Instant) {
        self.latencies_us.push(latency_us);
        if file.stored {
            self.stored_bytes += file.size;
        } else {
            self.not_stored += 1;
        }
        self.last_at = Some(now);
    }
}

/// Starts the daemon, runs the clients and the publisher, and reports.
async fn measure(database_url: String, plan: Plan) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let token = create_token(&db, &admin, tenant_id, Scope::Read).await?;
    drop(db);
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let max_pending_kib = settings.ws.max_pending_kib;
    let app = RunningApp::start(settings).await?;
    let listen = Listen {
        topics: vec!["device-status".into()],
        event: EVENT,
        stamp: StampField::TimeField,
    };
    let outcome = drive(
        app.port,
        token,
        plan.subscribers,
        listen,
        u64::from(plan.events),
        |epoch| publish(&app, plan, tenant_id, epoch),
    )
    .await;
    let cut_off = app.state.hub_metrics.slow_closed.get();
    let backend = app.state.db.backend_name();
    app.stop().await?;
    let (reports, publish_seconds, publish_started) = outcome?;
    let mut figures = json!({
        "params": {
            "subscribers": plan.subscribers,
            "events": plan.events,
            "rate_per_s": plan.rate,
            "db": backend,
            "http_workers": workers,
            "client_threads": CLIENT_THREADS,
            "max_pending_kib": max_pending_kib,
        },
        "subscribers_cut_off": cut_off,
    });
    report::merge(
        &mut figures,
        summarize(
            &reports,
            u64::from(plan.subscribers) * u64::from(plan.events),
            publish_seconds,
            publish_started,
        ),
    );
    Ok(figures)
}

/// An API token of the admin with `scope`, for the benchmark's clients.
pub(super) async fn create_token(
    db: &Db,
    admin: &User,
    tenant_id: i64,
    scope: Scope,
) -> anyhow::Result<String> {
    let token = secret::new_api_token();
    store::insert_token(
        db,
        NewApiToken {
            tenant_id,
            user_id: admin.id,
            name: "bench",
            token_hash: &secret::digest(&token),
            prefix: token.get(..8).unwrap_or(&token),
            scopes: scope.as_str(),
            created_at: Utc::now().naive_utc(),
        },
    )
    .await?;
    Ok(token)
}

/// Client arbiters, stopped when dropped (also when the run fails half-way).
struct ClientThreads(Vec<Arbiter>);

impl Drop for ClientThreads {
    fn drop(&mut self) {
        for arbiter in &self.0 {
            arbiter.stop();
        }
    }
}

/// Connects `subscribers` clients listening as `listen`, runs `publish` (given the shared
/// epoch of the stamps), and collects the clients' reports with the publishing time and its
/// start. Each client expects `expected` timed frames.
pub(super) async fn drive<F, Fut>(
    port: u16,
    token: String,
    subscribers: u32,
    listen: Listen,
    expected: u64,
    publish: F,
) -> anyhow::Result<(Vec<ClientReport>, f64, Instant)>
where
    F: FnOnce(Instant) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let url = format!("ws://127.0.0.1:{port}/api/v1/ws");
    let epoch = Instant::now();
    let published = Arc::new(AtomicBool::new(false));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let threads = ClientThreads((0..CLIENT_THREADS).map(|_| Arbiter::new()).collect());
    for (n, arbiter) in (0..subscribers).zip(threads.0.iter().cycle()) {
        let client = Client {
            name: n,
            url: url.clone(),
            token: token.clone(),
            listen: listen.clone(),
            expected,
            epoch,
            published: published.clone(),
            ready: ready_tx.clone(),
            done: done_tx.clone(),
        };
        arbiter.spawn_fn(move || {
            actix_web::rt::spawn(client.run());
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..subscribers {
        let ready = actix_web::rt::time::timeout(CONNECT_TIMEOUT, ready_rx.recv()).await;
        match ready {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(err))) => anyhow::bail!("a WebSocket client could not subscribe: {err}"),
            Ok(None) => anyhow::bail!("the WebSocket clients stopped before subscribing"),
            Err(_) => anyhow::bail!(
                "the WebSocket clients did not subscribe within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        }
    }

    let started = Instant::now();
    publish(epoch).await;
    let publish_seconds = started.elapsed().as_secs_f64();
    published.store(true, Ordering::Release);

    let mut reports = Vec::with_capacity(subscribers as usize);
    while let Some(report) = done_rx.recv().await {
        reports.push(report);
    }
    drop(threads);
    Ok((reports, publish_seconds, started))
}

/// Publishes the plan's events into the hub, stamped with their publish time.
async fn publish(app: &RunningApp, plan: Plan, tenant_id: i64, epoch: Instant) {
    let started = actix_web::rt::time::Instant::now();
    for n in 0..plan.events {
        match plan.rate {
            Some(rate) => {
                let due = started + Duration::from_secs_f64(f64::from(n) / rate);
                actix_web::rt::time::sleep_until(due).await;
            }
            None if n % BATCH == 0 => tokio::task::yield_now().await,
            None => {}
        }
        app.state.hub.do_send(HubEvent {
            tenant_id,
            topic: Topic::DeviceStatus,
            device_id: None,
            event: EVENT.into(),
            data: json!({ "n": n, "t_us": micros_since(epoch) }),
            ts: Utc::now(),
        });
    }
}

/// Microseconds from `epoch` to now.
pub(super) fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The fields of a frame a client looks at, borrowed from the frame; every other field is
/// skipped unread, so a client spends little of the 2 cores the daemon measured runs on.
#[derive(Debug, Deserialize)]
struct Incoming<'a> {
    /// Event name (`SUBSCRIBED`, `BENCH_TICK`, …).
    #[serde(borrow)]
    event: Cow<'a, str>,
    /// Timed events carry their emission time somewhere in here.
    #[serde(default, borrow)]
    data: Data<'a>,
}

/// The fields of a frame's `data` that time it.
#[derive(Debug, Default, Deserialize)]
struct Data<'a> {
    /// Emission time of a `BENCH_TICK`, microseconds.
    t_us: Option<u64>,
    /// A message's text: its emission time for the inbound scenario.
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    /// A message's file, if any.
    #[serde(borrow)]
    media: Option<Media<'a>>,
}

/// The fields of a message's `data.media` the media mix reads.
#[derive(Debug, Deserialize)]
struct Media<'a> {
    /// Size, bytes.
    size: Option<u64>,
    /// `stored` once the mirror stored it.
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
}

/// What a text frame is to a client.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// The subscription is in place.
    Subscribed,
    /// A benchmark event published at this time (µs since the epoch), with the file a message
    /// carried.
    Event(u64, Option<FileSeen>),
    /// Anything else.
    Other,
}

/// The file of a timed message, as its frame announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileSeen {
    /// Its size, bytes.
    size: u64,
    /// True when the mirror stored it (`state: stored`).
    stored: bool,
}

impl FileSeen {
    /// The file a message frame's `data.media` announces, if any.
    fn of(media: Option<&Media<'_>>) -> Option<FileSeen> {
        media.map(|media| FileSeen {
            size: media.size.unwrap_or(0),
            stored: media.state.as_deref() == Some("stored"),
        })
    }
}

/// Classifies a text frame for a client listening as `listen` says.
fn hear(text: &[u8], listen: &Listen) -> Heard {
    let Ok(frame) = serde_json::from_slice::<Incoming>(text) else {
        return Heard::Other;
    };
    if frame.event == "SUBSCRIBED" {
        return Heard::Subscribed;
    }
    if frame.event != listen.event {
        return Heard::Other;
    }
    let stamp = match listen.stamp {
        StampField::TimeField => frame.data.t_us,
        StampField::MessageText => frame.data.text.and_then(|t| t.parse().ok()),
    };
    let file = match listen.stamp {
        StampField::TimeField => None,
        StampField::MessageText => FileSeen::of(frame.data.media.as_ref()),
    };
    stamp.map_or(Heard::Other, |sent_us| Heard::Event(sent_us, file))
}

/// A client's WebSocket: frames in, messages out (awc's `Framed` socket).
trait Connection:
    Stream<Item = Result<ws::Frame, WsProtocolError>>
    + Sink<ws::Message, Error = WsProtocolError>
    + Unpin
{
}

impl<T> Connection for T where
    T: Stream<Item = Result<ws::Frame, WsProtocolError>>
        + Sink<ws::Message, Error = WsProtocolError>
        + Unpin
{
}

/// One WebSocket subscriber.
struct Client {
    /// Its number, for error messages.
    name: u32,
    /// `ws://127.0.0.1:<port>/api/v1/ws`.
    url: String,
    /// API token.
    token: String,
    /// What it subscribes to and times.
    listen: Listen,
    /// Events it should receive.
    expected: u64,
    /// Shared time origin of the publish stamps.
    epoch: Instant,
    /// Set once every event is published.
    published: Arc<AtomicBool>,
    /// Told once subscribed (or why not).
    ready: mpsc::UnboundedSender<Result<(), String>>,
    /// Gets the report at the end.
    done: mpsc::UnboundedSender<ClientReport>,
}

impl Client {
    /// Connects, subscribes, reads until done, and sends its report.
    async fn run(self) {
        let mut report = ClientReport::default();
        match self.connect().await {
            Ok(mut conn) => {
                let _ = self.ready.send(Ok(()));
                if let Err(err) = self.read(&mut conn, &mut report).await {
                    report.error = Some(err);
                }
                let _ = conn.send(ws::Message::Close(None)).await;
            }
            Err(err) => {
                let _ = self.ready.send(Err(format!("client {}: {err}", self.name)));
                report.error = Some(err);
            }
        }
        let _ = self.done.send(report);
    }

    /// Opens the WebSocket and waits for `SUBSCRIBED`.
    async fn connect(&self) -> Result<impl Connection, String> {
        let client = awc::Client::builder().timeout(CONNECT_TIMEOUT).finish();
        let (_, mut conn) = client
            .ws(self.url.as_str())
            .bearer_auth(&self.token)
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        conn.send(ws::Message::Text(self.listen.subscribe().into()))
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        while let Some(frame) = conn.next().await {
            match frame.map_err(|e| e.to_string())? {
                ws::Frame::Text(text) if hear(&text, &self.listen) == Heard::Subscribed => {
                    return Ok(conn)
                }
                ws::Frame::Close(reason) => return Err(format!("closed: {reason:?}")),
                _ => {}
            }
        }
        Err("the connection ended before SUBSCRIBED".into())
    }

    /// Reads frames until all events arrived, the server closed, or publishing ended and the
    /// stream went quiet.
    async fn read(
        &self,
        conn: &mut impl Connection,
        report: &mut ClientReport,
    ) -> Result<(), String> {
        report.latencies_us.reserve(self.expected as usize);
        let mut last_heard = Instant::now();
        while report.received < self.expected {
            match actix_web::rt::time::timeout(TICK, conn.next()).await {
                Ok(Some(frame)) => match frame.map_err(|e| e.to_string())? {
                    ws::Frame::Text(text) => {
                        if let Heard::Event(sent_us, file) = hear(&text, &self.listen) {
                            let now = Instant::now();
                            let latency = micros_since(self.epoch).saturating_sub(sent_us);
                            let latency = u32::try_from(latency).unwrap_or(u32::MAX);
                            match file {
                                Some(file) => report.media.record(file, latency, now),
                                None => report.latencies_us.push(latency),
                            }
                            report.received += 1;
                            report.bytes += text.len() as u64;
                            report.last_at = Some(now);
                            last_heard = now;
                        }
                    }
                    ws::Frame::Ping(payload) => conn
                        .send(ws::Message::Pong(payload))
                        .await
                        .map_err(|e| e.to_string())?,
                    ws::Frame::Close(reason) => {
                        report.close_code = reason.map(|r| u16::from(r.code));
                        return Ok(());
                    }
                    _ => {}
                },
                Ok(None) => return Ok(()),
                Err(_) => {}
            }
            if self.published.load(Ordering::Acquire) && last_heard.elapsed() > IDLE {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The figures of a run from the clients' reports.
pub(super) fn summarize(
    reports: &[ClientReport],
    expected: u64,
    publish_seconds: f64,
    publish_started: Instant,
) -> Value {
    let received: u64 = reports.iter().map(|r| r.received).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let last = reports.iter().filter_map(|r| r.last_at).max();
    let elapsed = last.map_or(0.0, |at| {
        at.saturating_duration_since(publish_started).as_secs_f64()
    });
    let per_second = |count: f64| (elapsed > 0.0).then(|| round(count / elapsed, 1));
    let mut latencies: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    let errors: Vec<&str> = reports.iter().filter_map(|r| r.error.as_deref()).collect();
    let mut close_codes: Vec<u16> = reports.iter().filter_map(|r| r.close_code).collect();
    close_codes.sort_unstable();
    close_codes.dedup();
    let mut figures = json!({
        "frames_expected": expected,
        "frames_received": received,
        "drops": expected.saturating_sub(received),
        "per_subscriber": {
            "min": reports.iter().map(|r| r.received).min(),
            "max": reports.iter().map(|r| r.received).max(),
        },
        "publish_seconds": round(publish_seconds, 3),
        "elapsed_s": round(elapsed, 3),
        "frames_per_s": per_second(received as f64),
        "mib_per_s": per_second(bytes as f64 / (1024.0 * 1024.0)),
        "latency_ms": LatencyMs::from_micros(&mut latencies),
        "close_codes": close_codes,
        "client_errors": errors.len(),
        "first_client_error": errors.first(),
    });
    if reports.iter().any(|r| !r.media.latencies_us.is_empty()) {
        figures["media"] = summarize_media(reports, publish_started);
    }
    figures
}

/// The figures of messages with media: their latency, and the bytes the chat mirror stored
/// per second (as one subscriber sees them: every subscriber gets the same messages) from the
/// start of publishing to the last of them.
fn summarize_media(reports: &[ClientReport], publish_started: Instant) -> Value {
    let mut latencies: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.media.latencies_us.iter().copied())
        .collect();
    let stored_bytes = reports.iter().map(|r| r.media.stored_bytes).max();
    let last = reports.iter().filter_map(|r| r.media.last_at).max();
    let elapsed = last.map_or(0.0, |at| {
        at.saturating_duration_since(publish_started).as_secs_f64()
    });
    let mib = stored_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
    json!({
        "frames_received": latencies.len(),
        "latency_ms": LatencyMs::from_micros(&mut latencies),
        "stored_mib": round(mib, 1),
        "stored_mib_per_s": (elapsed > 0.0).then(|| round(mib / elapsed, 1)),
        "not_stored": reports.iter().map(|r| r.media.not_stored).sum::<u64>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified() {
        let ticks = Listen {
            topics: vec!["device-status".into()],
            event: EVENT,
            stamp: StampField::TimeField,
        };
        assert_eq!(
            hear(
                br#"{"event":"SUBSCRIBED","topics":["device-status"]}"#,
                &ticks
            ),
            Heard::Subscribed
        );
        let event = br#"{"topic":"device-status","event":"BENCH_TICK","data":{"n":3,"t_us":1234},"ts":"2026-11-25T10:00:00Z","seq":4}"#;
        assert_eq!(hear(event, &ticks), Heard::Event(1234, None));
        let status = br#"{"topic":"device-status","event":"DEVICE_STATUS","data":{"device_id":1},"ts":"2026-11-25T10:00:00Z","seq":5}"#;
        assert_eq!(hear(status, &ticks), Heard::Other);
        assert_eq!(hear(b"not json", &ticks), Heard::Other);
        let messages = Listen {
            topics: vec!["messages/1".into()],
            event: "NEW_MESSAGE",
            stamp: StampField::MessageText,
        };
        let message =
            br#"{"topic":"messages/1","event":"NEW_MESSAGE","data":{"text":"98765","media":null}}"#;
        assert_eq!(hear(message, &messages), Heard::Event(98765, None));
        assert_eq!(hear(event, &messages), Heard::Other);
        let picture = br#"{"event":"NEW_MESSAGE","data":{"kind":"image","text":"5","media":{"state":"stored","mime":"image/png","size":1048576}}}"#;
        let stored = FileSeen {
            size: 1_048_576,
            stored: true,
        };
        assert_eq!(hear(picture, &messages), Heard::Event(5, Some(stored)));
        let remote = br#"{"event":"NEW_MESSAGE","data":{"kind":"voice","text":"6","media":{"state":"remote","size":0}}}"#;
        let not_stored = FileSeen {
            size: 0,
            stored: false,
        };
        assert_eq!(hear(remote, &messages), Heard::Event(6, Some(not_stored)));
    }

    #[test]
    fn summary_counts_drops_and_spread() {
        let start = Instant::now();
        let full = ClientReport {
            received: 4,
            bytes: 400,
            latencies_us: vec![1000, 2000, 3000, 4000],
            last_at: Some(start + Duration::from_secs(2)),
            ..Default::default()
        };
        let cut = ClientReport {
            received: 1,
            bytes: 100,
            latencies_us: vec![9000],
            last_at: Some(start + Duration::from_secs(1)),
            close_code: Some(1013),
            ..Default::default()
        };
        let figures = summarize(&[full, cut], 8, 0.5, start);
        assert_eq!(figures["frames_expected"], 8);
        assert_eq!(figures["frames_received"], 5);
        assert_eq!(figures["drops"], 3);
        assert_eq!(figures["per_subscriber"], json!({"min": 1, "max": 4}));
        assert_eq!(figures["frames_per_s"], 2.5);
        assert_eq!(figures["latency_ms"]["p50"], 3.0);
        assert_eq!(figures["latency_ms"]["max"], 9.0);
        assert_eq!(figures["close_codes"], json!([1013]));
        assert_eq!(figures["client_errors"], 0);
        assert_eq!(figures.get("media"), None);
    }

    #[test]
    fn media_is_timed_apart_from_text() {
        let start = Instant::now();
        let mut client = ClientReport {
            received: 4,
            latencies_us: vec![1000, 2000],
            last_at: Some(start + Duration::from_secs(4)),
            ..Default::default()
        };
        let file = FileSeen {
            size: 3 * 1024 * 1024,
            stored: true,
        };
        client
            .media
            .record(file, 30_000, start + Duration::from_secs(2));
        client.media.record(
            FileSeen {
                size: 0,
                stored: false,
            },
            50_000,
            start + Duration::from_secs(3),
        );
        let figures = summarize(&[client], 4, 1.0, start);
        assert_eq!(figures["latency_ms"]["max"], 2.0);
        let media = &figures["media"];
        assert_eq!(media["frames_received"], 2);
        assert_eq!(media["latency_ms"]["p50"], 30.0);
        assert_eq!(media["latency_ms"]["max"], 50.0);
        assert_eq!(media["stored_mib"], 3.0);
        assert_eq!(media["stored_mib_per_s"], 1.0);
        assert_eq!(media["not_stored"], 1);
    }
}
