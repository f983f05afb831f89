//! The home page's charts as standalone SVG documents (served as images, so nothing in them
//! runs): sends per bucket with failures stacked on top and replies as a line, the delivery /
//! read / reply rates per bucket, and the devices' shares as horizontal bars.

use std::fmt::Write;

use crate::stats::overview::{Bucket, DeviceShare, Rates};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;
const SENT: &str = "#25d366";
const FAILED: &str = "#e5484d";
const REPLIES: &str = "#3b82f6";
const READ: &str = "#8b5cf6";
const FONT: &str = "font-family=\"system-ui,sans-serif\" font-size=\"11\" fill=\"#54656f\"";

/// One line of the rates chart: its name, colour and the rate it draws.
type Line = (&'static str, &'static str, fn(&Rates) -> f64);

/// `text` safe inside SVG text and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A round number at or above `max` for the top of an axis (at least 1).
fn axis_top(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * step)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * step)
}

/// Opens a document with a title (read out by screen readers) and a legend.
fn open(title: &str, legend: &[(&str, &str)]) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    let mut x = LEFT;
    for (name, color) in legend {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"17\" {FONT}>{}</text>",
            x + 14.0,
            escape(name)
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
    svg
}

/// Horizontal grid lines with their values, for an axis from 0 to `top`.
fn grid(svg: &mut String, top: f64, suffix: &str) {
    let plot = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let value = top * f64::from(i) / 4.0;
        let y = TOP + plot - plot * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e9edef\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" {FONT}>{}{suffix}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        );
    }
}

/// Bucket labels under the plot (every nth, so they never overlap).
fn labels(svg: &mut String, buckets: &[Bucket], slot: f64) {
    let every = (buckets.len() / 12).max(1);
    for (i, bucket) in buckets.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" {FONT}>{}</text>",
            LEFT + slot * (i as f64 + 0.5),
            HEIGHT - BOTTOM + 16.0,
            escape(&bucket.label)
        );
    }
}

/// Messages sent per bucket (failed stacked on top) and replies as a line.
pub fn sends(buckets: &[Bucket]) -> String {
    let mut svg = open(
        "Messages sent, failed and replies",
        &[("Sent", SENT), ("Failed", FAILED), ("Replies", REPLIES)],
    );
    let max = buckets
        .iter()
        .map(|b| (b.tally.sent + b.tally.failed).max(b.tally.replies))
        .max()
        .unwrap_or(0);
    let top = axis_top(max as f64);
    grid(&mut svg, top, "");
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / buckets.len().max(1) as f64;
    let scale = |n: i64| plot * n as f64 / top;
    let mut line = Vec::new();
    for (i, bucket) in buckets.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let width = slot * 0.7;
        let sent = scale(bucket.tally.sent);
        let failed = scale(bucket.tally.failed);
        let base = TOP + plot;
        let _ = write!(
            svg,
            "<g><title>{}: {} sent, {} failed, {} replies</title>\
             <rect class=\"bar-sent\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{sent:.1}\" fill=\"{SENT}\"/>\
             <rect class=\"bar-failed\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{failed:.1}\" fill=\"{FAILED}\"/></g>",
            escape(&bucket.label),
            bucket.tally.sent,
            bucket.tally.failed,
            bucket.tally.replies,
            base - sent,
            base - sent - failed,
        );
        line.push(format!(
            "{:.1},{:.1}",
            LEFT + slot * (i as f64 + 0.5),
            base - scale(bucket.tally.replies)
        ));
    }
    let _ = write!(
        svg,
        "<polyline class=\"line-replies\" points=\"{}\" fill=\"none\" stroke=\"{REPLIES}\" stroke-width=\"2\"/>",
        line.join(" ")
    );
    labels(&mut svg, buckets, slot);
    svg.push_str("</svg>");
    svg
}

