//! `GET /api/events`: the daemon's events as Server-Sent Events (docs/LOCAL-API.md, "Events").
//!
//! One [`EventLog`] per daemon numbers the events of the store's broadcast (`crate::events`)
//! and keeps the last [`BUFFER`] of them, so a client that reconnects with `Last-Event-ID`
//! gets what it missed; one that comes back too late gets `event: reset` (list again). The log
//! starts with the first event-stream client, so a daemon nobody watches pays nothing.
//!
//! Each client has its own small queue between the log and its connection. Publishing never
//! waits for a client: one that reads too slowly falls behind on the log's broadcast, loses
//! what it did not read, and gets `reset`; one that reads nothing for [`WRITE_TIMEOUT`] is
//! disconnected. Ids are unique and increasing for the daemon's run and start at the run's
//! start time in microseconds, so an id from an earlier run is never mistaken for a current one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tasksync_proto::events::{ChangeOrigin, Event, SyncProgress, TimedEvent};
use tasksync_proto::{Task, Timestamp};
use tokio::sync::{broadcast, mpsc};

use tasksync_http::{ApiError, Body, HttpResponse};

use super::status;
use crate::app::App;
use crate::service::shutdown::Shutdown;
use tasksync_http::slots::Activity;

/// Events kept for clients that reconnect with `Last-Event-ID`.
pub(crate) const BUFFER: usize = 4096;
/// Events a client may fall behind the log before it loses them and gets `reset`.
const BEHIND: usize = 1024;
/// Frames queued for one connection before the client counts as not reading.
const CLIENT_QUEUE: usize = 64;
/// How long a client may leave its queue full before it is disconnected.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle stream gets a comment line.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// The numbered event log, started on first use.
#[derive(Default)]
pub(crate) struct EventLog {
    log: OnceLock<Arc<Log>>,
}

struct Log {
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
struct Frame {
    id: u64,
    bytes: Bytes,
}

impl EventLog {
    fn get(&self, app: &App) -> Arc<Log> {
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
                let events = app.events.subscribe();
                tokio::spawn(run_log(log.clone(), events));
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
                if let Some((name, data)) = render(event) {
                    log.push(name, &data);
                }
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

#[derive(Serialize)]
struct TaskEvent<'a> {
    task: &'a Task,
    origin: ChangeOrigin,
    at: Timestamp,
}

#[derive(Serialize)]
struct SyncEvent {
    at: Timestamp,
    success: bool,
    pushed: u64,
    pulled: u64,
    conflicts: u64,
    failed: u64,
}

/// The SSE name and JSON data of a store event; `None` for what is not streamed.
fn render(TimedEvent { at, event }: TimedEvent) -> Option<(&'static str, String)> {
    match event {
        Event::TaskChanged { task, origin } => Some((
            "task",
            json(&TaskEvent {
                task: &task,
                origin,
                at,
            }),
        )),
        Event::Connectivity(state) => Some(("connectivity", json(&state))),
        Event::Sync(SyncProgress::RoundFinished {
            success,
            synced,
            pulled,
            conflicts,
            failed,
        }) => {
            let event = SyncEvent {
                at,
                success,
                pushed: synced,
                pulled,
                conflicts,
                failed,
            };
            Some(("sync", json(&event)))
        }
        Event::Sync(_) | Event::Snapshot(_) | Event::Lagged { .. } => None,
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!("event stream: cannot encode an event: {e}");
        "null".into()
    })
}

fn frame_bytes(id: u64, name: &str, data: &str) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers, keeps and sends one event.
    fn push(&self, name: &str, data: &str) {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let frame = Frame {
            id,
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
            bytes: frame_bytes(id, "reset", "{}"),
        });
    }

    /// Attaches a client. With `last_seen` it gets the buffered events after it, or `None`
    /// if they are gone; the ids returned are fresh ones for the events made for this client.
    fn attach(&self, last_seen: Option<u64>) -> Attached {
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
                    .map(|f| f.bytes.clone())
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

struct Attached {
    opening: Opening,
    receiver: broadcast::Receiver<Frame>,
}

enum Opening {
    Status(u64),
    Resume(Vec<Bytes>),
    Reset { reset_id: u64, status_id: u64 },
}

/// `GET /api/events` (and `HEAD`, which gets the headers only).
pub(crate) async fn stream(
    app: &Arc<App>,
    headers: &HeaderMap,
    head_only: bool,
    connection: Option<Arc<Activity>>,
    shutdown: Shutdown,
) -> Result<HttpResponse, ApiError> {
    let mut response = Response::new(Body::empty());
    let headers_out = response.headers_mut();
    headers_out.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers_out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *response.status_mut() = StatusCode::OK;
    if head_only {
        return Ok(response);
    }
    let last_seen = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim();
            // An id this daemon never gave out (garbage, or empty) simply means "start over".
            Some(text.parse::<u64>().unwrap_or(0))
        }
    };
    let attached = app.event_log.get(app).attach(last_seen);
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let app = app.clone();
    tokio::spawn(async move {
        let _streaming = connection.as_ref().map(|c| c.busy());
        if pump(&app, attached, &tx, shutdown).await == Pumped::Stuck {
            tracing::debug!(
                "event stream: a client read nothing for {WRITE_TIMEOUT:?}; disconnecting it"
            );
            if let Some(connection) = connection {
                connection.close();
            }
        }
    });
    *response.body_mut() = Body::stream(rx);
    Ok(response)
}

