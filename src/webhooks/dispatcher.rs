//! `Dispatcher`: turns hub events into queued deliveries and sends them.
//!
//! Handles: `Published` (the hub's tap: every local event of a tenant with an active endpoint),
//! `ReloadEndpoints`, `SendTest`, `Wake`, `Drain`. Supervised by `actix::Supervisor`; a
//! restart reads the endpoints again and finds the queue's due rows in the database, so
//! nothing is lost with it (rows it had claimed are taken again when their lease ends).
//!
//! Flow, all on one actor with its database work and HTTP calls as spawned futures:
//! 1. Events that pass an endpoint's filters are buffered in memory (bounded by
//!    `webhooks.buffer_capacity`; past it they are dropped and counted) and written to
//!    `webhook_queue` every [`PUMP_INTERVAL`], one row per (event, endpoint), several rows per
//!    statement in one transaction.
//! 2. For every endpoint with work, due rows are claimed under a lease ([`store::claim`]), a
//!    few concurrency's worth at a time, and started as the endpoint's concurrency and rate
//!    (token bucket) allow.
//! 3. Each attempt ([`attempt`]) is signed and POSTed with no redirects and the SSRF guard on the resolver;
//!    the outcome (2xx delivered, 410 dead and the endpoint switched off, anything else retried
//!    with backoff until `max_age_hours`) is written in batches.
//!
//! An endpoint whose every attempt failed for `disable_after_days` is switched off, with a
//! warning in the log and an entry in the audit log (`webhook.endpoint.disabled`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::attempt;
use super::events::{self, Event, EventType};
use super::guard::Resolver;
use super::messages::*;
use super::metrics::WebhookMetrics;
use super::model::{Attempt, Claimed, Endpoint};
use super::retry::{self, Next, Policy};
use super::store::{self, NewDelivery, NextState, Outcome};
use crate::audit::{self, AuditEntry, Target};
use crate::config::WebhookSettings;
use crate::db::Db;
use crate::hub::messages::{Published, SetTap, Tap};
use crate::hub::Hub;
use crate::metrics::Beacon;

/// How often buffered events are written, due rows claimed and waiting deliveries started.
const PUMP_INTERVAL: Duration = Duration::from_millis(20);
/// How often the queue is searched for work this daemon does not know of (rows of another
/// daemon, expired leases, retries scheduled before a restart) and endpoints are read again.
const SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// Rows claimed ahead per endpoint, in multiples of its concurrency.
const PREFETCH_FACTOR: i64 = 4;

/// What the dispatcher keeps per active endpoint.
struct Slot {
    endpoint: Endpoint,
    /// Attempts under way.
    in_flight: usize,
    /// Claimed rows not started yet.
    waiting: VecDeque<Claimed>,
    /// Rate tokens (one per start), refilled continuously up to `rate_per_second`.
    tokens: f64,
    refilled: Instant,
    /// A `failing_since` write is under way; the next one waits for it, so writes land in order.
    saving_health: bool,
    /// [`Dispatcher::health_clock`] when this endpoint's last `failing_since` write committed.
    health_saved_at: u64,
}

impl Slot {
    fn new(endpoint: Endpoint) -> Slot {
        Slot {
            tokens: endpoint.rate_per_second as f64,
            endpoint,
            in_flight: 0,
            waiting: VecDeque::new(),
            refilled: Instant::now(),
            saving_health: false,
            health_saved_at: 0,
        }
    }

    fn concurrency(&self) -> usize {
        usize::try_from(self.endpoint.max_concurrency.max(1)).unwrap_or(1)
    }

    fn refill(&mut self, now: Instant) {
        let rate = self.endpoint.rate_per_second.max(1) as f64;
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
    }
}

/// An accepted event and the endpoints whose filters it passed (decided once, at acceptance).
struct Routed {
    event: Event,
    endpoints: Vec<i64>,
}

