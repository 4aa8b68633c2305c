//! The accept loop: one task per connection, and an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::task::JoinSet;

use super::connection;
use crate::app::App;
use crate::service::shutdown::Shutdown;

/// Connections served at once; more are refused until some close.
const MAX_CONNECTIONS: usize = 1024;
/// How long connections may take to finish the command in hand at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// Serves `listener` until shutdown is requested, then stops accepting (the socket file goes
/// with the listener) and lets each connection finish the command it is running.
pub async fn run(listener: Listener, app: Arc<App>, mut shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) if connections.len() < MAX_CONNECTIONS => {
                    connections.spawn(connection::serve(stream, app.clone(), shutdown.clone()));
                }
                Ok(_) => tracing::warn!("refused a connection: {MAX_CONNECTIONS} already open"),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.requested() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still busy after {DRAIN_TIMEOUT:?}; closing them",
            connections.len()
        );
        connections.abort_all();
    }
}
