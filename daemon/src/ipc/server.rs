//! The accept loop: one task per connection, a cap that evicts the idlest connection instead
//! of refusing a new one, and an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::task::JoinSet;

use super::connection;
use crate::app::App;
use crate::http::server::Api;
use crate::service::shutdown::Shutdown;
use crate::slots::Slots;

/// Connections served at once; past it the idlest open connection is closed for a new one.
const MAX_CONNECTIONS: usize = 1024;
/// How long connections may take to finish the command in hand at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// Serves `listener` until shutdown is requested, then stops accepting (the socket file goes
/// with the listener) and lets each connection finish the command it is running.
pub async fn run(listener: Listener, app: Arc<App>, mut shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    let slots = Slots::new(MAX_CONNECTIONS);
    let http = Arc::new(Api::local(app.clone(), shutdown.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let (slot, evicted) = slots.admit();
                    if evicted {
                        tracing::debug!("{MAX_CONNECTIONS} connections open: closed the idlest");
                    }
                    let serve = connection::accept(stream, app.clone(), http.clone(), slot, shutdown.clone());
                    connections.spawn(serve);
                }
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
