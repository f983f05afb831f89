//! The CampaignEngine actor: starts campaigns (see [`materialize`](super::materialize)), runs
//! one [`Lane`] per sending device, pauses, resumes and cancels them, moves a lost device's
//! rows, starts scheduled campaigns on time, publishes progress, and completes campaigns. Its
//! state is only a cache of the database: after a restart it resumes every running campaign
//! from the outbox.
//!
//! Handles [`StartCampaign`], [`WatchCampaign`], [`ControlCampaign`] and [`RetryFailed`] (see
//! [`messages`](super::messages)), plus its own `LaneEnded`, `TickDone` and `StartDue`, and
//! hears the daemon's access changes (a member's device assignment) to withdraw lanes at once. Emits
//! `CAMPAIGN_PROGRESS` on `campaign/<id>` through the Hub. Runs under an `actix::Supervisor`:
//! a failed lane or tick is retried on the next tick, but when it cannot load the running
//! campaigns at start it stops itself, and the restart (after a backoff of 0.5 s doubling to
//! 30 s) drops its lanes and reloads everything from the database. Its [`Beacon`] is up while
//! it runs, and after a restart only once that reload succeeded.

mod access;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::{oneshot, watch};

use self::access::access_changes;
use super::devices::{days_linked, online_devices, remaining_capacity};
use super::distribution::Distribution;
use super::error::EngineError;
use super::lane::{plan_for, Control, Lane, LaneEnd};
use super::materialize::{materialize, NO_CAPACITY};
use super::messages::{
    Action, ControlCampaign, RetryFailed, StartCampaign, StopLanes, WatchCampaign,
};
use super::model::{Campaign, CampaignStatus, OnDeviceLoss};
use super::progress::{progress, Progress, StatusCounts};
use super::run::Run;
use super::store;
use crate::auth::changes::AccessChanges;
use crate::broadcast::metrics::BroadcastMetrics;
use crate::broadcast::outbox::model::OutboxStatus;
use crate::broadcast::outbox::store as outbox_store;
use crate::broadcast::throttle::Throttle;
use crate::chat::media::MediaStore;
use crate::cluster::ClusterView;
use crate::config::BroadcastSettings;
use crate::db::{Db, DbError};
use crate::device::backoff::Backoff;
use crate::device::model::Device;
use crate::device::Fleet;
use crate::hub::{Hub, HubEvent, Topic};
use crate::metrics::Beacon;

/// Delays before reloading after a restart: 0.5 s doubling up to 30 s.
const RELOAD: Backoff = Backoff {
    base: Duration::from_millis(500),
    max: Duration::from_secs(30),
};

/// A campaign's tick report waits this many times as long as the last one took to read (a
/// report of a few milliseconds waits for the next tick; one of a million rows skips some).
const REPORT_COST_FACTOR: u32 = 20;

/// The engine's dependencies.
#[derive(Clone)]
pub struct EngineDeps {
    /// Database.
    pub db: Db,
    /// `[broadcast]`: tenant defaults, leases, attempts, intervals and batch sizes.
    pub broadcast: Arc<BroadcastSettings>,
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
    /// Sends by result and outbox rows by status.
    pub metrics: BroadcastMetrics,
    /// Which devices run on this node, and whether it runs the once-only work.
    pub cluster: ClusterView,
    /// Users whose access changed (a member's device assignment, a role): their campaigns'
    /// lanes are re-checked at once instead of at the next report.
    pub access: AccessChanges,
}

/// Runs campaigns; see the module documentation.
pub struct CampaignEngine {
    deps: EngineDeps,
    /// Campaigns with lanes in this process.
    runs: HashMap<i64, Run>,
    /// Campaigns whose run is being planned (so a second resume does not plan it again).
    planning: std::collections::HashSet<i64>,
    /// A tick is in progress (ticks never overlap).
    ticking: bool,
    /// A tick was asked for while one ran: another runs as soon as it is done.
    retick: bool,
    /// Restarts since the last successful load.
    restarts: u32,
    /// Up once the running campaigns are loaded (see [`CampaignEngine::watched`]).
    beacon: Beacon,
    /// Set by [`StopLanes`]: no lane starts any more; who waits for the last one to end.
    stopping: Option<Vec<oneshot::Sender<()>>>,
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

/// Start a scheduled campaign whose time has come.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct StartDue(i64);

impl CampaignEngine {
    /// An engine over `deps`.
    pub fn new(deps: EngineDeps) -> Self {
        Self {
            deps,
            runs: HashMap::new(),
            planning: std::collections::HashSet::new(),
            ticking: false,
            retick: false,
            restarts: 0,
            beacon: Beacon::detached(),
            stopping: None,
        }
    }

