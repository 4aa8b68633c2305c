//! An in-memory sync server behind the [`Transport`] seam, for tests that drive whole sync
//! rounds (and the engine) in one process.
//!
//! It keeps the server's contract (docs/SYNC-PROTOCOL.md): op ids answered once and
//! remembered, field-wise LWW through the same [`lww::merge`] the real server uses, a change
//! log whose cursor never skips anything, live pulls that wait for a change, and clocks far
//! ahead refused per item. Each device reaches it through its own [`FakeLink`], whose
//! [`Fault`] simulates partitions, outages, 503 storms, lost answers and lying servers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tasksync_proto::lww::{self, Incoming, Versioned};
use tasksync_proto::wire::{
    BatchRequest, BatchResponse, ChangesResponse, ItemStatus, ProcessedItem, WireTask,
};
use tasksync_proto::Timestamp;
use tokio::sync::watch;
use uuid::Uuid;

use super::client::SyncError;
use super::transport::{BoxFuture, Transport};
use crate::store::clock::{WallClock, MAX_CLOCK_SKEW};

/// The server's state.
#[derive(Default)]
struct State {
    tasks: HashMap<Uuid, Versioned>,
    /// Answers by op id, with the task they were for.
    answers: HashMap<Uuid, (Uuid, ProcessedItem)>,
    /// How often each op id was merged (must never exceed 1).
    merges: HashMap<Uuid, u32>,
    /// The latest change of every task: change number -> task id.
    log: BTreeMap<u64, Uuid>,
    change_of: HashMap<Uuid, u64>,
    last_change: u64,
}

pub(crate) struct FakeServer {
    state: Mutex<State>,
    /// The number of the last change, for live pulls to wait on.
    changes: watch::Sender<u64>,
    clock: WallClock,
}

