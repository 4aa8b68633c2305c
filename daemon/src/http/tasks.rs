//! The task routes: `GET/POST /api/tasks`, `GET/PUT/DELETE /api/tasks/:id` and
//! `GET /api/tasks/:id/history`.
//!
//! Bodies are the original challenge's plus the fields of docs/LOCAL-API.md "A task": create
//! `{title, description?, id?, due?, priority?, project?, tags?, attributes?}` (a
//! client-chosen id makes the create safe to retry), update
//! `{title?, description?, completed?, due?, priority?, project?, tags?, add_tags?,
//! remove_tags?, attributes?}`; unknown fields are refused. Answers are the `Task`
//! JSON shape (the same as `taskctl --json show`). What a valid title or description is, and
//! that an update must change something, is decided by `tasksync_proto::task` inside the
//! store, as for IPC commands. Tombstones are invisible here: a deleted task is a 404.

use std::sync::Arc;

use hyper::header::{HeaderValue, ETAG, IF_MATCH, LINK, LOCATION};
use hyper::HeaderMap;
use hyper::StatusCode;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use tasksync_proto::ipc::{PageCursor, TaskHistoryJson, MAX_PAGE_TASKS};
use tasksync_proto::task::TaskJson;

use tasksync_proto::{NewTask, Priority, Task, TaskPatch, Timestamp};
use uuid::Uuid;

use tasksync_http::body::RequestBody;
use tasksync_http::json::parse_json;
use tasksync_http::{empty_response, json_response, ApiError, HttpResponse};

use super::query::{self, Query};
use super::routes::{parse_task_id, TASKS};
use crate::app::App;
use crate::store::{StoreError, TaskFilter};

/// `POST /api/tasks/:id/restore` body: the history entry whose earlier value to put back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    entry: i64,
}

/// `POST /api/tasks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    due: Option<Timestamp>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    tags: BTreeSet<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// `PUT /api/tasks/:id` body. A field left out stays as it is; `null` clears `description`,
/// `due`, `priority`, `project` and `tags`, and an attribute key set to `null` removes it;
/// `null` for `title` or `completed` is refused. `tags` replaces the set; `add_tags` and
/// `remove_tags` change only the tags they name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    completed: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    due: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    priority: Option<Option<Priority>>,
    #[serde(default, deserialize_with = "present")]
    project: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<BTreeSet<String>>>,
    #[serde(default)]
    add_tags: BTreeSet<String>,
    #[serde(default)]
    remove_tags: BTreeSet<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Option<String>>,
}

/// A field that is in the body, whatever its value (serde calls this only for those).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// What `GET /api/tasks` was asked for.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    filter: TaskFilter,
    limit: Option<usize>,
    after: Option<Uuid>,
}

fn list_query(raw: &str) -> Result<ListQuery, ApiError> {
    let query = Query::parse(raw)?;
    query.only_repeating(
        &[
            "completed",
            "include_deleted",
            "q",
            "limit",
            "after",
            "tag",
            "project",
            "due_before",
            "due_after",
            "priority",
        ],
        &["tag"],
    )?;
    let limit = query
        .number("limit", 1, u64::from(MAX_PAGE_TASKS))?
        .map(|n| n as usize);
    let after = match query.get("after") {
        Some(id) => Some(parse_task_id(id)?),
        None => None,
    };
    let text = query.get("q").filter(|q| !q.is_empty()).map(str::to_owned);
    Ok(ListQuery {
        filter: TaskFilter {
            completed: query.flag("completed")?,
            include_deleted: query.flag("include_deleted")?.unwrap_or(false),
            text,
            tags: query.all("tag"),
            project: query.get("project").map(str::to_owned),
            due_before: query.parsed("due_before")?,
            due_after: query.parsed("due_after")?,
            priority: query.parsed("priority")?,
        },
        limit,
        after,
    })
}

/// `GET /api/tasks`: tasks, newest first, filtered and paged as the query asks; a bare array,
/// with `Link: <...>; rel="next"` while more remain.
pub(crate) async fn list(app: &Arc<App>, raw_query: &str) -> Result<HttpResponse, ApiError> {
    let asked = list_query(raw_query)?;
    let filter = asked.filter.clone();
    let (limit, after) = (asked.limit, asked.after);
    let page = app
        .scan(move |app| {
            let store = &app.store;
            // The cursor is the task named by `after`; `None` if there is no such task.
            let cursor = match after {
                Some(id) => match store.get(id) {
                    Ok(task) => Some(PageCursor {
                        created_at: task.created_at,
                        id: task.id,
                    }),
                    Err(StoreError::NotFound(_)) => return Ok(None),
                    Err(error) => return Err(error),
                },
                None => None,
            };
            Ok(Some(store.filtered(&filter, cursor, limit)?))
        })
        .await?;
    let Some((tasks, next)) = page else {
        return Err(ApiError::bad_request(format!(
            "after: no task has the id {}",
            after.map(|id| id.to_string()).unwrap_or_default()
        )));
    };
    let views: Vec<TaskJson<'_>> = tasks.iter().map(TaskJson::from).collect();
    let mut response = json_response(StatusCode::OK, &views);
    if let Some(next) = next {
        let link = format!(
            "<{TASKS}?{}>; rel=\"next\"",
            query::next_page(raw_query, &next.id.to_string())
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}

/// `GET /api/tasks/:id`.
pub(crate) async fn get(app: &App, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    // A point read: inline (see `App::scan`).
    let task = live(app.store.get(id)?)?;
    Ok(task_response(StatusCode::OK, &task))
}

/// `GET /api/tasks/:id/history`: the task's local history, newest first. The id is taken as
/// for `GET /api/tasks/:id`; a deleted task's history is served (that is how its values are
/// recovered), a task this device never had is a 404.
pub(crate) async fn history(app: &Arc<App>, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    let history = app.scan(move |app| app.store.history(id)).await?;
    Ok(json_response(
        StatusCode::OK,
        &TaskHistoryJson::from(&history),
    ))
}

/// `POST /api/tasks/:id/restore`: puts back the value before a history entry (the value a
/// conflict entry shows as lost), as a new edit; answers the task with its `ETag`.
pub(crate) async fn restore(
    app: &App,
    id: &str,
    body: &mut RequestBody,
) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    let input: RestoreBody = parse_json(&body.bytes().await?)?;
    let task = app.restore(id, input.entry).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// One task: its JSON (with `etag`) and the same tag in an `ETag` header.
fn task_response(status: StatusCode, task: &Task) -> HttpResponse {
    let mut response = json_response(status, &TaskJson::from(task));
    if let Ok(tag) = HeaderValue::from_str(&task.etag()) {
        response.headers_mut().insert(ETAG, tag);
    }
    response
}

/// The `If-Match` precondition of a request, if it has one (several header lines are one
/// comma-separated list).
fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut tags = Vec::new();
    for value in headers.get_all(IF_MATCH) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request("If-Match: not an entity tag"))?;
        tags.push(value.to_string());
    }
    Ok((!tags.is_empty()).then(|| tags.join(", ")))
}

