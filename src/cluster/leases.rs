//! `NodeLeases`: this node's membership of the cluster. It registers the node, then every
//! `cluster.claim_ms` runs one round, one round at a time:
//!
//! 1. every `cluster.heartbeat_secs`: heartbeat, renew all leases (one statement, whose answer
//!    is the set of devices this node owns: new ones start, lost ones stop), the leader lease,
//!    the nodes' loads and the demand, and (leader) the upkeep sweep; between heartbeats one
//!    cheap look for expired leases, which re-reads the loads when a node died;
//! 2. hand-overs decided by [`placement`] (stop the device here, then write its lease to the
//!    receiving node), at most `cluster.handovers_per_second` and a fifth of a heartbeat per round;
//! 3. claims: devices asked for here (created, reconnected on this node), then ownerless ones
//!    up to this node's share.
//!
//! When the database stays unreachable until a lease could have expired, it stops every device
//! first (no two nodes ever run one device); they come back with the next successful renewal.
//! After `Freeze` (shutdown) it starts and hands over nothing; `Leave` gives every lease up.
//!
//! Handles `ClaimHere`, `Freeze`, `Leave`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::identity::NodeIdentity;
use super::placement::{self, NodeLoad};
use super::store::{self, ClusterDb, HeldLease, NodeRow};
use super::ClusterView;
use crate::config::ClusterSettings;
use crate::db::{Db, DbError};
use crate::device::admission::Priority;
use crate::device::messages::{StartDevice, StopDevice};
use crate::device::model::Device;
use crate::device::store as device_store;
use crate::device::supervisor::DeviceSupervisor;

/// A node above its share by at most this many devices keeps them. Zero is safe: a device only
/// goes to a node below its share, and shares are rounded up, so no device moves back and forth.
const SLACK: u64 = 0;

/// How often the leader repeats that devices have no node with room.
const NO_ROOM_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Runs a device on this node now (a device created or reconnected here), unless another
/// node runs it; answers whether it runs here.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct ClaimHere {
    /// The device.
    pub device: Device,
    /// Priority of its first connect.
    pub priority: Priority,
}

/// The daemon is stopping: start, claim and hand over nothing more (heartbeats go on).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Freeze;

/// The devices are disconnected: give every lease up so the other nodes take them at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// A claim asked for by [`ClaimHere`], waiting for the next round.
struct Asked {
    device: Device,
    priority: Priority,
    reply: tokio::sync::oneshot::Sender<Result<bool, DbError>>,
}

/// What the node last learnt of the cluster.
#[derive(Default)]
struct Snapshot {
    nodes: Vec<NodeLoad>,
    wanted: u64,
    orphans: u64,
    /// Ownerless devices were seen at the previous heartbeat too.
    orphans_stale: bool,
    draining: bool,
}

/// The actor; see the module documentation.
pub struct NodeLeases {
    db: Db,
    cluster_db: ClusterDb,
    view: ClusterView,
    supervisor: Addr<DeviceSupervisor>,
    settings: ClusterSettings,
    identity: NodeIdentity,
    registered: bool,
    busy: bool,
    frozen: bool,
    /// Another process took this node's name: this one runs nothing any more.
    superseded: bool,
    last_heartbeat: Option<Instant>,
    /// When a renewal last succeeded (the leases held until at least then + lease time).
    renewed_at: Option<Instant>,
    /// Devices were stopped because the leases could not be renewed.
    fenced_off: bool,
    snapshot: Snapshot,
    /// Hand-overs allowed now (refills at `handovers_per_second`, at most one second's worth).
    handover_tokens: f64,
    tokens_at: Instant,
    asked: Vec<Asked>,
    /// When the leader last warned that ownerless devices have no node with room.
    warned_no_room: Option<Instant>,
}

/// What one round did, for the actor to note.
#[derive(Default)]
struct Round {
    heartbeat: Option<Result<Heartbeat, DbError>>,
    /// Loads read between heartbeats, after expired leases were seen.
    refreshed: Option<Loads>,
    claimed_orphans: usize,
}

/// A heartbeat's findings.
struct Heartbeat {
    /// `None`: another process took this node's name.
    draining: Option<bool>,
    /// Just before the renewal was sent: the leases hold at least a lease time from then.
    renewed_at: Instant,
    loads: Loads,
}

/// The nodes' loads and the demand.
#[derive(Default)]
struct Loads {
    nodes: Vec<NodeLoad>,
    wanted: u64,
    orphans: u64,
}

