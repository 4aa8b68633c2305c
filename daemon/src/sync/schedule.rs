//! When the sync engine acts next, as a pure state machine (as `connectivity::Monitor` is for
//! probes): every input is an event with the time it happened, every output a moment. The
//! engine feeds it local changes, round outcomes and live-pull answers, sleeps until
//! [`Schedule::next_wake`], and asks [`Schedule::due`] what to do; tests drive it without
//! waiting.
//!
//! - Flushes: at once after the first local change of a quiet spell (the leading edge), then
//!   at most once per debounce window, so changes that follow one another share a batch.
//! - Retries: when the earliest failed operation's delay is over; after a busy answer, its
//!   `Retry-After` (capped) or a growing backoff; after a refused token, one pull interval.
//! - Pulls: every pull interval, and at once (or after a short backoff when it brought nothing
//!   new) while a pull stopped with more to come.
//! - Live pulls: paused after answers that make no progress (500 ms doubling, at most one
//!   pull interval), and budgeted when they come back at once ([`LiveBudget`]).

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::RetryPolicy;
use super::pace::LiveBudget;

/// The backoff of a pull that goes on without news.
const CONTINUE_PULL_MIN: Duration = Duration::from_millis(250);
const CONTINUE_PULL_MAX: Duration = Duration::from_secs(5);

/// The timings the schedule follows (from the sync settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timings {
    pub(crate) flush_debounce: Duration,
    pub(crate) pull_interval: Duration,
    pub(crate) retry: RetryPolicy,
}

/// What is due at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) flush: bool,
    pub(crate) pull: bool,
    pub(crate) retry: bool,
}

impl Due {
    /// Whether a round is due (pulling if [`Due::pull`]).
    pub(crate) fn round(self) -> bool {
        self.flush || self.pull || self.retry
    }
}

/// How a round ended, as far as timing goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RoundEnd {
    /// The round pulled and the server answered.
    pub(crate) pulled: bool,
    /// The server refused our token.
    pub(crate) unauthorized: bool,
    /// The server was busy, with its `Retry-After` if it gave one.
    pub(crate) busy: Option<Option<Duration>>,
    /// The pull stopped with more to come (`true`: its last slice changed stored tasks).
    pub(crate) more_to_pull: Option<bool>,
    /// When the earliest failed operation may be sent again.
    pub(crate) next_retry: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    timings: Timings,
    flush_due: Option<Instant>,
    pull_due: Option<Instant>,
    retry_due: Option<Instant>,
    last_flush: Option<Instant>,
    busy_streak: u32,
    more_streak: u32,
    live_paused_until: Option<Instant>,
    live_streak: u32,
    live_budget: LiveBudget,
}

impl Schedule {
    pub(crate) fn new(timings: Timings, now: Instant) -> Schedule {
        Schedule {
            timings,
            flush_due: None,
            pull_due: None,
            retry_due: None,
            last_flush: None,
            busy_streak: 0,
            more_streak: 0,
            live_paused_until: None,
            live_streak: 0,
            live_budget: LiveBudget::new(now),
        }
    }

    /// New timings (a reload), from the next decision on.
    pub(crate) fn set_timings(&mut self, timings: Timings) {
        self.timings = timings;
    }

    /// Forgets every pending moment (a new server, or the server went away).
    pub(crate) fn clear(&mut self) {
        self.flush_due = None;
        self.pull_due = None;
        self.retry_due = None;
    }

    /// A local change was queued at `now` (while online).
    pub(crate) fn local_change(&mut self, now: Instant) {
        if self.flush_due.is_none() {
            self.flush_due = Some(match self.last_flush {
                Some(last) => now.max(last + self.timings.flush_debounce),
                None => now,
            });
        }
    }