#[derive(PartialEq, Eq)]
enum Pumped {
    /// The client went away or the daemon stops.
    Ended,
    /// The client stopped reading.
    Stuck,
}

/// Feeds one client: its opening, then the log's events and heartbeats.
async fn pump(
    app: &Arc<App>,
    attached: Attached,
    tx: &mpsc::Sender<Bytes>,
    mut shutdown: Shutdown,
) -> Pumped {
    let Attached {
        opening,
        mut receiver,
    } = attached;
    let opening: Vec<Bytes> = match opening {
        Opening::Resume(backlog) => backlog,
        Opening::Status(id) => vec![status_frame(app, id).await],
        Opening::Reset {
            reset_id,
            status_id,
        } => vec![
            frame_bytes(reset_id, "reset", "{}"),
            status_frame(app, status_id).await,
        ],
    };
    for frame in opening {
        if let Some(ended) = deliver(tx, frame).await {
            return ended;
        }
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        let frame = tokio::select! {
            frame = receiver.recv() => match frame {
                Ok(frame) => frame.bytes,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("event stream: a client fell {missed} events behind; sending reset");
                    receiver = receiver.resubscribe();
                    let id = app.event_log.get(app).fresh_id();
                    frame_bytes(id, "reset", "{}")
                }
                Err(broadcast::error::RecvError::Closed) => return Pumped::Ended,
            },
            _ = heartbeat.tick() => Bytes::from_static(b": keep-alive\n\n"),
            () = shutdown.requested() => return Pumped::Ended,
            () = tx.closed() => return Pumped::Ended,
        };
        if let Some(ended) = deliver(tx, frame).await {
            return ended;
        }
    }
}

impl Log {
    fn fresh_id(&self) -> u64 {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        id
    }
}

/// Queues a frame for the client; `Some` when the stream must end.
async fn deliver(tx: &mpsc::Sender<Bytes>, frame: Bytes) -> Option<Pumped> {
    match tx.send_timeout(frame, WRITE_TIMEOUT).await {
        Ok(()) => None,
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Some(Pumped::Stuck),
        Err(mpsc::error::SendTimeoutError::Closed(_)) => Some(Pumped::Ended),
    }
}

async fn status_frame(app: &Arc<App>, id: u64) -> Bytes {
    let data = match status::status_body(app).await {
        Ok(body) => serde_json::to_string(&body).unwrap_or_else(|_| "null".into()),
        Err(error) => {
            tracing::warn!("event stream: status unavailable: {}", error.message);
            "null".into()
        }
    };
    frame_bytes(id, "status", &data)
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
        let ids: Vec<String> = backlog.iter().map(text).collect();
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
