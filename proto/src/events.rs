//! What a subscribed connection receives (ARCHITECTURE.md, "Local IPC"): a stream that opens with the
//! current state, then reports task changes, sync progress and connectivity changes.
//!
//! [`Event`] travels over the socket as postcard; [`EventJson`] is its one JSON form, which
//! both `GET /api/events` (each `data:` line) and `taskctl --json watch` (each line) print, so
//! the two cannot name an event or a field differently (DESIGN.md section 7, "One
//! vocabulary").

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::ipc::{StatusBody, StatusInfo, SyncReport};
use crate::task::{SyncStatus, Task, TaskJson};
use crate::timestamp::Timestamp;
use crate::wire::{Field, WireTask};

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub at: Timestamp,
    pub event: Event,
}

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The first event of every subscription: where things stand.
    Status(StatusInfo),
    /// A task's stored row changed: created, edited or deleted here (`Local`), or changed by
    /// what the server sent (`Remote`). Our own pushes coming back change nothing and send
    /// nothing.
    TaskChanged { task: Task, origin: ChangeOrigin },
    /// The daemon's view of the sync server changed.
    Connectivity(ConnectivityState),
    /// What a sync round is doing.
    Sync(SyncProgress),
    /// The subscriber read too slowly and missed this many events.
    Lagged { missed: u64 },
    /// These tasks' sync state is now `sync_status`: a batch holding their operations was
    /// answered (or given back unanswered), or their dead letters were sent back. Their
    /// content did not change, so no `TaskChanged` says it. At most
    /// [`TASK_SYNC_MAX_IDS`] ids an event.
    TaskSync {
        task_ids: Vec<Uuid>,
        sync_status: SyncStatus,
    },
    /// The server kept another device's value of a field this device had changed.
    Conflict(FieldConflict),
}

/// Most task ids one `task_sync` event carries; more go out in several events.
pub const TASK_SYNC_MAX_IDS: usize = 1000;

/// One field of a task that two devices changed, where Last-Write-Wins kept one value: the
/// `conflict` event. The lost value stays in this event (and the daemon's log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    pub task_id: Uuid,
    pub field: Field,
    /// The value the task keeps, and the device that wrote it.
    pub kept: FieldValue,
    pub kept_device: Uuid,
    /// The value that lost, and the device that wrote it.
    pub lost: FieldValue,
    pub lost_device: Uuid,
}

/// The value of one task field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValue {
    Text(String),
    OptionalText(Option<String>),
    Flag(bool),
}

impl FieldValue {
    /// The value of `field` in `task`: a tag's is whether the task has it; a due date's its
    /// RFC 3339 text.
    pub fn of(task: &WireTask, field: &Field) -> FieldValue {
        match field {
            Field::Title => FieldValue::Text(task.title.clone()),
            Field::Description => FieldValue::OptionalText(task.description.clone()),
            Field::Completed => FieldValue::Flag(task.completed),
            Field::IsDeleted => FieldValue::Flag(task.is_deleted),
            Field::Due => FieldValue::OptionalText(task.due.map(|due| due.to_string())),
            Field::Priority => {
                FieldValue::OptionalText(task.priority.map(|p| p.as_str().to_string()))
            }
            Field::Project => FieldValue::OptionalText(task.project.clone()),
            Field::Tag(tag) => FieldValue::Flag(task.tags.contains(tag)),
            Field::Attribute(key) => FieldValue::OptionalText(task.attributes.get(key).cloned()),
        }
    }

    /// The value of `field` from its JSON (as [`FieldValue::json`] writes it), or `None` when
    /// the JSON is not of the field's kind.
    pub fn from_json(field: &Field, json: &serde_json::Value) -> Option<FieldValue> {
        use serde_json::Value;
        match (field, json) {
            (Field::Title, Value::String(text)) => Some(FieldValue::Text(text.clone())),
            (Field::Completed | Field::IsDeleted | Field::Tag(_), Value::Bool(flag)) => {
                Some(FieldValue::Flag(*flag))
            }
            (
                Field::Description
                | Field::Due
                | Field::Priority
                | Field::Project
                | Field::Attribute(_),
                Value::String(text),
            ) => Some(FieldValue::OptionalText(Some(text.clone()))),
            (
                Field::Description
                | Field::Due
                | Field::Priority
                | Field::Project
                | Field::Attribute(_),
                Value::Null,
            ) => Some(FieldValue::OptionalText(None)),
            _ => None,
        }
    }

    /// The value as JSON: a string, null or a boolean, as the task's own field is.
    pub fn json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(text) => serde_json::Value::from(text.as_str()),
            FieldValue::OptionalText(text) => text
                .as_deref()
                .map_or(serde_json::Value::Null, serde_json::Value::from),
            FieldValue::Flag(flag) => serde_json::Value::Bool(*flag),
        }
    }
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.json())
    }
}

