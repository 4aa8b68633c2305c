//! The daemon's numbered event log: the store's and sync engine's events (`crate::events`),
//! each numbered and encoded once, and the last [`BUFFER`] of them kept, so a client that
//! reconnects with the id of the last event it saw gets what it missed; one that comes back
//! too late gets `reset` (list again). `GET /api/events` (`crate::http::events`) streams it;
//! it lives here, not in the HTTP adapter, because it is the daemon's record of what
//! happened, whoever reads it. The log starts with its first reader, so a daemon nobody
//! watches pays nothing.
//!
//! Each event is encoded as its one JSON form ([`tasksync_proto::events::EventJson`], also what
//! `taskctl --json watch` prints) inside a Server-Sent Events frame. Publishing never waits
//! for a reader: one that reads too slowly falls behind on the log's broadcast, loses what it
//! did not read, and gets `reset`. Ids are unique and increasing for the daemon's run and
//! start at the run's start time in microseconds, so an id from an earlier run is never
//! mistaken for a current one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tasksync_proto::events::{EventData, EventJson, TimedEvent};
use tasksync_proto::Timestamp;
use tokio::sync::broadcast;

use crate::events::Events;

/// Events kept for clients that reconnect with `Last-Event-ID`.
pub(crate) const BUFFER: usize = 4096;
/// Events a client may fall behind the log before it loses them and gets `reset`.
const BEHIND: usize = 1024;

/// The numbered event log, started on first use.
#[derive(Default)]
pub(crate) struct EventLog {
    log: OnceLock<Arc<Log>>,
}

pub(crate) struct Log {
    state: Mutex<LogState>,
    tx: broadcast::Sender<Frame>,
}

struct LogState {
    /// The id the next event gets.
    next_id: u64,
    /// The oldest id a client may resume after (events after a log reset are not older).
    resumable_from: u64,
    buffer: VecDeque<Frame>,
}

#[derive(Clone)]
pub(crate) struct Frame {
    id: u64,
    /// The event's name, for clients that asked for some events only (`?events=`).
    pub(crate) name: &'static str,
    pub(crate) bytes: Bytes,
}

impl EventLog {
    /// The log, started (reading `events`) on first use.
    pub(crate) fn get(&self, events: &Events) -> Arc<Log> {
        self.log
            .get_or_init(|| {
                let start = Timestamp::now().as_millis().max(0) as u64 * 1000;
                let log = Arc::new(Log {
                    state: Mutex::new(LogState {
                        next_id: start + 1,
                        resumable_from: start,
                        buffer: VecDeque::with_capacity(BUFFER),
                    }),
                    tx: broadcast::channel(BEHIND).0,
                });
                tokio::spawn(run_log(log.clone(), events.subscribe()));
                log
            })
            .clone()
    }
}

/// Numbers the store's events, in the order they were published.
async fn run_log(log: Arc<Log>, mut events: broadcast::Receiver<TimedEvent>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let json_form = event.json();
                log.push(json_form.event.name(), &json(&json_form));
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    "event stream: fell {missed} events behind; clients must list again"
                );
                log.reset();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!("event stream: cannot encode an event: {e}");
        "null".into()
    })
}

/// One SSE frame.
pub(crate) fn frame_bytes(id: u64, name: &str, data: &str) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
}

/// The frame of an event made for one client (its `status`), or of a `reset`.
pub(crate) fn event_frame(id: u64, event: EventData<'_>) -> Bytes {
    let name = event.name();
    let data = json(&EventJson {
        event,
        at: Timestamp::now(),
    });
    frame_bytes(id, name, &data)
}

