//! The broadcast side's Prometheus collectors: send attempts by result, the outbox rows of the
//! campaigns this daemon runs by status, and the Throttle's waits and what pushed them.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Seconds a lane waits for its slot: 10 ms to one (simulated or real) hour.
const WAIT_BUCKETS: [f64; 12] = [
    0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Collectors of campaigns, sequences and the Throttle.
#[derive(Clone, Debug)]
pub struct BroadcastMetrics {
    /// `wafleet_sends_total{result}`: send attempts of campaign and sequence rows by outcome
    /// (`sent`, `rejected`, `retry`, `failed`, `rate_limited`, `device_lost`, `opted_out`).
    pub sends: IntCounterVec,
    /// `wafleet_outbox_rows{status}`: rows of the campaigns (and sequence carriers) this daemon
    /// runs, by status, as of the engine's last tick.
    pub outbox_rows: IntGaugeVec,
    /// `wafleet_throttle_wait_seconds`: real time from asking for a send slot to the slot.
    pub throttle_wait: Histogram,
    /// `wafleet_throttle_deferred_total{reason}`: slots pushed later by a rule (`per_minute`,
    /// `per_day` — warm-up included —, `quiet_hours`, `rate_limited`).
    pub deferred: IntCounterVec,
}

impl BroadcastMetrics {
    /// Creates the collectors and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.sends.clone()))?;
        registry.register(Box::new(metrics.outbox_rows.clone()))?;
        registry.register(Box::new(metrics.throttle_wait.clone()))?;
        registry.register(Box::new(metrics.deferred.clone()))?;
        Ok(metrics)
    }

    /// The collectors without a registry (unit tests of the Throttle).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            sends: IntCounterVec::new(
                Opts::new(
                    "sends_total",
                    "Send attempts of campaign and sequence rows by result",
                ),
                &["result"],
            )?,
            outbox_rows: IntGaugeVec::new(
                Opts::new(
                    "outbox_rows",
                    "Outbox rows of the campaigns this daemon runs, by status",
                ),
                &["status"],
            )?,
            throttle_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "throttle_wait_seconds",
                    "Real seconds from asking for a send slot to the slot",
                )
                .buckets(WAIT_BUCKETS.to_vec()),
            )?,
            deferred: IntCounterVec::new(
                Opts::new(
                    "throttle_deferred_total",
                    "Send slots pushed later by a pacing rule",
                ),
                &["reason"],
            )?,
        })
    }

    /// Counts one send attempt's `result`.
    pub fn send(&self, result: &str) {
        self.sends.with_label_values(&[result]).inc();
    }
}
