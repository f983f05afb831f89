//! `DeviceSupervisor`: the registry of device actors and the policy that keeps them running.
//!
//! Handles: `StartDevice`, `StopDevice`, `RequestAdmission`, `ConnectSettled`, `StatusChanged`,
//! `ActorRestarted`, `RestartDevices`, `GetDeviceActor`, `GetSupervision`, `Drain`, `Shutdown`.
//! Sends: `Admitted`, `Park`, `Retire`, `Reconnect` to device actors.
//!
//! - Boot: every paired device (not logged out or banned) is started, previously online ones
//!   first, and progress is logged and exposed.
//! - Admission: each connect (boot, reconnect, restart) passes one queue limited to K in flight
//!   and R per second, so a fleet-wide drop comes back as a trickle, not a stampede.
//! - Crashes: actors live on several arbiters. A panic kills one arbiter with its actors; the
//!   health check finds their mailboxes dead, replaces the arbiter and re-creates the actors
//!   after their backoff. After N restarts in the window a device is parked with a reason.
//! - Itself: runs under an `actix::Supervisor`; a restart keeps the registry (the device actors
//!   live on their own arbiters) and re-arms its timers. After `Shutdown` it stays idle.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus::{IntCounter, IntGaugeVec, Opts};

use super::actor::{DeviceActor, DeviceDeps};
use super::admission::{AdmissionQueue, Priority};
use super::backoff::{Backoff, RestartBudget};
use super::events::EventBus;
use super::messages::*;
use super::model::{Device, DeviceStatus, DeviceStatusPatch};
use super::store;
use crate::chat::messages::ChatInbox;
use crate::config::FleetSettings;
use crate::db::{Db, Fence};
use crate::whatsapp::Connector;

/// How often the admission queue is drained.
const ADMISSION_TICK: Duration = Duration::from_millis(20);
/// How often the per-status device gauges are brought up to date (when a device changed).
const GAUGE_REFRESH: Duration = Duration::from_millis(500);
/// How long shutdown waits for sessions to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Prometheus collectors of the fleet.
#[derive(Clone)]
pub struct FleetMetrics {
    /// `wafleet_devices{status}`.
    pub devices: IntGaugeVec,
    /// `wafleet_device_restarts_total`.
    pub restarts: IntCounter,
}

impl FleetMetrics {
    /// Creates and registers the collectors.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let devices = IntGaugeVec::new(
            Opts::new("devices", "Devices per lifecycle status"),
            &["status"],
        )?;
        let restarts = IntCounter::new(
            "device_restarts_total",
            "Device restarts (crashes, dropped sessions)",
        )?;
        registry.register(Box::new(devices.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        Ok(Self { devices, restarts })
    }
}

/// What the supervisor knows about one device.
struct Entry {
    device: Device,
    /// The device's lease as this daemon holds it; its actors' sessions fence store writes.
    fence: Option<Fence>,
    addr: Option<Addr<DeviceActor>>,
    arbiter: usize,
    status: DeviceStatus,
    budget: RestartBudget,
    /// Consecutive crashes, for the re-creation backoff.
    crashes: u32,
    /// When its pending backoff ends.
    due_at: Option<Instant>,
    parked_reason: Option<String>,
    /// Started at boot (counts in the boot progress).
    from_boot: bool,
    settled_once: bool,
}

/// Supervisor configuration and collaborators.
pub struct SupervisorDeps {
    /// Database.
    pub db: Db,
    /// Connector shared by all devices.
    pub connector: Arc<dyn Connector>,
    /// Device event bus.
    pub bus: EventBus,
    /// Fleet settings.
    pub settings: FleetSettings,
    /// Divides backoff delays (simulator `--time-scale`).
    pub time_scale: f64,
    /// Metrics.
    pub metrics: FleetMetrics,
    /// Shared draining flag, read by `/readyz`.
    pub draining: Arc<AtomicBool>,
    /// Where device actors send chat traffic.
    pub chat: ChatInbox,
}

