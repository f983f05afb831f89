//! What every benchmark report carries besides its figures: the machine it ran on, the commit,
//! the process's memory, percentiles and target verdicts. The parsers are pure functions over
//! the text of `/proc` files, so they are unit-tested here without a running system.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Linux reports process CPU times in `/proc/<pid>/stat` in USER_HZ ticks, which the kernel ABI
/// fixes at 100 per second on every architecture we run on.
const USER_HZ: f64 = 100.0;

/// The machine a benchmark ran on, so figures are never read without their hardware.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: Option<String>,
    /// CPUs this process may use.
    pub cores: usize,
    /// Total memory in KiB from `/proc/meminfo`.
    pub memory_kib: Option<u64>,
    /// Distribution name from `/etc/os-release` and the kernel release.
    pub os: String,
    /// One-minute load average when the run started: other work on the machine skews figures.
    pub load_1m: Option<f64>,
}

impl Machine {
    /// Reads the machine's description from `/proc` and `/etc/os-release`.
    pub fn probe() -> Machine {
        let cpu = read("/proc/cpuinfo").and_then(|text| cpu_model(&text));
        let memory_kib = read("/proc/meminfo").and_then(|text| field_kib(&text, "MemTotal"));
        let distribution = read("/etc/os-release")
            .and_then(|text| os_name(&text))
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let os = match read("/proc/sys/kernel/osrelease") {
            Some(kernel) => format!("{distribution}, Linux {}", kernel.trim()),
            None => distribution,
        };
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib,
            os,
            load_1m: read("/proc/loadavg").and_then(|text| load_1m(&text)),
        }
    }
}

/// The short hash of the checked-out commit, when run inside a git work tree.
pub fn commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let hash = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !hash.is_empty()).then_some(hash)
}

/// This process's memory, in KiB, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Highest resident set size so far (`VmHWM`).
    pub peak_kib: u64,
}

impl Memory {
    /// Reads the current figures; errors when `/proc` is not there (not Linux).
    pub fn probe() -> anyhow::Result<Memory> {
        Self::of("self")
    }

    /// The figures of process `pid` ("self": this one).
    pub fn of(pid: &str) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)?;
        let field =
            |name| field_kib(&status, name).ok_or_else(|| anyhow::anyhow!("{path} has no {name}"));
        Ok(Memory {
            rss_kib: field("VmRSS")?,
            peak_kib: field("VmHWM")?,
        })
    }
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`.
pub fn cpu_seconds() -> Option<f64> {
    read("/proc/self/stat").and_then(|text| cpu_seconds_of(&text))
}

/// A figure against its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    /// What was measured.
    pub value: f64,
    /// The target from issue 11.
    pub target: f64,
    /// Whether the value meets it.
    pub met: bool,
}

impl Target {
    /// A target the value must not exceed (durations, memory).
    pub fn at_most(value: f64, target: f64) -> Target {
        Target {
            value: round(value, 3),
            target,
            met: value <= target,
        }
    }

    /// A target the value must reach (rates, ratios).
    pub fn at_least(value: f64, target: f64) -> Target {
        Target {
            value: round(value, 3),
            target,
            met: value >= target,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest sample.
    pub max: f64,
}

impl LatencyMs {
    /// Percentiles of samples in microseconds (sorted here); `None` without samples.
    pub fn from_micros(samples: &mut [u32]) -> Option<LatencyMs> {
        samples.sort_unstable();
        let ms = |q| percentile(samples, q).map(|us| round(f64::from(us) / 1000.0, 3));
        Some(LatencyMs {
            p50: ms(0.5)?,
            p99: ms(0.99)?,
            p999: ms(0.999)?,
            max: ms(1.0)?,
        })
    }
}

/// The nearest-rank percentile `q` (0..=1) of sorted samples; `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// `value` rounded to `decimals` places, so reports do not carry float noise.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Adds the fields of object `more` to object `into` (later fields win); anything else is left
/// alone.
pub fn merge(into: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(more)) = (into.as_object_mut(), more) {
        into.extend(more);
    }
}

/// Writes the report to stdout as one pretty-printed JSON object (the only thing on stdout).
pub fn print(report: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

/// A file's text, or `None` when it cannot be read.
fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_string())
}

/// A `Name:   123 kB` field of `/proc/meminfo` or `/proc/self/status`.
fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().trim_end_matches("kB").trim().parse().ok())?
    })
}

/// `PRETTY_NAME` of `/etc/os-release`, unquoted.
fn os_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

/// The first field of `/proc/loadavg`.
fn load_1m(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// utime + stime of `/proc/<pid>/stat`, in seconds. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 0.5), Some(500));
        assert_eq!(percentile(&samples, 0.99), Some(990));
        assert_eq!(percentile(&samples, 0.999), Some(999));
        assert_eq!(percentile(&samples, 1.0), Some(1000));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }

    #[test]
    fn latency_summary_sorts_and_converts_to_ms() {
        let mut samples = vec![3000, 1000, 2000, 250_000];
        let latency = LatencyMs::from_micros(&mut samples).unwrap();
        assert_eq!(latency.p50, 2.0);
        assert_eq!(latency.p99, 250.0);
        assert_eq!(latency.max, 250.0);
        assert_eq!(LatencyMs::from_micros(&mut []), None);
    }

    #[test]
    fn targets_say_whether_they_are_met() {
        assert!(Target::at_most(41.25, 60.0).met);
        assert!(!Target::at_most(8.5, 8.0).met);
        assert!(Target::at_most(8.0, 8.0).met);
        assert_eq!(Target::at_most(1.23456, 2.0).value, 1.235);
    }

    #[test]
    fn proc_files_are_parsed() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);

        let meminfo = "MemTotal:        8131212 kB\nMemFree:          123 kB\n";
        assert_eq!(field_kib(meminfo, "MemTotal"), Some(8_131_212));
        let status = "Name:\twafleet\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(field_kib(status, "VmRSS"), Some(102_400));
        assert_eq!(field_kib(status, "VmHWM"), Some(204_800));
        assert_eq!(field_kib(status, "VmSwap"), None);

        let os_release =
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_name(os_release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(load_1m("8.35 7.67 5.27 3/612 9001\n"), Some(8.35));

        let stat = "4242 (wafleet (bench)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 66 0 0 20 0 9 0 100 0";
        assert_eq!(cpu_seconds_of(stat), Some(13.0));
        assert_eq!(cpu_seconds_of("garbage"), None);
    }

    #[test]
    fn objects_merge() {
        let mut report = serde_json::json!({"scenario": "boot", "params": {"devices": 1}});
        merge(
            &mut report,
            serde_json::json!({"params": {"devices": 2}, "seconds": 1.5}),
        );
        assert_eq!(
            report,
            serde_json::json!({"scenario": "boot", "params": {"devices": 2}, "seconds": 1.5})
        );
        merge(&mut report, serde_json::json!(3));
        assert_eq!(report["seconds"], 1.5);
    }

    #[test]
    fn rounding_keeps_the_given_places() {
        assert_eq!(round(2.0 / 3.0, 2), 0.67);
        assert_eq!(round(1234.5678, 0), 1235.0);
    }
}