/// `POST /api/tasks`: 201 with the task and its `Location`; with a client-chosen `id` that
/// was already created with the same content, 200 with that task (nothing new is queued).
pub(crate) async fn create(app: &App, body: &mut RequestBody) -> Result<HttpResponse, ApiError> {
    let input: CreateBody = parse_json(&body.bytes().await?)?;
    let (task, created) = app
        .create_once(NewTask {
            title: input.title,
            description: input.description,
            id: input.id,
            due: input.due,
            priority: input.priority,
            project: input.project,
            tags: input.tags,
            attributes: input.attributes,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = task_response(status, &task);
    if let Ok(location) = HeaderValue::from_str(&format!("{TASKS}/{}", task.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// `PUT /api/tasks/:id`: with `If-Match`, only while the task still has that entity tag (412
/// otherwise, nothing changed); a body that changes no value is answered with the task as it
/// is, and nothing is queued or announced.
pub(crate) async fn update(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    let precondition = if_match(headers)?;
    let input: UpdateBody = parse_json(&body.bytes().await?)?;
    let patch = TaskPatch {
        title: input.title,
        description: input.description,
        completed: input.completed,
        due: input.due,
        priority: input.priority,
        project: input.project,
        tags: input.tags.map(Option::unwrap_or_default),
        add_tags: input.add_tags,
        remove_tags: input.remove_tags,
        attributes: input.attributes,
    };
    let task = app.update_if(id, patch, precondition).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// `DELETE /api/tasks/:id`: a soft delete; 204 (412 with a stale `If-Match`).
pub(crate) async fn delete(
    app: &App,
    id: &str,
    headers: &HeaderMap,
) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    app.delete_if(id, if_match(headers)?).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

fn live(task: Task) -> Result<Task, StoreError> {
    if task.is_deleted {
        return Err(StoreError::NotFound(task.id.to_string()));
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(body: &str) -> Result<UpdateBody, ApiError> {
        parse_json(body.as_bytes())
    }

    #[test]
    fn update_bodies_tell_absent_from_null() {
        let body = update(r#"{"completed": true}"#).unwrap();
        assert_eq!(
            (body.title, body.description, body.completed),
            (None, None, Some(true))
        );
        let body = update(r#"{"description": null}"#).unwrap();
        assert_eq!(body.description, Some(None));
        let body = update(r#"{"description": "d", "title": "t"}"#).unwrap();
        assert_eq!(body.description, Some(Some("d".into())));
        assert_eq!(body.title.as_deref(), Some("t"));
        for bad in [
            r#"{"title": null}"#,
            r#"{"completed": null}"#,
            r#"{"completed": "yes"}"#,
            r#"{"title": 1}"#,
            r#"{"is_deleted": true}"#,
            r#"[]"#,
        ] {
            assert_eq!(
                update(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn list_queries_filter_and_page() {
        let asked =
            list_query("completed=false&q=Milk%20two&limit=2&include_deleted=true").unwrap();
        assert_eq!(asked.filter.completed, Some(false));
        assert!(asked.filter.include_deleted);
        assert_eq!(asked.filter.text.as_deref(), Some("Milk two"));
        assert_eq!(asked.limit, Some(2));
        assert_eq!(list_query("").unwrap().filter, TaskFilter::default());
        for bad in [
            "completed=yes",
            "limit=0",
            "limit=x",
            "limit=1001",
            "after=abc",
            "sort=title",
        ] {
            let error = list_query(bad).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn create_bodies_need_a_string_title_and_nothing_else() {
        let body: CreateBody = parse_json(br#"{"title": "t", "description": null}"#).unwrap();
        assert_eq!((body.title.as_str(), body.description), ("t", None));
        for bad in [
            r#"{}"#,
            r#"{"title": null}"#,
            r#"{"title": 3}"#,
            r#"{"title": "t", "completed": true}"#,
            r#"{"title": "t", "id": "not-a-uuid"}"#,
        ] {
            let error = parse_json::<CreateBody>(bad.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
