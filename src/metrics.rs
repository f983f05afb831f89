//! Prometheus metrics, one registry per running application (tests run several in a process).
//!
//! Features register their own collectors on [`Metrics::registry`]; `/metrics` renders them all.
//!
//! [`Liveness`] is the registry of the daemon's singleton actors: each holds a [`Beacon`] that
//! it raises once it runs with its state loaded and lowers when it stops, restarts or cannot do
//! its work; `/readyz` answers 503 while any is down, and `wafleet_actor_up{actor}` /
//! `wafleet_actor_restarts_total{actor}` show the same to Prometheus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds, from 1 ms to 10 s.
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The application's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Where every collector is registered.
    pub registry: Registry,
    /// `http_requests_total{method,route,status}`.
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{method,route}`.
    pub http_duration: HistogramVec,
    /// Which singleton actors are up.
    pub liveness: Liveness,
    /// `db_pool_connections{state}`: the database pool's `open`, `idle` and `max` connections
    /// and the requests `waiting` for one, set at each scrape.
    pub db_pool: IntGaugeVec,
}

impl Metrics {
    /// Creates the registry and the HTTP collectors.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("wafleet".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool: open, idle and max connections, and requests waiting for one",
            ),
            &["state"],
        )?;
        let build = IntGaugeVec::new(
            Opts::new("build_info", "The running build (always 1)"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let liveness = Liveness::register(&registry)?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            liveness,
            db_pool,
        })
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// An actor's name and its up flag.
type Beacons = Vec<(&'static str, Arc<AtomicBool>)>;

/// The singleton actors of one daemon and whether each is up.
#[derive(Clone)]
pub struct Liveness {
    /// Every beacon handed out, by actor name, in the order they were made.
    actors: Arc<Mutex<Beacons>>,
    /// `actor_up{actor}`: 1 while the actor is up.
    up: IntGaugeVec,
    /// `actor_restarts_total{actor}`: restarts by its supervisor.
    restarts: IntCounterVec,
}

impl Liveness {
    /// Creates and registers the collectors.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let up = IntGaugeVec::new(
            Opts::new(
                "actor_up",
                "1 while a singleton actor runs with its state loaded",
            ),
            &["actor"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "actor_restarts_total",
                "Restarts of a singleton actor by its supervisor",
            ),
            &["actor"],
        )?;
        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        Ok(Self {
            actors: Arc::default(),
            up,
            restarts,
        })
    }

    /// The beacon of the singleton `actor` (a short snake_case name, shown by `/readyz`). It
    /// starts down: the actor raises it once it runs.
    pub fn beacon(&self, actor: &'static str) -> Beacon {
        let flag = Arc::new(AtomicBool::new(false));
        self.actors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((actor, flag.clone()));
        Beacon {
            flag,
            up: Some(self.up.with_label_values(&[actor])),
            restarts: Some(self.restarts.with_label_values(&[actor])),
        }
    }

    /// Every registered actor and whether it is up, in registration order.
    pub fn states(&self) -> Vec<(&'static str, bool)> {
        self.actors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, flag)| (*name, flag.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One singleton's liveness flag. Raised by the actor; lowered when it stops, restarts, or is
/// dropped (also when a panic unwinds its task, so a dead actor never reads as up).
pub struct Beacon {
    flag: Arc<AtomicBool>,
    up: Option<IntGauge>,
    restarts: Option<IntCounter>,
}

impl Beacon {
    /// A beacon nobody watches (an actor built outside a daemon, e.g. in a unit test).
    pub fn detached() -> Self {
        Self {
            flag: Arc::default(),
            up: None,
            restarts: None,
        }
    }

    /// The actor runs and can do its work.
    pub fn up(&self) {
        self.set(true);
    }

    /// The actor stopped or cannot do its work.
    pub fn down(&self) {
        self.set(false);
    }

    /// The actor's supervisor is restarting it: down, and one more restart counted.
    pub fn restarting(&self) {
        self.set(false);
        if let Some(restarts) = &self.restarts {
            restarts.inc();
        }
    }

    /// Whether the beacon is raised.
    pub fn is_up(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    fn set(&self, up: bool) {
        self.flag.store(up, Ordering::Relaxed);
        if let Some(gauge) = &self.up {
            gauge.set(i64::from(up));
        }
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        self.down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_report_their_actor_and_go_down_when_dropped() {
        let registry = Registry::new();
        let liveness = Liveness::register(&registry).unwrap();
        let hub = liveness.beacon("hub");
        let chat = liveness.beacon("chat_sync");
        hub.up();
        chat.up();
        chat.restarting();
        assert_eq!(liveness.states(), vec![("hub", true), ("chat_sync", false)]);
        drop(hub);
        assert_eq!(
            liveness.states(),
            vec![("hub", false), ("chat_sync", false)]
        );
        assert_eq!(liveness.restarts.with_label_values(&["chat_sync"]).get(), 1);
    }
}
