//! Campaigns: the list, starting one, pausing, resuming or cancelling it, retrying its failed
//! messages, its progress and its CSV export; a campaign as the API shows it, and which
//! campaigns a caller may change.

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::Target as AuditTarget;
use crate::auth::Caller;
use crate::broadcast::attachment::{self, FileInfo};
use crate::broadcast::campaign::export;
use crate::broadcast::campaign::messages::{Action, ControlCampaign, RetryFailed, StartCampaign};
use crate::broadcast::campaign::model::{
    Campaign, CampaignKind, CampaignStatus, DeviceChoice, OnDeviceLoss, Target,
};
use crate::broadcast::campaign::progress::{progress, Progress};
use crate::broadcast::campaign::store;
use crate::broadcast::outbox::store::export_page;
use crate::broadcast::pacing::PacingOverride;
use crate::broadcast::settings as tenant_settings;
use crate::db::{Db, DbError};
use crate::web::access::may_change;
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth};
use crate::web::views::utc;
use crate::web::{ApiError, AppState, ErrorCode};

/// A campaign as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// State.
    pub status: CampaignStatus,
    /// Template text.
    pub message: String,
    /// Whether it sends a picture.
    pub has_image: bool,
    /// The file it sends, if any: a picture, document, video, voice note or audio file.
    pub file: Option<FileInfo>,
    /// Which leads.
    pub target: Target,
    /// Which devices.
    pub devices: DeviceChoice,
    /// Pacing overrides.
    pub pacing: PacingOverride,
    /// Lost-device policy.
    pub on_device_loss: OnDeviceLoss,
    /// Broadcast or AI lead distribution.
    pub kind: CampaignKind,
    /// AI distribution's per-device limit.
    pub per_device_limit: Option<i64>,
    /// Scheduled start.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Actual start.
    pub started_at: Option<DateTime<Utc>>,
    /// Completion or cancellation.
    pub finished_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Progress (absent before the campaign starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl CampaignView {
    /// The campaign as shown, with `progress` when it is known.
    pub fn of(c: &Campaign, progress: Option<Progress>) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            status: c.state(),
            message: c.message.clone(),
            has_image: c.image_sha256.is_some() && c.attachment.is_none(),
            file: attachment::describe(c.image_sha256.as_deref(), c.attachment.as_deref()),
            target: c.target(),
            devices: c.device_choice(),
            pacing: c.pacing_override(),
            on_device_loss: c.on_device_loss(),
            kind: c.kind(),
            per_device_limit: c.per_device_limit,
            scheduled_at: c.scheduled_at.map(utc),
            started_at: c.started_at.map(utc),
            finished_at: c.finished_at.map(utc),
            created_at: utc(c.created_at),
            progress,
        }
    }
}

/// `{"campaigns": […]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest first.
    pub campaigns: Vec<CampaignView>,
}

/// What starting wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartReport {
    /// Outbox rows written (one per lead; opted-out leads are written as skipped).
    pub messages: usize,
    /// The campaign now.
    pub campaign: CampaignView,
}

/// The campaign as shown, with its progress once it has started.
pub async fn view(state: &AppState, campaign: &Campaign) -> Result<CampaignView, ApiError> {
    let progress = match campaign.started_at {
        Some(_) => Some(progress(&state.db, campaign).await?),
        None => None,
    };
    Ok(CampaignView::of(campaign, progress))
}

/// A campaign of the caller's tenant that the caller may change (members: one they created;
/// 403 otherwise), or 404.
pub async fn changeable(state: &AppState, caller: &Caller, id: i64) -> Result<Campaign, ApiError> {
    let campaign = store::get_campaign(&state.db, caller.tenant_id, id).await?;
    may_change(caller, campaign.created_by, "campaign")?;
    Ok(campaign)
}

/// The tenant's campaigns, newest first (the latest 200), with progress once started.
pub async fn list(
    state: &AppState,
    caller: &Auth<require::Viewer>,
) -> Result<CampaignList, ApiError> {
    let rows = store::list_campaigns(&state.db, caller.tenant_id, 200).await?;
    let mut campaigns = Vec::with_capacity(rows.len());
    for c in &rows {
        campaigns.push(view(state, c).await?);
    }
    Ok(CampaignList { campaigns })
}

/// Starts a draft or scheduled campaign now: writes one message per lead (each with its own
/// WhatsApp message id) and begins sending at the campaign's pace.
pub async fn start(
    state: &AppState,
    caller: &Auth<require::Member>,
    audit: &Audit,
    id: i64,
) -> Result<StartReport, ApiError> {
    changeable(state, caller, id).await?;
    let messages = state
        .campaigns
        .send(StartCampaign { campaign_id: id })
        .await
        .map_err(ApiError::internal)??;
    audit
        .record("campaign.start", AuditTarget::Campaign(id))
        .await;
    let campaign = store::get_campaign(&state.db, caller.tenant_id, id).await?;
    let progress = progress(&state.db, &campaign).await?;
    Ok(StartReport {
        messages,
        campaign: CampaignView::of(&campaign, Some(progress)),
    })
}

