//! An in-memory sync server behind the [`Transport`] seam, for tests that drive whole sync
//! rounds (and the engine) in one process.
//!
//! It is the server's own protocol (docs/SYNC-PROTOCOL.md), `tasksync_core` (item checks with
//! the clock limit, op ids answered once and remembered, field-wise LWW, the change feed and
//! its pages), over the core's in-memory store; this file adds only what HTTP would: live
//! pulls that wait for a change, and cursors as strings. Each device reaches it through its own [`FakeLink`], whose
//! [`Fault`] simulates partitions, outages, 503 storms, lost answers and lying servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tasksync_core::{BatchInput, ClockLimit, MemoryStore};
use tasksync_proto::wire::{
    BatchRequest, BatchResponse, ChangesResponse, ItemStatus, ProcessedItem, WireTask,
};
use tasksync_proto::Timestamp;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::client::SyncError;
use super::transport::{BoxFuture, Transport};
use crate::store::clock::{WallClock, MAX_CLOCK_SKEW};

pub(crate) struct FakeServer {
    /// One user's server state; the mutex is the user's batch lock.
    store: Mutex<MemoryStore>,
    /// Wakes live pulls when a change lands. A `Notify` wakes its waiters in the order they
    /// came (a `watch` picks among its shards at random), so simulated runs replay exactly.
    changes: Notify,
    clock: WallClock,
    /// The sync API version it speaks: 1 plays a server from before the fields of API 2,
    /// which refuses a batch naming them as a real one does (its JSON does not parse: 400).
    api_version: AtomicU32,
}

impl FakeServer {
    pub(crate) fn new(clock: WallClock) -> Arc<FakeServer> {
        Arc::new(FakeServer {
            store: Mutex::new(MemoryStore::new()),
            changes: Notify::new(),
            clock,
            api_version: AtomicU32::new(tasksync_proto::wire::SYNC_API_VERSION),
        })
    }

    /// Plays a server of sync API `version` from now on.
    #[cfg(test)]
    pub(crate) fn set_api_version(&self, version: u32) {
        self.api_version.store(version, Ordering::Relaxed);
    }

