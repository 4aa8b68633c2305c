//! tasksync-server: the sync server tasksync daemons push to and pull from.
//!
//! A map of the crate, one job per module:
//! - [`config`]: flags, `user` subcommands and environment variables.
//! - [`server`]: the listener and graceful shutdown.
//! - [`shutdown`]: waiting for SIGTERM/SIGINT.
//! - [`http`]: routing, bodies and the handlers of `/api/health`, `/api/batch`,
//!   `/api/changes`, `/api/tasks`.
//! - [`error`]: which answer a storage failure gets (503 with `Retry-After`, 401, 500).
//! - [`auth`]: which user a bearer token names.
//! - [`metrics`]: what operators scrape at `GET /metrics` (Prometheus text format).
//! - [`notify`]: per-user wake-ups of live pulls (`/api/changes?wait=`).
//! - [`storage`]: the storage trait and its SQLite and PostgreSQL backends.
//!
//! The protocol of a batch and of the change feed (item checks, the merge plan, each item's
//! answer, change numbers and pages) lives once in `tasksync_core`, which every backend and
//! the daemon's in-memory test server run. The wire types and the LWW rule live in
//! `tasksync_proto::{wire, lww}`, shared with the daemon; so does the HTTP plumbing (error bodies, bearer check, body limits, JSON parsing,
//! accept loop), in `tasksync_http`.

pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod server;
pub mod shutdown;
pub mod storage;

use std::sync::Arc;

pub use config::Config;
pub use http::AppState;

impl AppState {
    /// The shared state of a server over `storage`.
    pub fn new(storage: Arc<dyn storage::Storage>, config: &Config) -> Arc<AppState> {
        let notifier = notify::Notifier::new();
        Arc::new(AppState {
            storage,
            auth: auth::Auth::new(config.token.as_deref(), notifier.credentials()),
            notifier,
            max_clock_skew_secs: config.max_clock_skew_secs,
            stopping: tokio::sync::watch::Sender::new(false),
            metrics: metrics::Metrics::new(),
            metrics_here: config.metrics_listen.is_none(),
        })
    }
}
