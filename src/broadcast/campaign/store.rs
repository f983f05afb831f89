//! Campaign queries, written once for SQLite and PostgreSQL: campaigns, the leads a target
//! selects, and which device each lead of an AI distribution belongs to. Their outbox rows are
//! the outbox's ([`crate::broadcast::outbox::store`]).

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::model::{Campaign, CampaignFields, CampaignKind, CampaignStatus, TargetLead};
use crate::broadcast::outbox::model::OutboxStatus;
use crate::broadcast::outbox::store as outbox_store;
use crate::db::schema::{campaigns, leads};
use crate::db::{Conn, Db, DbError};
use crate::db_run;

/// Leads per `IN` list (both backends cap bind parameters).
const CHUNK: usize = 500;

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

/// Stores a draft copy of `source`: `fields` (its settings, checked again for the caller who
/// copies) and the source's file, created by `created_by`.
pub async fn insert_copy(
    db: &Db,
    source: &Campaign,
    created_by: Option<i64>,
    fields: &CampaignFields,
) -> Result<Campaign, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::insert_into(campaigns::table)
            .values((
                fields,
                campaigns::tenant_id.eq(source.tenant_id),
                campaigns::status.eq(CampaignStatus::Draft.as_str()),
                campaigns::image_sha256.eq(source.image_sha256.as_deref()),
                campaigns::attachment.eq(source.attachment.as_deref()),
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

/// Which of `ids` are campaigns of the tenant (sequence carriers are not).
pub async fn tenant_campaign_ids(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<HashSet<i64>, DbError> {
    Ok(crate::ids_found!(db, ids, i64, |chunk| campaigns::table
        .filter(campaigns::tenant_id.eq(tenant_id))
        .filter(campaigns::kind.ne(CampaignKind::Sequence.as_str()))
        .filter(campaigns::id.eq_any(chunk))
        .select(campaigns::id)))
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
    attachment: Option<&str>,
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
        .set((
            campaigns::image_sha256.eq(sha256),
            campaigns::attachment.eq(attachment),
        ))
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

/// Completes a running campaign, unless its row changed since `seen` (its `updated_at` when
/// the engine found nothing left to send): a retry of failed rows writes the row in the same
/// transaction that puts them back to pending, so a completion decided on older counts cannot
/// close the campaign over them; the engine decides again on fresh counts. Returns whether it
/// completed.
pub async fn complete_unless_changed(
    db: &Db,
    id: i64,
    seen: NaiveDateTime,
) -> Result<bool, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let changed = db_run!(db, |conn| {
        diesel::update(
            campaigns::table
                .find(id)
                .filter(campaigns::status.eq(CampaignStatus::Running.as_str()))
                .filter(campaigns::updated_at.eq(seen)),
        )
        .set((
            campaigns::status.eq(CampaignStatus::Completed.as_str()),
            campaigns::updated_at.eq(now),
            campaigns::finished_at.eq(Some(now)),
        ))
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    Ok(changed > 0)
}

/// What a retry of failed rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried {
    /// Rows put back to pending.
    pub rows: usize,
    /// The campaign had completed and runs again.
    pub reopened: bool,
}

/// Puts a campaign's failed rows (all, or `device_id`'s) back to pending
/// ([`outbox_store::retry_failed_on`]) in ONE transaction with the campaign's state: a completed
/// campaign with rows put back runs again (its finish time cleared); a running or paused one
/// keeps its state. The campaign row is written first (its `updated_at`), so a completion
/// decided before the retry does not happen ([`complete_unless_changed`]). `Conflict` for a
/// draft, scheduled or cancelled campaign, `NotFound` for none of the tenant's.
pub async fn retry_failed(
    db: &Db,
    tenant_id: i64,
    id: i64,
    device_id: Option<i64>,
) -> Result<Retried, DbError> {
    let now = chrono::Utc::now().naive_utc();
    let open = [
        CampaignStatus::Running.as_str(),
        CampaignStatus::Paused.as_str(),
        CampaignStatus::Completed.as_str(),
    ];
    let retried = db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let status: Option<String> = diesel::update(
                campaigns::table
                    .find(id)
                    .filter(campaigns::tenant_id.eq(tenant_id))
                    .filter(campaigns::kind.ne(CampaignKind::Sequence.as_str()))
                    .filter(campaigns::status.eq_any(open)),
            )
            .set(campaigns::updated_at.eq(now))
            .returning(campaigns::status)
            .get_result(conn)
            .await
            .optional()?;
            let Some(status) = status else {
                return Ok(None);
            };
            let rows =
                outbox_store::retry_failed_on(Conn::from(&mut *conn), tenant_id, id, device_id)
                    .await?;
            let reopened = rows > 0 && status == CampaignStatus::Completed.as_str();
            if reopened {
                diesel::update(campaigns::table.find(id))
                    .set((
                        campaigns::status.eq(CampaignStatus::Running.as_str()),
                        campaigns::finished_at.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(Some(Retried { rows, reopened }))
        })
        .await
    })?;
    match retried {
        Some(retried) => Ok(retried),
        None => {
            let campaign = get_campaign(db, tenant_id, id).await?;
            Err(DbError::Conflict(format!(
                "the campaign is {}; only a started campaign has failed messages to retry",
                campaign.status
            )))
        }
    }
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

/// Makes each lead of an AI distribution belong to the device its message goes through; leads
/// skipped with `left_reason` go back to the pool (no device).
pub async fn sync_lead_devices(
    db: &Db,
    campaign_id: i64,
    left_reason: &str,
) -> Result<(), DbError> {
    let mut owners: BTreeMap<Option<i64>, Vec<i64>> = BTreeMap::new();
    for (lead, device, status, error) in outbox_store::lead_states(db, campaign_id).await? {
        let Some(lead) = lead else { continue };
        let skipped = status == OutboxStatus::Skipped;
        if skipped && error.as_deref() == Some(left_reason) {
            owners.entry(None).or_default().push(lead);
        } else if !skipped && status != OutboxStatus::Failed && device.is_some() {
            owners.entry(device).or_default().push(lead);
        }
    }
    for (device, leads_of) in owners {
        for chunk in leads_of.chunks(CHUNK) {
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
    let mut by_device: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (lead, device) in outbox_store::pending_lead_devices(db, campaign_id).await? {
        by_device.entry(device).or_default().push(lead);
    }
    let mut taken: Vec<i64> = Vec::new();
    for (device, leads_of) in by_device {
        for chunk in leads_of.chunks(CHUNK) {
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
    outbox_store::skip_pending_leads(db, campaign_id, &taken, taken_reason).await
}
