//! What the sync engine needs to know: the server, batch and retry settings, timings.

use std::time::Duration;

use super::backoff::RetryPolicy;
use crate::connectivity::ProbePolicy;

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub(crate) struct SyncSettings {
    /// Base URL of the sync server; `None` = local only.
    pub(crate) server: Option<String>,
    pub(crate) token: Option<String>,
    /// Extra certificates (PEM) to trust for an `https://` server.
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Most operations per `POST /api/batch` (`SYNC_BATCH_SIZE`).
    pub(crate) batch_size: usize,
    /// Failed attempts before an operation is dead-lettered (`SYNC_RETRY_ATTEMPTS`).
    pub(crate) max_attempts: u32,
    pub(crate) retry: RetryPolicy,
    /// How long one sync request may take.
    pub(crate) request_timeout: Duration,
    pub(crate) probe: ProbePolicy,
    /// How often to pull while online.
    pub(crate) pull_interval: Duration,
    /// How long to wait after a local change before flushing, so a burst shares batches.
    pub(crate) flush_debounce: Duration,
    /// Sync on its own (probe, flush after changes, retry, pull); when false, only
    /// `taskctl sync` does.
    pub(crate) automatic: bool,
    /// How long the server may hold a live pull (`wait` of `GET /api/changes`, 1..=60 s).
    pub(crate) live_wait: Duration,
    /// How long `taskctl sync` keeps pulling before it reports the pull unfinished (the rest
    /// follows in the background).
    pub(crate) forced_pull_budget: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            server: None,
            token: None,
            ca_file: None,
            batch_size: 50,
            max_attempts: 3,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            probe: ProbePolicy::default(),
            pull_interval: Duration::from_secs(30),
            flush_debounce: Duration::from_millis(50),
            automatic: true,
            live_wait: Duration::from_secs(25),
            forced_pull_budget: Duration::from_secs(30),
        }
    }
}
