//! Routing, request bodies and the four handlers of DESIGN.md section 4.
//!
//! Order of checks for every request: route (404), method (405), bearer token (401, except
//! `/api/health`), then the handler. `POST /api/batch` reads at most
//! [`MAX_BODY_BYTES`] (413), verifies `Content-Digest` over the exact bytes (400), parses them
//! (400 naming the field), caps the items (413), and only then applies anything.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tasksync_proto::wire::{
    self, BatchRequest, ChangesResponse, HealthResponse, BATCH_PATH, CHANGES_PATH,
    CONTENT_DIGEST_HEADER, DEFAULT_CHANGES_LIMIT, HEALTH_PATH, MAX_BATCH_ITEMS, MAX_BODY_BYTES,
    MAX_CHANGES_LIMIT, TASKS_PATH,
};
use tasksync_proto::Timestamp;

use crate::auth::Auth;
use crate::batch;
use crate::error::{json_response, ApiError};
use crate::store::Store;

/// What every request handler shares.
pub struct AppState {
    pub store: Arc<Store>,
    pub auth: Auth,
}

type HttpResponse = Response<Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Batch,
    Changes,
    Tasks,
}

impl Route {
    fn find(path: &str) -> Option<Route> {
        match path {
            HEALTH_PATH => Some(Route::Health),
            BATCH_PATH => Some(Route::Batch),
            CHANGES_PATH => Some(Route::Changes),
            TASKS_PATH => Some(Route::Tasks),
            _ => None,
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
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = match route(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%method, %path, status = %error.status, "refused: {}", error.message);
            error.into_response(&path)
        }
    };
    tracing::trace!(%method, %path, status = %response.status(), "answered");
    Ok(response)
}

async fn route(state: &AppState, request: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let path = request.uri().path();
    let route = Route::find(path).ok_or_else(|| ApiError::not_found(path))?;
    let (method, allow) = route.method();
    if request.method() != method {
        return Err(ApiError::method_not_allowed(request.method(), allow));
    }
    if route != Route::Health {
        let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        if !state.auth.allows(authorization) {
            return Err(ApiError::unauthorized());
        }
    }
    match route {
        Route::Health => Ok(json_response(
            StatusCode::OK,
            &HealthResponse {
                status: "ok".into(),
                timestamp: Timestamp::now(),
            },
        )),
        Route::Batch => push(state, request).await,
        Route::Changes => pull(state, request.uri().query()).await,
        Route::Tasks => {
            let store = state.store.clone();
            let tasks = blocking(move || store.all_tasks()).await?;
            Ok(json_response(StatusCode::OK, &tasks))
        }
    }
}

async fn push(state: &AppState, request: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let digest = request
        .headers()
        .get(CONTENT_DIGEST_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
        .map(str::to_owned);
    let body = read_body(request).await?;
    wire::verify_content_digest(digest.as_deref(), &body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let batch: BatchRequest = parse_json(&body)?;
    if batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::too_large(format!(
            "items: {} items in one batch; the limit is {MAX_BATCH_ITEMS}",
            batch.items.len()
        )));
    }
    let store = state.store.clone();
    let response = blocking(move || batch::apply(&store, &batch)).await?;
    Ok(json_response(StatusCode::OK, &response))
}

async fn pull(state: &AppState, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let (since, limit) = changes_query(query)?;
    let store = state.store.clone();
    let page = blocking(move || store.changes(since, limit)).await?;
    Ok(json_response(
        StatusCode::OK,
        &ChangesResponse {
            changes: page.changes,
            cursor: page.cursor.to_string(),
            has_more: page.has_more,
        },
    ))
}

/// `since` (empty or missing = from the start) and `limit` (default 500, at most 5000).
fn changes_query(query: Option<&str>) -> Result<(i64, usize), ApiError> {
    let mut since = 0;
    let mut limit = DEFAULT_CHANGES_LIMIT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" if value.is_empty() => since = 0,
            "since" => {
                since = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "since: {value:?} is not a cursor returned by this server"
                        ))
                    })?;
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
            _ => {}
        }
    }
    Ok((since, limit))
}

/// The whole body, refusing more than [`MAX_BODY_BYTES`] with 413.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("body is larger than {MAX_BODY_BYTES} bytes"));
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the body: {error}"
        ))),
    }
}

/// Parses JSON; the message of a failure names the field (`items[2].data.title: ...`).
///
/// The fast parser runs first; only a body it refuses is parsed again with path tracking.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => match deserializer.end() {
            Ok(()) => return Err(ApiError::bad_request("invalid JSON")),
            Err(error) => return Err(ApiError::bad_request(format!("invalid JSON: {error}"))),
        },
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    Err(if path == "." || inner.is_syntax() || inner.is_eof() {
        ApiError::bad_request(format!("invalid JSON: {inner}"))
    } else {
        ApiError::bad_request(format!("{path}: {inner}"))
    })
}

/// Runs a store call on the blocking pool; its failures are server faults (500).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ApiError::internal("database", &error)),
        Err(error) => Err(ApiError::internal("database task", &error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_query_defaults_caps_and_refuses() {
        assert_eq!(changes_query(None).unwrap(), (0, DEFAULT_CHANGES_LIMIT));
        assert_eq!(
            changes_query(Some("since=")).unwrap(),
            (0, DEFAULT_CHANGES_LIMIT)
        );
        assert_eq!(changes_query(Some("since=12&limit=7")).unwrap(), (12, 7));
        assert_eq!(
            changes_query(Some("limit=999999")).unwrap(),
            (0, MAX_CHANGES_LIMIT)
        );
        assert_eq!(
            changes_query(Some("other=x")).unwrap(),
            (0, DEFAULT_CHANGES_LIMIT)
        );
        for bad in ["since=abc", "since=-1", "limit=0", "limit=x"] {
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
            error.message.starts_with("invalid JSON"),
            "{}",
            error.message
        );
        let error = parse_json::<BatchRequest>(b"{} x").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(Route::find("/api/batch"), Some(Route::Batch));
        assert_eq!(Route::find("/api/batch/"), None);
        assert_eq!(Route::Batch.method().0, Method::POST);
        assert_eq!(Route::Tasks.method().0, Method::GET);
    }
}
