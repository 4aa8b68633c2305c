//! The store: the only code that touches SQLite.
//!
//! [`Store`] hands writes to the writer thread ([`writer`], group commit) and serves reads
//! from a pool of read-only connections ([`reads`]). The schema and its migrations live in
//! [`schema`]; the clock that issues `updated_at` in [`clock`].

pub mod clock;
pub mod commands;
pub mod filter;
pub mod reads;
pub mod rows;
pub mod schema;
pub mod sync_writes;
pub mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tasksync_proto::events::{ChangeOrigin, Event};
use tasksync_proto::ipc::{PageCursor, QueueState, TaskPage, TaskRef};
use tasksync_proto::{NewTask, SyncStatus, Task, TaskPatch, Timestamp, ValidationError};
use tokio::sync::oneshot;
use uuid::Uuid;

use self::clock::{HybridClock, WallClock};
use self::commands::WriteOp;
pub use self::filter::TaskFilter;
pub use self::reads::Counts;
use self::reads::ReadPool;
pub use self::rows::QueuedOp;
pub use self::sync_writes::{ItemOutcome, QueueRef, SyncApplied, SyncWrite};
use self::writer::{Applied, Change, Message};
use crate::events::Events;

/// How many bytes of task text a listing page carries at most, well inside a 1 MiB frame.
const PAGE_BYTE_BUDGET: usize = 512 * 1024;

/// Read-only connections kept open.
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no task matches {0}")]
    NotFound(String),
    #[error("task id prefix {prefix} matches several tasks: {}", matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
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
    #[error("database problem: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Clock(#[from] clock::ClockExhausted),
    #[error("the store is shutting down")]
    Closed,
    /// A create with a client-chosen id that a task with other content already has.
    #[error("{0}")]
    Conflict(String),
    /// A create with a client-chosen id that was already made with the same content: not an
    /// error for the client, who gets the task (see [`Store::create_once`]).
    #[error("task {} already exists", .0.id)]
    AlreadyCreated(Box<Task>),
}

impl StoreError {
    fn open(path: &Path, source: rusqlite::Error) -> Self {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Queue rows sent to the server and not yet answered (by local sequence number). Being in
/// flight is a state of this run only: after a crash every row is simply pending again, so it
/// is kept in memory rather than written for every row of every batch.
pub type InFlight = Arc<Mutex<HashSet<i64>>>;

/// Handle to the database, shared by every connection of the daemon.
pub struct Store {
    writer: mpsc::Sender<Message>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    reads: ReadPool,
    device_id: Uuid,
    path: PathBuf,
    events: Arc<Events>,
    in_flight: InFlight,
    /// The wall clock the writer's hybrid clock reads.
    wall: WallClock,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_events(path, Arc::new(Events::default()))
    }

    /// Opens the database and reports changes to `events`.
    pub fn open_with_events(path: &Path, events: Arc<Events>) -> Result<Store, StoreError> {
        Store::open_with_clock(path, events, clock::system_clock())
    }

    /// Opens the database with `wall` as its wall clock (tests simulate skewed clocks).
    pub(crate) fn open_with_clock(
        path: &Path,
        events: Arc<Events>,
        wall: WallClock,
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
        conn.execute_batch(
            "UPDATE tasks SET sync_status = 'pending' WHERE sync_status = 'in-progress';",
        )?;
        let readers = (0..READERS)
            .map(|_| schema::open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        let in_flight = InFlight::default();
        let clock = HybridClock::new(watermark, wall.clone());
        let (writer, handle) = writer::spawn(conn, clock, in_flight.clone())
            .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            writer,
            writer_thread: Mutex::new(Some(handle)),
            reads: ReadPool::new(readers),
            device_id,
            path: path.to_path_buf(),
            events,
            in_flight,
            wall,
        })
    }

    /// The wall-clock time, as this store's clock reads it.
    pub fn now(&self) -> Timestamp {
        (self.wall)()
    }

