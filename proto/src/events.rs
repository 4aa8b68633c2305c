//! What a subscribed connection receives (ARCHITECTURE.md, "Local IPC"): a stream that opens with the
//! current state, then reports task changes, sync progress and connectivity changes.

use serde::{Deserialize, Serialize};

use crate::task::Task;
use crate::timestamp::Timestamp;

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub at: Timestamp,
    pub event: Event,
}

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The first event of every subscription: where things stand.
    Snapshot(StateSnapshot),
    /// A task's stored row changed: created, edited or deleted here (`Local`), or changed by
    /// what the server sent (`Remote`). Our own pushes coming back change nothing and send
    /// nothing.
    TaskChanged { task: Task, origin: ChangeOrigin },
    /// The daemon's view of the sync server changed.
    Connectivity(ConnectivityState),
    /// What a sync round is doing.
    Sync(SyncProgress),
    /// The subscriber read too slowly and missed this many events.
    Lagged { missed: u64 },
}

/// Whether the daemon can reach its sync server, since when, and when it next checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityState {
    pub state: Connectivity,
    pub since: Timestamp,
    /// While offline: when the next probe goes out.
    pub next_probe_at: Option<Timestamp>,
}

/// Whether the daemon can sync with its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connectivity {
    /// No sync server is configured.
    LocalOnly,
    Online,
    Offline,
    /// The server is reachable but refuses our token.
    Unauthorized,
}

crate::names::named!(Connectivity, "connectivity state", {
    LocalOnly => "local-only",
    Online => "online",
    Offline => "offline",
    Unauthorized => "unauthorized",
});

/// The state a subscription opens with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub connectivity: ConnectivityState,
    /// Queued operations not yet synced (dead-lettered ones excluded).
    pub pending: u64,
    /// Dead-lettered operations.
    pub failed: u64,
    pub last_sync_at: Option<Timestamp>,
}

/// Where a task change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOrigin {
    /// A command on this device.
    Local,
    /// Pulled from the server, or the server's merge after a conflict.
    Remote,
}

/// Progress of a sync round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncProgress {
    /// A batch of this many operations went out.
    BatchSent { items: u32 },
    /// The server answered a batch.
    BatchAnswered { synced: u32, failed: u32 },
    /// Changes pulled from the server.
    Pulled { changes: u64 },
    /// The round is over: operations pushed, tasks changed by what was pulled, conflicts the
    /// server resolved, failed attempts.
    RoundFinished {
        success: bool,
        synced: u64,
        pulled: u64,
        conflicts: u64,
        failed: u64,
    },
}