impl FakeServer {
    pub(crate) fn new(clock: WallClock) -> Arc<FakeServer> {
        Arc::new(FakeServer {
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            clock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every task the server holds, tombstones included.
    pub(crate) fn tasks(&self) -> Vec<WireTask> {
        let mut tasks: Vec<WireTask> = self.lock().tasks.values().map(|v| v.task.clone()).collect();
        tasks.sort_by_key(|t| t.id);
        tasks
    }

    /// How often each op id was merged.
    pub(crate) fn merges(&self) -> HashMap<Uuid, u32> {
        self.lock().merges.clone()
    }

    /// Applies a batch as `POST /api/batch` does.
    pub(crate) fn process_batch(&self, batch: &BatchRequest) -> BatchResponse {
        let now = (self.clock)();
        let mut state = self.lock();
        let mut processed = Vec::with_capacity(batch.items.len());
        for item in &batch.items {
            if let Some((task_id, answer)) = state.answers.get(&item.id) {
                processed.push(if *task_id == item.task_id {
                    answer.clone()
                } else {
                    error_item(item.id, item.task_id, "op id reused for another task")
                });
                continue;
            }
            let limit = now.as_millis() + MAX_CLOCK_SKEW.as_millis() as i64;
            if item.data.updated_at.as_millis() > limit || item.data.created_at.as_millis() > limit
            {
                processed.push(error_item(
                    item.id,
                    item.task_id,
                    "updated_at lies too far ahead of the server's clock",
                ));
                continue;
            }
            let stored = state.tasks.get(&item.task_id).cloned();
            let merged = lww::merge(
                stored.as_ref(),
                Incoming {
                    data: &item.data,
                    operation: item.operation,
                    changed_fields: item.changed_fields.as_deref(),
                },
            );
            *state.merges.entry(item.id).or_default() += 1;
            let conflict = merged.is_conflict();
            let changed = stored.is_none() || !merged.applied.is_empty();
            let versioned = merged.into_versioned();
            if changed {
                state.last_change += 1;
                let number = state.last_change;
                if let Some(old) = state.change_of.insert(item.task_id, number) {
                    state.log.remove(&old);
                }
                state.log.insert(number, item.task_id);
                state.tasks.insert(item.task_id, versioned.clone());
            }
            let answer = ProcessedItem {
                client_id: item.id,
                server_id: item.task_id,
                status: if conflict {
                    ItemStatus::Conflict
                } else {
                    ItemStatus::Success
                },
                resolved_data: conflict.then_some(versioned.task),
                error: None,
            };
            state
                .answers
                .insert(item.id, (item.task_id, answer.clone()));
            processed.push(answer);
        }
        let last = state.last_change;
        drop(state);
        self.changes.send_replace(last);
        BatchResponse {
            processed_items: processed,
        }
    }

    /// One page of changes after `since`, as `GET /api/changes` answers.
    fn page(&self, since: &str, limit: usize) -> Result<ChangesResponse, SyncError> {
        let after: u64 = if since.is_empty() {
            0
        } else {
            since.parse().map_err(|_| SyncError::Failed {
                status: 400,
                message: format!("bad cursor {since:?}"),
            })?
        };
        let state = self.lock();
        let mut changes = Vec::new();
        let mut cursor = after;
        let mut rest = state.log.range(after + 1..);
        for (&number, task_id) in rest.by_ref().take(limit) {
            if let Some(versioned) = state.tasks.get(task_id) {
                changes.push(versioned.task.clone());
            }
            cursor = number;
        }
        Ok(ChangesResponse {
            changes,
            cursor: cursor.to_string(),
            has_more: rest.next().is_some(),
        })
    }

    /// `GET /api/changes`, held up to `wait` while nothing is new.
    async fn changes(
        &self,
        since: &str,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<ChangesResponse, SyncError> {
        let mut news = self.changes.subscribe();
        let page = self.page(since, limit)?;
        let Some(wait) = wait else { return Ok(page) };
        if !page.changes.is_empty() {
            return Ok(page);
        }
        let _ = tokio::time::timeout(wait, news.changed()).await;
        self.page(since, limit)
    }
}

fn error_item(op: Uuid, task: Uuid, message: &str) -> ProcessedItem {
    ProcessedItem {
        client_id: op,
        server_id: task,
        status: ItemStatus::Error,
        resolved_data: None,
        error: Some(message.into()),
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
    /// Pulls answer at once with the first page again, a new cursor and `has_more`, forever.
    EndlessPages,
    /// Pulls answer at once with an empty page, a new cursor and `has_more`, forever.
    EmptyEndlessPages,
    /// Pulls answer at once with `has_more` and cursors that alternate between two values.
    AlternatingCursors,
}

/// One device's way to the server.
pub(crate) struct FakeLink {
    server: Arc<FakeServer>,
    fault: Mutex<Fault>,
    /// Pull requests seen, to prove nobody loops.
    pulls: std::sync::atomic::AtomicU64,
}

impl FakeLink {
    pub(crate) fn new(server: Arc<FakeServer>) -> Arc<FakeLink> {
        Arc::new(FakeLink {
            server,
            fault: Mutex::new(Fault::None),
            pulls: Default::default(),
        })
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

    fn health(&self, _timeout: Duration) -> BoxFuture<'_, Result<(), SyncError>> {
        Box::pin(async move {
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                _ => Ok(()),
            }
        })
    }

    fn push<'a>(
        &'a self,
        batch: &'a BatchRequest,
    ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
        Box::pin(async move {
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                Fault::Busy => Err(FakeLink::busy()),
                Fault::Unauthorized => Err(SyncError::Unauthorized(401)),
                Fault::Fail => Err(SyncError::Failed {
                    status: 500,
                    message: "simulated failure".into(),
                }),
                Fault::LoseNextAnswer => {
                    self.server.process_batch(batch);
                    self.set_fault(Fault::None);
                    Err(SyncError::Unreachable(
                        "simulated: connection reset after the server applied the batch".into(),
                    ))
                }
                Fault::Lie => {
                    let mut answer = self.server.process_batch(batch);
                    answer.processed_items.pop();
                    Ok(answer)
                }
                Fault::None
                | Fault::NoWait
                | Fault::SamePage
                | Fault::BackwardsCursor
                | Fault::EndlessPages
                | Fault::EmptyEndlessPages
                | Fault::AlternatingCursors => Ok(self.server.process_batch(batch)),
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
            self.pulls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.fault() {
                Fault::Offline => Err(FakeLink::offline()),
                Fault::Busy => Err(FakeLink::busy()),
                Fault::Unauthorized => Err(SyncError::Unauthorized(401)),
                Fault::NoWait => self.server.changes(since, limit, None).await,
                Fault::Lie => Ok(ChangesResponse {
                    changes: Vec::new(),
                    cursor: since.to_string(),
                    has_more: true,
                }),
                Fault::SamePage | Fault::BackwardsCursor => {
                    let first = self.server.page("", limit)?;
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
                    })
                }
                Fault::EndlessPages | Fault::EmptyEndlessPages => Ok(ChangesResponse {
                    changes: if self.fault() == Fault::EndlessPages {
                        self.server.page("", limit)?.changes
                    } else {
                        Vec::new()
                    },
                    cursor: (since.parse::<u64>().unwrap_or(0) + 1).to_string(),
                    has_more: true,
                }),
                Fault::AlternatingCursors => Ok(ChangesResponse {
                    changes: self.server.page("", limit)?.changes,
                    cursor: if since == "a" { "b" } else { "a" }.into(),
                    has_more: true,
                }),
                Fault::None | Fault::Fail | Fault::LoseNextAnswer => {
                    self.server.changes(since, limit, wait).await
                }
            }
        })
    }
}

/// A wall clock the test moves: a shared base time plus this device's skew, in ms.
pub(crate) fn sim_clock(
    base: Arc<std::sync::atomic::AtomicI64>,
    skew: Arc<std::sync::atomic::AtomicI64>,
) -> WallClock {
    Arc::new(move || {
        let ms = base.load(std::sync::atomic::Ordering::SeqCst)
            + skew.load(std::sync::atomic::Ordering::SeqCst);
        Timestamp::from_millis(ms).unwrap_or_else(Timestamp::now)
    })
}
