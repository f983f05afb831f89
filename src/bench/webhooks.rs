//! `wafleet bench webhooks`: E endpoints on a local receiver, events at R per second for D
//! seconds, then a receiver outage of O seconds while events keep coming, and how fast, how late
//! and how completely they are delivered.
//!
//! # Flow
//! The daemon starts on a fresh database with E active endpoints of the admin's tenant, each
//! subscribed to every event, pointing at `/e/<n>` of a receiver (an actix-web server on its own
//! threads in this process) and allowed `--rate` deliveries per second with
//! [`CONCURRENCY`] in flight. The bench publishes `LEAD_CREATED` events straight into the hub
//! (as the leads routes do), each stamped with its publish time (`data.t_us`). Every delivery
//! goes the whole way: hub tap → dispatcher buffer → `webhook_queue` rows → claim → signed POST
//! → outcome written.
//! 1. **Steady**: R events/s for D seconds while the receiver answers 200 at once; then the bench
//!    waits until every event reached every endpoint. Reports deliveries/s over the phase and
//!    the event → delivery latency (publish to the receiver's first sight of it, per endpoint).
//! 2. **Outage**: the receiver answers 503 for O seconds while R events/s keep coming (retried
//!    with the default backoff: 5 s doubling, with jitter), then answers 200 again. Reports how
//!    long after the recovery the backlog took to drain.
//!
//! `undelivered` counts (event, endpoint) pairs not received when the bench stopped waiting
//! ([`DRAIN_LIMIT`] after a phase's last event; they are still queued, not lost — a run within
//! capacity must show 0); `duplicates` the ones received more than once (a retry after a
//! timeout the receiver did answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::fanout::micros_since;
use super::report::{round, LatencyMs};
use super::RunningApp;
use crate::cli::BenchArgs;
use crate::hub::{HubEvent, Topic};
use crate::webhooks::model::EndpointFields;
use crate::webhooks::store;

/// Deliveries in flight per endpoint.
const CONCURRENCY: i64 = 16;
/// Longest wait for a phase's deliveries to arrive after its last event.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// How often the bench looks whether everything arrived.
const POLL: Duration = Duration::from_millis(50);

/// What to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    endpoints: u32,
    rate: f64,
    seconds: u32,
    outage: u32,
}

/// Runs the scenario with `--endpoints`, `--rate`, `--seconds`, `--outage` (and `--db`).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let plan = Plan {
        endpoints: args.endpoints.max(1),
        rate: args.rate.filter(|r| *r > 0.0).unwrap_or(1000.0),
        seconds: args.seconds.max(1),
        outage: args.outage,
    };
    super::with_database(args, |url| measure(url, plan)).await
}

/// What the receiver saw, per (endpoint, event number): first arrival (µs since the epoch) and
/// how many times it came.
#[derive(Default)]
struct Seen {
    arrivals: HashMap<(u32, u64), (u64, u32)>,
    /// Publish → first arrival, µs, of the events of the phase being timed.
    latencies_us: Vec<u32>,
    /// Answer 503 while set.
    outage: bool,
    /// Events from this number on are timed.
    timed_from: u64,
}

/// The part of a delivery the receiver reads.
#[derive(Deserialize)]
struct Body {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    n: u64,
    t_us: u64,
}

async fn measure(url: String, plan: Plan) -> anyhow::Result<Value> {
    // No devices: the scenario measures the webhook path alone.
    let settings = super::settings(
        &url,
        &[("WAFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")],
    )?;
    let webhook_settings = settings.webhooks.clone();
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin has no tenant")?;
    let epoch = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let receiver = start_receiver(seen.clone(), epoch)?;
    let now = Utc::now().naive_utc();
    for n in 0..plan.endpoints {
        let fields = EndpointFields {
            url: format!("http://127.0.0.1:{}/e/{n}", receiver.port),
            description: format!("bench {n}"),
            events: String::new(),
            device_ids: String::new(),
            active: true,
            max_concurrency: CONCURRENCY,
            rate_per_second: plan.rate.ceil() as i64,
        };
        store::insert_endpoint(
            &db,
            tenant_id,
            &fields,
            &crate::auth::secret::new_password(),
            now,
        )
        .await?;
    }
    drop(db);
    let app = RunningApp::start(settings).await?;
    // The dispatcher reads endpoints at start; give its first scan a moment.
    wait_for(Duration::from_secs(10), || {
        gauge(&app, "wafleet_webhook_endpoints") >= f64::from(plan.endpoints)
    })
    .await;

    // Phase 1: steady.
    let steady_events = (plan.rate * f64::from(plan.seconds)) as u64;
    let started = Instant::now();
    publish(&app, tenant_id, 0, steady_events, plan.rate, epoch).await;
    let published_in = started.elapsed().as_secs_f64();
    let expected = |events: u64| events * u64::from(plan.endpoints);
    let drained = wait_for(DRAIN_LIMIT, || {
        received(&seen, 0, steady_events) >= expected(steady_events)
    })
    .await;
    let steady_seconds = started.elapsed().as_secs_f64();
    let steady_delivered = received(&seen, 0, steady_events);
    let latency = {
        let mut seen = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
        LatencyMs::from_micros(&mut seen.latencies_us)
    };

    // Phase 2: outage, then recovery.
    let outage_events = (plan.rate * f64::from(plan.outage)) as u64;
    let mut outage = json!(null);
    if outage_events > 0 {
        set(&seen, |s| {
            s.outage = true;
            s.latencies_us.clear();
            s.timed_from = steady_events;
        });
        publish(
            &app,
            tenant_id,
            steady_events,
            outage_events,
            plan.rate,
            epoch,
        )
        .await;
        set(&seen, |s| s.outage = false);
        let recovered = Instant::now();
        let all = steady_events + outage_events;
        let caught_up = wait_for(DRAIN_LIMIT, || {
            received(&seen, steady_events, all) >= expected(outage_events)
        })
        .await;
        outage = json!({
            "seconds": plan.outage,
            "events": outage_events,
            "drained": caught_up,
            "drain_seconds_after_recovery": round(recovered.elapsed().as_secs_f64(), 2),
            "delivered": received(&seen, steady_events, all),
            "goal_drain_seconds": 60,
        });
    }
    let total_events = steady_events + outage_events;
    let (undelivered, duplicates) = {
        let seen = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
        let mut undelivered = 0u64;
        for n in 0..total_events {
            for e in 0..plan.endpoints {
                if !seen.arrivals.contains_key(&(e, n)) {
                    undelivered += 1;
                }
            }
        }
        let duplicates: u64 = seen
            .arrivals
            .values()
            .map(|(_, times)| u64::from(times.saturating_sub(1)))
            .sum();
        (undelivered, duplicates)
    };
    let dropped = metric(&app, "wafleet_webhook_events_dropped_total");
    app.stop().await?;
    receiver.handle.stop(true).await;

    Ok(json!({
        "settings": {
            "endpoints": plan.endpoints,
            "events_per_second": plan.rate,
            "seconds": plan.seconds,
            "outage_seconds": plan.outage,
            "concurrency_per_endpoint": CONCURRENCY,
            "rate_per_endpoint": plan.rate.ceil(),
            "retry_base_ms": webhook_settings.retry_base_ms,
            "database": if url.starts_with("postgres") { "postgres" } else { "sqlite" },
        },
        "steady": {
            "events": steady_events,
            "published_in_seconds": round(published_in, 2),
            "deliveries": steady_delivered,
            "drained": drained,
            "seconds_to_last_delivery": round(steady_seconds, 2),
            "deliveries_per_second": round(steady_delivered as f64 / steady_seconds.max(1e-9), 1),
            "latency_ms": latency,
            "goal_p99_ms": 200,
        },
        "outage": outage,
        "undelivered": undelivered,
        "duplicates": duplicates,
        "events_dropped": dropped,
    }))
}

