//! Sequence, step and enrolment queries, written once for SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::branch::{self, Decision};
use super::model::{
    enrollment_status as es, Enrollment, NewEnrollment, Sequence, SequenceFields, SequenceStatus,
    Step, StepFields,
};
use crate::broadcast::campaign::model::{CampaignKind, OnDeviceLoss, TargetLead};
use crate::broadcast::outbox::model::OutboxRow;
use crate::broadcast::outbox::store::{self as outbox_store, RowState};
use crate::db::schema::{campaigns, leads, sequence_enrollments, sequence_steps, sequences};
use crate::db::{Conn, Db, DbError};
use crate::db_run;

/// The stored values of step `$step` at `$position`.
macro_rules! step_values {
    ($sequence_id:expr, $position:expr, $step:expr, $now:expr) => {
        (
            sequence_steps::sequence_id.eq($sequence_id),
            sequence_steps::position.eq($position),
            sequence_steps::message.eq(&$step.message),
            sequence_steps::delay_minutes.eq($step.delay_minutes),
            sequence_steps::window_start
                .eq($step.window.map(|w| w.start.format("%H:%M").to_string())),
            sequence_steps::window_end.eq($step.window.map(|w| w.end.format("%H:%M").to_string())),
            sequence_steps::updated_at.eq($now),
            sequence_steps::reply_action.eq($step.on_reply.as_ref().map(|r| r.action.as_str())),
            sequence_steps::reply_keyword
                .eq($step.on_reply.as_ref().and_then(|r| r.keyword.as_deref())),
            sequence_steps::reply_sequence_id
                .eq($step.on_reply.as_ref().and_then(|r| r.sequence_id)),
        )
    };
}

/// Creates a sequence with its steps and its carrier campaign, in one transaction.
pub async fn insert_sequence(
    db: &Db,
    tenant_id: i64,
    created_by: Option<i64>,
    fields: &SequenceFields,
    status: SequenceStatus,
    steps: &[StepFields],
) -> Result<Sequence, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let carrier_status = status.carrier_status();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let campaign_id: i64 = diesel::insert_into(campaigns::table)
                .values((
                    campaigns::tenant_id.eq(tenant_id),
                    campaigns::name.eq(format!("sequence: {}", fields.name)),
                    campaigns::status.eq(carrier_status.as_str()),
                    campaigns::message.eq(""),
                    campaigns::target.eq("{}"),
                    campaigns::devices.eq(r#"{"mode":"all_online"}"#),
                    campaigns::pacing.eq("{}"),
                    // A lead hears every step from the same number.
                    campaigns::on_device_loss.eq(OnDeviceLoss::Wait.as_str()),
                    campaigns::kind.eq(CampaignKind::Sequence.as_str()),
                    campaigns::started_at.eq(Some(now)),
                    campaigns::created_by.eq(created_by),
                    campaigns::created_at.eq(now),
                    campaigns::updated_at.eq(now),
                ))
                .returning(campaigns::id)
                .get_result(conn)
                .await?;
            let sequence: Sequence = diesel::insert_into(sequences::table)
                .values((
                    fields,
                    sequences::tenant_id.eq(tenant_id),
                    sequences::campaign_id.eq(campaign_id),
                    sequences::status.eq(status.as_str()),
                    sequences::created_by.eq(created_by),
                    sequences::created_at.eq(now),
                    sequences::updated_at.eq(now),
                ))
                .returning(Sequence::as_returning())
                .get_result(conn)
                .await?;
            for (index, step) in steps.iter().enumerate() {
                diesel::insert_into(sequence_steps::table)
                    .values(step_values!(sequence.id, index as i64 + 1, step, now))
                    .execute(conn)
                    .await?;
            }
            Ok(sequence)
        })
        .await
    })
}

