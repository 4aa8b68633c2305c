//! The connectivity state machine: `local-only` (no server), `online`, `offline`,
//! `unauthorized`.
//!
//! Online means the server answered a health probe or a sync request; any transport failure
//! (including a broken live pull) makes it offline at once. Unauthorized means the server
//! answers but refuses our token: nothing syncs until the token works. While offline, probes go out with a jittered exponential delay
//! from `min` to `max` (by default both 2 s: a probe every 2 to 3 s); a network change resets the delay
//! and probes soon. All times are passed in, so the schedule is tested without waiting.

use std::time::Duration;

use tasksync_proto::events::{Connectivity, ConnectivityState};
use tasksync_proto::Timestamp;
use tokio::time::Instant;

/// How probes are spaced while offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbePolicy {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    /// How long a probe may take.
    pub(crate) timeout: Duration,
}

/// By default a device probes every 2 to 3 s (jittered) for as long as the server is down,
/// so it finds a restarted server within 3 s, and many devices do not probe in step.
impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            min: Duration::from_secs(2),
            max: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Delay between a network change and the probe it triggers, so a burst of kernel messages
/// (an interface coming up sends several) makes one probe.
pub(crate) const NETWORK_CHANGE_DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Monitor {
    policy: ProbePolicy,
    state: Connectivity,
    since: Timestamp,
    /// The delay used for the last scheduled probe.
    delay: Duration,
    next_probe: Option<Instant>,
}

impl Monitor {
    /// A monitor for a daemon with (`has_server`) or without a sync server. With one, it
    /// starts offline with a probe due at once.
    pub(crate) fn new(has_server: bool, policy: ProbePolicy, now: Instant) -> Monitor {
        let state = if has_server {
            Connectivity::Offline
        } else {
            Connectivity::LocalOnly
        };
        Monitor {
            policy,
            state,
            since: Timestamp::now(),
            delay: policy.min,
            next_probe: has_server.then_some(now),
        }
    }

    pub(crate) fn state(&self) -> Connectivity {
        self.state
    }

    pub(crate) fn policy(&self) -> ProbePolicy {
        self.policy
    }

    /// New probe spacing, from the next probe on.
    pub(crate) fn set_policy(&mut self, policy: ProbePolicy) {
        self.policy = policy;
        self.delay = self.delay.clamp(policy.min, policy.max);
    }

    /// When the next probe is due (only while offline).
    pub(crate) fn next_probe(&self) -> Option<Instant> {
        self.next_probe
    }

    /// The server answered (and, from `unauthorized`, took our token). Returns true if that
    /// changed the state.
    pub(crate) fn reached(&mut self) -> bool {
        if !matches!(
            self.state,
            Connectivity::Offline | Connectivity::Unauthorized
        ) {
            return false;
        }
        self.state = Connectivity::Online;
        self.since = Timestamp::now();
        self.delay = self.policy.min;
        self.next_probe = None;
        true
    }

    /// The server answered but refused our token. Returns true if that changed the state.
    pub(crate) fn refused(&mut self) -> bool {
        if !matches!(self.state, Connectivity::Offline | Connectivity::Online) {
            return false;
        }
        self.state = Connectivity::Unauthorized;
        self.since = Timestamp::now();
        self.next_probe = None;
        true
    }

    /// A request or probe could not reach the server. Returns true if that changed the state.
    pub(crate) fn unreachable(&mut self, now: Instant) -> bool {
        match self.state {
            Connectivity::LocalOnly => false,
            Connectivity::Online | Connectivity::Unauthorized => {
                self.state = Connectivity::Offline;
                self.since = Timestamp::now();
                self.delay = self.policy.min;
                self.next_probe = Some(now + jitter(self.delay));
                true
            }
            Connectivity::Offline => {
                self.delay = (self.delay * 2).min(self.policy.max);
                self.next_probe = Some(now + jitter(self.delay));
                false
            }
        }
    }

    /// The OS says the network changed: probe soon and start the backoff over.
    pub(crate) fn network_changed(&mut self, now: Instant) {
        if self.state == Connectivity::Offline {
            self.delay = self.policy.min;
            let soon = now + NETWORK_CHANGE_DEBOUNCE;
            self.next_probe = Some(self.next_probe.map_or(soon, |due| due.min(soon)));
        }
    }

