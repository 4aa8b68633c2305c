//! The accept loop: one hyper HTTP/1.1 connection task per client, and graceful shutdown,
//! with `tasksync_http::serve` (shared with the daemon's API).
//!
//! When `shutdown` resolves, waiting live pulls answer at once, the listener closes,
//! connections finish the request in hand (idle keep-alive connections close at once), and
//! after [`DRAIN_TIMEOUT`] any left over are dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tasksync_http::serve::{accept_loop, serve_connection};
use tokio::net::TcpListener;

use crate::http::{handle, AppState};

/// How long shutdown waits for open requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let stop = async {
        shutdown.await;
        state.stopping.send_replace(true);
    };
    let connection = |(stream, _peer)| {
        let state = state.clone();
        let mut stopping = state.stopping.subscribe();
        let service = service_fn(move |request| handle(state.clone(), request));
        serve_connection(stream, HEADER_TIMEOUT, service, async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        })
    };
    accept_loop(listener, stop, DRAIN_TIMEOUT, connection).await;
    tracing::info!("all connections closed");
}
