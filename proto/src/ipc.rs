//! The messages exchanged over the local socket (ARCHITECTURE.md, "Local IPC").
//!
//! A connection opens with [`ClientMessage::Hello`] answered by [`ServerMessage::Welcome`];
//! then each [`ClientMessage::Request`] gets exactly one [`ServerMessage::Response`] with the
//! same id. A daemon executes the requests of one connection in order and answers them in
//! order, so a client may pipeline. [`ServerMessage::Fatal`] reports a connection-level
//! problem (bad frame, incompatible protocol) right before the daemon closes the connection.
//!
//! The encoding is postcard, which is positional: new enum variants may only be appended, and
//! any other change to these types bumps [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{Connectivity, TimedEvent};
use crate::task::{NewTask, SyncStatus, Task, TaskPatch};
use crate::timestamp::Timestamp;
use crate::wire::{Field, Operation};

/// The version of this message set. A daemon refuses a client that speaks another one, with a
/// `Fatal` whose layout never changes, so an older client still reads why.
///
/// 6: `UpdateTask` and `DeleteTask` carry `if_match`; the `TaskSync` event.
/// 7: the `Conflict` event; `TaskSync` as `{task_ids, sync_status}`; `TaskHistory` and its
/// `Reply::History`; `RestoreEntry`; `Undo`.
/// 8: tasks, creates and patches carry `due`, `priority`, `project`, `tags` and `attributes`
/// (patches: `add_tags`, `remove_tags`); `Field` names a tag or an attribute key too;
/// `ImportTasks` and its `Reply::Imported`.
pub const PROTOCOL_VERSION: u32 = 8;

/// What a client sends.
// One message is built per request and lives as long as its encoding: the size of the
// largest variant (a patch) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    Hello { protocol: u32, client: String },
    Request { id: u64, command: Command },
}

/// What the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    Welcome {
        protocol: u32,
        daemon_version: String,
    },
    Response {
        id: u64,
        result: Result<Reply, IpcError>,
    },
    Fatal(IpcError),
    /// An event of a subscription (after `Command::Subscribe` was answered).
    Event(TimedEvent),
}

/// One thing a client asks of the daemon. Task references (`id`) are a working-set number (1
/// to 6 digits), or a full id or any unique prefix of one (git style); a prefix resolves among
/// tasks that are not deleted first, then among deleted ones (see [`TaskRef`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateTask(NewTask),
    GetTask {
        id: String,
    },
    /// One page of tasks, newest first by `created_at`; pass the previous page's `next` as
    /// `after` for the following one. The daemon may return fewer than `limit` tasks so that
    /// a page always fits in a frame.
    ListTasks {
        include_deleted: bool,
        status: Option<SyncStatus>,
        after: Option<PageCursor>,
        limit: u32,
    },
    /// Changes a task. With `if_match`, only while the task still has one of those entity
    /// tags (`Task::etag`, comma-separated, `*` for any): else a `precondition_failed` error
    /// and nothing changes, as `If-Match` on the HTTP API.
    UpdateTask {
        id: String,
        patch: TaskPatch,
        if_match: Option<String>,
    },
    /// Soft-deletes a task; `if_match` as for [`Command::UpdateTask`].
    DeleteTask {
        id: String,
        if_match: Option<String>,
    },
    Status,
    /// Flush the queue and pull now, even while offline, resending operations that wait out
    /// a retry delay; answers once the round is over.
    Sync,
    /// Queued operations, oldest first; only dead-lettered ones with `failed_only`.
    /// One page of it, oldest first, after the operation with local sequence number `after`;
    /// pass the previous page's `next` for the following one.
    Queue {
        failed_only: bool,
        after: Option<i64>,
        limit: u32,
    },
    /// Send dead-lettered operations again: all of them, or those of one operation or task
    /// (full id or unique prefix).
    Retry {
        target: RetryTarget,
    },
    /// The bearer token of the daemon's HTTP API (an error when the API is off).
    ApiToken,
    /// Turn this connection into a stream of events, opening with the current state. The
    /// daemon reads nothing more from the connection but its end.
    Subscribe,
    /// A client has just shown the user the whole working set, whose numbers were `shown`:
    /// numbers freed before that listing (by tasks that left the set) may now be given to
    /// new tasks. Numbers in `shown` stay held. Answered with [`Reply::Released`].
    ReleaseNumbers {
        shown: Vec<u32>,
    },
    /// The local history of one task, deleted or not: every recorded change of each of its
    /// fields, newest first. Answered with [`Reply::History`].
    TaskHistory {
        id: String,
    },
    /// Puts back the value before history entry `entry` of task `id` (the value the entry
    /// shows as lost, for a conflict), as a new local edit, synced like any other. Answered
    /// with [`Reply::Task`].
    RestoreEntry {
        id: String,
        entry: i64,
    },
    /// Reverts this device's last local change of task `id` (of any task without one) with a
    /// new edit that gives its fields back their earlier values; a create is reverted by a
    /// delete, a delete is not reverted. Answered with [`Reply::Task`].
    Undo {
        id: Option<String>,
    },
    /// Imports whole tasks (a Taskwarrior export, for one) in one transaction: a task with
    /// an unknown id is created as given (its own `created_at`, `updated_at`, `completed` and
    /// `is_deleted`), one whose content equals the stored task's is left alone, and one whose
    /// content differs becomes one local update of the fields that differ. All or nothing:
    /// one invalid task refuses the whole import. `number`, `sync_status` and
    /// `last_synced_at` are ignored. Answered with [`Reply::Imported`].
    ImportTasks {
        tasks: Vec<Task>,
    },
}

