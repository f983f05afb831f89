//! Rows moved by others than their sender: skipped (cancel, a lost device's share with no
//! room, a lead another distribution took, a step the lead replied to), reassigned to other
//! devices, put back to pending by a user's retry of failed rows, read for their leads (AI
//! distribution), and moved forward by receipts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{on_conn, Conn, CHUNK};
use crate::broadcast::outbox::model::{OutboxStatus, Receipt};
use crate::db::schema::{opt_outs, outbox};
use crate::db::sql::Pairs;
use crate::db::{Db, DbError};
use crate::db_run;

/// Skips every unsent row of a campaign (cancel), recording `reason`.
pub async fn skip_unsent(db: &Db, campaign_id: i64, reason: &str) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::campaign_id.eq(campaign_id))
                .filter(outbox::status.eq(OutboxStatus::Pending.as_str())),
        )
        .set((
            outbox::status.eq(OutboxStatus::Skipped.as_str()),
            outbox::error.eq(reason),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Moves pending rows of a device (or the unassigned ones, `None`) in a campaign to `to`,
/// round-robin: all of them, or the last `limit` (the ones it would send last). Rows in flight
/// stay with their sender. Returns how many moved.
pub async fn reassign(
    db: &Db,
    campaign_id: i64,
    from_device: Option<i64>,
    to: &[i64],
    limit: Option<i64>,
) -> Result<usize, DbError> {
    if to.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = db_run!(db, |conn| {
        let query = outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::status.eq(OutboxStatus::Pending.as_str()))
            .select(outbox::id)
            .order(outbox::id.desc())
            .limit(limit.unwrap_or(i64::MAX))
            .into_boxed();
        let query = match from_device {
            Some(device) => query.filter(outbox::device_id.eq(device)),
            None => query.filter(outbox::device_id.is_null()),
        };
        query.load(conn).await.map_err(DbError::from)
    })?;
    let mut shares: Vec<Vec<i64>> = vec![Vec::new(); to.len()];
    for (index, id) in ids.iter().enumerate() {
        shares[index % to.len()].push(*id);
    }
    let mut moved = 0;
    for (device, share) in to.iter().zip(shares) {
        for chunk in share.chunks(CHUNK) {
            moved += db_run!(db, |conn| {
                diesel::update(
                    outbox::table
                        .filter(outbox::id.eq_any(chunk))
                        .filter(outbox::status.eq(OutboxStatus::Pending.as_str())),
                )
                .set(outbox::device_id.eq(Some(*device)))
                .execute(conn)
                .await
                .map_err(DbError::from)
            })?;
        }
    }
    Ok(moved)
}

/// Skips a device's (or the unassigned, `None`) pending rows of a campaign, noting `reason`.
pub async fn skip_device_pending(
    db: &Db,
    campaign_id: i64,
    device_id: Option<i64>,
    reason: &str,
) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        let rows = outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::status.eq(OutboxStatus::Pending.as_str()))
            .into_boxed();
        let rows = match device_id {
            Some(device) => rows.filter(outbox::device_id.eq(device)),
            None => rows.filter(outbox::device_id.is_null()),
        };
        let ids: Vec<i64> = rows.select(outbox::id).load(conn).await?;
        diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(&ids))
                .filter(outbox::status.eq(OutboxStatus::Pending.as_str())),
        )
        .set((
            outbox::status.eq(OutboxStatus::Skipped.as_str()),
            outbox::error.eq(reason),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Puts a campaign's `failed` rows (of one device, or of all) back to `pending` for a new round
/// of attempts, on the caller's connection inside its transaction. Only rows still `failed`
/// move (re-checked by the UPDATE), so a row that was sent or is in flight is never touched;
/// rows whose phone is on the tenant's opt-out list stay failed. Each keeps its WhatsApp
/// message id (a failed row never reached WhatsApp; should it have, WhatsApp keeps one message
/// per id), and its attempts start again from zero. Returns how many moved.
pub async fn retry_failed_on(
    conn: Conn<'_>,
    tenant_id: i64,
    campaign_id: i64,
    device_id: Option<i64>,
) -> Result<usize, DbError> {
    let mut retried = 0;
    on_conn!(conn, |conn| {
        let mut failed = outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::status.eq(OutboxStatus::Failed.as_str()))
            .select((outbox::id, outbox::phone))
            .into_boxed();
        if let Some(device) = device_id {
            failed = failed.filter(outbox::device_id.eq(device));
        }
        let rows: Vec<(i64, String)> = failed.load(conn).await?;
        for chunk in rows.chunks(CHUNK) {
            let phones: Vec<&str> = chunk.iter().map(|(_, phone)| phone.as_str()).collect();
            let opted: std::collections::HashSet<String> = opt_outs::table
                .filter(opt_outs::tenant_id.eq(tenant_id))
                .filter(opt_outs::phone.eq_any(phones))
                .select(opt_outs::phone)
                .load::<String>(conn)
                .await?
                .into_iter()
                .collect();
            let ids: Vec<i64> = chunk
                .iter()
                .filter(|(_, phone)| !opted.contains(phone))
                .map(|(id, _)| *id)
                .collect();
            retried += diesel::update(
                outbox::table
                    .filter(outbox::id.eq_any(&ids))
                    .filter(outbox::status.eq(OutboxStatus::Failed.as_str())),
            )
            .set((
                outbox::status.eq(OutboxStatus::Pending.as_str()),
                outbox::attempts.eq(0i64),
                outbox::lease_until.eq(None::<chrono::NaiveDateTime>),
                outbox::error.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
        }
    });
    Ok(retried)
}

/// Of a campaign's pending rows, (lead, device) for those with both: the leads an AI
/// distribution claims for their devices.
pub async fn pending_lead_devices(db: &Db, campaign_id: i64) -> Result<Vec<(i64, i64)>, DbError> {
    let rows: Vec<(Option<i64>, Option<i64>)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::status.eq(OutboxStatus::Pending.as_str()))
            .select((outbox::lead_id, outbox::device_id))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(lead, device)| Some((lead?, device?)))
        .collect())
}