/// Publishes `count` events numbered from `first`, spread evenly at `rate` per second.
async fn publish(
    app: &RunningApp,
    tenant_id: i64,
    first: u64,
    count: u64,
    rate: f64,
    epoch: Instant,
) {
    let started = actix_web::rt::time::Instant::now();
    for i in 0..count {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        actix_web::rt::time::sleep_until(due).await;
        app.state.hub.do_send(HubEvent {
            tenant_id,
            topic: Topic::LeadList(1),
            device_id: None,
            event: "LEAD_CREATED".into(),
            data: json!({ "n": first + i, "t_us": micros_since(epoch) }),
            ts: Utc::now(),
        });
    }
}

/// Events numbered `from..to` received, counted once per endpoint.
fn received(seen: &Mutex<Seen>, from: u64, to: u64) -> u64 {
    seen.lock()
        .map(|s| {
            s.arrivals
                .keys()
                .filter(|(_, n)| (from..to).contains(n))
                .count() as u64
        })
        .unwrap_or(0)
}

fn set(seen: &Mutex<Seen>, change: impl FnOnce(&mut Seen)) {
    if let Ok(mut seen) = seen.lock() {
        change(&mut seen);
    }
}

/// Polls `done` until it holds or `limit` passes; whether it held.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        actix_web::rt::time::sleep(POLL).await;
    }
    done()
}

/// A counter's value from the daemon's registry.
fn metric(app: &RunningApp, name: &str) -> f64 {
    families(app, name, |m| m.get_counter().get_value())
}

/// A gauge's value from the daemon's registry.
fn gauge(app: &RunningApp, name: &str) -> f64 {
    families(app, name, |m| m.get_gauge().get_value())
}

/// The sum of `value` over the samples of family `name`.
fn families(
    app: &RunningApp,
    name: &str,
    value: impl Fn(&prometheus::proto::Metric) -> f64,
) -> f64 {
    app.state
        .metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter().map(&value))
        .sum()
}

/// The receiver: its port and a handle to stop it.
struct Receiver {
    port: u16,
    handle: actix_web::dev::ServerHandle,
}

/// Starts the receiver on two threads of its own: `POST /e/{n}` records the event for endpoint
/// `n` and answers 200 (503 during the outage).
fn start_receiver(seen: Arc<Mutex<Seen>>, epoch: Instant) -> anyhow::Result<Receiver> {
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().route(
            "/e/{n}",
            web::post().to(move |path: web::Path<u32>, body: web::Bytes| {
                let seen = seen.clone();
                async move {
                    let at = micros_since(epoch);
                    let Ok(mut seen) = seen.lock() else {
                        return HttpResponse::InternalServerError().finish();
                    };
                    if seen.outage {
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    let Ok(body) = serde_json::from_slice::<Body>(&body) else {
                        return HttpResponse::BadRequest().finish();
                    };
                    let timed = body.data.n >= seen.timed_from;
                    let entry = seen.arrivals.entry((*path, body.data.n)).or_insert((at, 0));
                    entry.1 += 1;
                    let first = entry.1 == 1;
                    if first && timed {
                        let latency = at.saturating_sub(body.data.t_us);
                        seen.latencies_us
                            .push(u32::try_from(latency).unwrap_or(u32::MAX));
                    }
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .context("cannot bind the receiver")?;
    let port = server
        .addrs()
        .first()
        .map(|a| a.port())
        .context("the receiver has no port")?;
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(Receiver { port, handle })
}
