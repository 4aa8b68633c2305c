//! The one error type of a request on either API, and the JSON answer it becomes.
//!
//! Every error answer has the body `{"error", "timestamp", "path"}` (docs/SYNC-PROTOCOL.md);
//! the daemon's API adds a machine-readable `code` (section 7, named as `taskctl --json`
//! names its errors), chosen with [`ErrorFields`]. Client mistakes carry a message that names
//! what was wrong; faults of the program are logged in full and answered with a generic one.

use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde::Serialize;
use tasksync_proto::{ErrorCode, Timestamp};

use crate::response::{json_response, HttpResponse};

/// A request that cannot be answered with success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Machine-readable: `not_found`, `invalid_input`, `conflict`, ... (docs/LOCAL-API.md),
    /// the same codes as IPC errors and `taskctl --json`; sent only with
    /// [`ErrorFields::WithCode`].
    pub code: ErrorCode,
    /// For 405: the methods the route takes (`Allow`).
    pub allow: Option<&'static str>,
    /// Seconds the client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u32>,
}

/// Which fields an API's error bodies carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFields {
    /// `{error, timestamp, path}`: the sync server (docs/SYNC-PROTOCOL.md).
    Plain,
    /// `{error, code, timestamp, path}`: the daemon's API (docs/LOCAL-API.md).
    WithCode,
}

/// The body of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    timestamp: Timestamp,
    path: &'a str,
}

/// The code an error of this status has unless a more precise one is given.
fn default_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::InvalidInput,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::Timeout,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::TooLarge,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code: default_code(status),
            allow: None,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn no_route(path: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no route for {path}"))
    }

    pub fn method_not_allowed(method: &Method, allow: &'static str) -> Self {
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

    /// A fault of the program itself: logged here, answered without details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The HTTP answer for a request to `path`; a 401 says which scheme to use.
    pub fn into_response(self, path: &str, fields: ErrorFields) -> HttpResponse {
        let body = ErrorBody {
            error: &self.message,
            code: (fields == ErrorFields::WithCode).then_some(self.code),
            timestamp: Timestamp::now(),
            path,
        };
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use serde_json::Value;

    use super::*;

    async fn body(response: HttpResponse) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_bodies_name_error_time_and_path_and_a_code_where_asked() {
        let error = ApiError::method_not_allowed(&Method::PATCH, "GET, PUT, DELETE");
        let response = error
            .clone()
            .into_response("/api/tasks/x", ErrorFields::WithCode);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, PUT, DELETE");
        let with_code = body(response).await;
        assert_eq!(with_code["path"], "/api/tasks/x");
        assert!(with_code["error"].as_str().unwrap().contains("PATCH"));
        assert_eq!(with_code["code"], "method_not_allowed");
        assert!(with_code["timestamp"].as_str().unwrap().ends_with('Z'));

        let plain = body(error.into_response("/api/tasks/x", ErrorFields::Plain)).await;
        let mut keys: Vec<_> = plain.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["error", "path", "timestamp"]);
    }

    #[tokio::test]
    async fn unauthorized_and_retry_after_carry_their_headers() {
        let response = ApiError::new(StatusCode::UNAUTHORIZED, "who are you")
            .into_response("/api/batch", ErrorFields::Plain);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert!(response.headers().get(RETRY_AFTER).is_none());
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy")
            .with_retry_after(5)
            .into_response("/api/batch", ErrorFields::Plain);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn codes_follow_the_status_unless_named() {
        assert_eq!(ApiError::bad_request("x").code, ErrorCode::InvalidInput);
        assert_eq!(ApiError::no_route("/x").code, ErrorCode::NotFound);
        assert_eq!(ApiError::too_large("x").code, ErrorCode::TooLarge);
        let internal = ApiError::internal("database", &"secret detail");
        assert_eq!(internal.code, ErrorCode::Internal);
        assert!(!internal.message.contains("secret"));
        let forbidden = ApiError::new(StatusCode::FORBIDDEN, "no").with_code(ErrorCode::Ambiguous);
        assert_eq!(forbidden.code, ErrorCode::Ambiguous);
    }

    /// Every status the APIs answer with has the code docs/LOCAL-API.md lists, by the one
    /// enum's serde name.
    #[test]
    fn default_codes_are_the_documented_names() {
        let table = [
            (400, "invalid_input"),
            (401, "unauthorized"),
            (403, "permission_denied"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (408, "timeout"),
            (409, "conflict"),
            (413, "too_large"),
            (500, "internal"),
            (503, "unavailable"),
        ];
        for (status, name) in table {
            let code = default_code(StatusCode::from_u16(status).unwrap());
            assert_eq!(serde_json::to_value(code).unwrap(), name, "{status}");
            assert_eq!(code.as_str(), name);
        }
    }
}