/// Which dead-lettered operations `Retry` revives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryTarget {
    All,
    /// An operation id or a task id, or a unique prefix of either.
    Id(String),
}

/// A successful answer; which variant comes back is fixed by the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Task(Task),
    TaskPage(TaskPage),
    Status(StatusInfo),
    Sync(SyncReport),
    QueuePage(QueuePage),
    /// How many operations were sent back to the queue.
    Retried(u64),
    ApiToken(String),
    /// Events follow.
    Subscribed,
    /// How many freed working-set numbers became free to reuse.
    Released(u64),
    History(TaskHistory),
    /// What an import did.
    Imported(ImportSummary),
}

/// What [`Command::ImportTasks`] did: how many tasks it created, changed, and left alone
/// because they were stored with the same content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
}

/// A task's local history: what changed, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHistory {
    pub task_id: Uuid,
    pub entries: Vec<HistoryEntry>,
}

/// One change of one field of a task, as this device recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The entry's number: what `taskctl restore ID ENTRY` and `POST /api/tasks/:id/restore`
    /// name it by. It never changes and is never reused on this device.
    pub entry: i64,
    /// When the change was made: the `updated_at` it gave the task (the hybrid clock).
    pub at: Timestamp,
    pub field: Field,
    /// The value before, as JSON text (`null` when the task did not exist yet). JSON text
    /// rather than a JSON value because postcard cannot carry self-describing values.
    pub old: String,
    /// The value after, as JSON text.
    pub new: String,
    pub origin: HistoryOrigin,
    /// A value lost Last-Write-Wins to a concurrent edit (this device's or the other
    /// device's): `old` holds the value that lost, `new` the one kept.
    pub conflict: bool,
}

/// Where a recorded change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryOrigin {
    /// A command on this device.
    Local,
    /// A change pulled from the server, or the server's merged version adopted after a push.
    Remote,
}

crate::names::named!(HistoryOrigin, "history origin", {
    Local => "local",
    Remote => "remote",
});

/// The JSON of a task's history (`GET /api/tasks/:id/history`, `taskctl --json log`).
#[derive(Debug, Clone, Serialize)]
pub struct TaskHistoryJson {
    pub task_id: Uuid,
    pub entries: Vec<HistoryEntryJson>,
}

/// One entry of [`TaskHistoryJson`]: `old` and `new` are JSON values (a string, `true`,
/// `null`...).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntryJson {
    pub entry: i64,
    pub at: Timestamp,
    pub field: Field,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    pub origin: HistoryOrigin,
    pub conflict: bool,
}

