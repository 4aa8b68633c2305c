//! The sync HTTP protocol between a daemon and `tasksync-server` (docs/SYNC-PROTOCOL.md).
//!
//! JSON bodies of every route, the limits both sides enforce, and the `Content-Digest`
//! header (RFC 9530) that protects a pushed batch. The server and the daemon both use these
//! types, so the wire format is defined exactly once.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use std::collections::{BTreeMap, BTreeSet};

use crate::task::{Priority, SyncStatus, Task, TaskId, ValidationError};
use crate::timestamp::Timestamp;

/// `GET` — liveness; needs no token.
pub const HEALTH_PATH: &str = "/api/health";
/// `POST` — push a [`BatchRequest`], answered by a [`BatchResponse`].
pub const BATCH_PATH: &str = "/api/batch";
/// `GET ?since=<cursor>&limit=<n>[&wait=<seconds>]` — pull, answered by a
/// [`ChangesResponse`]; with `wait` the server holds an empty answer until a change lands.
pub const CHANGES_PATH: &str = "/api/changes";
/// Longest `wait` of a live pull, in seconds (the shortest is 1).
pub const MAX_CHANGES_WAIT_SECS: u64 = 60;
/// `GET` — every task the server holds, tombstones included: `[WireTask...]`.
pub const TASKS_PATH: &str = "/api/tasks";

/// The header carrying the body digest of a push.
pub const CONTENT_DIGEST_HEADER: &str = "content-digest";
/// Largest request body the server reads; a larger one is refused with 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most items in one batch; more are refused with 413.
pub const MAX_BATCH_ITEMS: usize = 1_000;
/// Page size of `/api/changes` when `limit` is not given.
pub const DEFAULT_CHANGES_LIMIT: usize = 500;
/// Largest page of `/api/changes`; a larger `limit` is lowered to this.
pub const MAX_CHANGES_LIMIT: usize = 5_000;

/// A task as it travels on the sync wire: the shared fields of [`Task`] plus the device that
/// wrote it last, without the local-only `sync_status` and `last_synced_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTask {
    pub id: TaskId,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub completed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub is_deleted: bool,
    /// The last writer of this task (on a push: the pushing device).
    pub device_id: Uuid,
    // The fields of docs/LOCAL-API.md "A task" beyond the first ones: left out when empty,
    // so a plain task has the shape API version 1 gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl WireTask {
    /// The wire form of a local task, written last by `device_id`.
    pub fn from_task(task: &Task, device_id: Uuid) -> Self {
        WireTask {
            id: task.id,
            title: task.title.clone(),
            description: task.description.clone(),
            completed: task.completed,
            created_at: task.created_at,
            updated_at: task.updated_at,
            is_deleted: task.is_deleted,
            device_id,
            due: task.due,
            priority: task.priority,
            project: task.project.clone(),
            tags: task.tags.clone(),
            attributes: task.attributes.clone(),
        }
    }

    /// The local form of this task, with the local-only fields given.
    pub fn to_task(&self, sync_status: SyncStatus, last_synced_at: Option<Timestamp>) -> Task {
        Task {
            id: self.id,
            number: None,
            title: self.title.clone(),
            description: self.description.clone(),
            completed: self.completed,
            created_at: self.created_at,
            updated_at: self.updated_at,
            is_deleted: self.is_deleted,
            sync_status,
            last_synced_at,
            due: self.due,
            priority: self.priority,
            project: self.project.clone(),
            tags: self.tags.clone(),
            attributes: self.attributes.clone(),
        }
    }

    /// The rules of [`NewTask::validate`]; the message names the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::task::validate_content(
            &self.title,
            self.description.as_deref(),
            self.project.as_deref(),
            &self.tags,
            &self.attributes,
        )
    }

    /// Whether the task uses a field of API version 2 (section 3a of the protocol): a server
    /// of version 1 cannot store it.
    pub fn has_v2_fields(&self) -> bool {
        self.due.is_some()
            || self.priority.is_some()
            || self.project.is_some()
            || !self.tags.is_empty()
            || !self.attributes.is_empty()
    }
}

