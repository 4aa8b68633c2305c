//! Serving HTTP/1.1: an accept loop (TCP here; any [`Listener`]), and one connection over
//! any stream.
//!
//! Limits: a connection must send a complete request head within the caller's header
//! timeout of connecting or of its previous answer (so that is also the keep-alive idle
//! timeout), and a head is at most `MAX_HEAD_BYTES` (431 past it). When `stop` resolves
//! the listener closes, each connection finishes the request in hand (idle keep-alive
//! connections close at once), and after the drain timeout whatever is left is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::response::HttpResponse;

/// Largest request head (request line and headers); a larger one is answered 431.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long the loop waits after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The HTTP/1.1 settings of every connection: a head within `header_timeout`, at most
/// `MAX_HEAD_BYTES` of it.
pub fn builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
}

/// Where [`accept_loop`] takes connections from.
pub trait Listener {
    type Connection;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> + Send;
}

/// A TCP connection, with `TCP_NODELAY` set (answers are small and must not wait), and its
/// peer.
impl Listener for TcpListener {
    type Connection = (TcpStream, SocketAddr);

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {error}");
        }
        Ok((stream, peer))
    }
}

/// Accepts connections on `listener` until `stop` resolves, running `connection(accepted)`
/// as a task for each; then closes the listener and gives those tasks `drain_timeout` to end
/// before dropping them.
pub async fn accept_loop<L, F, Fut>(
    listener: L,
    stop: impl Future<Output = ()>,
    drain_timeout: Duration,
    mut connection: F,
) where
    L: Listener,
    F: FnMut(L::Connection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut stop => break,
        };
        connections.spawn(connection(accepted));
    }
    drop(listener);
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still open after {drain_timeout:?}; closing them",
            connections.len()
        );
        connections.abort_all();
    }
}

/// Serves one connection, whatever carries it, with `service` until the client closes it,
/// the header timeout closes it, or `stop` resolves (then after the request in hand).
pub async fn serve_connection<I, S>(
    io: I,
    header_timeout: Duration,
    service: S,
    stop: impl Future<Output = ()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = HttpResponse, Error = Infallible>,
{
    let connection = builder(header_timeout).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!("connection ended: {error}");
                }
                return;
            }
            () = &mut stop, if !stopping => {
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