/// The device registry and restart policy.
pub struct DeviceSupervisor {
    deps: SupervisorDeps,
    backoff: Backoff,
    arbiters: Vec<ArbiterHandle>,
    /// Keeps the arbiters' threads owned; replaced ones are dropped.
    owned_arbiters: Vec<Arbiter>,
    arbiters_replaced: u64,
    registry: HashMap<i64, Entry>,
    queue: AdmissionQueue,
    restarts_total: u64,
    draining: bool,
    boot_started: Instant,
    boot_finished_after: Option<Duration>,
    /// Set by `Shutdown`: a restart after it stays idle.
    shut_down: bool,
    /// A device was added, removed or changed status since the gauges were last set.
    gauges_stale: bool,
    /// Up while it runs (see [`DeviceSupervisor::watched`]).
    beacon: crate::metrics::Beacon,
}

impl DeviceSupervisor {
    /// A supervisor with its arbiters; call [`DeviceSupervisor::boot`] once it runs.
    pub fn new(deps: SupervisorDeps) -> Self {
        let count = match deps.settings.arbiters {
            0 => 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let owned_arbiters: Vec<Arbiter> = (0..count).map(|_| Arbiter::new()).collect();
        let scale = deps.time_scale.max(f64::MIN_POSITIVE);
        let backoff = Backoff {
            base: Duration::from_millis(deps.settings.backoff_base_ms).div_f64(scale),
            max: Duration::from_millis(deps.settings.backoff_max_ms).div_f64(scale),
        };
        let queue = AdmissionQueue::new(
            deps.settings.max_connects_in_flight,
            deps.settings.connects_per_second,
            Instant::now(),
        );
        Self {
            arbiters: owned_arbiters.iter().map(Arbiter::handle).collect(),
            owned_arbiters,
            arbiters_replaced: 0,
            backoff,
            registry: HashMap::new(),
            queue,
            restarts_total: 0,
            draining: false,
            boot_started: Instant::now(),
            boot_finished_after: None,
            shut_down: false,
            gauges_stale: false,
            beacon: crate::metrics::Beacon::detached(),
            deps,
        }
    }

    /// The same supervisor, reporting whether it runs on `beacon`.
    pub fn watched(mut self, beacon: crate::metrics::Beacon) -> Self {
        self.beacon = beacon;
        self
    }

    /// Loads every device worth connecting and starts them, online ones first (one daemon on
    /// its database; a cluster node boots the devices it claims, see `crate::cluster`).
    pub async fn boot(addr: Addr<DeviceSupervisor>, db: Db) -> Result<usize, crate::db::DbError> {
        let reset = store::reset_interrupted_pairings(&db).await?;
        if reset > 0 {
            tracing::info!(
                devices = reset,
                "pairings interrupted by the restart were reset to new"
            );
        }
        let devices = store::list_bootable_devices(&db).await?;
        let total = devices.len();
        tracing::info!(devices = total, "booting device fleet");
        Self::boot_devices(&addr, devices, |_| None);
        Ok(total)
    }

    /// Starts stored devices as a boot does: each counts in the boot progress and is not online
    /// until its actor reconnects; ones that were online connect first. `fence_of` gives each
    /// device's lease as this daemon holds it (PostgreSQL clusters; `None` on one node).
    pub fn boot_devices(
        addr: &Addr<DeviceSupervisor>,
        devices: Vec<Device>,
        fence_of: impl Fn(i64) -> Option<Fence>,
    ) {
        for device in devices {
            let priority = if device.status == DeviceStatus::Online.as_str() {
                Priority::High
            } else {
                Priority::Normal
            };
            let fence = fence_of(device.id);
            addr.do_send(BootDevice {
                device,
                priority,
                fence,
            });
        }
    }

    /// Creates the actor of an entry on its arbiter (replacing the arbiter if it died).
    fn spawn_actor(&mut self, device_id: i64, ctx: &mut Context<Self>) {
        let Some(index) = self.registry.get(&device_id).map(|e| e.arbiter) else {
            return;
        };
        let index = index % self.arbiters.len().max(1);
        if !self.arbiter_alive(index) {
            self.replace_arbiter(index);
        }
        let Some(entry) = self.registry.get(&device_id) else {
            return;
        };
        let deps = DeviceDeps {
            db: self.deps.db.clone(),
            connector: self.deps.connector.clone(),
            bus: self.deps.bus.clone(),
            supervisor: ctx.address(),
            backoff: self.backoff,
            connect_timeout: Duration::from_secs(self.deps.settings.connect_timeout_secs),
            chat: self.deps.chat.clone(),
            fence: entry.fence.clone(),
        };
        let actor = DeviceActor::new(&entry.device, deps);
        let addr = actix::Supervisor::start_in_arbiter(&self.arbiters[index], move |_| actor);
        if let Some(entry) = self.registry.get_mut(&device_id) {
            entry.addr = Some(addr);
        }
    }

    /// Whether arbiter `index` still runs.
    fn arbiter_alive(&self, index: usize) -> bool {
        self.arbiters.get(index).is_some_and(|a| a.spawn(async {}))
    }

    /// Replaces a dead arbiter with a new one.
    fn replace_arbiter(&mut self, index: usize) {
        let arbiter = Arbiter::new();
        if let Some(slot) = self.arbiters.get_mut(index) {
            *slot = arbiter.handle();
        }
        if let Some(slot) = self.owned_arbiters.get_mut(index) {
            *slot = arbiter;
        }
        self.arbiters_replaced += 1;
        tracing::warn!(arbiter = index, "replaced a crashed device arbiter");
    }

    /// Registers a device (if new) and starts its actor.
    fn start(
        &mut self,
        device: Device,
        fence: Option<Fence>,
        from_boot: bool,
        ctx: &mut Context<Self>,
    ) {
        let id = device.id;
        let arbiter = (id.unsigned_abs() as usize) % self.arbiters.len().max(1);
        // A booted device is not online until its actor reconnects, whatever was stored.
        let status = if from_boot {
            DeviceStatus::Connecting
        } else {
            DeviceStatus::parse(&device.status).unwrap_or(DeviceStatus::New)
        };
        let entry = self.registry.entry(id).or_insert_with(|| Entry {
            device: device.clone(),
            fence: None,
            addr: None,
            arbiter,
            status,
            budget: RestartBudget::default(),
            crashes: 0,
            due_at: None,
            parked_reason: None,
            from_boot,
            settled_once: false,
        });
        entry.device = device;
        entry.fence = fence;
        entry.parked_reason = None;
        if let Some(old) = entry.addr.take() {
            old.do_send(Retire);
        }
        self.spawn_actor(id, ctx);
        self.gauges_stale = true;
    }

    /// Counts a restart against the device's budget; parks it (returns false) when spent.
    fn spend_restart(&mut self, device_id: i64, why: &str) -> bool {
        let limit = self.deps.settings.restart_budget;
        let window = Duration::from_secs(self.deps.settings.restart_window_secs);
        self.restarts_total += 1;
        self.deps.metrics.restarts.inc();
        let Some(entry) = self.registry.get_mut(&device_id) else {
            return false;
        };
        if entry.budget.spend(Instant::now(), limit, window) {
            return true;
        }
        let reason = format!(
            "restart budget spent: {} restarts within {}s (last: {why}); restart it by hand",
            entry.budget.used(),
            window.as_secs()
        );
        entry.parked_reason = Some(reason.clone());
        entry.due_at = None;
        self.queue.remove(device_id);
        match &entry.addr {
            Some(addr) if addr.connected() => addr.do_send(Park { reason }),
            _ => {
                // No live actor to persist it: write it here.
                entry.status = DeviceStatus::Parked;
                let db = self.deps.db.clone();
                let patch = DeviceStatusPatch {
                    status: Some(DeviceStatus::Parked.as_str().into()),
                    status_reason: Some(Some(reason)),
                    ..Default::default()
                };
                actix::spawn(async move {
                    if let Err(err) = store::update_status(&db, device_id, patch).await {
                        tracing::error!(device_id, error = %err, "cannot persist parked status");
                    }
                });
            }
        }
        false
    }

    /// Finds actors whose arbiter died and brings them back after a backoff.
    fn check_health(&mut self, ctx: &mut Context<Self>) {
        let dead: Vec<i64> = self
            .registry
            .iter()
            .filter(|(_, e)| e.addr.as_ref().is_some_and(|a| !a.connected()))
            .map(|(id, _)| *id)
            .collect();
        for device_id in dead {
            self.queue.remove(device_id);
            let Some(entry) = self.registry.get_mut(&device_id) else {
                continue;
            };
            entry.addr = None;
            entry.crashes = entry.crashes.saturating_add(1);
            let delay = self.backoff.delay(entry.crashes);
            tracing::error!(
                device_id,
                crashes = entry.crashes,
                delay_ms = delay.as_millis() as u64,
                "device actor crashed; restarting after backoff"
            );
            if !self.spend_restart(device_id, "actor crashed") {
                continue;
            }
            self.mark_crashed(device_id);
            if let Some(entry) = self.registry.get_mut(&device_id) {
                entry.due_at = Some(Instant::now() + delay);
            }
            ctx.run_later(delay, move |this, ctx| {
                let waiting = this
                    .registry
                    .get(&device_id)
                    .is_some_and(|e| e.addr.is_none() && e.parked_reason.is_none());
                if waiting && !this.draining {
                    if let Some(entry) = this.registry.get_mut(&device_id) {
                        entry.due_at = None;
                    }
                    this.spawn_actor(device_id, ctx);
                }
            });
        }
    }

    /// Persists `reconnecting` for a device whose actor died (nobody else will).
    fn mark_crashed(&mut self, device_id: i64) {
        if let Some(entry) = self.registry.get_mut(&device_id) {
            entry.status = DeviceStatus::Reconnecting;
        }
        let db = self.deps.db.clone();
        let patch = DeviceStatusPatch {
            status: Some(DeviceStatus::Reconnecting.as_str().into()),
            status_reason: Some(Some("device actor crashed; restarting".into())),
            ..Default::default()
        };
        actix::spawn(async move {
            if let Err(err) = store::update_status(&db, device_id, patch).await {
                tracing::error!(device_id, error = %err, "cannot persist crash status");
            }
        });
    }

    /// Admits queued connects.
    fn admit(&mut self) {
        if self.draining {
            return;
        }
        for device_id in self.queue.admit(Instant::now()) {
            match self.registry.get(&device_id).and_then(|e| e.addr.clone()) {
                Some(addr) => addr.do_send(Admitted),
                None => self.queue.settle(device_id),
            }
        }
    }

    /// Sets the draining flag here and for `/readyz`.
    fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
        self.deps.draining.store(draining, Ordering::Relaxed);
    }

