//! `wafleet bench inbound`: contacts write to N simulated devices at R messages per second while
//! S WebSocket clients subscribe to every device's `messages/<id>` topic; the figure is the
//! end-to-end latency from the simulator emitting a message to a client receiving its
//! `NEW_MESSAGE` frame, which includes ChatSync's batch window and the database commit.
//!
//! Each message's text is its emission time (µs since an epoch shared with the clients), so the
//! clients time every frame without a side channel. The clients are the same `awc` WebSocket
//! clients as in [`super::fanout`]. With `--redis`, every event is also offered to the Redis
//! bridge; the memory figures show what that costs, and with an unreachable Redis that the
//! bridge's queue stays bounded.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::fanout::{self, Listen, StampField};
use super::report::{self, round, Memory, Target};
use super::RunningApp;
use crate::auth::model::Scope;
use crate::cli::BenchArgs;
use crate::device::model::DeviceFilter;
use crate::device::store;

/// Messages per second unless `--rate` says otherwise.
const DEFAULT_RATE: f64 = 300.0;
/// Issue 11: inbound→WebSocket p99 at most this many milliseconds (300 msg/s, 50 subscribers).
const TARGET_P99_MS: f64 = 25.0;

/// Runs the scenario with `--devices`, `--subscribers`, `--messages`, `--rate` (and `--db`).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let plan = Plan {
        devices: args.devices,
        subscribers: args.subscribers,
        messages: args.messages,
        rate: args.rate.filter(|r| *r > 0.0).unwrap_or(DEFAULT_RATE),
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
    devices: u32,
    subscribers: u32,
    messages: u32,
    rate: f64,
}

async fn measure(database_url: String, plan: Plan, redis: Option<String>) -> anyhow::Result<Value> {
    let mut extra = vec![
        ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "5"),
        ("WAFLEET__SIM__QR_ROTATE_MS", "0"),
        ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
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
    let memory_before = Memory::probe()?;
    let cpu_before = report::cpu_seconds();
    let emit_errors = std::cell::Cell::new(0u64);
    let outcome = fanout::drive(
        app.port,
        token,
        plan.subscribers,
        listen,
        u64::from(plan.messages),
        |epoch| {
            let (sim, device_ids, errors) = (sim.clone(), device_ids.clone(), &emit_errors);
            async move {
                let started = actix_web::rt::time::Instant::now();
                for n in 0..plan.messages {
                    let due = started + Duration::from_secs_f64(f64::from(n) / plan.rate);
                    actix_web::rt::time::sleep_until(due).await;
                    let device = device_ids[n as usize % device_ids.len()];
                    let from = format!("6017{:07}", n % 10_000);
                    let stamp = epoch.elapsed().as_micros().to_string();
                    if sim.deliver_inbound(device, &from, &stamp).await.is_err() {
                        errors.set(errors.get() + 1);
                    }
                }
            }
        },
    )
    .await;
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
        },
        "memory": {
            "rss_before_mib": round(memory_before.rss_kib as f64 / 1024.0, 1),
            "rss_after_mib": round(memory_after.rss_kib as f64 / 1024.0, 1),
            "peak_growth_mib": round(
                memory_after.peak_kib.saturating_sub(memory_before.rss_kib) as f64 / 1024.0,
                1,
            ),
        },
        "emit_errors": emit_errors.get(),
        "achieved_rate_per_s": round(f64::from(plan.messages) / publish_seconds, 1),
        "cpu_seconds": cpu,
    });
    let expected = u64::from(plan.subscribers) * u64::from(plan.messages);
    report::merge(
        &mut figures,
        fanout::summarize(&reports, expected, publish_seconds, started),
    );
    if let Some(p99) = figures["latency_ms"]["p99"].as_f64() {
        figures["targets"] = json!({"latency_p99_ms": Target::at_most(p99, TARGET_P99_MS)});
    }
    Ok(figures)
}
