//! What each IPC command does: resolve task references, call the store, shape the reply.

use tasksync_proto::ipc::{Command, ErrorCode, IpcError, Reply, TaskRef};
use uuid::Uuid;

use crate::app::App;
use crate::store::StoreError;

/// Runs one command to completion.
pub async fn dispatch(app: &App, command: Command) -> Result<Reply, IpcError> {
    let store = &app.store;
    let reply = match command {
        Command::CreateTask(new) => Reply::Task(store.create(new).await?),
        Command::GetTask { id } => Reply::Task(store.get(resolve(app, &id)?)?),
        Command::ListTasks {
            include_deleted,
            status,
            after,
            limit,
        } => Reply::TaskPage(store.list_page(include_deleted, status, after, limit)?),
        Command::UpdateTask { id, patch } => {
            Reply::Task(store.update(resolve(app, &id)?, patch).await?)
        }
        Command::DeleteTask { id } => Reply::Task(store.delete(resolve(app, &id)?).await?),
        Command::Status => Reply::Status(app.status()?),
    };
    Ok(reply)
}

fn resolve(app: &App, reference: &str) -> Result<Uuid, IpcError> {
    Ok(app.store.resolve(&TaskRef::parse(reference)?)?)
}

impl From<StoreError> for IpcError {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::Invalid(_) => ErrorCode::InvalidInput,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Ambiguous { .. } => ErrorCode::Ambiguous,
            StoreError::Closed | StoreError::Storage(_) => ErrorCode::Unavailable,
            StoreError::Open { .. } | StoreError::Sqlite(_) | StoreError::Corrupt(_) => {
                tracing::error!("{error}");
                ErrorCode::Internal
            }
        };
        IpcError::new(code, error.to_string())
    }
}
