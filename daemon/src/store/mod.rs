//! The store: the only code that touches SQLite.
//!
//! [`Store`] hands writes to the writer thread ([`writer`], group commit), one typed request
//! each ([`commands`] for users' commands, [`sync_writes`] for the sync engine's), and serves
//! reads from a pool of read-only connections ([`reads`]). The schema and its migrations live
//! in [`schema`]; the clock that issues `updated_at` in [`clock`]. The store knows nothing of
//! events or of the sync engine's rows in flight: the app and the engine keep those.

pub(crate) mod clock;
pub(crate) mod commands;
pub(crate) mod filter;
pub(crate) mod history;
pub(crate) mod import;
pub(crate) mod reads;
pub(crate) mod rows;
pub(crate) mod schema;
pub(crate) mod sync_writes;
pub(crate) mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tasksync_proto::ipc::{PageCursor, TaskHistory, TaskPage, TaskRef};
use tasksync_proto::wire::{ChangesResponse, Field};
use tasksync_proto::{NewTask, SyncStatus, Task, TaskPatch, Timestamp, ValidationError};
use uuid::Uuid;

use self::clock::{HybridClock, WallClock};
use self::commands::{CreateTask, DeleteTask, ReleaseNumbers, UpdateTask};
pub(crate) use self::filter::TaskFilter;
use self::import::ImportTasks;
pub(crate) use self::import::Imported;
pub(crate) use self::reads::Counts;
use self::reads::ReadPool;
pub(crate) use self::rows::QueuedOp;
use self::sync_writes::{FinishBatch, RecordSync, ReviveFailed, StorePulled, TakeBatch};
pub(crate) use self::sync_writes::{ItemOutcome, Pulled, QueueRef};
use self::writer::Writer;

/// How many bytes of task text a listing page carries at most, well inside a 1 MiB frame.
const PAGE_BYTE_BUDGET: usize = 512 * 1024;

/// Read-only connections kept open.
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no task matches {0}")]
    NotFound(String),
    #[error(
        "task id prefix {prefix} matches several tasks; give more of the id:{}",
        reads::candidate_lines(matches, *more)
    )]
    Ambiguous {
        prefix: String,
        /// The first few tasks it matches, by id.
        matches: Vec<reads::Candidate>,
        /// More tasks match than `matches` holds.
        more: bool,
    },
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage failure, nothing was written: {0}")]
    Storage(String),
    /// Stored data this build cannot read (a missing device id, an unparsable timestamp).
    #[error("database problem: {0}")]
    Corrupt(String),
    /// The database cannot use write-ahead logging (some network file systems refuse it).
    #[error("cannot switch {} to WAL mode (it stays in {mode} mode); keep the database on a local disk", path.display())]
    NoWal { path: PathBuf, mode: String },
    /// The database was written by a newer tasksyncd.
    #[error("the database has schema version {found}, newer than this tasksyncd understands ({supported}); upgrade tasksyncd")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(transparent)]
    Clock(#[from] clock::ClockExhausted),
    #[error("the store is shutting down")]
    Closed,
    /// A read on the blocking pool did not finish (it panicked, or the runtime stopped).
    #[error("a database read failed: {0}")]
    ReadFailed(String),
    /// A create with a client-chosen id that a task with other content already has.
    #[error("{0}")]
    Conflict(String),
    /// A history entry whose earlier value cannot be put back (the message says why).
    #[error("{0}")]
    CannotRestore(String),
    /// An import refused as a whole; the message names the task and the field.
    #[error("{0}")]
    InvalidImport(String),
    /// The task no longer has the entity tag the request was made against.
    #[error("task {id} changed since you read it (its ETag is now {current}); read it again")]
    PreconditionFailed { id: Uuid, current: String },
}

