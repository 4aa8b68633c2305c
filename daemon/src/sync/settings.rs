//! What the sync engine needs to know: the server, batch and retry settings, timings.

use std::fmt;
use std::time::Duration;

use super::backoff::RetryPolicy;
use crate::connectivity::ProbePolicy;

/// What the engine needs to know. `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
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
    /// Listen to the operating system's network changes to probe sooner (off in the
    /// simulation, whose world has no network).
    pub(crate) network_hints: bool,
}

impl fmt::Debug for SyncSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SyncSettings {
            server,
            token,
            ca_file,
            batch_size,
            max_attempts,
            retry,
            request_timeout,
            probe,
            pull_interval,
            flush_debounce,
            automatic,
            live_wait,
            forced_pull_budget,
            network_hints,
        } = self;
        f.debug_struct("SyncSettings")
            .field("server", server)
            .field("token", &token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", ca_file)
            .field("batch_size", batch_size)
            .field("max_attempts", max_attempts)
            .field("retry", retry)
            .field("request_timeout", request_timeout)
            .field("probe", probe)
            .field("pull_interval", pull_interval)
            .field("flush_debounce", flush_debounce)
            .field("automatic", automatic)
            .field("live_wait", live_wait)
            .field("forced_pull_budget", forced_pull_budget)
            .field("network_hints", network_hints)
            .finish()
    }
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
            network_hints: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let settings = SyncSettings {
            server: Some("https://sync.example".into()),
            token: Some("s3cret-token-value".into()),
            ..SyncSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("sync.example"),
            "{shown}"
        );
        let none = format!("{:?}", SyncSettings::default());
        assert!(none.contains("token: None"), "{none}");
    }
}
