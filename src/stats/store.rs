//! Reading and writing `stats_hourly`: [`apply`] adds a transaction's [`Bumps`] (device rows
//! and the tenant's device-0 row) inside the caller's transaction; [`hourly`] and
//! [`by_device`] read a range for the home page.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, sql};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::schema::{
    campaigns, devices, opt_outs, sequence_enrollments, stats_daily, stats_hourly,
};
use crate::db::{Conn, Db, DbError};
use crate::db_run;
use crate::stats::model::{day_of, Bumps, Tally};

/// The device id of the rows that hold a tenant's totals.
pub const TENANT_TOTAL: i64 = 0;

/// Whose counts to read: the whole tenant (owners, viewers) or a member's devices.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every device of the tenant.
    Tenant,
    /// These devices only.
    Devices(Vec<i64>),
}

/// Adds `bumps` to their hours, each device's row and the tenant's total, on the caller's
/// connection (inside its transaction, so the counts commit with what they count): one
/// multi-row upsert per table, whatever the number of devices and hours — a batch costs two
/// statements (a round trip each on PostgreSQL), not two per row. Rows go in key order, the
/// tenant's totals last, so concurrent transactions lock shared rows in the same order.
pub async fn apply(mut conn: Conn<'_>, bumps: &Bumps) -> Result<(), DbError> {
    if bumps.is_empty() {
        return Ok(());
    }
    let hours: Vec<(i64, i64, NaiveDateTime, Tally)> = bumps
        .0
        .iter()
        .map(|(&(tenant, device, hour), tally)| (tenant, device, hour, *tally))
        .chain(
            bumps
                .tenant_totals()
                .into_iter()
                .map(|((tenant, hour), tally)| (tenant, TENANT_TOTAL, hour, tally)),
        )
        .collect();
    let days: Vec<(i64, i64, NaiveDateTime, Tally)> = bumps
        .device_days()
        .into_iter()
        .map(|((tenant, device, day), tally)| (tenant, device, day, tally))
        .collect();
    // One upsert adding each tally to its row, for either table (`$at`: its time column).
    macro_rules! add_to {
        ($table:ident, $at:ident, $rows:expr) => {{
            let values: Vec<_> = $rows
                .iter()
                .map(|(tenant_id, device_id, at, tally)| {
                    (
                        $table::tenant_id.eq(*tenant_id),
                        $table::device_id.eq(*device_id),
                        $table::$at.eq(*at),
                        $table::sent.eq(tally.sent),
                        $table::delivered.eq(tally.delivered),
                        $table::read.eq(tally.read),
                        $table::replies.eq(tally.replies),
                        $table::failed.eq(tally.failed),
                    )
                })
                .collect();
            // The statement, for one row (a reference) or for all (a slice).
            macro_rules! upsert {
                ($values:expr, $c:expr) => {
                    diesel::insert_into($table::table)
                        .values($values)
                        .on_conflict(($table::tenant_id, $table::device_id, $table::$at))
                        .do_update()
                        .set((
                            $table::sent.eq($table::sent + excluded($table::sent)),
                            $table::delivered.eq($table::delivered + excluded($table::delivered)),
                            $table::read.eq($table::read + excluded($table::read)),
                            $table::replies.eq($table::replies + excluded($table::replies)),
                            $table::failed.eq($table::failed + excluded($table::failed)),
                        ))
                        .execute($c)
                        .await?
                };
            }
            match conn.reborrow() {
                // In-process: a statement costs no round trip (and diesel has no multi-row
                // upsert for SQLite).
                Conn::Sqlite(c) => {
                    for row in &values {
                        upsert!(row, &mut *c);
                    }
                }
                Conn::Postgres(c) => {
                    upsert!(&values, &mut *c);
                }
            }
        }};
    }
    add_to!(stats_daily, day, days);
    add_to!(stats_hourly, hour, hours);
    Ok(())
}

/// A row's counts as a [`Tally`].
type Counts = (i64, i64, i64, i64, i64);

fn tally((sent, delivered, read, replies, failed): Counts) -> Tally {
    Tally {
        sent,
        delivered,
        read,
        replies,
        failed,
    }
}

