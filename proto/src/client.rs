//! The async client for the daemon's local socket, used by `taskctl` and desktop apps.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tasksync_proto::ClientError> {
//! use tasksync_proto::{Client, NewTask};
//! let mut client = Client::connect(&tasksync_proto::paths::default_socket_path(), "my-app").await?;
//! let task = client.create_task(NewTask { title: "Buy milk".into(), description: None, id: None, ..Default::default() }).await?;
//! println!("created {}", task.id);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use tokio::io::BufReader;

use crate::codec::{self, FrameError};
use crate::events::TimedEvent;
use crate::ipc::{
    ClientMessage, Command, ImportSummary, IpcError, PageCursor, QueueEntry, QueuePage, Reply,
    RetryTarget, ServerMessage, StatusInfo, SyncReport, TaskHistory, TaskPage, MAX_LIST_PAGE_TASKS,
    MAX_PAGE_TASKS, PROTOCOL_VERSION,
};
use crate::task::{NewTask, SyncStatus, Task, TaskPatch};

/// How long the daemon may take to finish a frame it started sending.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the socket path: the daemon is most likely not running.
    #[error("cannot reach tasksyncd at {}: {source}", path.display())]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The daemon closed the connection.
    #[error("tasksyncd closed the connection")]
    Closed,
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(#[from] IpcError),
    /// The daemon refused the connection itself (another user's client, an incompatible
    /// protocol); the message says why.
    #[error("tasksyncd refused the connection: {0}")]
    Refused(IpcError),
    /// The daemon answered something this client does not expect.
    #[error("unexpected answer from tasksyncd: {0}")]
    Protocol(String),
}

/// A connection to the daemon that has completed the handshake.
pub struct Client {
    stream: BufReader<Stream>,
    next_id: u64,
    read_buf: Vec<u8>,
    daemon_version: String,
}

