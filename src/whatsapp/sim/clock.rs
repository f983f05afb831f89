//! Simulated time: every duration the simulator waits or measures is divided by the time scale
//! (`--time-scale`), so demos and benchmarks run K times faster with the same rules.

use std::time::Duration;

/// Converts simulated durations into real ones.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// How many simulated seconds pass per real second; validated positive by the settings.
    time_scale: f64,
}

impl Clock {
    /// A clock running `time_scale` times faster than real time.
    pub(super) fn new(time_scale: f64) -> Self {
        Self { time_scale }
    }

    /// The real length of `ms` simulated milliseconds.
    pub(super) fn ms(self, ms: u64) -> Duration {
        self.scale(Duration::from_millis(ms))
    }

    /// The real length of a simulated duration. A scale that is not a positive number (the
    /// settings reject it, but the network can be built by hand) leaves durations unscaled.
    pub(super) fn scale(self, simulated: Duration) -> Duration {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return simulated;
        }
        Duration::try_from_secs_f64(simulated.as_secs_f64() / self.time_scale)
            .unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_shrink_by_the_time_scale() {
        assert_eq!(Clock::new(1.0).ms(2000), Duration::from_millis(2000));
        assert_eq!(Clock::new(1000.0).ms(2000), Duration::from_millis(2));
        assert_eq!(Clock::new(0.5).ms(2000), Duration::from_millis(4000));
    }

    #[test]
    fn a_bad_scale_leaves_durations_alone() {
        for scale in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Clock::new(scale).ms(1500), Duration::from_millis(1500));
        }
        assert_eq!(Clock::new(1e-300).ms(1), Duration::MAX);
    }
}
