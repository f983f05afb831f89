//! The counts kept per device and hour ([`Tally`]), the increments one transaction gathers
//! ([`Bumps`]) and what a receipt's status move adds ([`Bumps::ack`]).

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, Timelike};
use serde::Serialize;
use utoipa::ToSchema;

/// Counts of one bucket (an hour, a day, a range, a device).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Tally {
    /// Messages sent.
    pub sent: i64,
    /// Of those, reached the phone (delivered or read).
    pub delivered: i64,
    /// Of those, read.
    pub read: i64,
    /// Messages contacts wrote in one-to-one chats.
    pub replies: i64,
    /// Sends given up or refused.
    pub failed: i64,
}

impl Tally {
    /// Adds another tally's counts to this one.
    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.read += other.read;
        self.replies += other.replies;
        self.failed += other.failed;
    }

    /// `part` of `whole` in percent (0 when nothing was sent).
    pub fn percent(part: i64, whole: i64) -> f64 {
        if whole <= 0 {
            0.0
        } else {
            (part as f64 * 1000.0 / whole as f64).round() / 10.0
        }
    }
}

/// One thing that happened, counted in [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A message went out.
    Sent,
    /// A sent message reached the phone.
    Delivered,
    /// A sent message was read.
    Read,
    /// A contact wrote.
    Reply,
    /// A send was given up or refused.
    Failed,
}

/// The UTC hour `at` falls in.
pub fn hour_of(at: NaiveDateTime) -> NaiveDateTime {
    day_of(at) + chrono::Duration::hours(i64::from(at.hour()))
}

/// The UTC day `at` falls in (its midnight).
pub fn day_of(at: NaiveDateTime) -> NaiveDateTime {
    at.date().and_time(chrono::NaiveTime::MIN)
}

/// Increments gathered while a transaction runs, keyed by (tenant, device, UTC hour) and
/// written by [`crate::stats::store::apply`] before it commits.
#[derive(Debug, Default)]
pub struct Bumps(pub BTreeMap<(i64, i64, NaiveDateTime), Tally>);

impl Bumps {
    /// Counts one `count` for a device's message of time `at`.
    pub fn add(&mut self, tenant_id: i64, device_id: i64, at: NaiveDateTime, count: Count) {
        let tally = self
            .0
            .entry((tenant_id, device_id, hour_of(at)))
            .or_default();
        match count {
            Count::Sent => tally.sent += 1,
            Count::Delivered => tally.delivered += 1,
            Count::Read => tally.read += 1,
            Count::Reply => tally.replies += 1,
            Count::Failed => tally.failed += 1,
        }
    }

    /// Counts a sent message's status moving `from` → `to`, in the hour it was sent: a read
    /// receipt for a message never marked delivered counts as delivered too.
    pub fn ack(
        &mut self,
        tenant_id: i64,
        device_id: i64,
        sent_at: NaiveDateTime,
        from: &str,
        to: &str,
    ) {
        let mut add = |count| self.add(tenant_id, device_id, sent_at, count);
        match (from, to) {
            ("sent", "delivered") => add(Count::Delivered),
            ("sent", "read") => {
                add(Count::Delivered);
                add(Count::Read);
            }
            ("delivered", "read") => add(Count::Read),
            (_, "failed") => add(Count::Failed),
            _ => {}
        }
    }

    /// Counts a message stored already past `sent` (a history sync's, a send refused at once).
    pub fn stored_status(
        &mut self,
        tenant_id: i64,
        device_id: i64,
        sent_at: NaiveDateTime,
        status: &str,
    ) {
        if status != "sent" {
            self.ack(tenant_id, device_id, sent_at, "sent", status);
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same counts summed per (tenant, device, UTC day): the daily rows.
    pub fn device_days(&self) -> BTreeMap<(i64, i64, NaiveDateTime), Tally> {
        let mut days: BTreeMap<(i64, i64, NaiveDateTime), Tally> = BTreeMap::new();
        for ((tenant, device, hour), tally) in &self.0 {
            days.entry((*tenant, *device, day_of(*hour)))
                .or_default()
                .add(tally);
        }
        days
    }

    /// The same counts summed per (tenant, hour): the rows of device 0.
    pub fn tenant_totals(&self) -> BTreeMap<(i64, NaiveDateTime), Tally> {
        let mut totals: BTreeMap<(i64, NaiveDateTime), Tally> = BTreeMap::new();
        for ((tenant, _, hour), tally) in &self.0 {
            totals.entry((*tenant, *hour)).or_default().add(tally);
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 5)
            .unwrap()
            .and_hms_opt(h, m, 7)
            .unwrap()
    }

    #[test]
    fn counts_land_in_their_hour_and_sum_per_tenant() {
        let mut bumps = Bumps::default();
        bumps.add(1, 10, at(9, 5), Count::Sent);
        bumps.add(1, 10, at(9, 59), Count::Sent);
        bumps.add(1, 11, at(9, 30), Count::Reply);
        bumps.add(1, 11, at(10, 0), Count::Failed);
        assert_eq!(bumps.0.len(), 3);
        assert_eq!(
            bumps.0[&(1, 10, at(9, 0) - chrono::Duration::seconds(7))].sent,
            2
        );
        let totals = bumps.tenant_totals();
        let nine = totals[&(1, hour_of(at(9, 0)))];
        assert_eq!((nine.sent, nine.replies, nine.failed), (2, 1, 0));
        assert_eq!(totals[&(1, hour_of(at(10, 0)))].failed, 1);
    }

    #[test]
    fn a_read_receipt_for_a_sent_message_counts_as_delivered_too() {
        let mut bumps = Bumps::default();
        bumps.ack(1, 10, at(9, 5), "sent", "read");
        bumps.ack(1, 10, at(9, 6), "delivered", "read");
        bumps.ack(1, 10, at(9, 7), "sent", "delivered");
        bumps.ack(1, 10, at(9, 8), "sent", "failed");
        let tally = bumps.0[&(1, 10, hour_of(at(9, 0)))];
        assert_eq!((tally.delivered, tally.read, tally.failed), (2, 2, 1));
    }

    #[test]
    fn percent_is_rounded_and_zero_without_sends() {
        assert_eq!(Tally::percent(1, 3), 33.3);
        assert_eq!(Tally::percent(5, 0), 0.0);
    }
}