/// Whether the daemon can reach its sync server, since when, and when it next checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityState {
    pub state: Connectivity,
    pub since: Timestamp,
    /// While offline: when the next probe goes out.
    pub next_probe_at: Option<Timestamp>,
}

/// Whether the daemon can sync with its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connectivity {
    /// No sync server is configured.
    LocalOnly,
    Online,
    Offline,
    /// The server is reachable but refuses our token.
    Unauthorized,
}

crate::names::named!(Connectivity, "connectivity state", {
    LocalOnly => "local-only",
    Online => "online",
    Offline => "offline",
    Unauthorized => "unauthorized",
});

/// Where a task change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOrigin {
    /// A command on this device.
    Local,
    /// Pulled from the server, or the server's merge after a conflict.
    Remote,
}

/// Progress of a sync round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncProgress {
    /// A batch of this many operations went out.
    BatchSent { items: u32 },
    /// The server answered a batch: operations accepted (or merged), operations that failed
    /// an attempt.
    BatchAnswered {
        synced_items: u32,
        failed_items: u32,
    },
    /// Tasks changed by one page of what was pulled.
    Pulled { pulled_items: u64 },
    /// The round is over. `failed_items` counts the operations that failed an attempt in
    /// this round (those dead-lettered by it included); `errors` says what went wrong.
    RoundFinished(SyncReport),
}

/// The JSON form of an event on every surface: `{"event": NAME, ...fields, "at": TIME}`.
#[derive(Debug, Clone, Serialize)]
pub struct EventJson<'a> {
    #[serde(flatten)]
    pub event: EventData<'a>,
    /// When it happened.
    pub at: Timestamp,
}

