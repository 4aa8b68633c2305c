//! The one error type of a request, and how it (or a success) becomes an HTTP answer.
//!
//! Every error answer has the body `{"error", "code", "timestamp", "path"}`: the sync
//! server's fields plus a machine-readable `code`, named as `taskctl --json` names its errors.
//! Client mistakes carry a message that names what was wrong; faults of the daemon are logged
//! in full and answered with a generic message.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use tasksync_proto::Timestamp;
use tokio::sync::mpsc;

use crate::store::StoreError;

pub type HttpResponse = Response<ApiBody>;

/// An answer's body: all at once, or a stream (the event stream) fed through a channel.
pub struct ApiBody(Inner);

enum Inner {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl ApiBody {
    pub fn full(bytes: Bytes) -> Self {
        ApiBody(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn empty() -> Self {
        ApiBody(Inner::Full(None))
    }

    /// A body that sends what arrives on `rx` and ends when every sender is gone.
    pub fn stream(rx: mpsc::Receiver<Bytes>) -> Self {
        ApiBody(Inner::Stream(rx))
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.0, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(_) => SizeHint::default(),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
    pub timestamp: Timestamp,
    pub path: String,
}

/// A request that cannot be answered with success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Machine-readable: `not_found`, `invalid_input`, `conflict`, ... (see docs/LOCAL-API.md).
    pub code: &'static str,
    /// For 405: the methods the route takes.
    pub allow: Option<&'static str>,
}

/// The code an error of this status has unless a more precise one is given.
fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_input",
        401 => "unauthorized",
        403 => "permission_denied",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "too_large",
        503 => "unavailable",
        _ => "internal",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code: default_code(status),
            allow: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send Authorization: Bearer <token> \
             (`taskctl api-token` prints it)",
        )
    }

    pub fn no_route(path: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no route for {path}"))
    }

    pub fn method_not_allowed(method: &hyper::Method, allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} is not allowed here; use {allow}"),
            )
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// A fault of the daemon itself: logged here, answered without details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("HTTP API: {context}: {error}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The HTTP answer for a request to `path`.
    pub fn into_response(self, path: &str) -> HttpResponse {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_string(),
            timestamp: Timestamp::now(),
            path: path.to_owned(),
        };
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Ambiguous { .. } => {
                return ApiError::new(StatusCode::BAD_REQUEST, error.to_string())
                    .with_code("ambiguous")
            }
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Closed | StoreError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Not a secret, and the user must see it: the write was refused, not lost.
            StoreError::Clock(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreError::Open { .. }
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::AlreadyCreated(_) => {
                return ApiError::internal("database", &error);
            }
        };
        ApiError::new(status, error.to_string())
    }
}

/// A JSON answer with the given status.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = with_status(status, Bytes::from(bytes));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            tracing::error!("HTTP API: could not encode a response: {error}");
            let mut response = with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"{\"error\":\"internal error\"}"),
            );
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
    }
}

/// An answer without a body (204).
pub fn empty_response(status: StatusCode) -> HttpResponse {
    with_status(status, Bytes::new())
}

fn with_status(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(ApiBody::full(body));
    *response.status_mut() = status;
    // Answers carry tasks and tokens-protected state: nothing for a cache to keep.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tasksync_proto::ValidationError;

    async fn body(response: HttpResponse) -> ErrorBody {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_bodies_name_error_time_and_path() {
        let response = ApiError::method_not_allowed(&hyper::Method::PATCH, "GET, PUT, DELETE")
            .into_response("/api/tasks/x");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, PUT, DELETE");
        let body = body(response).await;
        assert_eq!(body.path, "/api/tasks/x");
        assert!(body.error.contains("PATCH"), "{}", body.error);
        assert_eq!(body.code, "method_not_allowed");
    }

    #[tokio::test]
    async fn store_errors_map_to_status_codes() {
        let cases = [
            (StoreError::Invalid(ValidationError::EmptyTitle), 400),
            (StoreError::NotFound("x".into()), 404),
            (StoreError::Conflict("other content".into()), 409),
            (StoreError::Closed, 503),
            (StoreError::Storage("disk full".into()), 503),
            (StoreError::Corrupt("bad".into()), 500),
        ];
        for (error, status) in cases {
            let error = ApiError::from(error);
            assert_eq!(error.status.as_u16(), status, "{error:?}");
        }
        let internal = ApiError::from(StoreError::Corrupt("secret detail".into()));
        assert!(!internal.message.contains("secret"));
    }

    #[tokio::test]
    async fn unauthorized_says_how_to_authenticate() {
        let response = ApiError::unauthorized().into_response("/api/tasks");
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert!(body(response).await.error.contains("Bearer"));
    }
}
