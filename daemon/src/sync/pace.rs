//! How often the engine may pull, whatever the server does: the checks on cursors, and the
//! budget of live pulls that come back at once. Pure: every time is passed in.
//!
//! - [`CursorCheck`]: within a round, a cursor that goes backwards (both numeric, as this
//!   project's server issues them) or comes back after the round moved past it (an A/B
//!   alternation) is a bad answer, so a lying server cannot keep a round paging forever.
//! - [`LiveBudget`]: a token bucket for live pulls that come back quicker than
//!   [`LIVE_TOO_QUICK`]: [`LIVE_BURST`] at once, then one a second. A healthy server holds a
//!   live pull until something changes, so only a busy stream of remote changes or a broken
//!   server meets the limit, and then the daemon pulls once a second, which still brings
//!   everything (a page holds up to 500 changes).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::client::SyncError;

/// A live pull answered sooner than this did not wait for news.
pub(crate) const LIVE_TOO_QUICK: Duration = Duration::from_millis(250);
/// Quick live answers allowed back to back before the daemon paces them.
pub(crate) const LIVE_BURST: f64 = 10.0;
/// Quick live answers allowed per second, on average, past the burst.
pub(crate) const LIVE_RATE: f64 = 1.0;

/// Where a cursor went, compared with the one it was asked from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Movement {
    Forward,
    Same,
    Backward,
}

/// Compares two opaque cursors: numerically when both are numbers (as this project's server
/// issues them), else only whether they differ.
pub(crate) fn movement(from: &str, to: &str) -> Movement {
    if from == to {
        return Movement::Same;
    }
    match (from.parse::<u64>(), to.parse::<u64>()) {
        (Ok(a), Ok(b)) if b < a => Movement::Backward,
        // An empty cursor means "from the start": anything is ahead of it.
        _ if to.is_empty() => Movement::Backward,
        _ => Movement::Forward,
    }
}

/// The cursors one round has seen.
#[derive(Debug, Default)]
pub(crate) struct CursorCheck {
    seen: HashSet<String>,
}

impl CursorCheck {
    /// Accepts the step from `from` to `to`, or says why the server's paging makes no sense.
    pub(crate) fn step(&mut self, from: &str, to: &str) -> Result<(), SyncError> {
        match movement(from, to) {
            Movement::Same => return Ok(()),
            Movement::Backward => {
                return Err(SyncError::BadAnswer(format!(
                    "the change cursor went backwards (from {} to {})",
                    short(from),
                    short(to)
                )))
            }
            Movement::Forward => {}
        }
        self.seen.insert(from.to_string());
        if !self.seen.insert(to.to_string()) {
            return Err(SyncError::BadAnswer(format!(
                "the change cursor came back to {} within one round",
                short(to)
            )));
        }
        Ok(())
    }
}

/// A cursor as it may appear in a message (servers choose them; keep them short).
fn short(cursor: &str) -> String {
    super::client::server_text(&cursor.chars().take(40).collect::<String>())
}

/// The token bucket of quick live answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveBudget {
    tokens: f64,
    at: Instant,
}

impl LiveBudget {
    pub(crate) fn new(now: Instant) -> LiveBudget {
        LiveBudget {
            tokens: LIVE_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * LIVE_RATE;
        self.tokens = (self.tokens + earned).min(LIVE_BURST);
        self.at = now;
    }

    /// Spends one quick answer.
    pub(crate) fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the next live pull may start: now, or once a token has been earned back.
    pub(crate) fn next_pull(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / LIVE_RATE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_compare_numerically_when_they_can() {
        assert_eq!(movement("9", "10"), Movement::Forward);
        assert_eq!(movement("10", "9"), Movement::Backward);
        assert_eq!(movement("10", "10"), Movement::Same);
        assert_eq!(movement("", "3"), Movement::Forward);
        assert_eq!(movement("3", ""), Movement::Backward);
        assert_eq!(movement("abc", "abd"), Movement::Forward);
    }

    #[test]
    fn a_round_refuses_backwards_and_alternating_cursors() {
        let mut check = CursorCheck::default();
        assert!(check.step("", "5").is_ok());
        assert!(check.step("5", "5").is_ok());
        assert!(check.step("5", "9").is_ok());
        let back = check.step("9", "7").unwrap_err().to_string();
        assert!(back.contains("backwards"), "{back}");
        let mut check = CursorCheck::default();
        assert!(check.step("a", "b").is_ok());
        let again = check.step("b", "a").unwrap_err().to_string();
        assert!(again.contains("came back"), "{again}");
    }

    #[test]
    fn quick_answers_get_a_burst_then_one_a_second() {
        let start = Instant::now();
        let mut budget = LiveBudget::new(start);
        for _ in 0..10 {
            assert_eq!(budget.next_pull(start), start);
            budget.spend(start);
        }
        let next = budget.next_pull(start);
        assert_eq!(next - start, Duration::from_secs(1));
        // Over a minute of a server that always answers at once: about 70 pulls.
        let mut now = start;
        let mut pulls = 10;
        while now < start + Duration::from_secs(60) {
            now = budget.next_pull(now);
            budget.spend(now);
            pulls += 1;
        }
        assert!((69..=72).contains(&pulls), "{pulls}");
        // A quiet spell earns the burst back.
        let later = now + Duration::from_secs(30);
        assert_eq!(budget.next_pull(later), later);
    }
}