    fn api_version(&self) -> u32 {
        self.api_version.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, MemoryStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every task the server holds, tombstones included.
    pub(crate) fn tasks(&self) -> Vec<WireTask> {
        self.lock().tasks()
    }

    /// Every conflict of the change feed, in order.
    pub(crate) fn conflicts(&self) -> Vec<tasksync_proto::wire::WireConflict> {
        self.lock()
            .conflicts()
            .map(|feed| feed.conflict.clone())
            .collect()
    }

    /// How often the core applied each op id (recorded its answer).
    pub(crate) fn merges(&self) -> HashMap<Uuid, u32> {
        self.lock().applied().clone()
    }

    /// Applies a batch as `POST /api/batch` does; a server of API 1 refuses a batch that
    /// names a field it does not know (400: its JSON does not parse there).
    fn accept(&self, batch: &BatchRequest) -> Result<BatchResponse, SyncError> {
        if self.api_version() < 2 {
            let unknown = batch.items.iter().any(|item| {
                item.data.has_v2_fields()
                    || item
                        .changed_fields
                        .iter()
                        .flatten()
                        .any(|field| !field.is_v1())
            });
            if unknown {
                return Err(SyncError::Failed {
                    status: 400,
                    message: "simulated API 1 server: unknown field".into(),
                });
            }
        }
        Ok(self.process_batch(batch))
    }

    /// Applies a batch as `POST /api/batch` does.
    pub(crate) fn process_batch(&self, batch: &BatchRequest) -> BatchResponse {
        let skew = u32::try_from(MAX_CLOCK_SKEW.as_secs()).unwrap_or(u32::MAX);
        let input = BatchInput {
            device_id: batch.device_id,
            items: batch.items.clone(),
            clock: ClockLimit::new((self.clock)(), skew),
        };
        let outcome = self.lock().apply_batch(&input);
        if outcome.changed {
            self.changes.notify_waiters();
        }
        outcome.response
    }

    /// One page of changes after `since`, as `GET /api/changes` answers.
    fn page(&self, since: &str, limit: usize) -> Result<ChangesResponse, SyncError> {
        let unknown = || SyncError::CursorUnknown(format!("since: {since:?}"));
        let after: i64 = if since.is_empty() {
            0
        } else {
            since.parse().map_err(|_| unknown())?
        };
        let page = self.lock().changes(after, limit);
        if page.cursor_unknown {
            return Err(unknown());
        }
        Ok(ChangesResponse {
            changes: page.changes,
            cursor: page.cursor.to_string(),
            has_more: page.has_more,
            conflicts: page.conflicts,
        })
    }

    /// `GET /api/changes`, held up to `wait` while nothing is new.
    async fn changes(
        &self,
        since: &str,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<ChangesResponse, SyncError> {
        // Waiting from before the read: a change that lands after it still wakes this pull.
        let news = self.changes.notified();
        let mut news = std::pin::pin!(news);
        news.as_mut().enable();
        let page = self.page(since, limit)?;
        let Some(wait) = wait else { return Ok(page) };
        if !page.changes.is_empty() {
            return Ok(page);
        }
        let _ = tokio::time::timeout(wait, news).await;
        self.page(since, limit)
    }
}

/// What a link does to the requests that cross it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Requests go through.
    None,
    /// Nothing answers (a partition, or the server is down).
    Offline,
    /// The server answers 503 with `Retry-After: 1`.
    Busy,
    /// The next push is applied, but its answer is lost on the way back; then `None`.
    LoseNextAnswer,
    /// Every push gets a 500 (a storage fault that blames the batch).
    Fail,
    /// Every pushed item is answered `error` (the server refuses it) and not applied.
    Reject,
    /// Pulls answer at once, without waiting (an older server).
    NoWait,
    /// Every answer is nonsense: wrong counts, has_more that goes nowhere.
    Lie,
    /// The server refuses our token (401); health still answers.
    Unauthorized,
    /// Pulls answer at once with the first page again, and the cursor they were asked from.
    SamePage,
    /// Pulls answer at once with the first page again, and a cursor one behind.
    BackwardsCursor,
    /// Pulls answer at once with the first page again, a new cursor (`endless-N`) and
    /// `has_more`, forever.
    EndlessPages,
    /// Pulls answer at once with an empty page, a new cursor and `has_more`, forever.
    EmptyEndlessPages,
    /// Pulls answer at once with `has_more` and cursors that alternate between two values.
    AlternatingCursors,
    /// Pushes go through, and pulls until this many were seen on the link; then nothing
    /// answers them (the connection breaks in the middle of a long pull).
    PullsBreakAfter(u64),
}

/// One device's way to the server.
pub(crate) struct FakeLink {
    server: Mutex<Arc<FakeServer>>,
    fault: Mutex<Fault>,
    /// Pull requests seen, to prove nobody loops.
    pulls: std::sync::atomic::AtomicU64,
}

impl FakeLink {
    pub(crate) fn new(server: Arc<FakeServer>) -> Arc<FakeLink> {
        Arc::new(FakeLink {
            server: Mutex::new(server),
            fault: Mutex::new(Fault::None),
            pulls: Default::default(),
        })
    }

    /// From now on, requests reach `server` (the same URL served by another server: one
    /// restored from a backup).
    pub(crate) fn repoint(&self, server: Arc<FakeServer>) {
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = server;
    }

