//! The accept loop (one hyper HTTP/1.1 connection task per client), per-request dispatch,
//! and graceful shutdown.
//!
//! When shutdown is requested the listener closes, each connection finishes the request in
//! hand (idle keep-alive connections close at once), and after [`DRAIN_TIMEOUT`] whatever is
//! left is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::BearerAuth;
use super::body::RequestBody;
use super::error::{ApiError, HttpResponse};
use super::routes::Route;
use super::{status, tasks};
use crate::app::App;
use crate::service::shutdown::Shutdown;

/// How long shutdown waits for requests in hand.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog until some close.
const MAX_CONNECTIONS: usize = 256;

/// What every request shares.
pub struct Api {
    pub app: Arc<App>,
    pub auth: BearerAuth,
}

/// Serves `listener` until shutdown is requested, then drains open connections.
pub async fn serve(listener: TcpListener, api: Arc<Api>, mut shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.requested() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!("HTTP API: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.requested() => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "HTTP API: cannot set TCP_NODELAY: {error}");
        }
        let api = api.clone();
        let service = service_fn(move |request| handle(api.clone(), request));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "HTTP API: connection ended: {error}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("HTTP API: all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("HTTP API: connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

/// The hyper service: answers every request, errors included.
pub async fn handle(api: Arc<Api>, request: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let (parts, body) = request.into_parts();
    let mut body = RequestBody::new(&parts.headers, body);
    let path = parts.uri.path();
    let response = match route(&api, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(method = %parts.method, %path, status = %error.status, "HTTP API refused: {}", error.message);
            error.into_response(path)
        }
    };
    body.drain().await;
    tracing::debug!(method = %parts.method, %path, status = %response.status(), "HTTP API answered");
    Ok(response)
}

async fn route(api: &Api, parts: &Parts, body: &mut RequestBody) -> Result<HttpResponse, ApiError> {
    let path = parts.uri.path();
    let route = Route::find(path).ok_or_else(|| ApiError::no_route(path))?;
    if !route.takes(&parts.method) {
        return Err(ApiError::method_not_allowed(&parts.method, route.allow()));
    }
    if route.needs_token() {
        let authorization = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        if !api.auth.allows(authorization) {
            return Err(ApiError::unauthorized());
        }
    }
    let app = &api.app;
    match (route, &parts.method) {
        (Route::Health, &Method::GET) => Ok(status::health()),
        (Route::Status, &Method::GET) => status::status(app).await,
        (Route::Sync, &Method::POST) => status::sync(app).await,
        (Route::Tasks, &Method::GET) => tasks::list(app).await,
        (Route::Tasks, &Method::POST) => tasks::create(app, body).await,
        (Route::Task(id), &Method::GET) => tasks::get(app, id).await,
        (Route::Task(id), &Method::PUT) => tasks::update(app, id, body).await,
        (Route::Task(id), &Method::DELETE) => tasks::delete(app, id).await,
        (route, method) => Err(ApiError::method_not_allowed(method, route.allow())),
    }
}
