//! Which path is which route, and which methods each route takes. Pure; no I/O.
//!
//! Paths match exactly: no trailing slash, no extra segments. The `:id` of
//! `/api/tasks/:id` is any one non-empty segment here; [`parse_task_id`] then accepts only a
//! full UUID (a 400 otherwise), so a typo never reaches the store.

use hyper::Method;
use uuid::Uuid;

use tasksync_http::ApiError;

pub(crate) const HEALTH: &str = "/api/health";
pub(crate) const TASKS: &str = "/api/tasks";
pub(crate) const SYNC: &str = "/api/sync";
pub(crate) const STATUS: &str = "/api/status";
pub(crate) const EVENTS: &str = "/api/events";
pub(crate) const METRICS: &str = "/api/metrics";
/// The suffix of a task's history: `/api/tasks/:id/history`.
const HISTORY: &str = "/history";
const RESTORE: &str = "/restore";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Health,
    Tasks,
    /// `/api/tasks/:id`, with the raw segment.
    Task(&'a str),
    /// `/api/tasks/:id/history`, with the raw id segment.
    TaskHistory(&'a str),
    /// `/api/tasks/:id/restore`, with the raw id segment.
    TaskRestore(&'a str),
    Sync,
    Status,
    Events,
    Metrics,
}

impl<'a> Route<'a> {
    pub(crate) fn find(path: &'a str) -> Option<Route<'a>> {
        match path {
            HEALTH => Some(Route::Health),
            TASKS => Some(Route::Tasks),
            SYNC => Some(Route::Sync),
            STATUS => Some(Route::Status),
            EVENTS => Some(Route::Events),
            METRICS => Some(Route::Metrics),
            _ => {
                let id = path.strip_prefix(TASKS)?.strip_prefix('/')?;
                if let Some(id) = id.strip_suffix(HISTORY) {
                    return (!id.is_empty() && !id.contains('/')).then_some(Route::TaskHistory(id));
                }
                if let Some(id) = id.strip_suffix(RESTORE) {
                    return (!id.is_empty() && !id.contains('/')).then_some(Route::TaskRestore(id));
                }
                (!id.is_empty() && !id.contains('/')).then_some(Route::Task(id))
            }
        }
    }

    /// The methods this route takes, as the `Allow` header lists them. HEAD goes wherever
    /// GET does.
    pub(crate) fn allow(self) -> &'static str {
        match self {
            Route::Health
            | Route::Status
            | Route::Events
            | Route::Metrics
            | Route::TaskHistory(_) => "GET, HEAD",
            Route::Tasks => "GET, HEAD, POST",
            Route::Task(_) => "GET, HEAD, PUT, DELETE",
            Route::Sync | Route::TaskRestore(_) => "POST",
        }
    }

    pub(crate) fn takes(self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// Every route but the health check needs the bearer token.
    pub(crate) fn needs_token(self) -> bool {
        self != Route::Health
    }
}

/// The id of `/api/tasks/:id`: a full UUID in its usual hyphenated form (either case).
/// Unique prefixes, as `taskctl` accepts them, are not taken here: an API client always has
/// the full id from an earlier answer.
pub(crate) fn parse_task_id(segment: &str) -> Result<Uuid, ApiError> {
    let refuse = || {
        let shown: String = segment.chars().take(64).collect();
        ApiError::bad_request(format!(
            "task id {shown:?} is not a UUID: expected the full id, e.g. \
             0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70"
        ))
    };
    if segment.len() != 36 {
        return Err(refuse());
    }
    Uuid::try_parse(segment).map_err(|_| refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_exactly() {
        assert_eq!(Route::find("/api/health"), Some(Route::Health));
        assert_eq!(Route::find("/api/tasks"), Some(Route::Tasks));
        assert_eq!(Route::find("/api/tasks/abc"), Some(Route::Task("abc")));
        assert_eq!(Route::find("/api/sync"), Some(Route::Sync));
        assert_eq!(Route::find("/api/status"), Some(Route::Status));
        assert_eq!(Route::find("/api/events"), Some(Route::Events));
        assert_eq!(Route::find("/api/metrics"), Some(Route::Metrics));
        assert_eq!(
            Route::find("/api/tasks/abc/history"),
            Some(Route::TaskHistory("abc"))
        );
        assert!(Route::TaskHistory("abc").takes(&Method::GET));
        assert!(!Route::TaskHistory("abc").takes(&Method::PUT));
        assert_eq!(
            Route::find("/api/tasks/abc/restore"),
            Some(Route::TaskRestore("abc"))
        );
        assert!(Route::TaskRestore("abc").takes(&Method::POST));
        assert!(!Route::TaskRestore("abc").takes(&Method::GET));
        for none in [
            "/api/tasks//history",
            "/api/tasks/a/b/history",
            "/api/tasks/a/history/",
            "/",
            "/api",
            "/api/tasks/",
            "/api/tasks/a/b",
            "/api/tasksx",
            "/api/health/",
            "/api/taskss/a",
        ] {
            assert_eq!(Route::find(none), None, "{none}");
        }
    }

    #[test]
    fn methods_per_route() {
        assert!(Route::Tasks.takes(&Method::GET));
        assert!(Route::Tasks.takes(&Method::POST));
        assert!(!Route::Tasks.takes(&Method::DELETE));
        assert!(Route::Task("x").takes(&Method::PUT));
        assert!(!Route::Task("x").takes(&Method::POST));
        assert!(Route::Sync.takes(&Method::POST));
        assert!(!Route::Sync.takes(&Method::GET));
        assert!(Route::Health.takes(&Method::HEAD));
        assert!(Route::Task("x").takes(&Method::HEAD));
        assert!(!Route::Sync.takes(&Method::HEAD));
        assert!(!Route::Health.needs_token());
        assert!(Route::Status.needs_token());
    }

    #[test]
    fn task_ids_are_full_uuids() {
        let id = "0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70";
        assert_eq!(parse_task_id(id).unwrap().to_string(), id);
        assert!(parse_task_id(&id.to_uppercase()).is_ok());
        for bad in [
            "0190b6e2",
            "0190b6e27c1e7a3d9f002b8c4d5e6f70",
            "{0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70}",
            "0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f7g",
            "not-a-uuid",
        ] {
            let error = parse_task_id(bad).unwrap_err();
            assert_eq!(error.status, hyper::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
