//! The accept loop of the local socket: one task per connection, a cap that evicts the
//! idlest connection instead of refusing a new one, and an orderly stop. The loop itself is
//! `tasksync_http::serve::accept_loop`, the one the TCP listeners run.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use tasksync_http::serve::accept_loop;

use super::connection;
use crate::app::App;
use crate::http::server::Api;
use crate::service::shutdown::Shutdown;
use tasksync_http::slots::Slots;

/// Connections served at once; past it the idlest open connection is closed for a new one.
const MAX_CONNECTIONS: usize = 1024;
/// How long connections may take to finish the command in hand at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// The socket's listener, as the accept loop takes it.
struct Local(Listener);

impl tasksync_http::serve::Listener for Local {
    type Connection = Stream;

    async fn accept(&self) -> std::io::Result<Stream> {
        self.0.accept().await
    }
}

/// Serves `listener` until shutdown is requested, then stops accepting (the socket file goes
/// with the listener) and lets each connection finish the command it is running.
pub(crate) async fn run(listener: Listener, app: Arc<App>, shutdown: Shutdown) {
    let slots = Slots::new(MAX_CONNECTIONS);
    let http = Arc::new(Api::local(app.clone(), shutdown.clone()));
    let mut stop = shutdown.clone();
    let connection = |stream| {
        let (slot, evicted) = slots.admit();
        if evicted {
            tracing::debug!("{MAX_CONNECTIONS} connections open: closed the idlest");
        }
        let held = app.metrics.connection("socket");
        let served = connection::accept(stream, app.clone(), http.clone(), slot, shutdown.clone());
        async move {
            served.await;
            drop(held);
        }
    };
    let stop = async move { stop.requested().await };
    accept_loop(Local(listener), stop, DRAIN_TIMEOUT, connection).await;
}
