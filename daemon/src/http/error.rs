//! How the store's errors become answers: a status, and a `code` where the status alone is
//! not precise enough. The error type itself and its JSON body are `tasksync_http`'s.

use hyper::StatusCode;
use tasksync_http::ApiError;
use tasksync_proto::ErrorCode;

use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::Invalid(_)
            | StoreError::InvalidImport(_)
            | StoreError::CannotRestore(_) => StatusCode::BAD_REQUEST,
            StoreError::Ambiguous { .. } => {
                return ApiError::new(StatusCode::BAD_REQUEST, error.to_string())
                    .with_code(ErrorCode::Ambiguous)
            }
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::PreconditionFailed { .. } => {
                return ApiError::new(StatusCode::PRECONDITION_FAILED, error.to_string())
                    .with_code(ErrorCode::PreconditionFailed)
            }
            StoreError::Closed | StoreError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Not a secret, and the user must see it: the write was refused, not lost.
            StoreError::Clock(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreError::Open { .. }
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::NoWal { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::ReadFailed(_) => {
                return ApiError::internal("HTTP API: database", &error);
            }
        };
        ApiError::new(status, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::ValidationError;

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
}