    /// Recomputes the per-status gauges when a device changed since the last time: once per
    /// [`GAUGE_REFRESH`] at most, not on every status change (that walked every device each time,
    /// O(N²) while N devices boot).
    fn update_gauges(&mut self) {
        if !std::mem::take(&mut self.gauges_stale) {
            return;
        }
        let mut counts: HashMap<DeviceStatus, i64> = HashMap::new();
        for entry in self.registry.values() {
            *counts.entry(entry.status).or_default() += 1;
        }
        for status in DeviceStatus::ALL {
            self.deps
                .metrics
                .devices
                .with_label_values(&[status.as_str()])
                .set(counts.get(&status).copied().unwrap_or(0));
        }
    }

    /// Boot progress from the registry.
    fn boot_progress(&self) -> BootProgress {
        let boot: Vec<&Entry> = self.registry.values().filter(|e| e.from_boot).collect();
        BootProgress {
            total: boot.len(),
            settled: boot.iter().filter(|e| e.settled_once).count(),
            online: boot
                .iter()
                .filter(|e| e.status == DeviceStatus::Online)
                .count(),
            finished_after_ms: self.boot_finished_after.map(|d| d.as_millis() as u64),
        }
    }
}

/// A device found at boot.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct BootDevice {
    device: Device,
    priority: Priority,
    fence: Option<Fence>,
}