/// Replaces a sequence's fields and steps (matched by position: a step keeps its picture;
/// steps past the new last one are deleted), in one transaction.
pub async fn update_sequence(
    db: &Db,
    tenant_id: i64,
    id: i64,
    fields: &SequenceFields,
    steps: &[StepFields],
) -> Result<Sequence, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let sequence: Sequence = diesel::update(
                sequences::table
                    .find(id)
                    .filter(sequences::tenant_id.eq(tenant_id)),
            )
            .set((fields, sequences::updated_at.eq(now)))
            .returning(Sequence::as_returning())
            .get_result(conn)
            .await?;
            for (index, step) in steps.iter().enumerate() {
                let position = index as i64 + 1;
                let changed = diesel::update(
                    sequence_steps::table
                        .filter(sequence_steps::sequence_id.eq(id))
                        .filter(sequence_steps::position.eq(position)),
                )
                .set(step_values!(id, position, step, now))
                .execute(conn)
                .await?;
                if changed == 0 {
                    diesel::insert_into(sequence_steps::table)
                        .values(step_values!(id, position, step, now))
                        .execute(conn)
                        .await?;
                }
            }
            diesel::delete(
                sequence_steps::table
                    .filter(sequence_steps::sequence_id.eq(id))
                    .filter(sequence_steps::position.gt(steps.len() as i64)),
            )
            .execute(conn)
            .await?;
            Ok(sequence)
        })
        .await
    })
}

