//! The CampaignEngine actor: starts campaigns (writes their outbox), runs one [`Lane`] per
//! sending device, pauses, resumes and cancels them, moves a lost device's rows, starts
//! scheduled campaigns on time, publishes progress, and completes campaigns. Its state is only a
//! cache of the database: after a restart it resumes every running campaign from the outbox.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::watch;

use super::lane::{load_image, Control, Lane, LaneEnd, Plan};
use super::model::{
    outbox_status as st, Campaign, CampaignKind, CampaignStatus, DeviceChoice, OnDeviceLoss,
};
use super::progress::{progress, Progress};
use super::store::{self, OutboxRow};
use crate::broadcast::pacing::Pacing;
use crate::broadcast::settings as tenant_settings;
use crate::broadcast::template::Template;
use crate::broadcast::throttle::Throttle;
use crate::chat::media::MediaStore;
use crate::config::Settings;
use crate::db::{Db, DbError};
use crate::device::model::{Device, DeviceFilter, DeviceStatus};
use crate::device::Fleet;
use crate::hub::{Hub, HubEvent, Topic};

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// No such campaign.
    #[error("campaign not found")]
    NotFound,
    /// The campaign is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The campaign cannot run as configured (no leads, bad template, pacing out of bounds…).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("{0}")]
    Db(String),
}

impl From<DbError> for EngineError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::NotFound => EngineError::NotFound,
            other => EngineError::Db(other.to_string()),
        }
    }
}

/// Start a draft or scheduled campaign now: write its outbox and send. Answers the rows written.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, EngineError>")]
pub struct StartCampaign {
    /// Campaign.
    pub campaign_id: i64,
}

/// Run a campaign that is already running or paused in the database (a new sequence's
/// carrier), if this engine does not run it yet.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct WatchCampaign {
    /// Campaign.
    pub campaign_id: i64,
}

/// Pause, resume or cancel a campaign.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct ControlCampaign {
    /// Campaign.
    pub campaign_id: i64,
    /// What to do.
    pub action: Action,
}

/// A user's action on a started campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// running → paused.
    Pause,
    /// paused → running.
    Resume,
    /// draft | scheduled | running | paused → cancelled.
    Cancel,
}

/// The engine's dependencies.
#[derive(Clone)]
pub struct EngineDeps {
    /// Database.
    pub db: Db,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Devices.
    pub fleet: Fleet,
    /// Where progress is published.
    pub hub: Addr<Hub>,
    /// Pacing.
    pub throttle: Addr<Throttle>,
    /// Campaign pictures.
    pub media: MediaStore,
    /// Simulated seconds per real second.
    pub time_scale: f64,
}

/// Runs campaigns; see the module documentation.
pub struct CampaignEngine {
    deps: EngineDeps,
    /// Campaigns with lanes in this process.
    runs: HashMap<i64, Run>,
    /// A tick is in progress (ticks never overlap).
    ticking: bool,
}

/// A campaign this process is running.
struct Run {
    plan: Rc<Plan>,
    control: watch::Sender<Control>,
    on_loss: OnDeviceLoss,
    choice: DeviceChoice,
    /// Devices with a lane now.
    lanes: HashSet<i64>,
    /// The last progress published (unchanged progress is not published again).
    last: Option<Progress>,
    /// A lost device's rows are being moved (AI distribution moves one at a time).
    moving: bool,
    /// Devices whose sends failed in this run (AI distribution): treated as lost.
    left_out: HashSet<i64>,
    /// Cancelled (or ended elsewhere) while lanes still held rows: the run stays until its last
    /// lane has given them back, then this campaign's final progress is published.
    stopping: Option<Campaign>,
}

/// A lane ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct LaneEnded {
    campaign_id: i64,
    device_id: i64,
    end: LaneEnd,
}

/// Periodic work finished.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct TickDone;

impl CampaignEngine {
    /// An engine over `deps`.
    pub fn new(deps: EngineDeps) -> Self {
        Self {
            deps,
            runs: HashMap::new(),
            ticking: false,
        }
    }
}

impl Actor for CampaignEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval =
            Duration::from_millis(self.deps.settings.broadcast.progress_interval_ms.max(50));
        ctx.run_interval(interval, |engine, ctx| engine.tick(ctx));
        // Resume what was running before a restart.
        let db = self.deps.db.clone();
        ctx.spawn(
            async move { store::campaigns_in(&db, &[CampaignStatus::Running, CampaignStatus::Paused]).await }
                .into_actor(self)
                .map(|found, engine, ctx| match found {
                    Ok(campaigns) => {
                        for campaign in campaigns {
                            tracing::info!(campaign_id = campaign.id, status = %campaign.status, "resuming campaign");
                            engine.resume_run(campaign, ctx);
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "could not load running campaigns"),
                }),
        );
    }
}