impl Actor for DeviceSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.shut_down {
            return;
        }
        self.beacon.up();
        ctx.run_interval(ADMISSION_TICK, |this, _| this.admit());
        ctx.run_interval(GAUGE_REFRESH, |this, _| this.update_gauges());
        let health = Duration::from_millis(self.deps.settings.health_check_ms);
        ctx.run_interval(health, |this, ctx| this.check_health(ctx));
        ctx.run_interval(Duration::from_secs(5), |this, _| {
            let progress = this.boot_progress();
            if progress.total > 0 && this.boot_finished_after.is_none() {
                tracing::info!(
                    total = progress.total,
                    settled = progress.settled,
                    online = progress.online,
                    waiting = this.queue.waiting(),
                    in_flight = this.queue.in_flight(),
                    "boot progress"
                );
            }
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for DeviceSupervisor {
    /// The registry and the admission queue survive; `started` re-arms the timers.
    fn restarting(&mut self, _: &mut Context<Self>) {
        if !self.shut_down {
            self.beacon.restarting();
        }
    }
}

impl Handler<BootDevice> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: BootDevice, ctx: &mut Context<Self>) {
        let id = msg.device.id;
        self.start(msg.device, msg.fence, true, ctx);
        if msg.priority == Priority::High {
            // Its first RequestAdmission arrives with Normal priority; lift it now.
            self.queue.push(id, Priority::High);
        }
    }
}