impl From<&TaskHistory> for TaskHistoryJson {
    fn from(history: &TaskHistory) -> Self {
        // Text that is not JSON (it never is: the daemon writes it) shows as that string.
        let value = |text: &str| {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.into()))
        };
        TaskHistoryJson {
            task_id: history.task_id,
            entries: history
                .entries
                .iter()
                .map(|e| HistoryEntryJson {
                    entry: e.entry,
                    at: e.at,
                    field: e.field.clone(),
                    old: value(&e.old),
                    new: value(&e.new),
                    origin: e.origin,
                    conflict: e.conflict,
                })
                .collect(),
        }
    }
}

/// The outcome of a sync round, as the original challenge's `POST /api/sync` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The server was reached and nothing failed or is dead-lettered.
    pub success: bool,
    /// Operations the server accepted (or resolved as a conflict) in this round.
    pub synced_items: u64,
    /// Operations that failed in this round plus every dead-lettered one.
    pub failed_items: u64,
    /// What went wrong, each with its kind; empty when nothing did.
    pub errors: Vec<SyncFailure>,
    /// The server could not be reached (or none is configured).
    pub offline: bool,
    /// Tasks whose stored row changed through what was pulled from the server.
    pub pulled_items: u64,
    /// Operations the server answered with a merge (a conflict), with the details in
    /// `resolved`.
    pub conflicts: u64,
    /// For each conflict: which of the pushed fields kept whose value.
    pub resolved: Vec<ResolvedConflict>,
}

/// What a sync error is about, so that a program can act on it without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncErrorKind {
    /// The sync server could not be reached (or none is configured). No attempt counts.
    Offline,
    /// The server refuses our token: the user must fix it. No attempt counts.
    Unauthorized,
    /// The server (or a proxy) cannot serve now: 408, 429, 502, 503, 504. No attempt counts.
    Busy,
    /// The server refused an operation or a whole batch: each counts a failed attempt.
    Rejected,
    /// The server's answer made no sense: the batch counts a failed attempt.
    BadAnswer,
    /// Something failed on this device (its database, a task of the daemon). No attempt
    /// counts: the operations stay queued as they were.
    Local,
    /// Operations failed their last attempt and wait for `taskctl retry`.
    DeadLettered,
    /// A forced pull ran out of time with more to come; the rest follows in the background.
    Unfinished,
    /// The sync server speaks an older API that cannot store some fields: the operations
    /// that use them stay queued (no attempt counts) until it is upgraded.
    ServerTooOld,
}

crate::names::named!(SyncErrorKind, "sync error kind", {
    Offline => "offline",
    Unauthorized => "unauthorized",
    Busy => "busy",
    Rejected => "rejected",
    BadAnswer => "bad_answer",
    Local => "local",
    DeadLettered => "dead_lettered",
    Unfinished => "unfinished",
    ServerTooOld => "server_too_old",
});

/// A sync error as reports and `last_error` carry it: its kind, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct SyncFailure {
    pub kind: SyncErrorKind,
    pub message: String,
}

impl SyncFailure {
    pub fn new(kind: SyncErrorKind, message: impl Into<String>) -> Self {
        SyncFailure {
            kind,
            message: message.into(),
        }
    }
}

/// How the server resolved a conflict on one pushed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedConflict {
    pub task_id: Uuid,
    /// The task's title after the merge.
    pub title: String,
    pub fields: Vec<ResolvedField>,
}

/// One field of a conflict: whether our pushed value or another device's newer one won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedField {
    pub field: Field,
    pub kept: Kept,
}

/// Whose value a field of a conflict kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kept {
    /// This device's value stands.
    Local,
    /// A newer value from another device.
    Remote,
}

crate::names::named!(Kept, "kept value", {
    Local => "local",
    Remote => "remote",
});

/// A page of the sync queue; `next` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePage {
    pub entries: Vec<QueueEntry>,
    pub next: Option<i64>,
}

