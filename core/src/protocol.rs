//! The server's two data calls, written once: apply a pushed batch, and read a page of changes.
//!
//! A backend implements the narrow transaction each call needs ([`BatchTransaction`],
//! [`ChangeFeed`]) and decides nothing about the protocol: which op ids were seen, which items
//! are valid, what merges, what each item is answered, which change numbers the tasks take, and
//! where a page ends are all decided here.
//!
//! The change feed's rules: every task a batch changes takes the next number of the user's
//! change counter, in the order of its last change in the batch, and only its latest change
//! stays in the feed (a task changed again moves to the end). A page lists the changes after
//! its cursor in number order; its cursor is the number of the last change it returns, or the
//! cursor it was asked from when it returns none; `has_more` says whether a change follows.
//! A conflict a batch meets (see the `plan` module) also takes a number of the counter, after
//! the batch's tasks, and stays in the feed: a page carries the conflicts among its numbers,
//! and they count towards its size. A
//! cursor beyond the latest change was never issued by this feed: the page says so
//! (`cursor_unknown`), and the client starts again from the beginning.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tasksync_proto::lww::Versioned;
use tasksync_proto::wire::{BatchItem, BatchResponse, WireConflict, WireTask};
use uuid::Uuid;

use crate::answer::RecordedAnswer;
use crate::plan::plan;
use crate::validate::ClockLimit;

/// A pushed batch, as the server applies it.
#[derive(Debug, Clone)]
pub struct BatchInput {
    /// The pushing device: the writer of every operation in the batch.
    pub device_id: Uuid,
    pub items: Vec<BatchItem>,
    /// The latest timestamp an item may carry.
    pub clock: ClockLimit,
}

/// The result of applying a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One answer per item, in order.
    pub response: BatchResponse,
    /// Whether any task changed (then the user's live pulls are woken).
    pub changed: bool,
}

/// What a batch needs from storage, read in its transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The user's change counter: the number of its latest change (0 before any).
    pub last_change: i64,
    /// The recorded answers of the batch's op ids that have one.
    pub recorded: Vec<RecordedAnswer>,
    /// The stored state of the batch's tasks that exist.
    pub stored: Vec<Versioned>,
}

/// A task to write, under the change number it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedTask<'a> {
    pub change: i64,
    pub task: &'a Versioned,
}

/// What a batch writes, in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes<'a> {
    /// The pushing device, kept beside each recorded answer.
    pub device_id: Uuid,
    /// Tasks to insert or replace (each once), with their new change numbers.
    pub tasks: Vec<ChangedTask<'a>>,
    /// Answers to record under their op ids (all new).
    pub record: &'a [RecordedAnswer],
    /// Conflicts to add to the feed, with their change numbers.
    pub conflicts: Vec<FeedConflict>,
    /// The user's new change counter, when the batch changed a task or met a conflict.
    pub last_change: Option<i64>,
}

/// A conflict in the change feed, under its change number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConflict {
    pub number: i64,
    pub conflict: WireConflict,
}

/// One transaction of a backend, for one user's batch: everything [`apply_batch`] reads and
/// writes. Batches of one user must run one at a time (a lock taken by `load` and held until
/// the backend commits), so that change numbers commit in order.
///
/// The futures need not be `Send` in general; a backend that needs a `Send` batch future gets
/// one when its own futures are.
pub trait BatchTransaction {
    type Error;

    /// Takes the user's batch lock and reads the change counter, the recorded answers of
    /// `op_ids` and the stored tasks of `task_ids` (ids without a row are left out). Each list
    /// names an id once.
    fn load(
        &mut self,
        op_ids: &[Uuid],
        task_ids: &[Uuid],
    ) -> impl Future<Output = Result<Loaded, Self::Error>>;

    /// Writes the plan: each task under its change number, each answer under its op id, and
    /// the new change counter when there is one.
    fn write(&mut self, writes: Writes<'_>) -> impl Future<Output = Result<(), Self::Error>>;
}

/// One change of the feed: a task in its current state, under the number of its latest change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub number: i64,
    pub task: WireTask,
}

/// A user's change feed, read by [`changes`].
pub trait ChangeFeed {
    type Error;