impl Handler<StartDevice> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StartDevice, ctx: &mut Context<Self>) {
        let id = msg.device.id;
        if let Some(entry) = self.registry.get_mut(&id) {
            entry.budget.reset();
            entry.crashes = 0;
        }
        self.start(msg.device, msg.fence, false, ctx);
        if msg.priority == Priority::High {
            self.queue.push(id, Priority::High);
        }
    }
}

impl Handler<RequestAdmission> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RequestAdmission, ctx: &mut Context<Self>) {
        let id = msg.device_id;
        if msg.is_restart && !self.spend_restart(id, "session dropped") {
            return;
        }
        if self
            .registry
            .get(&id)
            .is_none_or(|e| e.parked_reason.is_some())
        {
            return;
        }
        if msg.after.is_zero() {
            self.queue.push(id, msg.priority);
            return;
        }
        if let Some(entry) = self.registry.get_mut(&id) {
            entry.due_at = Some(Instant::now() + msg.after);
        }
        ctx.run_later(msg.after, move |this, _| {
            if let Some(entry) = this.registry.get_mut(&id) {
                entry.due_at = None;
                if entry.parked_reason.is_none() {
                    this.queue.push(id, msg.priority);
                }
            }
        });
    }
}

impl Handler<ConnectSettled> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnectSettled, _: &mut Context<Self>) {
        self.queue.settle(msg.device_id);
        if let Some(entry) = self.registry.get_mut(&msg.device_id) {
            entry.settled_once = true;
        }
        if self.boot_finished_after.is_none() {
            let progress = self.boot_progress();
            if progress.total > 0 && progress.settled == progress.total {
                let elapsed = self.boot_started.elapsed();
                self.boot_finished_after = Some(elapsed);
                tracing::info!(
                    devices = progress.total,
                    online = progress.online,
                    seconds = elapsed.as_secs_f64(),
                    "boot finished"
                );
            }
        }
    }
}

impl Handler<StatusChanged> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StatusChanged, _: &mut Context<Self>) {
        if let Some(entry) = self.registry.get_mut(&msg.device_id) {
            entry.status = msg.status;
            entry.device.status = msg.status.as_str().to_string();
            entry.device.jid = msg.jid;
            if msg.status == DeviceStatus::Online {
                entry.crashes = 0;
            }
        }
        self.gauges_stale = true;
    }
}

impl Handler<ActorRestarted> for DeviceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ActorRestarted, _: &mut Context<Self>) {
        self.spend_restart(msg.device_id, "actor restarted");
    }
}

