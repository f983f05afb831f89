//! The SequenceEngine actor (DESIGN's "SequenceActor"): enrols tagged leads, writes each step's
//! message to the outbox when it comes due (inside its window, outside quiet hours), and moves
//! enrolments on as their messages are sent. The sends themselves run through the campaign
//! engine's lanes (each sequence has a hidden carrier campaign), so pacing, leases, retries and
//! receipts work exactly as for campaigns. All state is in the database; the engine only keeps
//! how far it has looked for newly tagged leads.
//!
//! A sequence created by a member sends only through the member's assigned devices
//! ([`creator_devices`]): leads of other devices are not enrolled, leads without a device get
//! one of the member's, and a step due on a device no longer assigned ends its enrolment.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::model::{enrollment_status as es, Enrollment, NewEnrollment, Sequence, Step};
use super::schedule::send_time;
use super::store;
use crate::broadcast::campaign::devices::creator_devices;
use crate::broadcast::events;
use crate::broadcast::outbox::model::{new_message_id, OutboxRow, OutboxStatus};
use crate::broadcast::pacing::QuietHours;
use crate::broadcast::settings as tenant_settings;
use crate::broadcast::template::Template;
use crate::clock::Clock;
use crate::config::BroadcastSettings;
use crate::db::{Db, DbError};
use crate::device::model::{DeviceFilter, DeviceStatus};
use crate::hub::Hub;

/// Leads changed this long before the last look are looked at again (a transaction that
/// committed late is not missed; enrolment is idempotent).
const RESCAN_OVERLAP_SECS: i64 = 60;
/// How long a due step without an online device waits before it is tried again.
const NO_DEVICE_RETRY_MINUTES: i64 = 1;

/// Do one round of work now; answers when it is done (tests use it as a sync point).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Enrol leads by hand (or by chain). Answers how many were enrolled.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct Enrol {
    /// The sequence.
    pub sequence: Sequence,
    /// Lead ids (of the sequence's tenant).
    pub lead_ids: Vec<i64>,
    /// manual or chain.
    pub source: &'static str,
}

/// The engine's dependencies.
#[derive(Clone)]
pub struct SequenceDeps {
    /// Database.
    pub db: Db,
    /// `[broadcast]`: tenant defaults, leases, attempts, intervals and batch sizes.
    pub broadcast: Arc<BroadcastSettings>,
    /// The clock steps are scheduled on.
    pub clock: Clock,
    /// Where sent steps and ended enrolments are announced.
    pub hub: Addr<Hub>,
    /// Steps are queued once in a cluster: by the leader.
    pub cluster: crate::cluster::ClusterView,
}

/// See the module documentation.
pub struct SequenceEngine {
    deps: SequenceDeps,
    /// Per sequence: leads changed since this instant still need a look for its tag. A
    /// sequence not here (new, resumed, or after a restart) gets a full look.
    scanned: HashMap<i64, NaiveDateTime>,
    ticking: bool,
    /// Up while it runs (see [`SequenceEngine::watched`]).
    beacon: crate::metrics::Beacon,
}

impl SequenceEngine {
    /// An engine over `deps`.
    pub fn new(deps: SequenceDeps) -> Self {
        Self {
            deps,
            scanned: HashMap::new(),
            ticking: false,
            beacon: crate::metrics::Beacon::detached(),
        }
    }

    /// The same engine, reporting whether it runs on `beacon`.
    pub fn watched(mut self, beacon: crate::metrics::Beacon) -> Self {
        self.beacon = beacon;
        self
    }
}

impl Actor for SequenceEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.beacon.up();
        let interval = Duration::from_millis(self.deps.broadcast.sequence_tick_ms.max(50));
        ctx.run_interval(interval, |engine, ctx| {
            if !engine.ticking && engine.deps.cluster.is_leader() {
                ctx.notify(Tick);
            }
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.beacon.down();
        Running::Stop
    }
}

impl Supervised for SequenceEngine {
    /// Everything is in the database: a restart forgets how far it looked for tagged leads
    /// (the next tick looks again in full) and the tick that was cut short.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beacon.restarting();
        self.scanned.clear();
        self.ticking = false;
    }
}

