//! A sender's side of the outbox: claiming due rows under a lease, fixing a row's final text
//! just before its send, then finishing them (sent, failed, skipped) or giving them back. Each
//! claim or finish is one statement (a failure also counts itself in `stats_hourly`; PostgreSQL
//! claims in a transaction that skips rows another node has locked).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::broadcast::outbox::model::{Claimed, OutboxStatus};
use crate::db::schema::outbox;
use crate::db::sql::one_of;
use crate::db::{Conn, Db, DbError, Fence};
use crate::db_run;
use crate::stats;
use crate::stats::model::{Bumps, Count};

/// The ids of up to `$4` due rows of campaign `$1` and device `$2`, oldest first: rows left
/// `sending` whose lease passed before `$3`, and pending rows; locked (skipping rows another
/// node holds) when `lock`. Each branch is one range of `outbox_claim_idx` read in id order,
/// stopping at the limit: one condition with an OR of both read every row the device has in
/// the campaign (sent ones too) at every claim.
fn due_ids_sql(lock: bool) -> String {
    let (sending, pending) = (
        OutboxStatus::Sending.as_str(),
        OutboxStatus::Pending.as_str(),
    );
    let due = format!(
        "SELECT id FROM (SELECT id FROM outbox WHERE campaign_id = $1 AND device_id = $2 \
             AND status = '{sending}' AND lease_until < $3 ORDER BY id LIMIT $4) AS expired \
         UNION ALL \
         SELECT id FROM (SELECT id FROM outbox WHERE campaign_id = $1 AND device_id = $2 \
             AND status = '{pending}' ORDER BY id LIMIT $4) AS waiting \
         ORDER BY id LIMIT $4"
    );
    if lock {
        // FOR UPDATE does not go with UNION: the rows found are locked by id.
        format!("SELECT id FROM outbox WHERE id IN ({due}) ORDER BY id FOR UPDATE SKIP LOCKED")
    } else {
        due
    }
}