/// One operation in the sync queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The operation id (`op_id`), also its id on the sync wire.
    pub id: Uuid,
    pub task_id: Uuid,
    pub operation: Operation,
    pub changed_fields: Vec<Field>,
    pub created_at: Timestamp,
    pub retry_count: u32,
    pub error_message: Option<String>,
    pub state: QueueState,
    /// When an automatic retry may send it again.
    pub next_attempt_at: Option<Timestamp>,
}

/// Where a queued operation stands. SQLite stores `pending` and `failed`; being in flight is
/// known only to the running daemon's sync engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueState {
    /// Waiting to be sent (again, after its retry delay if it failed an attempt).
    Pending,
    /// Sent to the server and not yet answered.
    InFlight,
    /// Dead-lettered: it failed its last attempt and waits for `taskctl retry`.
    Failed,
}

crate::names::named!(QueueState, "queue state", {
    Pending => "pending",
    InFlight => "in-flight",
    Failed => "failed",
});

/// Where a page of tasks ended: the last task's `created_at` and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor {
    pub created_at: Timestamp,
    pub id: Uuid,
}

/// A page of a task listing; `next` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next: Option<PageCursor>,
}

/// Most tasks (or queue entries) a page holds.
pub const MAX_PAGE_TASKS: u32 = 1000;

/// Most tasks a page of [`Command::ListTasks`] holds: more than other pages, because listing
/// every task is what `taskctl list` does each time and each page is a round trip. The
/// daemon's byte budget still keeps a page well inside a frame.
pub const MAX_LIST_PAGE_TASKS: u32 = 5000;

/// The daemon's view of itself, for `taskctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub state: Connectivity,
    pub online: bool,
    /// The sync server's base URL, if one is configured.
    pub server: Option<String>,
    /// Queued operations not yet synced (dead-lettered ones excluded).
    pub pending: u64,
    /// Dead-lettered operations.
    pub failed: u64,
    /// The end of the last sync round that succeeded.
    pub last_sync_at: Option<Timestamp>,
    /// What the last sync round met, if it failed; `None` once a round succeeds.
    pub last_error: Option<SyncFailure>,
    pub device_id: Uuid,
    /// The daemon's version.
    pub version: String,
    /// The TCP address of the daemon's HTTP API, if it is on.
    pub http: Option<String>,
    /// Tasks in the database, deleted ones excluded.
    pub tasks: u64,
    /// Soft-deleted tasks (tombstones).
    pub deleted_tasks: u64,
    pub database: String,
    /// Since when the connectivity state holds.
    pub since: Timestamp,
    /// While offline: when the next probe goes out.
    pub next_probe_at: Option<Timestamp>,
}

/// The JSON status object of `GET /api/status` and of the `status` event (SSE and
/// `taskctl --json watch`): the original challenge's four fields, then every field of
/// [`StatusInfo`] (`taskctl status --json`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusBody<'a> {
    /// The version of the local HTTP API (also in every answer's `Tasksync-Api-Version`).
    pub api_version: u32,
    /// Operations still to be sent (waiting or in flight): `pending`.
    pub pending_sync_count: u64,
    /// The end of the last round that succeeded: `last_sync_at`.
    pub last_sync_timestamp: Option<Timestamp>,
    /// Whether the sync server is reached now: `online`.
    pub is_online: bool,
    /// Every row of the sync queue, dead-lettered ones included: `pending + failed`.
    pub sync_queue_size: u64,
    #[serde(flatten)]
    pub info: &'a StatusInfo,
}

impl<'a> From<&'a StatusInfo> for StatusBody<'a> {
    fn from(info: &'a StatusInfo) -> Self {
        StatusBody {
            api_version: LOCAL_API_VERSION,
            pending_sync_count: info.pending,
            last_sync_timestamp: info.last_sync_at,
            is_online: info.online,
            sync_queue_size: info.pending + info.failed,
            info,
        }
    }
}

/// The version of the daemon's local HTTP API: within a version, changes are additive only
/// (new routes, fields, event types, error codes); a breaking change takes the next one.
pub const LOCAL_API_VERSION: u32 = 1;