/// Pauses, resumes or cancels a campaign and answers it as it is now.
pub async fn control(
    state: &AppState,
    caller: &Auth<require::Member>,
    audit: &Audit,
    id: i64,
    action: Action,
) -> Result<CampaignView, ApiError> {
    changeable(state, caller, id).await?;
    state
        .campaigns
        .send(ControlCampaign {
            campaign_id: id,
            action,
        })
        .await
        .map_err(ApiError::internal)??;
    let name = match action {
        Action::Pause => "campaign.pause",
        Action::Resume => "campaign.resume",
        Action::Cancel => "campaign.cancel",
    };
    audit.record(name, AuditTarget::Campaign(id)).await;
    let campaign = store::get_campaign(&state.db, caller.tenant_id, id).await?;
    let progress = progress(&state.db, &campaign).await?;
    Ok(CampaignView::of(&campaign, Some(progress)))
}

/// Counts per state and device, rate and ETA.
pub async fn progress_of(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    id: i64,
) -> Result<Progress, ApiError> {
    let campaign = store::get_campaign(&state.db, caller.tenant_id, id).await?;
    Ok(progress(&state.db, &campaign).await?)
}

/// What a retry of failed messages did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryReport {
    /// Failed messages put back in the queue.
    pub retried: usize,
    /// The campaign now (running again if it had completed and something was put back).
    pub campaign: CampaignView,
}

/// Puts the campaign's failed messages (all, or those of `device_id`) back in the queue for a
/// new round of attempts (see [`RetryFailed`]); members retry campaigns they created, through
/// devices they see.
pub async fn retry_failed(
    state: &AppState,
    caller: &Auth<require::Member>,
    audit: &Audit,
    id: i64,
    device_id: Option<i64>,
) -> Result<RetryReport, ApiError> {
    changeable(state, caller, id).await?;
    if let Some(device) = device_id {
        let mine = crate::device::store::get_device(&state.db, caller.tenant_id, device)
            .await
            .is_ok();
        if !mine || !caller.can_see_device(device) {
            return Err(ApiError::new(
                ErrorCode::InvalidCampaign,
                format!("device_id: device {device} not found"),
            ));
        }
    }
    let retried = state
        .campaigns
        .send(RetryFailed {
            tenant_id: caller.tenant_id,
            campaign_id: id,
            device_id,
        })
        .await
        .map_err(ApiError::internal)??;
    audit
        .record("campaign.retry_failed", AuditTarget::Campaign(id))
        .await;
    let campaign = store::get_campaign(&state.db, caller.tenant_id, id).await?;
    let progress = progress(&state.db, &campaign).await?;
    Ok(RetryReport {
        retried,
        campaign: CampaignView::of(&campaign, Some(progress)),
    })
}

/// Rows per page the export reads.
const EXPORT_PAGE: i64 = 500;

/// Where the export stream is.
enum ExportStep {
    /// The header comes next.
    Header,
    /// The rows after this id come next.
    After(i64),
    /// Nothing more.
    Done,
}

/// A campaign's results as CSV lines, streamed: the header, then one page of rows at a time
/// read by keyset from the database (never the whole result in memory), times in the tenant's
/// zone. A member sees only the rows of the devices assigned to them.
pub async fn export_csv(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    id: i64,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, DbError>> + 'static, ApiError> {
    store::get_campaign(&state.db, caller.tenant_id, id).await?;
    let zone = tenant_settings::effective(&state.db, &state.settings.broadcast, caller.tenant_id)
        .await?
        .time_zone;
    let devices_of = caller.assigned_devices.clone();
    let db: Db = state.db.clone();
    let lines = futures_util::stream::unfold(ExportStep::Header, move |step| {
        let (db, devices_of) = (db.clone(), devices_of.clone());
        async move {
            let after = match step {
                ExportStep::Header => {
                    return Some((Ok(Bytes::from(export::header())), ExportStep::After(0)))
                }
                ExportStep::After(after) => after,
                ExportStep::Done => return None,
            };
            match export_page(&db, id, devices_of.as_deref(), after, EXPORT_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = match rows.last() {
                        Some(last) if rows.len() as i64 == EXPORT_PAGE => {
                            ExportStep::After(last.id)
                        }
                        _ => ExportStep::Done,
                    };
                    let text: String = rows.iter().map(|row| export::line(row, zone)).collect();
                    Some((Ok(Bytes::from(text)), next))
                }
                Err(err) => {
                    tracing::warn!(campaign_id = id, error = %err, "campaign export failed");
                    Some((Err(err), ExportStep::Done))
                }
            }
        }
    });
    Ok(lines)
}