/// Delivery, read and reply rates per bucket (buckets without sends are left out of the lines).
pub fn rates(buckets: &[Bucket]) -> String {
    let mut svg = open(
        "Delivery, read and reply rates",
        &[("Delivered", SENT), ("Read", READ), ("Replied", REPLIES)],
    );
    grid(&mut svg, 100.0, "%");
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / buckets.len().max(1) as f64;
    let series: [Line; 3] = [
        ("delivered", SENT, |r| r.delivered),
        ("read", READ, |r| r.read),
        ("replied", REPLIES, |r| r.replied),
    ];
    for (name, color, pick) in series {
        let points: Vec<String> = buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.tally.sent > 0)
            .map(|(i, b)| {
                let rate = pick(&Rates::of(&b.tally)).min(100.0);
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot * (i as f64 + 0.5),
                    TOP + plot - plot * rate / 100.0
                )
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"line-{name}\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for point in &points {
            let (x, y) = point.split_once(',').unwrap_or_default();
            let _ = write!(
                svg,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{color}\"/>"
            );
        }
    }
    labels(&mut svg, buckets, slot);
    svg.push_str("</svg>");
    svg
}

/// The devices that sent most, as horizontal bars (the rest summed in one last bar).
pub fn devices(shares: &[DeviceShare], shown: usize) -> String {
    let mut rows: Vec<(String, i64)> = shares
        .iter()
        .take(shown)
        .map(|d| (d.name.clone(), d.tally.sent))
        .collect();
    if shares.len() > shown {
        let rest: i64 = shares[shown..].iter().map(|d| d.tally.sent).sum();
        rows.push((format!("{} other devices", shares.len() - shown), rest));
    }
    let row_height = 20.0;
    let height = TOP + row_height * rows.len().max(1) as f64 + 8.0;
    let mut svg = open("Messages sent per device", &[("Sent", SENT)]);
    svg = svg.replacen(
        &format!("viewBox=\"0 0 {WIDTH} {HEIGHT}\""),
        &format!("viewBox=\"0 0 {WIDTH} {height}\""),
        1,
    );
    let name_width = 180.0;
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let span = WIDTH - name_width - RIGHT - 60.0;
    for (i, (name, sent)) in rows.iter().enumerate() {
        let y = TOP + row_height * i as f64;
        let width = span * *sent as f64 / max;
        let short: String = name.chars().take(26).collect();
        let _ = write!(
            svg,
            "<g><title>{}: {sent} sent</title>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" {FONT}>{}</text>\
             <rect class=\"bar-device\" x=\"{name_width}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"14\" fill=\"{SENT}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" {FONT}>{sent}</text></g>",
            escape(name),
            name_width - 6.0,
            y + 11.0,
            escape(&short),
            y,
            name_width + width + 4.0,
            y + 11.0,
        );
    }
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{LEFT}\" y=\"{}\" {FONT}>No messages sent in this range.</text>",
            TOP + 12.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::model::Tally;

    fn bucket(label: &str, sent: i64, failed: i64, replies: i64) -> Bucket {
        Bucket {
            label: label.into(),
            start: chrono::Utc::now(),
            tally: Tally {
                sent,
                failed,
                replies,
                delivered: sent,
                read: sent / 2,
            },
        }
    }

    #[test]
    fn bars_scale_to_the_largest_bucket() {
        let svg = sends(&[bucket("09", 50, 0, 1), bucket("10", 100, 0, 2)]);
        let heights: Vec<f64> = svg
            .split("class=\"bar-sent\"")
            .skip(1)
            .map(|part| {
                let h = part.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(heights.len(), 2);
        assert!((heights[1] - 2.0 * heights[0]).abs() < 0.2, "{heights:?}");
        assert!(svg.contains("10: 100 sent, 0 failed, 2 replies"));
    }

    #[test]
    fn names_are_escaped() {
        let share = DeviceShare {
            device_id: 1,
            name: "<script>alert(1)</script> & co".into(),
            tally: Tally {
                sent: 3,
                ..Tally::default()
            },
        };
        let svg = devices(&[share], 10);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn devices_beyond_the_shown_are_summed() {
        let shares: Vec<DeviceShare> = (0..5)
            .map(|i| DeviceShare {
                device_id: i,
                name: format!("d{i}"),
                tally: Tally {
                    sent: 10 - i,
                    ..Tally::default()
                },
            })
            .collect();
        let svg = devices(&shares, 3);
        assert!(svg.contains("2 other devices: 13 sent"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(7.0), 10.0);
        assert_eq!(axis_top(120.0), 200.0);
        assert_eq!(axis_top(2400.0), 2500.0);
    }
}
