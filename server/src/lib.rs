//! tasksync-server: the sync server tasksync daemons push to and pull from.
//!
//! A map of the crate, one job per module:
//! - [`config`]: flags and environment variables.
//! - [`server`]: the accept loop and graceful shutdown.
//! - [`shutdown`]: waiting for SIGTERM/SIGINT.
//! - [`http`]: routing, bodies and the handlers of `/api/health`, `/api/batch`,
//!   `/api/changes`, `/api/tasks`.
//! - [`error`]: the `{error, timestamp, path}` answers.
//! - [`auth`]: the constant-time bearer-token check.
//! - [`notify`]: per-user wake-ups of live pulls (`/api/changes?wait=`).
//! - [`validate`]: the checks of one batch item.
//! - [`batch`]: applying a batch in one transaction with field-wise LWW.
//! - [`store`]: the SQLite schema and queries.
//!
//! The wire types and the LWW rule live in `tasksync_proto::{wire, lww}`, shared with the
//! daemon.

pub mod auth;
pub mod batch;
pub mod config;
pub mod error;
pub mod http;
pub mod notify;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod validate;

use std::sync::Arc;

pub use config::Config;
pub use http::AppState;
pub use store::Store;

impl AppState {
    /// The shared state for `config`, with its database opened.
    pub fn open(config: &Config) -> Result<Arc<AppState>, store::StoreError> {
        Ok(Arc::new(AppState {
            store: Arc::new(Store::open(&config.db, config.synchronous)?),
            auth: auth::Auth::new(config.token.as_deref()),
            notifier: notify::Notifier::new(),
            max_clock_skew_secs: config.max_clock_skew_secs,
            stopping: tokio::sync::watch::Sender::new(false),
            reads: tokio::sync::Semaphore::new(http::MAX_CONCURRENT_READS),
        }))
    }
}
