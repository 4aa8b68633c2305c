//! Routing, request bodies and the four handlers of docs/SYNC-PROTOCOL.md.
//!
//! Order of checks for every request: route (404), method (405), bearer token (401, except
//! `/api/health`), then the handler. `POST /api/batch` reads at most
//! [`MAX_BODY_BYTES`] (413), verifies `Content-Digest` over the exact bytes (400), parses them
//! (400 naming the field), caps the items (413), and only then applies anything. What of a
//! body no handler read is read and dropped before the answer (bounded; as the daemon does),
//! so a client still sending gets the answer instead of a broken connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Request, StatusCode};
use tasksync_core::ClockLimit;
use tasksync_http::body::RequestBody;
use tasksync_http::json::parse_json;
use tasksync_http::{json_response, ApiError, ErrorFields, HttpResponse};
use tasksync_proto::wire::{
    self, BatchRequest, ChangesResponse, BATCH_PATH, CHANGES_PATH, CONTENT_DIGEST_HEADER,
    DEFAULT_CHANGES_LIMIT, HEALTH_PATH, MAX_BATCH_ITEMS, MAX_BODY_BYTES, MAX_CHANGES_LIMIT,
    MAX_CHANGES_WAIT_SECS, TASKS_PATH,
};
use tasksync_proto::Timestamp;
use tokio::sync::watch;

use crate::auth::{Auth, Caller};
use crate::error::{storage_error, unauthorized, unavailable};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::storage::{BatchInput, Storage, StorageError, UserId};

/// What every request handler shares.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub auth: Auth,
    /// Wakes live pulls when a batch changed tasks.
    pub notifier: Arc<Notifier>,
    /// Allowed clock skew of pushed timestamps, in seconds.
    pub max_clock_skew_secs: u32,
    /// Turns true when the server stops: waiting pulls answer at once.
    pub stopping: watch::Sender<bool>,
    /// What operators scrape.
    pub metrics: Metrics,
    /// Whether this listener answers `GET /metrics` (not when `--metrics-listen` moves it).
    pub metrics_here: bool,
}

impl AppState {
    /// The answer to a failed storage call, counted when the storage itself failed.
    fn storage_error(&self, error: StorageError) -> ApiError {
        if !matches!(error, StorageError::NoSuchUser) {
            self.metrics.storage_failed();
        }
        storage_error(error)
    }
}

/// How long `/api/health` waits for the storage to answer.
pub const HEALTH_STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Batch,
    Changes,
    Tasks,
    Metrics,
}

/// Where operators scrape the metrics.
pub const METRICS_PATH: &str = "/metrics";

impl Route {
    fn find(path: &str) -> Option<Route> {
        match path {
            HEALTH_PATH => Some(Route::Health),
            BATCH_PATH => Some(Route::Batch),
            CHANGES_PATH => Some(Route::Changes),
            TASKS_PATH => Some(Route::Tasks),
            METRICS_PATH => Some(Route::Metrics),
            _ => None,
        }
    }

    /// The route's name in metrics.
    fn label(route: Option<Route>) -> &'static str {
        match route {
            Some(Route::Health) => "health",
            Some(Route::Batch) => "batch",
            Some(Route::Changes) => "changes",
            Some(Route::Tasks) => "tasks",
            Some(Route::Metrics) => "metrics",
            None => "other",
        }
    }

    fn method(self) -> (Method, &'static str) {
        match self {
            Route::Batch => (Method::POST, "POST"),
            _ => (Method::GET, "GET"),
        }
    }
}

/// The hyper service: answers every request, errors included.
pub async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let mut body = RequestBody::new(&parts.headers, body, MAX_BODY_BYTES);
    let (method, path) = (&parts.method, parts.uri.path());
    let response = match route(&state, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%method, %path, status = %error.status, "refused: {}", error.message);
            error.into_response(path, ErrorFields::Plain)
        }
    };
    // What no handler read (a refused push) is read and dropped, so that a client still
    // sending gets the answer rather than a reset connection.
    body.drain().await;
    tracing::trace!(%method, %path, status = %response.status(), "answered");
    let route = Route::find(path).filter(|r| *r != Route::Metrics || state.metrics_here);
    state.metrics.answered(
        Route::label(route),
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}

