//! A device's way to the simulated server, as the simulation sees it: every request takes a
//! little simulated time, and is written to the run's journal (whose digest is the run's
//! trace) with its answer. It also keeps what the checks need: which op ids the server
//! refused, when pulls went out, and the conflicts the server resolved.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tasksync_proto::wire::{BatchRequest, BatchResponse, ChangesResponse, ItemStatus};
use tokio::time::Instant;
use uuid::Uuid;

use crate::sync::client::SyncError;
use crate::sync::fake_server::FakeLink;
use crate::sync::transport::{BoxFuture, Transport};

/// The ordered record of a run: a digest of every line, and the last lines for a failure.
pub(super) struct Journal {
    start: Instant,
    state: Mutex<JournalState>,
}

struct JournalState {
    digest: Sha256,
    lines: Vec<String>,
}

/// Lines of the journal shown with a failure.
const TAIL: usize = 40;

impl Journal {
    pub(super) fn new() -> Arc<Journal> {
        Arc::new(Journal {
            start: Instant::now(),
            state: Mutex::new(JournalState {
                digest: Sha256::new(),
                lines: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulated milliseconds since the run began.
    pub(super) fn millis(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Writes `line`, stamped with the simulated time.
    pub(super) fn note(&self, line: impl AsRef<str>) {
        let line = format!("{:>7} {}", self.millis(), line.as_ref());
        let mut state = self.lock();
        state.digest.update(line.as_bytes());
        state.digest.update(b"\n");
        state.lines.push(line);
    }

    /// The digest of every line so far, as 64 hex characters.
    pub(super) fn trace(&self) -> String {
        let digest = self.lock().digest.clone().finalize();
        digest.iter().fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
    }

    /// The last lines, to show with a failure.
    pub(super) fn tail(&self) -> String {
        let state = self.lock();
        let from = state.lines.len().saturating_sub(TAIL);
        format!(
            "last {} of {} journal lines:\n  {}",
            state.lines.len() - from,
            state.lines.len(),
            state.lines[from..].join("\n  ")
        )
    }

    /// Every line so far.
    pub(super) fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }
}

/// What the checks learn from one link.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Answers that blamed each op id: a 500 or a bad answer for its batch, or an item error.
    pub(super) rejections: BTreeMap<Uuid, u32>,
    /// Simulated times (ms) of pulls sent while no forced sync ran on this device.
    pub(super) automatic_pulls: Vec<u64>,
    /// Items the server answered `conflict`.
    pub(super) conflicts: u64,
    /// Live pulls that brought changes.
    pub(super) live_news: u64,
}

/// One device's link, journaled.
pub(super) struct SimLink {
    name: String,
    link: Arc<FakeLink>,
    journal: Arc<Journal>,
    /// Whether the driver is running a forced sync on this device.
    forced: AtomicBool,
    seen: Mutex<Seen>,
}

/// The most a request takes on the simulated network.
const MAX_LATENCY_MS: f64 = 5.0;

impl SimLink {
    pub(super) fn new(name: String, link: Arc<FakeLink>, journal: Arc<Journal>) -> Arc<SimLink> {
        Arc::new(SimLink {
            name,
            link,
            journal,
            forced: AtomicBool::new(false),
            seen: Mutex::default(),
        })
    }

    pub(super) fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_forced(&self, forced: bool) {
        self.forced.store(forced, Ordering::SeqCst);
    }

    /// A request's trip over the simulated network: 1 to 5 ms, from the run's seed (and the
    /// fake link's own millisecond).
    async fn latency() {
        let ms = 1.0 + crate::entropy::fraction() * (MAX_LATENCY_MS - 1.0);
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }

    fn note(&self, what: String) {
        self.journal.note(format!("{} {what}", self.name));
    }

    fn reject_all(&self, batch: &BatchRequest) {
        let mut seen = self.seen();
        for item in &batch.items {
            *seen.rejections.entry(item.id).or_default() += 1;
        }
    }

    /// Notes a push's answer, and what it blames.
    fn push_answered(&self, batch: &BatchRequest, answer: &Result<BatchResponse, SyncError>) {
        let ops = ids(batch.items.iter().map(|item| item.id));
        match answer {
            Ok(response) if response.processed_items.len() != batch.items.len() => {
                // Answers that do not match the batch are a bad answer: every item is blamed.
                self.reject_all(batch);
                self.note(format!("push {ops} -> bad answer"));
            }
            Ok(response) => {
                let mut seen = self.seen();
                let mut statuses = String::new();
                for item in &response.processed_items {
                    statuses.push(match item.status {
                        ItemStatus::Success => 's',
                        ItemStatus::Conflict => {
                            seen.conflicts += 1;
                            'c'
                        }
                        ItemStatus::Error => {
                            *seen.rejections.entry(item.client_id).or_default() += 1;
                            'e'
                        }
                    });
                }
                drop(seen);
                self.note(format!("push {ops} -> {statuses}"));
            }
            Err(error) => {
                // What the server said against the batch, by the simulation's own reading
                // (not the engine's, which is what the check judges).
                if matches!(
                    error,
                    SyncError::Failed { .. }
                        | SyncError::BadAnswer(_)
                        | SyncError::CursorUnknown(_)
                ) {
                    self.reject_all(batch);
                }
                self.note(format!("push {ops} -> {}", kind(error)));
            }
        }
    }
}

/// Short forms of ids, for the journal.
fn ids(ids: impl Iterator<Item = Uuid>) -> String {
    let short: Vec<String> = ids
        .map(|id| id.simple().to_string()[..8].to_string())
        .collect();
    format!("[{}]", short.join(" "))
}

/// The kind of a sync error, for the journal (messages may carry anything).
fn kind(error: &SyncError) -> String {
    error.kind().to_string()
}

impl Transport for SimLink {
    fn base(&self) -> &str {
        self.link.base()
    }

    fn health(&self, timeout: Duration) -> BoxFuture<'_, Result<u32, SyncError>> {
        Box::pin(async move {
            SimLink::latency().await;
            let answer = self.link.health(timeout).await;
            self.note(format!(
                "health -> {}",
                answer
                    .as_ref()
                    .map_or_else(kind, |version| format!("ok, api {version}"))
            ));
            answer
        })
    }

    fn push<'a>(
        &'a self,
        batch: &'a BatchRequest,
    ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
        Box::pin(async move {
            SimLink::latency().await;
            let answer = self.link.push(batch).await;
            self.push_answered(batch, &answer);
            answer
        })
    }

    fn changes<'a>(
        &'a self,
        since: &'a str,
        limit: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>> {
        Box::pin(async move {
            if !self.forced.load(Ordering::SeqCst) {
                let at = self.journal.millis();
                self.seen().automatic_pulls.push(at);
            }
            SimLink::latency().await;
            let answer = self.link.changes(since, limit, wait).await;
            let live = if wait.is_some() { "live " } else { "" };
            match &answer {
                Ok(page) => {
                    if wait.is_some() && !page.changes.is_empty() {
                        self.seen().live_news += 1;
                    }
                    self.note(format!(
                        "{live}pull {since:?} -> {:?} {} {}",
                        page.cursor,
                        ids(page.changes.iter().map(|t| t.id)),
                        if page.has_more { "more" } else { "end" }
                    ));
                }
                Err(error) => self.note(format!("{live}pull {since:?} -> {}", kind(error))),
            }
            answer
        })
    }
}
