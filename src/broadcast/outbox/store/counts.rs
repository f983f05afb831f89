//! What the outbox says: a campaign's counts and send rate, each device's recent sends and
//! failures, pages of rows, and how far sequence steps got. States are read back as
//! [`OutboxStatus`]; the table's CHECK constraint allows no other name, so none is dropped.
//! Counts include the rows retention deleted ([`super::retire`] keeps their tallies).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::broadcast::outbox::model::{OutboxEntry, OutboxStatus};
use crate::db::schema::{outbox, sequence_enrollments, sequences};
use crate::db::{Db, DbError};
use crate::db_run;

/// Per device: (failed, all) of its outbox rows created since `since` (device health).
pub async fn device_outcomes_since(
    db: &Db,
    device_ids: &[i64],
    since: NaiveDateTime,
) -> Result<std::collections::HashMap<i64, (i64, i64)>, DbError> {
    let rows: Vec<(Option<i64>, String, i64)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::device_id.eq_any(device_ids))
            .filter(outbox::created_at.ge(since))
            .group_by((outbox::device_id, outbox::status))
            .select((outbox::device_id, outbox::status, diesel::dsl::count_star()))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut outcomes = std::collections::HashMap::new();
    for (device, status, n) in rows {
        let Some(device) = device else { continue };
        let entry = outcomes.entry(device).or_insert((0, 0));
        if status == OutboxStatus::Failed.as_str() {
            entry.0 += n;
        }
        entry.1 += n;
    }
    Ok(outcomes)
}

/// Row counts of a campaign by (device, state), deleted rows' tallies included (a pair may
/// appear twice; callers add them up).
pub async fn counts(
    db: &Db,
    campaign_id: i64,
) -> Result<Vec<(Option<i64>, OutboxStatus, i64)>, DbError> {
    let rows: Vec<(Option<i64>, String, i64)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .group_by((outbox::device_id, outbox::status))
            .select((outbox::device_id, outbox::status, diesel::dsl::count_star()))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut counts: Vec<(Option<i64>, OutboxStatus, i64)> = rows
        .into_iter()
        .filter_map(|(device, status, n)| Some((device, OutboxStatus::parse(&status)?, n)))
        .collect();
    counts.extend(
        super::retire::tallies(db, campaign_id)
            .await?
            .into_iter()
            .map(|(device, _, status, n)| (device, status, n)),
    );
    Ok(counts)
}

/// Rows of a campaign sent since `since` (for the send rate).
pub async fn sent_since(db: &Db, campaign_id: i64, since: NaiveDateTime) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::sent_at.ge(since))
            .count()
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// When a device sent its outbox messages since `since`, oldest first (seeds the Throttle's
/// caps after a restart).
pub async fn device_sends_since(
    db: &Db,
    device_id: i64,
    since: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, DbError> {
    let times: Vec<Option<NaiveDateTime>> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::device_id.eq(device_id))
            .filter(outbox::sent_at.ge(since))
            .order(outbox::sent_at)
            .select(outbox::sent_at)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(times.into_iter().flatten().collect())
}

/// Rows of `device_id` claimed by a sender and not finished (`sending`), of every campaign.
pub async fn device_claimed(db: &Db, device_id: i64) -> Result<usize, DbError> {
    let claimed: i64 = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::device_id.eq(device_id))
            .filter(outbox::status.eq(OutboxStatus::Sending.as_str()))
            .count()
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(usize::try_from(claimed).unwrap_or_default())
}

/// How many outbox messages each of `device_ids` sent since `since` (devices that sent none
/// are absent), in one grouped query.
pub async fn sends_by_device_since(
    db: &Db,
    device_ids: &[i64],
    since: NaiveDateTime,
) -> Result<std::collections::HashMap<i64, u64>, DbError> {
    let rows: Vec<(Option<i64>, i64)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::device_id.eq_any(device_ids))
            .filter(outbox::sent_at.ge(since))
            .group_by(outbox::device_id)
            .select((outbox::device_id, diesel::dsl::count_star()))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(device, n)| Some((device?, n.max(0) as u64)))
        .collect())
}

