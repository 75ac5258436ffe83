//! CPU rates (nano cores) from successive cumulative usage samples.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// How long a baseline is kept before a new sample replaces it.
const WINDOW_NS: u64 = 1_000_000_000;

/// The CPU rate of each cgroup asked for, by a key of the caller's (a
/// container or pod id).
///
/// Callers sample within milliseconds of each other (kubelet asks for pod
/// and container stats in one sweep, crictl and kubelet interleave), so
/// the baseline moves only once at least a second has passed; a sample
/// inside that window answers the rate measured last, or `None` before
/// there is one. Rates therefore cover one second or more.
#[derive(Debug, Default)]
pub struct CpuRates {
    samples: Mutex<HashMap<String, Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ns: u64,
    usage_ns: u64,
    rate: Option<u64>,
}

impl CpuRates {
    /// The rate of `key` given its cumulative usage `usage_ns` read at
    /// `at_ns` (both nanoseconds).
    pub fn rate(&self, key: &str, at_ns: u64, usage_ns: u64) -> Option<u64> {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = samples.entry(key.to_string()).or_insert(Sample {
            at_ns,
            usage_ns,
            rate: None,
        });
        let elapsed = at_ns.saturating_sub(sample.at_ns);
        if elapsed < WINDOW_NS {
            return sample.rate;
        }
        let delta = usage_ns.saturating_sub(sample.usage_ns);
        let rate = u64::try_from(u128::from(delta) * 1_000_000_000 / u128::from(elapsed)).ok();
        *sample = Sample {
            at_ns,
            usage_ns,
            rate,
        };
        rate
    }

    /// Drops what is known of `key` (it is gone).
    pub fn forget(&self, key: &str) {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::CpuRates;

    #[test]
    fn a_rate_spans_a_second_or_more() {
        let rates = CpuRates::default();
        assert_eq!(rates.rate("x", 1_000_000_000, 0), None);
        assert_eq!(
            rates.rate("x", 1_500_000_000, 100_000_000),
            None,
            "inside the first window there is no rate yet"
        );
        // Half a core over one second.
        assert_eq!(
            rates.rate("x", 2_000_000_000, 500_000_000),
            Some(500_000_000)
        );
        // A second caller a moment later gets the same rate: the baseline
        // stays, so near-simultaneous samples do not measure a zero interval.
        assert_eq!(
            rates.rate("x", 2_001_000_000, 500_000_000),
            Some(500_000_000)
        );
        // A full core over the next second.
        assert_eq!(
            rates.rate("x", 3_000_000_000, 1_500_000_000),
            Some(1_000_000_000)
        );
        assert_eq!(rates.rate("y", 3_000_000_000, 7), None, "per key");
        // A counter that went back (a new cgroup under the same key) is 0,
        // not a wrap-around.
        assert_eq!(rates.rate("x", 4_000_000_000, 0), Some(0));
        rates.forget("x");
        assert_eq!(rates.rate("x", 5_000_000_000, 0), None, "forgotten");
    }

    #[test]
    fn a_clock_that_goes_back_keeps_the_baseline() {
        let rates = CpuRates::default();
        assert_eq!(rates.rate("x", 5_000_000_000, 0), None);
        assert_eq!(rates.rate("x", 1_000_000_000, 10), None);
    }
}
