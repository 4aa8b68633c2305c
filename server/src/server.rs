//! The accept loop: one hyper HTTP/1.1 connection task per client, connection slots, and
//! graceful shutdown, with `tasksync_http::serve` and `tasksync_http::slots` (shared with the
//! daemon's API).
//!
//! Connection slots: at most `max_connections` are open (derived from the open-file limit, so
//! `accept` never runs out of descriptors); past it the idlest connection is closed for the
//! newcomer, head-less ones first and those with a request in hand (a held live pull) last, so
//! a flood of idle connections cannot keep `/api/health` or a device out.
//!
//! When `shutdown` resolves, waiting live pulls answer at once, the listener closes,
//! connections finish the request in hand (idle keep-alive connections close at once), and
//! after [`DRAIN_TIMEOUT`] any left over are dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tasksync_http::serve::{accept_loop, serve_connection};
use tasksync_http::slots::{Slots, Tracked};
use tokio::net::TcpListener;

use crate::http::{handle, AppState};

/// How long shutdown waits for open requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once, whatever the open-file limit.
pub const MAX_CONNECTIONS: usize = 65_536;
/// Open files kept for everything but connections: databases and their journals, the
/// PostgreSQL pool and `LISTEN` connection, the listener, logs, slack.
pub const RESERVED_FILES: u64 = 64;

/// Serves `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let stop = async {
        shutdown.await;
        state.stopping.send_replace(true);
    };
    let slots = Slots::new(max_connections);
    let connection = |(stream, peer): (tokio::net::TcpStream, std::net::SocketAddr)| {
        let (slot, evicted) = slots.admit();
        if evicted {
            tracing::debug!("{max_connections} connections open: closed the idlest");
        }
        let state = state.clone();
        let mut stopping = state.stopping.subscribe();
        async move {
            let activity = slot.activity().clone();
            let service = service_fn(move |request| {
                let working = activity.busy();
                let state = state.clone();
                async move {
                    let answer = handle(state, request).await;
                    drop(working);
                    answer
                }
            });
            let stream = Tracked::new(stream, slot.activity().clone());
            let served = serve_connection(stream, HEADER_TIMEOUT, service, async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            });
            tokio::select! {
                () = served => {}
                () = slot.evicted() => tracing::debug!(%peer, "closed an idle connection to make room"),
            }
        }
    };
    accept_loop(listener, stop, DRAIN_TIMEOUT, connection).await;
    tracing::info!("all connections closed");
}

/// Serves only `GET /metrics` on `listener` (`--metrics-listen`), until the process ends.
pub async fn serve_metrics(listener: TcpListener, state: Arc<AppState>) {
    let connection = |(stream, _peer): (tokio::net::TcpStream, std::net::SocketAddr)| {
        let state = state.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::http::metrics_only(&state, &request)) }
        });
        serve_connection(stream, HEADER_TIMEOUT, service, std::future::pending())
    };
    accept_loop(listener, std::future::pending(), DRAIN_TIMEOUT, connection).await;
}