/// The outbound webhook dispatcher.
pub struct Dispatcher {
    db: Db,
    settings: WebhookSettings,
    client: reqwest::Client,
    hub: Addr<Hub>,
    metrics: WebhookMetrics,
    beacon: Beacon,
    /// Active endpoints by id.
    slots: HashMap<i64, Slot>,
    /// Active endpoint ids by tenant.
    routes: HashMap<i64, Vec<i64>>,
    /// Tenants with an active endpoint (shared with the hub's tap).
    tenants: Arc<RwLock<HashSet<i64>>>,
    /// Events not yet written to the queue, with the endpoints that want them.
    buffer: Vec<Routed>,
    /// Finished attempts not yet written.
    outcomes: Vec<Outcome>,
    /// Endpoints that may have due rows.
    due: HashSet<i64>,
    /// Earliest retry this daemon scheduled, per endpoint.
    retries: HashMap<i64, NaiveDateTime>,
    writing: bool,
    recording: bool,
    claiming: bool,
    stopping: bool,
    /// Counts committed `failing_since` writes, so a reload can tell whether what it read is
    /// older than what memory holds.
    health_clock: u64,
}

/// Everything the dispatcher needs.
pub struct DispatcherDeps {
    /// Database.
    pub db: Db,
    /// `[webhooks]`.
    pub settings: WebhookSettings,
    /// The hub to tap.
    pub hub: Addr<Hub>,
    /// Collectors.
    pub metrics: WebhookMetrics,
    /// Up while it runs.
    pub beacon: Beacon,
}