impl Handler<Tick> for SequenceEngine {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Tick, _: &mut Context<Self>) -> Self::Result {
        self.ticking = true;
        let deps = self.deps.clone();
        let scanned = self.scanned.clone();
        Box::pin(
            async move {
                let scan_start = Utc::now().naive_utc();
                let seen = match enrol_tagged(&deps, &scanned).await {
                    Ok(seen) => seen,
                    Err(err) => {
                        tracing::warn!(error = %err, "sequence enrolment failed");
                        Vec::new()
                    }
                };
                if let Err(err) = advance_sent(&deps).await {
                    tracing::warn!(error = %err, "sequence progress failed");
                }
                if let Err(err) = queue_due(&deps).await {
                    tracing::warn!(error = %err, "queueing due sequence steps failed");
                }
                (seen, scan_start)
            }
            .into_actor(self)
            .map(|(seen, scan_start), engine, _| {
                // Forget sequences no longer active: they get a full look when they are again.
                engine.scanned.retain(|id, _| seen.contains(id));
                for id in seen {
                    engine.scanned.insert(id, scan_start);
                }
                engine.ticking = false;
            }),
        )
    }
}

impl Handler<Enrol> for SequenceEngine {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: Enrol, _: &mut Context<Self>) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move {
            let leads = store::leads_by_id(&deps.db, msg.sequence.tenant_id, &msg.lead_ids).await?;
            enrol_leads(&deps, &msg.sequence, leads, msg.source).await
        })
    }
}

/// Enrols leads newly carrying an active sequence's tag; answers the active sequences looked at.
async fn enrol_tagged(
    deps: &SequenceDeps,
    scanned: &HashMap<i64, NaiveDateTime>,
) -> Result<Vec<i64>, DbError> {
    let sequences = store::active_sequences(&deps.db).await?;
    let mut seen = Vec::with_capacity(sequences.len());
    for sequence in sequences {
        seen.push(sequence.id);
        let Some(tag) = sequence.trigger_tag.clone().filter(|t| !t.is_empty()) else {
            continue;
        };
        let since = scanned
            .get(&sequence.id)
            .map_or(DateTime::UNIX_EPOCH.naive_utc(), |at| {
                *at - chrono::Duration::seconds(RESCAN_OVERLAP_SECS)
            });
        let candidates =
            store::tagged_candidates(&deps.db, sequence.tenant_id, sequence.id, &tag, since)
                .await?;
        if candidates.is_empty() {
            continue;
        }
        let enrolled = enrol_leads(deps, &sequence, candidates, "tag").await?;
        if enrolled > 0 {
            tracing::info!(sequence_id = sequence.id, enrolled, tag = %tag, "leads enrolled by tag");
        }
    }
    Ok(seen)
}

/// Enrols `leads` (id, phone, own device) in `sequence`, skipping opted-out phones and leads of
/// devices the sequence may not use; leads without a device get one of the online devices it
/// may use, spread evenly.
async fn enrol_leads(
    deps: &SequenceDeps,
    sequence: &Sequence,
    leads: Vec<(i64, String, Option<i64>)>,
    source: &'static str,
) -> Result<usize, DbError> {
    let db = &deps.db;
    let phones: Vec<String> = leads.iter().map(|l| l.1.clone()).collect();
    let opted_out =
        crate::broadcast::leads::opt_out::opted_out(db, sequence.tenant_id, &phones).await?;
    let mut devices = DevicePicker::online(db, sequence).await?;
    let rows: Vec<NewEnrollment> = leads
        .into_iter()
        .filter(|(_, phone, _)| !opted_out.contains(phone))
        .filter_map(|(lead_id, phone, own)| {
            let device_id = match own {
                Some(id) if !devices.may_use(id) => return None,
                Some(id) => Some(id),
                None => devices.next(),
            };
            Some(NewEnrollment {
                lead_id,
                phone,
                device_id,
                source,
            })
        })
        .collect();
    let steps = store::steps_of(db, &[sequence.id]).await?;
    let first_delay = steps
        .get(&sequence.id)
        .and_then(|s| s.first())
        .map_or(0, |s| s.delay_minutes);
    let due = (deps.clock.now() + chrono::Duration::minutes(first_delay)).naive_utc();
    store::enrol(db, sequence.tenant_id, sequence.id, &rows, due).await
}