/// `reset`: events were lost to this client (`missed` of them, when known).
pub(crate) fn reset_frame(id: u64, missed: Option<u64>) -> Bytes {
    event_frame(id, EventData::Reset { missed })
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers, keeps and sends one event.
    fn push(&self, name: &'static str, data: &str) {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let frame = Frame {
            id,
            name,
            bytes: frame_bytes(id, name, data),
        };
        if state.buffer.len() == BUFFER {
            state.buffer.pop_front();
        }
        state.buffer.push_back(frame.clone());
        // Sent under the lock, so a client attaching sees each event either in the buffer or
        // on the channel, never both, never neither.
        let _ = self.tx.send(frame);
    }

    /// The log itself missed events: nothing before now can be resumed.
    fn reset(&self) {
        let mut state = self.lock();
        state.buffer.clear();
        state.resumable_from = state.next_id;
        let id = state.next_id;
        state.next_id += 1;
        let _ = self.tx.send(Frame {
            id,
            name: "reset",
            bytes: reset_frame(id, None),
        });
    }

    /// Attaches a client. With `last_seen` it gets the buffered events after it, or `None`
    /// if they are gone; the ids returned are fresh ones for the events made for this client.
    pub(crate) fn attach(&self, last_seen: Option<u64>) -> Attached {
        let mut state = self.lock();
        let receiver = self.tx.subscribe();
        let last = state.next_id - 1;
        let backlog = last_seen.and_then(|seen| {
            let oldest = state
                .buffer
                .front()
                .map_or(state.next_id, |f| f.id)
                .max(state.resumable_from + 1);
            (seen <= last && seen + 1 >= oldest).then(|| {
                state
                    .buffer
                    .iter()
                    .filter(|f| f.id > seen)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        let mut fresh = || {
            let id = state.next_id;
            state.next_id += 1;
            id
        };
        let opening = match (last_seen, backlog) {
            (Some(_), Some(backlog)) => Opening::Resume(backlog),
            (Some(_), None) => Opening::Reset {
                reset_id: fresh(),
                status_id: fresh(),
            },
            (None, _) => Opening::Status(fresh()),
        };
        Attached { opening, receiver }
    }
}

pub(crate) struct Attached {
    pub(crate) opening: Opening,
    pub(crate) receiver: broadcast::Receiver<Frame>,
}

/// What a client gets first.
pub(crate) enum Opening {
    /// A new client: `status` with this id.
    Status(u64),
    /// The events it missed.
    Resume(Vec<Frame>),
    /// Too late to resume: `reset`, then `status`.
    Reset { reset_id: u64, status_id: u64 },
}

impl Log {
    /// An id for an event made for one client.
    pub(crate) fn fresh_id(&self) -> u64 {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Log {
        Log {
            state: Mutex::new(LogState {
                next_id: 101,
                resumable_from: 100,
                buffer: VecDeque::new(),
            }),
            tx: broadcast::channel(BEHIND).0,
        }
    }

    fn text(bytes: &Bytes) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn a_resume_gets_exactly_what_it_missed() {
        let log = log();
        for i in 0..5 {
            log.push("task", &format!("{{\"n\":{i}}}"));
        }
        let Opening::Resume(backlog) = log.attach(Some(102)).opening else {
            panic!("expected a resume");
        };
        let ids: Vec<String> = backlog.iter().map(|f| text(&f.bytes)).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0].starts_with("id: 103\nevent: task\ndata: {\"n\":2}\n\n"));
        // Up to date: nothing to replay, still a resume.
        assert!(matches!(log.attach(Some(105)).opening, Opening::Resume(b) if b.is_empty()));
    }

    #[test]
    fn ids_from_elsewhere_or_too_old_get_a_reset() {
        let log = log();
        for _ in 0..(BUFFER + 10) {
            log.push("task", "{}");
        }
        // The first events fell out of the buffer.
        assert!(matches!(
            log.attach(Some(101)).opening,
            Opening::Reset { .. }
        ));
        // An id from an earlier run (smaller) or from nowhere (larger).
        assert!(matches!(log.attach(Some(7)).opening, Opening::Reset { .. }));
        assert!(matches!(
            log.attach(Some(u64::MAX - 1)).opening,
            Opening::Reset { .. }
        ));
        // A fresh client gets a status with an id above every event so far.
        let Opening::Status(id) = log.attach(None).opening else {
            panic!("expected a status");
        };
        assert!(id > 101 + BUFFER as u64);
    }

    #[test]
    fn after_the_log_itself_lagged_nothing_older_resumes() {
        let log = log();
        log.push("task", "{}");
        log.reset();
        assert!(matches!(
            log.attach(Some(101)).opening,
            Opening::Reset { .. }
        ));
        log.push("task", "{}");
        let last = log.lock().next_id - 1;
        assert!(matches!(log.attach(Some(last - 1)).opening, Opening::Resume(b) if b.len() == 1));
    }
}