/// The header every local HTTP answer carries with [`LOCAL_API_VERSION`].
pub const LOCAL_API_VERSION_HEADER: &str = "tasksync-api-version";

/// Machine-readable class of an error: the `code` of IPC errors, of the daemon's HTTP error
/// bodies and of `taskctl --json` errors alike. Serde gives the snake_case names (JSON); the
/// postcard encoding is the variant's position, so new codes are only appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No task matches the id or prefix (HTTP: also no such route).
    NotFound,
    /// The input breaks a rule (empty title, malformed id, ...).
    InvalidInput,
    /// A prefix matches several tasks.
    Ambiguous,
    /// The daemon cannot serve this now (shutting down, storage failure).
    Unavailable,
    /// A bug or an unexpected failure inside the daemon.
    Internal,
    /// Client and daemon speak different protocol versions.
    Incompatible,
    /// A frame could not be read: malformed, oversized or too slow.
    BadFrame,
    /// A create with a client-chosen id that a task with other content already has.
    Conflict,
    /// The daemon serves only its own user (and root).
    PermissionDenied,
    /// HTTP on TCP: a missing or wrong bearer token.
    Unauthorized,
    /// HTTP: the route does not take this method.
    MethodNotAllowed,
    /// HTTP: the request took too long to arrive.
    Timeout,
    /// HTTP: the body is over the size limit.
    TooLarge,
    /// An update or delete whose precondition (`If-Match`) no longer holds: the task changed.
    PreconditionFailed,
}

crate::names::named!(ErrorCode, "error code", {
    NotFound => "not_found",
    InvalidInput => "invalid_input",
    Ambiguous => "ambiguous",
    Unavailable => "unavailable",
    Internal => "internal",
    Incompatible => "incompatible",
    BadFrame => "bad_frame",
    Conflict => "conflict",
    PermissionDenied => "permission_denied",
    Unauthorized => "unauthorized",
    MethodNotAllowed => "method_not_allowed",
    Timeout => "timeout",
    TooLarge => "too_large",
    PreconditionFailed => "precondition_failed",
});

/// An error as it travels over the socket: a code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
}

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        IpcError {
            code,
            message: message.into(),
        }
    }
}

/// A task reference checked for shape: a lowercase run of 1..=36 hex digits and dashes. One
/// of 1 to 6 decimal digits is a working-set number ([`TaskRef::as_number`]), anything else
/// an id or id prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef(String);

/// Most digits a working-set number has; a longer run of digits is an id prefix.
pub const MAX_NUMBER_DIGITS: usize = 6;

impl TaskRef {
    /// Checks and normalises a full id or prefix as typed by a user.
    pub fn parse(input: &str) -> Result<TaskRef, IpcError> {
        let text = input.trim().to_ascii_lowercase();
        let well_formed = !text.is_empty()
            && text.len() <= 36
            && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !well_formed {
            return Err(IpcError::new(
                ErrorCode::InvalidInput,
                format!(
                    "invalid task id {input:?}: expected a task id or a prefix of one (hex digits)"
                ),
            ));
        }
        Ok(TaskRef(text))
    }