/// What a queued operation did to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// The tie-break rank of the LWW clock: create < update < delete.
    pub fn rank(self) -> u8 {
        match self {
            Operation::Create => 0,
            Operation::Update => 1,
            Operation::Delete => 2,
        }
    }
}

crate::names::named!(Operation, "operation", {
    Create => "create",
    Update => "update",
    Delete => "delete",
});

/// A mergeable task field (docs/SYNC-PROTOCOL.md, section 5): one of the task's own fields,
/// or one tag, or one attribute key, each merged on its own.
///
/// On the wire and in storage a field is its name: `title`, `description`, `completed`,
/// `is_deleted`, `due`, `priority`, `project`, `tag:<tag>`, `attribute:<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Title,
    Description,
    Completed,
    IsDeleted,
    Due,
    Priority,
    Project,
    /// Whether the task has this tag.
    Tag(String),
    /// The value of this attribute key (absent = no value).
    Attribute(String),
}

/// The name prefix of a tag field.
const TAG_PREFIX: &str = "tag:";
/// The name prefix of an attribute field.
const ATTRIBUTE_PREFIX: &str = "attribute:";

impl Field {
    /// The fields of API version 1, which every server stores.
    pub const V1: [Field; 4] = [
        Field::Title,
        Field::Description,
        Field::Completed,
        Field::IsDeleted,
    ];

    /// The task's own fields (all but tags and attributes), in order.
    pub const ALL: [Field; 7] = [
        Field::Title,
        Field::Description,
        Field::Completed,
        Field::IsDeleted,
        Field::Due,
        Field::Priority,
        Field::Project,
    ];

    /// Every field a task's content holds: its own fields, each of its tags and attribute keys.
    pub fn all_of(task: &WireTask) -> Vec<Field> {
        let mut fields = Field::ALL.to_vec();
        fields.extend(task.tags.iter().map(|tag| Field::Tag(tag.clone())));
        fields.extend(
            task.attributes
                .keys()
                .map(|key| Field::Attribute(key.clone())),
        );
        fields
    }

    /// Whether a server of API version 1 knows this field.
    pub fn is_v1(&self) -> bool {
        Field::V1.contains(self)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Title => f.write_str("title"),
            Field::Description => f.write_str("description"),
            Field::Completed => f.write_str("completed"),
            Field::IsDeleted => f.write_str("is_deleted"),
            Field::Due => f.write_str("due"),
            Field::Priority => f.write_str("priority"),
            Field::Project => f.write_str("project"),
            Field::Tag(tag) => write!(f, "{TAG_PREFIX}{tag}"),
            Field::Attribute(key) => write!(f, "{ATTRIBUTE_PREFIX}{key}"),
        }
    }
}

/// A field name that is none of [`Field`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field {0:?}: expected title, description, completed, is_deleted, due, priority, project, tag:<tag> or attribute:<key>")]
pub struct UnknownField(String);

impl std::str::FromStr for Field {
    type Err = UnknownField;