    fn server(&self) -> Arc<FakeServer> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn pulls(&self) -> u64 {
        self.pulls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every request takes this long, so that a loop costs time even on a paused clock (where
    /// it would otherwise spin without the clock ever moving).
    async fn round_trip() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn offline() -> SyncError {
        SyncError::Unreachable("simulated partition".into())
    }

    fn busy() -> SyncError {
        SyncError::Busy {
            status: 503,
            message: "simulated: storage unavailable".into(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }
}

impl Transport for FakeLink {
    fn base(&self) -> &str {
        "fake://server"
    }

    fn health(&self, _timeout: Duration) -> BoxFuture<'_, Result<u32, SyncError>> {
        Box::pin(async move {
            FakeLink::round_trip().await;
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                _ => Ok(self.server().api_version()),
            }
        })
    }

    fn push<'a>(
        &'a self,
        batch: &'a BatchRequest,
    ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
        Box::pin(async move {
            FakeLink::round_trip().await;
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                Fault::Busy => Err(FakeLink::busy()),
                Fault::Unauthorized => Err(SyncError::Unauthorized(401)),
                Fault::Fail => Err(SyncError::Failed {
                    status: 500,
                    message: "simulated failure".into(),
                }),
                Fault::LoseNextAnswer => {
                    self.server().process_batch(batch);
                    self.set_fault(Fault::None);
                    Err(SyncError::Unreachable(
                        "simulated: connection reset after the server applied the batch".into(),
                    ))
                }
                Fault::Reject => Ok(BatchResponse {
                    processed_items: batch
                        .items
                        .iter()
                        .map(|item| ProcessedItem {
                            client_id: item.id,
                            server_id: item.task_id,
                            status: ItemStatus::Error,
                            resolved_data: None,
                            error: Some("simulated: the server refuses this operation".into()),
                        })
                        .collect(),
                }),
                Fault::Lie => {
                    let mut answer = self.server().process_batch(batch);
                    answer.processed_items.pop();
                    Ok(answer)
                }
                Fault::None
                | Fault::NoWait
                | Fault::SamePage
                | Fault::BackwardsCursor
                | Fault::EndlessPages
                | Fault::EmptyEndlessPages
                | Fault::AlternatingCursors
                | Fault::PullsBreakAfter(_) => self.server().accept(batch),
            }
        })
    }

    fn changes<'a>(
        &'a self,
        since: &'a str,
        limit: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>> {
        Box::pin(async move {
            let seen = 1 + self
                .pulls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            FakeLink::round_trip().await;
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                Fault::PullsBreakAfter(pulls) if seen > pulls => Err(FakeLink::offline()),
                Fault::Busy => Err(FakeLink::busy()),
                Fault::Unauthorized => Err(SyncError::Unauthorized(401)),
                Fault::NoWait => self.server().changes(since, limit, None).await,
                Fault::Lie => Ok(ChangesResponse {
                    changes: Vec::new(),
                    cursor: since.to_string(),
                    has_more: true,
                    conflicts: Vec::new(),
                }),
                Fault::SamePage | Fault::BackwardsCursor => {
                    let first = self.server().page("", limit)?;
                    let number = since.parse::<u64>().unwrap_or(0);
                    let cursor = if self.fault() == Fault::SamePage {
                        since.to_string()
                    } else {
                        number.saturating_sub(1).to_string()
                    };
                    Ok(ChangesResponse {
                        changes: first.changes,
                        cursor,
                        has_more: false,
                        conflicts: Vec::new(),
                    })
                }
                Fault::EndlessPages | Fault::EmptyEndlessPages => Ok(ChangesResponse {
                    changes: if self.fault() == Fault::EndlessPages {
                        self.server().page("", limit)?.changes
                    } else {
                        Vec::new()
                    },
                    // Cursors of its own, which the real server (once the fault heals) does not
                    // know: a number could name a change that exists by then.
                    cursor: format!(
                        "endless-{}",
                        since
                            .strip_prefix("endless-")
                            .and_then(|n| n.parse::<u64>().ok())
                            .unwrap_or(0)
                            + 1
                    ),
                    has_more: true,
                    conflicts: Vec::new(),
                }),
                Fault::AlternatingCursors => Ok(ChangesResponse {
                    changes: self.server().page("", limit)?.changes,
                    cursor: if since == "a" { "b" } else { "a" }.into(),
                    has_more: true,
                    conflicts: Vec::new(),
                }),
                Fault::None
                | Fault::Fail
                | Fault::Reject
                | Fault::LoseNextAnswer
                | Fault::PullsBreakAfter(_) => self.server().changes(since, limit, wait).await,
            }
        })
    }
}

/// Where simulated wall clocks start (ms since 1970): a fixed day in 2027.
const SIMULATED_EPOCH_MS: i64 = 1_800_000_000_000;

/// A wall clock that follows tokio's clock (paused in tests, so it moves only as simulated
/// time does): a fixed start, plus the time since `start`, plus `skew` milliseconds.
pub(crate) fn simulated_clock(start: Instant, skew: Arc<AtomicI64>) -> WallClock {
    Arc::new(move || {
        let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let ms = SIMULATED_EPOCH_MS + elapsed + skew.load(Ordering::SeqCst);
        Timestamp::from_millis(ms).unwrap_or_else(Timestamp::now)
    })
}