async fn route(
    state: &AppState,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, ApiError> {
    let path = parts.uri.path();
    let route = Route::find(path)
        .filter(|route| *route != Route::Metrics || state.metrics_here)
        .ok_or_else(|| ApiError::no_route(path))?;
    let (method, allow) = route.method();
    if parts.method != method {
        return Err(ApiError::method_not_allowed(&parts.method, allow));
    }
    // A push may take its caller from the token cache (its transaction checks the token
    // again); every other route asks storage (see `crate::auth`).
    let authenticated = match route {
        Route::Health => return health(state).await,
        Route::Metrics => return Ok(metrics(state)),
        Route::Batch => {
            state
                .auth
                .authenticate_push(state.storage.as_ref(), &parts.headers)
                .await
        }
        Route::Changes | Route::Tasks => state
            .auth
            .authenticate(state.storage.as_ref(), &parts.headers)
            .await
            .map(|user| user.map(Caller::checked_now)),
    };
    let caller = authenticated
        .map_err(|e| state.storage_error(e))?
        .ok_or_else(unauthorized)?;
    match route {
        Route::Health => health(state).await,
        Route::Metrics => Ok(metrics(state)),
        Route::Batch => push(state, caller, &parts.headers, body).await,
        Route::Changes => pull(state, caller.user, &parts.headers, parts.uri.query()).await,
        Route::Tasks => {
            let tasks = state
                .storage
                .all_tasks(caller.user)
                .await
                .map_err(|e| state.storage_error(e))?;
            Ok(json_response(StatusCode::OK, &tasks))
        }
    }
}

/// `GET /metrics`: the text exposition (no token: aggregates only; `--metrics-listen` moves it
/// off the public listener).
fn metrics(state: &AppState) -> HttpResponse {
    let text = state.metrics.render(state.storage.connections_in_use());
    tasksync_http::text_response(crate::metrics::CONTENT_TYPE, text)
}

/// The answer of the `--metrics-listen` listener: `GET /metrics`, nothing else.
pub fn metrics_only(state: &AppState, request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    if path != METRICS_PATH {
        return ApiError::no_route(path).into_response(path, ErrorFields::Plain);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::method_not_allowed(request.method(), "GET")
            .into_response(path, ErrorFields::Plain);
    }
    metrics(state)
}

/// `GET /api/health`: 200 when the storage answers within [`HEALTH_STORAGE_TIMEOUT`], else
/// 503 with `Retry-After` (load balancers take the process out of rotation).
async fn health(state: &AppState) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(HEALTH_STORAGE_TIMEOUT, state.storage.ping()).await {
        Ok(Ok(())) => Ok(json_response(
            StatusCode::OK,
            &Health {
                status: "ok",
                timestamp: Timestamp::now(),
                storage: state.storage.backend(),
                api_version: wire::SYNC_API_VERSION,
            },
        )),
        Ok(Err(error)) => Err(unavailable("storage", &error)),
        Err(_) => Err(unavailable(
            "storage",
            &format_args!("no answer within {HEALTH_STORAGE_TIMEOUT:?}"),
        )),
    }
}

/// The health body: `{status, timestamp, api_version}` plus the storage backend (docs/SYNC-PROTOCOL.md, section 3).
#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    timestamp: Timestamp,
    storage: &'static str,
    /// The sync API version this server speaks (docs/SYNC-PROTOCOL.md, section 10).
    api_version: u32,
}