/// Hands out the online devices a sequence may use in turn, starting at a random one.
struct DevicePicker {
    ids: Vec<i64>,
    next: usize,
    /// The devices the sequence may use (its creator's, for a member); `None`: the tenant's.
    allowed: Option<Vec<i64>>,
}

impl DevicePicker {
    async fn online(db: &Db, sequence: &Sequence) -> Result<Self, DbError> {
        let allowed = creator_devices(db, sequence.created_by).await?;
        let filter = DeviceFilter {
            status: Some(DeviceStatus::Online),
            search: None,
            only_ids: allowed.clone(),
            healthy_only: true,
        };
        let (devices, _) =
            crate::device::store::list_devices(db, sequence.tenant_id, &filter, 10_000, 0).await?;
        Ok(Self {
            ids: devices.into_iter().map(|d| d.id).collect(),
            next: rand::random::<u32>() as usize,
            allowed,
        })
    }

    /// Whether the sequence may send through `device_id`.
    fn may_use(&self, device_id: i64) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|ids| ids.contains(&device_id))
    }

    fn next(&mut self) -> Option<i64> {
        if self.ids.is_empty() {
            return None;
        }
        self.next = self.next.wrapping_add(1);
        Some(self.ids[self.next % self.ids.len()])
    }
}

/// Moves active enrolments whose step message has been sent (or has failed) on: to the next
/// step, to completed (and into the chained sequence), or to failed/stopped.
async fn advance_sent(deps: &SequenceDeps) -> Result<(), DbError> {
    let db = &deps.db;
    let active = store::active_with_rows(db, deps.broadcast.sequence_batch).await?;
    if active.is_empty() {
        return Ok(());
    }
    let sequence_ids: Vec<i64> = active.iter().map(|(e, _)| e.sequence_id).collect();
    let steps = store::steps_of(db, &sequence_ids).await?;
    let now = deps.clock.now();
    for (enrollment, row) in active {
        let Some((status, error)) = row else {
            end(
                deps,
                &enrollment,
                es::FAILED,
                Some("its message was removed"),
            )
            .await?;
            continue;
        };
        match status {
            OutboxStatus::Sent | OutboxStatus::Delivered | OutboxStatus::Read => {
                events::step_sent(&deps.hub, &enrollment, enrollment.step);
                let steps = steps
                    .get(&enrollment.sequence_id)
                    .map_or(&[][..], Vec::as_slice);
                match steps.iter().find(|s| s.position > enrollment.step) {
                    Some(next) => {
                        let due = (now + chrono::Duration::minutes(next.delay_minutes)).naive_utc();
                        store::schedule_step(db, &enrollment, next.position, due).await?;
                    }
                    None => complete(deps, &enrollment).await?,
                }
            }
            OutboxStatus::Failed => {
                end(deps, &enrollment, es::FAILED, error.as_deref()).await?;
            }
            OutboxStatus::Skipped => {
                end(deps, &enrollment, es::STOPPED, error.as_deref()).await?;
            }
            // Not read: only rows that moved on are.
            OutboxStatus::Pending | OutboxStatus::Sending => {}
        }
    }
    Ok(())
}

/// Ends an enrolment still open, announcing it; true when it ended here.
async fn end(
    deps: &SequenceDeps,
    enrollment: &Enrollment,
    status: &str,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let ended = store::end_enrollment(&deps.db, enrollment, status, reason).await?;
    if ended {
        events::enrollment_ended(&deps.hub, enrollment, status, reason);
    }
    Ok(ended)
}