impl Handler<StartCampaign> for CampaignEngine {
    type Result = ResponseActFuture<Self, Result<usize, EngineError>>;

    fn handle(&mut self, msg: StartCampaign, _: &mut Context<Self>) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(
            async move { materialize(&deps, msg.campaign_id).await }
                .into_actor(self)
                .map(|result, engine, ctx| {
                    let (campaign, written) = result?;
                    engine.resume_run(campaign, ctx);
                    Ok(written)
                }),
        )
    }
}

impl Handler<WatchCampaign> for CampaignEngine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: WatchCampaign, _: &mut Context<Self>) -> Self::Result {
        let db = self.deps.db.clone();
        Box::pin(
            async move { store::find_campaign(&db, msg.campaign_id).await }
                .into_actor(self)
                .map(|found, engine, ctx| {
                    let campaign = found?;
                    if matches!(
                        campaign.state(),
                        CampaignStatus::Running | CampaignStatus::Paused
                    ) {
                        engine.resume_run(campaign, ctx);
                    }
                    Ok(())
                }),
        )
    }
}

impl Handler<ControlCampaign> for CampaignEngine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: ControlCampaign, _: &mut Context<Self>) -> Self::Result {
        use CampaignStatus::*;
        let (from, to): (&[CampaignStatus], CampaignStatus) = match msg.action {
            Action::Pause => (&[Running], Paused),
            Action::Resume => (&[Paused], Running),
            Action::Cancel => (&[Draft, Scheduled, Running, Paused], Cancelled),
        };
        // Lanes react at once; the database follows.
        let control = match msg.action {
            Action::Pause => Control::Pause,
            Action::Resume => Control::Run,
            Action::Cancel => Control::Cancel,
        };
        let db = self.deps.db.clone();
        let id = msg.campaign_id;
        Box::pin(
            async move {
                if !store::transition(&db, id, from, to, None).await? {
                    let campaign = store::find_campaign(&db, id).await?;
                    return Err(EngineError::Conflict(format!(
                        "the campaign is {}",
                        campaign.status
                    )));
                }
                if to == Cancelled {
                    store::skip_unsent(&db, id, "campaign cancelled").await?;
                }
                store::find_campaign(&db, id)
                    .await
                    .map_err(EngineError::from)
            }
            .into_actor(self)
            .map(move |result, engine, ctx| {
                let campaign = result?;
                match engine.runs.get(&id) {
                    Some(run) => {
                        run.control.send_replace(control);
                    }
                    None if to == Running => engine.resume_run(campaign.clone(), ctx),
                    None => {}
                }
                if to == Cancelled {
                    engine.stop_run(campaign.clone());
                }
                engine.publish_now(campaign, ctx);
                Ok(())
            }),
        )
    }
}

impl Handler<LaneEnded> for CampaignEngine {
    type Result = ();

    fn handle(&mut self, msg: LaneEnded, ctx: &mut Context<Self>) {
        if let LaneEnd::Failed(err) = &msg.end {
            tracing::warn!(campaign_id = msg.campaign_id, device_id = msg.device_id, error = %err, "campaign lane failed; retrying on the next tick");
        }
        let Some(run) = self.runs.get_mut(&msg.campaign_id) else {
            return;
        };
        run.lanes.remove(&msg.device_id);
        if let LaneEnd::DeviceError(err) = &msg.end {
            tracing::warn!(campaign_id = msg.campaign_id, device_id = msg.device_id, error = %err, "device left out of the distribution; its share moves on");
            run.left_out.insert(msg.device_id);
        }
        if run.lanes.is_empty() {
            if let Some(campaign) = run.stopping.take() {
                // Every lane has given its rows back: the counts are final now.
                self.runs.remove(&msg.campaign_id);
                self.publish_now(campaign, ctx);
            }
        }
    }
}

impl Handler<TickDone> for CampaignEngine {
    type Result = ();

    fn handle(&mut self, _: TickDone, _: &mut Context<Self>) {
        self.ticking = false;
    }
}

/// What a tick learned about one running campaign.
struct TickReport {
    campaign: Campaign,
    progress: Progress,
    /// Online devices of the campaign's choice (with their link age).
    online: Vec<Device>,
}

