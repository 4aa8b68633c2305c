//! The sync engine task: decides when to sync, runs one round at a time, and keeps the
//! connectivity state.
//!
//! - Offline: probes `GET /api/health` on the monitor's backoff schedule (and soon after a
//!   network change); when the server answers, flushes the whole queue and pulls at once.
//! - Online: flushes shortly after local changes (a debounce, so bursts share batches),
//!   retries operations when their delay is over, and pulls every `pull_interval`.
//! - `taskctl sync` runs a forced round after any round in progress.
//!
//! Commands never wait for any of this: the engine talks to the store like any other client
//! of the writer thread. Between events the task sleeps; an idle daemon costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tasksync_proto::events::{ConnectivityState, Event, SyncProgress};
use tasksync_proto::ipc::SyncReport;
use tasksync_proto::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backoff::RetryPolicy;
use super::client::{SyncClient, SyncError};
use super::round::{Mode, Round};
use crate::connectivity::monitor::State;
use crate::connectivity::netlink::NetworkChanges;
use crate::connectivity::{Monitor, ProbePolicy};
use crate::service::shutdown::Shutdown;
use crate::store::Store;

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Base URL of the sync server; `None` = local only.
    pub server: Option<String>,
    pub token: Option<String>,
    /// Extra certificates (PEM) to trust for an `https://` server.
    pub ca_file: Option<std::path::PathBuf>,
    /// Most operations per `POST /api/batch` (`SYNC_BATCH_SIZE`).
    pub batch_size: usize,
    /// Failed attempts before an operation is dead-lettered (`SYNC_RETRY_ATTEMPTS`).
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// How long one sync request may take.
    pub request_timeout: Duration,
    pub probe: ProbePolicy,
    /// How often to pull while online.
    pub pull_interval: Duration,
    /// How long to wait after a local change before flushing, so a burst shares batches.
    pub flush_debounce: Duration,
    /// Sync on its own (probe, flush after changes, retry, pull); when false, only
    /// `taskctl sync` does.
    pub automatic: bool,
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
        }
    }
}

enum Request {
    /// Run a round now (resending operations that wait out a retry delay) and report.
    SyncNow(oneshot::Sender<SyncReport>),
    /// Use these settings from now on (after a reload).
    Reconfigure(Box<SyncSettings>),
}

/// Handle to the engine, shared by the front ends.
#[derive(Clone)]
pub struct SyncHandle {
    requests: mpsc::Sender<Request>,
    connectivity: watch::Receiver<ConnectivityState>,
    server: watch::Receiver<Option<String>>,
}

impl SyncHandle {
    /// Applies new settings (a reloaded config file) from the next decision on; a round in
    /// progress finishes with the old ones.
    pub async fn reconfigure(&self, settings: SyncSettings) {
        let _ = self
            .requests
            .send(Request::Reconfigure(Box::new(settings)))
            .await;
    }

    /// Runs a sync round now, after any round already running, and returns its report.
    pub async fn sync_now(&self) -> SyncReport {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::SyncNow(reply)).await.is_err() {
            return stopped_report();
        }
        answer.await.unwrap_or_else(|_| stopped_report())
    }

    /// Whether the server is reachable, since when, and the next probe.
    pub fn connectivity(&self) -> ConnectivityState {
        self.connectivity.borrow().clone()
    }

    /// The sync server's base URL, if one is configured.
    pub fn server(&self) -> Option<String> {
        self.server.borrow().clone()
    }
}

fn stopped_report() -> SyncReport {
    SyncReport {
        success: false,
        synced_items: 0,
        failed_items: 0,
        errors: vec!["the sync engine is shutting down".into()],
        offline: true,
    }
}

/// Starts the engine task.
pub fn spawn(
    store: Arc<Store>,
    settings: SyncSettings,
    shutdown: Shutdown,
) -> Result<SyncHandle, String> {
    let client = match &settings.server {
        Some(url) => Some(Arc::new(SyncClient::new(
            url,
            settings.token.clone(),
            settings.request_timeout,
            settings.ca_file.as_deref(),
        )?)),
        None => None,
    };
    let monitor = Monitor::new(client.is_some(), settings.probe, Instant::now());
    let (status, connectivity) = watch::channel(monitor.report(Instant::now()));
    let network = match (&client, NetworkChanges::open()) {
        (Some(_), Ok(changes)) => Some(changes),
        (Some(_), Err(e)) => {
            tracing::info!("no network-change hints ({e}); relying on probes");
            None
        }
        (None, _) => None,
    };
    let (requests, receiver) = mpsc::channel(64);
    let (server_url, server) = watch::channel(client.as_ref().map(|c| c.base().to_string()));
    let engine = Engine {
        store,
        client,
        settings,
        monitor,
        status,
        server_url,
        network,
        flush_due: None,
        pull_due: None,
        retry_due: None,
    };
    tokio::spawn(engine.run(receiver, shutdown));
    Ok(SyncHandle {
        requests,
        connectivity,
        server,
    })
}