/// Each event's name (`event`) and fields, as docs/LOCAL-API.md lists them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventData<'a> {
    /// Where things stand: the status object of `GET /api/status`. First on every stream.
    Status(StatusBody<'a>),
    /// A task's stored row changed: the task (with its `etag`) and where the change came from.
    Task {
        task: TaskJson<'a>,
        origin: ChangeOrigin,
    },
    /// The daemon's view of the sync server changed: `{state, since, next_probe_at}`.
    Connectivity(&'a ConnectivityState),
    /// A sync round ended: the report `POST /api/sync` and `taskctl sync --json` give.
    Sync(&'a SyncReport),
    /// A batch of `items` operations went out.
    BatchSent { items: u32 },
    /// The server answered a batch.
    BatchAnswered {
        synced_items: u32,
        failed_items: u32,
    },
    /// A page of pulled changes changed `pulled_items` tasks.
    Pulled { pulled_items: u64 },
    /// Events were lost to this client (`missed` of them, when known): list again.
    Reset { missed: Option<u64> },
    /// The sync state of these tasks changed.
    TaskSync {
        task_ids: &'a [Uuid],
        sync_status: SyncStatus,
    },
    /// Last-Write-Wins kept another device's value of a field this device had changed.
    Conflict {
        task_id: Uuid,
        field: Field,
        kept: serde_json::Value,
        kept_device: Uuid,
        lost: serde_json::Value,
        lost_device: Uuid,
    },
}

/// Every event's name, in the order docs/LOCAL-API.md lists them.
pub const EVENT_NAMES: [&str; 10] = [
    "status",
    "task",
    "task_sync",
    "conflict",
    "connectivity",
    "sync",
    "batch_sent",
    "batch_answered",
    "pulled",
    "reset",
];

/// Which events a client asked for: `GET /api/events?events=a,b` and `taskctl watch --events
/// a,b`. `status` and `reset` always pass: the first says where things stand when a stream
/// opens, the second that events were lost, whichever they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `None`: every event.
    only: Option<Vec<&'static str>>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter::default()
    }

    /// A comma-separated list of event names (spaces around names are ignored); an unknown
    /// or missing name is an error that lists the valid ones.
    pub fn parse(list: &str) -> Result<EventFilter, String> {
        let mut only = Vec::new();
        for name in list.split(',').map(str::trim) {
            match EVENT_NAMES.iter().find(|known| **known == name) {
                Some(known) => only.push(*known),
                None if name.is_empty() => {
                    return Err(format!(
                        "events: name at least one event (comma-separated): {}",
                        EVENT_NAMES.join(", ")
                    ))
                }
                None => {
                    return Err(format!(
                        "events: unknown event {name:?}; the events are {}",
                        EVENT_NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(EventFilter { only: Some(only) })
    }

    /// Whether an event named `name` passes.
    pub fn allows(&self, name: &str) -> bool {
        name == "reset"
            || name == "status"
            || self.only.as_ref().is_none_or(|only| only.contains(&name))
    }
}

impl EventData<'_> {
    /// The event's name: the `event` field of its JSON, and the SSE `event:` line.
    pub fn name(&self) -> &'static str {
        match self {
            EventData::Status(_) => "status",
            EventData::Task { .. } => "task",
            EventData::Connectivity(_) => "connectivity",
            EventData::Sync(_) => "sync",
            EventData::BatchSent { .. } => "batch_sent",
            EventData::BatchAnswered { .. } => "batch_answered",
            EventData::Pulled { .. } => "pulled",
            EventData::Reset { .. } => "reset",
            EventData::TaskSync { .. } => "task_sync",
            EventData::Conflict { .. } => "conflict",
        }
    }
}

impl Event {
    /// This event's JSON form.
    pub fn data(&self) -> EventData<'_> {
        match self {
            Event::Status(info) => EventData::Status(StatusBody::from(info)),
            Event::TaskChanged { task, origin } => EventData::Task {
                task: TaskJson::from(task),
                origin: *origin,
            },
            Event::Connectivity(state) => EventData::Connectivity(state),
            Event::Sync(SyncProgress::BatchSent { items }) => {
                EventData::BatchSent { items: *items }
            }
            Event::Sync(SyncProgress::BatchAnswered {
                synced_items,
                failed_items,
            }) => EventData::BatchAnswered {
                synced_items: *synced_items,
                failed_items: *failed_items,
            },
            Event::Sync(SyncProgress::Pulled { pulled_items }) => EventData::Pulled {
                pulled_items: *pulled_items,
            },
            Event::Sync(SyncProgress::RoundFinished(report)) => EventData::Sync(report),
            Event::Lagged { missed } => EventData::Reset {
                missed: Some(*missed),
            },
            Event::TaskSync {
                task_ids,
                sync_status,
            } => EventData::TaskSync {
                task_ids,
                sync_status: *sync_status,
            },
            Event::Conflict(conflict) => EventData::Conflict {
                task_id: conflict.task_id,
                field: conflict.field.clone(),
                kept: conflict.kept.json(),
                kept_device: conflict.kept_device,
                lost: conflict.lost.json(),
                lost_device: conflict.lost_device,
            },
        }
    }
}

impl TimedEvent {
    /// This event's JSON form, with its time.
    pub fn json(&self) -> EventJson<'_> {
        EventJson {
            event: self.event.data(),
            at: self.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use uuid::Uuid;

    use super::*;
    use crate::ipc::{SyncErrorKind, SyncFailure};
    use crate::task::SyncStatus;

    fn status() -> StatusInfo {
        StatusInfo {
            state: Connectivity::Offline,
            online: false,
            server: None,
            pending: 2,
            failed: 1,
            last_sync_at: None,
            last_error: Some(SyncFailure::new(SyncErrorKind::Offline, "unreachable")),
            device_id: Uuid::nil(),
            version: "0.1.0".into(),
            http: None,
            tasks: 3,
            deleted_tasks: 0,
            database: "tasks.db".into(),
            since: Timestamp::from_millis(0).unwrap(),
            next_probe_at: None,
        }
    }

    fn every_event() -> Vec<Event> {
        let at = Timestamp::from_millis(0).unwrap();
        let task = Task {
            id: Uuid::nil(),
            number: Some(1),
            title: "t".into(),
            description: None,
            completed: false,
            created_at: at,
            updated_at: at,
            is_deleted: false,
            sync_status: SyncStatus::Pending,
            last_synced_at: None,
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        };
        vec![
            Event::Status(status()),
            Event::TaskChanged {
                task,
                origin: ChangeOrigin::Remote,
            },
            Event::Connectivity(ConnectivityState {
                state: Connectivity::Online,
                since: at,
                next_probe_at: None,
            }),
            Event::Sync(SyncProgress::BatchSent { items: 3 }),
            Event::Sync(SyncProgress::BatchAnswered {
                synced_items: 2,
                failed_items: 1,
            }),
            Event::Sync(SyncProgress::Pulled { pulled_items: 4 }),
            Event::Sync(SyncProgress::RoundFinished(SyncReport {
                success: false,
                synced_items: 2,
                failed_items: 1,
                errors: vec![SyncFailure::new(SyncErrorKind::Rejected, "no")],
                offline: false,
                pulled_items: 4,
                conflicts: 0,
                resolved: Vec::new(),
            })),
            Event::Lagged { missed: 7 },
            Event::TaskSync {
                task_ids: vec![Uuid::nil()],
                sync_status: SyncStatus::Synced,
            },
            Event::Conflict(FieldConflict {
                task_id: Uuid::nil(),
                field: Field::Title,
                kept: FieldValue::Text("Buy oat milk (B)".into()),
                kept_device: Uuid::from_u128(0xB),
                lost: FieldValue::Text("Buy oat milk (A)".into()),
                lost_device: Uuid::from_u128(0xA),
            }),
        ]
    }

    /// The JSON of every event names it as `name()` does, and carries exactly the fields
    /// docs/LOCAL-API.md lists for it.
    #[test]
    fn every_event_has_its_documented_name_and_fields() {
        let fields = |value: &Value| {
            let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let expected: [(&str, &[&str]); 10] = [
            (
                "status",
                &[
                    "deleted_tasks",
                    "is_online",
                    "last_error",
                    "pending_sync_count",
                ],
            ),
            ("task", &["origin", "task"]),
            ("connectivity", &["next_probe_at", "since", "state"]),
            ("batch_sent", &["items"]),
            ("batch_answered", &["failed_items", "synced_items"]),
            ("pulled", &["pulled_items"]),
            (
                "sync",
                &[
                    "conflicts",
                    "errors",
                    "failed_items",
                    "offline",
                    "pulled_items",
                    "resolved",
                    "success",
                    "synced_items",
                ],
            ),
            ("reset", &["missed"]),
            ("task_sync", &["task_ids", "sync_status"]),
            (
                "conflict",
                &[
                    "task_id",
                    "field",
                    "kept",
                    "kept_device",
                    "lost",
                    "lost_device",
                ],
            ),
        ];
        let events = every_event();
        let at = Timestamp::from_millis(0).unwrap();
        for (event, (name, names)) in events.iter().zip(expected) {
            let timed = TimedEvent {
                at,
                event: event.clone(),
            };
            let value = serde_json::to_value(timed.json()).unwrap();
            assert_eq!(timed.json().event.name(), name);
            assert_eq!(value["event"], name);
            assert_eq!(value["at"], "1970-01-01T00:00:00.000Z");
            let keys = fields(&value);
            for field in names {
                assert!(
                    keys.iter().any(|k| k == field),
                    "{name}: {field} in {keys:?}"
                );
            }
            if name != "status" {
                let mut all: Vec<&str> = names.to_vec();
                all.extend(["at", "event"]);
                all.sort();
                assert_eq!(keys, all, "{name}");
            }
        }
    }

    #[test]
    fn every_event_name_is_known_to_the_filter() {
        let at = Timestamp::from_millis(0).unwrap();
        let mut names: Vec<&str> = every_event()
            .into_iter()
            .map(|event| TimedEvent { at, event }.json().event.name())
            .collect();
        names.sort_unstable();
        let mut known = EVENT_NAMES.to_vec();
        known.sort_unstable();
        assert_eq!(names, known);
        let task = serde_json::to_value(every_event().remove(1).data()).unwrap();
        assert!(task["task"]["etag"].is_string(), "{task}");
        let value = serde_json::to_value(every_event().remove(8).data()).unwrap();
        assert_eq!(value["task_ids"], json!([Uuid::nil()]));
        assert_eq!(value["sync_status"], "synced");
    }

    #[test]
    fn event_filters_name_known_events_and_always_pass_reset() {
        let all = EventFilter::all();
        assert!(EVENT_NAMES.iter().all(|name| all.allows(name)));
        let some = EventFilter::parse("task, task_sync").unwrap();
        assert!(some.allows("task") && some.allows("task_sync") && some.allows("reset"));
        assert!(
            some.allows("status") && !some.allows("sync"),
            "status and reset always pass"
        );
        for bad in ["", "task,", "tasks", "task,Sync"] {
            let error = EventFilter::parse(bad).unwrap_err();
            assert!(error.contains("batch_answered"), "{bad}: {error}");
        }
        assert!(EventFilter::parse("nope")
            .unwrap_err()
            .contains("unknown event \"nope\""));
    }

    #[test]
    fn typed_errors_and_counts_read_as_documented() {
        let value = serde_json::to_value(Event::Status(status()).data()).unwrap();
        assert_eq!(
            value["last_error"],
            json!({"kind": "offline", "message": "unreachable"})
        );
        assert_eq!(value["pending_sync_count"], 2);
        assert_eq!(value["sync_queue_size"], 3);
        assert_eq!(value["pending"], 2);
        let sync = every_event().remove(6);
        let value = serde_json::to_value(sync.data()).unwrap();
        assert_eq!(
            value["errors"],
            json!([{"kind": "rejected", "message": "no"}])
        );
    }
}
