//! Rows moved by others than their sender: skipped (cancel, a lost device's share with no
//! room, a lead another distribution took, a step the lead replied to), reassigned to other
//! devices, put back to pending by a user's retry of failed rows, read for their leads (AI
//! distribution), and moved forward by receipts.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{on_conn, Conn, CHUNK};
use crate::broadcast::outbox::model::{OutboxStatus, Receipt};
use crate::db::schema::{opt_outs, outbox};
use crate::db::sql::{one_of, OneOf};
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

diesel::define_sql_function! {
    /// `coalesce(a, b)`: the first that is not NULL.
    fn coalesce(
        a: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
        b: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
}

/// The rows [`receipt_rows`] names.
type ReceiptRows = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            outbox::table,
            diesel::dsl::Eq<diesel::dsl::Add<outbox::device_id, i64>, i64>,
        >,
        OneOf<outbox::message_id, String>,
    >,
    OneOf<outbox::status, String>,
>;

/// A device's rows named by `wa_ids` that are still in a status of `from`. The device's test is
/// an expression (`+ 0`), so SQLite's planner cannot walk `outbox_device_sent_idx` over every
/// row of the device (it did for lists of five ids and more): it probes the ids' unique index.
fn receipt_rows(device_id: i64, wa_ids: Vec<String>, from: Vec<String>) -> ReceiptRows {
    outbox::table
        .filter((outbox::device_id + 0i64).eq(device_id))
        .filter(one_of(outbox::message_id, wa_ids))
        .filter(one_of(outbox::status, from))
}

/// Moves the rows a batch of receipts acknowledges forward, never backwards (see
/// [`OutboxStatus::receipt_moves_from`]), in ONE transaction: `delivered_at` is stamped once,
/// `read_at` with a read receipt. Returns the rows moved.
pub async fn apply_receipts(db: &Db, receipts: &[Receipt]) -> Result<usize, DbError> {
    let receipts = receipts.to_vec();
    // One statement per receipt: on SQLite the batch runs on one blocking thread.
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            apply_receipts_on(Conn::from(&mut *conn), &receipts).await
        })
        .await
    })
}

/// [`apply_receipts`] on a connection inside a transaction.
async fn apply_receipts_on(conn: Conn<'_>, receipts: &[Receipt]) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let mut moved = 0;
    on_conn!(conn, |conn| {
        for receipt in receipts {
            let from = receipt.status.receipt_moves_from();
            if from.is_empty() {
                continue;
            }
            let read_at = (receipt.status == OutboxStatus::Read).then_some(now);
            let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
            moved += diesel::update(receipt_rows(
                receipt.device_id,
                receipt.wa_ids.clone(),
                from,
            ))
            .set((
                outbox::status.eq(receipt.status.as_str()),
                // A receipt can beat the sender's own record (it then finds the row no longer
                // `sending`): the send happened by now, and pacing and caps count it by this.
                outbox::sent_at.eq(coalesce(outbox::sent_at, Some(now))),
                outbox::delivered_at.eq(coalesce(outbox::delivered_at, Some(now))),
                outbox::read_at.eq(read_at),
            ))
            .execute(conn)
            .await?;
        }
    });
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;
    use diesel::sqlite::Sqlite;
    use diesel::{debug_query, Connection, SqliteConnection};
    use secrecy::SecretString;

    use super::*;
    use crate::config::DatabaseSettings;

    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    #[test]
    fn a_receipt_of_many_ids_probes_the_message_id_index_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let settings = DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}", path.display())),
            max_connections: 1,
            acquire_timeout_secs: 1,
            sqlite_busy_timeout_ms: 1000,
            sqlite_cache_mib: 2,
        };
        crate::db::migrate::run_pending(&settings).unwrap();
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let ids: Vec<String> = (0..200).map(|i| format!("3EB0{i:016X}")).collect();
        let from = vec!["sent".to_string(), "delivered".to_string()];
        let update = diesel::update(receipt_rows(7, ids, from)).set(outbox::status.eq("read"));
        let sql = debug_query::<Sqlite, _>(&update).to_string();
        let sql = sql.split(" -- binds").next().unwrap();
        // Parameters left unbound are NULL: the plan does not depend on them.
        let explain = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"));
        let plan: Vec<String> = diesel::RunQueryDsl::load::<Step>(explain, &mut conn)
            .unwrap()
            .into_iter()
            .map(|step| step.detail)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("(message_id=?)")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("outbox_device_sent_idx")),
            "{plan:?}"
        );
    }
}