/// A tenant's sequence.
pub async fn get_sequence(db: &Db, tenant_id: i64, id: i64) -> Result<Sequence, DbError> {
    db_run!(db, |conn| {
        sequences::table
            .find(id)
            .filter(sequences::tenant_id.eq(tenant_id))
            .select(Sequence::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Which of `ids` are sequences of the tenant.
pub async fn tenant_sequence_ids(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<HashSet<i64>, DbError> {
    Ok(crate::ids_found!(db, ids, i64, |chunk| sequences::table
        .filter(sequences::tenant_id.eq(tenant_id))
        .filter(sequences::id.eq_any(chunk))
        .select(sequences::id)))
}

/// A tenant's sequences, newest first.
pub async fn list_sequences(db: &Db, tenant_id: i64) -> Result<Vec<Sequence>, DbError> {
    db_run!(db, |conn| {
        sequences::table
            .filter(sequences::tenant_id.eq(tenant_id))
            .order(sequences::id.desc())
            .select(Sequence::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Active sequences of every tenant (the engine enrols and advances them).
pub async fn active_sequences(db: &Db) -> Result<Vec<Sequence>, DbError> {
    db_run!(db, |conn| {
        sequences::table
            .filter(sequences::status.eq(SequenceStatus::Active.as_str()))
            .select(Sequence::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Deletes a sequence through its carrier campaign (steps, enrolments and the carrier's outbox
/// rows go with it).
pub async fn delete_sequence(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    let sequence = get_sequence(db, tenant_id, id).await?;
    crate::delete_found!(
        db,
        campaigns::table
            .filter(campaigns::tenant_id.eq(tenant_id))
            .filter(campaigns::id.eq(sequence.campaign_id))
    )
}

/// Sets a sequence's status; answers the sequence as it is now.
pub async fn set_status(
    db: &Db,
    tenant_id: i64,
    id: i64,
    status: SequenceStatus,
) -> Result<Sequence, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(
            sequences::table
                .find(id)
                .filter(sequences::tenant_id.eq(tenant_id)),
        )
        .set((
            sequences::status.eq(status.as_str()),
            sequences::updated_at.eq(now),
        ))
        .returning(Sequence::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Sets or clears the file of step `position` (`attachment`: what it is when not a picture);
/// false when there is no such step.
pub async fn set_step_image(
    db: &Db,
    sequence_id: i64,
    position: i64,
    sha256: Option<&str>,
    attachment: Option<&str>,
) -> Result<bool, DbError> {
    let changed = db_run!(db, |conn| {
        diesel::update(
            sequence_steps::table
                .filter(sequence_steps::sequence_id.eq(sequence_id))
                .filter(sequence_steps::position.eq(position)),
        )
        .set((
            sequence_steps::image_sha256.eq(sha256),
            sequence_steps::attachment.eq(attachment),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// The steps of `sequence_ids`, by sequence, in position order.
pub async fn steps_of(db: &Db, sequence_ids: &[i64]) -> Result<HashMap<i64, Vec<Step>>, DbError> {
    let steps: Vec<Step> = db_run!(db, |conn| {
        sequence_steps::table
            .filter(sequence_steps::sequence_id.eq_any(sequence_ids))
            .order((sequence_steps::sequence_id, sequence_steps::position))
            .select(Step::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut by_sequence: HashMap<i64, Vec<Step>> = HashMap::new();
    for step in steps {
        by_sequence.entry(step.sequence_id).or_default().push(step);
    }
    Ok(by_sequence)
}

/// Every sequence's (id, name, next) of a tenant, for chain checks.
pub async fn chains(db: &Db, tenant_id: i64) -> Result<Vec<(i64, String, Option<i64>)>, DbError> {
    db_run!(db, |conn| {
        sequences::table
            .filter(sequences::tenant_id.eq(tenant_id))
            .select((sequences::id, sequences::name, sequences::next_sequence_id))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Enrolments of `sequence_ids` by (sequence, status).
pub async fn status_counts(
    db: &Db,
    sequence_ids: &[i64],
) -> Result<Vec<(i64, String, i64)>, DbError> {
    db_run!(db, |conn| {
        sequence_enrollments::table
            .filter(sequence_enrollments::sequence_id.eq_any(sequence_ids))
            .group_by((
                sequence_enrollments::sequence_id,
                sequence_enrollments::status,
            ))
            .select((
                sequence_enrollments::sequence_id,
                sequence_enrollments::status,
                diesel::dsl::count_star(),
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Leads of a tenant carrying `tag` changed since `since` and not yet enrolled in `sequence_id`:
/// (lead id, phone, own device).
pub async fn tagged_candidates(
    db: &Db,
    tenant_id: i64,
    sequence_id: i64,
    tag: &str,
    since: NaiveDateTime,
) -> Result<Vec<(i64, String, Option<i64>)>, DbError> {
    let pattern = format!("%,{tag},%");
    let found: Vec<(i64, String, Option<i64>)> = db_run!(db, |conn| {
        leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .filter(leads::updated_at.ge(since))
            .filter(leads::tags.like(&pattern))
            .order(leads::id)
            .select((leads::id, leads::phone, leads::device_id))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    not_enrolled(db, sequence_id, found).await
}

/// Of `candidates` (lead id first), those not enrolled in `sequence_id`.
async fn not_enrolled<T>(
    db: &Db,
    sequence_id: i64,
    candidates: Vec<(i64, String, T)>,
) -> Result<Vec<(i64, String, T)>, DbError> {
    let ids: Vec<i64> = candidates.iter().map(|c| c.0).collect();
    let enrolled: HashSet<i64> =
        crate::ids_found!(db, ids, i64, |chunk| sequence_enrollments::table
            .filter(sequence_enrollments::sequence_id.eq(sequence_id))
            .filter(sequence_enrollments::lead_id.eq_any(chunk))
            .select(sequence_enrollments::lead_id));
    Ok(candidates
        .into_iter()
        .filter(|c| !enrolled.contains(&c.0))
        .collect())
}

/// Leads of a tenant by id: (id, phone, own device); ids of other tenants are left out.
pub async fn leads_by_id(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<Vec<(i64, String, Option<i64>)>, DbError> {
    db_run!(db, |conn| {
        leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .filter(leads::id.eq_any(ids))
            .order(leads::id)
            .select((leads::id, leads::phone, leads::device_id))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Enrols leads in a sequence (a lead already in it is left alone), due at `due`; leads
/// without a device of their own get the one chosen for them. Returns how many were enrolled.
pub async fn enrol(
    db: &Db,
    tenant_id: i64,
    sequence_id: i64,
    rows: &[NewEnrollment],
    due: NaiveDateTime,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let mut enrolled = 0;
            for row in rows {
                let inserted = diesel::insert_into(sequence_enrollments::table)
                    .values((
                        sequence_enrollments::tenant_id.eq(tenant_id),
                        sequence_enrollments::sequence_id.eq(sequence_id),
                        sequence_enrollments::lead_id.eq(row.lead_id),
                        sequence_enrollments::device_id.eq(row.device_id),
                        sequence_enrollments::phone.eq(&row.phone),
                        sequence_enrollments::status.eq(es::WAITING),
                        sequence_enrollments::step.eq(1i64),
                        sequence_enrollments::next_due_at.eq(Some(due)),
                        sequence_enrollments::source.eq(row.source),
                        sequence_enrollments::enrolled_at.eq(now),
                        sequence_enrollments::updated_at.eq(now),
                    ))
                    .on_conflict((
                        sequence_enrollments::sequence_id,
                        sequence_enrollments::lead_id,
                    ))
                    .do_nothing()
                    .execute(conn)
                    .await?;
                if inserted > 0 {
                    if let Some(device) = row.device_id {
                        // The lead now has a device of its own.
                        diesel::update(
                            leads::table
                                .find(row.lead_id)
                                .filter(leads::device_id.is_null()),
                        )
                        .set(leads::device_id.eq(Some(device)))
                        .execute(conn)
                        .await?;
                    }
                }
                enrolled += inserted;
            }
            Ok(enrolled)
        })
        .await
    })
}

/// Waiting enrolments of active sequences whose step is due at `now`, oldest due first.
pub async fn due_enrollments(
    db: &Db,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Enrollment>, DbError> {
    db_run!(db, |conn| {
        sequence_enrollments::table
            .inner_join(sequences::table)
            .filter(sequences::status.eq(SequenceStatus::Active.as_str()))
            .filter(sequence_enrollments::status.eq(es::WAITING))
            .filter(sequence_enrollments::next_due_at.le(now))
            .order((sequence_enrollments::next_due_at, sequence_enrollments::id))
            .limit(limit)
            .select(Enrollment::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A lead's template variables.
pub async fn lead_for_template(db: &Db, lead_id: i64) -> Result<TargetLead, DbError> {
    db_run!(db, |conn| {
        leads::table
            .find(lead_id)
            .select((
                leads::id,
                leads::name,
                leads::phone,
                leads::niche,
                leads::status,
                leads::fields,
            ))
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Queues a waiting enrolment's step: writes its outbox row (once: the (campaign, lead, step)
/// key is unique) and marks the enrolment active, in one transaction. False when the enrolment
/// changed meanwhile (nothing is written then).
pub async fn queue_step(
    db: &Db,
    enrollment: &Enrollment,
    campaign_id: i64,
    row: &OutboxRow,
) -> Result<bool, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let moved = diesel::update(
                sequence_enrollments::table
                    .find(enrollment.id)
                    .filter(sequence_enrollments::status.eq(es::WAITING))
                    .filter(sequence_enrollments::step.eq(enrollment.step)),
            )
            .set((
                sequence_enrollments::status.eq(es::ACTIVE),
                sequence_enrollments::device_id.eq(row.device_id),
                sequence_enrollments::next_due_at.eq(None::<NaiveDateTime>),
                sequence_enrollments::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if moved == 0 {
                return Ok(false);
            }
            outbox_store::insert_rows(
                Conn::from(&mut *conn),
                enrollment.tenant_id,
                campaign_id,
                std::slice::from_ref(row),
                now,
            )
            .await?;
            Ok(true)
        })
        .await
    })
}

/// Ends an enrolment (completed, stopped or failed, with a reason) if it is still as `e` was
/// read (same state and step). True when it changed.
pub async fn end_enrollment(
    db: &Db,
    e: &Enrollment,
    status: &str,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    move_enrollment(db, e, status, e.step, None, reason).await
}

/// Makes an enrolment wait for `step`, due at `due`, if it is still as `e` was read. True when
/// it changed.
pub async fn schedule_step(
    db: &Db,
    e: &Enrollment,
    step: i64,
    due: NaiveDateTime,
) -> Result<bool, DbError> {
    move_enrollment(db, e, es::WAITING, step, Some(due), None).await
}

/// Moves an enrolment still in `e`'s state and step to `status` at `step`.
async fn move_enrollment(
    db: &Db,
    e: &Enrollment,
    status: &str,
    step: i64,
    next_due_at: Option<NaiveDateTime>,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let changed = db_run!(db, |conn| {
        diesel::update(
            sequence_enrollments::table
                .find(e.id)
                .filter(sequence_enrollments::status.eq(&e.status))
                .filter(sequence_enrollments::step.eq(e.step)),
        )
        .set((
            sequence_enrollments::status.eq(status),
            sequence_enrollments::step.eq(step),
            sequence_enrollments::next_due_at.eq(next_due_at),
            sequence_enrollments::reason.eq(reason),
            sequence_enrollments::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// Active enrolments whose step's outbox row has moved on (sent, delivered, read, failed or
/// skipped) or is gone (`None`), oldest first, with the row's state and error. Enrolments still
/// waiting for their message to go out are not read, so however many wait, the ones that moved
/// are seen.
pub async fn active_with_rows(
    db: &Db,
    limit: i64,
) -> Result<Vec<(Enrollment, Option<RowState>)>, DbError> {
    let moved = outbox_store::enrollments_with_moved_rows(db, es::ACTIVE, limit).await?;
    let ids: Vec<i64> = moved.iter().map(|(id, _, _)| *id).collect();
    let found: Vec<Enrollment> = db_run!(db, |conn| {
        sequence_enrollments::table
            .filter(sequence_enrollments::id.eq_any(&ids))
            .filter(sequence_enrollments::status.eq(es::ACTIVE))
            .select(Enrollment::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut by_id: HashMap<i64, Enrollment> = found.into_iter().map(|e| (e.id, e)).collect();
    // One no longer active at that step (it moved on between the reads) waits for a later round.
    let current = |(id, step, row)| Some((by_id.remove(&id).filter(|e| e.step == step)?, row));
    Ok(moved.into_iter().filter_map(current).collect())
}

/// A lead's live messages to a device in one commit: its phone and their texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// E.164 digits.
    pub phone: String,
    /// Each message's text or caption (empty for one without).
    pub texts: Vec<String>,
}

/// Records replies to `device_id`: the first reply is noted on each open enrolment of the
/// sender; then the rule of the last step the lead was sent decides ([`branch::decide`]): the
/// enrolment goes on, stops (its queued message skipped), or jumps (stops, and the lead is
/// enrolled in the target sequence, in the same transaction, due now). A jump whose target is
/// gone or is this sequence counts as no rule. Returns the enrolments ended, with what ended
/// them (`Stop` or `Jump`).
pub async fn record_replies(
    db: &Db,
    tenant_id: i64,
    device_id: i64,
    replies: &[Reply],
) -> Result<Vec<(Enrollment, Decision)>, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let phones: Vec<String> = replies.iter().map(|r| r.phone.clone()).collect();
    let open: Vec<(Enrollment, bool, i64)> = db_run!(db, |conn| {
        sequence_enrollments::table
            .inner_join(sequences::table)
            .filter(sequence_enrollments::tenant_id.eq(tenant_id))
            .filter(sequence_enrollments::device_id.eq(device_id))
            .filter(sequence_enrollments::phone.eq_any(&phones))
            .filter(sequence_enrollments::status.eq_any(es::OPEN))
            .select((
                Enrollment::as_select(),
                sequences::stop_on_reply,
                sequences::campaign_id,
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let sequence_ids: Vec<i64> = open.iter().map(|(e, _, _)| e.sequence_id).collect();
    let steps = steps_of(db, &sequence_ids).await?;
    let mut ended = Vec::new();
    for (enrollment, stop_on_reply, campaign_id) in open {
        let texts = replies
            .iter()
            .find(|r| r.phone == enrollment.phone)
            .map_or(&[][..], |r| r.texts.as_slice());
        // The last step the lead was sent: a queued one once WhatsApp accepted it.
        let queued_sent = enrollment.status == es::ACTIVE
            && outbox_store::step_row_state(db, campaign_id, enrollment.lead_id, enrollment.step)
                .await?
                .is_some_and(|state| state.accepted());
        let last_sent = if queued_sent {
            enrollment.step
        } else {
            enrollment.step - 1
        };
        let rule = steps
            .get(&enrollment.sequence_id)
            .and_then(|steps| steps.iter().find(|s| s.position == last_sent))
            .and_then(Step::on_reply);
        let mut decision = branch::decide(rule.as_ref(), stop_on_reply, texts);
        if let Decision::Jump(target) = decision {
            let usable = target != enrollment.sequence_id
                && match get_sequence(db, tenant_id, target).await {
                    Ok(_) => true,
                    Err(DbError::NotFound) => false,
                    Err(err) => return Err(err),
                };
            if !usable {
                decision = branch::decide(None, stop_on_reply, texts);
            }
        }
        let ends = decision != Decision::Continue;
        let queued_skipped = if ends && enrollment.status == es::ACTIVE {
            outbox_store::skip_step_row(
                db,
                campaign_id,
                enrollment.lead_id,
                enrollment.step,
                "the lead replied",
            )
            .await?
        } else {
            false
        };
        // The last step the lead had: the one queued, unless it was just held back.
        let after = if enrollment.status == es::ACTIVE && !queued_skipped {
            enrollment.step
        } else {
            enrollment.step - 1
        };
        let changed = match decision {
            Decision::Continue => noted_reply(db, &enrollment, now, after).await?,
            Decision::Stop => {
                stop_replied(db, &enrollment, now, after, &decision.reason(), None).await?
            }
            Decision::Jump(target) => {
                stop_replied(
                    db,
                    &enrollment,
                    now,
                    after,
                    &decision.reason(),
                    Some(target),
                )
                .await?
            }
        };
        if ends && changed {
            ended.push((enrollment, decision));
        }
    }
    Ok(ended)
}

/// Notes a reply on an open enrolment that goes on (the first reply only). True when noted.
async fn noted_reply(
    db: &Db,
    enrollment: &Enrollment,
    now: NaiveDateTime,
    after: i64,
) -> Result<bool, DbError> {
    let changed = db_run!(db, |conn| {
        diesel::update(
            sequence_enrollments::table
                .find(enrollment.id)
                .filter(sequence_enrollments::status.eq_any(es::OPEN))
                .filter(sequence_enrollments::replied_at.is_null()),
        )
        .set((
            sequence_enrollments::replied_at.eq(now),
            sequence_enrollments::replied_after_step.eq(after),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// Stops an open enrolment the lead replied to, noting `reason`; with `jump_to`, enrols the
/// lead in that sequence (due now, from the same device) in the same transaction, so a crash
/// cannot stop one without starting the other. True when it stopped here.
async fn stop_replied(
    db: &Db,
    enrollment: &Enrollment,
    now: NaiveDateTime,
    after: i64,
    reason: &str,
    jump_to: Option<i64>,
) -> Result<bool, DbError> {
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let changed = diesel::update(
                sequence_enrollments::table
                    .find(enrollment.id)
                    .filter(sequence_enrollments::status.eq_any(es::OPEN)),
            )
            .set((
                sequence_enrollments::status.eq(es::STOPPED),
                sequence_enrollments::reason.eq(Some(reason)),
                sequence_enrollments::next_due_at.eq(None::<NaiveDateTime>),
                sequence_enrollments::replied_at.eq(enrollment.replied_at.unwrap_or(now)),
                sequence_enrollments::replied_after_step
                    .eq(enrollment.replied_after_step.unwrap_or(after)),
                sequence_enrollments::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(target) = jump_to {
                // A lead already in the target (it was there before) is left alone.
                diesel::insert_into(sequence_enrollments::table)
                    .values((
                        sequence_enrollments::tenant_id.eq(enrollment.tenant_id),
                        sequence_enrollments::sequence_id.eq(target),
                        sequence_enrollments::lead_id.eq(enrollment.lead_id),
                        sequence_enrollments::device_id.eq(enrollment.device_id),
                        sequence_enrollments::phone.eq(&enrollment.phone),
                        sequence_enrollments::status.eq(es::WAITING),
                        sequence_enrollments::step.eq(1i64),
                        sequence_enrollments::next_due_at.eq(Some(now)),
                        sequence_enrollments::source.eq(JUMP_SOURCE),
                        sequence_enrollments::enrolled_at.eq(now),
                        sequence_enrollments::updated_at.eq(now),
                    ))
                    .on_conflict((
                        sequence_enrollments::sequence_id,
                        sequence_enrollments::lead_id,
                    ))
                    .do_nothing()
                    .execute(conn)
                    .await?;
            }
            Ok(true)
        })
        .await
    })
}

/// How a lead moved by a reply's jump came into its new sequence.
pub const JUMP_SOURCE: &str = "jump";

/// Stops every open enrolment of a phone in a tenant (opt-out) or of one enrolment (a user),
/// noting `reason`; queued messages of stopped enrolments are skipped. Returns how many stopped.
pub async fn stop_open(
    db: &Db,
    tenant_id: i64,
    phone: Option<&str>,
    enrollment_id: Option<i64>,
    reason: &str,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let open: Vec<(Enrollment, i64)> = db_run!(db, |conn| {
        let mut query = sequence_enrollments::table
            .inner_join(sequences::table)
            .filter(sequence_enrollments::tenant_id.eq(tenant_id))
            .filter(sequence_enrollments::status.eq_any(es::OPEN))
            .select((Enrollment::as_select(), sequences::campaign_id))
            .into_boxed();
        if let Some(phone) = phone {
            query = query.filter(sequence_enrollments::phone.eq(phone));
        }
        if let Some(id) = enrollment_id {
            query = query.filter(sequence_enrollments::id.eq(id));
        }
        query.load(conn).await.map_err(DbError::from)
    })?;
    let mut ids = Vec::with_capacity(open.len());
    for (enrollment, campaign_id) in open {
        if enrollment.status == es::ACTIVE {
            outbox_store::skip_step_row(
                db,
                campaign_id,
                enrollment.lead_id,
                enrollment.step,
                reason,
            )
            .await?;
        }
        ids.push(enrollment.id);
    }
    let mut stopped = 0;
    // Bounded IN lists: both backends cap bind parameters.
    for chunk in ids.chunks(1000) {
        stopped += db_run!(db, |conn| {
            diesel::update(
                sequence_enrollments::table
                    .filter(sequence_enrollments::id.eq_any(chunk))
                    .filter(sequence_enrollments::status.eq_any(es::OPEN)),
            )
            .set((
                sequence_enrollments::status.eq(es::STOPPED),
                sequence_enrollments::reason.eq(Some(reason)),
                sequence_enrollments::next_due_at.eq(None::<NaiveDateTime>),
                sequence_enrollments::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
    }
    Ok(stopped)
}

/// An enrolment as listed, with its lead's name.
pub type EnrollmentRow = (Enrollment, String);

/// One of a sequence's enrolments, with its lead's name; `None` when the sequence has no such
/// enrolment.
pub async fn get_enrollment(
    db: &Db,
    sequence_id: i64,
    enrollment_id: i64,
) -> Result<Option<EnrollmentRow>, DbError> {
    db_run!(db, |conn| {
        sequence_enrollments::table
            .inner_join(leads::table)
            .filter(sequence_enrollments::sequence_id.eq(sequence_id))
            .filter(sequence_enrollments::id.eq(enrollment_id))
            .select((Enrollment::as_select(), leads::name))
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// A page of a sequence's enrolments in id order after `after`, optionally of one status.
pub async fn enrollments_page(
    db: &Db,
    sequence_id: i64,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<EnrollmentRow>, DbError> {
    db_run!(db, |conn| {
        let mut query = sequence_enrollments::table
            .inner_join(leads::table)
            .filter(sequence_enrollments::sequence_id.eq(sequence_id))
            .filter(sequence_enrollments::id.gt(after))
            .order(sequence_enrollments::id)
            .limit(limit)
            .select((Enrollment::as_select(), leads::name))
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(sequence_enrollments::status.eq(status));
        }
        query.load(conn).await.map_err(DbError::from)
    })
}

/// A sequence's enrolments by (device, status, step, replied-after step).
pub async fn enrollment_counts(
    db: &Db,
    sequence_id: i64,
) -> Result<Vec<(Option<i64>, String, i64, Option<i64>, i64)>, DbError> {
    db_run!(db, |conn| {
        sequence_enrollments::table
            .filter(sequence_enrollments::sequence_id.eq(sequence_id))
            .group_by((
                sequence_enrollments::device_id,
                sequence_enrollments::status,
                sequence_enrollments::step,
                sequence_enrollments::replied_after_step,
            ))
            .select((
                sequence_enrollments::device_id,
                sequence_enrollments::status,
                sequence_enrollments::step,
                sequence_enrollments::replied_after_step,
                diesel::dsl::count_star(),
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}
