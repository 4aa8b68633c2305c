//! The hybrid logical clock that issues `updated_at` values.
//!
//! Every timestamp the daemon issues is greater than every timestamp it has issued or seen
//! (DESIGN.md section 5), even if the wall clock stands still or jumps back: a device with a
//! slow clock still orders its own later edits after what it has already observed. The
//! watermark is persisted in `meta` with each commit so a restart cannot go back in time.

use tasksync_proto::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct HybridClock {
    last: Timestamp,
}

impl HybridClock {
    /// A clock that has already issued or seen `watermark`.
    pub fn new(watermark: Timestamp) -> Self {
        HybridClock { last: watermark }
    }

    /// The next timestamp: the wall-clock time, or one millisecond past the watermark if the
    /// wall clock is not ahead of it.
    pub fn tick(&mut self, wall: Timestamp) -> Timestamp {
        self.last = wall.max(self.last.next());
        self.last
    }

    /// Records a timestamp seen from elsewhere, so later ticks come after it.
    pub fn observe(&mut self, seen: Timestamp) {
        self.last = self.last.max(seen);
    }

    /// The greatest timestamp issued or seen.
    pub fn watermark(&self) -> Timestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis).unwrap()
    }

    #[test]
    fn ticks_follow_the_wall_clock_when_it_is_ahead() {
        let mut clock = HybridClock::new(ts(100));
        assert_eq!(clock.tick(ts(500)), ts(500));
        assert_eq!(clock.tick(ts(900)), ts(900));
    }

    #[test]
    fn ticks_strictly_increase_when_the_wall_clock_stalls_or_goes_back() {
        let mut clock = HybridClock::new(ts(1_000));
        assert_eq!(clock.tick(ts(1_000)), ts(1_001));
        assert_eq!(clock.tick(ts(10)), ts(1_002));
    }

    #[test]
    fn observed_timestamps_push_the_clock_forward() {
        let mut clock = HybridClock::new(ts(0));
        clock.observe(ts(3_600_000));
        assert_eq!(clock.tick(ts(5)), ts(3_600_001));
        clock.observe(ts(1));
        assert_eq!(clock.watermark(), ts(3_600_001));
    }
}