/// The five summed counts, as selected.
type Sums = (
    SqlLiteral<BigInt>,
    SqlLiteral<BigInt>,
    SqlLiteral<BigInt>,
    SqlLiteral<BigInt>,
    SqlLiteral<BigInt>,
);

/// The five counts of `table` summed over a group (PostgreSQL sums BIGINT as NUMERIC: cast
/// back).
fn sums(table: &str) -> Sums {
    let sum = |column: &str| sql::<BigInt>(&format!("CAST(SUM({table}.{column}) AS BIGINT)"));
    (
        sum("sent"),
        sum("delivered"),
        sum("read"),
        sum("replies"),
        sum("failed"),
    )
}

/// The scope's counts per UTC hour from `since` on, oldest first: the tenant's total rows
/// (one per hour), or a member's device rows summed per hour.
pub async fn hourly(
    db: &Db,
    tenant_id: i64,
    scope: &Scope,
    since: NaiveDateTime,
) -> Result<Vec<(NaiveDateTime, Tally)>, DbError> {
    // Owners read the tenant's total rows; members sum their devices' rows.
    let ids = match scope {
        Scope::Tenant => vec![TENANT_TOTAL],
        Scope::Devices(ids) => ids.clone(),
    };
    let rows: Vec<(NaiveDateTime, Counts)> = db_run!(db, |conn| {
        stats_hourly::table
            .filter(stats_hourly::tenant_id.eq(tenant_id))
            .filter(stats_hourly::device_id.eq_any(&ids))
            .filter(stats_hourly::hour.ge(since))
            .group_by(stats_hourly::hour)
            .order(stats_hourly::hour)
            .select((stats_hourly::hour, sums("stats_hourly")))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(rows
        .into_iter()
        .map(|(hour, counts)| (hour, tally(counts)))
        .collect())
}

/// One device's counts over a range, with its name.
#[derive(Debug, Clone)]
pub struct DeviceTally {
    /// The device.
    pub device_id: i64,
    /// Its name.
    pub name: String,
    /// What it did.
    pub tally: Tally,
}

/// The scope's devices' counts from `since` to `now`, most sent first (one row per device,
/// summed by the database); devices deleted since are left out. Whole UTC days inside the range
/// are read from the daily rows and only the edges from the hourly ones, so 30 days of 3,000
/// devices cost about 100,000 rows rather than 2 million.
pub async fn by_device(
    db: &Db,
    tenant_id: i64,
    scope: &Scope,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Vec<DeviceTally>, DbError> {
    let first_day = day_of(since + chrono::Duration::days(1) - chrono::Duration::microseconds(1));
    let last_day = day_of(now);
    let (hours_until, days) = if first_day < last_day {
        (first_day, Some((first_day, last_day)))
    } else {
        // No whole day: every hour since `since` (nothing is stored ahead of now).
        (now + chrono::Duration::hours(1), None)
    };
    // Diesel cannot group a boxed query: the scopes and tables spell the query out.
    macro_rules! per_device {
        ($conn:ident, $table:ident, $name:literal, $window:expr, $devices:expr) => {
            $table::table
                .inner_join(devices::table.on(devices::id.eq($table::device_id)))
                .filter($table::tenant_id.eq(tenant_id))
                .filter(devices::tenant_id.eq(tenant_id))
                .filter($devices)
                .filter($window)
                .group_by((devices::id, devices::name))
                .select((devices::id, devices::name, sums($name)))
                .load::<(i64, String, Counts)>($conn)
                .await
                .map_err(DbError::from)
        };
    }
    // The hours before the first whole day, and from the last day's midnight on.
    let edges = stats_hourly::hour
        .ge(since)
        .and(stats_hourly::hour.lt(hours_until))
        .or(stats_hourly::hour
            .ge(last_day)
            .and(stats_hourly::hour.ge(since)));
    let mut rows = match scope {
        Scope::Tenant => db_run!(db, |conn| {
            per_device!(
                conn,
                stats_hourly,
                "stats_hourly",
                edges,
                stats_hourly::device_id.ne(TENANT_TOTAL)
            )
        })?,
        Scope::Devices(ids) => db_run!(db, |conn| {
            per_device!(
                conn,
                stats_hourly,
                "stats_hourly",
                edges,
                stats_hourly::device_id.eq_any(ids)
            )
        })?,
    };
    if let Some((from, until)) = days {
        let whole = stats_daily::day.ge(from).and(stats_daily::day.lt(until));
        rows.extend(match scope {
            Scope::Tenant => db_run!(db, |conn| {
                per_device!(
                    conn,
                    stats_daily,
                    "stats_daily",
                    whole,
                    stats_daily::device_id.ne(TENANT_TOTAL)
                )
            })?,
            Scope::Devices(ids) => db_run!(db, |conn| {
                per_device!(
                    conn,
                    stats_daily,
                    "stats_daily",
                    whole,
                    stats_daily::device_id.eq_any(ids)
                )
            })?,
        });
    }
    let mut per_device: std::collections::HashMap<i64, DeviceTally> = Default::default();
    for (device_id, name, counts) in rows {
        per_device
            .entry(device_id)
            .or_insert_with(|| DeviceTally {
                device_id,
                name,
                tally: Tally::default(),
            })
            .tally
            .add(&tally(counts));
    }
    let mut out: Vec<DeviceTally> = per_device.into_values().collect();
    out.sort_by(|a, b| (b.tally.sent, a.device_id).cmp(&(a.tally.sent, b.device_id)));
    Ok(out)
}

/// The tenant's campaigns per status (sequence carriers left out), by status name.
pub async fn campaign_counts(db: &Db, tenant_id: i64) -> Result<Vec<(String, i64)>, DbError> {
    db_run!(db, |conn| {
        campaigns::table
            .filter(campaigns::tenant_id.eq(tenant_id))
            .filter(campaigns::kind.ne("sequence"))
            .group_by(campaigns::status)
            .select((campaigns::status, count_star()))
            .order(campaigns::status)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Sequence enrolments of the tenant still waiting for or going through their steps.
pub async fn open_enrollments(db: &Db, tenant_id: i64) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        sequence_enrollments::table
            .filter(sequence_enrollments::tenant_id.eq(tenant_id))
            .filter(sequence_enrollments::status.eq_any(["waiting", "active"]))
            .count()
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Numbers the tenant put on its opt-out list since `since`.
pub async fn opt_outs_since(db: &Db, tenant_id: i64, since: NaiveDateTime) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(opt_outs::created_at.ge(since))
            .count()
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Deletes about `limit` of the oldest rows older than `cutoff`, hourly ones first, then daily
/// ones (whole hours and days, so a few more when one straddles the limit); how many went.
pub async fn delete_before(db: &Db, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    let hourly = delete_hours_before(db, cutoff, limit).await?;
    let left = limit - hourly as i64;
    if left <= 0 {
        return Ok(hourly);
    }
    let daily = db_run!(db, |conn| {
        let last: Option<NaiveDateTime> = stats_daily::table
            .filter(stats_daily::day.lt(cutoff))
            .order(stats_daily::day)
            .offset(left - 1)
            .select(stats_daily::day)
            .first(conn)
            .await
            .optional()?;
        diesel::delete(
            stats_daily::table
                .filter(stats_daily::day.lt(cutoff))
                .filter(stats_daily::day.le(last.unwrap_or(cutoff))),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(hourly + daily)
}

/// [`delete_before`] for the hourly rows.
async fn delete_hours_before(db: &Db, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        let last: Option<NaiveDateTime> = stats_hourly::table
            .filter(stats_hourly::hour.lt(cutoff))
            .order(stats_hourly::hour)
            .offset(limit.max(1) - 1)
            .select(stats_hourly::hour)
            .first(conn)
            .await
            .optional()?;
        diesel::delete(
            stats_hourly::table
                .filter(stats_hourly::hour.lt(cutoff))
                .filter(stats_hourly::hour.le(last.unwrap_or(cutoff))),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}