impl StoreError {
    fn open(path: &Path, source: rusqlite::Error) -> Self {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Handle to the database, shared by every connection of the daemon. Writes go to the writer
/// thread, each request answered with its own type; reads run on the calling thread.
pub(crate) struct Store {
    writer: Writer,
    reads: ReadPool,
    device_id: Uuid,
    path: PathBuf,
    /// The wall clock the writer's hybrid clock reads.
    wall: WallClock,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_clock(path, clock::system_clock())
    }

    /// Opens the database with `wall` as its wall clock (tests simulate skewed clocks).
    pub(crate) fn open_with_clock(path: &Path, wall: WallClock) -> Result<Store, StoreError> {
        Store::open_as(path, wall, READERS, |conn, clock| {
            Writer::spawn(conn, clock)
                .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))
        })
    }

    /// Opens the database with a writer that commits on the caller's thread, for the
    /// simulation (see `writer::How::Inline`).
    #[cfg(test)]
    pub(crate) fn open_inline(path: &Path, wall: WallClock) -> Result<Store, StoreError> {
        // One thread: one reader is enough.
        Store::open_as(path, wall, 1, |conn, clock| {
            Ok(Writer::inline(conn, clock)?)
        })
    }

    fn open_as(
        path: &Path,
        wall: WallClock,
        readers: usize,
        start: impl FnOnce(rusqlite::Connection, HybridClock) -> Result<Writer, StoreError>,
    ) -> Result<Store, StoreError> {
        let mut conn = schema::open_writer(path)?;
        schema::migrate(&mut conn)?;
        let meta = |key: &str| -> Result<Option<String>, StoreError> {
            use rusqlite::OptionalExtension;
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()?)
        };
        let device_id = meta("device_id")?
            .and_then(|text| Uuid::parse_str(&text).ok())
            .ok_or_else(|| StoreError::Corrupt("meta.device_id is missing or not a UUID".into()))?;
        let watermark = match meta("clock")? {
            Some(text) => text
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("meta.clock: {e}")))?,
            None => Timestamp::from_millis(0).unwrap_or_else(Timestamp::now),
        };
        // Tasks whose operations were in flight when the last run ended: those rows are
        // simply pending again and go out once more; op ids make that harmless.
        conn.execute(
            "UPDATE tasks SET sync_status = ?1 WHERE sync_status = ?2",
            [SyncStatus::Pending, SyncStatus::InProgress],
        )?;
        let readers = (0..readers)
            .map(|_| schema::open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        let clock = HybridClock::new(watermark, wall.clone());
        let writer = start(conn, clock)?;
        Ok(Store {
            writer,
            reads: ReadPool::new(readers),
            device_id,
            path: path.to_path_buf(),
            wall,
        })
    }

    /// Runs a read that scans many rows off the async threads (on the blocking pool), so it
    /// does not hold up other tasks; `None` if the read could not run. An inline store (the
    /// simulation's) runs it at once, so that runs replay exactly.
    pub(crate) async fn scan<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Option<T> {
        #[cfg(test)]
        if self.writer.is_inline() {
            return Some(read(self));
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store)).await.ok()
    }

    /// The wall-clock time, as this store's clock reads it.
    pub(crate) fn now(&self) -> Timestamp {
        (self.wall)()
    }

    pub(crate) fn device_id(&self) -> Uuid {
        self.device_id
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a task and queues its `create`; returns it once durable.
    #[cfg(test)]
    pub(crate) async fn create(&self, new: NewTask) -> Result<Task, StoreError> {
        Ok(self.create_once(new).await?.0)
    }

    /// Creates a task, safely retried when the client chose its id: if a task with that id
    /// and the same title and description exists, it is returned with `false` and nothing is
    /// written or queued; with other content the answer is [`StoreError::Conflict`].
    pub(crate) async fn create_once(&self, new: NewTask) -> Result<(Task, bool), StoreError> {
        new.validate()?;
        self.writer.submit(CreateTask(new)).await
    }

    /// Changes a live task and queues an `update` naming the changed fields.
    #[cfg(test)]
    pub(crate) async fn update(&self, id: Uuid, patch: TaskPatch) -> Result<Task, StoreError> {
        Ok(self.update_if(id, patch, None).await?.0)
    }

    /// Changes a live task if it still has the entity tag `if_match` (when given); a patch
    /// that changes no value changes nothing: no new `updated_at`, nothing queued. Returns
    /// the task and the fields that changed (none for such a patch).
    pub(crate) async fn update_if(
        &self,
        id: Uuid,
        patch: TaskPatch,
        if_match: Option<String>,
    ) -> Result<(Task, Vec<Field>), StoreError> {
        patch.validate()?;
        self.writer
            .submit(UpdateTask {
                id,
                patch,
                if_match,
            })
            .await
    }

    /// Soft-deletes a live task and queues a `delete`; the row stays as a tombstone.
    #[cfg(test)]
    pub(crate) async fn delete(&self, id: Uuid) -> Result<Task, StoreError> {
        self.delete_if(id, None).await
    }

    /// Soft-deletes a live task if it still has the entity tag `if_match` (when given).
    pub(crate) async fn delete_if(
        &self,
        id: Uuid,
        if_match: Option<String>,
    ) -> Result<Task, StoreError> {
        self.writer.submit(DeleteTask { id, if_match }).await
    }

    /// Imports whole tasks in one transaction (see `import.rs`): all or nothing. Answers the
    /// counts and every task created or changed.
    pub(crate) async fn import_tasks(&self, tasks: Vec<Task>) -> Result<Imported, StoreError> {
        import::check(&tasks)?;
        self.writer.submit(ImportTasks(tasks)).await
    }

    /// A listing just showed the whole working set with the numbers `shown`: numbers freed
    /// before it become reusable (README, "Naming tasks"). Returns how many did; writes only
    /// when some number is held.
    pub(crate) async fn release_numbers(&self, shown: Vec<u32>) -> Result<u64, StoreError> {
        if !self.reads.holds_freed_numbers()? {
            return Ok(0);
        }
        self.writer.submit(ReleaseNumbers(shown)).await
    }

    /// Sends the dead-lettered rows `seqs` again with a fresh attempt budget; returns how
    /// many were dead-lettered.
    pub(crate) async fn retry(&self, seqs: Vec<i64>) -> Result<u64, StoreError> {
        self.writer.submit(ReviveFailed { seqs }).await
    }

    /// Takes the next batch to send (see [`rows::select_next_batch`]), leaving out the rows
    /// in `exclude`, and marks its tasks in progress.
    pub(crate) async fn take_batch(
        &self,
        limit: usize,
        longest_wait: std::time::Duration,
        force: bool,
        exclude: HashSet<i64>,
    ) -> Result<Vec<QueuedOp>, StoreError> {
        self.writer
            .submit(TakeBatch {
                limit,
                longest_wait,
                force,
                exclude,
            })
            .await
    }

    /// Records the server's answers for rows that were in flight; returns the tasks that
    /// took the server's merged version.
    pub(crate) async fn finish_batch(
        &self,
        outcomes: Vec<(QueueRef, ItemOutcome)>,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.writer.submit(FinishBatch { outcomes }).await
    }

    /// Stores a page of pulled changes, its conflicts and the cursor after it (kept under
    /// `cursor_key`); answers the tasks whose stored row changed and the conflicts this device
    /// learns of.
    pub(crate) async fn store_pulled(
        &self,
        page: ChangesResponse,
        cursor_key: String,
    ) -> Result<Pulled, StoreError> {
        self.writer
            .submit(StorePulled {
                changes: page.changes,
                conflicts: page.conflicts,
                device_id: self.device_id,
                cursor_key,
                cursor: page.cursor,
            })
            .await
    }

    /// Records that a sync round reached the server and ended at `at`.
    pub(crate) async fn record_sync(&self, at: Timestamp) -> Result<(), StoreError> {
        self.writer.submit(RecordSync { at }).await
    }

    pub(crate) fn get(&self, id: Uuid) -> Result<Task, StoreError> {
        self.reads.get(id)
    }

    /// The id a working-set number, full id or unique prefix names.
    pub(crate) fn resolve(&self, reference: &TaskRef) -> Result<Uuid, StoreError> {
        self.reads.resolve(reference)
    }

    /// Every task, newest first (the tests' view of the whole table).
    #[cfg(test)]
    pub(crate) fn list(
        &self,
        include_deleted: bool,
        status: Option<SyncStatus>,
    ) -> Result<Vec<Task>, StoreError> {
        self.reads.list(include_deleted, status)
    }

    /// One page of a listing; see [`ReadPool::list_page`].
    pub(crate) fn list_page(
        &self,
        include_deleted: bool,
        status: Option<SyncStatus>,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<TaskPage, StoreError> {
        self.reads
            .list_page(include_deleted, status, after, limit, PAGE_BYTE_BUDGET)
    }

    /// Tasks matching `filter`, newest first, after `after`, at most `limit`; the cursor is
    /// `Some` while more remain.
    pub(crate) fn filtered(
        &self,
        filter: &TaskFilter,
        after: Option<PageCursor>,
        limit: Option<usize>,
    ) -> Result<(Vec<Task>, Option<PageCursor>), StoreError> {
        self.reads
            .with(|conn| filter::page(conn, filter, after, limit))
    }

    /// Queued operations, oldest first (in flight or not: only the sync engine knows).
    pub(crate) fn queue(&self, failed_only: bool) -> Result<Vec<QueuedOp>, StoreError> {
        self.reads.queue(failed_only)
    }

    /// One page of the queue (see [`ReadPool::queue_page`]).
    pub(crate) fn queue_page(
        &self,
        failed_only: bool,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<QueuedOp>, Option<i64>), StoreError> {
        self.reads
            .queue_page(failed_only, after, limit, PAGE_BYTE_BUDGET)
    }

    pub(crate) fn next_retry_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.reads.next_retry_at()
    }

    /// Dead-lettered operations whose op id or task id starts with `prefix`.
    pub(crate) fn failed_matching(&self, prefix: &TaskRef) -> Result<Vec<QueuedOp>, StoreError> {
        self.reads.failed_matching(prefix)
    }

    /// The local history of the task `id` (deleted or not), newest first; `NotFound` for a
    /// task this device never had.
    pub(crate) fn history(&self, id: Uuid) -> Result<TaskHistory, StoreError> {
        self.reads.with(|conn| {
            let known: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = ?1)")?
                .query_row([id.to_string()], |row| row.get(0))?;
            if !known {
                return Err(StoreError::NotFound(id.to_string()));
            }
            Ok(TaskHistory {
                task_id: id,
                entries: history::read(conn, id)?,
            })
        })
    }

    /// Puts back the value before history entry `entry` of task `id` (for a conflict entry:
    /// the value that lost), as a new local edit: queued and synced like any other, and
    /// recorded in the history in turn. Answers the task as it is then, and the fields that
    /// changed (none when the field holds that value already).
    pub(crate) async fn restore(
        &self,
        id: Uuid,
        entry: i64,
    ) -> Result<(Task, Vec<Field>), StoreError> {
        let found = self
            .reads
            .with(|conn| Ok(history::entry(conn, id, entry)?))?;
        let Some((field, old)) = found else {
            return Err(StoreError::NotFound(format!(
                "history entry {entry} of task {id} (taskctl log {id} lists them)"
            )));
        };
        let mut patch = TaskPatch::default();
        history::restore_into(&mut patch, &field, &old)
            .map_err(|why| StoreError::CannotRestore(format!("history entry {entry}: {why}")))?;
        self.update_if(id, patch, None).await
    }

    /// Reverts this device's last local change (of `task`, or of any task) with a new edit
    /// that gives its fields back their earlier values, synced like any other; the change that
    /// created a task is reverted by deleting it. A deletion is not undone. Undoing twice
    /// reverts the undo. Answers the task and the fields that changed.
    pub(crate) async fn undo(&self, task: Option<Uuid>) -> Result<(Task, Vec<Field>), StoreError> {
        let last = self
            .reads
            .with(|conn| Ok(history::last_local_change(conn, task)?))?;
        let Some((id, fields)) = last else {
            return Err(StoreError::NotFound(match task {
                Some(task) => format!("a change made on this device to task {task} to undo"),
                None => "a change made on this device to undo".into(),
            }));
        };
        // Only the change that made a task has no earlier title.
        let made_the_task = fields
            .iter()
            .any(|(field, old)| *field == Field::Title && old == "null");
        if made_the_task {
            let task = self.delete_if(id, None).await?;
            return Ok((task, vec![Field::IsDeleted]));
        }
        let mut patch = TaskPatch::default();
        for (field, old) in &fields {
            history::restore_into(&mut patch, field, old).map_err(|why| {
                StoreError::CannotRestore(format!(
                    "the last change of task {id} cannot be undone: {why}"
                ))
            })?;
        }
        self.update_if(id, patch, None).await
    }

    /// Deletes history entries older than `days` days (by this store's clock) and, per task,
    /// all but the newest [`history::KEEP_PER_TASK`]; answers how many went. The daemon runs
    /// it at startup and then hourly, off the hot path.
    pub(crate) async fn prune_history(&self, days: u32) -> Result<u64, StoreError> {
        let now = self.now().as_millis();
        let cutoff = now.saturating_sub(i64::from(days) * 86_400_000).max(0);
        // Always a valid timestamp (between 1970 and now); never prune everything if not.
        let Some(cutoff) = Timestamp::from_millis(cutoff) else {
            return Ok(0);
        };
        self.prune_history_before(cutoff, history::KEEP_PER_TASK)
            .await
    }

    /// Deletes history entries made before `cutoff` and, per task, all but the newest `keep`.
    pub(crate) async fn prune_history_before(
        &self,
        cutoff: Timestamp,
        keep: u32,
    ) -> Result<u64, StoreError> {
        self.writer
            .submit(history::PruneHistory { cutoff, keep })
            .await
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.reads.meta(key)
    }

    pub(crate) fn counts(&self) -> Result<Counts, StoreError> {
        self.reads.counts()
    }

    /// Finishes every write already queued, checkpoints the WAL and stops the writer. Writes
    /// asked for afterwards fail with [`StoreError::Closed`].
    pub(crate) fn shut_down(&self) {
        self.writer.shut_down();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests;
