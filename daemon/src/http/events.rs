//! `GET /api/events`: the daemon's event log (`crate::event_log`) as Server-Sent Events
//! (docs/LOCAL-API.md, "Events").
//!
//! A new client gets `status`, then the log's events; one that reconnects with
//! `Last-Event-ID` gets what it missed, or `reset` and `status` when that is gone. Each client
//! has its own small queue between the log and its connection: one that reads nothing for
//! [`WRITE_TIMEOUT`] is disconnected, one that falls behind the log gets `reset`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tasksync_proto::events::{EventData, EventFilter};
use tasksync_proto::ipc::StatusBody;
use tokio::sync::{broadcast, mpsc};

use tasksync_http::{ApiError, Body, HttpResponse};

use super::query::Query;
use crate::app::App;
use crate::event_log::{event_frame, frame_bytes, reset_frame, Attached, Opening};
use crate::service::shutdown::Shutdown;
use tasksync_http::slots::Activity;

/// Frames queued for one connection before the client counts as not reading.
const CLIENT_QUEUE: usize = 64;
/// How long a client may leave its queue full before it is disconnected.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle stream gets a comment line.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// Which events the query asks for: `?events=a,b` (every event without it). An unknown
/// name, or another parameter, is a 400 that names the valid ones.
fn filter(raw_query: &str) -> Result<EventFilter, ApiError> {
    let query = Query::parse(raw_query)?;
    query.only(&["events"])?;
    match query.get("events") {
        Some(list) => EventFilter::parse(list).map_err(ApiError::bad_request),
        None => Ok(EventFilter::all()),
    }
}

/// `GET /api/events` (and `HEAD`, which gets the headers only).
pub(crate) async fn stream(
    app: &Arc<App>,
    headers: &HeaderMap,
    raw_query: &str,
    head_only: bool,
    connection: Option<Arc<Activity>>,
    shutdown: Shutdown,
) -> Result<HttpResponse, ApiError> {
    let filter = filter(raw_query)?;
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
    let attached = app.event_log.get(&app.events).attach(last_seen);
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let app = app.clone();
    tokio::spawn(async move {
        let _streaming = connection.as_ref().map(|c| c.busy());
        if pump(&app, attached, &filter, &tx, shutdown).await == Pumped::Stuck {
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

/// Feeds one client: its opening, then the log's events (those it asked for) and heartbeats.
async fn pump(
    app: &Arc<App>,
    attached: Attached,
    filter: &EventFilter,
    tx: &mpsc::Sender<Bytes>,
    mut shutdown: Shutdown,
) -> Pumped {
    let Attached {
        opening,
        mut receiver,
    } = attached;
    let status = filter.allows("status");
    let opening: Vec<Bytes> = match opening {
        Opening::Resume(backlog) => backlog
            .into_iter()
            .filter(|frame| filter.allows(frame.name))
            .map(|frame| frame.bytes)
            .collect(),
        Opening::Status(id) if status => vec![status_frame(app, id).await],
        Opening::Status(_) => Vec::new(),
        Opening::Reset {
            reset_id,
            status_id,
        } => {
            let mut frames = vec![reset_frame(reset_id, None)];
            if status {
                frames.push(status_frame(app, status_id).await);
            }
            frames
        }
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
                Ok(frame) if filter.allows(frame.name) => frame.bytes,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("event stream: a client fell {missed} events behind; sending reset");
                    receiver = receiver.resubscribe();
                    let id = app.event_log.get(&app.events).fresh_id();
                    reset_frame(id, Some(missed))
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

/// Queues a frame for the client; `Some` when the stream must end.
async fn deliver(tx: &mpsc::Sender<Bytes>, frame: Bytes) -> Option<Pumped> {
    match tx.send_timeout(frame, WRITE_TIMEOUT).await {
        Ok(()) => None,
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Some(Pumped::Stuck),
        Err(mpsc::error::SendTimeoutError::Closed(_)) => Some(Pumped::Ended),
    }
}

/// The `status` event a client's stream opens with.
async fn status_frame(app: &Arc<App>, id: u64) -> Bytes {
    match app.scan(App::status).await {
        Ok(info) => event_frame(id, EventData::Status(StatusBody::from(&info))),
        Err(error) => {
            tracing::warn!("event stream: status unavailable: {error}");
            frame_bytes(id, "status", "null")
        }
    }
}
