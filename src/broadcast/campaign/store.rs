//! Campaign and outbox queries, written once for SQLite and PostgreSQL.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::model::{
    outbox_status as st, Campaign, CampaignFields, CampaignKind, CampaignStatus, Claimed,
    TargetLead,
};
use crate::db::schema::{campaigns, leads, outbox};
use crate::db::{Db, DbError};
use crate::db_run;

/// Rows per INSERT when writing a campaign's outbox.
const INSERT_CHUNK: usize = 500;

/// Stores a new campaign.
pub async fn insert_campaign(
    db: &Db,
    tenant_id: i64,
    created_by: Option<i64>,
    fields: &CampaignFields,
    status: CampaignStatus,
    scheduled_at: Option<NaiveDateTime>,
) -> Result<Campaign, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::insert_into(campaigns::table)
            .values((
                fields,
                campaigns::tenant_id.eq(tenant_id),
                campaigns::status.eq(status.as_str()),
                campaigns::scheduled_at.eq(scheduled_at),
                campaigns::created_by.eq(created_by),
                campaigns::created_at.eq(now),
                campaigns::updated_at.eq(now),
            ))
            .returning(Campaign::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A tenant's campaign (sequence carriers are not campaigns to users).
pub async fn get_campaign(db: &Db, tenant_id: i64, id: i64) -> Result<Campaign, DbError> {
    db_run!(db, |conn| {
        campaigns::table
            .find(id)
            .filter(campaigns::tenant_id.eq(tenant_id))
            .filter(campaigns::kind.ne(CampaignKind::Sequence.as_str()))
            .select(Campaign::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A campaign by id alone (for the engine, which serves every tenant).
pub async fn find_campaign(db: &Db, id: i64) -> Result<Campaign, DbError> {
    db_run!(db, |conn| {
        campaigns::table
            .find(id)
            .select(Campaign::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A tenant's campaigns, newest first.
pub async fn list_campaigns(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<Campaign>, DbError> {
    db_run!(db, |conn| {
        campaigns::table
            .filter(campaigns::tenant_id.eq(tenant_id))
            .filter(campaigns::kind.ne(CampaignKind::Sequence.as_str()))
            .order(campaigns::id.desc())
            .limit(limit)
            .select(Campaign::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Campaigns of every tenant in one of `statuses` (the engine resumes and schedules them).
pub async fn campaigns_in(db: &Db, statuses: &[CampaignStatus]) -> Result<Vec<Campaign>, DbError> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    db_run!(db, |conn| {
        campaigns::table
            .filter(campaigns::status.eq_any(&names))
            .order(campaigns::id)
            .select(Campaign::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Changes an editable (draft or scheduled) campaign; `Conflict` once it has started.
pub async fn update_campaign(
    db: &Db,
    tenant_id: i64,
    id: i64,
    fields: &CampaignFields,
) -> Result<Campaign, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let editable = [
        CampaignStatus::Draft.as_str(),
        CampaignStatus::Scheduled.as_str(),
    ];
    let updated = db_run!(db, |conn| {
        diesel::update(
            campaigns::table
                .find(id)
                .filter(campaigns::tenant_id.eq(tenant_id))
                .filter(campaigns::status.eq_any(editable)),
        )
        .set((fields, campaigns::updated_at.eq(now)))
        .returning(Campaign::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(DbError::from)
    })?;
    match updated {
        Some(campaign) => Ok(campaign),
        None => {
            get_campaign(db, tenant_id, id).await?;
            Err(DbError::Conflict("campaign has started".into()))
        }
    }
}

/// Sets a campaign's picture (editable campaigns only).
pub async fn set_image(
    db: &Db,
    tenant_id: i64,
    id: i64,
    sha256: Option<&str>,
) -> Result<(), DbError> {
    let editable = [
        CampaignStatus::Draft.as_str(),
        CampaignStatus::Scheduled.as_str(),
    ];
    let changed = db_run!(db, |conn| {
        diesel::update(
            campaigns::table
                .find(id)
                .filter(campaigns::tenant_id.eq(tenant_id))
                .filter(campaigns::status.eq_any(editable)),
        )
        .set(campaigns::image_sha256.eq(sha256))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    if changed == 0 {
        get_campaign(db, tenant_id, id).await?;
        return Err(DbError::Conflict("campaign has started".into()));
    }
    Ok(())
}

/// Deletes a campaign that is not sending (running or paused campaigns must be cancelled first).
pub async fn delete_campaign(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    let active = [
        CampaignStatus::Running.as_str(),
        CampaignStatus::Paused.as_str(),
    ];
    let deleted = db_run!(db, |conn| {
        diesel::delete(
            campaigns::table
                .find(id)
                .filter(campaigns::tenant_id.eq(tenant_id))
                .filter(campaigns::status.ne_all(active)),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    if deleted == 0 {
        get_campaign(db, tenant_id, id).await?;
        return Err(DbError::Conflict(
            "cancel the campaign before deleting it".into(),
        ));
    }
    Ok(())
}

/// Moves a campaign from one of `from` to `to` (stamping start and finish times and setting
/// `scheduled_at` when given). Returns false when it was in none of `from`.
pub async fn transition(
    db: &Db,
    id: i64,
    from: &[CampaignStatus],
    to: CampaignStatus,
    scheduled_at: Option<NaiveDateTime>,
) -> Result<bool, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let finished = matches!(to, CampaignStatus::Completed | CampaignStatus::Cancelled);
    db_run!(db, |conn| {
        let target = campaigns::table
            .find(id)
            .filter(campaigns::status.eq_any(&from));
        let changed = diesel::update(target)
            .set((
                campaigns::status.eq(to.as_str()),
                campaigns::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        if to == CampaignStatus::Running {
            diesel::update(
                campaigns::table
                    .find(id)
                    .filter(campaigns::started_at.is_null()),
            )
            .set(campaigns::started_at.eq(now))
            .execute(conn)
            .await?;
        }
        if finished {
            diesel::update(campaigns::table.find(id))
                .set(campaigns::finished_at.eq(now))
                .execute(conn)
                .await?;
        }
        if let Some(at) = scheduled_at {
            diesel::update(campaigns::table.find(id))
                .set(campaigns::scheduled_at.eq(at))
                .execute(conn)
                .await?;
        }
        Ok::<_, DbError>(true)
    })
}

/// A page of the tenant's leads in any of `list_ids` (all lists when empty) and any of
/// `statuses` (all when empty), only those without a device when `pool_only`: up to `limit`
/// leads with ids after `after_id`, in id order (keyset paging), each with its tags. Tags and
/// niches are filtered by the caller.
pub async fn target_leads(
    db: &Db,
    tenant_id: i64,
    list_ids: &[i64],
    statuses: &[String],
    pool_only: bool,
    after_id: i64,
    limit: i64,
) -> Result<Vec<(TargetLead, String)>, DbError> {
    db_run!(db, |conn| {
        let mut query = leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .filter(leads::id.gt(after_id))
            .order(leads::id)
            .limit(limit)
            .select((
                (
                    leads::id,
                    leads::name,
                    leads::phone,
                    leads::niche,
                    leads::status,
                    leads::fields,
                ),
                leads::tags,
            ))
            .into_boxed();
        if !list_ids.is_empty() {
            query = query.filter(leads::list_id.eq_any(list_ids));
        }
        if !statuses.is_empty() {
            query = query.filter(leads::status.eq_any(statuses));
        }
        if pool_only {
            query = query.filter(leads::device_id.is_null());
        }
        query.load(conn).await.map_err(DbError::from)
    })
}

/// One message to write to the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The lead.
    pub lead_id: i64,
    /// Assigned device, if any.
    pub device_id: Option<i64>,
    /// E.164 digits.
    pub phone: String,
    /// Rendered text.
    pub body: String,
    /// Pre-generated WhatsApp message id.
    pub message_id: String,
    /// `pending`, or `skipped` for an opted-out lead.
    pub status: &'static str,
    /// Why it was skipped.
    pub error: Option<String>,
    /// The sequence step it carries (0 for a campaign's message).
    pub step: i64,
    /// Its own picture (a sequence step's).
    pub image_sha256: Option<String>,
}

/// The column values of one new outbox row (`row`: an [`OutboxRow`]) for an INSERT; shared by
/// campaigns writing their rows at start and sequences queueing one step.
macro_rules! outbox_values {
    ($tenant_id:expr, $campaign_id:expr, $row:expr, $now:expr) => {
        (
            outbox::tenant_id.eq($tenant_id),
            outbox::campaign_id.eq($campaign_id),
            outbox::lead_id.eq(Some($row.lead_id)),
            outbox::device_id.eq($row.device_id),
            outbox::phone.eq(&$row.phone),
            outbox::body.eq(&$row.body),
            outbox::message_id.eq(&$row.message_id),
            outbox::status.eq($row.status),
            outbox::attempts.eq(0i64),
            outbox::error.eq($row.error.as_deref()),
            outbox::created_at.eq($now),
            outbox::step.eq($row.step),
            outbox::image_sha256.eq($row.image_sha256.as_deref()),
        )
    };
}
pub(crate) use outbox_values;

/// Produces a campaign's outbox rows a chunk at a time, so a start never holds every row.
pub trait RowSource: Send {
    /// The next chunk of rows (`None` when there are no more).
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<OutboxRow>>, DbError>> + Send;
}

/// Chunks already in memory (a test's rows, a single chunk).
impl<I: Iterator<Item = Vec<OutboxRow>> + Send> RowSource for I {
    async fn next_chunk(&mut self) -> Result<Option<Vec<OutboxRow>>, DbError> {
        Ok(self.next())
    }
}

/// Writes a campaign's outbox from `rows`, chunk by chunk, in ONE transaction: all of it or,
/// when anything fails (a chunk's source included), none of it. A (campaign, lead) pair already
/// present is left alone, so writing twice (a crash after the write) never doubles a message.
/// Returns the rows written.
///
/// The source reads (leads, opt-outs) on other pooled connections while this one holds the
/// transaction; its first statement is an INSERT, so SQLite takes its write lock at once.
pub async fn write_outbox(
    db: &Db,
    tenant_id: i64,
    campaign_id: i64,
    rows: &mut impl RowSource,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            // SQLite cannot batch rows with NULLs in one INSERT; one transaction keeps it fast.
            conn.transaction::<_, DbError, _>(async |conn| {
                let mut written = 0;
                while let Some(chunk) = rows.next_chunk().await? {
                    for row in &chunk {
                        written += diesel::insert_into(outbox::table)
                            .values(outbox_values!(tenant_id, campaign_id, row, now))
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(written)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            conn.transaction::<_, DbError, _>(async |conn| {
                let mut written = 0;
                while let Some(chunk) = rows.next_chunk().await? {
                    for part in chunk.chunks(INSERT_CHUNK) {
                        let values: Vec<_> = part
                            .iter()
                            .map(|row| outbox_values!(tenant_id, campaign_id, row, now))
                            .collect();
                        written += diesel::insert_into(outbox::table)
                            .values(values)
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(written)
            })
            .await
        }
    }
}

/// Claims up to `limit` of a device's due rows in a campaign: pending ones, and ones left in
/// `sending` by a crashed sender whose lease has passed. Claimed rows are `sending`, leased
/// until `lease_until`, with one more attempt. PostgreSQL skips rows another node has locked;
/// SQLite has a single writer, so the UPDATE is atomic by itself.
pub async fn claim(
    db: &Db,
    campaign_id: i64,
    device_id: i64,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> Result<Vec<Claimed>, DbError> {
    // Due: pending, or left `sending` by a crashed sender whose lease has passed. The UPDATE
    // re-checks it, so a row claimed by someone else in between is not claimed twice.
    macro_rules! due {
        () => {
            outbox::table
                .filter(outbox::campaign_id.eq(campaign_id))
                .filter(outbox::device_id.eq(device_id))
                .filter(
                    outbox::status.eq(st::PENDING).or(outbox::status
                        .eq(st::SENDING)
                        .and(outbox::lease_until.lt(now))),
                )
        };
    }
    macro_rules! claim_ids {
        ($conn:expr, $ids:expr) => {
            diesel::update(due!().filter(outbox::id.eq_any($ids)))
                .set((
                    outbox::status.eq(st::SENDING),
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
                ))
                .load::<Claimed>($conn)
                .await
        };
    }
    let mut claimed: Vec<Claimed> = match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let ids: Vec<i64> = due!()
                .order(outbox::id)
                .limit(limit)
                .select(outbox::id)
                .load(&mut conn)
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            claim_ids!(&mut conn, &ids)?
        }
        Db::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            conn.transaction::<_, DbError, _>(async |conn| {
                let ids: Vec<i64> = due!()
                    .order(outbox::id)
                    .limit(limit)
                    .select(outbox::id)
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
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
pub async fn finish(
    db: &Db,
    ids: &[i64],
    status: &'static str,
    error: Option<&str>,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let sent_at = (status == st::SENT).then_some(now);
    db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(ids))
                .filter(outbox::status.eq(st::SENDING)),
        )
        .set((
            outbox::status.eq(status),
            outbox::lease_until.eq(None::<NaiveDateTime>),
            outbox::sent_at.eq(sent_at),
            outbox::error.eq(error),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Gives a claimed row back (`pending`, no lease) after a failed attempt, noting why.
pub async fn release(db: &Db, id: i64, error: Option<&str>) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .find(id)
                .filter(outbox::status.eq(st::SENDING)),
        )
        .set((
            outbox::status.eq(st::PENDING),
            outbox::lease_until.eq(None::<NaiveDateTime>),
            outbox::error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(DbError::from)
    })
}

/// Skips every unsent row of a campaign (cancel), recording `reason`.
pub async fn skip_unsent(db: &Db, campaign_id: i64, reason: &str) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::campaign_id.eq(campaign_id))
                .filter(outbox::status.eq(st::PENDING)),
        )
        .set((outbox::status.eq(st::SKIPPED), outbox::error.eq(reason)))
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
            .filter(outbox::status.eq(st::PENDING))
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
        for chunk in share.chunks(INSERT_CHUNK) {
            moved += db_run!(db, |conn| {
                diesel::update(
                    outbox::table
                        .filter(outbox::id.eq_any(chunk))
                        .filter(outbox::status.eq(st::PENDING)),
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
            .filter(outbox::status.eq(st::PENDING))
            .into_boxed();
        let rows = match device_id {
            Some(device) => rows.filter(outbox::device_id.eq(device)),
            None => rows.filter(outbox::device_id.is_null()),
        };
        let ids: Vec<i64> = rows.select(outbox::id).load(conn).await?;
        diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(&ids))
                .filter(outbox::status.eq(st::PENDING)),
        )
        .set((outbox::status.eq(st::SKIPPED), outbox::error.eq(reason)))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Makes each lead of an AI distribution belong to the device its message goes through; leads
/// skipped with `left_reason` go back to the pool (no device).
pub async fn sync_lead_devices(
    db: &Db,
    campaign_id: i64,
    left_reason: &str,
) -> Result<(), DbError> {
    // (lead, device, status, error) of every row.
    type Row = (Option<i64>, Option<i64>, String, Option<String>);
    let rows: Vec<Row> = db_run!(db, |conn| {
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
    let mut owners: std::collections::BTreeMap<Option<i64>, Vec<i64>> = Default::default();
    for (lead, device, status, error) in rows {
        let Some(lead) = lead else { continue };
        if status == st::SKIPPED && error.as_deref() == Some(left_reason) {
            owners.entry(None).or_default().push(lead);
        } else if status != st::SKIPPED && status != st::FAILED && device.is_some() {
            owners.entry(device).or_default().push(lead);
        }
    }
    for (device, leads_of) in owners {
        for chunk in leads_of.chunks(INSERT_CHUNK) {
            db_run!(db, |conn| {
                diesel::update(leads::table.filter(leads::id.eq_any(chunk)))
                    .set(leads::device_id.eq(device))
                    .execute(conn)
                    .await
                    .map_err(DbError::from)
            })?;
        }
    }
    Ok(())
}

/// Claims an AI distribution's pool leads: each pending row's lead becomes its device's if it
/// still has no device (or already is that device's, so a restarted start repeats safely). A
/// row whose lead another distribution claimed first is skipped with `taken_reason`, so no lead
/// is written to twice. Answers how many rows were skipped.
pub async fn claim_pool_leads(
    db: &Db,
    campaign_id: i64,
    taken_reason: &str,
) -> Result<usize, DbError> {
    let rows: Vec<(Option<i64>, Option<i64>)> = db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::status.eq(st::PENDING))
            .select((outbox::lead_id, outbox::device_id))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut by_device: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (lead, device) in rows {
        if let (Some(lead), Some(device)) = (lead, device) {
            by_device.entry(device).or_default().push(lead);
        }
    }
    let mut taken: Vec<i64> = Vec::new();
    for (device, leads_of) in by_device {
        for chunk in leads_of.chunks(INSERT_CHUNK) {
            let claimed: HashSet<i64> = db_run!(db, |conn| {
                diesel::update(
                    leads::table
                        .filter(leads::id.eq_any(chunk))
                        .filter(leads::device_id.is_null().or(leads::device_id.eq(device))),
                )
                .set(leads::device_id.eq(device))
                .returning(leads::id)
                .load::<i64>(conn)
                .await
                .map_err(DbError::from)
            })?
            .into_iter()
            .collect();
            taken.extend(chunk.iter().filter(|lead| !claimed.contains(*lead)));
        }
    }
    let mut skipped = 0;
    for chunk in taken.chunks(INSERT_CHUNK) {
        skipped += db_run!(db, |conn| {
            diesel::update(
                outbox::table
                    .filter(outbox::campaign_id.eq(campaign_id))
                    .filter(outbox::lead_id.eq_any(chunk))
                    .filter(outbox::status.eq(st::PENDING)),
            )
            .set((
                outbox::status.eq(st::SKIPPED),
                outbox::error.eq(taken_reason),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
        })?;
    }
    Ok(skipped)
}

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
        if status == st::FAILED {
            entry.0 += n;
        }
        entry.1 += n;
    }
    Ok(outcomes)
}

/// Row counts of a campaign by (device, status).
pub async fn counts(db: &Db, campaign_id: i64) -> Result<Vec<(Option<i64>, String, i64)>, DbError> {
    db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .group_by((outbox::device_id, outbox::status))
            .select((outbox::device_id, outbox::status, diesel::dsl::count_star()))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
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
) -> Result<Vec<super::model::OutboxEntry>, DbError> {
    db_run!(db, |conn| {
        outbox::table
            .filter(outbox::campaign_id.eq(campaign_id))
            .filter(outbox::id.gt(after_id))
            .order(outbox::id)
            .limit(limit)
            .select(super::model::OutboxEntry::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Outbox states a receipt of `status` (`delivered` or `read`) moves forward from; a receipt
/// never moves a row backwards.
pub fn receipt_moves_from(status: &str) -> &'static [&'static str] {
    match status {
        st::DELIVERED => &[st::SENDING, st::SENT],
        st::READ => &[st::SENDING, st::SENT, st::DELIVERED],
        _ => &[],
    }
}