impl CampaignEngine {
    /// Registers a running or paused campaign and lets the next tick start its lanes.
    fn resume_run(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        if self.runs.contains_key(&campaign.id) {
            return;
        }
        let deps = self.deps.clone();
        let id = campaign.id;
        ctx.spawn(
            async move {
                plan_for(&deps, &campaign)
                    .await
                    .map(|plan| (campaign, plan))
            }
            .into_actor(self)
            .map(move |result, engine, ctx| match result {
                Ok((campaign, plan)) => {
                    let control = if campaign.state() == CampaignStatus::Paused {
                        Control::Pause
                    } else {
                        Control::Run
                    };
                    engine.runs.insert(
                        id,
                        Run {
                            plan: Rc::new(plan),
                            control: watch::channel(control).0,
                            on_loss: campaign.on_device_loss(),
                            choice: campaign.device_choice(),
                            lanes: HashSet::new(),
                            last: None,
                            moving: false,
                            left_out: HashSet::new(),
                            stopping: None,
                        },
                    );
                    engine.tick(ctx);
                }
                Err(err) => tracing::error!(campaign_id = id, error = %err, "cannot run campaign"),
            }),
        );
    }

    /// Periodic work: start due scheduled campaigns; for each running one publish progress,
    /// complete it when nothing is left, move rows of lost devices, and start missing lanes.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            return;
        }
        self.ticking = true;
        let db = self.deps.db.clone();
        let runs: Vec<(i64, DeviceChoice)> = self
            .runs
            .iter()
            .map(|(id, run)| (*id, run.choice.clone()))
            .collect();
        ctx.spawn(
            async move {
                let due = due_scheduled(&db).await;
                let mut reports = Vec::new();
                let mut gone = Vec::new();
                for (id, choice) in runs {
                    match report(&db, id, &choice).await {
                        Ok(report) => reports.push(report),
                        // Deleted (a sequence and its carrier): stop its lanes.
                        Err(DbError::NotFound) => gone.push(id),
                        Err(err) => {
                            tracing::warn!(campaign_id = id, error = %err, "campaign tick failed")
                        }
                    }
                }
                (due, reports, gone)
            }
            .into_actor(self)
            .map(|(due, reports, gone), engine, ctx| {
                for id in gone {
                    if let Some(run) = engine.runs.remove(&id) {
                        run.control.send_replace(Control::Cancel);
                    }
                }
                for id in due {
                    ctx.notify(StartDue(id));
                }
                for report in reports {
                    engine.apply(report, ctx);
                }
                ctx.notify(TickDone);
            }),
        );
    }

    /// Acts on one campaign's tick report.
    fn apply(&mut self, report: TickReport, ctx: &mut Context<Self>) {
        let id = report.campaign.id;
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        let state = report.campaign.state();
        if !matches!(state, CampaignStatus::Running | CampaignStatus::Paused) {
            // Cancelled or completed elsewhere (another node, or a finished run).
            self.stop_run(report.campaign);
            return;
        }
        if run.last.as_ref() != Some(&report.progress) {
            publish(&self.deps.hub, &report.campaign, &report.progress);
            run.last = Some(report.progress.clone());
        }
        let kind = report.campaign.kind();
        // A sequence's carrier runs as long as the sequence exists; it is never complete.
        if state == CampaignStatus::Running
            && report.progress.counts.unsent() == 0
            && kind != CampaignKind::Sequence
        {
            self.complete(report.campaign, ctx);
            return;
        }
        if state != CampaignStatus::Running {
            return;
        }
        let online: HashMap<i64, &Device> = report
            .online
            .iter()
            .filter(|d| !run.left_out.contains(&d.id))
            .map(|d| (d.id, d))
            .collect();
        let online_ids: Vec<i64> = online.keys().copied().collect();
        let mut to_move = Vec::new();
        for share in &report.progress.per_device {
            // `sending` counts too: a row a killed process left leased has no lane to re-send
            // it once the lease passes unless one is started here (the lane claims it then,
            // or ends at once while the lease still holds and is started again next tick).
            if share.counts.unsent() == 0 {
                continue;
            }
            match share.device_id {
                Some(device_id) if online.contains_key(&device_id) => {
                    if !run.lanes.contains(&device_id) {
                        run.lanes.insert(device_id);
                        let device = online[&device_id].clone();
                        spawn_lane(&self.deps, run, id, device, ctx);
                    }
                }
                Some(_) if run.on_loss == OnDeviceLoss::Wait => {}
                lost => to_move.push(lost),
            }
        }
        if kind == CampaignKind::Ai {
            if !to_move.is_empty() {
                self.move_within_limits(&report, to_move, ctx);
            }
        } else if !to_move.is_empty() && !online_ids.is_empty() {
            let db = self.deps.db.clone();
            ctx.spawn(
                async move {
                    for from in to_move {
                        match store::reassign(&db, id, from, &online_ids, None).await {
                            Ok(moved) if moved > 0 => tracing::info!(campaign_id = id, from_device = ?from, moved, "moved unsent messages to online devices"),
                            Ok(_) => {}
                            Err(err) => tracing::warn!(campaign_id = id, error = %err, "could not move unsent messages"),
                        }
                    }
                }
                .into_actor(self),
            );
        } else if kind == CampaignKind::Broadcast {
            self.balance(&report, ctx);
        }
    }

    /// AI distribution: a lost device's pending leads go to online devices with room under the
    /// per-device limit; what finds no room is skipped and its leads go back to the pool. One
    /// move at a time per campaign, on fresh counts.
    fn move_within_limits(
        &mut self,
        report: &TickReport,
        from: Vec<Option<i64>>,
        ctx: &mut Context<Self>,
    ) {
        let id = report.campaign.id;
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        if run.moving {
            return;
        }
        run.moving = true;
        let limit = report.campaign.per_device_limit.unwrap_or(0);
        let online: Vec<i64> = report
            .online
            .iter()
            .map(|d| d.id)
            .filter(|id| !run.left_out.contains(id))
            .collect();
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                let result: Result<(), DbError> = async {
                    let mut taken: HashMap<i64, i64> = HashMap::new();
                    for (device, status, n) in store::counts(&db, id).await? {
                        if let Some(device) = device.filter(|_| status != st::SKIPPED && status != st::FAILED) {
                            *taken.entry(device).or_default() += n;
                        }
                    }
                    let mut room: Vec<(i64, i64)> = online
                        .iter()
                        .map(|d| (*d, (limit - taken.get(d).copied().unwrap_or(0)).max(0)))
                        .collect();
                    for lost in from {
                        for (device, left) in room.iter_mut().filter(|(_, left)| *left > 0) {
                            let moved = store::reassign(&db, id, lost, &[*device], Some(*left)).await?;
                            *left -= moved as i64;
                        }
                        // Only with no room left: a row its lane gives back after the moves
                        // above goes to the room on the next tick.
                        if room.iter().all(|(_, left)| *left == 0) {
                            let skipped = store::skip_device_pending(&db, id, lost, NO_CAPACITY).await?;
                            tracing::info!(campaign_id = id, from_device = ?lost, skipped, "no device has room for a lost device's leads");
                        }
                    }
                    store::sync_lead_devices(&db, id, NO_CAPACITY).await
                }
                .await;
                if let Err(err) = result {
                    tracing::warn!(campaign_id = id, error = %err, "could not move a lost device's leads");
                }
            }
            .into_actor(self)
            .map(move |_, engine, _| {
                if let Some(run) = engine.runs.get_mut(&id) {
                    run.moving = false;
                }
            }),
        );
    }

    /// Evens out the tail of a campaign: when online devices of it have nothing left to send
    /// (and daily capacity to spare) while another still has a queue, they take over the end of
    /// that queue, so the campaign finishes with all devices busy rather than one.
    fn balance(&mut self, report: &TickReport, ctx: &mut Context<Self>) {
        let Some(run) = self.runs.get(&report.campaign.id) else {
            return;
        };
        let pending = |device_id: i64| {
            report
                .progress
                .per_device
                .iter()
                .find(|share| share.device_id == Some(device_id))
                .map_or(0, |share| share.counts.pending)
        };
        let idle: Vec<Device> = report
            .online
            .iter()
            .filter(|d| pending(d.id) == 0 && !run.lanes.contains(&d.id))
            .cloned()
            .collect();
        let donor = report
            .online
            .iter()
            .map(|d| (pending(d.id), d.id))
            .max()
            .filter(|(queue, _)| *queue >= 2);
        let (Some((queue, donor)), false) = (donor, idle.is_empty()) else {
            return;
        };
        let (deps, id, pacing) = (
            self.deps.clone(),
            report.campaign.id,
            run.plan.pacing.clone(),
        );
        ctx.spawn(
            async move {
                let receivers: Vec<i64> = match remaining_capacity(&deps, &idle, &pacing).await {
                    Ok(capacity) => capacity.into_iter().filter(|(_, c)| *c > 0).map(|(d, _)| d).collect(),
                    Err(err) => {
                        tracing::warn!(campaign_id = id, error = %err, "could not read device capacity");
                        return;
                    }
                };
                // Share the queue evenly between the donor and the receivers.
                let share = queue * receivers.len() as i64 / (receivers.len() as i64 + 1);
                if share == 0 {
                    return;
                }
                if let Err(err) = store::reassign(&deps.db, id, Some(donor), &receivers, Some(share)).await {
                    tracing::warn!(campaign_id = id, error = %err, "could not balance the campaign");
                }
            }
            .into_actor(self),
        );
    }

    /// Marks a campaign completed and publishes its final progress.
    fn complete(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        let id = campaign.id;
        if let Some(run) = self.runs.remove(&id) {
            run.control.send_replace(Control::Cancel);
        }
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                store::transition(
                    &db,
                    id,
                    &[CampaignStatus::Running],
                    CampaignStatus::Completed,
                    None,
                )
                .await?;
                store::find_campaign(&db, id).await
            }
            .into_actor(self)
            .map(move |result, engine, ctx| match result {
                Ok(campaign) => {
                    tracing::info!(campaign_id = id, "campaign completed");
                    engine.publish_now(campaign, ctx);
                }
                Err(err) => {
                    tracing::warn!(campaign_id = id, error = %err, "could not complete campaign")
                }
            }),
        );
    }

    /// Stops a campaign's lanes for good. The run is dropped at once when no lane is left, else
    /// when the last one has ended (see `LaneEnded`), which publishes the final progress: lanes
    /// give their claimed rows back after the cancel, so earlier counts still show them waiting.
    fn stop_run(&mut self, campaign: Campaign) {
        let Some(run) = self.runs.get_mut(&campaign.id) else {
            return;
        };
        run.control.send_replace(Control::Cancel);
        if run.lanes.is_empty() {
            self.runs.remove(&campaign.id);
        } else {
            run.stopping = Some(campaign);
        }
    }

    /// Computes and publishes a campaign's progress now (after a state change).
    fn publish_now(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let hub = self.deps.hub.clone();
        ctx.spawn(
            async move {
                match progress(&db, &campaign).await {
                    Ok(progress) => publish(&hub, &campaign, &progress),
                    Err(err) => {
                        tracing::warn!(campaign_id = campaign.id, error = %err, "progress failed")
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Start a scheduled campaign whose time has come.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct StartDue(i64);

impl Handler<StartDue> for CampaignEngine {
    type Result = ();

    fn handle(&mut self, msg: StartDue, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        ctx.spawn(
            async move { materialize(&deps, msg.0).await }
                .into_actor(self)
                .map(move |result, engine, ctx| match result {
                    Ok((campaign, written)) => {
                        tracing::info!(campaign_id = campaign.id, written, "scheduled campaign started");
                        engine.resume_run(campaign, ctx);
                    }
                    Err(err) => tracing::warn!(campaign_id = msg.0, error = %err, "scheduled campaign could not start"),
                }),
        );
    }
}

/// Spawns the lane of `device` for campaign `id`; it reports its end to the engine.
fn spawn_lane(
    deps: &EngineDeps,
    run: &Run,
    id: i64,
    device: Device,
    ctx: &mut Context<CampaignEngine>,
) {
    let (db, throttle, fleet) = (deps.db.clone(), deps.throttle.clone(), deps.fleet.clone());
    let plan = run.plan.clone();
    let control = run.control.subscribe();
    let device_id = device.id;
    let days_linked = days_linked(&device, plan.time_scale);
    let engine = ctx.address();
    let lane = async move {
        let end = match fleet.actor(device_id).await {
            Some(addr) => {
                Lane {
                    db,
                    plan,
                    device_id,
                    days_linked,
                    device: addr,
                    throttle,
                    control,
                }
                .run()
                .await
            }
            None => LaneEnd::DeviceLost,
        };
        engine.do_send(LaneEnded {
            campaign_id: id,
            device_id,
            end,
        });
    };
    ctx.spawn(actix::fut::wrap_future::<_, CampaignEngine>(lane));
}

/// Whole simulated days since `device` was linked (0 when not linked), for warm-up.
fn days_linked(device: &Device, time_scale: f64) -> u32 {
    device.paired_at.map_or(0, |at| {
        let secs = (Utc::now().naive_utc() - at).num_seconds().max(0) as f64 * time_scale;
        (secs / 86_400.0) as u32
    })
}

/// Publishes `CAMPAIGN_PROGRESS` on `campaign/<id>`.
fn publish(hub: &Addr<Hub>, campaign: &Campaign, progress: &Progress) {
    hub.do_send(HubEvent {
        tenant_id: campaign.tenant_id,
        topic: Topic::Campaign(campaign.id),
        device_id: None,
        event: "CAMPAIGN_PROGRESS".into(),
        data: serde_json::to_value(progress).unwrap_or_default(),
        ts: Utc::now(),
    });
}

/// Ids of scheduled campaigns whose time has come.
async fn due_scheduled(db: &Db) -> Vec<i64> {
    let now = Utc::now().naive_utc();
    match store::campaigns_in(db, &[CampaignStatus::Scheduled]).await {
        Ok(campaigns) => campaigns
            .into_iter()
            .filter(|c| c.scheduled_at.is_some_and(|at| at <= now))
            .map(|c| c.id)
            .collect(),
        Err(err) => {
            tracing::warn!(error = %err, "could not look for scheduled campaigns");
            Vec::new()
        }
    }
}

/// A running campaign's state, progress and online devices.
async fn report(db: &Db, id: i64, choice: &DeviceChoice) -> Result<TickReport, DbError> {
    let campaign = store::find_campaign(db, id).await?;
    let progress = progress(db, &campaign).await?;
    let online = online_devices(db, campaign.tenant_id, choice).await?;
    Ok(TickReport {
        campaign,
        progress,
        online,
    })
}

/// The online devices a campaign may use.
async fn online_devices(
    db: &Db,
    tenant_id: i64,
    choice: &DeviceChoice,
) -> Result<Vec<Device>, DbError> {
    let only_ids = match choice {
        DeviceChoice::AllOnline => None,
        DeviceChoice::Set { ids } => Some(ids.clone()),
        DeviceChoice::Member { user_id } => {
            Some(crate::auth::store::assigned_device_ids(db, *user_id).await?)
        }
    };
    let filter = DeviceFilter {
        status: Some(DeviceStatus::Online),
        search: None,
        only_ids,
    };
    let (devices, _) =
        crate::device::store::list_devices(db, tenant_id, &filter, 10_000, 0).await?;
    Ok(devices)
}

/// The plan every lane of `campaign` shares.
async fn plan_for(deps: &EngineDeps, campaign: &Campaign) -> Result<Plan, EngineError> {
    let effective =
        tenant_settings::effective(&deps.db, &deps.settings, campaign.tenant_id).await?;
    let pacing = effective.pacing.with(&campaign.pacing_override());
    deps.settings
        .broadcast
        .limits
        .check(&pacing)
        .map_err(EngineError::Invalid)?;
    let image = match &campaign.image_sha256 {
        Some(sha) => Some(
            load_image(&deps.media, sha)
                .await
                .map_err(|e| EngineError::Invalid(format!("campaign picture: {e}")))?,
        ),
        None => None,
    };
    // A sequence's messages differ per step; typing time follows a typical message.
    let chars = match campaign.kind() {
        CampaignKind::Sequence => TYPICAL_CHARS,
        _ => campaign.message.chars().count(),
    };
    Ok(Plan {
        campaign_id: campaign.id,
        tenant_id: campaign.tenant_id,
        pacing: Arc::new(pacing),
        time_zone: effective.time_zone,
        image,
        media: deps.media.clone(),
        lease: Duration::from_secs(deps.settings.broadcast.lease_secs.max(1)),
        max_attempts: i64::from(deps.settings.broadcast.max_attempts.max(1)),
        time_scale: deps.time_scale,
        chars,
        leave_on_error: campaign.kind() == CampaignKind::Ai,
    })
}

/// Characters of a typical sequence message (typing time).
const TYPICAL_CHARS: usize = 120;

/// Writes a draft or scheduled campaign's outbox (one row per matching lead, rendered, with a
/// fresh message id, assigned to a device) and marks it running. Safe to repeat after a crash:
/// rows already written stay as they are.
async fn materialize(deps: &EngineDeps, id: i64) -> Result<(Campaign, usize), EngineError> {
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
    let leads = target_leads(db, &campaign).await?;
    if leads.is_empty() {
        return Err(EngineError::Invalid(
            "no leads match the campaign's target".into(),
        ));
    }
    let devices = online_devices(db, campaign.tenant_id, &campaign.device_choice()).await?;
    let capacities = remaining_capacity(deps, &devices, &plan.pacing).await?;
    let assignment = match (campaign.kind(), campaign.per_device_limit) {
        (CampaignKind::Ai, Some(limit)) => {
            let health = device_health(deps, &devices).await?;
            distribute(leads.len(), &capacities, &health, limit.max(0) as u64)
        }
        _ => assign(leads.len(), &capacities),
    };
    let phones: Vec<String> = leads.iter().map(|l| l.phone.clone()).collect();
    let opted_out =
        crate::broadcast::leads::opt_out::opted_out(db, campaign.tenant_id, &phones).await?;
    let mut rng = rand::rng();
    let rows: Vec<OutboxRow> = leads
        .iter()
        .zip(assignment)
        .map(|(lead, device_id)| {
            let skip = if opted_out.contains(&lead.phone) {
                Some("opted out")
            } else if campaign.kind() == CampaignKind::Ai && device_id.is_none() {
                Some(NO_CAPACITY)
            } else {
                None
            };
            OutboxRow {
                lead_id: lead.id,
                device_id,
                phone: lead.phone.clone(),
                body: template.render(&lead.variables(), &mut rng),
                message_id: new_message_id(),
                status: if skip.is_some() {
                    st::SKIPPED
                } else {
                    st::PENDING
                },
                error: skip.map(str::to_string),
                step: 0,
                image_sha256: None,
            }
        })
        .collect();
    let written = store::write_outbox(db, campaign.tenant_id, id, &rows).await?;
    if campaign.kind() == CampaignKind::Ai {
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
        leads = leads.len(),
        written,
        devices = devices.len(),
        "campaign started"
    );
    Ok((store::find_campaign(db, id).await?, written))
}

/// A campaign's leads now: its target's lists and statuses, any of its tags, one per phone.
pub async fn target_leads(
    db: &Db,
    campaign: &Campaign,
) -> Result<Vec<super::model::TargetLead>, DbError> {
    let pool_only = campaign.kind() == CampaignKind::Ai;
    matching_leads(db, campaign.tenant_id, &campaign.target(), pool_only).await
}

/// A tenant's leads matching `target` (only those without a device when `pool_only`), one per
/// phone, in id order.
pub async fn matching_leads(
    db: &Db,
    tenant_id: i64,
    target: &super::model::Target,
    pool_only: bool,
) -> Result<Vec<super::model::TargetLead>, DbError> {
    let tags: Vec<String> = target
        .tags
        .iter()
        .map(|t| format!(",{},", t.trim().to_lowercase()))
        .collect();
    let niches: Vec<String> = target
        .niches
        .iter()
        .map(|n| n.trim().to_lowercase())
        .collect();
    let mut seen = HashSet::new();
    Ok(
        store::target_leads(db, tenant_id, &target.list_ids, &target.statuses, pool_only)
            .await?
            .into_iter()
            .filter(|(_, lead_tags)| {
                tags.is_empty() || tags.iter().any(|t| lead_tags.contains(t.as_str()))
            })
            .filter(|(lead, _)| {
                niches.is_empty()
                    || lead
                        .niche
                        .as_deref()
                        .is_some_and(|n| niches.contains(&n.trim().to_lowercase()))
            })
            .map(|(lead, _)| lead)
            .filter(|lead| seen.insert(lead.phone.clone()))
            .collect(),
    )
}

/// Each device's sends left today (its daily cap after warm-up, minus what it sent in the last
/// simulated day).
async fn remaining_capacity(
    deps: &EngineDeps,
    devices: &[Device],
    pacing: &Pacing,
) -> Result<Vec<(i64, u64)>, DbError> {
    let day = chrono::Duration::milliseconds((86_400_000.0 / deps.time_scale) as i64);
    let since = (Utc::now() - day).naive_utc();
    let mut capacities = Vec::with_capacity(devices.len());
    for device in devices {
        let days = days_linked(device, deps.time_scale);
        let sent = store::device_sends_since(&deps.db, device.id, since)
            .await?
            .len() as u64;
        let cap = u64::from(pacing.daily_cap(days));
        capacities.push((device.id, cap.saturating_sub(sent)));
    }
    Ok(capacities)
}

/// Why an AI distribution left a lead in the pool.
pub const NO_CAPACITY: &str = "no device capacity left";

/// Why an AI distribution skipped a lead another distribution claimed first.
pub const TAKEN: &str = "another distribution took the lead";

/// Each device's health for AI distribution, 0.1–1.0: the share of its messages of the last
/// (simulated) day that did not fail. A device without history is healthy.
async fn device_health(deps: &EngineDeps, devices: &[Device]) -> Result<Vec<f64>, DbError> {
    let day = chrono::Duration::milliseconds((86_400_000.0 / deps.time_scale) as i64);
    let since = (Utc::now() - day).naive_utc();
    let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
    let history = store::device_outcomes_since(&deps.db, &ids, since).await?;
    Ok(ids
        .iter()
        .map(|id| match history.get(id) {
            Some(&(failed, total)) if total > 0 => (1.0 - failed as f64 / total as f64).max(0.1),
            _ => 1.0,
        })
        .collect())
}

/// AI distribution: assigns `count` leads to devices, at most `limit` each (and no more than
/// each device's remaining daily capacity), smooth weighted round-robin by remaining room ×
/// health; `None` for leads no device has room for.
fn distribute(
    count: usize,
    capacities: &[(i64, u64)],
    health: &[f64],
    limit: u64,
) -> Vec<Option<i64>> {
    let mut room: Vec<u64> = capacities.iter().map(|(_, c)| (*c).min(limit)).collect();
    let mut current = vec![0f64; capacities.len()];
    (0..count)
        .map(|_| {
            let weights: Vec<f64> = room
                .iter()
                .zip(health)
                .map(|(r, h)| *r as f64 * h)
                .collect();
            let total: f64 = weights.iter().sum();
            if total <= 0.0 {
                return None;
            }
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .filter(|i| room[*i] > 0)
                .max_by(|a, b| current[*a].total_cmp(&current[*b]).then(b.cmp(a)))?;
            current[best] -= total;
            room[best] -= 1;
            Some(capacities[best].0)
        })
        .collect()
}

/// Assigns `count` rows to devices round-robin weighted by remaining capacity (smooth weighted
/// round-robin, so shares interleave). Devices with no capacity get rows only when all are
/// full; with no device every row waits unassigned.
fn assign(count: usize, capacities: &[(i64, u64)]) -> Vec<Option<i64>> {
    if capacities.is_empty() {
        return vec![None; count];
    }
    let all_full = capacities.iter().all(|(_, c)| *c == 0);
    let weights: Vec<i64> = capacities
        .iter()
        .map(|(_, c)| if all_full { 1 } else { *c as i64 })
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..count)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
                .unwrap_or((0, &0));
            current[best] -= total;
            Some(capacities[best].0)
        })
        .collect()
}

/// A WhatsApp-style message id (`3EB0` + 16 hex digits).
pub fn new_message_id() -> String {
    format!("3EB0{:016X}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::{assign, distribute};

    #[test]
    fn assignment_follows_remaining_capacity_and_interleaves() {
        let rows = assign(60, &[(1, 100), (2, 200), (3, 0)]);
        let count = |d| rows.iter().filter(|r| **r == Some(d)).count();
        assert_eq!((count(1), count(2), count(3)), (20, 40, 0));
        assert_ne!(rows[0], rows[1], "shares interleave");
    }

    #[test]
    fn distribution_fills_each_device_to_its_limit_and_leaves_the_rest() {
        let caps: Vec<(i64, u64)> = (1..=7).map(|d| (d, 500)).collect();
        let rows = distribute(1000, &caps, &[1.0; 7], 100);
        for d in 1..=7 {
            assert_eq!(rows.iter().filter(|r| **r == Some(d)).count(), 100);
        }
        assert_eq!(rows.iter().filter(|r| r.is_none()).count(), 300);
        assert_ne!(rows[0], rows[1], "shares interleave");
    }

    #[test]
    fn distribution_favours_healthy_devices_and_respects_daily_capacity() {
        let rows = distribute(30, &[(1, 100), (2, 100), (3, 5)], &[1.0, 0.25, 1.0], 100);
        let count = |d| rows.iter().filter(|r| **r == Some(d)).count();
        assert!(count(1) > 2 * count(2), "{} vs {}", count(1), count(2));
        assert!(count(3) <= 5);
        assert_eq!(count(1) + count(2) + count(3), 30);
    }

    #[test]
    fn full_devices_share_equally_and_no_device_leaves_rows_unassigned() {
        let rows = assign(9, &[(1, 0), (2, 0), (3, 0)]);
        assert!([1, 2, 3]
            .iter()
            .all(|d| rows.iter().filter(|r| **r == Some(*d)).count() == 3));
        assert_eq!(assign(3, &[]), vec![None, None, None]);
    }
}
