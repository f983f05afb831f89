//! When a due step may actually go: inside its send window and outside the tenant's quiet
//! hours, both in the tenant's zone.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::Window;
use crate::broadcast::pacing::QuietHours;

/// The first instant at or after `due` that is inside `window` (when there is one) and not in
/// `quiet` hours; `None` when no such minute exists (the window lies inside the quiet hours).
pub fn send_time(
    due: DateTime<Utc>,
    window: Option<Window>,
    quiet: Option<QuietHours>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let mut at = due;
    // Each round moves to a window opening or a quiet-hours end; a handful settle it.
    for _ in 0..8 {
        let local = at.with_timezone(&zone).naive_local();
        if let Some(window) = window.filter(|w| !w.contains(local.time())) {
            at = next_local(local, window.start, zone)?;
            continue;
        }
        if let Some(quiet) = quiet.filter(|q| q.contains(local.time())) {
            at = next_local(local, quiet.end, zone)?;
            continue;
        }
        return Some(at);
    }
    None
}

/// The next instant after local `from` whose local time is `time`.
fn next_local(from: NaiveDateTime, time: chrono::NaiveTime, zone: Tz) -> Option<DateTime<Utc>> {
    let mut candidate = from.date().and_time(time);
    if candidate <= from {
        candidate += Duration::days(1);
    }
    // A time skipped by a DST change moves an hour on.
    zone.from_local_datetime(&candidate)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(candidate + Duration::hours(1)))
                .earliest()
        })
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KL: Tz = chrono_tz::Asia::Kuala_Lumpur;

    /// `HH:MM` on 2030-01-07 in Kuala Lumpur (UTC+8), as UTC.
    fn kl(day: u32, hh_mm: &str) -> DateTime<Utc> {
        let local =
            NaiveDateTime::parse_from_str(&format!("2030-01-{day:02} {hh_mm}"), "%Y-%m-%d %H:%M")
                .unwrap();
        KL.from_local_datetime(&local).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn inside_the_window_a_step_goes_when_due() {
        let window = Window::parse("09:00", "18:00").ok();
        assert_eq!(
            send_time(kl(7, "10:30"), window, None, KL),
            Some(kl(7, "10:30"))
        );
    }

    #[test]
    fn before_or_after_the_window_it_waits_for_the_next_opening() {
        let window = Window::parse("09:00", "18:00").ok();
        assert_eq!(
            send_time(kl(7, "07:15"), window, None, KL),
            Some(kl(7, "09:00"))
        );
        assert_eq!(
            send_time(kl(7, "18:00"), window, None, KL),
            Some(kl(8, "09:00"))
        );
    }

    #[test]
    fn quiet_hours_push_past_their_end_even_inside_a_window() {
        let window = Window::parse("08:00", "20:00").ok();
        let quiet = QuietHours::parse("07:00-10:00").unwrap();
        assert_eq!(
            send_time(kl(7, "08:30"), window, quiet, KL),
            Some(kl(7, "10:00"))
        );
        let night = QuietHours::parse("22:00-08:00").unwrap();
        assert_eq!(
            send_time(kl(7, "23:00"), None, night, KL),
            Some(kl(8, "08:00"))
        );
    }

    #[test]
    fn a_window_inside_quiet_hours_never_opens() {
        let window = Window::parse("01:00", "02:00").ok();
        let quiet = QuietHours::parse("00:00-06:00").unwrap();
        assert_eq!(send_time(kl(7, "12:00"), window, quiet, KL), None);
    }
}
