//! `wafleet bench clients`: N real whatsapp-rust clients built on the database-backed session
//! store, and the memory each one costs.
//!
//! Each client is built exactly as the real connector builds it for a device
//! ([`RealConnector::build_client`]: our `WaStore` on the shared pool, the shared client
//! runtime, a pinned version) and kept; building one creates its device record (fresh keys) in
//! the `wa_device` table, as a first connect would. Nothing reaches the network: the clients
//! are not started (a started one would need WhatsApp), so the figure is the resident cost of
//! an idle client plus its store, not of its socket and TLS buffers; the report adds the
//! library's own per-connection estimate for those ([`TRANSPORT_ESTIMATE_KIB`]) as a separate,
//! labelled figure.
//!
//! Memory: one client is built and dropped first (one-time statics and pool connections), then
//! RSS is read, N clients are built and held, RSS is read again; per client is the growth
//! divided by N. The store's rows live in the database (SQLite: in this process's page cache,
//! bounded by the pool, not per client).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::report::{round, Memory, Target};
use crate::cli::BenchArgs;
use crate::device::store;
use crate::whatsapp::real::version::FALLBACK_VERSION;
use crate::whatsapp::real::RealConnector;

/// Issue 7: at most this much RSS per real client, store included.
const TARGET_KIB_PER_CLIENT: f64 = 400.0;
/// What a live connection adds per client by whatsapp-rust's own estimate
/// (`whatsapp-rust-tokio-transport`: 16 KiB read + 16 KiB write buffers + 32 KiB TLS state):
/// not measurable here without WhatsApp, so reported as an estimate next to the measured figure.
const TRANSPORT_ESTIMATE_KIB: f64 = 64.0;

/// An HTTP client that refuses every request: the benchmark must not touch the network.
struct Offline;

#[whatsapp_rust::async_trait]
impl whatsapp_rust::http::HttpClient for Offline {
    async fn execute(
        &self,
        _request: whatsapp_rust::http::HttpRequest,
    ) -> whatsapp_rust::anyhow::Result<whatsapp_rust::http::HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!(
            "the clients benchmark is offline"
        ))
    }
}

/// Runs the scenario with `--devices` clients (and `--db`) and returns its figures.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let clients = args.devices;
    super::with_database(args, |url| measure(url, clients)).await
}

/// Seeds N devices, builds a client per device, and reports.
async fn measure(database_url: String, clients: u32) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[("WAFLEET__WHATSAPP__CONNECTOR", "real")])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let mut ids = Vec::with_capacity(clients as usize + 1);
    for n in 0..=clients {
        ids.push(
            store::insert_device(&db, tenant_id, &format!("Client {n}"))
                .await?
                .id,
        );
    }
    let connector = RealConnector::new(db.clone(), &settings.whatsapp, &settings.chat)?
        .with_http(Arc::new(Offline), FALLBACK_VERSION);

    // Warm-up: one-time statics, the runtime's threads, pool connections.
    let (warm, _) = connector.build_client(ids[0], None).await?;
    drop(warm);
    let before = Memory::probe()?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(clients as usize);
    for id in &ids[1..] {
        held.push(connector.build_client(*id, None).await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = Memory::probe()?;
    let rows = crate::whatsapp::real::store::count_device_rows(&db, ids[1]).await?;
    drop(held);

    let per_client = (clients > 0).then(|| {
        round(
            after.rss_kib.saturating_sub(before.rss_kib) as f64 / f64::from(clients),
            2,
        )
    });
    let mut targets = serde_json::Map::new();
    if let Some(per_client) = per_client {
        targets.insert(
            "rss_per_client_kib".into(),
            json!(Target::at_most(per_client, TARGET_KIB_PER_CLIENT)),
        );
    }
    Ok(json!({
        "params": {
            "clients": clients,
            "db": db.backend_name(),
            "version": format!("{}.{}.{}", FALLBACK_VERSION.0, FALLBACK_VERSION.1, FALLBACK_VERSION.2),
        },
        "build_seconds": round(seconds, 2),
        "clients_per_s": round(f64::from(clients) / seconds.max(f64::EPSILON), 1),
        "store_rows_per_client": rows,
        "rss_before_kib": before.rss_kib,
        "rss_after_kib": after.rss_kib,
        "peak_rss_kib": after.peak_kib,
        "rss_per_client_kib": per_client,
        "transport_estimate_kib_per_connection": TRANSPORT_ESTIMATE_KIB,
        "estimated_connected_kib_per_client": per_client.map(|kib| round(kib + TRANSPORT_ESTIMATE_KIB, 2)),
        "targets": targets,
    }))
}
