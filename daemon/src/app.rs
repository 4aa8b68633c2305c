//! The state every front end (IPC today, HTTP later) shares: the store and what the daemon
//! knows about itself.

use std::path::PathBuf;

use tasksync_proto::StatusInfo;

use crate::store::{Store, StoreError};

pub struct App {
    pub store: Store,
    pub socket: PathBuf,
}

impl App {
    /// What `taskctl status` shows. No sync server can be configured yet, so the state is
    /// always `local-only`.
    pub fn status(&self) -> Result<StatusInfo, StoreError> {
        let counts = self.store.counts()?;
        Ok(StatusInfo {
            state: "local-only".into(),
            online: false,
            server: None,
            pending: counts.pending,
            failed: counts.failed,
            last_sync_at: None,
            device_id: self.store.device_id(),
            version: env!("CARGO_PKG_VERSION").into(),
            tasks: counts.tasks,
            deleted_tasks: counts.deleted_tasks,
            database: self.store.path().display().to_string(),
        })
    }
}