/// `POST /api/batch`. The caller may come from the token cache: the batch's transaction
/// checks its token again, and a cached caller it refuses is looked up afresh once (a token
/// revoked meanwhile is then refused, 401).
async fn push(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<HttpResponse, ApiError> {
    let digest = content_digest_field(headers);
    let body = body.bytes().await?;
    wire::verify_content_digest(digest.as_deref(), &body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let input = batch_input(state, &body)?;
    let applied = state
        .storage
        .apply_batch_as(caller.user, caller.token_sha256, input)
        .await;
    let (user, applied) = match applied {
        Err(StorageError::NoSuchUser) if caller.cached => {
            state.auth.forget(&caller);
            let fresh = state
                .auth
                .authenticate_push(state.storage.as_ref(), headers)
                .await
                .map_err(|e| state.storage_error(e))?
                .ok_or_else(unauthorized)?;
            let input = batch_input(state, &body)?;
            let applied = state
                .storage
                .apply_batch_as(fresh.user, fresh.token_sha256, input)
                .await;
            (fresh.user, applied)
        }
        applied => (caller.user, applied),
    };
    let outcome = applied.map_err(|e| state.storage_error(e))?;
    state
        .metrics
        .batch_answered(outcome.response.processed_items.iter().map(|p| &p.status));
    if outcome.changed {
        state.notifier.notify(user);
    }
    Ok(json_response(StatusCode::OK, &outcome.response))
}

/// A pushed body, parsed and checked, as the storage applies it.
fn batch_input(state: &AppState, body: &[u8]) -> Result<BatchInput, ApiError> {
    let batch: BatchRequest = parse_json(body)?;
    if batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::too_large(format!(
            "items: {} items in one batch; the limit is {MAX_BATCH_ITEMS}",
            batch.items.len()
        )));
    }
    Ok(BatchInput {
        device_id: batch.device_id,
        items: batch.items,
        clock: ClockLimit::new(Timestamp::now(), state.max_clock_skew_secs),
    })
}

/// The `Content-Digest` field: repeated header lines are one comma-joined field (RFC 9110
/// section 5.3), so a second `sha-256` member on a line of its own is refused like one on the
/// same line. A line that is not text makes the field unreadable (refused as malformed).
fn content_digest_field(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all(CONTENT_DIGEST_HEADER).iter().peekable();
    lines.peek()?;
    let mut field = String::new();
    for line in lines {
        let Ok(line) = line.to_str() else {
            return Some(String::new());
        };
        if !field.is_empty() {
            field.push_str(", ");
        }
        field.push_str(line);
    }
    Some(field)
}

/// `GET /api/changes`: one page; with `wait` and nothing new, the request is held until a
/// change of the user commits, the wait runs out, or the server stops.
///
/// A held request outlives the check of its token, so it checks again: whenever credentials
/// change anywhere (401 at once if its token no longer names its user), and after every read
/// that follows a wait, before answering. A token revoked before that read was taken is
/// refused, so nothing pushed after a revocation reaches a request of the old token.
async fn pull(
    state: &AppState,
    user: UserId,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let ChangesQuery { since, limit, wait } = changes_query(query)?;
    // Subscribe before reading, so a commit between the read and the wait still wakes us.
    let mut live = wait.map(|wait| {
        (
            state.notifier.subscribe(user),
            tokio::time::Instant::now() + wait,
            state.stopping.subscribe(),
            state.notifier.credentials(),
        )
    });
    let mut waited = false;
    let _held = live.is_some().then(|| state.metrics.live_pull());
    let page = loop {
        let page = state
            .storage
            .changes(user, since, limit)
            .await
            .map_err(|e| state.storage_error(e))?;
        if waited {
            still_authorized(state, user, headers).await?;
        }
        if page.cursor_unknown {
            return Err(cursor_unknown(&since.to_string()));
        }
        let Some((subscription, deadline, stopping, credentials)) = live.as_mut() else {
            break page;
        };
        if !page.changes.is_empty() || !page.conflicts.is_empty() || *stopping.borrow() {
            break page;
        }
        waited = true;
        tokio::select! {
            () = subscription.changed() => state.metrics.woken(),
            () = tokio::time::sleep_until(*deadline) => break page,
            _ = stopping.changed() => break page,
            _ = credentials.changed() => still_authorized(state, user, headers).await?,
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &ChangesResponse {
            changes: page.changes,
            cursor: page.cursor.to_string(),
            has_more: page.has_more,
            conflicts: page.conflicts,
        },
    ))
}