/// What a round needs, cloned out of the actor.
struct RoundPlan {
    db: Db,
    cluster_db: ClusterDb,
    view: ClusterView,
    supervisor: Addr<DeviceSupervisor>,
    identity: NodeIdentity,
    lease_secs: f64,
    register: bool,
    heartbeat: bool,
    /// Between heartbeats: look for expired leases (a node died).
    probe: bool,
    capacity: u32,
    handovers: Vec<(HeldLease, String)>,
    /// How long a round may spend handing devices over.
    handover_budget: Duration,
    asked: Vec<Asked>,
    claim_limit: u64,
    frozen: bool,
}

impl NodeLeases {
    /// The actor for this node; nothing runs until it is started.
    pub fn new(
        db: Db,
        cluster_db: ClusterDb,
        view: ClusterView,
        supervisor: Addr<DeviceSupervisor>,
        settings: ClusterSettings,
        identity: NodeIdentity,
    ) -> Self {
        Self {
            db,
            cluster_db,
            view,
            supervisor,
            settings,
            identity,
            registered: false,
            busy: false,
            frozen: false,
            superseded: false,
            last_heartbeat: None,
            renewed_at: None,
            fenced_off: false,
            snapshot: Snapshot::default(),
            handover_tokens: 0.0,
            tokens_at: Instant::now(),
            asked: Vec::new(),
            warned_no_room: None,
        }
    }

    fn lease_secs(&self) -> f64 {
        self.settings.lease_secs as f64
    }

