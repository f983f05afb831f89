//! Starting a campaign: its target's leads become outbox rows (rendered, with a fresh message
//! id, assigned to a device by its [`Distribution`](super::distribution::Distribution)), then it
//! is marked running.
//!
//! Streamed: leads are read a page at a time (keyset over lead ids), and each page is rendered,
//! checked against the opt-out list and written before the next is read, so a start holds one
//! page of leads and rows whatever the campaign's size (plus the phones seen so far: each phone
//! gets one message). Every page is written in the same transaction, so a failed start writes
//! nothing.
//!
//! A start's CPU work — de-duplicating phones, rendering, assigning devices — runs on tokio's
//! blocking pool a page at a time ([`on_blocking_pool`]): the engine lives on the system
//! arbiter with every device's actor, which a million-lead start must not hold up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::devices::{device_health, online_devices, remaining_capacity};
use super::distribution::Shares;
use super::engine::EngineDeps;
use super::error::EngineError;
use super::lane::plan_for;
use super::model::{Campaign, CampaignStatus, Target, TargetLead};
use super::store;
use crate::broadcast::outbox::model::{new_message_id, OutboxRow, OutboxStatus};
use crate::broadcast::outbox::store::{self as outbox_store, RowSource};
use crate::broadcast::template::Template;
use crate::db::{Db, DbError};

/// Leads read, and rows written, per step of a start.
const LEAD_PAGE: i64 = 1_000;

/// Why an AI distribution left a lead in the pool.
pub const NO_CAPACITY: &str = "no device capacity left";

/// Why an AI distribution skipped a lead another distribution claimed first.
pub const TAKEN: &str = "another distribution took the lead";

/// Writes a draft or scheduled campaign's outbox (one row per matching lead) and marks it
/// running. Safe to repeat after a crash: rows already written stay as they are.
pub async fn materialize(deps: &EngineDeps, id: i64) -> Result<(Campaign, usize), EngineError> {
    let db = &deps.db;
    let campaign = store::find_campaign(db, id).await?;
    if !campaign.state().editable() {
        return Err(EngineError::Conflict(format!(
            "the campaign is {}",
            campaign.status
        )));
    }
    let plan = plan_for(deps, &campaign).await?;
    let template = Template::parse(&campaign.message).map_err(|e| EngineError::Invalid(e.0))?;
    let distribution = campaign.distribution();
    let devices = online_devices(db, &campaign).await?;
    let capacities = remaining_capacity(db, deps.time_scale, &devices, &plan.pacing).await?;
    let health = if distribution.takes_from_pool() {
        device_health(db, deps.time_scale, &devices).await?
    } else {
        Vec::new()
    };
    let mut rows = LeadRows {
        db,
        tenant_id: campaign.tenant_id,
        leads: TargetPages::new(
            db,
            campaign.tenant_id,
            &campaign.target(),
            distribution.takes_from_pool(),
        ),
        renderer: Arc::new(Mutex::new(Renderer {
            template,
            shares: distribution.shares(&capacities, &health),
            from_pool: distribution.takes_from_pool(),
        })),
        read: 0,
    };
    let written = outbox_store::write(db, campaign.tenant_id, id, &mut rows).await?;
    if rows.read == 0 {
        return Err(EngineError::Invalid(
            "no leads match the campaign's target".into(),
        ));
    }
    if distribution.takes_from_pool() {
        // The pool shrinks at once: each lead now belongs to the device that will write to it,
        // unless a distribution started at the same moment claimed it first.
        let taken = store::claim_pool_leads(db, id, TAKEN).await?;
        if taken > 0 {
            tracing::info!(
                campaign_id = id,
                taken,
                "leads claimed by another distribution"
            );
        }
    }
    let from = [CampaignStatus::Draft, CampaignStatus::Scheduled];
    if !store::transition(db, id, &from, CampaignStatus::Running, None).await? {
        return Err(EngineError::Conflict(
            "the campaign changed while starting".into(),
        ));
    }
    tracing::info!(
        campaign_id = id,
        leads = rows.read,
        written,
        devices = devices.len(),
        "campaign started"
    );
    Ok((store::find_campaign(db, id).await?, written))
}

/// A starting campaign's rows, a page of leads at a time (see the module documentation).
struct LeadRows<'a> {
    db: &'a Db,
    tenant_id: i64,
    leads: TargetPages<'a>,
    /// Carried from page to page (the device of each next row), used on the blocking pool.
    renderer: Arc<Mutex<Renderer>>,
    /// Leads read so far.
    read: usize,
}

impl RowSource for LeadRows<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<OutboxRow>>, DbError> {
        let Some(leads) = self.leads.next_page().await? else {
            return Ok(None);
        };
        self.read += leads.len();
        let phones: Vec<String> = leads.iter().map(|l| l.phone.clone()).collect();
        let opted_out =
            crate::broadcast::leads::opt_out::opted_out(self.db, self.tenant_id, &phones).await?;
        let renderer = Arc::clone(&self.renderer);
        let rows = on_blocking_pool(move || {
            let mut renderer = renderer.lock().unwrap_or_else(PoisonError::into_inner);
            renderer.rows(&leads, &opted_out)
        })
        .await?;
        Ok(Some(rows))
    }
}

/// Turns leads into outbox rows: the campaign's template rendered for each, a fresh message id,
/// the next device of the campaign's shares.
struct Renderer {
    template: Template,
    shares: Shares,
    /// AI distribution: a lead no device has room for is skipped (it stays in the pool).
    from_pool: bool,
}

