//! How a failed storage call becomes an answer. A storage that is full, busy or unreachable
//! is 503 with `Retry-After`, never a bare 500 (docs/SYNC-PROTOCOL.md, section 7). The error type and its
//! `{error, timestamp, path}` body are `tasksync_http`'s.

use hyper::StatusCode;
use tasksync_http::ApiError;

use crate::storage::StorageError;

/// The `Retry-After` of a 503 caused by the storage (full, busy, unreachable).
pub(crate) const STORAGE_RETRY_AFTER_SECS: u32 = 5;

/// The answer to a failed storage call.
pub(crate) fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::Unavailable(_) => unavailable("storage", &error),
        StorageError::NoSuchUser => unauthorized(),
        other => ApiError::internal("storage", &other),
    }
}

/// The storage cannot take the request now (full, busy, unreachable): 503 with
/// `Retry-After`, so a client waits without counting an attempt against its operations.
pub(crate) fn unavailable(context: &str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!("{context} unavailable: {error}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable (full, busy or unreachable); try again later",
    )
    .with_retry_after(STORAGE_RETRY_AFTER_SECS)
}

/// The answer to a request without a token that names a user.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (Authorization: Bearer <token>)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_faults_are_503_with_retry_after_or_a_quiet_500() {
        let busy = storage_error(StorageError::Unavailable("disk full".into()));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.retry_after, Some(STORAGE_RETRY_AFTER_SECS));
        let gone = storage_error(StorageError::NoSuchUser);
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
        let broken = storage_error(StorageError::Internal("secret detail".into()));
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!broken.message.contains("secret"));
    }
}