    /// The state as reported to clients; `now` maps the next probe to wall-clock time.
    pub(crate) fn report(&self, now: Instant) -> ConnectivityState {
        let next_probe_at = self.next_probe.map(|due| {
            let wait = due.saturating_duration_since(now);
            Timestamp::from_millis(Timestamp::now().as_millis() + wait.as_millis() as i64)
                .unwrap_or_else(Timestamp::now)
        });
        ConnectivityState {
            state: self.state,
            since: self.since,
            next_probe_at,
        }
    }
}

/// `delay` stretched by a random 0..50 %, so many daemons do not probe in step.
fn jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(crate::entropy::fraction() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ProbePolicy {
        ProbePolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn without_a_server_nothing_is_ever_probed() {
        let now = Instant::now();
        let mut monitor = Monitor::new(false, policy(), now);
        assert_eq!(monitor.state(), Connectivity::LocalOnly);
        assert!(!monitor.unreachable(now));
        assert_eq!(monitor.next_probe(), None);
        assert_eq!(monitor.report(now).state, Connectivity::LocalOnly);
    }

    #[test]
    fn offline_probes_back_off_exponentially_up_to_the_cap() {
        let start = Instant::now();
        let mut monitor = Monitor::new(true, policy(), start);
        assert_eq!(
            monitor.next_probe(),
            Some(start),
            "the first probe goes out at once"
        );
        for failures in 1..=12u32 {
            monitor.unreachable(start);
            let nominal = Duration::from_secs(2u64.pow(failures).min(30));
            let wait = monitor.next_probe().unwrap() - start;
            assert!(
                wait >= nominal,
                "after {failures} failures: {wait:?} < {nominal:?}"
            );
            assert!(wait <= nominal * 3 / 2, "after {failures}: {wait:?}");
        }
    }

    #[test]
    fn by_default_a_server_that_stays_down_is_probed_every_2_to_3_seconds() {
        let start = Instant::now();
        let mut monitor = Monitor::new(true, ProbePolicy::default(), start);
        monitor.reached();
        for _ in 0..50 {
            monitor.unreachable(start);
            let wait = monitor.next_probe().unwrap() - start;
            assert!(
                wait >= Duration::from_secs(2) && wait <= Duration::from_secs(3),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn reaching_the_server_goes_online_and_stops_probing() {
        let now = Instant::now();
        let mut monitor = Monitor::new(true, policy(), now);
        assert!(monitor.reached());
        assert!(!monitor.reached(), "already online");
        assert_eq!(monitor.state(), Connectivity::Online);
        assert_eq!(monitor.next_probe(), None);
        assert!(monitor.unreachable(now), "one transport failure is enough");
        let wait = monitor.next_probe().unwrap() - now;
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_millis(1500),
            "{wait:?}"
        );
    }

    #[test]
    fn a_refused_token_is_its_own_state_until_the_server_takes_it() {
        let now = Instant::now();
        let mut monitor = Monitor::new(true, policy(), now);
        assert!(monitor.reached());
        assert!(monitor.refused());
        assert!(!monitor.refused(), "already unauthorized");
        assert_eq!(monitor.report(now).state, Connectivity::Unauthorized);
        assert_eq!(
            monitor.next_probe(),
            None,
            "no probing: the server is there"
        );
        assert!(monitor.reached(), "the token works again");
        assert_eq!(monitor.state(), Connectivity::Online);
        assert!(monitor.refused());
        assert!(monitor.unreachable(now), "losing the server goes offline");
        assert_eq!(monitor.state(), Connectivity::Offline);
    }

    #[test]
    fn a_network_change_resets_the_backoff_and_probes_soon() {
        let now = Instant::now();
        let mut monitor = Monitor::new(true, policy(), now);
        for _ in 0..10 {
            monitor.unreachable(now);
        }
        assert!(monitor.next_probe().unwrap() - now >= Duration::from_secs(16));
        monitor.network_changed(now);
        assert_eq!(monitor.next_probe().unwrap() - now, NETWORK_CHANGE_DEBOUNCE);
        monitor.unreachable(now);
        assert!(
            monitor.next_probe().unwrap() - now <= Duration::from_secs(3),
            "backoff started over"
        );
    }
}