    /// Where this store reports its changes.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    pub fn device_id(&self) -> Uuid {
        self.device_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn apply(&self, change: Change) -> Result<Applied, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Message::Change { change, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn write(&self, op: WriteOp) -> Result<Task, StoreError> {
        match self.apply(Change::Command(op)).await? {
            Applied::Task(task) => {
                self.events.local_change();
                self.events.publish(|| Event::TaskChanged {
                    task: task.clone(),
                    origin: ChangeOrigin::Local,
                });
                Ok(task)
            }
            _ => Err(StoreError::Storage("a command produced no task".into())),
        }
    }

    /// Applies a change from the sync engine; returns what it did. Task events go out only
    /// for tasks whose stored row changed.
    pub async fn sync_write(&self, write: SyncWrite) -> Result<SyncApplied, StoreError> {
        match self.apply(Change::Sync(write)).await? {
            Applied::Sync(applied) => {
                if self.events.has_subscribers() {
                    for id in &applied.adopted {
                        if let Ok(task) = self.get(*id) {
                            self.events.publish(|| Event::TaskChanged {
                                task,
                                origin: ChangeOrigin::Remote,
                            });
                        }
                    }
                }
                Ok(applied)
            }
            _ => Err(StoreError::Storage("a sync update produced a task".into())),
        }
    }

    /// Creates a task and queues its `create`; returns it once durable.
    pub async fn create(&self, new: NewTask) -> Result<Task, StoreError> {
        Ok(self.create_once(new).await?.0)
    }

    /// Creates a task, safely retried when the client chose its id: if a task with that id
    /// and the same title and description exists, it is returned with `false` and nothing is
    /// written or queued; with other content the answer is [`StoreError::Conflict`].
    pub async fn create_once(&self, new: NewTask) -> Result<(Task, bool), StoreError> {
        new.validate()?;
        match self.write(WriteOp::Create(new)).await {
            Ok(task) => Ok((task, true)),
            Err(StoreError::AlreadyCreated(task)) => Ok((*task, false)),
            Err(error) => Err(error),
        }
    }

    /// Changes a live task and queues an `update` naming the changed fields.
    pub async fn update(&self, id: Uuid, patch: TaskPatch) -> Result<Task, StoreError> {
        patch.validate()?;
        self.write(WriteOp::Update { id, patch }).await
    }

    /// Soft-deletes a live task and queues a `delete`; the row stays as a tombstone.
    pub async fn delete(&self, id: Uuid) -> Result<Task, StoreError> {
        self.write(WriteOp::Delete { id }).await
    }

    pub fn get(&self, id: Uuid) -> Result<Task, StoreError> {
        self.reads.get(id)
    }

    /// A listing just showed the whole working set with the numbers `shown`: numbers freed
    /// before it become reusable (DESIGN.md section 8). Returns how many did; writes only
    /// when some number is held.
    pub async fn release_numbers(&self, shown: Vec<u32>) -> Result<u64, StoreError> {
        if !self.reads.holds_freed_numbers()? {
            return Ok(0);
        }
        match self.apply(Change::ReleaseNumbers(shown)).await? {
            Applied::Released(count) => Ok(count),
            _ => Err(StoreError::Storage(
                "releasing numbers produced something else".into(),
            )),
        }
    }

    /// The id a working-set number, full id or unique prefix names.
    pub fn resolve(&self, reference: &TaskRef) -> Result<Uuid, StoreError> {
        self.reads.resolve(reference)
    }

    pub fn list(
        &self,
        include_deleted: bool,
        status: Option<SyncStatus>,
    ) -> Result<Vec<Task>, StoreError> {
        self.reads.list(include_deleted, status)
    }

    /// One page of a listing; see [`ReadPool::list_page`].
    pub fn list_page(
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
    pub fn filtered(
        &self,
        filter: &TaskFilter,
        after: Option<PageCursor>,
        limit: Option<usize>,
    ) -> Result<(Vec<Task>, Option<PageCursor>), StoreError> {
        self.reads
            .with(|conn| filter::page(conn, filter, after, limit))
    }

    pub fn needing_sync(&self) -> Result<Vec<Task>, StoreError> {
        self.reads.needing_sync()
    }

    /// Queued operations, oldest first; rows in flight say so.
    pub fn queue(&self, failed_only: bool) -> Result<Vec<QueuedOp>, StoreError> {
        let mut rows = self.reads.queue(failed_only)?;
        self.mark_in_flight(&mut rows);
        Ok(rows)
    }

    /// One page of the queue (see [`ReadPool::queue_page`]); rows in flight say so.
    pub fn queue_page(
        &self,
        failed_only: bool,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<QueuedOp>, Option<i64>), StoreError> {
        let (mut rows, next) =
            self.reads
                .queue_page(failed_only, after, limit, PAGE_BYTE_BUDGET)?;
        self.mark_in_flight(&mut rows);
        Ok((rows, next))
    }

    fn mark_in_flight(&self, rows: &mut [QueuedOp]) {
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows.iter_mut().filter(|row| in_flight.contains(&row.seq)) {
            row.state = QueueState::InFlight;
        }
    }

    /// Forgets rows noted as in flight. A sync round calls this when it starts: no batch of
    /// an earlier round can still be in flight, and a batch that was taken but never sent
    /// (its round failed) must become eligible again.
    pub fn clear_in_flight(&self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Takes the next batch to send (see [`rows::select_next_batch`]), marking it in flight.
    pub async fn take_batch(
        &self,
        limit: usize,
        force: bool,
        done: Vec<i64>,
    ) -> Result<Vec<QueuedOp>, StoreError> {
        let write = SyncWrite::TakeBatch { limit, force, done };
        match self.apply(Change::Sync(write)).await? {
            Applied::Sync(applied) => Ok(applied.taken),
            _ => Err(StoreError::Storage("taking a batch produced a task".into())),
        }
    }

    pub fn next_retry_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.reads.next_retry_at()
    }

    /// Dead-lettered operations whose op id or task id starts with `prefix`.
    pub fn failed_matching(&self, prefix: &TaskRef) -> Result<Vec<QueuedOp>, StoreError> {
        self.reads.failed_matching(prefix)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.reads.meta(key)
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.reads.counts()
    }

    /// Finishes every write already queued, checkpoints the WAL and stops the writer. Writes
    /// asked for afterwards fail with [`StoreError::Closed`].
    pub fn shut_down(&self) {
        let _ = self.writer.send(Message::Shutdown);
        let handle = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests;