    fn from_str(name: &str) -> Result<Field, UnknownField> {
        let unknown = || UnknownField(name.chars().take(80).collect());
        Ok(match name {
            "title" => Field::Title,
            "description" => Field::Description,
            "completed" => Field::Completed,
            "is_deleted" => Field::IsDeleted,
            "due" => Field::Due,
            "priority" => Field::Priority,
            "project" => Field::Project,
            _ => {
                if let Some(tag) = name.strip_prefix(TAG_PREFIX) {
                    crate::task::validate_tag(tag).map_err(|_| unknown())?;
                    Field::Tag(tag.to_string())
                } else if let Some(key) = name.strip_prefix(ATTRIBUTE_PREFIX) {
                    crate::task::validate_attribute_key(key).map_err(|_| unknown())?;
                    Field::Attribute(key.to_string())
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One queued operation in a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The operation id (the queue row's `op_id`): the server applies each one once.
    pub id: Uuid,
    pub task_id: TaskId,
    pub operation: Operation,
    /// The fields this operation changed; `None` means all four (whole-task LWW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<Field>>,
    /// The whole task after the operation.
    pub data: WireTask,
    /// When the operation was made.
    pub created_at: Timestamp,
    #[serde(default)]
    pub retry_count: u32,
    /// Per changed field, the value the operation replaced (its base): the server tells a
    /// concurrent edit from a later one by it (section 5a of the protocol). Empty for a
    /// create and for a client that does not say; then no conflict is recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub base: BTreeMap<Field, serde_json::Value>,
}

/// Two devices changed the same field of a task, neither having seen the other's value, and
/// Last-Write-Wins kept one of them (section 5a of the protocol). The server keeps it in the
/// user's change feed, so that both devices learn of it, whichever pushed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireConflict {
    pub task_id: TaskId,
    pub field: Field,
    /// The value the task keeps (JSON, as the task's own field is), and the device that wrote it.
    pub kept: serde_json::Value,
    pub kept_device: Uuid,
    /// The value that lost, and the device that wrote it.
    pub lost: serde_json::Value,
    pub lost_device: Uuid,
    /// The operation whose push met the conflict, and its device.
    pub op_id: Uuid,
    pub pushed_by: Uuid,
    /// When the server resolved it.
    pub at: Timestamp,
}

/// Body of `POST /api/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub device_id: Uuid,
    pub client_timestamp: Timestamp,
    pub items: Vec<BatchItem>,
}

/// The server's verdict on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Applied now, or already applied earlier under the same op id.
    Success,
    /// Some changed field lost to a newer write: `resolved_data` is the merged task.
    Conflict,
    /// Rejected: `error` says why; the client counts a failed attempt.
    Error,
}

crate::names::named!(ItemStatus, "item status", {
    Success => "success",
    Conflict => "conflict",
    Error => "error",
});

/// The answer to one [`BatchItem`], in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedItem {
    /// The item's op id.
    pub client_id: Uuid,
    /// The task id.
    pub server_id: TaskId,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_data: Option<WireTask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of the 200 answer to `POST /api/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub processed_items: Vec<ProcessedItem>,
}

/// Body of the 200 answer to `GET /api/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    /// Each task changed since the cursor, once, in its latest state, in change order.
    pub changes: Vec<WireTask>,
    /// Pass as `since` to get what follows.
    pub cursor: String,
    /// More changes wait beyond this page.
    pub has_more: bool,
    /// The conflicts recorded in the feed within this page, in feed order (API version 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<WireConflict>,
}

/// Body of `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub timestamp: Timestamp,
    /// The sync API version the server speaks ([`SYNC_API_VERSION`]); a server older than
    /// the field says nothing, which means 1.
    #[serde(default = "api_version_1")]
    pub api_version: u32,
}

/// The sync API version of this build. 2 added the fields of section 3a (due, priority,
/// project, tags, attributes) and their field names; a server of version 1 cannot store them.
/// 3 added an operation's `base` and the conflicts of the change feed (section 5a).
pub const SYNC_API_VERSION: u32 = 3;

/// The first sync API version that stores the fields of section 3a.
pub const FIELDS_API_VERSION: u32 = 2;

fn api_version_1() -> u32 {
    1
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub timestamp: Timestamp,
    pub path: String,
}

/// Why a `Content-Digest` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("Content-Digest header is missing")]
    Missing,
    #[error("Content-Digest header has no sha-256 entry of the form sha-256=:<base64>:")]
    Malformed,
    #[error("Content-Digest does not match the body")]
    Mismatch,
    #[error("Content-Digest has more than one sha-256 entry; send exactly one")]
    Duplicate,
}

/// The `Content-Digest` header value for `body`: `sha-256=:<base64 of SHA-256(body)>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", BASE64.encode(Sha256::digest(body)))
}