    /// The earliest moment a round or a live pull is due while online (`live_open`: a live
    /// pull is in progress, so its pause does not matter).
    pub(crate) fn next_online_wake(&self, live_open: bool) -> Option<Instant> {
        [
            self.flush_due,
            self.retry_due,
            self.pull_due,
            self.live_paused_until.filter(|_| !live_open),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When a round to check a refused token again is due.
    pub(crate) fn retry_due(&self) -> Option<Instant> {
        self.retry_due
    }

    /// A retry round as soon as possible (the live pull saw a refused token).
    pub(crate) fn retry_now(&mut self, now: Instant) {
        self.retry_due = Some(now);
    }

    /// What is due at `now`; a live pause that is over ends.
    pub(crate) fn due(&mut self, now: Instant) -> Due {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.live_paused_until) {
            self.live_paused_until = None;
        }
        Due {
            flush: due(self.flush_due),
            pull: due(self.pull_due),
            retry: due(self.retry_due),
        }
    }

    /// A round starts at `now`: a pending flush is taken, and its debounce window begins.
    pub(crate) fn round_started(&mut self, now: Instant) {
        if self.flush_due.take().is_some() {
            self.last_flush = Some(now);
        }
    }

    /// A round ended at `now`; returns the wait after a busy answer, if there was one.
    pub(crate) fn round_ended(&mut self, now: Instant, end: RoundEnd) -> Option<Duration> {
        if end.pulled {
            self.pull_due = Some(now + self.timings.pull_interval);
        }
        match end.more_to_pull {
            Some(news) => self.pull_due = Some(now + self.continue_pull_after(news)),
            None if end.pulled => self.more_streak = 0,
            None => {}
        }
        self.retry_due = end.next_retry.map(|wait| now + wait);
        if end.unauthorized {
            // Nothing changes until someone fixes the token: ask again at the next pull, not
            // in a loop.
            self.flush_due = None;
            self.retry_due = Some(now + self.timings.pull_interval);
        }
        match end.busy {
            Some(retry_after) => {
                self.busy_streak += 1;
                let wait = retry_after
                    .unwrap_or_else(|| self.timings.retry.delay(self.busy_streak))
                    .clamp(Duration::from_millis(100), self.timings.retry.max);
                self.flush_due = None;
                self.retry_due = Some(now + wait);
                Some(wait)
            }
            None => {
                self.busy_streak = 0;
                None
            }
        }
    }

    /// A pull slice after a live answer stopped with more to come at `now`.
    pub(crate) fn pull_continues(&mut self, now: Instant, news: bool) {
        self.pull_due = Some(now + self.continue_pull_after(news));
    }

    /// How long before a pull that stopped with more to come goes on: at once if its last
    /// slice changed stored tasks, else 250 ms doubling to 5 s.
    fn continue_pull_after(&mut self, news: bool) -> Duration {
        if news {
            self.more_streak = 0;
            return Duration::ZERO;
        }
        self.more_streak += 1;
        let doublings = self.more_streak.saturating_sub(1).min(8);
        (CONTINUE_PULL_MIN * 2u32.pow(doublings)).min(CONTINUE_PULL_MAX)
    }

    /// Whether a live pull may start at `now`; if the budget of quick answers is spent, live
    /// pulls pause until it has earned one back.
    pub(crate) fn live_may_start(&mut self, now: Instant) -> bool {
        if self.live_paused_until.is_some_and(|until| until > now) {
            return false;
        }
        let allowed = self.live_budget.next_pull(now);
        if allowed > now {
            self.live_paused_until = Some(allowed);
            return false;
        }
        true
    }

    /// A live pull answered at `now` after `took` (any answer, failures included).
    pub(crate) fn live_answered(&mut self, now: Instant, took: Duration) -> bool {
        let quick = took < super::pace::LIVE_TOO_QUICK;
        if quick {
            self.live_budget.spend(now);
        }
        quick
    }

    /// The live answer made progress: the pause streak starts over.
    pub(crate) fn live_progressed(&mut self) {
        self.live_streak = 0;
    }

    /// No live pull for a while: 500 ms doubling (the retry policy), at most one pull
    /// interval. Returns how many pauses in a row this is.
    pub(crate) fn pause_live(&mut self, now: Instant) -> u32 {
        self.live_streak += 1;
        let wait = self
            .timings
            .retry
            .delay(self.live_streak)
            .min(self.timings.pull_interval);
        self.live_paused_until = Some(now + wait);
        self.live_streak
    }

    /// The server answered again after being unreachable or refusing us: pull at the next
    /// interval, live pulls at once.
    pub(crate) fn server_back(&mut self, now: Instant) {
        self.pull_due = Some(now + self.timings.pull_interval);
        self.live_paused_until = None;
        self.live_streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings {
            flush_debounce: Duration::from_millis(50),
            pull_interval: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_change_flushes_at_once_and_the_next_ones_share_the_window() {
        let start = Instant::now();
        let mut schedule = Schedule::new(timings(), start);
        schedule.local_change(start);
        assert_eq!(schedule.next_online_wake(false), Some(start));
        assert!(schedule.due(start).flush);
        schedule.round_started(start);
        schedule.round_ended(start + ms(5), RoundEnd::default());
        // Two changes inside the window wait for it to close, together.
        schedule.local_change(start + ms(10));
        schedule.local_change(start + ms(20));
        assert_eq!(schedule.next_online_wake(false), Some(start + ms(50)));
        assert!(!schedule.due(start + ms(49)).flush);
        assert!(schedule.due(start + ms(50)).flush);
        schedule.round_started(start + ms(50));
        schedule.round_ended(start + ms(55), RoundEnd::default());
        // After a quiet spell, at once again.
        schedule.local_change(start + ms(500));
        assert_eq!(schedule.next_online_wake(false), Some(start + ms(500)));
    }

    #[test]
    fn a_busy_server_waits_its_retry_after_and_a_refused_token_a_pull_interval() {
        let start = Instant::now();
        let mut schedule = Schedule::new(timings(), start);
        schedule.local_change(start);
        schedule.round_started(start);
        let wait = schedule.round_ended(
            start,
            RoundEnd {
                busy: Some(Some(Duration::from_secs(7))),
                ..RoundEnd::default()
            },
        );
        assert_eq!(wait, Some(Duration::from_secs(7)));
        assert_eq!(schedule.retry_due(), Some(start + Duration::from_secs(7)));
        // Without Retry-After: a growing backoff.
        let first = schedule
            .round_ended(
                start,
                RoundEnd {
                    busy: Some(None),
                    ..RoundEnd::default()
                },
            )
            .unwrap();
        let second = schedule
            .round_ended(
                start,
                RoundEnd {
                    busy: Some(None),
                    ..RoundEnd::default()
                },
            )
            .unwrap();
        assert!(second > first, "{first:?} then {second:?}");
        schedule.round_ended(
            start,
            RoundEnd {
                unauthorized: true,
                ..RoundEnd::default()
            },
        );
        assert_eq!(schedule.retry_due(), Some(start + Duration::from_secs(30)));
    }

    #[test]
    fn a_pull_with_more_to_come_goes_on_at_once_after_news_and_backs_off_without() {
        let start = Instant::now();
        let mut schedule = Schedule::new(timings(), start);
        let more = |news| RoundEnd {
            pulled: true,
            more_to_pull: Some(news),
            ..RoundEnd::default()
        };
        schedule.round_ended(start, more(true));
        assert_eq!(schedule.next_online_wake(false), Some(start));
        let waits: Vec<Duration> = (0..7)
            .map(|_| {
                schedule.round_ended(start, more(false));
                schedule.next_online_wake(false).unwrap() - start
            })
            .collect();
        assert_eq!(
            waits,
            [250, 500, 1000, 2000, 4000, 5000, 5000].map(ms).to_vec()
        );
        schedule.round_ended(start, more(true));
        assert_eq!(
            schedule.next_online_wake(false),
            Some(start),
            "news starts over"
        );
        schedule.round_ended(
            start,
            RoundEnd {
                pulled: true,
                ..RoundEnd::default()
            },
        );
        assert_eq!(
            schedule.next_online_wake(false),
            Some(start + Duration::from_secs(30))
        );
    }

    #[test]
    fn live_pulls_pause_with_a_growing_backoff_and_quick_answers_are_budgeted() {
        let start = Instant::now();
        let mut schedule = Schedule::new(timings(), start);
        assert!(schedule.live_may_start(start));
        assert_eq!(schedule.pause_live(start), 1);
        assert!(!schedule.live_may_start(start + ms(100)));
        let resume = schedule.next_online_wake(false).unwrap();
        assert!(resume >= start + ms(500) && resume <= start + ms(1000));
        assert_eq!(
            schedule.next_online_wake(true),
            None,
            "an open pull ignores the pause"
        );
        schedule.due(resume);
        assert!(schedule.live_may_start(resume));
        assert_eq!(schedule.pause_live(resume), 2, "the streak grows");
        schedule.live_progressed();
        assert_eq!(schedule.pause_live(resume), 1, "progress starts it over");
        // Quick answers: ten at once, then one a second.
        let mut schedule = Schedule::new(timings(), start);
        for _ in 0..10 {
            assert!(schedule.live_may_start(start));
            assert!(schedule.live_answered(start, ms(1)));
        }
        assert!(!schedule.live_may_start(start));
        assert_eq!(
            schedule.next_online_wake(false),
            Some(start + Duration::from_secs(1))
        );
        assert!(
            !schedule.live_answered(start, Duration::from_secs(25)),
            "a held pull is not quick"
        );
        schedule.server_back(start);
        assert!(schedule.next_online_wake(false).is_some());
    }
}