    /// Starts a round unless one runs.
    fn round(&mut self, ctx: &mut Context<Self>) {
        // First, even while a round hangs on an unreachable database.
        self.fence_off_if_unrenewed();
        if self.busy || self.superseded {
            return;
        }
        let heartbeat = self
            .last_heartbeat
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(self.settings.heartbeat_secs));
        if !heartbeat && self.asked.is_empty() && self.frozen {
            return;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.tokens_at).as_secs_f64();
        self.tokens_at = now;
        let rate = self.settings.handovers_per_second;
        self.handover_tokens = (self.handover_tokens + refill * rate).min(rate.max(1.0));
        let handovers = if self.frozen || self.fenced_off {
            Vec::new()
        } else {
            self.plan_handovers()
        };
        let claim_limit = if self.frozen || self.fenced_off || !self.registered {
            0
        } else {
            self.claim_limit()
        };
        let plan = RoundPlan {
            db: self.db.clone(),
            cluster_db: self.cluster_db.clone(),
            view: self.view.clone(),
            supervisor: self.supervisor.clone(),
            identity: self.identity.clone(),
            lease_secs: self.lease_secs(),
            register: !self.registered,
            heartbeat,
            probe: !heartbeat && self.registered && self.snapshot.orphans == 0,
            capacity: self.settings.capacity,
            handover_budget: Duration::from_secs(self.settings.heartbeat_secs) / 5,
            handovers,
            asked: std::mem::take(&mut self.asked),
            claim_limit,
            frozen: self.frozen,
        };
        self.busy = true;
        ctx.spawn(run_round(plan).into_actor(self).map(|round, this, ctx| {
            this.busy = false;
            this.note(round);
            if !this.asked.is_empty() {
                this.round(ctx);
            }
        }));
    }

    /// How many ownerless devices to claim this round.
    fn claim_limit(&self) -> u64 {
        let snapshot = &self.snapshot;
        if snapshot.orphans == 0 || snapshot.draining {
            return 0;
        }
        let shares = placement::shares(&snapshot.nodes, snapshot.wanted);
        let share = shares.get(&self.identity.id).copied().unwrap_or(0);
        let owned = self.view.owned_count().unwrap_or(0) as u64;
        placement::claim_limit(
            owned,
            share,
            u64::from(self.settings.capacity),
            snapshot.orphans_stale,
        )
        .min(snapshot.orphans)
    }

    /// The hand-overs this round makes: as many as the tokens allow, each to the node furthest
    /// below its share (counted as received at once, so one round spreads them).
    fn plan_handovers(&mut self) -> Vec<(HeldLease, String)> {
        let mut nodes = self.snapshot.nodes.clone();
        if nodes.is_empty() {
            return Vec::new();
        }
        let shares = placement::shares(&nodes, self.snapshot.wanted);
        let mut held: Vec<(i64, i64)> = self.view.held().into_iter().collect();
        held.sort_unstable();
        let mut owned = held.len() as u64;
        let mut planned = Vec::new();
        while self.handover_tokens >= 1.0 {
            let Some(to) = placement::handover_target(
                &self.identity.id,
                owned,
                self.snapshot.draining,
                &nodes,
                &shares,
                SLACK,
            ) else {
                break;
            };
            let to = to.id.clone();
            let Some((device_id, epoch)) = held.pop() else {
                break;
            };
            if let Some(node) = nodes.iter_mut().find(|n| n.id == to) {
                node.devices += 1;
            }
            owned -= 1;
            self.handover_tokens -= 1.0;
            planned.push((HeldLease { device_id, epoch }, to));
        }
        planned
    }

    /// Stops every device once a lease time less one heartbeat has passed unrenewed (timed from
    /// before the last renewal statement): better offline for a moment than running on two
    /// nodes. The last heartbeat's worth is the time the sessions have to close before another
    /// node may take the devices.
    fn fence_off_if_unrenewed(&mut self) {
        let Some(renewed_at) = self.renewed_at else {
            return;
        };
        let safe = Duration::from_secs(
            self.settings
                .lease_secs
                .saturating_sub(self.settings.heartbeat_secs),
        );
        if self.fenced_off || renewed_at.elapsed() < safe {
            return;
        }
        self.fenced_off = true;
        tracing::error!(
            devices = self.view.owned_count().unwrap_or(0),
            "cannot renew device leases; stopping this node's devices before another node may take them"
        );
        self.stop_all();
    }

    /// Stops every device this node holds and gives up leading (in memory: the leases expire).
    fn stop_all(&mut self) {
        self.view.set_leader(false);
        for device_id in self.view.held().into_keys() {
            self.view.drop_lease(device_id);
            self.supervisor.do_send(StopDevice {
                device_id,
                forget: true,
            });
        }
    }

    /// Notes what a round learnt.
    fn note(&mut self, round: Round) {
        self.registered = true;
        if round.claimed_orphans > 0 {
            tracing::info!(
                devices = round.claimed_orphans,
                owned = self.view.owned_count().unwrap_or(0),
                "claimed devices without a live owner"
            );
        }
        match round.heartbeat {
            None => {}
            Some(Err(err)) => {
                tracing::warn!(error = %err, "cluster heartbeat failed");
            }
            Some(Ok(beat)) => {
                self.last_heartbeat = Some(Instant::now());
                let Some(draining) = beat.draining else {
                    self.supersede();
                    return;
                };
                self.renewed_at = Some(beat.renewed_at);
                self.fenced_off = false;
                let stale = self.snapshot.orphans > 0 && beat.loads.orphans > 0;
                self.snapshot = Snapshot {
                    nodes: beat.loads.nodes,
                    wanted: beat.loads.wanted,
                    orphans: beat.loads.orphans,
                    orphans_stale: stale,
                    draining,
                };
                self.warn_if_no_room();
            }
        }
        if let Some(loads) = round.refreshed {
            self.snapshot.nodes = loads.nodes;
            self.snapshot.wanted = loads.wanted;
            self.snapshot.orphans = loads.orphans;
        }
    }

    /// On the leader, at most once a minute: devices that stayed ownerless past a heartbeat while
    /// every node is at capacity cannot run anywhere until a node joins or capacities grow.
    fn warn_if_no_room(&mut self) {
        let snapshot = &self.snapshot;
        if !self.view.is_leader()
            || !snapshot.orphans_stale
            || placement::room(&snapshot.nodes) > 0
            || self
                .warned_no_room
                .is_some_and(|at| at.elapsed() < NO_ROOM_WARNING_EVERY)
        {
            return;
        }
        self.warned_no_room = Some(Instant::now());
        tracing::warn!(
            devices = snapshot.orphans,
            "devices have no node with room (every live node is at cluster.capacity); they stay \
             offline until a node joins or comes back, or capacities are raised"
        );
    }

    /// Another process took this node's name: stop everything, for good.
    fn supersede(&mut self) {
        self.superseded = true;
        tracing::error!(
            node = %self.identity.id,
            devices = self.view.owned_count().unwrap_or(0),
            "another daemon registered under this node's name; this one stops its devices"
        );
        self.stop_all();
    }
}

