//! What the daemon exposes at `GET /api/metrics` on its local API, in the Prometheus /
//! OpenMetrics text format (through `prometheus-client`): sync rounds and their durations,
//! live pulls, pushed and pulled work, and, read at scrape time, the queue depth, the
//! connectivity state and the connections held.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tasksync_proto::events::Connectivity;

/// The content type of [`Metrics::render`].
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    /// `flush` (push only) or `pull` (push, then pull).
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// The daemon's metrics; counters are bumped where the work happens, gauges set at scrape.
pub(crate) struct Metrics {
    registry: Registry,
    rounds: Family<RoundLabels, Counter>,
    round_seconds: Family<KindLabel, Histogram>,
    live_pulls: Counter,
    pushed: Counter,
    pulled: Counter,
    failed_attempts: Counter,
    queue: Family<StateLabel, Gauge>,
    connectivity: Family<StateLabel, Gauge>,
    connections: Family<ListenerLabel, Gauge>,
}

fn round_histogram() -> Histogram {
    // 1 ms .. about 30 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tasksyncd");
        let rounds = Family::<RoundLabels, Counter>::default();
        registry.register(
            "sync_rounds",
            "Sync rounds, by kind (flush: push only; pull: push then pull) and outcome",
            rounds.clone(),
        );
        let round_seconds =
            Family::<KindLabel, Histogram>::new_with_constructor(round_histogram as fn() -> _);
        registry.register(
            "sync_round_duration_seconds",
            "How long sync rounds took, by kind",
            round_seconds.clone(),
        );
        let live_pulls = Counter::default();
        registry.register(
            "live_pulls",
            "Live pulls answered (or failed)",
            live_pulls.clone(),
        );
        let pushed = Counter::default();
        registry.register(
            "pushed_operations",
            "Queued operations the server accepted",
            pushed.clone(),
        );
        let pulled = Counter::default();
        registry.register(
            "pulled_changes",
            "Stored tasks changed by pulls",
            pulled.clone(),
        );
        let failed_attempts = Counter::default();
        registry.register(
            "failed_attempts",
            "Operations the server rejected (each counts an attempt)",
            failed_attempts.clone(),
        );
        let queue = Family::<StateLabel, Gauge>::default();
        registry.register(
            "queue_operations",
            "Queued operations by state (pending: not yet accepted; failed: dead-lettered)",
            queue.clone(),
        );
        let connectivity = Family::<StateLabel, Gauge>::default();
        registry.register(
            "connectivity",
            "1 for the connectivity state the daemon is in, 0 for the others",
            connectivity.clone(),
        );
        let connections = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "connections_open",
            "Client connections held, by listener (socket or tcp)",
            connections.clone(),
        );
        Metrics {
            registry,
            rounds,
            round_seconds,
            live_pulls,
            pushed,
            pulled,
            failed_attempts,
            queue,
            connectivity,
            connections,
        }
    }
}

impl Metrics {
    /// A sync round ended.
    pub(crate) fn round(&self, pull: bool, succeeded: bool, took: Duration, work: RoundWork) {
        let kind = if pull { "pull" } else { "flush" };
        let outcome = if succeeded { "ok" } else { "failed" };
        self.rounds
            .get_or_create(&RoundLabels { kind, outcome })
            .inc();
        self.round_seconds
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
        self.pushed.inc_by(work.pushed);
        self.pulled.inc_by(work.pulled);
        self.failed_attempts.inc_by(work.failed);
    }

    /// A live pull came back; `pulled` stored tasks changed through it.
    pub(crate) fn live_pull(&self, pulled: u64) {
        self.live_pulls.inc();
        self.pulled.inc_by(pulled);
    }

    /// Counts a connection on `listener` until the guard drops.
    pub(crate) fn connection(&self, listener: &'static str) -> ConnectionGuard {
        let gauge = self
            .connections
            .get_or_create(&ListenerLabel { listener })
            .clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// The text exposition, with the gauges read now.
    pub(crate) fn render(&self, pending: u64, failed: u64, state: Connectivity) -> String {
        let set = |gauge: &Family<StateLabel, Gauge>, state: &'static str, value: u64| {
            gauge
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.queue, "pending", pending);
        set(&self.queue, "failed", failed);
        for each in [
            Connectivity::Online,
            Connectivity::Offline,
            Connectivity::LocalOnly,
            Connectivity::Unauthorized,
        ] {
            set(&self.connectivity, each.as_str(), u64::from(each == state));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What a round did, for [`Metrics::round`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundWork {
    pub(crate) pushed: u64,
    pub(crate) pulled: u64,
    pub(crate) failed: u64,
}

/// See [`Metrics::connection`].
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_queue_connectivity_and_connections_are_rendered() {
        let metrics = Metrics::default();
        metrics.round(
            true,
            true,
            Duration::from_millis(5),
            RoundWork {
                pushed: 3,
                pulled: 2,
                failed: 0,
            },
        );
        metrics.live_pull(1);
        let held = metrics.connection("socket");
        let text = metrics.render(4, 1, Connectivity::Online);
        for line in [
            "tasksyncd_sync_rounds_total{kind=\"pull\",outcome=\"ok\"} 1",
            "tasksyncd_pushed_operations_total 3",
            "tasksyncd_pulled_changes_total 3",
            "tasksyncd_live_pulls_total 1",
            "tasksyncd_queue_operations{state=\"pending\"} 4",
            "tasksyncd_queue_operations{state=\"failed\"} 1",
            "tasksyncd_connectivity{state=\"online\"} 1",
            "tasksyncd_connectivity{state=\"offline\"} 0",
            "tasksyncd_connections_open{listener=\"socket\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        drop(held);
        assert!(metrics
            .render(0, 0, Connectivity::Offline)
            .contains("tasksyncd_connections_open{listener=\"socket\"} 0"));
    }
}
