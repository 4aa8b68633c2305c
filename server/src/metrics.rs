//! What the server exposes to operators at `GET /metrics`, in the Prometheus / OpenMetrics text
//! format (through `prometheus-client`, the Prometheus project's own Rust client).
//!
//! Every metric is an aggregate: no user, token or task ever appears in a label.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tasksync_proto::wire::ItemStatus;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabel, Histogram>,
    items: Family<OutcomeLabel, Counter>,
    conflicts: Counter,
    live_pulls: Gauge,
    wakeups: Counter,
    storage_errors: Counter,
    pool_in_use: Gauge,
}

fn duration_histogram() -> Histogram {
    // 0.25 ms .. about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tasksync_server");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let durations =
            Family::<RouteLabel, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its answer, by route (live pulls include their wait)",
            durations.clone(),
        );
        let items = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "batch_items",
            "Pushed operations answered, by outcome (success, conflict, error)",
            items.clone(),
        );
        let conflicts = Counter::default();
        registry.register(
            "conflicts",
            "Pushed operations merged with a newer value of another device",
            conflicts.clone(),
        );
        let live_pulls = Gauge::default();
        registry.register(
            "live_pulls_open",
            "Live pulls (GET /api/changes?wait=) held right now",
            live_pulls.clone(),
        );
        let wakeups = Counter::default();
        registry.register(
            "live_pull_wakeups",
            "Held live pulls woken by a change of their user",
            wakeups.clone(),
        );
        let storage_errors = Counter::default();
        registry.register(
            "storage_errors",
            "Requests that failed in the storage (answered 503 or 500)",
            storage_errors.clone(),
        );
        let pool_in_use = Gauge::default();
        registry.register(
            "storage_connections_in_use",
            "Storage connections in use (PostgreSQL pool; SQLite readers and writer)",
            pool_in_use.clone(),
        );
        let start_time = Gauge::<f64, AtomicU64>::default();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        start_time.set(started);
        registry.register(
            "process_start_time_seconds",
            "When this process started, in seconds since the Unix epoch",
            start_time,
        );
        Metrics {
            registry,
            requests,
            durations,
            items,
            conflicts,
            live_pulls,
            wakeups,
            storage_errors,
            pool_in_use,
        }
    }

    /// A request to `route` answered `status` after `took`.
    pub fn answered(&self, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.durations
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// The answers to one pushed batch.
    pub fn batch_answered<'a>(&self, statuses: impl IntoIterator<Item = &'a ItemStatus>) {
        for status in statuses {
            let outcome = match status {
                ItemStatus::Success => "success",
                ItemStatus::Conflict => {
                    self.conflicts.inc();
                    "conflict"
                }
                ItemStatus::Error => "error",
            };
            self.items.get_or_create(&OutcomeLabel { outcome }).inc();
        }
    }

    /// Counts a held live pull until the guard drops.
    pub fn live_pull(&self) -> LivePullGuard {
        self.live_pulls.inc();
        LivePullGuard(self.live_pulls.clone())
    }

    pub fn woken(&self) {
        self.wakeups.inc();
    }

    pub fn storage_failed(&self) {
        self.storage_errors.inc();
    }

    /// The text exposition, with the storage connections in use read now.
    pub fn render(&self, connections_in_use: Option<usize>) -> String {
        if let Some(n) = connections_in_use {
            self.pool_in_use.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// See [`Metrics::live_pull`].
pub struct LivePullGuard(Gauge);

impl Drop for LivePullGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_every_metric_and_counts() {
        let metrics = Metrics::new();
        metrics.answered("batch", 200, Duration::from_millis(3));
        metrics.batch_answered(&[ItemStatus::Success, ItemStatus::Conflict]);
        let held = metrics.live_pull();
        let text = metrics.render(Some(2));
        for line in [
            "tasksync_server_http_requests_total{route=\"batch\",status=\"200\"} 1",
            "tasksync_server_batch_items_total{outcome=\"conflict\"} 1",
            "tasksync_server_conflicts_total 1",
            "tasksync_server_live_pulls_open 1",
            "tasksync_server_storage_connections_in_use 2",
            "tasksync_server_http_request_duration_seconds_count{route=\"batch\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("tasksync_server_process_start_time_seconds "));
        assert!(text.ends_with("# EOF\n"));
        drop(held);
        assert!(metrics
            .render(None)
            .contains("tasksync_server_live_pulls_open 0"));
    }
}