    /// The same engine, reporting whether it runs on `beacon`.
    pub fn watched(mut self, beacon: Beacon) -> Self {
        self.beacon = beacon;
        self
    }
}

impl Actor for CampaignEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.restarts == 0 {
            self.beacon.up();
        }
        let interval = Duration::from_millis(self.deps.broadcast.progress_interval_ms.max(50));
        ctx.run_interval(interval, |engine, ctx| engine.tick(ctx));
        ctx.add_stream(access_changes(self.deps.access.subscribe()));
        // Resume what was running before a (daemon or actor) restart.
        let db = self.deps.db.clone();
        let delay = match self.restarts {
            0 => Duration::ZERO,
            n => RELOAD.nominal(n),
        };
        ctx.spawn(
            async move {
                tokio::time::sleep(delay).await;
                store::campaigns_in(&db, &[CampaignStatus::Running, CampaignStatus::Paused]).await
            }
            .into_actor(self)
            .map(|found, engine, ctx| match found {
                Ok(campaigns) => {
                    engine.restarts = 0;
                    engine.beacon.up();
                    for campaign in campaigns {
                        tracing::info!(campaign_id = campaign.id, status = %campaign.status, "resuming campaign");
                        engine.resume_run(campaign, ctx);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not load running campaigns; restarting");
                    ctx.stop();
                }
            }),
        );
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for CampaignEngine {
    /// Lanes and ticks in flight were cancelled with the old context: forget the runs, and
    /// `started` reloads them from the database (the outbox) after the backoff.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
        self.restarts = self.restarts.saturating_add(1);
        self.runs.clear();
        self.planning.clear();
        self.ticking = false;
        self.retick = false;
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
                    outbox_store::skip_unsent(&db, id, "campaign cancelled").await?;
                }
                store::find_campaign(&db, id)
                    .await
                    .map_err(EngineError::from)
            }
            .into_actor(self)
            .map(move |result, engine, ctx| {
                let campaign = result?;
                match engine.runs.get_mut(&id) {
                    Some(run) => run.set_control(control),
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

impl Handler<RetryFailed> for CampaignEngine {
    type Result = ResponseActFuture<Self, Result<usize, EngineError>>;

    fn handle(&mut self, msg: RetryFailed, _: &mut Context<Self>) -> Self::Result {
        let db = self.deps.db.clone();
        let RetryFailed {
            tenant_id,
            campaign_id: id,
            device_id,
        } = msg;
        Box::pin(
            async move {
                let retried = store::retry_failed(&db, tenant_id, id, device_id)
                    .await
                    .map_err(|err| match err {
                        DbError::Conflict(message) => EngineError::Conflict(message),
                        other => other.into(),
                    })?;
                let campaign = store::find_campaign(&db, id).await?;
                Ok::<_, EngineError>((retried, campaign))
            }
            .into_actor(self)
            .map(move |result, engine, ctx| {
                let (retried, campaign) = result?;
                tracing::info!(campaign_id = id, device_id = ?device_id, rows = retried.rows, reopened = retried.reopened, "failed messages retried");
                // A completed campaign has no run here; a running one's next tick starts lanes
                // for the devices that have rows again.
                if matches!(
                    campaign.state(),
                    CampaignStatus::Running | CampaignStatus::Paused
                ) {
                    engine.resume_run(campaign.clone(), ctx);
                }
                engine.publish_now(campaign, ctx);
                Ok(retried.rows)
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
        let withdrawn = run
            .lanes
            .remove(&msg.device_id)
            .is_some_and(|lane| *lane.borrow() == Control::Withdraw);
        if let LaneEnd::DeviceError(err) = &msg.end {
            tracing::warn!(campaign_id = msg.campaign_id, device_id = msg.device_id, error = %err, "device left out of the distribution; its share moves on");
            run.left_out.insert(msg.device_id);
        }
        // A withdrawn lane gave its rows back: they wait or move now, not a report later. The
        // last lane ran out of rows after sending: the campaign is complete (or has rows no lane
        // holds, which get one), known now rather than after the back-off a costly count set. (A
        // lane that found nothing at its start, such as one waiting out a dead process's
        // leases, waits for the next report as before.)
        let ran_out = matches!(msg.end, LaneEnd::Done { claimed: true }) && run.lanes.is_empty();
        let report_now = (withdrawn || ran_out) && run.stopping.is_none();
        if report_now {
            run.report_due = Instant::now();
        }
        if run.lanes.is_empty() {
            if let Some(campaign) = run.stopping.take() {
                // Every lane has given its rows back: the counts are final now.
                self.runs.remove(&msg.campaign_id);
                self.publish_now(campaign, ctx);
            }
        }
        if report_now {
            self.tick_soon(ctx);
        }
        self.answer_if_stopped();
    }
}

impl Handler<StopLanes> for CampaignEngine {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopLanes, _: &mut Context<Self>) -> Self::Result {
        let lanes: usize = self.runs.values().map(|run| run.lanes.len()).sum();
        tracing::info!(lanes, "stopping campaign lanes");
        for run in self.runs.values() {
            run.withdraw_all();
        }
        let (done, ended) = oneshot::channel();
        self.stopping.get_or_insert_with(Vec::new).push(done);
        self.answer_if_stopped();
        Box::pin(async move {
            let _ = ended.await;
        })
    }
}

impl CampaignEngine {
    /// Sets `wafleet_outbox_rows{status}` from the last progress of every run.
    fn count_rows(&self) {
        let mut total = StatusCounts::default();
        for progress in self.runs.values().filter_map(|run| run.last.as_ref()) {
            total.merge(&progress.counts);
        }
        for (status, rows) in total.by_status() {
            self.deps
                .metrics
                .outbox_rows
                .with_label_values(&[status.as_str()])
                .set(rows);
        }
    }

    /// After [`StopLanes`]: answers the waiters once no lane runs.
    fn answer_if_stopped(&mut self) {
        let idle = self.runs.values().all(|run| run.lanes.is_empty());
        if idle {
            for waiter in self.stopping.iter_mut().flat_map(std::mem::take) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Handler<TickDone> for CampaignEngine {
    type Result = ();

    fn handle(&mut self, _: TickDone, ctx: &mut Context<Self>) {
        self.ticking = false;
        self.count_rows();
        if std::mem::take(&mut self.retick) {
            self.tick(ctx);
        }
    }
}

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

/// What a tick learned about one running campaign.
struct TickReport {
    campaign: Campaign,
    progress: Progress,
    /// Online devices of the campaign's choice (with their link age).
    online: Vec<Device>,
    /// When it was read, and how long that took.
    read_at: Instant,
    cost: Duration,
}

impl CampaignEngine {
    /// Registers a running or paused campaign and lets the next tick start its lanes.
    fn resume_run(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        if self.runs.contains_key(&campaign.id) || !self.planning.insert(campaign.id) {
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
                _ if !engine.planning.remove(&id) => {} // Dropped by a restart meanwhile.
                Ok((campaign, plan)) => {
                    let control = if campaign.state() == CampaignStatus::Paused {
                        Control::Pause
                    } else {
                        Control::Run
                    };
                    engine
                        .runs
                        .insert(id, Run::new(plan, control, campaign.on_device_loss()));
                    engine.tick_soon(ctx);
                }
                Err(err) => tracing::error!(campaign_id = id, error = %err, "cannot run campaign"),
            }),
        );
    }

    /// Ticks now, or as soon as the tick under way is done (an interval tick that finds one
    /// under way is skipped instead).
    fn tick_soon(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            self.retick = true;
        } else {
            self.tick(ctx);
        }
    }

    /// Periodic work: start due scheduled campaigns; for each running one publish progress,
    /// complete it when nothing is left, move rows of lost devices, and start missing lanes.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking || self.stopping.is_some() {
            return;
        }
        self.ticking = true;
        let db = self.deps.db.clone();
        let leader = self.deps.cluster.is_leader();
        // On a cluster a campaign may start or resume on another node: every node looks for
        // runs it does not know, to send through its own devices.
        let clustered = self.deps.cluster.node_id().is_some();
        let now = Instant::now();
        let runs: Vec<i64> = self
            .runs
            .iter()
            .filter(|(_, run)| run.report_due <= now)
            .map(|(id, _)| *id)
            .collect();
        ctx.spawn(
            async move {
                // Scheduled starts run once in a cluster: on the leader.
                let due = if leader {
                    due_scheduled(&db).await
                } else {
                    Vec::new()
                };
                let active = if clustered {
                    let states = [CampaignStatus::Running, CampaignStatus::Paused];
                    store::campaigns_in(&db, &states).await.unwrap_or_default()
                } else {
                    Vec::new()
                };
                let mut reports = Vec::new();
                let mut gone = Vec::new();
                for id in runs {
                    match report(&db, id).await {
                        Ok(report) => reports.push(report),
                        // Deleted (a sequence and its carrier): stop its lanes.
                        Err(DbError::NotFound) => gone.push(id),
                        Err(err) => {
                            tracing::warn!(campaign_id = id, error = %err, "campaign tick failed")
                        }
                    }
                }
                (due, active, reports, gone)
            }
            .into_actor(self)
            .map(|(due, active, reports, gone), engine, ctx| {
                for campaign in active {
                    engine.resume_run(campaign, ctx);
                }
                for id in gone {
                    if let Some(mut run) = engine.runs.remove(&id) {
                        run.set_control(Control::Cancel);
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
        if self.stopping.is_some() {
            return; // The daemon is stopping: no lane starts, nothing moves.
        }
        let id = report.campaign.id;
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        // A campaign of a million rows takes a while to count: it is counted less often, so
        // counting never takes more than 1/REPORT_COST_FACTOR of the database's time.
        run.report_due = Instant::now() + report.cost * REPORT_COST_FACTOR;
        let state = report.campaign.state();
        if !matches!(state, CampaignStatus::Running | CampaignStatus::Paused) {
            // Cancelled or completed elsewhere (another node, or a finished run).
            self.stop_run(report.campaign);
            return;
        }
        // Paused or resumed on another node of a cluster: follow it.
        let wanted = if state == CampaignStatus::Paused {
            Control::Pause
        } else {
            Control::Run
        };
        if matches!(run.control, Control::Run | Control::Pause)
            && run.control != wanted
            && report.read_at > run.control_set_at
        {
            run.set_control(wanted);
        }
        if run.last.as_ref() != Some(&report.progress) {
            publish(&self.deps.hub, &report.campaign, &report.progress);
            run.last = Some(report.progress.clone());
        }
        let distribution = report.campaign.distribution();
        // Once-only work (completion, moving a lost device's rows, balancing) is the leader's;
        // every node runs the lanes of its own devices.
        let leader = self.deps.cluster.is_leader();
        if leader
            && state == CampaignStatus::Running
            && report.progress.counts.unsent() == 0
            && distribution.completes()
        {
            self.complete(report.campaign, ctx);
            return;
        }
        if state != CampaignStatus::Running {
            return;
        }
        let (online, here) = run.usable(&report.online, &self.deps.cluster);
        let online_ids: Vec<i64> = online.keys().copied().collect();
        run.withdraw_lanes_outside(id, &here);
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
                    if let (Some(device), false) =
                        (here.get(&device_id), run.lanes.contains_key(&device_id))
                    {
                        spawn_lane(&self.deps, run, id, (*device).clone(), ctx);
                    }
                }
                Some(_) if run.on_loss == OnDeviceLoss::Wait => {}
                lost => to_move.push(lost),
            }
        }
        if !leader {
            return;
        }
        match distribution {
            Distribution::Ai { per_device_limit } => {
                if !to_move.is_empty() {
                    self.move_within_limits(&report, to_move, per_device_limit, ctx);
                }
            }
            _ if !to_move.is_empty() && !online_ids.is_empty() => {
                let db = self.deps.db.clone();
                ctx.spawn(
                    async move {
                        for from in to_move {
                            match outbox_store::reassign(&db, id, from, &online_ids, None).await {
                                Ok(moved) if moved > 0 => tracing::info!(campaign_id = id, from_device = ?from, moved, "moved unsent messages to online devices"),
                                Ok(_) => {}
                                Err(err) => tracing::warn!(campaign_id = id, error = %err, "could not move unsent messages"),
                            }
                        }
                    }
                    .into_actor(self),
                );
            }
            Distribution::Broadcast => self.balance(&report, ctx),
            Distribution::Sequence => {}
        }
    }

    /// AI distribution: a lost device's pending leads go to online devices with room under the
    /// per-device limit; what finds no room is skipped and its leads go back to the pool. One
    /// move at a time per campaign, on fresh counts.
    fn move_within_limits(
        &mut self,
        report: &TickReport,
        from: Vec<Option<i64>>,
        per_device_limit: u64,
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
        let limit = i64::try_from(per_device_limit).unwrap_or(i64::MAX);
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
                    for (device, status, n) in outbox_store::counts(&db, id).await? {
                        if let Some(device) = device.filter(|_| !matches!(status, OutboxStatus::Skipped | OutboxStatus::Failed)) {
                            *taken.entry(device).or_default() += n;
                        }
                    }
                    let mut room: Vec<(i64, i64)> = online
                        .iter()
                        .map(|d| (*d, (limit - taken.get(d).copied().unwrap_or(0)).max(0)))
                        .collect();
                    for lost in from {
                        for (device, left) in room.iter_mut().filter(|(_, left)| *left > 0) {
                            let moved = outbox_store::reassign(&db, id, lost, &[*device], Some(*left)).await?;
                            *left -= moved as i64;
                        }
                        // Only with no room left: a row its lane gives back after the moves
                        // above goes to the room on the next tick.
                        if room.iter().all(|(_, left)| *left == 0) {
                            let skipped = outbox_store::skip_device_pending(&db, id, lost, NO_CAPACITY).await?;
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
            .filter(|d| pending(d.id) == 0 && !run.lanes.contains_key(&d.id))
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
        let (db, time_scale, id, pacing) = (
            self.deps.db.clone(),
            self.deps.time_scale,
            report.campaign.id,
            run.plan.pacing.clone(),
        );
        ctx.spawn(
            async move {
                let receivers: Vec<i64> = match remaining_capacity(&db, time_scale, &idle, &pacing).await {
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
                if let Err(err) = outbox_store::reassign(&db, id, Some(donor), &receivers, Some(share)).await {
                    tracing::warn!(campaign_id = id, error = %err, "could not balance the campaign");
                }
            }
            .into_actor(self),
        );
    }

    /// Marks a campaign completed, unless it changed since `campaign` was read (failed rows were
    /// retried meanwhile: the next tick decides again), and publishes its final progress.
    fn complete(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        let id = campaign.id;
        let seen = campaign.updated_at;
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                let completed = store::complete_unless_changed(&db, id, seen).await?;
                Ok::<_, DbError>((completed, store::find_campaign(&db, id).await?))
            }
            .into_actor(self)
            .map(move |result, engine, ctx| match result {
                Ok((true, campaign)) => {
                    if let Some(mut run) = engine.runs.remove(&id) {
                        run.set_control(Control::Cancel);
                    }
                    tracing::info!(campaign_id = id, "campaign completed");
                    engine.publish_now(campaign, ctx);
                }
                Ok((false, _)) => {
                    tracing::debug!(campaign_id = id, "campaign changed before completing");
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
        run.set_control(Control::Cancel);
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

/// Spawns the lane of `device` for campaign `id` and registers it in `run`; it reports its end
/// to the engine.
fn spawn_lane(
    deps: &EngineDeps,
    run: &mut Run,
    id: i64,
    device: Device,
    ctx: &mut Context<CampaignEngine>,
) {
    let (db, throttle, fleet) = (deps.db.clone(), deps.throttle.clone(), deps.fleet.clone());
    let fence = deps.cluster.lease(device.id).fence();
    let plan = run.plan.clone();
    let (lane_control, control) = watch::channel(run.control);
    run.lanes.insert(device.id, lane_control);
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
                    fence,
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
async fn report(db: &Db, id: i64) -> Result<TickReport, DbError> {
    let started = Instant::now();
    let campaign = store::find_campaign(db, id).await?;
    let progress = progress(db, &campaign).await?;
    let online = online_devices(db, &campaign).await?;
    Ok(TickReport {
        campaign,
        progress,
        online,
        read_at: started,
        cost: started.elapsed(),
    })
}