    /// The first `count` changes numbered above `since`, in number order.
    fn after(
        &self,
        since: i64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<Change>, Self::Error>>;

    /// The first `count` conflicts numbered above `since`, in number order.
    fn conflicts_after(
        &self,
        since: i64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<FeedConflict>, Self::Error>>;

    /// The number of the user's latest change (0 before any).
    fn last_change(&self) -> impl Future<Output = Result<i64, Self::Error>>;
}

/// One page of the change feed (`GET /api/changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPage {
    pub changes: Vec<WireTask>,
    /// The conflicts among the page's numbers.
    pub conflicts: Vec<WireConflict>,
    /// The change number of the last change returned, or the requested cursor when none.
    pub cursor: i64,
    pub has_more: bool,
    /// The cursor lies beyond the user's latest change, so this feed never issued it (the
    /// server was restored from an older backup, or the cursor came from elsewhere): the
    /// client must pull again from the beginning. The page is then empty.
    pub cursor_unknown: bool,
}

/// Applies `batch` through `tx`: loads what the plan needs, plans (see the `plan` module),
/// and writes the plan. The backend commits afterwards.
pub async fn apply_batch<T: BatchTransaction>(
    tx: &mut T,
    batch: &BatchInput,
) -> Result<BatchOutcome, T::Error> {
    let mut seen_ops = HashSet::new();
    let mut seen_tasks = HashSet::new();
    let mut op_ids = Vec::new();
    let mut task_ids = Vec::new();
    for item in &batch.items {
        if seen_ops.insert(item.id) {
            op_ids.push(item.id);
        }
        if seen_tasks.insert(item.task_id) {
            task_ids.push(item.task_id);
        }
    }
    let loaded = tx.load(&op_ids, &task_ids).await?;
    // Only what was asked for counts: a backend's stray row cannot change the plan.
    let recorded: HashMap<Uuid, RecordedAnswer> = loaded
        .recorded
        .into_iter()
        .filter(|answer| seen_ops.contains(&answer.op_id))
        .map(|answer| (answer.op_id, answer))
        .collect();
    let stored: HashMap<Uuid, Versioned> = loaded
        .stored
        .into_iter()
        .filter(|task| seen_tasks.contains(&task.task.id))
        .map(|task| (task.task.id, task))
        .collect();
    let plan = plan(
        batch.device_id,
        &batch.items,
        batch.clock,
        &recorded,
        stored,
    );
    let tasks: Vec<ChangedTask<'_>> = (loaded.last_change + 1..)
        .zip(&plan.save)
        .map(|(change, task)| ChangedTask { change, task })
        .collect();
    let conflicts: Vec<FeedConflict> = (loaded.last_change + 1 + tasks.len() as i64..)
        .zip(plan.conflicts)
        .map(|(number, conflict)| FeedConflict { number, conflict })
        .collect();
    let changed = !tasks.is_empty() || !conflicts.is_empty();
    let last_change = conflicts
        .last()
        .map(|c| c.number)
        .or(tasks.last().map(|t| t.change));
    if changed || !plan.record.is_empty() {
        tx.write(Writes {
            device_id: batch.device_id,
            tasks,
            record: &plan.record,
            conflicts,
            last_change,
        })
        .await?;
    }
    Ok(BatchOutcome {
        response: BatchResponse {
            processed_items: plan.answers,
        },
        changed,
    })
}

/// The page of at most `limit` changes after `since`.
pub async fn changes<F: ChangeFeed>(
    feed: &F,
    since: i64,
    limit: usize,
) -> Result<ChangesPage, F::Error> {
    // One more than the page holds tells whether another change follows. Tasks and conflicts
    // are read apart; each list holds every entry of its kind up to the page's last number.
    let mut rows = feed.after(since, limit.saturating_add(1)).await?;
    let mut conflicts = feed.conflicts_after(since, limit.saturating_add(1)).await?;
    let mut numbers: Vec<i64> = rows
        .iter()
        .map(|change| change.number)
        .chain(conflicts.iter().map(|c| c.number))
        .collect();
    numbers.sort_unstable();
    let has_more = numbers.len() > limit;
    numbers.truncate(limit);
    let cursor = numbers.last().copied().unwrap_or(since);
    rows.retain(|change| change.number <= cursor);
    conflicts.retain(|c| c.number <= cursor);
    // Only an empty page can be past the end; the counter is read only then.
    let cursor_unknown = numbers.is_empty() && since > 0 && since > feed.last_change().await?;
    Ok(ChangesPage {
        changes: rows.into_iter().map(|change| change.task).collect(),
        conflicts: conflicts.into_iter().map(|c| c.conflict).collect(),
        cursor,
        has_more,
        cursor_unknown,
    })
}

/// Runs `future` to completion on this thread, parking while it waits.
///
/// For backends whose transaction never waits on anything else (SQLite on a blocking thread,
/// [`crate::MemoryStore`]): their calls are ready at once, so this returns after one poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
