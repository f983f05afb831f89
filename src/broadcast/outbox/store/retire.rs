//! Retention of the outbox: old rows in a final state are deleted and their counts folded into
//! `outbox_tallies` in the same transaction, so every count read through [`super::counts`]
//! and [`super::step_row_counts`] stays what it was. Rows still to send are never touched.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::broadcast::outbox::model::OutboxStatus;
use crate::db::schema::{campaigns, outbox, outbox_tallies, sequence_enrollments, sequences};
use crate::db::{Db, DbError};
use crate::db_run;

/// `outbox_tallies.device_id` of rows that had no device (device ids start at 1).
pub(super) const NO_DEVICE: i64 = 0;

/// The names of the states a row never leaves (sent rows still move to delivered and read, but
/// never back to sending), the only ones deleted.
fn final_states() -> Vec<&'static str> {
    OutboxStatus::ALL
        .into_iter()
        .filter(|s| !s.unsent())
        .map(OutboxStatus::as_str)
        .collect()
}

/// Deletes up to `limit` final rows of campaigns that finished (completed or cancelled) before
/// `cutoff`. Answers how many went.
pub async fn retire_finished_campaign_rows(
    db: &Db,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let finals = final_states();
    let ids: Vec<i64> = db_run!(db, |conn| {
        outbox::table
            .inner_join(campaigns::table)
            .filter(campaigns::finished_at.lt(cutoff))
            .filter(outbox::status.eq_any(&finals))
            .select(outbox::id)
            .limit(limit)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    retire(db, ids).await
}

/// Deletes up to `limit` final rows of sequence steps that were queued, and sent if they were,
/// before `cutoff` — except a row whose enrolment is still `active` (the status name the caller
/// passes) at that step: the sequence engine has yet to see it move on. Answers how many went.
pub async fn retire_step_rows(
    db: &Db,
    cutoff: NaiveDateTime,
    active: &str,
    limit: i64,
) -> Result<usize, DbError> {
    let finals = final_states();
    let ids: Vec<i64> = db_run!(db, |conn| {
        outbox::table
            .inner_join(sequences::table.on(sequences::campaign_id.eq(outbox::campaign_id)))
            .left_join(
                sequence_enrollments::table.on(sequence_enrollments::sequence_id
                    .eq(sequences::id)
                    .and(outbox::lead_id.eq(sequence_enrollments::lead_id.nullable()))
                    .and(sequence_enrollments::step.eq(outbox::step))
                    .and(sequence_enrollments::status.eq(active))),
            )
            .filter(sequence_enrollments::id.nullable().is_null())
            .filter(outbox::status.eq_any(&finals))
            .filter(outbox::created_at.lt(cutoff))
            .filter(outbox::sent_at.is_null().or(outbox::sent_at.lt(cutoff)))
            .select(outbox::id)
            .limit(limit)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    retire(db, ids).await
}

/// Deletes the rows `ids` that are in a final state and adds them to the tallies, in one
/// transaction that starts with the delete (SQLite takes its write lock first).
async fn retire(db: &Db, ids: Vec<i64>) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let finals = final_states();
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let gone: Vec<(i64, Option<i64>, i64, String)> = diesel::delete(
                outbox::table
                    .filter(outbox::id.eq_any(&ids))
                    .filter(outbox::status.eq_any(&finals)),
            )
            .returning((
                outbox::campaign_id,
                outbox::device_id,
                outbox::step,
                outbox::status,
            ))
            .load(conn)
            .await?;
            let mut tallies: BTreeMap<(i64, i64, i64, &str), i64> = BTreeMap::new();
            for (campaign_id, device_id, step, status) in &gone {
                let key = (
                    *campaign_id,
                    device_id.unwrap_or(NO_DEVICE),
                    *step,
                    status.as_str(),
                );
                *tallies.entry(key).or_default() += 1;
            }
            for ((campaign_id, device_id, step, status), n) in tallies {
                diesel::insert_into(outbox_tallies::table)
                    .values((
                        outbox_tallies::campaign_id.eq(campaign_id),
                        outbox_tallies::device_id.eq(device_id),
                        outbox_tallies::step.eq(step),
                        outbox_tallies::status.eq(status),
                        outbox_tallies::n.eq(n),
                    ))
                    .on_conflict((
                        outbox_tallies::campaign_id,
                        outbox_tallies::device_id,
                        outbox_tallies::step,
                        outbox_tallies::status,
                    ))
                    .do_update()
                    .set(outbox_tallies::n.eq(outbox_tallies::n + excluded(outbox_tallies::n)))
                    .execute(conn)
                    .await?;
            }
            Ok(gone.len())
        })
        .await
    })
}

/// The tallies of a campaign as (device, step, state, count); rows of states no longer known
/// are left out like the live rows' are.
pub(super) async fn tallies(
    db: &Db,
    campaign_id: i64,
) -> Result<Vec<(Option<i64>, i64, OutboxStatus, i64)>, DbError> {
    let rows: Vec<(i64, i64, String, i64)> = db_run!(db, |conn| {
        outbox_tallies::table
            .filter(outbox_tallies::campaign_id.eq(campaign_id))
            .select((
                outbox_tallies::device_id,
                outbox_tallies::step,
                outbox_tallies::status,
                outbox_tallies::n,
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(device, step, status, n)| {
            let device = (device != NO_DEVICE).then_some(device);
            Some((device, step, OutboxStatus::parse(&status)?, n))
        })
        .collect())
}