/// Completes an enrolment and enrols the lead in the chained sequence, if any.
async fn complete(deps: &SequenceDeps, enrollment: &Enrollment) -> Result<(), DbError> {
    let db = &deps.db;
    let done = end(deps, enrollment, es::COMPLETED, None).await?;
    if !done {
        return Ok(());
    }
    let sequence = store::get_sequence(db, enrollment.tenant_id, enrollment.sequence_id).await?;
    if let Some(next_id) = sequence.next_sequence_id {
        let next = store::get_sequence(db, enrollment.tenant_id, next_id).await?;
        let lead = vec![(
            enrollment.lead_id,
            enrollment.phone.clone(),
            enrollment.device_id,
        )];
        let enrolled = enrol_leads(deps, &next, lead, "chain").await?;
        tracing::debug!(
            lead_id = enrollment.lead_id,
            from = sequence.id,
            to = next.id,
            enrolled,
            "lead chained into the next sequence"
        );
    }
    Ok(())
}

/// Writes the message of every due step that may go now; the others are rescheduled to their
/// window's next opening.
async fn queue_due(deps: &SequenceDeps) -> Result<(), DbError> {
    let db = &deps.db;
    let due = store::due_enrollments(
        db,
        deps.clock.now().naive_utc(),
        deps.broadcast.sequence_batch,
    )
    .await?;
    if due.is_empty() {
        return Ok(());
    }
    let mut round = DueRound::load(deps, &due).await?;
    for enrollment in due {
        let sequence = round.sequence(&enrollment).await?;
        let steps = round
            .steps
            .get(&enrollment.sequence_id)
            .map_or(&[][..], Vec::as_slice);
        let Some(step) = steps
            .iter()
            .find(|s| s.position >= enrollment.step)
            .cloned()
        else {
            // Steps were removed after it was scheduled: nothing is left to send.
            end(deps, &enrollment, es::COMPLETED, None).await?;
            continue;
        };
        round.queue_one(&sequence, &enrollment, &step).await?;
    }
    Ok(())
}

/// What one round of due enrolments shares: the batch's steps and opt-outs (read once), and
/// sequences, tenant zones and each sequence's devices as they are first needed.
struct DueRound<'a> {
    deps: &'a SequenceDeps,
    now: DateTime<Utc>,
    steps: HashMap<i64, Vec<Step>>,
    /// (tenant, phone) pairs of the batch that are opted out.
    opted_out: HashSet<(i64, String)>,
    sequences: HashMap<i64, Sequence>,
    zones: HashMap<i64, (chrono_tz::Tz, Option<QuietHours>)>,
    /// Device pickers by sequence id.
    devices: HashMap<i64, DevicePicker>,
    rng: rand::rngs::ThreadRng,
}

impl<'a> DueRound<'a> {
    /// Reads the steps of `due`'s sequences and which of its phones opted out.
    async fn load(deps: &'a SequenceDeps, due: &[Enrollment]) -> Result<Self, DbError> {
        let db = &deps.db;
        let sequence_ids: Vec<i64> = due.iter().map(|e| e.sequence_id).collect();
        let steps = store::steps_of(db, &sequence_ids).await?;
        let mut phones_by_tenant: HashMap<i64, Vec<String>> = HashMap::new();
        for e in due {
            phones_by_tenant
                .entry(e.tenant_id)
                .or_default()
                .push(e.phone.clone());
        }
        let mut opted_out = HashSet::new();
        for (tenant_id, phones) in phones_by_tenant {
            let found = crate::broadcast::leads::opt_out::opted_out(db, tenant_id, &phones).await?;
            opted_out.extend(found.into_iter().map(|phone| (tenant_id, phone)));
        }
        Ok(Self {
            deps,
            now: deps.clock.now(),
            steps,
            opted_out,
            sequences: HashMap::new(),
            zones: HashMap::new(),
            devices: HashMap::new(),
            rng: rand::rng(),
        })
    }

    /// The enrolment's sequence (read once per round).
    async fn sequence(&mut self, e: &Enrollment) -> Result<Sequence, DbError> {
        if let Some(s) = self.sequences.get(&e.sequence_id) {
            return Ok(s.clone());
        }
        let s = store::get_sequence(&self.deps.db, e.tenant_id, e.sequence_id).await?;
        self.sequences.insert(s.id, s.clone());
        Ok(s)
    }