struct Engine {
    store: Arc<Store>,
    client: Option<Arc<SyncClient>>,
    settings: SyncSettings,
    monitor: Monitor,
    status: watch::Sender<ConnectivityState>,
    server_url: watch::Sender<Option<String>>,
    network: Option<NetworkChanges>,
    /// A local change waits to be flushed (online only).
    flush_due: Option<Instant>,
    /// The next periodic pull (online only).
    pull_due: Option<Instant>,
    /// The earliest operation waiting out a retry delay (online only).
    retry_due: Option<Instant>,
}

impl Engine {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, mut shutdown: Shutdown) {
        let events = self.store.events().clone();
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = shutdown.requested() => return,
                request = requests.recv() => match request {
                    Some(Request::SyncNow(reply)) => {
                        // A shutdown abandons the round: what was in flight is only noted in
                        // memory and simply goes out again after the next start.
                        tokio::select! {
                            report = self.sync_now() => drop(reply.send(report)),
                            _ = shutdown.requested() => return,
                        }
                    }
                    Some(Request::Reconfigure(settings)) => self.reconfigure(*settings),
                    None => return,
                },
                _ = events.local_changed(), if self.client.is_some() && self.settings.automatic => {
                    if self.monitor.state() == State::Online && self.flush_due.is_none() {
                        self.flush_due = Some(Instant::now() + self.settings.flush_debounce);
                    }
                }
                changed = next_network_change(self.network.as_ref()) => match changed {
                    Ok(()) => {
                        tracing::debug!("the network changed");
                        self.monitor.network_changed(Instant::now());
                        self.publish_connectivity();
                    }
                    Err(e) => {
                        tracing::warn!("network-change hints stopped ({e}); relying on probes");
                        self.network = None;
                    }
                },
                _ = sleep_until(wake), if wake.is_some() => tokio::select! {
                    _ = self.on_timer() => {}
                    _ = shutdown.requested() => return,
                },
            }
        }
    }

    /// Switches to new settings. A new server (or token, timeout, CA file) gets a new client; a new
    /// server also starts connectivity over (offline, probe at once).
    fn reconfigure(&mut self, new: SyncSettings) {
        let old = &self.settings;
        if new.server != old.server
            || new.token != old.token
            || new.request_timeout != old.request_timeout
            || new.ca_file != old.ca_file
        {
            let client = match new.server.as_deref().map(|url| {
                SyncClient::new(
                    url,
                    new.token.clone(),
                    new.request_timeout,
                    new.ca_file.as_deref(),
                )
            }) {
                None => None,
                Some(Ok(client)) => Some(Arc::new(client)),
                Some(Err(e)) => {
                    tracing::error!("keeping the previous sync settings: {e}");
                    return;
                }
            };
            if new.server != old.server {
                tracing::info!(
                    "sync server is now {}",
                    new.server.as_deref().unwrap_or("none (local only)")
                );
                self.monitor = Monitor::new(client.is_some(), new.probe, Instant::now());
                self.flush_due = None;
                self.pull_due = None;
                self.retry_due = None;
                if client.is_some() && self.network.is_none() {
                    self.network = NetworkChanges::open().ok();
                }
                self.server_url
                    .send_replace(client.as_ref().map(|c| c.base().to_string()));
            }
            self.client = client;
        }
        self.monitor.set_policy(new.probe);
        self.settings = new;
        self.publish_connectivity();
    }

    /// The earliest moment something is due.
    fn next_wake(&self) -> Option<Instant> {
        if !self.settings.automatic {
            return None;
        }
        match self.monitor.state() {
            State::LocalOnly => None,
            State::Offline => self.monitor.next_probe(),
            State::Online => [self.flush_due, self.retry_due, self.pull_due]
                .into_iter()
                .flatten()
                .min(),
        }
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        match self.monitor.state() {
            State::LocalOnly => {}
            State::Offline => {
                if self.monitor.next_probe().is_some_and(|due| due <= now) {
                    self.probe().await;
                }
            }
            State::Online => {
                let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                let pull = due(self.pull_due);
                if pull || due(self.flush_due) || due(self.retry_due) {
                    self.automatic_round(pull).await;
                }
            }
        }
    }

    /// Asks the server whether it is there; coming online flushes everything and pulls.
    async fn probe(&mut self) {
        let Some(client) = &self.client else { return };
        match client.health(self.monitor.policy().timeout).await {
            Ok(()) => {
                self.went(true);
                self.automatic_round(true).await;
            }
            Err(SyncError::Unreachable(reason)) => {
                tracing::debug!("probe failed: {reason}");
                self.went(false);
            }
            Err(other) => {
                // It answered, if not happily: it is reachable, and the round will say more.
                tracing::warn!("the server answered the probe with: {other}");
                self.went(true);
                self.automatic_round(true).await;
            }
        }
    }

    async fn automatic_round(&mut self, pull: bool) {
        let outcome = self.round(Mode { force: false, pull }).await;
        for error in &outcome.errors {
            tracing::warn!("sync: {error}");
        }
    }

    async fn sync_now(&mut self) -> SyncReport {
        if self.client.is_none() {
            return SyncReport {
                success: false,
                synced_items: 0,
                failed_items: 0,
                errors: vec![
                    "no sync server configured (local only): set --server or TASKSYNC_SERVER_URL"
                        .into(),
                ],
                offline: true,
            };
        }
        let outcome = self
            .round(Mode {
                force: true,
                pull: true,
            })
            .await;
        let dead = self.store.counts().map(|c| c.failed).unwrap_or(0);
        outcome.report(dead)
    }

    /// Runs a round and updates connectivity and the schedule from what it saw.
    async fn round(&mut self, mode: Mode) -> super::round::Outcome {
        let Some(client) = &self.client else {
            return Default::default();
        };
        self.flush_due = None;
        let round = Round {
            store: &self.store,
            client,
            settings: &self.settings,
        };
        let outcome = round.run(mode).await;
        if outcome.offline {
            self.went(false);
        } else if outcome.reached {
            self.went(true);
        }
        let now = Instant::now();
        if mode.pull && outcome.reached {
            self.pull_due = Some(now + self.settings.pull_interval);
        }
        self.retry_due = match self.store.next_retry_at() {
            Ok(Some(at)) => Some(now + until(at)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!("cannot read retry times: {e}");
                None
            }
        };
        if outcome.unauthorized {
            // Nothing changes until someone fixes the token: ask again at the next pull, not
            // in a loop.
            tracing::warn!(
                "the sync server refuses our token; fix token / token_file and send SIGHUP"
            );
            self.flush_due = None;
            self.retry_due = Some(now + self.settings.pull_interval);
        }
        let report_failed = outcome.failed;
        self.store.events().publish(|| {
            Event::Sync(SyncProgress::RoundFinished {
                success: outcome.reached && !outcome.offline && outcome.errors.is_empty(),
                synced: outcome.synced,
                failed: report_failed,
            })
        });
        outcome
    }

    /// Records that the server was (`reachable`) or was not reached.
    fn went(&mut self, reachable: bool) {
        let now = Instant::now();
        let changed = if reachable {
            self.monitor.reached()
        } else {
            self.monitor.unreachable(now)
        };
        if changed {
            tracing::info!(
                "sync server {} is now {}",
                self.client.as_ref().map_or("", |c| c.base()),
                self.monitor.state().as_str()
            );
            if reachable {
                self.pull_due = Some(now + self.settings.pull_interval);
            } else {
                self.flush_due = None;
                self.pull_due = None;
                self.retry_due = None;
            }
        }
        self.publish_connectivity();
    }

    fn publish_connectivity(&self) {
        let report = self.monitor.report(Instant::now());
        let changed = self.status.send_if_modified(|current| {
            let changed = current.state != report.state || current.since != report.since;
            *current = report.clone();
            changed
        });
        if changed {
            self.store.events().publish(|| Event::Connectivity(report));
        }
    }
}

/// How long until the wall-clock time `at` (zero if it has passed).
fn until(at: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(at.as_millis() - Timestamp::now().as_millis()).unwrap_or(0))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_network_change(changes: Option<&NetworkChanges>) -> std::io::Result<()> {
    match changes {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}
