//! A sequence's numbers per step, overall and per device: how many leads reached each step,
//! and how its messages fared (sent, delivered, read), who replied after it, and where
//! enrolments stopped or failed.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::model::{enrollment_status as es, Sequence};
use super::store;
use crate::broadcast::outbox::model::OutboxStatus;
use crate::broadcast::outbox::store as outbox_store;
use crate::db::{Db, DbError};

/// One step's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct StepNumbers {
    /// 1, 2, 3 …
    pub position: i64,
    /// Leads whose message for this step was queued, plus those waiting for it.
    pub reached: i64,
    /// Messages WhatsApp accepted (delivered and read included).
    pub sent: i64,
    /// Messages on the lead's phone (read included).
    pub delivered: i64,
    /// Messages read.
    pub read: i64,
    /// Leads whose first reply came after this step.
    pub replied: i64,
    /// Enrolments that stopped at this step (reply, opt-out, user).
    pub stopped: i64,
    /// Enrolments that failed at this step.
    pub failed: i64,
}

/// One device's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceNumbers {
    /// The device (none: not assigned yet).
    pub device_id: Option<i64>,
    /// Its name.
    pub device_name: Option<String>,
    /// Per step.
    pub steps: Vec<StepNumbers>,
}

/// `GET /api/v1/sequences/{id}/report`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// The sequence.
    pub sequence_id: i64,
    /// Every enrolment.
    pub enrolled: i64,
    /// Enrolments by state.
    pub by_status: BTreeMap<String, i64>,
    /// Per step.
    pub steps: Vec<StepNumbers>,
    /// Per device.
    pub devices: Vec<DeviceNumbers>,
}

/// Computes the report of `sequence` with `step_count` steps.
pub async fn report(db: &Db, sequence: &Sequence, step_count: i64) -> Result<Report, DbError> {
    let rows = outbox_store::step_row_counts(db, sequence.campaign_id).await?;
    let enrollments = store::enrollment_counts(db, sequence.id).await?;
    let names: BTreeMap<i64, String> =
        crate::device::store::list_devices(db, sequence.tenant_id, &Default::default(), 10_000, 0)
            .await?
            .0
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
    let blank = |count: i64| -> Vec<StepNumbers> {
        (1..=count)
            .map(|position| StepNumbers {
                position,
                ..StepNumbers::default()
            })
            .collect()
    };
    // Rows of steps removed since are left out.
    let last = step_count;
    let mut total = blank(last);
    let mut per_device: BTreeMap<Option<i64>, Vec<StepNumbers>> = BTreeMap::new();
    let mut apply = |device: Option<i64>, position: i64, f: &dyn Fn(&mut StepNumbers)| {
        if position < 1 || position > last {
            return;
        }
        let index = (position - 1) as usize;
        f(&mut total[index]);
        f(&mut per_device.entry(device).or_insert_with(|| blank(last))[index]);
    };
    for (device, position, status, n) in rows {
        apply(device, position, &|s: &mut StepNumbers| {
            s.reached += n;
            if matches!(
                status,
                OutboxStatus::Sent | OutboxStatus::Delivered | OutboxStatus::Read
            ) {
                s.sent += n;
            }
            if matches!(status, OutboxStatus::Delivered | OutboxStatus::Read) {
                s.delivered += n;
            }
            if status == OutboxStatus::Read {
                s.read += n;
            }
        });
    }
    let mut by_status: BTreeMap<String, i64> = es::ALL.iter().map(|s| (s.to_string(), 0)).collect();
    let mut enrolled = 0;
    for (device, status, step, replied_after, n) in enrollments {
        enrolled += n;
        *by_status.entry(status.clone()).or_default() += n;
        match status.as_str() {
            es::WAITING => apply(device, step, &|s: &mut StepNumbers| s.reached += n),
            es::STOPPED => apply(device, step, &|s: &mut StepNumbers| s.stopped += n),
            es::FAILED => apply(device, step, &|s: &mut StepNumbers| s.failed += n),
            _ => {}
        }
        if let Some(after) = replied_after {
            apply(device, after, &|s: &mut StepNumbers| s.replied += n);
        }
    }
    Ok(Report {
        sequence_id: sequence.id,
        enrolled,
        by_status,
        steps: total,
        devices: per_device
            .into_iter()
            .map(|(device_id, steps)| DeviceNumbers {
                device_name: device_id.and_then(|id| names.get(&id).cloned()),
                device_id,
                steps,
            })
            .collect(),
    })
}
