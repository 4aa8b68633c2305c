//! The state every front end (postcard and HTTP, on the socket and on TCP) shares: the store,
//! the sync engine, the event log and what the daemon knows about itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tasksync_proto::events::{Connectivity, ConnectivityState, StateSnapshot};
use tasksync_proto::ipc::{QueueEntry, StatusInfo};

use crate::store::{QueuedOp, Store, StoreError};
use crate::sync::SyncHandle;

pub struct App {
    pub store: Arc<Store>,
    pub sync: SyncHandle,
    pub socket: PathBuf,
    /// The HTTP API's bearer token; `None` while the TCP API is off.
    pub api_token: Option<String>,
    /// The TCP API's address; `None` while it is off.
    pub http: Option<SocketAddr>,
    /// The numbered events of `GET /api/events`.
    pub event_log: crate::http::events::EventLog,
}

impl App {
    /// What `taskctl status` shows.
    pub fn status(&self) -> Result<StatusInfo, StoreError> {
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
}

/// The state a subscription opens with.
pub fn snapshot(app: &App) -> Result<StateSnapshot, StoreError> {
    let status = app.status()?;
    Ok(StateSnapshot {
        connectivity: ConnectivityState {
            state: status.state,
            since: status.since,
            next_probe_at: status.next_probe_at,
        },
        pending: status.pending,
        failed: status.failed,
        last_sync_at: status.last_sync_at,
    })
}

/// A queue row as `taskctl queue` shows it.
pub fn queue_entry(row: QueuedOp) -> QueueEntry {
    QueueEntry {
        id: row.op_id,
        task_id: row.task_id,
        operation: row.operation,
        changed_fields: row.changed_fields,
        created_at: row.created_at,
        retry_count: row.retry_count,
        error_message: row.error_message,
        state: row.state,
        next_attempt_at: row.next_attempt_at,
    }
}
