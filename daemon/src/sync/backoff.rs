//! How long a failed operation waits before its next automatic attempt: exponential from a
//! base delay (default 500 ms), doubling, jittered (up to twice the delay, from
//! [`crate::entropy`]), capped (default 5 minutes).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `attempt`-th failed attempt (1-based).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let steps = attempt.saturating_sub(1) as usize;
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times()
            .build()
            .nth(steps)
            .map_or(self.max, |nominal| {
                nominal + nominal.mul_f64(crate::entropy::fraction())
            })
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_stay_under_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..=3 {
            let nominal = Duration::from_millis(500) * 2u32.pow(attempt - 1);
            let delay = policy.delay(attempt);
            assert!(
                delay >= nominal && delay <= nominal * 2,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(policy.delay(40) <= Duration::from_secs(300));
        assert!(policy.delay(40) >= Duration::from_secs(150));
    }
}
