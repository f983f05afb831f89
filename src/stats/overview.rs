//! The home page's figures for a range in the tenant's zone: totals, rates, one series bucket
//! per local hour (today) or local day (7 or 30 days), and the devices' shares.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{Db, DbError};
use crate::stats::model::{hour_of, Tally};
use crate::stats::store::{self, Scope};

/// A range the home page shows: `today`, `7d` or `30d`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum Range {
    /// Since local midnight, per hour.
    #[default]
    #[serde(rename = "today")]
    Today,
    /// The last 7 local days (today included), per day.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 local days (today included), per day.
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    /// Its API name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Today => "today",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    /// Local days covered, today included.
    fn days(self) -> i64 {
        match self {
            Self::Today => 1,
            Self::Week => 7,
            Self::Month => 30,
        }
    }
}

/// One bar of a series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    /// Short label in the tenant's zone (`14` for an hour, `Mon 30 Nov` for a day).
    pub label: String,
    /// Where the bucket starts.
    pub start: DateTime<Utc>,
    /// What happened in it.
    #[serde(flatten)]
    pub tally: Tally,
}

/// Delivery, read and reply rates in percent of messages sent.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Rates {
    /// Delivered (or read) of sent.
    pub delivered: f64,
    /// Read of sent.
    pub read: f64,
    /// Replies received per message sent.
    pub replied: f64,
}

impl Rates {
    /// The rates of a tally.
    pub fn of(tally: &Tally) -> Self {
        Self {
            delivered: Tally::percent(tally.delivered, tally.sent),
            read: Tally::percent(tally.read, tally.sent),
            replied: Tally::percent(tally.replies, tally.sent),
        }
    }
}

/// One device's share of the range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceShare {
    /// The device.
    pub device_id: i64,
    /// Its name.
    pub name: String,
    /// What it did.
    #[serde(flatten)]
    pub tally: Tally,
}

/// The figures of a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    /// `today`, `7d` or `30d`.
    pub range: &'static str,
    /// The tenant's zone the buckets are cut in.
    pub time_zone: String,
    /// Start of the range (local midnight of its first day).
    pub since: DateTime<Utc>,
    /// Sums over the range.
    pub totals: Tally,
    /// Rates over the range.
    pub rates: Rates,
    /// One bucket per local hour (today) or local day.
    pub series: Vec<Bucket>,
    /// Devices that did anything in the range, most sent first.
    pub devices: Vec<DeviceShare>,
}

/// Local midnight of `date` (the first valid instant on a day a DST change skips it).
fn local_midnight(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut at = date.and_time(chrono::NaiveTime::MIN);
    loop {
        if let Some(local) = zone.from_local_datetime(&at).earliest() {
            return local.with_timezone(&Utc);
        }
        at += Duration::minutes(30);
    }
}

/// The empty buckets of a range ending `now`, and where each UTC hour's counts go.
struct Grid {
    buckets: Vec<Bucket>,
    zone: Tz,
    first_day: NaiveDate,
    hourly: bool,
}

impl Grid {
    fn new(range: Range, zone: Tz, now: DateTime<Utc>) -> Self {
        let today = now.with_timezone(&zone).date_naive();
        let first_day = today - Duration::days(range.days() - 1);
        let hourly = range == Range::Today;
        let buckets = if hourly {
            let midnight = local_midnight(zone, today);
            (0..24)
                .map(|h| Bucket {
                    label: format!("{h:02}"),
                    start: midnight + Duration::hours(h),
                    tally: Tally::default(),
                })
                .collect()
        } else {
            (0..range.days())
                .map(|d| {
                    let day = first_day + Duration::days(d);
                    Bucket {
                        label: day.format("%a %-d %b").to_string(),
                        start: local_midnight(zone, day),
                        tally: Tally::default(),
                    }
                })
                .collect()
        };
        Self {
            buckets,
            zone,
            first_day,
            hourly,
        }
    }

    /// The bucket a UTC hour's counts belong to.
    fn slot(&self, hour: NaiveDateTime) -> Option<usize> {
        let local = Utc.from_utc_datetime(&hour).with_timezone(&self.zone);
        let day = (local.date_naive() - self.first_day).num_days();
        let index = if self.hourly {
            (day == 0).then_some(i64::from(local.hour()))?
        } else {
            day
        };
        usize::try_from(index)
            .ok()
            .filter(|i| *i < self.buckets.len())
    }
}

/// The figures of `range` for `scope`, cut in `zone`, as of `now`.
pub async fn overview(
    db: &Db,
    tenant_id: i64,
    scope: &Scope,
    zone: Tz,
    range: Range,
    now: DateTime<Utc>,
) -> Result<Overview, DbError> {
    let mut grid = Grid::new(range, zone, now);
    let since = grid.buckets[0].start;
    // The UTC hour holding local midnight (zones with half-hour offsets start mid-hour).
    let from = hour_of(since.naive_utc());
    let mut totals = Tally::default();
    for (hour, tally) in store::hourly(db, tenant_id, scope, from).await? {
        if let Some(slot) = grid.slot(hour) {
            grid.buckets[slot].tally.add(&tally);
            totals.add(&tally);
        }
    }
    let devices = store::by_device(db, tenant_id, scope, from, now.naive_utc())
        .await?
        .into_iter()
        .map(|d| DeviceShare {
            device_id: d.device_id,
            name: d.name,
            tally: d.tally,
        })
        .collect();
    Ok(Overview {
        range: range.name(),
        time_zone: zone.name().to_string(),
        since,
        totals,
        rates: Rates::of(&totals),
        series: grid.buckets,
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn today_has_24_local_hours_from_local_midnight() {
        let zone: Tz = "Asia/Kuala_Lumpur".parse().unwrap();
        let grid = Grid::new(Range::Today, zone, utc("2026-12-05T03:10:00Z"));
        assert_eq!(grid.buckets.len(), 24);
        // 11:10 in Kuala Lumpur (UTC+8): midnight was 16:00 UTC the day before.
        assert_eq!(grid.buckets[0].start, utc("2026-12-04T16:00:00Z"));
        let hour = utc("2026-12-05T02:00:00Z").naive_utc();
        assert_eq!(grid.slot(hour), Some(10));
        assert_eq!(grid.slot(utc("2026-12-04T15:00:00Z").naive_utc()), None);
    }

    #[test]
    fn days_are_local_days_ending_today() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let grid = Grid::new(Range::Week, zone, utc("2026-12-05T03:00:00Z"));
        // 22:00 on Friday 4 December in New York.
        assert_eq!(grid.buckets.len(), 7);
        assert_eq!(grid.buckets[6].label, "Fri 4 Dec");
        assert_eq!(grid.buckets[0].label, "Sat 28 Nov");
        assert_eq!(grid.slot(utc("2026-12-05T02:00:00Z").naive_utc()), Some(6));
        assert_eq!(grid.slot(utc("2026-11-28T04:00:00Z").naive_utc()), None);
        assert_eq!(grid.slot(utc("2026-11-28T05:00:00Z").naive_utc()), Some(0));
    }

    #[test]
    fn a_midnight_skipped_by_dst_starts_at_the_first_valid_instant() {
        // Santiago skipped 00:00–01:00 on 6 September 2026.
        let zone: Tz = "America/Santiago".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = local_midnight(zone, day).with_timezone(&zone);
        assert_eq!(start.date_naive(), day);
        assert!(start.hour() >= 1);
    }
}
