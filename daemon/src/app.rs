//! The state every front end (postcard and HTTP, on the socket and on TCP) shares: the store,
//! the sync engine, the event bus and log, and what the daemon knows about itself. Local
//! writes go through [`App`] so that each one is announced on the bus exactly once, whichever
//! front end asked for it.

use std::net::SocketAddr;
use std::sync::Arc;

use tasksync_proto::events::{ChangeOrigin, Connectivity, Event};
use tasksync_proto::ipc::{ImportSummary, QueueEntry, QueueState, StatusInfo};
use tasksync_proto::{NewTask, Task, TaskPatch};
use uuid::Uuid;

use crate::events::Events;
use crate::store::{QueuedOp, Store, StoreError};
use crate::sync::SyncHandle;

pub(crate) struct App {
    pub(crate) store: Arc<Store>,
    pub(crate) sync: SyncHandle,
    /// Task changes, sync progress and connectivity, for subscribers; the sync engine
    /// publishes on it too.
    pub(crate) events: Arc<Events>,
    /// The HTTP API's bearer token; `None` while the TCP API is off.
    pub(crate) api_token: Option<String>,
    /// The TCP API's address; `None` while it is off.
    pub(crate) http: Option<SocketAddr>,
    /// What `GET /api/metrics` shows; the sync engine counts into it too.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The numbered events of `GET /api/events`.
    pub(crate) event_log: crate::event_log::EventLog,
}

impl App {
    /// Creates a task (see [`Store::create_once`]); a task made now is announced.
    pub(crate) async fn create_once(&self, new: NewTask) -> Result<(Task, bool), StoreError> {
        let (task, created) = self.store.create_once(new).await?;
        if created {
            self.changed_here(&task);
        }
        Ok((task, created))
    }

    /// Changes a live task (see [`Store::update_if`]) if it still has the entity tag
    /// `if_match` (when given), and announces it if it changed.
    pub(crate) async fn update_if(
        &self,
        id: Uuid,
        patch: TaskPatch,
        if_match: Option<String>,
    ) -> Result<Task, StoreError> {
        let (task, changed) = self.store.update_if(id, patch, if_match).await?;
        if !changed.is_empty() {
            self.changed_here(&task);
        }
        Ok(task)
    }

    /// Puts back the value before a history entry (see [`Store::restore`]), and announces it.
    pub(crate) async fn restore(&self, id: Uuid, entry: i64) -> Result<Task, StoreError> {
        let (task, changed) = self.store.restore(id, entry).await?;
        if !changed.is_empty() {
            self.changed_here(&task);
        }
        Ok(task)
    }

    /// Reverts this device's last local change (see [`Store::undo`]), and announces it.
    pub(crate) async fn undo(&self, task: Option<Uuid>) -> Result<Task, StoreError> {
        let (task, changed) = self.store.undo(task).await?;
        if !changed.is_empty() {
            self.changed_here(&task);
        }
        Ok(task)
    }

    /// Soft-deletes a live task (see [`Store::delete_if`]) if it still has the entity tag
    /// `if_match` (when given), and announces it.
    pub(crate) async fn delete_if(
        &self,
        id: Uuid,
        if_match: Option<String>,
    ) -> Result<Task, StoreError> {
        let task = self.store.delete_if(id, if_match).await?;
        self.changed_here(&task);
        Ok(task)
    }

    /// Imports whole tasks (see [`Store::import_tasks`]) and announces each one it created or
    /// changed.
    pub(crate) async fn import_tasks(&self, tasks: Vec<Task>) -> Result<ImportSummary, StoreError> {
        let imported = self.store.import_tasks(tasks).await?;
        for task in &imported.changed {
            self.changed_here(task);
        }
        Ok(imported.summary)
    }

    /// Sends dead-lettered rows again (see [`Store::retry`]) and wakes the sync engine as a
    /// new change would: they go out with the next flush.
    pub(crate) async fn retry(&self, rows: &[QueuedOp]) -> Result<u64, StoreError> {
        let revived = self
            .store
            .retry(rows.iter().map(|row| row.seq).collect())
            .await?;
        if revived > 0 {
            self.events.local_change();
            self.events
                .publish_task_sync(&self.store, rows.iter().map(|row| row.entry.task_id));
        }
        Ok(revived)
    }

    /// A local command queued an operation for `task`.
    fn changed_here(&self, task: &Task) {
        self.events.local_change();
        self.events.publish(|| Event::TaskChanged {
            task: task.clone(),
            origin: ChangeOrigin::Local,
        });
    }

    /// The one policy for blocking reads, on every front end: a point read (one task by id or
    /// number, a prefix lookup) runs inline, as it takes microseconds, less than a hop to
    /// another thread; a read that scans (a listing or queue page, the status counts) runs
    /// here, on tokio's blocking pool, so a long scan never holds a runtime worker.
    pub(crate) async fn scan<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&App) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || read(&app))
            .await
            .map_err(|e| StoreError::ReadFailed(e.to_string()))?
    }

    /// What `taskctl status` shows. It counts every task and queue row: run it with
    /// [`App::scan`].
    pub(crate) fn status(&self) -> Result<StatusInfo, StoreError> {
        let counts = self.store.counts()?;
        let connectivity = self.sync.connectivity();
        let last_sync_at = match self.store.meta("last_sync_at")? {
            Some(text) => Some(
                text.parse()
                    .map_err(|e| StoreError::Corrupt(format!("meta.last_sync_at: {e}")))?,
            ),
            None => None,
        };
        Ok(StatusInfo {
            online: connectivity.state == Connectivity::Online,
            state: connectivity.state,
            since: connectivity.since,
            next_probe_at: connectivity.next_probe_at,
            server: self.sync.server(),
            pending: counts.pending,
            failed: counts.failed,
            last_sync_at,
            last_error: self.sync.last_error(),
            device_id: self.store.device_id(),
            version: env!("CARGO_PKG_VERSION").into(),
            http: self.http.map(|addr| addr.to_string()),
            tasks: counts.tasks,
            deleted_tasks: counts.deleted_tasks,
            database: self.store.path().display().to_string(),
        })
    }

    /// A queue row as `taskctl queue` shows it: rows the sync engine sent and has no answer
    /// for are in flight.
    pub(crate) fn queue_entry(&self, row: QueuedOp) -> QueueEntry {
        let mut entry = row.entry;
        if self.sync.is_in_flight(row.seq) {
            entry.state = QueueState::InFlight;
        }
        entry
    }
}