/// A campaign's outbox rows in id order, after `after_id` (results and tests).
pub async fn outbox_page(
    db: &Db,
    campaign_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<OutboxEntry>, DbError> {
    db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::id.gt(after_id))
            .order(outbox::id)
            .limit(limit)
            .select(OutboxEntry::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A sequence carrier's rows by (device, step, state), deleted rows' tallies included (a
/// triple may appear twice; callers add them up).
pub async fn step_row_counts(
    db: &Db,
    campaign_id: i64,
) -> Result<Vec<(Option<i64>, i64, OutboxStatus, i64)>, DbError> {
    let rows: Vec<(Option<i64>, i64, String, i64)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .group_by((outbox::device_id, outbox::step, outbox::status))
            .select((
                outbox::device_id,
                outbox::step,
                outbox::status,
                diesel::dsl::count_star(),
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut counts: Vec<(Option<i64>, i64, OutboxStatus, i64)> = rows
        .into_iter()
        .filter_map(|(device, step, status, n)| {
            Some((device, step, OutboxStatus::parse(&status)?, n))
        })
        .collect();
    counts.extend(super::retire::tallies(db, campaign_id).await?);
    Ok(counts)
}

/// The state of a sequence step's row for a lead, if it was written.
pub async fn step_row_state(
    db: &Db,
    campaign_id: i64,
    lead_id: i64,
    step: i64,
) -> Result<Option<OutboxStatus>, DbError> {
    let status: Option<String> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::lead_id.eq(lead_id))
            .filter(outbox::step.eq(step))
            .select(outbox::status)
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })?;
    Ok(status.as_deref().and_then(OutboxStatus::parse))
}

/// A row's state and error.
pub type RowState<S = OutboxStatus> = (S, Option<String>);

/// Active sequence enrolments whose step's row has moved on (sent, delivered, read, failed or
/// skipped) or is gone (`None`), oldest first: (enrolment id, its step, the row's state and
/// error).
/// Enrolments whose message still waits to go out are not read, so however many wait, the ones
/// that moved are seen.
pub async fn enrollments_with_moved_rows(
    db: &Db,
    active: &str,
    limit: i64,
) -> Result<Vec<(i64, i64, Option<RowState>)>, DbError> {
    let moved: Vec<&str> = OutboxStatus::ALL
        .into_iter()
        .filter(|s| !s.unsent())
        .map(OutboxStatus::as_str)
        .collect();
    let rows: Vec<(i64, i64, Option<RowState<String>>)> = db_run!(db, |conn| {
        sequence_enrollments::table
            .inner_join(sequences::table)
            .left_join(
                outbox::table.on(outbox::campaign_id
                    .eq(sequences::campaign_id)
                    .and(outbox::lead_id.eq(sequence_enrollments::lead_id.nullable()))
                    .and(outbox::step.eq(sequence_enrollments::step))),
            )
            .filter(sequence_enrollments::status.eq(active))
            .filter(
                outbox::id
                    .nullable()
                    .is_null()
                    .or(outbox::status.nullable().eq_any(&moved)),
            )
            .order((sequence_enrollments::updated_at, sequence_enrollments::id))
            .limit(limit)
            .select((
                sequence_enrollments::id,
                sequence_enrollments::step,
                (outbox::status, outbox::error).nullable(),
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, step, row)| {
            let row = row.and_then(|(status, error)| Some((OutboxStatus::parse(&status)?, error)));
            (id, step, row)
        })
        .collect())
}

/// A device's latest failed rows, newest first: (phone, error, when the row was written).
pub async fn recent_failures(
    db: &Db,
    device_id: i64,
    limit: i64,
) -> Result<Vec<(String, Option<String>, NaiveDateTime)>, DbError> {
    db_run!(db, |conn| {
        outbox::table
            .filter(outbox::device_id.eq(device_id))
            .filter(outbox::status.eq(OutboxStatus::Failed.as_str()))
            .order(outbox::id.desc())
            .limit(limit)
            .select((outbox::phone, outbox::error, outbox::created_at))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}