/// One round; see the module documentation.
async fn run_round(mut plan: RoundPlan) -> Round {
    let mut round = Round::default();
    let node = plan.identity.id.clone();
    if plan.register {
        let row = NodeRow {
            id: &node,
            incarnation: &plan.identity.incarnation,
            address: &plan.identity.address,
            version: env!("CARGO_PKG_VERSION"),
            capacity: i32::try_from(plan.capacity).unwrap_or(i32::MAX),
        };
        if let Err(err) = store::register(&plan.cluster_db, &row).await {
            tracing::warn!(error = %err, "cannot register this node");
            refuse_asked(&mut plan.asked);
            return round;
        }
        tracing::info!(node = %node, address = %plan.identity.address, "joined the cluster");
    }
    let started = Instant::now();
    if plan.heartbeat {
        round.heartbeat = Some(heartbeat(&plan).await);
    } else if plan.probe {
        round.refreshed = match store::expired_leases_exist(&plan.cluster_db).await {
            Ok(true) => loads(&plan).await.ok(),
            Ok(false) => None,
            Err(err) => {
                tracing::debug!(error = %err, "cannot look for expired leases");
                None
            }
        };
    }
    // After the heartbeat, so a slow stop never delays a renewal; and time-boxed, so the next
    // round (and heartbeat) comes on time. A hand-over cut short leaves its lease here: the
    // next renewal starts the device here again, and it is planned anew.
    let left = plan.handover_budget.saturating_sub(started.elapsed());
    let handovers = std::mem::take(&mut plan.handovers);
    let handing = async {
        for (lease, to) in handovers {
            hand_over(&plan, lease, &to).await;
        }
    };
    if tokio::time::timeout(left, handing).await.is_err() {
        tracing::debug!("hand-overs cut short by the round's time box");
    }
    if plan.frozen {
        refuse_asked(&mut plan.asked);
        return round;
    }
    let mut started = Vec::new();
    for asked in std::mem::take(&mut plan.asked) {
        let claimed =
            store::claim_one(&plan.cluster_db, &node, plan.lease_secs, asked.device.id).await;
        let answer = match claimed {
            Ok(Some(lease)) => {
                plan.view.hold(lease.device_id, lease.epoch);
                plan.supervisor.do_send(StartDevice {
                    device: asked.device,
                    priority: asked.priority,
                    fence: plan.view.lease(lease.device_id).fence(),
                });
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(err) => Err(err),
        };
        let _ = asked.reply.send(answer);
    }
    if plan.claim_limit > 0 {
        let limit = i64::try_from(plan.claim_limit).unwrap_or(i64::MAX);
        match store::claim_orphans(&plan.cluster_db, &node, plan.lease_secs, limit).await {
            Ok(leases) => {
                round.claimed_orphans = leases.len();
                for lease in &leases {
                    plan.view.hold(lease.device_id, lease.epoch);
                }
                started.extend(leases.iter().map(|l| l.device_id));
            }
            Err(err) => tracing::warn!(error = %err, "cannot claim devices"),
        }
    }
    boot(&plan, &started).await;
    round
}

/// Answers every waiting [`ClaimHere`] with "not here".
fn refuse_asked(asked: &mut Vec<Asked>) {
    for asked in asked.drain(..) {
        let _ = asked.reply.send(Ok(false));
    }
}

/// Stops `lease`'s device here, then writes its lease to node `to`. If the write fails the
/// lease stays this node's and the next renewal starts the device here again.
async fn hand_over(plan: &RoundPlan, lease: HeldLease, to: &str) {
    plan.view.drop_lease(lease.device_id);
    let _ = plan
        .supervisor
        .send(StopDevice {
            device_id: lease.device_id,
            forget: true,
        })
        .await;
    let from = plan.identity.id.as_str();
    match store::hand_over(&plan.cluster_db, lease, from, to, plan.lease_secs).await {
        Ok(true) => tracing::info!(device_id = lease.device_id, to, "handed a device over"),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(device_id = lease.device_id, error = %err, "hand-over failed")
        }
    }
}

/// Heartbeat, renewal (starting and stopping devices to match it), leader lease, loads and
/// demand, and the leader's sweep.
async fn heartbeat(plan: &RoundPlan) -> Result<Heartbeat, DbError> {
    let (db, node) = (&plan.cluster_db, plan.identity.id.as_str());
    let Some(draining) = store::heartbeat(db, node, &plan.identity.incarnation).await? else {
        return Ok(Heartbeat {
            draining: None,
            renewed_at: Instant::now(),
            loads: Loads::default(),
        });
    };
    let renewed_at = Instant::now();
    let renewed = store::renew(db, node, plan.lease_secs).await?;
    if !plan.frozen {
        follow_renewal(plan, &renewed).await;
    }
    let leader = !plan.frozen && store::lead(db, node, plan.lease_secs).await?;
    plan.view.set_leader(leader);
    if leader {
        let reset = store::sweep(db, plan.lease_secs).await?;
        if reset > 0 {
            tracing::info!(
                devices = reset,
                "pairings of stopped nodes were reset to new"
            );
        }
    }
    Ok(Heartbeat {
        draining: Some(draining),
        renewed_at,
        loads: loads(plan).await?,
    })
}

