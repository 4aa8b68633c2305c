//! The HTTP connections of both listeners: the TCP port (bearer token) and the local socket
//! (peer uid, checked before a connection gets here). One hyper HTTP/1.1 connection task per
//! client, per-request dispatch, limits and graceful shutdown: the same code for both. The
//! accept loop, connection serving, body reading and bearer check are `tasksync_http`'s,
//! shared with the sync server; what is the daemon's own is here.
//!
//! Limits (docs/LOCAL-API.md, "Limits"): a connection must send a complete request head within
//! [`HEADER_TIMEOUT`] of connecting or of its previous answer, else it is closed; when
//! [`MAX_CONNECTIONS`] are open the idlest one is closed for a newcomer (see `crate::slots`).
//! When shutdown is requested the listener closes, each connection finishes the request in
//! hand (idle keep-alive connections close at once), and after [`DRAIN_TIMEOUT`] whatever is
//! left is dropped. Bodies are capped at [`MAX_BODY_BYTES`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tasksync_http::bearer::{self, TokenDigest};
use tasksync_http::body::RequestBody;
use tasksync_http::serve::{accept_loop, builder};
use tasksync_http::{ApiError, ErrorFields, HttpResponse};
use tasksync_proto::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::routes::Route;
use super::{events, status, tasks};
use crate::app::App;
use crate::service::shutdown::Shutdown;
use tasksync_http::slots::{Activity, Slots, Tracked};

/// How long shutdown waits for requests in hand.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a client may take to send a request's head, counted from the connection's start
/// or the end of the previous answer (so it is also the keep-alive idle timeout).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body read (1 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// TCP connections served at once; past it the idlest one is closed for a newcomer.
const MAX_CONNECTIONS: usize = 256;

/// What every request shares.
pub(crate) struct Api {
    pub(crate) app: Arc<App>,
    /// The digest of the TCP listener's bearer token; `None` on the local socket, where the
    /// peer's uid is the credential.
    pub(crate) token: Option<TokenDigest>,
    /// Ends event streams when the daemon stops.
    pub(crate) shutdown: Shutdown,
}

impl Api {
    /// The API as served on the local socket.
    pub(crate) fn local(app: Arc<App>, shutdown: Shutdown) -> Api {
        Api {
            app,
            token: None,
            shutdown,
        }
    }
}

/// The connection a request came on (in the request's extensions), so that a handler can
/// mark it busy or close it.
#[derive(Clone)]
struct Connection(Arc<Activity>);

/// Serves `listener` until shutdown is requested, then drains open connections.
pub(crate) async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: Shutdown) {
    let slots = Slots::new(MAX_CONNECTIONS);
    let mut stop = shutdown.clone();
    let connection = |(stream, peer): (TcpStream, SocketAddr)| {
        let (slot, evicted) = slots.admit();
        if evicted {
            tracing::debug!("HTTP API: {MAX_CONNECTIONS} connections open: closed the idlest");
        }
        let (api, shutdown) = (api.clone(), shutdown.clone());
        let held = api.app.metrics.connection("tcp");
        async move {
            let _held = held;
            let stream = Tracked::new(stream, slot.activity().clone());
            tokio::select! {
                () = serve_connection(stream, api, Some(slot.activity()), shutdown) => {}
                () = slot.evicted() => tracing::debug!(%peer, "HTTP API: closed an idle connection to make room"),
            }
        }
    };
    accept_loop(
        listener,
        async move { stop.requested().await },
        DRAIN_TIMEOUT,
        connection,
    )
    .await;
}

/// Serves one HTTP connection, whatever carries it, until the client closes it, a limit
/// closes it, or shutdown (after the request in hand).
pub(crate) async fn serve_connection<S>(
    io: S,
    api: Arc<Api>,
    activity: Option<&Arc<Activity>>,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = activity.cloned();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let api = api.clone();
        let working = activity.as_ref().map(|a| a.busy());
        if let Some(activity) = &activity {
            request
                .extensions_mut()
                .insert(Connection(activity.clone()));
        }
        async move {
            let response = handle(api, request).await;
            drop(working);
            response
        }
    });
    let stop = async move { shutdown.requested().await };
    tasksync_http::serve::serve_connection(io, HEADER_TIMEOUT, service, stop).await;
}

