//! The broadcast of what happens inside the daemon: task changes (local and pulled), sync
//! progress and connectivity, for `watch` subscribers; and the "queue grew" signal the sync
//! engine waits on to flush soon after a local change.
//!
//! Events are only built when someone subscribed, so an unwatched daemon pays nothing for
//! them. A subscriber that falls behind gets `Lagged` instead of stalling the daemon.

use std::collections::BTreeSet;

use tasksync_proto::events::{Event, TimedEvent, TASK_SYNC_MAX_IDS};
use tasksync_proto::SyncStatus;
use tasksync_proto::Timestamp;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::store::Store;

/// Events buffered per subscriber before it counts as lagging.
const CAPACITY: usize = 4096;

pub(crate) struct Events {
    tx: broadcast::Sender<TimedEvent>,
    local_change: Notify,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
            local_change: Notify::new(),
        }
    }
}

impl Events {
    /// Sends the event `make` builds, stamped with the time, if anyone is listening.
    pub(crate) fn publish(&self, make: impl FnOnce() -> Event) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(TimedEvent {
                at: Timestamp::now(),
                event: make(),
            });
        }
    }

    /// Announces the sync state of these tasks as it is now in `store` (`task_sync`), after
    /// something that may have changed it: a batch answered, dead letters revived. Point
    /// reads, and only when someone listens.
    pub(crate) fn publish_task_sync(&self, store: &Store, ids: impl IntoIterator<Item = Uuid>) {
        if !self.has_subscribers() {
            return;
        }
        let ids: BTreeSet<Uuid> = ids.into_iter().collect();
        // One event per state, in the order the states first appear.
        let mut by_state: Vec<(SyncStatus, Vec<Uuid>)> = Vec::new();
        for task in ids.into_iter().filter_map(|id| store.get(id).ok()) {
            match by_state.iter_mut().find(|(s, _)| *s == task.sync_status) {
                Some((_, ids)) => ids.push(task.id),
                None => by_state.push((task.sync_status, vec![task.id])),
            }
        }
        for (sync_status, ids) in by_state {
            for chunk in ids.chunks(TASK_SYNC_MAX_IDS) {
                self.publish(|| Event::TaskSync {
                    task_ids: chunk.to_vec(),
                    sync_status,
                });
            }
        }
    }

    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<TimedEvent> {
        self.tx.subscribe()
    }

    /// Records that a local command queued an operation.
    pub(crate) fn local_change(&self) {
        self.local_change.notify_one();
    }

    /// Resolves after the next local change (at once if one happened since the last call).
    pub(crate) async fn local_changed(&self) {
        self.local_change.notified().await;
    }
}