impl Dispatcher {
    /// A dispatcher; fails only when the HTTP client cannot be built (TLS roots).
    pub fn new(deps: DispatcherDeps) -> Result<Dispatcher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(deps.settings.timeout_secs))
            .connect_timeout(Duration::from_secs(deps.settings.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Resolver {
                allow_private: deps.settings.allow_private_targets,
            }))
            .user_agent(concat!("wafleet-webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Dispatcher {
            db: deps.db,
            settings: deps.settings,
            client,
            hub: deps.hub,
            metrics: deps.metrics,
            beacon: deps.beacon,
            slots: HashMap::new(),
            routes: HashMap::new(),
            tenants: Arc::new(RwLock::new(HashSet::new())),
            buffer: Vec::new(),
            outcomes: Vec::new(),
            due: HashSet::new(),
            retries: HashMap::new(),
            writing: false,
            recording: false,
            health_clock: 0,
            claiming: false,
            stopping: false,
        })
    }

    fn policy(&self) -> Policy {
        Policy {
            base: Duration::from_millis(self.settings.retry_base_ms),
            max: Duration::from_secs(self.settings.retry_max_secs),
            max_age: Duration::from_secs(self.settings.max_age_hours * 3600),
        }
    }

    /// How long a claimed row stays leased: long enough for its turn among the prefetched rows.
    fn lease(&self) -> TimeDelta {
        let secs = self.settings.timeout_secs * (PREFETCH_FACTOR as u64 + 1) + 5;
        TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
    }

    /// Reads the active endpoints again and rebuilds the routing table; rows claimed for an
    /// endpoint that is gone or off are handed back.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let read_at = self.health_clock;
        ctx.spawn(
            async move { store::active_endpoints(&db).await }
                .into_actor(self)
                .map(move |result, this, ctx| match result {
                    Ok(endpoints) => this.install(endpoints, read_at, ctx),
                    Err(err) => tracing::warn!(error = %err, "webhooks: cannot read endpoints"),
                }),
        );
    }

    /// Rebuilds the routing table from endpoints read when [`Dispatcher::health_clock`] was
    /// `read_at`.
    fn install(&mut self, endpoints: Vec<Endpoint>, read_at: u64, ctx: &mut Context<Self>) {
        let mut slots = HashMap::new();
        let mut routes: HashMap<i64, Vec<i64>> = HashMap::new();
        for endpoint in endpoints {
            routes
                .entry(endpoint.tenant_id)
                .or_default()
                .push(endpoint.id);
            let slot = match self.slots.remove(&endpoint.id) {
                Some(mut slot) => {
                    // A health write under way, or committed after the read began, is newer
                    // than what was read: the read must not put back an older value.
                    let failing_since = slot.endpoint.failing_since;
                    slot.endpoint = endpoint;
                    if slot.saving_health || slot.health_saved_at > read_at {
                        slot.endpoint.failing_since = failing_since;
                    }
                    slot
                }
                None => {
                    self.due.insert(endpoint.id);
                    Slot::new(endpoint)
                }
            };
            slots.insert(slot.endpoint.id, slot);
        }
        let orphans: Vec<i64> = self
            .slots
            .drain()
            .flat_map(|(_, slot)| slot.waiting.into_iter().map(|c| c.id))
            .collect();
        self.release(orphans, ctx);
        self.slots = slots;
        if let Ok(mut tenants) = self.tenants.write() {
            *tenants = routes.keys().copied().collect();
        }
        self.routes = routes;
        self.metrics.endpoints.set(self.slots.len() as i64);
    }

    /// Buffers an event for every endpoint that wants it.
    fn accept(&mut self, event: Event) {
        let Some(ids) = self.routes.get(&event.tenant_id) else {
            return;
        };
        let endpoints: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| self.slots.get(id).is_some_and(|s| s.endpoint.wants(&event)))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        if self.buffer.len() >= self.settings.buffer_capacity {
            self.metrics.dropped.inc();
            return;
        }
        self.buffer.push(Routed { event, endpoints });
        self.metrics.buffered.set(self.buffer.len() as i64);
    }

    /// One round: write buffered events and outcomes, claim for endpoints with work, start
    /// what the limits allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.write_buffer(ctx);
        self.record_outcomes(ctx);
        let now = Utc::now().naive_utc();
        let ready: Vec<i64> = self
            .retries
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.retries.remove(&id);
            self.due.insert(id);
        }
        if !self.stopping {
            self.claim(ctx);
            self.start_waiting(ctx);
        }
    }

    fn write_buffer(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.buffer.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.buffer);
        self.metrics.buffered.set(0);
        let rows = self.rows(&events);
        let endpoints: HashSet<i64> = rows.iter().map(|r| r.endpoint_id).collect();
        self.writing = true;
        let db = self.db.clone();
        ctx.spawn(
            async move { store::enqueue(&db, rows).await }
                .into_actor(self)
                .map(move |result, this, ctx| {
                    this.writing = false;
                    match result {
                        Ok(_) => {
                            this.due.extend(endpoints);
                            this.claim(ctx);
                        }
                        Err(err) => {
                            // Keep the events (still bounded) and try again next round.
                            tracing::warn!(error = %err, events = events.len(), "webhooks: cannot queue events; retrying");
                            let room = this.settings.buffer_capacity.saturating_sub(this.buffer.len());
                            let lost = events.len().saturating_sub(room);
                            this.metrics.dropped.inc_by(lost as u64);
                            let mut kept: Vec<Routed> = events.into_iter().take(room).collect();
                            kept.append(&mut this.buffer);
                            this.buffer = kept;
                        }
                    }
                }),
        );
    }

    /// The queue rows of buffered events, one per endpoint that wanted each and is still
    /// active (a row for an endpoint deleted meanwhile would fail the whole insert).
    fn rows(&self, events: &[Routed]) -> Vec<NewDelivery> {
        let now = Utc::now().naive_utc();
        let mut rows = Vec::new();
        for routed in events {
            let body = routed.event.body();
            for id in &routed.endpoints {
                if self.slots.contains_key(id) {
                    rows.push(new_delivery(&routed.event, *id, body.clone(), now));
                }
            }
        }
        rows
    }

    fn record_outcomes(&mut self, ctx: &mut Context<Self>) {
        if self.recording || self.outcomes.is_empty() {
            return;
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        self.recording = true;
        let db = self.db.clone();
        ctx.spawn(
            async move {
                let result = store::record(&db, outcomes.clone()).await;
                (result, outcomes)
            }
            .into_actor(self)
            .map(|(result, outcomes), this, _| {
                this.recording = false;
                if let Err(err) = result {
                    // The rows stay leased; they are written on the next round or, after a
                    // crash, sent again when the lease ends (receivers dedupe by event id).
                    tracing::warn!(error = %err, "webhooks: cannot record outcomes; retrying");
                    let mut kept = outcomes;
                    kept.append(&mut this.outcomes);
                    this.outcomes = kept;
                }
            }),
        );
    }

    /// Claims due rows for endpoints whose prefetch runs low.
    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.claiming || self.stopping {
            return;
        }
        let wanted: Vec<(i64, i64)> = self
            .due
            .iter()
            .filter_map(|id| {
                let slot = self.slots.get(id)?;
                let ahead = slot.concurrency() as i64 * PREFETCH_FACTOR;
                let room = ahead - slot.waiting.len() as i64 - slot.in_flight as i64;
                (slot.waiting.len() < slot.concurrency() && room > 0).then_some((*id, room))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        self.claiming = true;
        let db = self.db.clone();
        let lease = self.lease();
        ctx.spawn(
            async move {
                let now = Utc::now().naive_utc();
                let mut claimed = Vec::new();
                for (endpoint_id, limit) in wanted {
                    let rows = store::claim(&db, endpoint_id, limit, now, now + lease).await;
                    claimed.push((endpoint_id, limit, rows));
                }
                claimed
            }
            .into_actor(self)
            .map(|claimed, this, ctx| {
                this.claiming = false;
                for (endpoint_id, limit, rows) in claimed {
                    let rows = match rows {
                        Ok(rows) => rows,
                        Err(err) => {
                            tracing::warn!(endpoint_id, error = %err, "webhooks: cannot claim deliveries");
                            continue;
                        }
                    };
                    if (rows.len() as i64) < limit {
                        this.due.remove(&endpoint_id);
                    }
                    match this.slots.get_mut(&endpoint_id) {
                        Some(slot) => slot.waiting.extend(rows),
                        None => this.release(rows.into_iter().map(|c| c.id).collect(), ctx),
                    }
                }
                this.start_waiting(ctx);
            }),
        );
    }

    /// Starts waiting deliveries within each endpoint's concurrency and rate.
    fn start_waiting(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut starts = Vec::new();
        for slot in self.slots.values_mut() {
            if slot.waiting.is_empty() {
                continue;
            }
            slot.refill(now);
            while slot.in_flight < slot.concurrency() && slot.tokens >= 1.0 {
                let Some(claimed) = slot.waiting.pop_front() else {
                    break;
                };
                slot.tokens -= 1.0;
                slot.in_flight += 1;
                starts.push((slot.endpoint.clone(), claimed));
            }
        }
        for (endpoint, claimed) in starts {
            self.send(endpoint, claimed, ctx);
        }
    }

    /// Makes one attempt and handles its outcome.
    fn send(&mut self, endpoint: Endpoint, claimed: Claimed, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let allow_private = self.settings.allow_private_targets;
        let endpoint_id = endpoint.id;
        ctx.spawn(
            attempt::attempt(client, endpoint, claimed.clone(), allow_private)
                .into_actor(self)
                .map(move |attempt, this, ctx| {
                    this.finished(endpoint_id, claimed, attempt, ctx);
                }),
        );
    }

    fn finished(
        &mut self,
        endpoint_id: i64,
        claimed: Claimed,
        attempt: Attempt,
        ctx: &mut Context<Self>,
    ) {
        let now = Utc::now().naive_utc();
        let status = attempt.response_status;
        self.metrics
            .latency
            .observe(attempt.latency_ms as f64 / 1000.0);
        let next = if attempt.error.is_none() {
            self.metrics
                .deliveries
                .with_label_values(&["delivered"])
                .inc();
            NextState::Delivered(now)
        } else if status == Some(410) {
            self.metrics.deliveries.with_label_values(&["dead"]).inc();
            self.disable(endpoint_id, "the receiver answered 410 Gone", ctx);
            NextState::Dead
        } else {
            let unit: f64 = rand::random();
            match retry::after_failure(
                claimed.attempts,
                claimed.created_at,
                now,
                &self.policy(),
                unit,
            ) {
                Next::RetryAt(at) => {
                    self.metrics.deliveries.with_label_values(&["failed"]).inc();
                    let earliest = self.retries.entry(endpoint_id).or_insert(at);
                    *earliest = (*earliest).min(at);
                    NextState::RetryAt(at)
                }
                Next::GiveUp => {
                    self.metrics.deliveries.with_label_values(&["dead"]).inc();
                    NextState::Dead
                }
            }
        };
        self.track_health(
            endpoint_id,
            matches!(next, NextState::Delivered(_)),
            now,
            ctx,
        );
        self.outcomes.push(Outcome {
            id: claimed.id,
            attempt,
            next,
        });
        if let Some(slot) = self.slots.get_mut(&endpoint_id) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
        if !self.stopping {
            self.start_waiting(ctx);
        }
    }

    /// Keeps `failing_since` and switches off an endpoint that failed for too long.
    fn track_health(
        &mut self,
        endpoint_id: i64,
        ok: bool,
        now: NaiveDateTime,
        ctx: &mut Context<Self>,
    ) {
        let Some(slot) = self.slots.get_mut(&endpoint_id) else {
            return;
        };
        let change = match (ok, slot.endpoint.failing_since) {
            (true, Some(_)) => Some(None),
            (false, None) => Some(Some(now)),
            _ => None,
        };
        if let Some(since) = change {
            slot.endpoint.failing_since = since;
            self.save_health(endpoint_id, ctx);
            return;
        }
        let days = self.settings.disable_after_days;
        let since = slot.endpoint.failing_since;
        if !ok && days > 0 && since.is_some_and(|s| now - s > TimeDelta::days(days as i64)) {
            let reason = format!("every delivery failed for {days} days");
            self.disable(endpoint_id, &reason, ctx);
        }
    }

    /// Writes an endpoint's `failing_since` as memory holds it, one write at a time per endpoint:
    /// two writes racing (failing, then answering again a moment later) could otherwise commit in
    /// the wrong order and leave the endpoint shown as failing for good.
    fn save_health(&mut self, endpoint_id: i64, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(&endpoint_id) else {
            return;
        };
        if slot.saving_health {
            return;
        }
        slot.saving_health = true;
        let since = slot.endpoint.failing_since;
        let db = self.db.clone();
        ctx.spawn(
            async move { store::set_failing_since(&db, endpoint_id, since).await }
                .into_actor(self)
                .map(move |result, this, ctx| {
                    if let Err(err) = result {
                        tracing::warn!(endpoint_id, error = %err, "webhooks: cannot record endpoint health");
                    }
                    let Some(slot) = this.slots.get_mut(&endpoint_id) else {
                        return;
                    };
                    slot.saving_health = false;
                    this.health_clock += 1;
                    slot.health_saved_at = this.health_clock;
                    if slot.endpoint.failing_since != since {
                        this.save_health(endpoint_id, ctx);
                    }
                }),
        );
    }

    /// Switches an endpoint off (410, or failing too long): logged, audited, shown on it.
    fn disable(&mut self, endpoint_id: i64, reason: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.remove(&endpoint_id) else {
            return;
        };
        let tenant_id = slot.endpoint.tenant_id;
        if let Some(ids) = self.routes.get_mut(&tenant_id) {
            ids.retain(|id| *id != endpoint_id);
        }
        let waiting: Vec<i64> = slot.waiting.iter().map(|c| c.id).collect();
        self.release(waiting, ctx);
        tracing::warn!(
            tenant_id,
            endpoint_id,
            reason,
            "webhooks: endpoint switched off"
        );
        let db = self.db.clone();
        let reason = reason.to_string();
        ctx.spawn(
            async move {
                let now = Utc::now().naive_utc();
                if let Err(err) = store::disable_endpoint(&db, endpoint_id, &reason, now).await {
                    tracing::warn!(endpoint_id, error = %err, "webhooks: cannot switch endpoint off");
                }
                let entry = AuditEntry {
                    tenant_id: Some(tenant_id),
                    action: "webhook.endpoint.disabled",
                    target: Some(Target::WebhookEndpoint(endpoint_id)),
                    detail: Some(serde_json::json!({ "reason": reason })),
                    ..Default::default()
                };
                audit::record(&db, entry).await;
            }
            .into_actor(self),
        );
    }

    /// Hands claimed, unstarted rows back to the queue.
    fn release(&mut self, ids: Vec<i64>, ctx: &mut Context<Self>) {
        if ids.is_empty() {
            return;
        }
        let db = self.db.clone();
        ctx.spawn(
            async move {
                if let Err(err) = store::release(&db, ids, Utc::now().naive_utc()).await {
                    tracing::warn!(error = %err, "webhooks: cannot hand deliveries back; their lease ends them");
                }
            }
            .into_actor(self),
        );
    }

    /// Looks for due rows this daemon does not know of, and reads the endpoints again.
    fn scan(&mut self, ctx: &mut Context<Self>) {
        self.reload(ctx);
        let db = self.db.clone();
        ctx.spawn(
            async move { store::due_endpoints(&db, Utc::now().naive_utc()).await }
                .into_actor(self)
                .map(|result, this, _| match result {
                    Ok(ids) => this.due.extend(ids),
                    Err(err) => tracing::warn!(error = %err, "webhooks: cannot scan the queue"),
                }),
        );
    }
}

/// A queue row for `event` to `endpoint_id`.
fn new_delivery(
    event: &Event,
    endpoint_id: i64,
    payload: String,
    now: NaiveDateTime,
) -> NewDelivery {
    NewDelivery {
        tenant_id: event.tenant_id,
        endpoint_id,
        event_id: event.id.clone(),
        event_type: event.kind.as_str().to_string(),
        payload,
        status: "pending",
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.beacon.up();
        self.hub.do_send(SetTap(Tap {
            recipient: ctx.address().recipient(),
            tenants: self.tenants.clone(),
        }));
        self.scan(ctx);
        ctx.run_interval(PUMP_INTERVAL, |this, ctx| this.pump(ctx));
        ctx.run_interval(SCAN_INTERVAL, |this, ctx| this.scan(ctx));
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for Dispatcher {
    /// Claimed rows come back when their lease ends; buffered events are kept.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
        self.slots.clear();
        self.writing = false;
        self.recording = false;
        self.claiming = false;
    }
}

impl Handler<Published> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Published, _: &mut Context<Self>) {
        if let Some(event) = events::from_hub(&msg.0) {
            self.accept(event);
        }
    }
}

