//! The broadcast of what happens inside the daemon: task changes (local and pulled), sync
//! progress and connectivity, for `watch` subscribers; and the "queue grew" signal the sync
//! engine waits on to flush soon after a local change.
//!
//! Events are only built when someone subscribed, so an unwatched daemon pays nothing for
//! them. A subscriber that falls behind gets `Lagged` instead of stalling the daemon.

use tasksync_proto::events::{Event, TimedEvent};
use tasksync_proto::Timestamp;
use tokio::sync::{broadcast, Notify};

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