/// The nodes' loads and the demand.
async fn loads(plan: &RoundPlan) -> Result<Loads, DbError> {
    let db = &plan.cluster_db;
    let nodes = store::nodes(db, plan.lease_secs)
        .await?
        .into_iter()
        .map(|n| NodeLoad {
            capacity: u64::try_from(n.capacity).unwrap_or(0),
            devices: u64::try_from(n.devices).unwrap_or(0),
            live: n.live,
            draining: n.draining,
            id: n.id,
        })
        .collect();
    let (wanted, orphans) = store::demand(db).await?;
    Ok(Loads {
        nodes,
        wanted,
        orphans,
    })
}

/// Makes the running devices match the renewed leases: ones this node no longer holds stop,
/// ones it holds now (handed over to it, or with a new epoch) start.
async fn follow_renewal(plan: &RoundPlan, renewed: &[HeldLease]) {
    let held = plan.view.held();
    let now: HashMap<i64, i64> = renewed.iter().map(|l| (l.device_id, l.epoch)).collect();
    for device_id in held.keys().filter(|id| !now.contains_key(id)) {
        tracing::warn!(
            device_id,
            "lost a device's lease to another node; stopping it here"
        );
        plan.view.drop_lease(*device_id);
        plan.supervisor.do_send(StopDevice {
            device_id: *device_id,
            forget: true,
        });
    }
    let mut start = Vec::new();
    for lease in renewed {
        if held.get(&lease.device_id) != Some(&lease.epoch) {
            plan.view.hold(lease.device_id, lease.epoch);
            start.push(lease.device_id);
        }
    }
    boot(plan, &start).await;
}

/// Loads and starts devices this node just came to hold.
async fn boot(plan: &RoundPlan, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    match device_store::devices_by_ids(&plan.db, ids).await {
        Ok(devices) => {
            let found: HashSet<i64> = devices.iter().map(|d| d.id).collect();
            for missing in ids.iter().filter(|id| !found.contains(id)) {
                plan.view.drop_lease(*missing);
            }
            DeviceSupervisor::boot_devices(&plan.supervisor, devices, |id| {
                plan.view.lease(id).fence()
            });
        }
        Err(err) => {
            // Held but not started: the next renewal starts them (their epoch is unknown here).
            tracing::warn!(error = %err, devices = ids.len(), "cannot load claimed devices");
            for id in ids {
                plan.view.drop_lease(*id);
            }
        }
    }
}

impl Actor for NodeLeases {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        let every = Duration::from_millis(self.settings.claim_ms);
        ctx.run_interval(every, |this, ctx| this.round(ctx));
    }
}

impl actix::Supervised for NodeLeases {
    /// What it knows survives; `started` re-arms the rounds. A round cut short is run again.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.busy = false;
    }
}

impl Handler<ClaimHere> for NodeLeases {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: ClaimHere, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.superseded || self.frozen {
            let _ = reply.send(Ok(false));
        } else {
            self.asked.push(Asked {
                device: msg.device,
                priority: msg.priority,
                reply,
            });
            self.round(ctx);
        }
        Box::pin(async move { answer.await.unwrap_or(Ok(false)) })
    }
}

impl Handler<Freeze> for NodeLeases {
    type Result = ();

    fn handle(&mut self, _: Freeze, _: &mut Context<Self>) {
        self.frozen = true;
    }
}

impl Handler<Leave> for NodeLeases {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        self.frozen = true;
        let (db, node, incarnation) = (
            self.cluster_db.clone(),
            self.identity.id.clone(),
            self.identity.incarnation.clone(),
        );
        Box::pin(
            async move {
                match store::leave(&db, &node, &incarnation).await {
                    Ok(released) => tracing::info!(devices = released, "left the cluster"),
                    Err(err) => {
                        tracing::warn!(error = %err, "could not give the leases up; they expire")
                    }
                }
            }
            .into_actor(self)
            .map(|_, this, _| {
                this.superseded = true;
                for device_id in this.view.held().into_keys() {
                    this.view.drop_lease(device_id);
                }
            }),
        )
    }
}
