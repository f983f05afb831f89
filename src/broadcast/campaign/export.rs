//! A campaign's results as CSV (RFC 4180): the header and one line per outbox row, times in the
//! tenant's zone. Cells a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return) get a leading `'`, so a lead named `=HYPERLINK(…)` stays text.
//! Pure: the web layer streams the lines page by page.

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::broadcast::outbox::store::ExportRow;

/// The columns, in order.
pub const COLUMNS: [&str; 9] = [
    "phone",
    "name",
    "device",
    "status",
    "error",
    "attempts",
    "sent_at",
    "delivered_at",
    "read_at",
];

/// The header line.
pub fn header() -> String {
    let mut line = String::new();
    for (n, column) in COLUMNS.iter().enumerate() {
        push_cell(&mut line, n, column);
    }
    line.push_str("\r\n");
    line
}

/// One row's line, its times in `zone` (`2026-12-05 14:03:22 +08:00`; empty when it never
/// happened).
pub fn line(row: &ExportRow, zone: Tz) -> String {
    let attempts = row.attempts.to_string();
    let cells = [
        row.phone.clone(),
        row.name.clone().unwrap_or_default(),
        row.device.clone().unwrap_or_default(),
        row.status.clone(),
        row.error.clone().unwrap_or_default(),
        attempts,
        local(row.sent_at, zone),
        local(row.delivered_at, zone),
        local(row.read_at, zone),
    ];
    let mut line = String::new();
    for (n, cell) in cells.iter().enumerate() {
        push_cell(&mut line, n, cell);
    }
    line.push_str("\r\n");
    line
}

/// A UTC time in `zone`, or empty.
fn local(at: Option<NaiveDateTime>, zone: Tz) -> String {
    at.map(|t| {
        t.and_utc()
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    })
    .unwrap_or_default()
}

/// Appends the `n`-th cell of a line: neutralised, then quoted when it must be.
fn push_cell(line: &mut String, n: usize, value: &str) {
    if n > 0 {
        line.push(',');
    }
    let value = neutralise(value);
    if value.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&value.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(&value);
    }
}

/// `value` with a leading `'` when a spreadsheet would read it as a formula.
fn neutralise(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, error: Option<&str>) -> ExportRow {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 5)
            .and_then(|d| d.and_hms_opt(6, 3, 22))
            .unwrap();
        ExportRow {
            id: 1,
            phone: "60120000001".into(),
            name: Some(name.into()),
            device: None,
            status: "failed".into(),
            error: error.map(Into::into),
            attempts: 2,
            sent_at: Some(at),
            delivered_at: None,
            read_at: None,
        }
    }

    #[test]
    fn header_names_every_column() {
        assert_eq!(
            header(),
            "phone,name,device,status,error,attempts,sent_at,delivered_at,read_at\r\n"
        );
    }

    #[test]
    fn quotes_commas_quotes_and_line_breaks() {
        let line = line(
            &row("Tan, \"Ah\" Kow", Some("line\nbreak")),
            chrono_tz::Asia::Kuala_Lumpur,
        );
        assert_eq!(
            line,
            "60120000001,\"Tan, \"\"Ah\"\" Kow\",,failed,\"line\nbreak\",2,2026-12-05 14:03:22 +08:00,,\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised() {
        for (raw, cell) in [
            ("=1+1", "'=1+1"),
            ("+60", "'+60"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(neutralise(raw), cell);
        }
        // Neutralised, then quoted: the quote comes inside.
        let line = line(&row("=HYPERLINK(\"x\",\"y\")", None), chrono_tz::UTC);
        assert!(
            line.contains(",\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\","),
            "{line}"
        );
        let line = line_with_cr();
        assert!(line.contains(",\"'\rx\","), "{line}");
    }

    fn line_with_cr() -> String {
        line(&row("\rx", None), chrono_tz::UTC)
    }
}
