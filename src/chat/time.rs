//! How a message time is shown: in the tenant's time zone, `15:04` today, `Yesterday`, the
//! weekday within the last week, else the date (`18/11/2026`). One function, used by the API's
//! `time_label` fields (the page shows those labels as they come).

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

/// The label for `at` as seen at `now` in `zone`.
pub fn time_label(at: DateTime<Utc>, now: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    let today = now.with_timezone(&zone).date_naive();
    let day = local.date_naive();
    let days_ago = (today - day).num_days();
    match days_ago {
        // Today (and, for clock skew, the near future).
        i64::MIN..=0 => local.format("%H:%M").to_string(),
        1 => "Yesterday".to_string(),
        2..=6 => local.weekday_name(),
        _ => local.format("%d/%m/%Y").to_string(),
    }
}

/// English weekday names.
trait WeekdayName {
    /// `Monday` … `Sunday`.
    fn weekday_name(&self) -> String;
}

impl<T: Datelike> WeekdayName for T {
    fn weekday_name(&self) -> String {
        match self.weekday() {
            chrono::Weekday::Mon => "Monday",
            chrono::Weekday::Tue => "Tuesday",
            chrono::Weekday::Wed => "Wednesday",
            chrono::Weekday::Thu => "Thursday",
            chrono::Weekday::Fri => "Friday",
            chrono::Weekday::Sat => "Saturday",
            chrono::Weekday::Sun => "Sunday",
        }
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn labels_in_kuala_lumpur_across_local_midnight() {
        let kl: Tz = "Asia/Kuala_Lumpur".parse().unwrap();
        // 2026-11-25 10:00 KL (02:00 UTC).
        let now = utc(2026, 11, 25, 2, 0);
        assert_eq!(time_label(utc(2026, 11, 25, 1, 4), now, kl), "09:04");
        // 23:30 UTC on the 24th is 07:30 on the 25th in KL: still today.
        assert_eq!(time_label(utc(2026, 11, 24, 23, 30), now, kl), "07:30");
        // 15:59 UTC on the 24th is 23:59 on the 24th in KL: yesterday.
        assert_eq!(time_label(utc(2026, 11, 24, 15, 59), now, kl), "Yesterday");
        assert_eq!(time_label(utc(2026, 11, 21, 3, 0), now, kl), "Saturday");
        assert_eq!(time_label(utc(2026, 11, 19, 3, 0), now, kl), "Thursday");
        assert_eq!(time_label(utc(2026, 11, 18, 3, 0), now, kl), "18/11/2026");
    }

    #[test]
    fn labels_follow_daylight_saving_time() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // DST ended 2026-10-25 03:00 CEST → 02:00 CET.
        let now = utc(2026, 10, 25, 12, 0);
        // 22:30 UTC on the 24th = 00:30 CEST on the 25th: today.
        assert_eq!(time_label(utc(2026, 10, 24, 22, 30), now, berlin), "00:30");
        // 21:30 UTC on the 24th = 23:30 CEST on the 24th: yesterday.
        assert_eq!(
            time_label(utc(2026, 10, 24, 21, 30), now, berlin),
            "Yesterday"
        );
        // After the change Berlin is UTC+1.
        assert_eq!(time_label(utc(2026, 10, 25, 11, 0), now, berlin), "12:00");
        let utc_zone: Tz = "UTC".parse().unwrap();
        assert_eq!(
            time_label(utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 0, 1), utc_zone),
            "Yesterday"
        );
    }
}