/// A row id read by `sql_query`.
#[derive(QueryableByName)]
struct RowId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Claims up to `limit` of a device's due rows in a campaign: pending ones, and ones left in
/// `sending` by a crashed sender whose lease has passed. Claimed rows are `sending`, leased
/// until `lease_until`, with one more attempt. PostgreSQL skips rows another node has locked;
/// SQLite has a single writer, so the UPDATE is atomic by itself. With a `fence` (PostgreSQL
/// clusters) nothing is claimed unless this node still holds the device's lease.
pub async fn claim(
    db: &Db,
    campaign_id: i64,
    device_id: i64,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    fence: Option<&Fence>,
) -> Result<Vec<Claimed>, DbError> {
    // Due: pending, or left `sending` by a crashed sender whose lease has passed. The UPDATE
    // re-checks it, so a row claimed by someone else in between is not claimed twice.
    macro_rules! due {
        () => {
            outbox::table
                .filter(outbox::campaign_id.eq(campaign_id))
                .filter(outbox::device_id.eq(device_id))
                .filter(
                    outbox::status
                        .eq(OutboxStatus::Pending.as_str())
                        .or(outbox::status
                            .eq(OutboxStatus::Sending.as_str())
                            .and(outbox::lease_until.lt(now))),
                )
        };
    }
    macro_rules! claim_ids {
        ($conn:expr, $ids:expr) => {
            // `eq_any`, not `one_of`: with a JSON list SQLite's planner walks
            // `outbox_claim_idx` over every row of the device instead of probing the ids.
            diesel::update(due!().filter(outbox::id.eq_any($ids)))
                .set((
                    outbox::status.eq(OutboxStatus::Sending.as_str()),
                    outbox::attempts.eq(outbox::attempts + 1),
                    outbox::lease_until.eq(Some(lease_until)),
                ))
                .returning((
                    outbox::id,
                    outbox::phone,
                    outbox::body,
                    outbox::message_id,
                    outbox::attempts,
                    outbox::image_sha256,
                    outbox::attachment,
                ))
                .load::<Claimed>($conn)
                .await
        };
    }
    let due_ids = |lock| {
        diesel::sql_query(due_ids_sql(lock))
            .bind::<BigInt, _>(campaign_id)
            .bind::<BigInt, _>(device_id)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
    };
    let mut claimed: Vec<Claimed> = match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let ids: Vec<i64> = due_ids(false)
                .load::<RowId>(&mut conn)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            claim_ids!(&mut conn, &ids)?
        }
        Db::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            conn.transaction::<_, DbError, _>(async |conn| {
                if let Some(fence) = fence {
                    fence.check(conn).await?;
                }
                let ids: Vec<i64> = due_ids(true)
                    .load::<RowId>(conn)
                    .await?
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(claim_ids!(conn, &ids)?)
            })
            .await?
        }
    };
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Ends rows a sender holds: `sent` (stamping `sent_at`), `failed` or `skipped` with `error`.
/// Only rows still `sending` change, so a receipt that arrived first is never overwritten.
/// Failures are counted in the home page's figures in the same transaction. With a `fence`
/// (PostgreSQL clusters) nothing changes unless this node still holds the device's lease: the
/// rows stay `sending`, and the device's new owner re-sends them under the same message ids
/// once their lease passes.
pub async fn finish(
    db: &Db,
    ids: &[i64],
    status: OutboxStatus,
    error: Option<&str>,
    fence: Option<&Fence>,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let sent_at = (status == OutboxStatus::Sent).then_some(now);
    // The rows this call may end: only those still `sending`.
    macro_rules! end_rows {
        () => {
            diesel::update(
                outbox::table
                    .filter(one_of(outbox::id, ids.to_vec()))
                    .filter(outbox::status.eq(OutboxStatus::Sending.as_str())),
            )
            .set((
                outbox::status.eq(status.as_str()),
                outbox::lease_until.eq(None::<NaiveDateTime>),
                outbox::sent_at.eq(sent_at),
                outbox::error.eq(error),
            ))
        };
    }
    // Ends the rows on `$conn`, counting failures, within a transaction.
    macro_rules! end_counted {
        ($conn:expr) => {{
            let finished: Vec<(i64, Option<i64>)> = end_rows!()
                .returning((outbox::tenant_id, outbox::device_id))
                .get_results($conn)
                .await?;
            if status == OutboxStatus::Failed {
                let mut counts = Bumps::default();
                for (tenant_id, device_id) in &finished {
                    // Rows without a device never left; device 0 is the tenant's total.
                    if let Some(device_id) = device_id {
                        counts.add(*tenant_id, *device_id, now, Count::Failed);
                    }
                }
                stats::store::apply(Conn::from(&mut *$conn), &counts).await?;
            }
            Ok::<_, DbError>(finished.len())
        }};
    }
    if let (Db::Postgres(pool), Some(fence)) = (db, fence) {
        let mut pooled = pool.get().await.map_err(DbError::from)?;
        let conn: &mut AsyncPgConnection = &mut pooled;
        return conn
            .transaction::<_, DbError, _>(async |conn| {
                fence.check(conn).await?;
                end_counted!(conn)
            })
            .await;
    }
    db_run!(db, |conn| {
        if status != OutboxStatus::Failed {
            // One statement, no transaction: on PostgreSQL one round trip instead of three.
            return end_rows!().execute(conn).await.map_err(DbError::from);
        }
        conn.transaction::<_, DbError, _>(async |conn| end_counted!(conn))
            .await
    })
}

/// Records the final text of a claimed row before it is sent (its `{greeting}` filled in), so
/// a re-send after a crash sends the same text. Only a row still `sending` changes; answers
/// whether it did.
pub async fn set_body(db: &Db, id: i64, body: &str) -> Result<bool, DbError> {
    let changed = db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .find(id)
                .filter(outbox::status.eq(OutboxStatus::Sending.as_str())),
        )
        .set(outbox::body.eq(body))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// Gives a claimed row back (`pending`, no lease) after a failed attempt, noting why.
pub async fn release(db: &Db, id: i64, error: Option<&str>) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .find(id)
                .filter(outbox::status.eq(OutboxStatus::Sending.as_str())),
        )
        .set((
            outbox::status.eq(OutboxStatus::Pending.as_str()),
            outbox::lease_until.eq(None::<NaiveDateTime>),
            outbox::error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(DbError::from)
    })
}