    /// The working-set number, if this reference is one (1 to 6 decimal digits).
    pub fn as_number(&self) -> Option<u32> {
        let digits =
            self.0.len() <= MAX_NUMBER_DIGITS && self.0.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| self.0.parse().ok()).flatten()
    }

    /// The full id, if this reference is one.
    pub fn as_full_id(&self) -> Option<Uuid> {
        (self.0.len() == 36)
            .then(|| Uuid::parse_str(&self.0).ok())
            .flatten()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_refs_are_normalised_and_checked() {
        assert_eq!(TaskRef::parse(" 01AB ").unwrap().as_str(), "01ab");
        for bad in ["", "   ", "xyz", "0190'; drop table tasks", &"a".repeat(37)] {
            let err = TaskRef::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidInput, "{bad:?}");
        }
        let id = Uuid::now_v7();
        let full = TaskRef::parse(&id.to_string().to_uppercase()).unwrap();
        assert_eq!(full.as_full_id(), Some(id));
        assert_eq!(TaskRef::parse("0190").unwrap().as_full_id(), None);
    }

    #[test]
    fn one_to_six_digits_are_a_number_and_anything_else_a_prefix() {
        assert_eq!(TaskRef::parse("7").unwrap().as_number(), Some(7));
        assert_eq!(TaskRef::parse(" 042 ").unwrap().as_number(), Some(42));
        assert_eq!(TaskRef::parse("999999").unwrap().as_number(), Some(999_999));
        assert_eq!(TaskRef::parse("1234567").unwrap().as_number(), None);
        assert_eq!(TaskRef::parse("12a").unwrap().as_number(), None);
        assert_eq!(TaskRef::parse("01-2").unwrap().as_number(), None);
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;
    use crate::codec::{decode_frame, encode};
    use crate::events::{ChangeOrigin, ConnectivityState, Event, SyncProgress};
    use crate::task::Task;

    fn sample_task() -> Task {
        let now = Timestamp::now();
        Task {
            id: Uuid::now_v7(),
            number: Some(3),
            title: "Buy milk ✓".into(),
            description: Some("two litres".into()),
            completed: true,
            created_at: now,
            updated_at: now.checked_next().unwrap(),
            is_deleted: false,
            sync_status: SyncStatus::InProgress,
            last_synced_at: Some(now),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn every_client_message_round_trips() {
        let commands = [
            Command::CreateTask(NewTask {
                title: "t".into(),
                description: None,
                id: None,
                ..Default::default()
            }),
            Command::GetTask { id: "0190".into() },
            Command::ListTasks {
                include_deleted: true,
                status: Some(SyncStatus::Error),
                after: Some(PageCursor {
                    created_at: Timestamp::now(),
                    id: Uuid::now_v7(),
                }),
                limit: 10,
            },
            Command::UpdateTask {
                id: "ab".into(),
                patch: TaskPatch {
                    title: None,
                    description: Some(None),
                    completed: Some(false),
                    due: Some(Some(Timestamp::now())),
                    priority: Some(None),
                    project: Some(Some("home.garden".into())),
                    tags: None,
                    add_tags: ["shop".to_string()].into(),
                    remove_tags: ["old".to_string()].into(),
                    attributes: [("myapp.colour".to_string(), None)].into(),
                },
                if_match: Some("\"0123456789abcdef\"".into()),
            },
            Command::DeleteTask {
                id: "cd".into(),
                if_match: None,
            },
            Command::Status,
            Command::Sync,
            Command::Queue {
                failed_only: true,
                after: Some(41),
                limit: 100,
            },
            Command::Retry {
                target: RetryTarget::All,
            },
            Command::Retry {
                target: RetryTarget::Id("01ab".into()),
            },
            Command::ApiToken,
            Command::Subscribe,
            Command::ReleaseNumbers {
                shown: vec![1, 2, 999_999],
            },
            Command::TaskHistory { id: "3".into() },
            Command::RestoreEntry {
                id: "3".into(),
                entry: 42,
            },
            Command::Undo { id: None },
            Command::ImportTasks {
                tasks: vec![sample_task()],
            },
        ];
        let mut messages = vec![ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            client: "test".into(),
        }];
        messages.extend(commands.into_iter().enumerate().map(|(i, command)| {
            ClientMessage::Request {
                id: i as u64,
                command,
            }
        }));
        for message in messages {
            let frame = encode(&message).unwrap();
            assert_eq!(decode_frame::<ClientMessage>(&frame).unwrap(), message);
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let status = StatusInfo {
            state: Connectivity::LocalOnly,
            online: false,
            server: Some("http://127.0.0.1:8080".into()),
            pending: 3,
            failed: 1,
            last_sync_at: Some(Timestamp::now()),
            last_error: Some(SyncFailure::new(SyncErrorKind::Busy, "503")),
            device_id: Uuid::now_v7(),
            version: "0.1.0".into(),
            http: Some("127.0.0.1:3000".into()),
            tasks: 10,
            deleted_tasks: 2,
            database: "/tmp/tasks.db".into(),
            since: Timestamp::now(),
            next_probe_at: None,
        };
        let mut messages = vec![
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                daemon_version: "0.1.0".into(),
            },
            ServerMessage::Fatal(IpcError::new(ErrorCode::BadFrame, "garbage")),
        ];
        let results = [
            Ok(Reply::Task(sample_task())),
            Ok(Reply::TaskPage(TaskPage {
                tasks: vec![sample_task(), sample_task()],
                next: None,
            })),
            Ok(Reply::Status(status.clone())),
            Ok(Reply::Sync(SyncReport {
                success: false,
                synced_items: 3,
                failed_items: 1,
                errors: vec![SyncFailure::new(SyncErrorKind::Local, "boom")],
                offline: false,
                pulled_items: 4,
                conflicts: 1,
                resolved: vec![ResolvedConflict {
                    task_id: Uuid::now_v7(),
                    title: "t".into(),
                    fields: vec![ResolvedField {
                        field: Field::Title,
                        kept: Kept::Remote,
                    }],
                }],
            })),
            Ok(Reply::QueuePage(QueuePage {
                next: Some(7),
                entries: vec![QueueEntry {
                    id: Uuid::now_v7(),
                    task_id: Uuid::now_v7(),
                    operation: Operation::Update,
                    changed_fields: vec![Field::Title],
                    created_at: Timestamp::now(),
                    retry_count: 2,
                    error_message: Some("nope".into()),
                    state: QueueState::Failed,
                    next_attempt_at: None,
                }],
            })),
            Ok(Reply::Retried(4)),
            Ok(Reply::ApiToken("secret".into())),
            Ok(Reply::Subscribed),
            Ok(Reply::Released(2)),
            Ok(Reply::History(TaskHistory {
                task_id: Uuid::now_v7(),
                entries: vec![HistoryEntry {
                    entry: 7,
                    at: Timestamp::now(),
                    field: Field::Title,
                    old: "\"a\"".into(),
                    new: "\"b\"".into(),
                    origin: HistoryOrigin::Remote,
                    conflict: true,
                }],
            })),
            Ok(Reply::Imported(ImportSummary {
                created: 3,
                updated: 1,
                unchanged: 2,
            })),
        ];
        messages.extend(
            results
                .into_iter()
                .map(|result| ServerMessage::Response { id: 1, result }),
        );
        for code in ErrorCode::ALL {
            messages.push(ServerMessage::Response {
                id: 2,
                result: Err(IpcError::new(code, code.as_str())),
            });
        }
        let connectivity = ConnectivityState {
            state: Connectivity::Offline,
            since: Timestamp::now(),
            next_probe_at: Some(Timestamp::now()),
        };
        messages.extend(
            [
                Event::Status(status),
                Event::TaskChanged {
                    task: sample_task(),
                    origin: ChangeOrigin::Remote,
                },
                Event::Connectivity(connectivity),
                Event::Sync(SyncProgress::BatchSent { items: 5 }),
                Event::Sync(SyncProgress::BatchAnswered {
                    synced_items: 4,
                    failed_items: 1,
                }),
                Event::Sync(SyncProgress::Pulled { pulled_items: 9 }),
                Event::Sync(SyncProgress::RoundFinished(SyncReport {
                    success: true,
                    synced_items: 4,
                    failed_items: 0,
                    errors: Vec::new(),
                    offline: false,
                    pulled_items: 2,
                    conflicts: 1,
                    resolved: Vec::new(),
                })),
                Event::Lagged { missed: 3 },
                Event::TaskSync {
                    task_ids: vec![Uuid::now_v7()],
                    sync_status: SyncStatus::Failed,
                },
            ]
            .into_iter()
            .map(|event| {
                ServerMessage::Event(TimedEvent {
                    at: Timestamp::now(),
                    event,
                })
            }),
        );
        for message in messages {
            let frame = encode(&message).unwrap();
            assert_eq!(decode_frame::<ServerMessage>(&frame).unwrap(), message);
        }
    }
}