impl Client {
    /// Connects to the daemon at `path` and completes the handshake. `client_name` shows in the
    /// daemon's logs.
    pub async fn connect(path: &Path, client_name: &str) -> Result<Client, ClientError> {
        let not_running = |source| ClientError::NotRunning {
            path: path.to_path_buf(),
            source,
        };
        let name = path.to_fs_name::<GenericFilePath>().map_err(not_running)?;
        let stream = Stream::connect(name).await.map_err(not_running)?;
        let mut client = Client {
            stream: BufReader::new(stream),
            next_id: 1,
            read_buf: Vec::new(),
            daemon_version: String::new(),
        };
        let hello = ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            client: client_name.into(),
        };
        // A daemon that refuses us may say why and close before our Hello is written: then
        // its reason is still there to read, and it matters more than the broken pipe.
        let sent = codec::write_frame(client.stream.get_mut(), &hello).await;
        let answer = match (client.receive().await, sent) {
            (Ok(answer), _) => answer,
            (Err(_), Err(write_error)) => return Err(write_error.into()),
            (Err(read_error), Ok(())) => return Err(read_error),
        };
        match answer {
            ServerMessage::Welcome { daemon_version, .. } => client.daemon_version = daemon_version,
            ServerMessage::Fatal(e) => return Err(ClientError::Refused(e)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "{other:?} instead of Welcome"
                )))
            }
        }
        Ok(client)
    }

    /// The version the daemon reported in its Welcome.
    pub fn daemon_version(&self) -> &str {
        &self.daemon_version
    }

    /// Sends a command without waiting for its answer; returns the request id. Answers come
    /// back in the order the requests were sent (see [`Client::receive_response`]). Read them
    /// as you go: the daemon stops reading while its answers go unread, and drops a connection
    /// that leaves them unread for 10 s, so keep at most a few hundred requests outstanding.
    pub async fn send(&mut self, command: Command) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        codec::write_frame(
            self.stream.get_mut(),
            &ClientMessage::Request { id, command },
        )
        .await?;
        Ok(id)
    }

    /// Waits for the next response: its request id and result.
    pub async fn receive_response(
        &mut self,
    ) -> Result<(u64, Result<Reply, IpcError>), ClientError> {
        match self.receive().await? {
            ServerMessage::Response { id, result } => Ok((id, result)),
            ServerMessage::Fatal(e) => Err(ClientError::Daemon(e)),
            other => Err(ClientError::Protocol(format!(
                "{other:?} instead of a Response"
            ))),
        }
    }

    /// Sends one command and waits for its answer.
    pub async fn call(&mut self, command: Command) -> Result<Reply, ClientError> {
        let sent = self.send(command).await?;
        let (id, result) = self.receive_response().await?;
        if id != sent {
            return Err(ClientError::Protocol(format!(
                "response to request {id} while waiting for {sent}"
            )));
        }
        Ok(result?)
    }

    /// Turns this connection into an event stream; the first event is the current state.
    pub async fn subscribe(mut self) -> Result<Subscription, ClientError> {
        match self.call(Command::Subscribe).await? {
            Reply::Subscribed => Ok(Subscription { client: self }),
            other => Err(unexpected(other)),
        }
    }

    async fn receive(&mut self) -> Result<ServerMessage, ClientError> {
        codec::read_frame(&mut self.stream, &mut self.read_buf, STALL_TIMEOUT)
            .await?
            .ok_or(ClientError::Closed)
    }

    pub async fn create_task(&mut self, task: NewTask) -> Result<Task, ClientError> {
        expect_task(self.call(Command::CreateTask(task)).await?)
    }

    /// Fetches one task by full id or unique prefix.
    pub async fn get_task(&mut self, id: &str) -> Result<Task, ClientError> {
        expect_task(self.call(Command::GetTask { id: id.into() }).await?)
    }

    /// The local history of a task (deleted or not), newest first.
    pub async fn task_history(&mut self, id: &str) -> Result<TaskHistory, ClientError> {
        match self.call(Command::TaskHistory { id: id.into() }).await? {
            Reply::History(history) => Ok(history),
            other => Err(unexpected(other)),
        }
    }

    /// Reverts this device's last local change of task `id` (of any task with `None`); see
    /// [`Command::Undo`]. Answers the task as it is then.
    pub async fn undo(&mut self, id: Option<&str>) -> Result<Task, ClientError> {
        match self
            .call(Command::Undo {
                id: id.map(str::to_string),
            })
            .await?
        {
            Reply::Task(task) => Ok(task),
            other => Err(unexpected(other)),
        }
    }

    /// Puts back the value before history entry `entry` of task `id` (see
    /// [`Command::RestoreEntry`]); answers the task as it is then.
    pub async fn restore_entry(&mut self, id: &str, entry: i64) -> Result<Task, ClientError> {
        match self
            .call(Command::RestoreEntry {
                id: id.into(),
                entry,
            })
            .await?
        {
            Reply::Task(task) => Ok(task),
            other => Err(unexpected(other)),
        }
    }

    /// Lists every matching task, newest first by `created_at`, fetching page after page.
    pub async fn list_tasks(
        &mut self,
        include_deleted: bool,
        status: Option<SyncStatus>,
    ) -> Result<Vec<Task>, ClientError> {
        let mut tasks = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_page(include_deleted, status, after, MAX_LIST_PAGE_TASKS)
                .await?;
            tasks.extend(page.tasks);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(tasks),
            }
        }
    }

    /// One page of a listing (see [`Command::ListTasks`]).
    pub async fn list_page(
        &mut self,
        include_deleted: bool,
        status: Option<SyncStatus>,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<TaskPage, ClientError> {
        let command = Command::ListTasks {
            include_deleted,
            status,
            after,
            limit,
        };
        match self.call(command).await? {
            Reply::TaskPage(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }

    pub async fn update_task(&mut self, id: &str, patch: TaskPatch) -> Result<Task, ClientError> {
        self.update_task_if(id, patch, None).await
    }

    /// Changes a task only while it still has the entity tag `if_match` (as
    /// [`Task::etag`] gives it; `*` for any): else the daemon answers `precondition_failed`
    /// and nothing changes.
    pub async fn update_task_if(
        &mut self,
        id: &str,
        patch: TaskPatch,
        if_match: Option<String>,
    ) -> Result<Task, ClientError> {
        expect_task(
            self.call(Command::UpdateTask {
                id: id.into(),
                patch,
                if_match,
            })
            .await?,
        )
    }

    /// Soft-deletes a task; returns the tombstone.
    pub async fn delete_task(&mut self, id: &str) -> Result<Task, ClientError> {
        self.delete_task_if(id, None).await
    }

    /// [`Client::delete_task`] only while the task still has the entity tag `if_match`.
    pub async fn delete_task_if(
        &mut self,
        id: &str,
        if_match: Option<String>,
    ) -> Result<Task, ClientError> {
        expect_task(
            self.call(Command::DeleteTask {
                id: id.into(),
                if_match,
            })
            .await?,
        )
    }

    /// Flushes and pulls now; waits for the round to finish.
    pub async fn sync(&mut self) -> Result<SyncReport, ClientError> {
        match self.call(Command::Sync).await? {
            Reply::Sync(report) => Ok(report),
            other => Err(unexpected(other)),
        }
    }

    /// Every queued operation, oldest first, fetching page after page.
    pub async fn queue(&mut self, failed_only: bool) -> Result<Vec<QueueEntry>, ClientError> {
        let mut entries = Vec::new();
        let mut after = None;
        loop {
            let page = self.queue_page(failed_only, after, MAX_PAGE_TASKS).await?;
            entries.extend(page.entries);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(entries),
            }
        }
    }

    /// One page of the queue (see [`Command::Queue`]).
    pub async fn queue_page(
        &mut self,
        failed_only: bool,
        after: Option<i64>,
        limit: u32,
    ) -> Result<QueuePage, ClientError> {
        let command = Command::Queue {
            failed_only,
            after,
            limit,
        };
        match self.call(command).await? {
            Reply::QueuePage(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }

    /// Sends dead-lettered operations again; returns how many.
    pub async fn retry(&mut self, target: RetryTarget) -> Result<u64, ClientError> {
        match self.call(Command::Retry { target }).await? {
            Reply::Retried(count) => Ok(count),
            other => Err(unexpected(other)),
        }
    }

    /// The bearer token of the daemon's HTTP API.
    pub async fn api_token(&mut self) -> Result<String, ClientError> {
        match self.call(Command::ApiToken).await? {
            Reply::ApiToken(token) => Ok(token),
            other => Err(unexpected(other)),
        }
    }

    pub async fn status(&mut self) -> Result<StatusInfo, ClientError> {
        match self.call(Command::Status).await? {
            Reply::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// Imports whole tasks in one transaction (see [`Command::ImportTasks`]): all or
    /// nothing; answers how many were created, updated and left unchanged. The request must
    /// fit in one frame (1 MiB), some thousands of tasks.
    pub async fn import_tasks(&mut self, tasks: Vec<Task>) -> Result<ImportSummary, ClientError> {
        match self.call(Command::ImportTasks { tasks }).await? {
            Reply::Imported(summary) => Ok(summary),
            other => Err(unexpected(other)),
        }
    }

    /// Tells the daemon the whole working set was just shown with these numbers (see
    /// [`Command::ReleaseNumbers`]); returns how many freed numbers became reusable.
    pub async fn release_numbers(&mut self, shown: Vec<u32>) -> Result<u64, ClientError> {
        match self.call(Command::ReleaseNumbers { shown }).await? {
            Reply::Released(count) => Ok(count),
            other => Err(unexpected(other)),
        }
    }
}

/// A connection that streams events (see [`Client::subscribe`]).
pub struct Subscription {
    client: Client,
}

impl Subscription {
    /// The next event; `None` when the daemon closed the stream (it is shutting down).
    pub async fn next_event(&mut self) -> Result<Option<TimedEvent>, ClientError> {
        let message = codec::read_frame(
            &mut self.client.stream,
            &mut self.client.read_buf,
            STALL_TIMEOUT,
        )
        .await?;
        match message {
            None => Ok(None),
            Some(ServerMessage::Event(event)) => Ok(Some(event)),
            Some(ServerMessage::Fatal(e)) => Err(ClientError::Daemon(e)),
            Some(other) => Err(ClientError::Protocol(format!(
                "{other:?} instead of an event"
            ))),
        }
    }
}

fn expect_task(reply: Reply) -> Result<Task, ClientError> {
    match reply {
        Reply::Task(task) => Ok(task),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}