impl Renderer {
    /// The rows of `leads`, those whose phone is in `opted_out` skipped.
    fn rows(&mut self, leads: &[TargetLead], opted_out: &HashSet<String>) -> Vec<OutboxRow> {
        let mut rng = rand::rng();
        leads
            .iter()
            .map(|lead| {
                let device_id = self.shares.next_device();
                let skip = if opted_out.contains(&lead.phone) {
                    Some("opted out")
                } else if self.from_pool && device_id.is_none() {
                    Some(NO_CAPACITY)
                } else {
                    None
                };
                OutboxRow {
                    lead_id: lead.id,
                    device_id,
                    phone: lead.phone.clone(),
                    body: self.template.render(&lead.variables(), &mut rng),
                    message_id: new_message_id(),
                    status: if skip.is_some() {
                        OutboxStatus::Skipped
                    } else {
                        OutboxStatus::Pending
                    },
                    error: skip.map(str::to_string),
                    step: 0,
                    image_sha256: None,
                    attachment: None,
                }
            })
            .collect()
    }
}

/// Runs a start's CPU work on tokio's blocking pool, not on the arbiter awaiting it. A panic
/// in `work` goes on as a panic here; a pool shutting down (the daemon stopping) is an error.
async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => DbError::Unavailable(format!("the daemon is stopping: {e}")),
        })
}

/// A target's leads a page at a time, in id order: those of its lists and statuses (only pool
/// leads when `pool_only`) having any of its tags and niches, one per phone (the first by id).
struct TargetPages<'a> {
    db: &'a Db,
    tenant_id: i64,
    list_ids: Vec<i64>,
    statuses: Vec<String>,
    /// `,tag,` patterns, lower case.
    tags: Vec<String>,
    /// Niches, trimmed and lower case.
    niches: Vec<String>,
    pool_only: bool,
    /// The last lead id read.
    after: i64,
    done: bool,
    /// Phones already given out (a phone gets one message); filled on the blocking pool.
    seen: Arc<Mutex<HashSet<String>>>,
}

impl<'a> TargetPages<'a> {
    fn new(db: &'a Db, tenant_id: i64, target: &Target, pool_only: bool) -> Self {
        Self {
            db,
            tenant_id,
            list_ids: target.list_ids.clone(),
            statuses: target.statuses.clone(),
            tags: target
                .tags
                .iter()
                .map(|t| format!(",{},", t.trim().to_lowercase()))
                .collect(),
            niches: target
                .niches
                .iter()
                .map(|n| n.trim().to_lowercase())
                .collect(),
            pool_only,
            after: 0,
            done: false,
            seen: Arc::default(),
        }
    }

    /// The next non-empty page of matching leads (`None` when every lead was read).
    async fn next_page(&mut self) -> Result<Option<Vec<TargetLead>>, DbError> {
        while !self.done {
            let page = store::target_leads(
                self.db,
                self.tenant_id,
                &self.list_ids,
                &self.statuses,
                self.pool_only,
                self.after,
                LEAD_PAGE,
            )
            .await?;
            self.done = page.len() < LEAD_PAGE as usize;
            let Some((last, _)) = page.last() else {
                break;
            };
            self.after = last.id;
            let (tags, niches) = (&self.tags, &self.niches);
            let matching: Vec<TargetLead> = page
                .into_iter()
                .filter(|(lead, lead_tags)| matches(tags, niches, lead, lead_tags))
                .map(|(lead, _)| lead)
                .collect();
            let (seen, last) = (Arc::clone(&self.seen), self.done);
            let matching = on_blocking_pool(move || {
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let matching: Vec<TargetLead> = matching
                    .into_iter()
                    .filter(|lead| seen.insert(lead.phone.clone()))
                    .collect();
                if last {
                    // A million phones are freed here rather than on the arbiter.
                    drop(std::mem::take(&mut *seen));
                }
                matching
            })
            .await?;
            if !matching.is_empty() {
                return Ok(Some(matching));
            }
        }
        Ok(None)
    }
}

/// Whether a lead has any of `tags` (`,tag,` patterns) and `niches` (lower case); an empty
/// criterion does not filter.
fn matches(tags: &[String], niches: &[String], lead: &TargetLead, lead_tags: &str) -> bool {
    let tagged = tags.is_empty() || tags.iter().any(|t| lead_tags.contains(t.as_str()));
    let niched = niches.is_empty()
        || lead
            .niche
            .as_deref()
            .is_some_and(|n| niches.contains(&n.trim().to_lowercase()));
    tagged && niched
}

/// How many leads a campaign reaches now (its target's lists and statuses, any of its tags,
/// one per phone) and the first `samples` of them.
pub async fn preview_leads(
    db: &Db,
    campaign: &Campaign,
    samples: usize,
) -> Result<(usize, Vec<TargetLead>), DbError> {
    let pool_only = campaign.distribution().takes_from_pool();
    count_matching(
        db,
        campaign.tenant_id,
        &campaign.target(),
        pool_only,
        samples,
    )
    .await
}

/// How many of a tenant's leads match `target` (only those without a device when `pool_only`),
/// one per phone, and the first `samples` of them in id order. Reads a page at a time and keeps
/// only the samples and the phones seen, never every lead: a preview of a million leads stays
/// small.
pub async fn count_matching(
    db: &Db,
    tenant_id: i64,
    target: &Target,
    pool_only: bool,
    samples: usize,
) -> Result<(usize, Vec<TargetLead>), DbError> {
    let mut pages = TargetPages::new(db, tenant_id, target, pool_only);
    let (mut count, mut first) = (0, Vec::new());
    while let Some(page) = pages.next_page().await? {
        count += page.len();
        let room = samples.saturating_sub(first.len());
        first.extend(page.into_iter().take(room));
    }
    Ok((count, first))
}
