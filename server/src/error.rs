//! The one error type of a request, and how it becomes an HTTP answer.
//!
//! Every error answer has the body `{"error", "timestamp", "path"}` (DESIGN.md section 4).
//! Client mistakes carry a message that names what was wrong; server faults are logged in
//! full but answered with a generic message.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use tasksync_proto::wire::ErrorBody;
use tasksync_proto::Timestamp;

/// A request that cannot be answered with success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For 405: the method the route accepts.
    pub allow: Option<&'static str>,
    /// For 503: seconds the client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u32>,
}

/// The `Retry-After` of a 503 caused by the storage (full, busy, unreachable).
pub const STORAGE_RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }

    pub fn not_found(path: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no route for {path}"))
    }

    pub fn method_not_allowed(method: &hyper::Method, allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} not allowed here; use {allow}"),
            )
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// The storage cannot take the request now (full, busy, unreachable): 503 with
    /// `Retry-After`, so a client waits without counting an attempt against its operations.
    pub fn unavailable(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::warn!("{context} unavailable: {error}");
        ApiError {
            retry_after: Some(STORAGE_RETRY_AFTER_SECS),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable (full, busy or unreachable); try again later",
            )
        }
    }

    /// A fault of the server itself: logged here, answered without details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }

    /// The HTTP answer for a request to `path`.
    pub fn into_response(self, path: &str) -> Response<Full<Bytes>> {
        let body = ErrorBody {
            error: self.message,
            timestamp: Timestamp::now(),
            path: path.to_owned(),
        };
        let mut response = json_response(self.status, &body);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON answer with the given status.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            tracing::error!("could not encode a response: {error}");
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"{\"error\":\"internal server error\"}",
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn error_bodies_name_error_time_and_path() {
        let response =
            ApiError::method_not_allowed(&hyper::Method::PUT, "GET").into_response("/api/tasks");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.path, "/api/tasks");
        assert!(body.error.contains("PUT"));
    }
}