/// Skips a campaign's pending rows for `lead_ids`, noting `reason`. Returns how many.
pub async fn skip_pending_leads(
    db: &Db,
    campaign_id: i64,
    lead_ids: &[i64],
    reason: &str,
) -> Result<usize, DbError> {
    let mut skipped = 0;
    for chunk in lead_ids.chunks(CHUNK) {
        skipped += db_run!(db, |conn| {
            diesel::update(
                outbox::table
                    .filter(outbox::campaign_id.eq(campaign_id))
                    .filter(outbox::lead_id.eq_any(chunk))
                    .filter(outbox::status.eq(OutboxStatus::Pending.as_str())),
            )
            .set((
                outbox::status.eq(OutboxStatus::Skipped.as_str()),
                outbox::error.eq(reason),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
    }
    Ok(skipped)
}

/// A row's (lead, device, state, error).
pub type LeadState<S = OutboxStatus> = (Option<i64>, Option<i64>, S, Option<String>);

/// [`LeadState`] of every row of a campaign: who each lead's message goes through (AI
/// distribution).
pub async fn lead_states(db: &Db, campaign_id: i64) -> Result<Vec<LeadState>, DbError> {
    let rows: Vec<LeadState<String>> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .select((
                outbox::lead_id,
                outbox::device_id,
                outbox::status,
                outbox::error,
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    // The table's CHECK constraint allows no other name.
    Ok(rows
        .into_iter()
        .filter_map(|(lead, device, status, error)| {
            Some((lead, device, OutboxStatus::parse(&status)?, error))
        })
        .collect())
}

/// Skips a sequence step's queued (still pending) row for a lead, noting `reason`; true when
/// it was.
pub async fn skip_step_row(
    db: &Db,
    campaign_id: i64,
    lead_id: i64,
    step: i64,
    reason: &str,
) -> Result<bool, DbError> {
    let changed = db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::campaign_id.eq(campaign_id))
                .filter(outbox::lead_id.eq(lead_id))
                .filter(outbox::step.eq(step))
                .filter(outbox::status.eq(OutboxStatus::Pending.as_str())),
        )
        .set((
            outbox::status.eq(OutboxStatus::Skipped.as_str()),
            outbox::error.eq(reason),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// Moves the rows a batch of receipts acknowledges forward, never backwards (see
/// [`OutboxStatus::receipt_moves_from`]), in ONE transaction: `delivered_at` is stamped once,
/// `read_at` with a read receipt. Returns the rows moved.
pub async fn apply_receipts(db: &Db, receipts: &[Receipt]) -> Result<usize, DbError> {
    // `delivered` before `read`, as they happen: one statement each for every device. No
    // other status moves a row.
    let named: Vec<(OutboxStatus, Pairs)> = [OutboxStatus::Delivered, OutboxStatus::Read]
        .into_iter()
        .filter_map(|status| {
            let mut pairs = Pairs::default();
            for receipt in receipts.iter().filter(|r| r.status == status) {
                pairs.extend(receipt.device_id, receipt.wa_ids.iter().cloned());
            }
            (!pairs.is_empty()).then_some((status, pairs))
        })
        .collect();
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let now = chrono::Utc::now().naive_utc();
            let mut moved = 0;
            for (status, pairs) in &named {
                moved += move_named(Conn::from(&mut *conn), pairs, *status, now).await?;
            }
            Ok(moved)
        })
        .await
    })
}

/// The statement moving rows by receipt, the same on either backend but for its parameters:
/// the pairs' `source` first, then the status, the test of the statuses it moves from, the time
/// and `read_at`. A receipt can beat the sender's own record (it then finds the row no longer
/// `sending`): the send happened by now, and pacing and caps count it by `sent_at`.
fn receipt_statement(source: &str, [to, from_any, now, read_at]: [&str; 4]) -> String {
    format!(
        "UPDATE outbox SET status = {to}, sent_at = coalesce(outbox.sent_at, {now}), \
         delivered_at = coalesce(outbox.delivered_at, {now}), read_at = {read_at} \
         FROM {source} WHERE outbox.device_id = named.device_id \
         AND outbox.message_id = named.wa_id AND {from_any}"
    )
}

/// [`receipt_statement`]'s parameters on PostgreSQL.
const PG_PARAMS: [&str; 4] = ["$3", "outbox.status = ANY($4)", "$5", "$6"];

/// [`receipt_statement`]'s parameters on SQLite.
const SQLITE_PARAMS: [&str; 4] = [
    "?2",
    "outbox.status IN (SELECT value FROM json_each(?3))",
    "?4",
    "?5",
];

/// Moves the rows `pairs` names (by device and message id) that `status` may move from to it.
async fn move_named(
    conn: Conn<'_>,
    pairs: &Pairs,
    status: OutboxStatus,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let from: Vec<&str> = status.receipt_moves_from().to_vec();
    let read_at = (status == OutboxStatus::Read).then_some(now);
    let moved = match conn {
        Conn::Postgres(conn) => {
            let (devices, ids) = pairs.arrays();
            diesel::sql_query(receipt_statement(Pairs::PG_SOURCE, PG_PARAMS))
                .bind::<Array<BigInt>, _>(devices)
                .bind::<Array<Text>, _>(ids)
                .bind::<Text, _>(status.as_str())
                .bind::<Array<Text>, _>(from)
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<Timestamp>, _>(read_at)
                .execute(conn)
                .await?
        }
        Conn::Sqlite(conn) => {
            diesel::sql_query(receipt_statement(Pairs::SQLITE_SOURCE, SQLITE_PARAMS))
                .bind::<Text, _>(pairs.json())
                .bind::<Text, _>(status.as_str())
                .bind::<Text, _>(serde_json::to_string(&from).unwrap_or_default())
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<Timestamp>, _>(read_at)
                .execute(conn)
                .await?
        }
    };
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql::sqlite_plan;

    #[test]
    fn a_receipt_probes_the_message_id_index_once_per_pair_on_sqlite() {
        let plan = sqlite_plan(&receipt_statement(Pairs::SQLITE_SOURCE, SQLITE_PARAMS));
        assert!(
            plan.iter().any(|step| step.contains("(message_id=?)")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("outbox_device_sent_idx") || step.contains("SCAN outbox")),
            "{plan:?}"
        );
    }
}
