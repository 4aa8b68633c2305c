//! The sync engine task: decides when to sync, runs one round at a time, keeps one live pull
//! open while online, and keeps the connectivity state.
//!
//! - Offline: probes `GET /api/health` on the monitor's backoff schedule (and soon after a
//!   network change); when the server answers, flushes the whole queue and pulls at once.
//! - Online: flushes at once after the first local change of a quiet spell, and once per
//!   debounce window while changes keep coming (so bursts share batches); retries operations
//!   when their delay is over; keeps a live pull (`wait`) open so other devices' changes
//!   arrive at once; and pulls every `pull_interval` as a fallback. A live pull that fails to
//!   connect is how the engine first notices the server went away.
//! - Whatever the server does, pulls stay paced (`super::pace`): a live answer that comes
//!   back at once without moving the cursor forward backs live pulls off, a cursor that goes
//!   backwards or comes back is a bad answer, quick live answers are budgeted to about one a
//!   second, and a pull that pages on is continued by later rounds, after a backoff when its
//!   pages brought nothing new, so local changes are pushed in between.
//! - Busy server (408, 429, 502, 503, 504): nothing counts against the queue; the next
//!   round waits for `Retry-After` (capped) or a growing backoff.
//! - Unauthorized: the server refuses our token; one round per pull interval checks again.
//! - `taskctl sync` runs a forced round after any round in progress.
//!
//! Commands never wait for any of this: the engine talks to the store like any other client
//! of the writer thread. Between events the task sleeps; an idle daemon costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tasksync_proto::events::{Connectivity, ConnectivityState, Event};
use tasksync_proto::ipc::{SyncErrorKind, SyncFailure, SyncReport};
use tasksync_proto::wire::ChangesResponse;
use tasksync_proto::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::{ClientSetupError, SyncClient, SyncError};
use super::pace::{movement, CursorCheck, Movement};
use super::round::{
    lock, read_cursor, store_page, InFlight, Mode, Outcome, Round, ServerApi, PULL_PAGE,
};
use super::schedule::{RoundEnd, Schedule, Timings};
use super::settings::SyncSettings;
use super::transport::{check_changes, Transport};
use crate::connectivity::{Monitor, NetworkChanges};
use crate::events::Events;
use crate::metrics::{Metrics, RoundWork};
use crate::service::shutdown::Shutdown;
use crate::store::Store;

/// Makes the transport for a server (`None`: local only). The daemon connects over HTTP;
/// tests put an in-memory server here.
pub(crate) type Connect = Arc<
    dyn Fn(&SyncSettings) -> Result<Option<Arc<dyn Transport>>, ClientSetupError> + Send + Sync,
>;

/// Live cursors remembered to notice a server that sends them back (A, B, A, ...).
const RECENT_CURSORS: usize = 16;
/// Quick live answers in a row without news before the log says the server does not wait.
const QUICK_STREAK_TO_LOG: u32 = 3;

enum Request {
    /// Run a round now (resending operations that wait out a retry delay) and report.
    SyncNow(oneshot::Sender<SyncReport>),
    /// Use these settings from now on (after a reload).
    Reconfigure(Box<SyncSettings>),
}

/// Handle to the engine, shared by the front ends.
#[derive(Clone)]
pub(crate) struct SyncHandle {
    requests: mpsc::Sender<Request>,
    connectivity: watch::Receiver<ConnectivityState>,
    server: watch::Receiver<Option<String>>,
    last_error: watch::Receiver<Option<SyncFailure>>,
    in_flight: InFlight,
}

impl SyncHandle {
    /// Applies new settings (a reloaded config file) from the next decision on; a round in
    /// progress finishes with the old ones.
    pub(crate) async fn reconfigure(&self, settings: SyncSettings) {
        let _ = self
            .requests
            .send(Request::Reconfigure(Box::new(settings)))
            .await;
    }

