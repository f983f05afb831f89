//! A campaign's progress: counts per status and per device, send rate and ETA. Computed from the
//! outbox (so every node and the REST endpoint agree) and published on `campaign/<id>`.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::model::{Campaign, CampaignStatus};
use crate::broadcast::outbox::model::OutboxStatus;
use crate::broadcast::outbox::store;
use crate::db::{Db, DbError};

/// Outbox rows by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct StatusCounts {
    /// Waiting.
    pub pending: i64,
    /// Being sent.
    pub sending: i64,
    /// Accepted by WhatsApp.
    pub sent: i64,
    /// On the lead's phone.
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Given up.
    pub failed: i64,
    /// Not sent on purpose (opted out, cancelled).
    pub skipped: i64,
}

impl StatusCounts {
    /// The rows of `status`.
    fn slot(&mut self, status: OutboxStatus) -> &mut i64 {
        match status {
            OutboxStatus::Pending => &mut self.pending,
            OutboxStatus::Sending => &mut self.sending,
            OutboxStatus::Sent => &mut self.sent,
            OutboxStatus::Delivered => &mut self.delivered,
            OutboxStatus::Read => &mut self.read,
            OutboxStatus::Failed => &mut self.failed,
            OutboxStatus::Skipped => &mut self.skipped,
        }
    }

    fn add(&mut self, status: OutboxStatus, n: i64) {
        *self.slot(status) += n;
    }

    /// Rows per status, every status once, in [`OutboxStatus::ALL`] order.
    pub fn by_status(&self) -> [(OutboxStatus, i64); 7] {
        let mut copy = self.clone();
        OutboxStatus::ALL.map(|status| (status, *copy.slot(status)))
    }

    /// Adds `other`'s rows to these.
    pub fn merge(&mut self, other: &StatusCounts) {
        for (status, n) in other.by_status() {
            self.add(status, n);
        }
    }

    /// Every row.
    pub fn total(&self) -> i64 {
        self.by_status().iter().map(|(_, n)| n).sum()
    }

    /// Rows still to send.
    pub fn unsent(&self) -> i64 {
        self.pending + self.sending
    }

    /// Rows that reached WhatsApp (sent, delivered or read).
    pub fn accepted(&self) -> i64 {
        self.sent + self.delivered + self.read
    }
}

/// One device's share.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceProgress {
    /// The device (none: waiting for a device to come online).
    pub device_id: Option<i64>,
    /// Its rows by state.
    pub counts: StatusCounts,
}

/// The `CAMPAIGN_PROGRESS` payload and `GET /campaigns/{id}/progress`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Progress {
    /// Campaign.
    pub campaign_id: i64,
    /// Its state.
    pub status: CampaignStatus,
    /// Rows by state.
    pub counts: StatusCounts,
    /// Rows in total.
    pub total: i64,
    /// Share of rows no longer waiting, 0–100.
    pub percent: f64,
    /// Sends in the last minute.
    pub sent_last_minute: i64,
    /// Seconds until the rest is sent at the current rate (none when idle or done).
    pub eta_seconds: Option<i64>,
    /// Per device.
    pub per_device: Vec<DeviceProgress>,
}

/// The progress of `campaign` now.
pub async fn progress(db: &Db, campaign: &Campaign) -> Result<Progress, DbError> {
    let rows = store::counts(db, campaign.id).await?;
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1)).naive_utc();
    let sent_last_minute = store::sent_since(db, campaign.id, since).await?;
    let mut counts = StatusCounts::default();
    let mut devices: BTreeMap<Option<i64>, StatusCounts> = BTreeMap::new();
    for (device_id, status, n) in rows {
        counts.add(status, n);
        devices.entry(device_id).or_default().add(status, n);
    }
    let total = counts.total();
    let percent = if total == 0 {
        if campaign.state() == CampaignStatus::Completed {
            100.0
        } else {
            0.0
        }
    } else {
        ((total - counts.unsent()) as f64 * 1000.0 / total as f64).round() / 10.0
    };
    let eta_seconds = (sent_last_minute > 0 && counts.unsent() > 0)
        .then(|| counts.unsent() * 60 / sent_last_minute);
    Ok(Progress {
        campaign_id: campaign.id,
        status: campaign.state(),
        total,
        percent,
        sent_last_minute,
        eta_seconds,
        per_device: devices
            .into_iter()
            .map(|(device_id, counts)| DeviceProgress { device_id, counts })
            .collect(),
        counts,
    })
}
