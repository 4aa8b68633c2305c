//! The one error type of a request, and how it (or a success) becomes an HTTP answer.
//!
//! Every error answer has the body `{"error", "timestamp", "path"}`, as the sync server's.
//! Client mistakes carry a message that names what was wrong; faults of the daemon are logged
//! in full and answered with a generic message.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use tasksync_proto::wire::ErrorBody;
use tasksync_proto::Timestamp;

use crate::store::StoreError;

pub type HttpResponse = Response<Full<Bytes>>;

/// A request that cannot be answered with success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For 405: the methods the route takes.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
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
            StoreError::Invalid(_) | StoreError::Ambiguous { .. } => StatusCode::BAD_REQUEST,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Closed | StoreError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Open { .. } | StoreError::Sqlite(_) | StoreError::Corrupt(_) => {
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
    let mut response = Response::new(Full::new(body));
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
    }

    #[tokio::test]
    async fn store_errors_map_to_status_codes() {
        let cases = [
            (StoreError::Invalid(ValidationError::EmptyTitle), 400),
            (StoreError::NotFound("x".into()), 404),
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
