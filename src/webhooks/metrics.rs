//! Prometheus collectors of outbound webhooks.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Seconds one delivery attempt takes: 5 ms to the longest timeout.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Collectors of the webhook dispatcher.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    /// `wafleet_webhook_deliveries_total{result}`: attempts by outcome (`delivered`, `failed`
    /// = retried later, `dead` = given up or 410).
    pub deliveries: IntCounterVec,
    /// `wafleet_webhook_delivery_seconds`: time of one attempt.
    pub latency: Histogram,
    /// `wafleet_webhook_events_dropped_total`: events not queued because the in-memory buffer
    /// was full (the database down or too slow).
    pub dropped: IntCounter,
    /// `wafleet_webhook_buffered_events`: events waiting in memory to be queued.
    pub buffered: IntGauge,
    /// `wafleet_webhook_endpoints`: active endpoints.
    pub endpoints: IntGauge,
}

impl WebhookMetrics {
    /// Creates the collectors and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            deliveries: IntCounterVec::new(
                Opts::new(
                    "webhook_deliveries_total",
                    "Outbound webhook delivery attempts by result",
                ),
                &["result"],
            )?,
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "webhook_delivery_seconds",
                    "Seconds one outbound webhook delivery attempt took",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            dropped: IntCounter::new(
                "webhook_events_dropped_total",
                "Webhook events not queued because the in-memory buffer was full",
            )?,
            buffered: IntGauge::new(
                "webhook_buffered_events",
                "Webhook events waiting in memory to be queued",
            )?,
            endpoints: IntGauge::new("webhook_endpoints", "Active outbound webhook endpoints")?,
        };
        registry.register(Box::new(metrics.deliveries.clone()))?;
        registry.register(Box::new(metrics.latency.clone()))?;
        registry.register(Box::new(metrics.dropped.clone()))?;
        registry.register(Box::new(metrics.buffered.clone()))?;
        registry.register(Box::new(metrics.endpoints.clone()))?;
        Ok(metrics)
    }
}
