//! `wafleet bench import`: a CSV of M leads (one bad line in a thousand) streamed through the
//! importer the REST endpoint uses, in 64 KiB chunks as a request body arrives; rows per second.

use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::report::{self, round};
use crate::broadcast::leads::{import, store};
use crate::cli::BenchArgs;
use crate::phone;

/// Bytes per body chunk, like a network read.
const CHUNK: usize = 64 * 1024;

/// Runs the scenario with `--messages` as the number of rows (and `--db`).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let rows = args.messages;
    super::with_database(args, |url| measure(url, rows)).await
}

async fn measure(database_url: String, rows: u32) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let list = store::insert_list(&db, tenant_id, "bench").await?;
    let country = phone::country_code("MY").context("no country MY")?;
    let csv = sample_csv(rows);
    let bytes = csv.len();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        csv.chunks(CHUNK).map(|c| Ok(c.to_vec())).collect();
    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let report = import::import_csv(
        &db,
        tenant_id,
        list.id,
        country,
        futures_util::stream::iter(chunks),
        |_| {},
    )
    .await
    .map_err(|e| anyhow::anyhow!("import failed: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    let backend = db.backend_name();
    drop(db);
    Ok(json!({
        "params": {"rows": rows, "db": backend, "bytes": bytes, "chunk_bytes": CHUNK},
        "seconds": round(seconds, 3),
        "rows_per_s": round(report.rows as f64 / seconds, 1),
        "imported": report.imported,
        "failed": report.failed,
        "duplicates": report.duplicates,
        "cpu_seconds": cpu,
    }))
}

/// `rows` leads with names, tags, a status and a custom field; every thousandth phone is bad.
fn sample_csv(rows: u32) -> Vec<u8> {
    let mut csv = String::from("name,phone,tags,status,city\n");
    for n in 0..rows {
        let phone = if n % 1000 == 999 {
            "not-a-phone".to_string()
        } else {
            format!("+60 12-{:03} {:04}", n / 10_000 % 1000, n % 10_000)
        };
        csv.push_str(&format!("Lead {n},{phone},vip;expo,new,Ipoh\n"));
    }
    csv.into_bytes()
}
