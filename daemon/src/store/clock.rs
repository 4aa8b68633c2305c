//! The hybrid logical clock that issues `updated_at` values.
//!
//! Every timestamp the daemon issues is greater than every timestamp it has issued or seen
//! (docs/SYNC-PROTOCOL.md, section 8), even if the wall clock stands still or jumps back: a device with a
//! slow clock still orders its own later edits after what it has already observed. The
//! watermark is persisted in `meta` with each commit so a restart cannot go back in time.
//!
//! Two guards keep one bad timestamp from ruining the clock: a timestamp from the wire that
//! lies more than [`MAX_CLOCK_SKEW`] ahead of the wall clock is never observed (the sync code
//! skips that task, see [`HybridClock::too_far_ahead`]), and a tick that cannot be strictly
//! greater than the last one fails instead of repeating it.

use std::sync::Arc;
use std::time::Duration;

use tasksync_proto::Timestamp;

/// How far ahead of our wall clock a timestamp from another device may be before it is
/// refused (docs/SYNC-PROTOCOL.md, "Clock skew": the server's default).
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// Where the wall-clock time comes from: the system clock, or a simulated one in tests.
pub(crate) type WallClock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system's wall clock.
pub(crate) fn system_clock() -> WallClock {
    Arc::new(Timestamp::now)
}

/// The clock has issued the greatest representable timestamp and cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task clock stands at {0}, the last representable instant, and cannot issue a later updated_at; nothing was written")]
pub(crate) struct ClockExhausted(pub Timestamp);

pub(crate) struct HybridClock {
    last: Timestamp,
    wall: WallClock,
}

impl std::fmt::Debug for HybridClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridClock")
            .field("last", &self.last)
            .finish()
    }
}

impl HybridClock {
    /// A clock that has already issued or seen `watermark`.
    pub(crate) fn new(watermark: Timestamp, wall: WallClock) -> Self {
        HybridClock {
            last: watermark,
            wall,
        }
    }

    /// The wall-clock time.
    pub(crate) fn now(&self) -> Timestamp {
        (self.wall)()
    }

    /// The next timestamp: the wall-clock time, or one millisecond past the watermark if the
    /// wall clock is not ahead of it; an error if nothing later can be represented.
    pub(crate) fn tick(&mut self) -> Result<Timestamp, ClockExhausted> {
        let next = self.last.checked_next().ok_or(ClockExhausted(self.last))?;
        self.last = self.now().max(next);
        Ok(self.last)
    }

    /// Records a timestamp seen from elsewhere, so later ticks come after it. Callers check
    /// [`HybridClock::too_far_ahead`] first.
    pub(crate) fn observe(&mut self, seen: Timestamp) {
        self.last = self.last.max(seen);
    }

    /// Whether `seen` lies more than [`MAX_CLOCK_SKEW`] ahead of the wall clock: such a
    /// timestamp must not reach this clock or the store.
    pub(crate) fn too_far_ahead(&self, seen: Timestamp) -> bool {
        seen.as_millis() > self.now().as_millis() + MAX_CLOCK_SKEW.as_millis() as i64
    }

    /// The greatest timestamp issued or seen.
    pub(crate) fn watermark(&self) -> Timestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicI64, Ordering};

    fn ts(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis).unwrap()
    }

    /// A clock whose wall time the test sets.
    fn clock_at(watermark: i64) -> (HybridClock, Arc<AtomicI64>) {
        let wall = Arc::new(AtomicI64::new(0));
        let source = wall.clone();
        let clock = HybridClock::new(
            ts(watermark),
            Arc::new(move || ts(source.load(Ordering::SeqCst))),
        );
        (clock, wall)
    }

    #[test]
    fn ticks_follow_the_wall_clock_when_it_is_ahead() {
        let (mut clock, wall) = clock_at(100);
        wall.store(500, Ordering::SeqCst);
        assert_eq!(clock.tick(), Ok(ts(500)));
        wall.store(900, Ordering::SeqCst);
        assert_eq!(clock.tick(), Ok(ts(900)));
    }

    #[test]
    fn ticks_strictly_increase_when_the_wall_clock_stalls_or_goes_back() {
        let (mut clock, wall) = clock_at(1_000);
        wall.store(1_000, Ordering::SeqCst);
        assert_eq!(clock.tick(), Ok(ts(1_001)));
        wall.store(10, Ordering::SeqCst);
        assert_eq!(clock.tick(), Ok(ts(1_002)));
    }

    #[test]
    fn observed_timestamps_push_the_clock_forward() {
        let (mut clock, wall) = clock_at(0);
        wall.store(5, Ordering::SeqCst);
        clock.observe(ts(3_600_000));
        assert_eq!(clock.tick(), Ok(ts(3_600_001)));
        clock.observe(ts(1));
        assert_eq!(clock.watermark(), ts(3_600_001));
    }

    #[test]
    fn a_saturated_clock_fails_instead_of_repeating_itself() {
        let max = Timestamp::from_millis(253_402_300_799_999).unwrap();
        let (mut clock, _wall) = clock_at(max.as_millis() - 1);
        assert_eq!(clock.tick(), Ok(max));
        assert_eq!(clock.tick(), Err(ClockExhausted(max)));
        assert_eq!(clock.watermark(), max, "a failed tick changes nothing");
    }

    #[test]
    fn timestamps_far_ahead_of_the_wall_clock_are_flagged() {
        let (clock, wall) = clock_at(0);
        wall.store(1_000_000, Ordering::SeqCst);
        let limit = 1_000_000 + MAX_CLOCK_SKEW.as_millis() as i64;
        assert!(!clock.too_far_ahead(ts(limit)));
        assert!(clock.too_far_ahead(ts(limit + 1)));
        assert!(!clock.too_far_ahead(ts(0)));
    }
}