    /// The tenant's zone and quiet hours (read once per round).
    async fn zone(
        &mut self,
        tenant_id: i64,
    ) -> Result<(chrono_tz::Tz, Option<QuietHours>), DbError> {
        if let Some(z) = self.zones.get(&tenant_id) {
            return Ok(*z);
        }
        let effective =
            tenant_settings::effective(&self.deps.db, &self.deps.broadcast, tenant_id).await?;
        let quiet = QuietHours::parse(&effective.pacing.quiet_hours)
            .ok()
            .flatten();
        self.zones.insert(tenant_id, (effective.time_zone, quiet));
        Ok((effective.time_zone, quiet))
    }

    /// The sequence's device picker (read once per round).
    async fn picker(&mut self, sequence: &Sequence) -> Result<&mut DevicePicker, DbError> {
        if !self.devices.contains_key(&sequence.id) {
            let picker = DevicePicker::online(&self.deps.db, sequence).await?;
            self.devices.insert(sequence.id, picker);
        }
        self.devices.get_mut(&sequence.id).ok_or(DbError::NotFound)
    }

    /// Queues one due enrolment's `step`, or reschedules it.
    async fn queue_one(
        &mut self,
        sequence: &Sequence,
        enrollment: &Enrollment,
        step: &Step,
    ) -> Result<(), DbError> {
        let db = &self.deps.db;
        let now = self.now;
        let reschedule =
            |at: DateTime<Utc>| store::schedule_step(db, enrollment, step.position, at.naive_utc());
        let (zone, quiet) = self.zone(enrollment.tenant_id).await?;
        match send_time(now, step.window(), quiet, zone) {
            None => {
                let reason = "the step's send window lies inside the quiet hours";
                end(self.deps, enrollment, es::FAILED, Some(reason)).await?;
                return Ok(());
            }
            Some(at) if at > now => {
                reschedule(at).await?;
                return Ok(());
            }
            Some(_) => {}
        }
        if self
            .opted_out
            .contains(&(enrollment.tenant_id, enrollment.phone.clone()))
        {
            end(self.deps, enrollment, es::STOPPED, Some("opted out")).await?;
            return Ok(());
        }
        let picker = self.picker(sequence).await?;
        let device_id = match enrollment.device_id {
            Some(id) if !picker.may_use(id) => {
                let reason = format!("device {id} is not assigned to the sequence's creator");
                end(self.deps, enrollment, es::FAILED, Some(&reason)).await?;
                return Ok(());
            }
            Some(id) => Some(id),
            None => picker.next(),
        };
        if device_id.is_none() {
            reschedule(now + chrono::Duration::minutes(NO_DEVICE_RETRY_MINUTES)).await?;
            return Ok(());
        }
        let body = match Template::parse(&step.message) {
            Ok(template) => {
                let lead = store::lead_for_template(db, enrollment.lead_id).await?;
                template.render(&lead.variables(), &mut self.rng)
            }
            Err(err) => {
                let reason = format!("step {}: {}", step.position, err.0);
                end(self.deps, enrollment, es::FAILED, Some(&reason)).await?;
                return Ok(());
            }
        };
        let row = OutboxRow {
            lead_id: enrollment.lead_id,
            device_id,
            phone: enrollment.phone.clone(),
            body,
            message_id: new_message_id(),
            status: OutboxStatus::Pending,
            error: None,
            step: step.position,
            image_sha256: step.image_sha256.clone(),
            attachment: step.attachment.clone(),
        };
        // The enrolment may sit at a removed step; it continues at this one.
        if step.position != enrollment.step {
            store::schedule_step(db, enrollment, step.position, now.naive_utc()).await?;
        }
        let at_step = Enrollment {
            step: step.position,
            ..enrollment.clone()
        };
        let queued = store::queue_step(db, &at_step, sequence.campaign_id, &row).await?;
        if queued {
            tracing::debug!(
                sequence_id = sequence.id,
                lead_id = enrollment.lead_id,
                step = step.position,
                "sequence step queued"
            );
        }
        Ok(())
    }
}