/// 401 unless the request's token still names `user`.
async fn still_authorized(
    state: &AppState,
    user: UserId,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let now = state
        .auth
        .authenticate(state.storage.as_ref(), headers)
        .await
        .map_err(|e| state.storage_error(e))?;
    if now == Some(user) {
        Ok(())
    } else {
        tracing::debug!("a held pull's token was revoked; answering 401");
        Err(unauthorized())
    }
}

/// The parameters of `GET /api/changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChangesQuery {
    since: i64,
    limit: usize,
    wait: Option<Duration>,
}

/// 410 Gone: `since` is not a cursor this server issued (not a number, or beyond the user's
/// latest change: the server was restored from an older backup, or the cursor came from
/// another server). The client pulls again from the beginning.
fn cursor_unknown(since: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        format!(
            "since: {:?} is not a cursor this server issued; pull again from the beginning (empty since)",
            since.chars().take(64).collect::<String>()
        ),
    )
}

/// `since` (empty or missing = from the start), `limit` (default 500, at most 5000) and
/// `wait` (1 to 60 seconds; anything else is refused).
fn changes_query(query: Option<&str>) -> Result<ChangesQuery, ApiError> {
    let mut since = 0;
    let mut limit = DEFAULT_CHANGES_LIMIT;
    let mut wait = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" if value.is_empty() => since = 0,
            "since" => {
                since = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| cursor_unknown(value))?;
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit: {value:?} is not a number from 1 to {MAX_CHANGES_LIMIT}"
                        ))
                    })?
                    .min(MAX_CHANGES_LIMIT);
            }
            "wait" => {
                let seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_CHANGES_WAIT_SECS).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "wait: {value:?} is not a number of seconds from 1 to {MAX_CHANGES_WAIT_SECS}"
                        ))
                    })?;
                wait = Some(Duration::from_secs(seconds));
            }
            _ => {}
        }
    }
    Ok(ChangesQuery { since, limit, wait })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(since: i64, limit: usize, wait: Option<u64>) -> ChangesQuery {
        ChangesQuery {
            since,
            limit,
            wait: wait.map(Duration::from_secs),
        }
    }

    #[test]
    fn changes_query_defaults_caps_and_refuses() {
        assert_eq!(
            changes_query(None).unwrap(),
            q(0, DEFAULT_CHANGES_LIMIT, None)
        );
        assert_eq!(
            changes_query(Some("since=")).unwrap(),
            q(0, DEFAULT_CHANGES_LIMIT, None)
        );
        assert_eq!(
            changes_query(Some("since=12&limit=7")).unwrap(),
            q(12, 7, None)
        );
        assert_eq!(
            changes_query(Some("limit=999999")).unwrap(),
            q(0, MAX_CHANGES_LIMIT, None)
        );
        assert_eq!(
            changes_query(Some("other=x")).unwrap(),
            q(0, DEFAULT_CHANGES_LIMIT, None)
        );
        assert_eq!(
            changes_query(Some("since=3&wait=1")).unwrap(),
            q(3, DEFAULT_CHANGES_LIMIT, Some(1))
        );
        assert_eq!(
            changes_query(Some("wait=60")).unwrap(),
            q(0, DEFAULT_CHANGES_LIMIT, Some(60))
        );
        for unknown in ["since=abc", "since=-1"] {
            let error = changes_query(Some(unknown)).unwrap_err();
            assert_eq!(error.status, StatusCode::GONE, "{unknown}");
        }
        for bad in [
            "limit=0", "limit=x", "wait=0", "wait=61", "wait=", "wait=-1", "wait=1.5",
        ] {
            let error = changes_query(Some(bad)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let error = parse_json::<BatchRequest>(
            br#"{"device_id":"00000000-0000-0000-0000-000000000001","client_timestamp":"nope","items":[]}"#,
        )
        .unwrap_err();
        assert!(
            error.message.starts_with("client_timestamp:"),
            "{}",
            error.message
        );
        let error = parse_json::<BatchRequest>(b"{").unwrap_err();
        assert!(
            error.message.starts_with("malformed JSON"),
            "{}",
            error.message
        );
        let error = parse_json::<BatchRequest>(b"{} x").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    /// A server on a loopback port over a fresh database; the stop sender ends it.
    async fn serve_temp() -> (
        tempfile::TempDir,
        Arc<crate::storage::sqlite::Sqlite>,
        Arc<AppState>,
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::sqlite::Sqlite::open(
            &dir.path().join("s.db"),
            crate::storage::Durability::Normal,
        )
        .expect("open store");
        let store = Arc::new(store);
        let notifier = Notifier::new();
        let state = Arc::new(AppState {
            storage: store.clone(),
            auth: Auth::new(None, notifier.credentials()),
            notifier,
            max_clock_skew_secs: 600,
            stopping: watch::Sender::new(false),
            metrics: Metrics::new(),
            metrics_here: true,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = crate::server::serve(listener, state.clone(), 64, async move {
            let _ = stopped.await;
        });
        tokio::spawn(serving);
        (dir, store, state, addr, stop)
    }

    /// Sends one request with `Connection: close` and returns the whole raw answer.
    async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
            .await
            .expect("answer in time")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_full_database_answers_503_with_retry_after_and_applies_nothing() {
        let (_dir, store, state, addr, _stop) = serve_temp().await;
        let user = state
            .storage
            .ensure_user(crate::storage::DEFAULT_USER)
            .await
            .unwrap();
        store.fill_up().unwrap();
        let at = Timestamp::now();
        let task = uuid::Uuid::now_v7();
        let body = serde_json::to_vec(&serde_json::json!({
            "device_id": uuid::Uuid::now_v7(),
            "client_timestamp": at,
            "items": [{
                "id": uuid::Uuid::now_v7(), "task_id": task, "operation": "create",
                // A long description needs new pages, which the capped file cannot grow.
                "data": {"id": task, "title": "t", "description": "x".repeat(9_000),
                         "completed": false, "created_at": at,
                         "updated_at": at, "is_deleted": false, "device_id": uuid::Uuid::nil()},
                "created_at": at
            }]
        }))
        .unwrap();
        let digest = wire::content_digest(&body);
        let answer = exchange(
            addr,
            &format!("POST /api/batch HTTP/1.1\r\nContent-Digest: {digest}"),
            &body,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains(&format!(
                "retry-after: {}",
                crate::error::STORAGE_RETRY_AFTER_SECS
            )),
            "{answer}"
        );
        assert!(answer.contains("storage unavailable"), "{answer}");
        assert!(state.storage.all_tasks(user).await.unwrap().is_empty());
        // Reads still work while writes cannot.
        let answer = exchange(addr, "GET /api/changes HTTP/1.1", b"").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_refused_request_is_read_to_its_end_so_the_client_gets_the_answer() {
        let (_dir, _store, _state, addr, _stop) = serve_temp().await;
        // 7 MiB: more than loopback's socket buffers hold, so the client is still sending
        // when the answer is made; a connection closed under it would break its pipe.
        let body = vec![b'x'; 7 * 1024 * 1024];
        let answer = exchange(addr, "PUT /api/batch HTTP/1.1", &body).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(answer.contains("\"path\":\"/api/batch\""), "{answer}");
    }

    #[tokio::test]
    async fn many_waiting_pulls_share_one_channel_and_all_wake() {
        let (_dir, _store, state, addr, _stop) = serve_temp().await;
        let pulls: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(exchange(
                    addr,
                    "GET /api/changes?since=0&wait=30 HTTP/1.1",
                    b"",
                ))
            })
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while state.notifier.users_waiting() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "pulls never waited");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(state.notifier.users_waiting(), 1);
        let user = state
            .storage
            .ensure_user(crate::storage::DEFAULT_USER)
            .await
            .unwrap();
        {
            let at = Timestamp::now();
            let task = uuid::Uuid::now_v7();
            let request = BatchInput {
                device_id: uuid::Uuid::now_v7(),
                clock: ClockLimit::new(at, 600),
                items: vec![wire::BatchItem {
                    id: uuid::Uuid::now_v7(),
                    task_id: task,
                    operation: wire::Operation::Create,
                    changed_fields: None,
                    data: wire::WireTask {
                        id: task,
                        title: "t".into(),
                        description: None,
                        completed: false,
                        created_at: at,
                        updated_at: at,
                        is_deleted: false,
                        device_id: uuid::Uuid::nil(),
                        due: None,
                        priority: None,
                        project: None,
                        tags: Default::default(),
                        attributes: Default::default(),
                    },
                    created_at: at,
                    retry_count: 0,
                    base: Default::default(),
                }],
            };
            let outcome = state.storage.apply_batch(user, request).await.unwrap();
            assert!(outcome.changed);
        }
        state.notifier.notify(user);
        for pull in pulls {
            let answer = pull.await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.contains("\"title\":\"t\""), "{answer}");
        }
        assert_eq!(state.notifier.users_waiting(), 0);
    }

    /// A push of one new task with `token`: the status line of the answer.
    async fn push_with(addr: std::net::SocketAddr, token: &str) -> String {
        let at = Timestamp::now();
        let task = uuid::Uuid::now_v7();
        let body = serde_json::to_vec(&serde_json::json!({
            "device_id": uuid::Uuid::now_v7(),
            "client_timestamp": at,
            "items": [{
                "id": uuid::Uuid::now_v7(), "task_id": task, "operation": "create",
                "data": {"id": task, "title": "t", "completed": false, "created_at": at,
                         "updated_at": at, "is_deleted": false, "device_id": uuid::Uuid::nil()},
                "created_at": at
            }]
        }))
        .unwrap();
        let digest = wire::content_digest(&body);
        let answer = exchange(
            addr,
            &format!(
                "POST /api/batch HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Digest: {digest}"
            ),
            &body,
        )
        .await;
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn a_push_with_a_just_revoked_token_is_refused_though_the_process_cached_it() {
        // No credentials watch runs here: this process never hears of the rotation, so only
        // the batch's own check of the token can refuse it.
        let (_dir, _store, state, addr, _stop) = serve_temp().await;
        let (old, new) = (crate::auth::digest(b"old"), crate::auth::digest(b"new"));
        state.storage.add_user("zoe", old).await.unwrap();
        assert_eq!(push_with(addr, "old").await, "HTTP/1.1 200 OK");
        assert_eq!(push_with(addr, "old").await, "HTTP/1.1 200 OK");
        let zoe = state
            .auth
            .cached_user(&old)
            .expect("the token's owner is cached");

        assert!(state.storage.set_token("zoe", new).await.unwrap());
        assert_eq!(state.auth.cached_user(&old), Some(zoe), "still cached");
        assert_eq!(push_with(addr, "old").await, "HTTP/1.1 401 Unauthorized");
        assert_eq!(state.auth.cached_user(&old), None, "forgotten once refused");
        assert_eq!(state.storage.all_tasks(zoe).await.unwrap().len(), 2);

        assert_eq!(push_with(addr, "new").await, "HTTP/1.1 200 OK");
        assert_eq!(state.auth.cached_user(&new), Some(zoe));
        assert!(state.storage.remove_user("zoe").await.unwrap());
        assert_eq!(push_with(addr, "new").await, "HTTP/1.1 401 Unauthorized");

        // Credentials changing anywhere empties the cache.
        state.storage.add_user("yan", old).await.unwrap();
        assert_eq!(push_with(addr, "old").await, "HTTP/1.1 200 OK");
        assert!(state.auth.cached_user(&old).is_some());
        state.notifier.credentials_changed();
        assert_eq!(state.auth.cached_user(&old), None);
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(Route::find("/api/batch"), Some(Route::Batch));
        assert_eq!(Route::find("/api/batch/"), None);
        assert_eq!(Route::Batch.method().0, Method::POST);
        assert_eq!(Route::Tasks.method().0, Method::GET);
    }
}