impl Handler<ReloadEndpoints> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: ReloadEndpoints, ctx: &mut Context<Self>) {
        self.reload(ctx);
    }
}

impl Handler<Wake> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Wake, ctx: &mut Context<Self>) {
        self.due.insert(msg.endpoint_id);
        self.claim(ctx);
    }
}

impl Handler<SendTest> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<i64, crate::db::DbError>>;

    fn handle(&mut self, msg: SendTest, _: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        Box::pin(
            async move {
                let endpoint = store::get_endpoint(&db, msg.tenant_id, msg.endpoint_id).await?;
                let event = Event::new(
                    EventType::Test,
                    msg.tenant_id,
                    None,
                    Utc::now(),
                    serde_json::json!({
                        "endpoint_id": endpoint.id,
                        "message": "a test event from wafleet: your endpoint receives and verifies deliveries",
                    }),
                );
                let now = Utc::now().naive_utc();
                let row = new_delivery(&event, endpoint.id, event.body(), now);
                store::enqueue_one(&db, row).await
            }
            .into_actor(self)
            .map(move |result, this, ctx| {
                if result.is_ok() {
                    this.due.insert(msg.endpoint_id);
                    this.claim(ctx);
                }
                result
            }),
        )
    }
}

impl Handler<Drain> for Dispatcher {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let db = self.db.clone();
        let now = Utc::now().naive_utc();
        let events = std::mem::take(&mut self.buffer);
        let rows = self.rows(&events);
        let outcomes = std::mem::take(&mut self.outcomes);
        let waiting: Vec<i64> = self
            .slots
            .values_mut()
            .flat_map(|slot| slot.waiting.drain(..).map(|c| c.id))
            .collect();
        Box::pin(
            async move {
                if let Err(err) = store::enqueue(&db, rows).await {
                    tracing::warn!(error = %err, "webhooks: events buffered at shutdown are lost");
                }
                if let Err(err) = store::record(&db, outcomes).await {
                    tracing::warn!(error = %err, "webhooks: outcomes at shutdown not written; those deliveries are sent again");
                }
                if let Err(err) = store::release(&db, waiting, now).await {
                    tracing::warn!(error = %err, "webhooks: cannot hand deliveries back; their lease ends them");
                }
            }
            .into_actor(self),
        )
    }
}