    /// Runs a sync round now, after any round already running, and returns its report.
    pub(crate) async fn sync_now(&self) -> SyncReport {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::SyncNow(reply)).await.is_err() {
            return stopped_report();
        }
        answer.await.unwrap_or_else(|_| stopped_report())
    }

    /// Whether the server is reachable, since when, and the next probe.
    pub(crate) fn connectivity(&self) -> ConnectivityState {
        self.connectivity.borrow().clone()
    }

    /// The sync server's base URL, if one is configured.
    pub(crate) fn server(&self) -> Option<String> {
        self.server.borrow().clone()
    }

    /// What the last sync round met, if it failed.
    pub(crate) fn last_error(&self) -> Option<SyncFailure> {
        self.last_error.borrow().clone()
    }

    /// Whether the queue row `seq` was sent and is not answered yet.
    pub(crate) fn is_in_flight(&self, seq: i64) -> bool {
        lock(&self.in_flight).contains(&seq)
    }
}

fn stopped_report() -> SyncReport {
    offline_report("the sync engine is shutting down")
}

fn offline_report(error: &str) -> SyncReport {
    SyncReport {
        success: false,
        synced_items: 0,
        failed_items: 0,
        errors: vec![SyncFailure::new(SyncErrorKind::Offline, error)],
        offline: true,
        pulled_items: 0,
        conflicts: 0,
        resolved: Vec::new(),
    }
}

/// The HTTP transport for the configured server.
fn connect_http(settings: &SyncSettings) -> Result<Option<Arc<dyn Transport>>, ClientSetupError> {
    match &settings.server {
        Some(url) => Ok(Some(Arc::new(SyncClient::new(
            url,
            settings.token.clone(),
            settings.request_timeout,
            settings.ca_file.as_deref(),
        )?))),
        None => Ok(None),
    }
}

/// Starts the engine task, speaking HTTP to the configured server.
pub(crate) fn spawn(
    store: Arc<Store>,
    events: Arc<Events>,
    metrics: Arc<Metrics>,
    settings: SyncSettings,
    shutdown: Shutdown,
) -> Result<SyncHandle, ClientSetupError> {
    spawn_with(
        store,
        events,
        metrics,
        settings,
        shutdown,
        Arc::new(connect_http),
    )
}

/// Starts the engine task with `connect` making its transports.
pub(crate) fn spawn_with(
    store: Arc<Store>,
    events: Arc<Events>,
    metrics: Arc<Metrics>,
    settings: SyncSettings,
    shutdown: Shutdown,
    connect: Connect,
) -> Result<SyncHandle, ClientSetupError> {
    let transport = connect(&settings)?;
    let monitor = Monitor::new(transport.is_some(), settings.probe, Instant::now());
    let (status, connectivity) = watch::channel(monitor.report(Instant::now()));
    let network = match (&transport, network_changes(&settings)) {
        (Some(_), Ok(changes)) => Some(changes),
        (Some(_), Err(e)) => {
            tracing::info!("no network-change hints ({e}); relying on probes");
            None
        }
        (None, _) => None,
    };
    let (requests, receiver) = mpsc::channel(64);
    let (server_url, server) = watch::channel(transport.as_ref().map(|t| t.base().to_string()));
    let (last_error_tx, last_error) = watch::channel(None);
    let in_flight = InFlight::default();
    let timings = timings(&settings);
    let engine = Engine {
        store,
        events,
        metrics,
        in_flight: in_flight.clone(),
        transport,
        connect,
        settings,
        monitor,
        status,
        server_url,
        last_error: last_error_tx,
        network,
        schedule: Schedule::new(timings, Instant::now()),
        live: None,
        live_cursors: std::collections::VecDeque::new(),
        pulls: 0,
        server_api: ServerApi::default(),
    };
    tokio::spawn(engine.run(receiver, shutdown));
    Ok(SyncHandle {
        requests,
        connectivity,
        server,
        last_error,
        in_flight,
    })
}

/// The live pull in progress.
struct LivePull {
    answer: JoinHandle<Result<ChangesResponse, SyncError>>,
    since: String,
    started: Instant,
    /// How many pulls had been stored when it started: if a round pulled meanwhile, its
    /// answer may be older than the stored cursor and is dropped.
    pulls: u64,
}