impl Handler<StopDevice> for DeviceSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopDevice, _: &mut Context<Self>) -> Self::Result {
        self.queue.remove(msg.device_id);
        let addr = if msg.forget {
            self.registry.remove(&msg.device_id).and_then(|e| e.addr)
        } else {
            self.registry
                .get_mut(&msg.device_id)
                .and_then(|e| e.addr.take())
        };
        self.gauges_stale = true;
        Box::pin(
            async move {
                if let Some(addr) = addr {
                    let _ = addr.send(Retire).await;
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<RestartDevices> for DeviceSupervisor {
    type Result = MessageResult<RestartDevices>;

    fn handle(&mut self, msg: RestartDevices, ctx: &mut Context<Self>) -> Self::Result {
        self.set_draining(false);
        let ids: Vec<i64> = match msg.ids {
            Some(ids) => ids,
            None => {
                let mut all: Vec<i64> = self.registry.keys().copied().collect();
                all.sort_unstable();
                all
            }
        };
        let mut report = RestartReport::default();
        for id in ids {
            let Some(entry) = self.registry.get_mut(&id) else {
                report.unknown.push(id);
                continue;
            };
            entry.budget.reset();
            entry.crashes = 0;
            entry.parked_reason = None;
            entry.due_at = None;
            match entry.addr.clone().filter(Addr::connected) {
                Some(addr) => addr.do_send(Reconnect {
                    reason: "restarted by an operator".into(),
                }),
                None => {
                    entry.addr = None;
                    self.spawn_actor(id, ctx);
                }
            }
            report.restarted.push(id);
        }
        MessageResult(report)
    }
}

impl Handler<GetDeviceActor> for DeviceSupervisor {
    type Result = Option<Addr<DeviceActor>>;

    fn handle(&mut self, msg: GetDeviceActor, _: &mut Context<Self>) -> Self::Result {
        self.registry
            .get(&msg.device_id)
            .and_then(|e| e.addr.clone())
            .filter(Addr::connected)
    }
}

impl Handler<GetSupervision> for DeviceSupervisor {
    type Result = MessageResult<GetSupervision>;

    fn handle(&mut self, _: GetSupervision, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let mut by_status = BTreeMap::new();
        for entry in self.registry.values() {
            *by_status
                .entry(entry.status.as_str().to_string())
                .or_insert(0) += 1;
        }
        let mut parked: Vec<ParkedDevice> = self
            .registry
            .iter()
            .filter_map(|(id, e)| {
                e.parked_reason.clone().map(|reason| ParkedDevice {
                    device_id: *id,
                    reason,
                })
            })
            .collect();
        parked.sort_by_key(|p| p.device_id);
        let mut backoff: Vec<BackoffTimer> = self
            .registry
            .iter()
            .filter_map(|(id, e)| {
                e.due_at.map(|due| BackoffTimer {
                    device_id: *id,
                    due_in_ms: due.saturating_duration_since(now).as_millis() as u64,
                })
            })
            .collect();
        backoff.sort_by_key(|b| b.device_id);
        MessageResult(SupervisionSnapshot {
            devices: self.registry.len(),
            by_status,
            restarts_total: self.restarts_total,
            parked,
            backoff,
            admission: AdmissionSnapshot {
                waiting: self.queue.waiting(),
                in_flight: self.queue.in_flight(),
            },
            boot: self.boot_progress(),
            draining: self.draining,
            arbiters: self.arbiters.len(),
            arbiters_replaced: self.arbiters_replaced,
        })
    }
}

impl Handler<Drain> for DeviceSupervisor {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.set_draining(true);
        let addrs: Vec<(i64, Addr<DeviceActor>)> = self
            .registry
            .iter_mut()
            .filter_map(|(id, e)| e.addr.take().map(|a| (*id, a)))
            .collect();
        for (id, _) in &addrs {
            self.queue.remove(*id);
        }
        let count = addrs.len();
        tracing::info!(devices = count, "draining: disconnecting every device");
        Box::pin(
            async move {
                retire_all(addrs).await;
                count
            }
            .into_actor(self),
        )
    }
}

impl Handler<Shutdown> for DeviceSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.set_draining(true);
        let addrs: Vec<(i64, Addr<DeviceActor>)> = self
            .registry
            .iter_mut()
            .filter_map(|(id, e)| e.addr.take().map(|a| (*id, a)))
            .collect();
        Box::pin(
            async move {
                retire_all(addrs).await;
            }
            .into_actor(self)
            .map(|_, this, ctx| {
                for arbiter in &this.arbiters {
                    arbiter.stop();
                }
                this.shut_down = true;
                ctx.stop();
            }),
        )
    }
}

/// Retires actors in parallel, waiting at most [`SHUTDOWN_GRACE`].
async fn retire_all(addrs: Vec<(i64, Addr<DeviceActor>)>) {
    let all = futures_util::future::join_all(addrs.into_iter().map(|(_, a)| a.send(Retire)));
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!("some devices did not disconnect within the grace period");
    }
}
