//! The task routes: `GET/POST /api/tasks` and `GET/PUT/DELETE /api/tasks/:id`.
//!
//! Bodies are the original challenge's: create `{title, description?}`, update
//! `{title?, description?, completed?}`; unknown fields are refused. Answers are the `Task`
//! JSON shape (the same as `taskctl --json show`). What a valid title or description is, and
//! that an update must change something, is decided by `tasksync_proto::task` inside the
//! store, as for IPC commands. Tombstones are invisible here: a deleted task is a 404.

use std::sync::Arc;

use hyper::header::{HeaderValue, LOCATION};
use hyper::StatusCode;
use serde::{Deserialize, Deserializer};
use tasksync_proto::{NewTask, Task, TaskPatch};

use super::body::{parse_json, RequestBody};
use super::error::{empty_response, json_response, ApiError, HttpResponse};
use super::routes::{parse_task_id, TASKS};
use crate::app::App;
use crate::store::{Store, StoreError};

/// `POST /api/tasks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

/// `PUT /api/tasks/:id` body. A field left out stays as it is; `"description": null` clears
/// the description; `null` for `title` or `completed` is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    completed: Option<bool>,
}

/// A field that is in the body, whatever its value (serde calls this only for those).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `GET /api/tasks`: live tasks, newest first.
pub async fn list(app: &App) -> Result<HttpResponse, ApiError> {
    let tasks = read(app, |store| store.list(false, None)).await?;
    Ok(json_response(StatusCode::OK, &tasks))
}

/// `GET /api/tasks/:id`.
pub async fn get(app: &App, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    let task = read(app, move |store| live(store.get(id)?)).await?;
    Ok(json_response(StatusCode::OK, &task))
}

/// `POST /api/tasks`: 201 with the task and its `Location`.
pub async fn create(app: &App, body: &mut RequestBody) -> Result<HttpResponse, ApiError> {
    let input: CreateBody = parse_json(&body.bytes().await?)?;
    let task = app
        .store
        .create(NewTask {
            title: input.title,
            description: input.description,
        })
        .await?;
    let mut response = json_response(StatusCode::CREATED, &task);
    if let Ok(location) = HeaderValue::from_str(&format!("{TASKS}/{}", task.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// `PUT /api/tasks/:id`.
pub async fn update(app: &App, id: &str, body: &mut RequestBody) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    let input: UpdateBody = parse_json(&body.bytes().await?)?;
    let patch = TaskPatch {
        title: input.title,
        description: input.description,
        completed: input.completed,
    };
    let task = app.store.update(id, patch).await?;
    Ok(json_response(StatusCode::OK, &task))
}

/// `DELETE /api/tasks/:id`: a soft delete; 204.
pub async fn delete(app: &App, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(id)?;
    app.store.delete(id).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

fn live(task: Task) -> Result<Task, StoreError> {
    if task.is_deleted {
        return Err(StoreError::NotFound(task.id.to_string()));
    }
    Ok(task)
}

/// Runs a read on the blocking pool: SQLite reads block their thread.
async fn read<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store: Arc<Store> = app.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(result) => Ok(result?),
        Err(error) => Err(ApiError::internal("database read", &error)),
    }
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
    fn create_bodies_need_a_string_title_and_nothing_else() {
        let body: CreateBody = parse_json(br#"{"title": "t", "description": null}"#).unwrap();
        assert_eq!((body.title.as_str(), body.description), ("t", None));
        for bad in [
            r#"{}"#,
            r#"{"title": null}"#,
            r#"{"title": 3}"#,
            r#"{"title": "t", "completed": true}"#,
        ] {
            let error = parse_json::<CreateBody>(bad.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