impl Drop for LivePull {
    fn drop(&mut self) {
        self.answer.abort();
    }
}

struct Engine {
    store: Arc<Store>,
    events: Arc<Events>,
    metrics: Arc<Metrics>,
    /// The rows the current round sent and has no answer for.
    in_flight: InFlight,
    transport: Option<Arc<dyn Transport>>,
    connect: Connect,
    settings: SyncSettings,
    monitor: Monitor,
    status: watch::Sender<ConnectivityState>,
    server_url: watch::Sender<Option<String>>,
    last_error: watch::Sender<Option<SyncFailure>>,
    network: Option<NetworkChanges>,
    /// When flushes, retries, pulls and live pulls are due.
    schedule: Schedule,
    live: Option<LivePull>,
    /// The latest cursors live pulls brought.
    live_cursors: std::collections::VecDeque<String>,
    /// Pulls stored by rounds so far.
    pulls: u64,
    /// The server's sync API version, learned from its health answers.
    server_api: ServerApi,
}

impl Engine {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, mut shutdown: Shutdown) {
        let events = self.events.clone();
        loop {
            self.keep_live_pull();
            let wake = self.next_wake();
            // `biased`: branches are polled in this order, not at random, so that a simulated
            // run replays exactly. Local changes come last: a stream of them must not starve a
            // due timer or a live answer, which are each ready once.
            tokio::select! {
                biased;
                _ = shutdown.requested() => return,
                request = requests.recv() => match request {
                    Some(Request::SyncNow(reply)) => {
                        // A shutdown abandons the round: what was in flight is only noted in
                        // memory and simply goes out again after the next start.
                        tokio::select! {
                            biased;
                            report = self.sync_now() => drop(reply.send(report)),
                            _ = shutdown.requested() => return,
                        }
                    }
                    Some(Request::Reconfigure(settings)) => self.reconfigure(*settings),
                    None => return,
                },
                _ = sleep_until(wake), if wake.is_some() => tokio::select! {
                    biased;
                    _ = self.on_timer() => {}
                    _ = shutdown.requested() => return,
                },
                answer = live_answer(&mut self.live) => tokio::select! {
                    biased;
                    _ = self.on_live_answer(answer) => {}
                    _ = shutdown.requested() => return,
                },
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
                _ = events.local_changed(), if self.transport.is_some() && self.settings.automatic => {
                    if self.monitor.state() == Connectivity::Online {
                        self.schedule.local_change(Instant::now());
                    }
                }
            }
        }
    }

    /// Switches to new settings. A new server (or token, timeout, CA file) gets a new
    /// transport; a new server also starts connectivity over (offline, probe at once).
    fn reconfigure(&mut self, new: SyncSettings) {
        let old = &self.settings;
        if new.server != old.server
            || new.token != old.token
            || new.request_timeout != old.request_timeout
            || new.ca_file != old.ca_file
        {
            let transport = match (self.connect)(&new) {
                Ok(transport) => transport,
                Err(e) => {
                    tracing::error!("keeping the previous sync settings: {e}");
                    return;
                }
            };
            self.live = None;
            if new.server != old.server || self.monitor.state() == Connectivity::Unauthorized {
                if new.server != old.server {
                    tracing::info!(
                        "sync server is now {}",
                        new.server.as_deref().unwrap_or("none (local only)")
                    );
                }
                self.monitor = Monitor::new(transport.is_some(), new.probe, Instant::now());
                self.live_cursors.clear();
                self.schedule.clear();
                if transport.is_some() && self.network.is_none() {
                    self.network = network_changes(&new).ok();
                }
                self.server_url
                    .send_replace(transport.as_ref().map(|t| t.base().to_string()));
            }
            self.transport = transport;
        }
        self.monitor.set_policy(new.probe);
        self.schedule.set_timings(timings(&new));
        self.settings = new;
        self.publish_connectivity();
    }

    /// The earliest moment something is due.
    fn next_wake(&self) -> Option<Instant> {
        if !self.settings.automatic {
            return None;
        }
        match self.monitor.state() {
            Connectivity::LocalOnly => None,
            Connectivity::Offline => self.monitor.next_probe(),
            Connectivity::Unauthorized => self.schedule.retry_due(),
            Connectivity::Online => self.schedule.next_online_wake(self.live.is_some()),
        }
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        match self.monitor.state() {
            Connectivity::LocalOnly => {}
            Connectivity::Offline => {
                if self.monitor.next_probe().is_some_and(|at| at <= now) {
                    self.probe().await;
                }
            }
            Connectivity::Unauthorized => {
                if self.schedule.due(now).retry {
                    self.automatic_round(true).await;
                }
            }
            Connectivity::Online => {
                let due = self.schedule.due(now);
                if due.round() {
                    self.automatic_round(due.pull).await;
                }
            }
        }
    }

    /// Asks the server whether it is there; coming online flushes everything and pulls.
    async fn probe(&mut self) {
        let Some(transport) = &self.transport else {
            return;
        };
        match transport.health(self.monitor.policy().timeout).await {
            Ok(version) => {
                self.server_api.learn(version);
                self.server_reached();
                self.automatic_round(true).await;
            }
            Err(SyncError::Unreachable(reason)) => {
                tracing::debug!("probe failed: {reason}");
                self.server_lost();
            }
            Err(other) => {
                // It answered, if not happily: it is reachable, and the round will say more.
                tracing::warn!("the server answered the probe with: {other}");
                self.server_reached();
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
        if self.transport.is_none() {
            return offline_report(
                "no sync server configured (local only): set server_url in the config file \
                 (`tasksyncd --print-config` names it), or --server or TASKSYNC_SERVER_URL",
            );
        }
        let outcome = self
            .round(Mode {
                force: true,
                pull: true,
            })
            .await;
        // A scanning read: on the blocking pool, not on this task (ARCHITECTURE.md).
        let dead = self
            .store
            .scan(|store| store.counts().map(|c| c.failed))
            .await
            .and_then(Result::ok)
            .unwrap_or(0);
        outcome.report(dead)
    }

    /// Runs a round and updates connectivity and the schedule from what it saw.
    async fn round(&mut self, mode: Mode) -> Outcome {
        let Some(transport) = &self.transport else {
            return Outcome::default();
        };
        self.schedule.round_started(Instant::now());
        let round = self.round_with(transport);
        let started = Instant::now();
        let outcome = round.run(mode).await;
        self.metrics.round(
            mode.pull,
            outcome.succeeded(),
            started.elapsed(),
            RoundWork {
                pushed: outcome.synced,
                pulled: outcome.pulled,
                failed: outcome.failed,
            },
        );
        if mode.pull {
            self.pulls += 1;
        }
        if outcome.cursor_restarted {
            self.live_cursors.clear();
        }
        if outcome.offline {
            self.server_lost();
        } else if outcome.unauthorized {
            if self.monitor.refused() {
                tracing::warn!(
                    "the sync server refuses our token; fix token / token_file and send SIGHUP"
                );
                self.live = None;
            }
            self.publish_connectivity();
        } else if outcome.reached {
            self.server_reached();
        }
        let now = Instant::now();
        // A retry time further away than any delay was set before the clock went back: the
        // row is due at once (see `store::rows::select_next_batch`).
        let longest = self.settings.retry.max;
        let next_retry = match self.store.next_retry_at() {
            Ok(at) => at.map(|at| until(at, self.store.now())).map(|wait| {
                if wait > longest {
                    Duration::ZERO
                } else {
                    wait
                }
            }),
            Err(e) => {
                tracing::error!("cannot read retry times: {e}");
                None
            }
        };
        let busy_wait = self.schedule.round_ended(
            now,
            RoundEnd {
                pulled: mode.pull && outcome.reached,
                unauthorized: outcome.unauthorized,
                busy: outcome.busy,
                more_to_pull: outcome.more_to_pull,
                next_retry,
            },
        );
        if let Some(wait) = busy_wait {
            tracing::info!("the sync server is busy; trying again in {wait:?}");
        }
        self.last_error.send_replace(if outcome.succeeded() {
            None
        } else {
            outcome.round_error.clone()
        });
        self.events.publish(|| outcome.finished());
        outcome
    }

    /// Opens a live pull while online, unless one is open or they are paused.
    fn keep_live_pull(&mut self) {
        let Some(transport) = &self.transport else {
            return;
        };
        if self.live.is_some()
            || !self.settings.automatic
            || self.monitor.state() != Connectivity::Online
            || !self.schedule.live_may_start(Instant::now())
        {
            return;
        }
        let since = match read_cursor(&self.store, transport.base()) {
            Ok(since) => since,
            Err(e) => {
                tracing::error!("no live pull: {e}");
                self.pause_live();
                return;
            }
        };
        let wait = self
            .settings
            .live_wait
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let request = transport.clone();
        let from = since.clone();
        let answer =
            tokio::spawn(async move { request.changes(&from, PULL_PAGE, Some(wait)).await });
        self.live = Some(LivePull {
            answer,
            since,
            started: Instant::now(),
            pulls: self.pulls,
        });
    }

    /// Stores what a live pull brought, or learns from its failure.
    async fn on_live_answer(
        &mut self,
        (live, answer): (LivePull, Result<ChangesResponse, SyncError>),
    ) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        if live.pulls != self.pulls {
            return; // a round pulled meanwhile; the next live pull starts from its cursor
        }
        let quick = self
            .schedule
            .live_answered(Instant::now(), live.started.elapsed());
        let answer = answer.and_then(|mut page| {
            check_changes(&live.since, &mut page)?;
            self.check_live_cursor(&live.since, &page.cursor)?;
            Ok(page)
        });
        match answer {
            Ok(page) => {
                let news = movement(&live.since, &page.cursor) == Movement::Forward;
                let has_more = page.has_more;
                match store_page(&self.store, &self.events, transport.base(), page).await {
                    Ok(stored) => {
                        let changed = stored.changed;
                        self.metrics.live_pull(changed);
                        if changed > 0 {
                            tracing::debug!("live pull: {changed} task(s) changed");
                        }
                    }
                    Err(e) => {
                        tracing::error!("live pull: {e}");
                        self.pause_live();
                        return;
                    }
                }
                if has_more && !self.pull_rest(&transport).await {
                    return;
                }
                if quick && !news {
                    // Back at once without moving the cursor: it did not wait for news (an
                    // older server, a proxy that cuts requests short, a server shutting down).
                    if self.pause_live() == QUICK_STREAK_TO_LOG {
                        tracing::info!(
                            "the sync server answered {QUICK_STREAK_TO_LOG} live pulls in a row at once without news; live pulls wait longer between tries (at most the pull interval)"
                        );
                    }
                } else {
                    self.schedule.live_progressed();
                }
            }
            Err(SyncError::Unreachable(reason)) => {
                tracing::info!("live pull lost the server: {reason}");
                self.server_lost();
            }
            Err(SyncError::Unauthorized(_)) => {
                // The next round finds out properly and sets the state.
                self.schedule.retry_now(Instant::now());
                self.pause_live();
            }
            Err(SyncError::CursorUnknown(reason)) => {
                // A round at once starts the pull again from the beginning.
                tracing::info!("live pull: the server does not know our cursor ({reason})");
                self.schedule.pull_continues(Instant::now(), true);
                self.pause_live();
            }
            Err(error) => {
                tracing::warn!("live pull: {error}; pulling at intervals for now");
                self.pause_live();
            }
        }
    }

    /// A live answer's cursor must not go backwards, nor come back to one of the last few.
    fn check_live_cursor(&mut self, since: &str, cursor: &str) -> Result<(), SyncError> {
        if movement(since, cursor) == Movement::Forward {
            if self.live_cursors.iter().any(|seen| seen == cursor) {
                return Err(SyncError::BadAnswer(
                    "a live pull's cursor came back to an earlier one".into(),
                ));
            }
            if self.live_cursors.len() == RECENT_CURSORS {
                self.live_cursors.pop_front();
            }
            self.live_cursors.push_back(cursor.to_string());
            return Ok(());
        }
        CursorCheck::default().step(since, cursor)
    }

    /// Pulls one slice of the pages after a live pull that said there is more; the next
    /// round goes on if there is still more. Returns false if live pulls were paused (the
    /// slice failed, or changed nothing and the server still has more).
    async fn pull_rest(&mut self, transport: &Arc<dyn Transport>) -> bool {
        let round = self.round_with(transport);
        let slice = round.pull_slice(&mut CursorCheck::default()).await;
        if slice.as_ref().is_ok_and(|slice| slice.restarted) {
            self.live_cursors.clear();
        }
        match slice {
            Ok(slice) if !slice.finished => {
                let news = slice.changed > 0;
                self.schedule.pull_continues(Instant::now(), news);
                if !news {
                    self.pause_live();
                }
                news
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("live pull: {e}");
                if matches!(e, SyncError::Unreachable(_)) {
                    self.server_lost();
                } else {
                    self.pause_live();
                }
                false
            }
        }
    }

    /// No live pull for a while: a growing backoff, at most one pull interval.
    /// A round against `transport` over this engine's store, events and rows in flight.
    fn round_with<'a>(&'a self, transport: &'a Arc<dyn Transport>) -> Round<'a> {
        Round {
            store: &self.store,
            events: &self.events,
            in_flight: &self.in_flight,
            transport,
            settings: &self.settings,
            server_api: &self.server_api,
        }
    }

    /// No live pull for a while; returns how many pauses in a row this is.
    fn pause_live(&mut self) -> u32 {
        self.schedule.pause_live(Instant::now())
    }

    /// The server answered.
    fn server_reached(&mut self) {
        if self.monitor.reached() {
            self.log_state();
            self.schedule.server_back(Instant::now());
        }
        self.publish_connectivity();
    }

    /// The server could not be reached: offline, probing.
    fn server_lost(&mut self) {
        if self.monitor.unreachable(Instant::now()) {
            self.log_state();
            self.schedule.clear();
            self.live = None;
        }
        self.publish_connectivity();
    }

    fn log_state(&self) {
        tracing::info!(
            "sync server {} is now {}",
            self.transport.as_ref().map_or("", |t| t.base()),
            self.monitor.state()
        );
    }

    fn publish_connectivity(&self) {
        let report = self.monitor.report(Instant::now());
        let changed = self.status.send_if_modified(|current| {
            let changed = current.state != report.state || current.since != report.since;
            *current = report.clone();
            changed
        });
        if changed {
            self.events.publish(|| Event::Connectivity(report));
        }
    }
}

/// The answer of the live pull in progress (pending while there is none).
async fn live_answer(
    live: &mut Option<LivePull>,
) -> (LivePull, Result<ChangesResponse, SyncError>) {
    let Some(pull) = live.as_mut() else {
        return std::future::pending().await;
    };
    let answer = (&mut pull.answer)
        .await
        .unwrap_or_else(|e| Err(SyncError::Local(format!("the live pull task failed: {e}"))));
    match live.take() {
        Some(pull) => (pull, answer),
        None => std::future::pending().await,
    }
}

/// The operating system's network changes, if the settings want them.
fn network_changes(settings: &SyncSettings) -> std::io::Result<NetworkChanges> {
    if settings.network_hints {
        NetworkChanges::open()
    } else {
        Err(std::io::Error::other("network hints are off"))
    }
}

/// The schedule's timings from the sync settings.
fn timings(settings: &SyncSettings) -> Timings {
    Timings {
        flush_debounce: settings.flush_debounce,
        pull_interval: settings.pull_interval,
        retry: settings.retry,
    }
}

/// How long until the wall-clock time `at` (zero if it has passed).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(at.as_millis() - now.as_millis()).unwrap_or(0))
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