/// Answers every request of a connection with 403 and `message` (a peer of another user).
pub(crate) async fn refuse<S>(io: S, message: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| async move {
        let error =
            ApiError::new(StatusCode::FORBIDDEN, message).with_code(ErrorCode::PermissionDenied);
        let mut response = error.into_response(request.uri().path(), ErrorFields::WithCode);
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        response.headers_mut().insert(
            tasksync_proto::ipc::LOCAL_API_VERSION_HEADER,
            hyper::header::HeaderValue::from(tasksync_proto::ipc::LOCAL_API_VERSION),
        );
        Ok::<_, Infallible>(response)
    });
    let _ = tokio::time::timeout(
        HEADER_TIMEOUT,
        builder(HEADER_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), service),
    )
    .await;
}

/// The hyper service: answers every request, errors included.
pub(crate) async fn handle(
    api: Arc<Api>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let (parts, body) = request.into_parts();
    let mut body = RequestBody::new(&parts.headers, body, MAX_BODY_BYTES);
    let path = parts.uri.path();
    let response = match route(&api, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(method = %parts.method, %path, status = %error.status, "HTTP API refused: {}", error.message);
            error.into_response(path, ErrorFields::WithCode)
        }
    };
    body.drain().await;
    tracing::debug!(method = %parts.method, %path, status = %response.status(), "HTTP API answered");
    let mut response = response;
    response.headers_mut().insert(
        tasksync_proto::ipc::LOCAL_API_VERSION_HEADER,
        hyper::header::HeaderValue::from(tasksync_proto::ipc::LOCAL_API_VERSION),
    );
    Ok(response)
}

async fn route(api: &Api, parts: &Parts, body: &mut RequestBody) -> Result<HttpResponse, ApiError> {
    let path = parts.uri.path();
    let route = Route::find(path).ok_or_else(|| ApiError::no_route(path))?;
    if !route.takes(&parts.method) {
        return Err(ApiError::method_not_allowed(&parts.method, route.allow()));
    }
    if let Some(token) = &api.token {
        if route.needs_token() && !bearer::allows(&parts.headers, token) {
            return Err(unauthorized());
        }
    }
    let app = &api.app;
    // HEAD is answered as GET; hyper leaves the body out.
    let method = if parts.method == Method::HEAD {
        &Method::GET
    } else {
        &parts.method
    };
    let query = parts.uri.query().unwrap_or("");
    match (route, method) {
        (Route::Health, &Method::GET) => Ok(status::health()),
        (Route::Status, &Method::GET) => status::status(app).await,
        (Route::Metrics, &Method::GET) => status::metrics(app).await,
        (Route::Sync, &Method::POST) => status::sync(app).await,
        (Route::Events, &Method::GET) => {
            let connection = parts.extensions.get::<Connection>().map(|c| c.0.clone());
            let head_only = parts.method == Method::HEAD;
            events::stream(
                app,
                &parts.headers,
                query,
                head_only,
                connection,
                api.shutdown.clone(),
            )
            .await
        }
        (Route::Tasks, &Method::GET) => tasks::list(app, query).await,
        (Route::Tasks, &Method::POST) => tasks::create(app, body).await,
        (Route::Task(id), &Method::GET) => tasks::get(app, id).await,
        (Route::TaskHistory(id), &Method::GET) => tasks::history(app, id).await,
        (Route::TaskRestore(id), &Method::POST) => tasks::restore(app, id, body).await,
        (Route::Task(id), &Method::PUT) => tasks::update(app, id, &parts.headers, body).await,
        (Route::Task(id), &Method::DELETE) => tasks::delete(app, id, &parts.headers).await,
        (route, method) => Err(ApiError::method_not_allowed(method, route.allow())),
    }
}

/// The answer to a request without the right token.
fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token: send Authorization: Bearer <token> \
         (`taskctl api-token` prints it)",
    )
}