/// Checks a `Content-Digest` header value (an RFC 9530 dictionary; only its `sha-256` entry
/// is used, other algorithms are ignored) against the exact body bytes.
///
/// A header with two `sha-256` members is refused: checking only one of them would let a
/// wrong second digest through.
pub fn verify_content_digest(header: Option<&str>, body: &[u8]) -> Result<(), DigestError> {
    let header = header.ok_or(DigestError::Missing)?;
    let mut members = header
        .split(',')
        .filter_map(|member| member.split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("sha-256"));
    let member = members.next().ok_or(DigestError::Malformed)?;
    if members.next().is_some() {
        return Err(DigestError::Duplicate);
    }
    let value = member.1.trim();
    // A structured-field byte sequence may carry parameters after `;`.
    let value = value.split(';').next().unwrap_or(value).trim();
    let expected = value
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .and_then(|b64| BASE64.decode(b64).ok())
        .ok_or(DigestError::Malformed)?;
    if expected.as_slice() == Sha256::digest(body).as_slice() {
        Ok(())
    } else {
        Err(DigestError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> WireTask {
        WireTask {
            id: Uuid::from_u128(1),
            title: "Buy milk".into(),
            description: None,
            completed: false,
            created_at: Timestamp::from_millis(1_000).unwrap(),
            updated_at: Timestamp::from_millis(2_000).unwrap(),
            is_deleted: false,
            device_id: Uuid::from_u128(9),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn digest_of_known_body() {
        // RFC 9530 appendix example: {"hello": "world"}
        assert_eq!(
            content_digest(b"{\"hello\": \"world\"}"),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    #[test]
    fn digest_verification() {
        let body = b"{\"items\":[]}";
        let header = content_digest(body);
        assert_eq!(verify_content_digest(Some(&header), body), Ok(()));
        let with_other = format!("sha-512=:AAAA:, {header}");
        assert_eq!(verify_content_digest(Some(&with_other), body), Ok(()));
        assert_eq!(
            verify_content_digest(Some(&header), b"{\"items\":[1]}"),
            Err(DigestError::Mismatch)
        );
        assert_eq!(verify_content_digest(None, body), Err(DigestError::Missing));
        assert_eq!(
            verify_content_digest(Some("sha-256=abc"), body),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            verify_content_digest(Some("md5=:AAAA:"), body),
            Err(DigestError::Malformed)
        );
        // A right digest followed by a wrong one (or twice the right one) is refused.
        let wrong = content_digest(b"other");
        for twice in [format!("{header}, {wrong}"), format!("{header},{header}")] {
            assert_eq!(
                verify_content_digest(Some(&twice), body),
                Err(DigestError::Duplicate),
                "{twice}"
            );
        }
    }

    #[test]
    fn batch_json_shape() {
        let item = BatchItem {
            id: Uuid::from_u128(7),
            task_id: Uuid::from_u128(1),
            operation: Operation::Update,
            changed_fields: Some(vec![Field::Title, Field::IsDeleted]),
            data: task(),
            created_at: Timestamp::from_millis(2_000).unwrap(),
            retry_count: 0,
            base: Default::default(),
        };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["operation"], "update");
        assert_eq!(json["changed_fields"][1], "is_deleted");
        assert_eq!(json["data"]["updated_at"], "1970-01-01T00:00:02.000Z");
        assert!(json["data"].get("sync_status").is_none());
        let back: BatchItem = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
    }

    #[test]
    fn processed_item_omits_empty_fields() {
        let item = ProcessedItem {
            client_id: Uuid::from_u128(7),
            server_id: Uuid::from_u128(1),
            status: ItemStatus::Success,
            resolved_data: None,
            error: None,
        };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["status"], "success");
        assert!(json.get("resolved_data").is_none());
        assert!(json.get("error").is_none());
    }

    #[test]
    fn task_round_trip_keeps_shared_fields() {
        let wire = task();
        let local = wire.to_task(SyncStatus::Synced, None);
        assert_eq!(WireTask::from_task(&local, wire.device_id), wire);
    }
}
