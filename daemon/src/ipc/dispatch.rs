//! What each IPC command does: resolve task references, call the app or the store, shape the
//! reply. Reads follow [`App::scan`]'s policy: point reads inline, scans on the blocking pool.

use std::collections::BTreeSet;
use std::sync::Arc;

use tasksync_proto::ipc::{Command, ErrorCode, IpcError, QueuePage, Reply, RetryTarget, TaskRef};
use uuid::Uuid;

use crate::app::App;
use crate::store::StoreError;

/// Runs one command to completion.
pub(crate) async fn dispatch(app: &Arc<App>, command: Command) -> Result<Reply, IpcError> {
    let reply = match command {
        Command::CreateTask(new) => Reply::Task(app.create_once(new).await?.0),
        Command::GetTask { id } => Reply::Task(app.store.get(resolve(app, &id)?)?),
        Command::ListTasks {
            include_deleted,
            status,
            after,
            limit,
        } => Reply::TaskPage(
            app.scan(move |app| app.store.list_page(include_deleted, status, after, limit))
                .await?,
        ),
        Command::UpdateTask {
            id,
            patch,
            if_match,
        } => Reply::Task(app.update_if(resolve(app, &id)?, patch, if_match).await?),
        Command::DeleteTask { id, if_match } => {
            Reply::Task(app.delete_if(resolve(app, &id)?, if_match).await?)
        }
        Command::Status => Reply::Status(app.scan(App::status).await?),
        Command::Sync => Reply::Sync(app.sync.sync_now().await),
        Command::Queue {
            failed_only,
            after,
            limit,
        } => Reply::QueuePage(
            app.scan(move |app| {
                let (rows, next) = app.store.queue_page(failed_only, after, limit)?;
                Ok(QueuePage {
                    entries: rows.into_iter().map(|row| app.queue_entry(row)).collect(),
                    next,
                })
            })
            .await?,
        ),
        Command::Retry { target } => Reply::Retried(retry(app, target).await?),
        Command::TaskHistory { id } => {
            let id = resolve(app, &id)?;
            Reply::History(app.scan(move |app| app.store.history(id)).await?)
        }
        Command::Undo { id } => {
            let id = match id {
                Some(id) => Some(resolve(app, &id)?),
                None => None,
            };
            Reply::Task(app.undo(id).await?)
        }
        Command::RestoreEntry { id, entry } => {
            Reply::Task(app.restore(resolve(app, &id)?, entry).await?)
        }
        Command::ImportTasks { tasks } => Reply::Imported(app.import_tasks(tasks).await?),
        Command::ReleaseNumbers { shown } => {
            Reply::Released(app.store.release_numbers(shown).await?)
        }
        Command::Subscribe => {
            let message = "Subscribe turns a socket connection into an event stream; send it as a request of its own";
            return Err(IpcError::new(ErrorCode::InvalidInput, message));
        }
        Command::ApiToken => match &app.api_token {
            Some(token) => Reply::ApiToken(token.clone()),
            None => {
                let message = "the HTTP API is off: start tasksyncd with --http 127.0.0.1:3000";
                return Err(IpcError::new(ErrorCode::Unavailable, message));
            }
        },
    };
    Ok(reply)
}

/// Revives dead-lettered operations: all, or those of one operation or task.
async fn retry(app: &Arc<App>, target: RetryTarget) -> Result<u64, IpcError> {
    let rows = match target {
        RetryTarget::All => app.scan(|app| app.store.queue(true)).await?,
        RetryTarget::Id(reference) => {
            let mut prefix = TaskRef::parse(&reference)?;
            if prefix.as_number().is_some() {
                // A working-set number names a task: its dead-lettered operations.
                prefix = TaskRef::parse(&app.store.resolve(&prefix)?.to_string())?;
            }
            let rows = app.store.failed_matching(&prefix)?;
            let tasks: BTreeSet<Uuid> = rows.iter().map(|row| row.entry.task_id).collect();
            let exact_op = rows
                .iter()
                .find(|row| row.entry.id.to_string() == prefix.as_str());
            match (exact_op, tasks.len()) {
                (Some(row), _) => vec![row.clone()],
                (None, 0) => {
                    let message = format!("no dead-lettered operation or task matches {reference}");
                    return Err(IpcError::new(ErrorCode::NotFound, message));
                }
                (None, 1) => rows,
                (None, _) => {
                    let names: Vec<String> = tasks.iter().map(Uuid::to_string).collect();
                    let message = format!(
                        "{reference} matches dead-lettered operations of several tasks: {}",
                        names.join(", ")
                    );
                    return Err(IpcError::new(ErrorCode::Ambiguous, message));
                }
            }
        }
    };
    Ok(app.retry(&rows).await?)
}

fn resolve(app: &App, reference: &str) -> Result<Uuid, IpcError> {
    Ok(app.store.resolve(&TaskRef::parse(reference)?)?)
}

impl From<StoreError> for IpcError {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::Invalid(_)
            | StoreError::InvalidImport(_)
            | StoreError::CannotRestore(_) => ErrorCode::InvalidInput,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Ambiguous { .. } => ErrorCode::Ambiguous,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            StoreError::Closed | StoreError::Storage(_) => ErrorCode::Unavailable,
            // `NoWal` and `SchemaTooNew` stop tasksyncd at start and never reach a client.
            StoreError::Clock(_)
            | StoreError::Open { .. }
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::NoWal { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::ReadFailed(_) => {
                tracing::error!("{error}");
                ErrorCode::Internal
            }
        };
        IpcError::new(code, error.to_string())
    }
}
