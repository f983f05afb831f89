//! `wafleet bench home`: the home page's figures at fleet scale. N devices with hourly figures
//! for every hour of D days (N × 24·D device rows and 24·D tenant rows of `stats_hourly`, and
//! N × D rows of `stats_daily`,
//! written by bulk SQL: what a fleet sending every hour for D days leaves, however many
//! messages that was), then the overview the home API answers (`stats::overview`, the same
//! call) timed for today, 7 and 30 days, for an owner (tenant totals and every device's share)
//! and for a member with 10 devices; p50 and p99 per case.

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, Utc};
use diesel_async::SimpleAsyncConnection;
use serde_json::{json, Value};

use super::report::{percentile, round};
use crate::cli::BenchArgs;
use crate::db::{Db, DbError};
use crate::db_run;
use crate::stats::overview::{overview, Range};
use crate::stats::store::Scope;

/// Timed calls per case.
const CALLS: usize = 40;

/// Runs the scenario with `--devices` and `--days`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let (devices, days) = (args.devices, args.days);
    super::with_database(args, |url| measure(url, devices, days)).await
}

async fn measure(database_url: String, devices: u32, days: u32) -> anyhow::Result<Value> {
    let settings = super::settings(&database_url, &[])?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let started = Instant::now();
    seed(&db, tenant_id, devices, days).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let rows = super::number(&db, "SELECT COUNT(*) AS n FROM stats_hourly", "row count").await?;
    let zone: chrono_tz::Tz = "Asia/Kuala_Lumpur".parse()?;
    let member = super::numbers(&db, "SELECT id AS n FROM devices ORDER BY id LIMIT 10").await?;
    let mut cases = serde_json::Map::new();
    for (who, scope) in [("owner", Scope::Tenant), ("member", Scope::Devices(member))] {
        for range in [Range::Today, Range::Week, Range::Month] {
            let mut millis = Vec::with_capacity(CALLS);
            let mut sent = 0;
            let mut shares_add_up = true;
            for _ in 0..CALLS {
                let at = Instant::now();
                let view = overview(&db, tenant_id, &scope, zone, range, Utc::now()).await?;
                millis.push(at.elapsed().as_secs_f64() * 1000.0);
                sent = view.totals.sent;
                // The per-device shares (daily rows + hourly edges) must sum to the totals.
                let shares: i64 = view.devices.iter().map(|d| d.tally.sent).sum();
                shares_add_up &= shares == sent;
            }
            millis.sort_by(f64::total_cmp);
            cases.insert(
                format!("{who}_{}", range.name()),
                json!({
                    "p50_ms": percentile(&millis, 0.5).map(|v| round(v, 2)),
                    "p99_ms": percentile(&millis, 0.99).map(|v| round(v, 2)),
                    "sent": sent,
                    "shares_add_up": shares_add_up,
                }),
            );
        }
    }
    let backend = db.backend_name();
    drop(db);
    Ok(json!({
        "params": {"devices": devices, "days": days, "db": backend, "calls_per_case": CALLS},
        "stats_rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "overview": cases,
    }))
}

/// `devices` devices of the tenant, each with 10 messages sent (8 delivered, 4 read, 1 reply,
/// 1 failure) in every hour of the last `days` days, and the tenant's hourly totals.
async fn seed(db: &Db, tenant_id: i64, devices: u32, days: u32) -> anyhow::Result<()> {
    let hours = i64::from(days) * 24;
    let first = (Utc::now() - Duration::hours(hours - 1)).format("%Y-%m-%d %H:00:00");
    let script = match db {
        Db::Sqlite(_) => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {devices})
             INSERT INTO devices (tenant_id, name, status, created_at, updated_at)
             SELECT {tenant_id}, 'Device ' || i, 'online', datetime('now'), datetime('now') FROM n;
             WITH RECURSIVE h(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM h WHERE i < {hours} - 1)
             INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
             SELECT {tenant_id}, d.id, datetime('{first}', '+' || h.i || ' hours'), 10, 8, 4, 1, 1
             FROM devices d, h WHERE d.tenant_id = {tenant_id};
             INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
             SELECT tenant_id, 0, hour, SUM(sent), SUM(delivered), SUM(read), SUM(replies), SUM(failed)
             FROM stats_hourly GROUP BY tenant_id, hour;
             INSERT INTO stats_daily (tenant_id, device_id, day, sent, delivered, read, replies, failed)
             SELECT tenant_id, device_id, strftime('%Y-%m-%d 00:00:00', hour), SUM(sent), SUM(delivered),
                    SUM(read), SUM(replies), SUM(failed)
             FROM stats_hourly WHERE device_id <> 0
             GROUP BY tenant_id, device_id, strftime('%Y-%m-%d 00:00:00', hour);
             ANALYZE;"
        ),
        Db::Postgres(_) => format!(
            "INSERT INTO devices (tenant_id, name, status, created_at, updated_at)
             SELECT {tenant_id}, 'Device ' || i, 'online', now(), now() FROM generate_series(1, {devices}) i;
             INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
             SELECT {tenant_id}, d.id, TIMESTAMP '{first}' + h * INTERVAL '1 hour', 10, 8, 4, 1, 1
             FROM devices d, generate_series(0, {hours} - 1) h WHERE d.tenant_id = {tenant_id};
             INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
             SELECT tenant_id, 0, hour, SUM(sent), SUM(delivered), SUM(read), SUM(replies), SUM(failed)
             FROM stats_hourly GROUP BY tenant_id, hour;
             INSERT INTO stats_daily (tenant_id, device_id, day, sent, delivered, read, replies, failed)
             SELECT tenant_id, device_id, date_trunc('day', hour), SUM(sent), SUM(delivered),
                    SUM(read), SUM(replies), SUM(failed)
             FROM stats_hourly WHERE device_id <> 0 GROUP BY tenant_id, device_id, date_trunc('day', hour);
             ANALYZE;"
        ),
    };
    db_run!(db, |conn| {
        conn.batch_execute(&script).await.map_err(DbError::from)
    })?;
    Ok(())
}
