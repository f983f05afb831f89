//! `{greeting}`: a time-of-day greeting in the tenant's time zone, chosen when the message is
//! sent (a campaign can run for hours, so a word fixed at its start could greet an evening lead
//! with "Good morning").
//!
//! Rendering a template leaves `{greeting}` in the stored text ([`SLOT`]); the sending lane
//! fills it in just before the send, records the final text on the outbox row, then sends. A
//! re-send after a crash finds the text already filled, so the lead sees one message with one
//! greeting. Pure: no clock or database here.
//!
//! Tenants have no language setting, so the words are English: 05:00–11:59 `Good morning`,
//! 12:00–17:59 `Good afternoon`, otherwise `Good evening`. (The seed fork prefixed Malay
//! greetings by Malaysia hour with other boundaries; see docs/broadcast.md.)

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// The variable's name in templates.
pub const VARIABLE: &str = "greeting";

/// What `{greeting}` renders to until the send fills it in.
pub const SLOT: &str = "{greeting}";

/// The greeting for a local hour (0–23).
pub fn word(hour: u32) -> &'static str {
    match hour {
        5..=11 => "Good morning",
        12..=17 => "Good afternoon",
        _ => "Good evening",
    }
}

/// The greeting at `now` in `zone`.
pub fn at(now: DateTime<Utc>, zone: Tz) -> &'static str {
    word(now.with_timezone(&zone).hour())
}

/// `body` with every [`SLOT`] filled in for `now` in `zone`, or `None` when it has none.
pub fn fill(body: &str, now: DateTime<Utc>, zone: Tz) -> Option<String> {
    body.contains(SLOT)
        .then(|| body.replace(SLOT, at(now, zone)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hours_map_to_the_documented_words() {
        for (hour, expected) in [
            (0, "Good evening"),
            (4, "Good evening"),
            (5, "Good morning"),
            (11, "Good morning"),
            (12, "Good afternoon"),
            (17, "Good afternoon"),
            (18, "Good evening"),
            (23, "Good evening"),
        ] {
            assert_eq!(word(hour), expected, "{hour}");
        }
    }

    #[test]
    fn the_tenant_zone_decides() {
        // 01:30 UTC is 09:30 in Kuala Lumpur and 20:30 the day before in New York.
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 1, 30, 0).unwrap();
        assert_eq!(at(now, chrono_tz::Asia::Kuala_Lumpur), "Good morning");
        assert_eq!(at(now, chrono_tz::America::New_York), "Good evening");
        assert_eq!(
            fill(
                "{greeting} Aisyah, {greeting}!",
                now,
                chrono_tz::Asia::Kuala_Lumpur
            )
            .as_deref(),
            Some("Good morning Aisyah, Good morning!")
        );
        assert_eq!(fill("Hi Aisyah", now, chrono_tz::UTC), None);
    }
}
