//! Taskwarrior interop: `task export` JSON (Taskwarrior 2.6 and 3.x) to tasksync tasks and back.
//
// The mapping (docs: `taskctl import` / `taskctl export`):
//
// | Taskwarrior               | tasksync                                                      |
// |---------------------------|---------------------------------------------------------------|
// | `uuid`                    | `id` (kept)                                                   |
// | `description`             | `title` (must pass the title rule)                            |
// | `annotations`             | `description`: one line each, `YYYY-MM-DD text` (UTC date)    |
// | `status`                  | pending/waiting/recurring: open; completed: `completed`;      |
// |                           | deleted: `is_deleted`; waiting/recurring also kept as         |
// |                           | attribute `tw.status` so export can restore them              |
// | `entry`, `modified`       | `created_at`, `updated_at` (one stands in for the other)      |
// | `due`, `priority`, `project`, `tags` | the same fields                                    |
// | `id`, `urgency`           | dropped: Taskwarrior computes them (working-set number,       |
// |                           | urgency score); they are not data and change on their own     |
// | anything else             | attribute `tw.<name>` = the field's JSON text                 |
//
// "Anything else" is `end`, `wait`, `scheduled`, `until`, `start`, `recur`, `rtype`, `mask`,
// `imask`, `parent`, `depends` and every UDA. Their JSON is kept as it was (compact, whole
// numbers as integers), so `depends` stays an array (what 2.6 and 3.x export) or a
// comma-separated string (what 2.5 exported), whichever the file had.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value};
use tasksync_proto::task::{Priority, ValidationError};
use tasksync_proto::wire::WireTask;
use tasksync_proto::{SyncStatus, Task, Timestamp};
use uuid::Uuid;

/// The prefix of the attributes that hold Taskwarrior's other fields.
const ATTRIBUTE_PREFIX: &str = "tw.";

/// Fields Taskwarrior computes on every report: dropped on import, never exported.
const COMPUTED: [&str; 2] = ["id", "urgency"];

/// The fields with a tasksync counterpart of their own (never turned into attributes).
const MAPPED: [&str; 10] = [
    "uuid",
    "description",
    "annotations",
    "status",
    "entry",
    "modified",
    "due",
    "priority",
    "project",
    "tags",
];

/// Why a Taskwarrior export was refused: where (a line, or an array element) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportError {
    at: Location,
    message: String,
}

/// Where in the input an [`ImportError`] lies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// The text as a whole (the array form is not JSON).
    Whole,
    /// A line of the one-object-a-line form, 1-based.
    Line(usize),
    /// An element of the array form, 1-based, with its uuid when it has a readable one.
    Element(usize, Option<Uuid>),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Location::Whole => {}
            Location::Line(n) => write!(f, "line {n}: ")?,
            Location::Element(n, None) => write!(f, "element {n}: ")?,
            Location::Element(n, Some(uuid)) => write!(f, "element {n} (uuid {uuid}): ")?,
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}

/// A fault in one task object: what is wrong, and the task's uuid if it was readable.
struct Fault {
    uuid: Option<Uuid>,
    message: String,
}

/// Parses a Taskwarrior export: a JSON array, or one JSON object per line (blank lines skipped).
///
/// All or nothing: the first fault is an error, and no task comes back. A uuid given twice is
/// a fault too (the file would say two things about one task).
pub(crate) fn parse_export(text: &str) -> Result<Vec<tasksync_proto::Task>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // (location, object) in input order.
    let mut objects: Vec<(Location, Value)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| ImportError {
            at: Location::Whole,
            message: format!("not JSON: {e}"),
        })?;
        let Value::Array(elements) = value else {
            unreachable!("JSON text starting with [ is an array");
        };
        for (i, element) in elements.into_iter().enumerate() {
            objects.push((Location::Element(i + 1, None), element));
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            // `task export` with json.array=off writes bare lines; tolerate a separating comma.
            let line = line.trim();
            let line = line.strip_suffix(',').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| ImportError {
                at: Location::Line(i + 1),
                message: format!("not JSON: {e}"),
            })?;
            objects.push((Location::Line(i + 1), value));
        }
    }

    let mut tasks = Vec::with_capacity(objects.len());
    let mut seen: HashMap<Uuid, Location> = HashMap::new();
    for (at, value) in objects {
        let located = |fault: Fault| ImportError {
            at: match &at {
                Location::Element(n, _) => Location::Element(*n, fault.uuid),
                other => other.clone(),
            },
            message: fault.message,
        };
        let Value::Object(object) = value else {
            return Err(located(Fault {
                uuid: None,
                message: format!("not a JSON object but {}", kind(&value)),
            }));
        };
        let task = task_from_json(&object).map_err(located)?;
        if let Some(first) = seen.get(&task.id) {
            let first = match first {
                Location::Line(n) => format!("line {n}"),
                Location::Element(n, _) => format!("element {n}"),
                Location::Whole => unreachable!("objects have a line or element"),
            };
            return Err(located(Fault {
                uuid: Some(task.id),
                message: format!("uuid {} appears again (first at {first})", task.id),
            }));
        }
        seen.insert(task.id, at);
        tasks.push(task);
    }
    Ok(tasks)
}

/// The tasksync task for one Taskwarrior object.
fn task_from_json(object: &Map<String, Value>) -> Result<Task, Fault> {
    // A null field counts as absent (Taskwarrior writes none, but other tools might).
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let fault = |uuid: Option<Uuid>, message: String| Fault { uuid, message };

    let id = match field("uuid") {
        None => return Err(fault(None, "missing uuid".into())),
        Some(Value::String(text)) => Uuid::parse_str(text)
            .map_err(|_| fault(None, format!("uuid {} is not a UUID", shown(text))))?,
        Some(other) => {
            return Err(fault(
                None,
                format!("uuid must be a string, not {}", kind(other)),
            ))
        }
    };
    let fault = |message: String| Fault {
        uuid: Some(id),
        message,
    };
    let string = |name: &str| -> Result<Option<&str>, Fault> {
        match field(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(fault(format!(
                "{name} must be a string, not {}",
                kind(other)
            ))),
        }
    };
    let date = |name: &str| -> Result<Option<Timestamp>, Fault> {
        string(name)?
            .map(|text| parse_date(text).ok_or_else(|| fault(bad_date(name, text))))
            .transpose()
    };

    let title = string("description")?
        .ok_or_else(|| fault("missing description".into()))?
        .to_string();

    let mut attributes = BTreeMap::new();
    // Taskwarrior 2.6 and 3.x export "pending" for a waiting task (wait is a virtual tag
    // there); older versions wrote "waiting". A missing status is pending, as for `task import`.
    let (completed, is_deleted) = match string("status")? {
        None | Some("pending") => (false, false),
        Some(status @ ("waiting" | "recurring")) => {
            attributes.insert(format!("{ATTRIBUTE_PREFIX}status"), json_text(status));
            (false, false)
        }
        Some("completed") => (true, false),
        Some("deleted") => (false, true),
        Some(other) => {
            return Err(fault(format!(
                "unknown status {}: expected pending, waiting, recurring, completed or deleted",
                shown(other)
            )))
        }
    };

    let entry = date("entry")?;
    let modified = date("modified")?;
    let created_at = entry
        .or(modified)
        .ok_or_else(|| fault("missing entry (and modified)".into()))?;
    let updated_at = modified.map_or(created_at, |m| m.max(created_at));

    let due = date("due")?;
    // H, M and L are tasksync's priorities; a value of a custom `uda.priority.values` is kept
    // as the attribute `tw.priority` instead, so export gives it back.
    let priority = match string("priority")? {
        None => None,
        Some(text) => match text.parse::<Priority>() {
            Ok(priority) => Some(priority),
            Err(_) => {
                attributes.insert(format!("{ATTRIBUTE_PREFIX}priority"), json_text(text));
                None
            }
        },
    };
    let project = string("project")?.map(str::to_string);

    let mut tags = BTreeSet::new();
    match field("tags") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(tag) = item else {
                    return Err(fault(format!("tags must be strings, not {}", kind(item))));
                };
                tags.insert(tag.clone());
            }
        }
        Some(other) => {
            return Err(fault(format!(
                "tags must be an array of strings, not {}",
                kind(other)
            )))
        }
    }

    let description = match field("annotations") {
        None => None,
        Some(Value::Array(items)) => {
            let mut lines = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                lines.push(
                    annotation_line(item)
                        .map_err(|e| fault(format!("annotation {}: {e}", i + 1)))?,
                );
            }
            (!lines.is_empty()).then(|| lines.join("\n"))
        }
        Some(other) => {
            return Err(fault(format!(
                "annotations must be an array, not {}",
                kind(other)
            )))
        }
    };

    for (name, value) in object {
        if MAPPED.contains(&name.as_str()) || COMPUTED.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        let key = format!("{ATTRIBUTE_PREFIX}{name}");
        tasksync_proto::task::validate_attribute_key(&key).map_err(|_| {
            fault(format!(
                "field {}: attribute key {} is invalid (it must match ^[a-z][a-z0-9_.-]{{0,63}}$)",
                shown(name),
                shown(&key)
            ))
        })?;
        let text = canonical(value.clone()).to_string();
        tasksync_proto::task::validate_attribute_value(&key, &text).map_err(|_| {
            fault(format!(
                "field {name}: value too long for attribute {key} ({} characters; the limit is {})",
                text.chars().count(),
                tasksync_proto::task::MAX_ATTRIBUTE_VALUE_CHARS
            ))
        })?;
        attributes.insert(key, text);
    }

    let task = Task {
        id,
        number: None,
        title,
        description,
        completed,
        created_at,
        updated_at,
        is_deleted,
        sync_status: SyncStatus::Pending,
        last_synced_at: None,
        due,
        priority,
        project,
        tags,
        attributes,
    };
    WireTask::from_task(&task, Uuid::nil())
        .validate()
        .map_err(|e| fault(rule_broken(&e)))?;
    Ok(task)
}

/// One annotation as a description line, `YYYY-MM-DD text`.
fn annotation_line(annotation: &Value) -> Result<String, String> {
    let Value::Object(annotation) = annotation else {
        return Err(format!("not a JSON object but {}", kind(annotation)));
    };
    let entry = match annotation.get("entry") {
        Some(Value::String(text)) => parse_date(text).ok_or_else(|| bad_date("entry", text))?,
        Some(other) => return Err(format!("entry must be a string, not {}", kind(other))),
        None => return Err("missing entry".into()),
    };
    let text = match annotation.get("description") {
        Some(Value::String(text)) => text,
        Some(other) => return Err(format!("description must be a string, not {}", kind(other))),
        None => return Err("missing description".into()),
    };
    Ok(format!("{} {text}", &entry.to_string()[..10]))
}

/// The message for a task that breaks one of tasksync's rules, named by Taskwarrior's field.
fn rule_broken(error: &ValidationError) -> String {
    use ValidationError::*;
    match error {
        EmptyTitle | InvisibleTitle | ControlInTitle(_) | TitleTooLong(_) => {
            format!("description breaks the title rule: {error}")
        }
        ControlInDescription(_) | DescriptionTooLong(_) => {
            format!("annotations break the description rule: {error}")
        }
        _ => error.to_string(),
    }
}

fn bad_date(name: &str, text: &str) -> String {
    format!(
        "{name}: bad date {} (expected 20261224T170000Z or RFC 3339)",
        shown(text)
    )
}

/// A Taskwarrior date: the basic ISO 8601 form it writes, `20261224T170000Z`, or RFC 3339.
fn parse_date(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let basic = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if basic {
        let rfc3339 = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &text[..4],
            &text[4..6],
            &text[6..8],
            &text[9..11],
            &text[11..13],
            &text[13..15]
        );
        return rfc3339.parse().ok();
    }
    text.parse().ok()
}

/// A timestamp as Taskwarrior writes dates: `YYYYMMDDTHHMMSSZ`, milliseconds dropped.
fn format_date(at: Timestamp) -> String {
    // Display is the fixed-width `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    let text = at.to_string();
    let mut basic: String = text[..19]
        .chars()
        .filter(|&c| c != '-' && c != ':')
        .collect();
    basic.push('Z');
    basic
}

/// The value with whole floating-point numbers written as integers: Taskwarrior 2.6 stores an
/// imported JSON number as `%f` text and exports `8` back as `8.0`, so without this an
/// attribute would change on every trip through Taskwarrior.
fn canonical(value: Value) -> Value {
    match value {
        Value::Number(number) if !number.is_i64() && !number.is_u64() => {
            match number.as_f64() {
                // Below 2^53 every whole f64 is exactly an i64.
                Some(float) if float.fract() == 0.0 && float.abs() < 9_007_199_254_740_992.0 => {
                    Value::from(float as i64)
                }
                _ => Value::Number(number),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        other => other,
    }
}

/// A string as JSON text (what `tw.*` attributes hold).
fn json_text(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// A value's JSON kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Input shown in a message: quoted, escaped, cut at 60 characters.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    let mut shown = format!("{cut:?}");
    if text.chars().count() > 60 {
        shown.push_str("...");
    }
    shown
}

/// The Taskwarrior JSON array for these tasks (what `task import` accepts).
///
/// Each task becomes `uuid`, `description` (the title), `status`, `entry`, `modified`, and
/// `due`, `priority`, `project`, `tags`, `annotations` when set, plus every `tw.<name>`
/// attribute restored as the field `<name>` (its JSON text parsed back; text that is not JSON
/// goes as a string). Status: deleted, else completed, else the `tw.status` kept on import
/// (waiting, recurring), else pending. A completed or deleted task without `tw.end` gets
/// `end` = `modified` (Taskwarrior would otherwise stamp the time of import); an open task
/// gets no `end`.
///
/// Attributes outside `tw.` are not exported: Taskwarrior would take any other field for an
/// orphaned UDA and keep it forever, so only what came from Taskwarrior goes back.
///
/// Annotations come from the description, one per non-empty line: `YYYY-MM-DD text` gives
/// entry = that date at midnight UTC, any other line entry = `created_at` with the whole line
/// as text. Taskwarrior keys annotations by their entry second, so a second annotation with
/// the same entry is moved one second later (a later import still reads the same date).
///
/// `parse_export(to_export(tasks))` gives the tasks back when their times are whole seconds,
/// their description lines are all `YYYY-MM-DD text`, completed and deleted tasks have
/// `tw.end` and open ones none, and attribute texts are compact JSON (true of every task
/// `parse_export` made); `sync_status` comes back `Pending`, `number` and `last_synced_at`
/// `None`.
pub(crate) fn to_export(tasks: &[tasksync_proto::Task]) -> serde_json::Value {
    Value::Array(tasks.iter().map(task_to_json).collect())
}

fn task_to_json(task: &Task) -> Value {
    let mut object = Map::new();
    for (key, text) in &task.attributes {
        let Some(name) = key.strip_prefix(ATTRIBUTE_PREFIX) else {
            continue;
        };
        if name.is_empty() || COMPUTED.contains(&name) || name == "status" {
            continue;
        }
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        object.insert(name.to_string(), value);
    }
    // The task's own fields win over attributes of the same name.
    let put = |object: &mut Map<String, Value>, name: &str, value: Option<Value>| match value {
        Some(value) => {
            object.insert(name.to_string(), value);
        }
        None => {
            object.remove(name);
        }
    };
    let date = |at: Timestamp| Some(Value::String(format_date(at)));
    put(
        &mut object,
        "uuid",
        Some(Value::String(task.id.to_string())),
    );
    put(
        &mut object,
        "description",
        Some(Value::String(task.title.clone())),
    );
    let status = if task.is_deleted {
        "deleted"
    } else if task.completed {
        "completed"
    } else {
        let kept = task.attributes.get("tw.status");
        match kept
            .and_then(|text| serde_json::from_str::<String>(text).ok())
            .as_deref()
        {
            Some("waiting") => "waiting",
            Some("recurring") => "recurring",
            _ => "pending",
        }
    };
    put(&mut object, "status", Some(Value::String(status.into())));
    put(&mut object, "entry", date(task.created_at));
    put(&mut object, "modified", date(task.updated_at));
    if task.completed || task.is_deleted {
        if !object.contains_key("end") {
            put(&mut object, "end", date(task.updated_at));
        }
    } else {
        put(&mut object, "end", None);
    }
    put(&mut object, "due", task.due.and_then(date));
    if let Some(priority) = task.priority {
        put(
            &mut object,
            "priority",
            Some(Value::String(priority.as_str().into())),
        );
    }
    put(
        &mut object,
        "project",
        task.project.clone().map(Value::String),
    );
    let tags = (!task.tags.is_empty())
        .then(|| Value::Array(task.tags.iter().cloned().map(Value::String).collect()));
    put(&mut object, "tags", tags);
    let annotations = annotations(task);
    put(
        &mut object,
        "annotations",
        (!annotations.is_empty()).then_some(Value::Array(annotations)),
    );
    Value::Object(object)
}

/// The description's lines as Taskwarrior annotations (see [`to_export`]).
fn annotations(task: &Task) -> Vec<Value> {
    let Some(description) = &task.description else {
        return Vec::new();
    };
    let created = task.created_at.as_millis();
    let created =
        Timestamp::from_millis(created - created.rem_euclid(1000)).unwrap_or(task.created_at);
    let mut used = BTreeSet::new();
    let mut annotations = Vec::new();
    for line in description.lines().filter(|line| !line.trim().is_empty()) {
        let dated = line.split_once(' ').and_then(|(day, text)| {
            let midnight = (day.len() == 10)
                .then(|| format!("{day}T00:00:00Z").parse::<Timestamp>().ok())
                .flatten()?;
            Some((midnight, text))
        });
        let (mut entry, text) = dated.unwrap_or((created, line));
        while used.contains(&entry) {
            match Timestamp::from_millis(entry.as_millis() + 1000) {
                Some(next) => entry = next,
                None => break,
            }
        }
        used.insert(entry);
        let mut annotation = Map::new();
        annotation.insert("entry".into(), Value::String(format_date(entry)));
        annotation.insert("description".into(), Value::String(text.to_string()));
        annotations.push(Value::Object(annotation));
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines of a real `task export` of Taskwarrior 2.6.2 (rc: `uda.estimate.type=numeric`),
    // one object a line as `rc.json.array=off` writes them.
    const GIFTS: &str = r#"{"id":1,"description":"Buy gifts","due":"20261224T170000Z","entry":"20261203T075844Z","estimate":2.5,"modified":"20261203T075844Z","priority":"H","project":"home.shopping","status":"pending","uuid":"8fa2a418-da24-4824-835c-f7785c13cc41","annotations":[{"entry":"20261203T075844Z","description":"remember the wrapping paper"}],"tags":["errand","xmas"],"urgency":19.1}"#;
    const REPORT: &str = r#"{"id":2,"description":"Write report","entry":"20261203T075844Z","modified":"20261203T075844Z","priority":"M","project":"work","scheduled":"20261130T000000Z","status":"pending","uuid":"f683659b-f01f-4a47-a459-780f872044f0","wait":"20261201T000000Z","urgency":9.9}"#;
    const TEMPLATE: &str = r#"{"id":3,"description":"Water plants","due":"20260601T000000Z","entry":"20261203T075844Z","mask":"----------------------------","modified":"20261203T075844Z","recur":"weekly","rtype":"periodic","status":"recurring","uuid":"08abe914-0b45-4539-b38e-d8ac1b6743e5","urgency":12}"#;
    const DEPENDS: &str = r#"{"id":4,"description":"Depends on gifts","entry":"20261203T075844Z","modified":"20261203T075844Z","status":"pending","uuid":"72fbbe8f-fedd-43d3-8876-1e555e9dde15","depends":["8fa2a418-da24-4824-835c-f7785c13cc41"],"urgency":-5}"#;
    const CHILD: &str = r#"{"id":6,"description":"Water plants","due":"20260601T000000Z","entry":"20261203T075844Z","imask":0,"modified":"20261203T075844Z","parent":"08abe914-0b45-4539-b38e-d8ac1b6743e5","recur":"weekly","rtype":"periodic","status":"pending","uuid":"e6b010be-88c3-49a1-9b61-63bd8d52a1a6","urgency":12}"#;
    const TRIP: &str = r#"{"id":34,"description":"Plan trip","entry":"20261203T075849Z","estimate":8,"modified":"20261203T075849Z","project":"travel","status":"pending","uuid":"46bbb0af-7842-451f-8881-dbe421e074fc","wait":"20270115T000000Z","tags":["summer"],"urgency":-1.2}"#;
    const STARTED: &str = r#"{"id":35,"description":"Started thing","entry":"20261203T075849Z","modified":"20261203T075850Z","start":"20261203T075849Z","status":"pending","uuid":"02ff4a0b-53f9-43d7-97a5-63226ca3136c","annotations":[{"entry":"20261203T075849Z","description":"first note"},{"entry":"20261203T075850Z","description":"second note"}],"urgency":4.9}"#;
    const UNTIL: &str = r#"{"id":36,"description":"Until thing","due":"20270201T000000Z","entry":"20261203T075850Z","modified":"20261203T075850Z","status":"pending","until":"20270301T000000Z","uuid":"c1fe734e-12fd-4d3e-b978-9470341350e3","urgency":2.4}"#;
    const DONE: &str = r#"{"id":0,"description":"Read book","end":"20261203T075844Z","entry":"20261203T075844Z","modified":"20261203T075844Z","status":"completed","uuid":"7c23c2e4-43e2-4d12-8b3a-c49dd7a83c56","tags":["leisure"],"urgency":0.8}"#;
    const DELETED: &str = r#"{"id":0,"description":"Old idea","end":"20261203T075844Z","entry":"20261203T075844Z","modified":"20261203T075844Z","priority":"L","status":"deleted","uuid":"da3b5661-e20c-460d-8a93-36ab8a150469","urgency":1.8}"#;
    // Written by hand in the form Taskwarrior 2.5 used: status "waiting", depends as a
    // comma-separated string.
    const OLD_WAITING: &str = r#"{"description":"Old waiting","entry":"20201203T075844Z","modified":"20201204T075844Z","status":"waiting","uuid":"22222222-2222-4222-8222-222222222222","wait":"20270115T000000Z","depends":"8fa2a418-da24-4824-835c-f7785c13cc41,72fbbe8f-fedd-43d3-8876-1e555e9dde15"}"#;

    const ALL: [&str; 11] = [
        GIFTS,
        REPORT,
        TEMPLATE,
        DEPENDS,
        CHILD,
        TRIP,
        STARTED,
        UNTIL,
        DONE,
        DELETED,
        OLD_WAITING,
    ];

    /// The fixtures as `task export` writes them by default: an array, one element a line.
    fn array_text(lines: &[&str]) -> String {
        format!("[\n{}\n]\n", lines.join(",\n"))
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn one(line: &str) -> Task {
        let mut tasks = parse_export(line).unwrap();
        assert_eq!(tasks.len(), 1);
        tasks.pop().unwrap()
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(text: &str) -> String {
        parse_export(text).unwrap_err().to_string()
    }

    #[test]
    fn maps_every_field_of_a_pending_task() {
        let task = one(GIFTS);
        assert_eq!(
            task,
            Task {
                id: "8fa2a418-da24-4824-835c-f7785c13cc41".parse().unwrap(),
                number: None,
                title: "Buy gifts".into(),
                description: Some("2026-12-03 remember the wrapping paper".into()),
                completed: false,
                created_at: ts("2026-12-03T07:58:44Z"),
                updated_at: ts("2026-12-03T07:58:44Z"),
                is_deleted: false,
                sync_status: SyncStatus::Pending,
                last_synced_at: None,
                due: Some(ts("2026-12-24T17:00:00Z")),
                priority: Some(Priority::H),
                project: Some("home.shopping".into()),
                tags: ["errand".to_string(), "xmas".to_string()].into(),
                // The UDA; `id` and `urgency` are gone.
                attributes: attrs(&[("tw.estimate", "2.5")]),
            }
        );
    }

    #[test]
    fn other_fields_become_tw_attributes_as_json_text() {
        assert_eq!(
            one(REPORT).attributes,
            attrs(&[
                ("tw.scheduled", "\"20261130T000000Z\""),
                ("tw.wait", "\"20261201T000000Z\""),
            ])
        );
        let template = one(TEMPLATE);
        assert!(!template.completed && !template.is_deleted);
        assert_eq!(
            template.attributes,
            attrs(&[
                ("tw.mask", "\"----------------------------\""),
                ("tw.recur", "\"weekly\""),
                ("tw.rtype", "\"periodic\""),
                ("tw.status", "\"recurring\""),
            ])
        );
        assert_eq!(
            one(DEPENDS).attributes,
            attrs(&[("tw.depends", r#"["8fa2a418-da24-4824-835c-f7785c13cc41"]"#)])
        );
        assert_eq!(
            one(CHILD).attributes,
            attrs(&[
                ("tw.imask", "0"),
                ("tw.parent", "\"08abe914-0b45-4539-b38e-d8ac1b6743e5\""),
                ("tw.recur", "\"weekly\""),
                ("tw.rtype", "\"periodic\""),
            ])
        );
        assert_eq!(
            one(TRIP).attributes,
            attrs(&[("tw.estimate", "8"), ("tw.wait", "\"20270115T000000Z\"")])
        );
        // What Taskwarrior 2.6 exports after importing `"estimate":8`.
        assert_eq!(
            one(&TRIP.replace("\"estimate\":8", "\"estimate\":8.0")).attributes["tw.estimate"],
            "8"
        );
        assert_eq!(
            one(UNTIL).attributes,
            attrs(&[("tw.until", "\"20270301T000000Z\"")])
        );
        // 2.5's forms: kept as they were.
        assert_eq!(
            one(OLD_WAITING).attributes,
            attrs(&[
                (
                    "tw.depends",
                    r#""8fa2a418-da24-4824-835c-f7785c13cc41,72fbbe8f-fedd-43d3-8876-1e555e9dde15""#
                ),
                ("tw.status", "\"waiting\""),
                ("tw.wait", "\"20270115T000000Z\""),
            ])
        );
    }

    #[test]
    fn statuses_annotations_and_times() {
        let done = one(DONE);
        assert!(done.completed && !done.is_deleted);
        assert_eq!(done.tags, BTreeSet::from(["leisure".to_string()]));
        assert_eq!(
            done.attributes,
            attrs(&[("tw.end", "\"20261203T075844Z\"")])
        );
        let deleted = one(DELETED);
        assert!(deleted.is_deleted && !deleted.completed);
        assert_eq!(deleted.priority, Some(Priority::L));
        let waiting = one(OLD_WAITING);
        assert!(!waiting.completed && !waiting.is_deleted);
        assert_eq!(waiting.updated_at, ts("2020-12-04T07:58:44Z"));

        let started = one(STARTED);
        assert_eq!(
            started.description.as_deref(),
            Some("2026-12-03 first note\n2026-12-03 second note")
        );
        assert_eq!(started.created_at, ts("2026-12-03T07:58:49Z"));
        assert_eq!(started.updated_at, ts("2026-12-03T07:58:50Z"));
        assert_eq!(
            started.attributes,
            attrs(&[("tw.start", "\"20261203T075849Z\"")])
        );
        assert_eq!(one(REPORT).description, None);
    }

    #[test]
    fn entry_and_modified_stand_in_for_each_other() {
        let base = r#""uuid":"11111111-1111-4111-8111-111111111111","description":"x""#;
        let only_modified = one(&format!(r#"{{{base},"modified":"20260101T000000Z"}}"#));
        assert_eq!(only_modified.created_at, ts("2026-01-01T00:00:00Z"));
        assert_eq!(only_modified.updated_at, ts("2026-01-01T00:00:00Z"));
        let only_entry = one(&format!(r#"{{{base},"entry":"20260101T000000Z"}}"#));
        assert_eq!(only_entry.updated_at, ts("2026-01-01T00:00:00Z"));
        let backwards = one(&format!(
            r#"{{{base},"entry":"20260102T000000Z","modified":"20260101T000000Z"}}"#
        ));
        assert_eq!(backwards.updated_at, ts("2026-01-02T00:00:00Z"));
        // RFC 3339 is read too, milliseconds kept.
        let rfc = one(&format!(
            r#"{{{base},"entry":"2026-01-01T01:00:00+01:00","modified":"2026-01-01T00:00:00.250Z","due":"2026-02-01T00:00:00Z"}}"#
        ));
        assert_eq!(rfc.created_at, ts("2026-01-01T00:00:00Z"));
        assert_eq!(rfc.updated_at.as_millis() % 1000, 250);
        assert_eq!(rfc.due, Some(ts("2026-02-01T00:00:00Z")));
        assert_eq!(
            error(&format!("{{{base}}}")),
            "line 1: missing entry (and modified)"
        );
        // A priority Taskwarrior was configured with but tasksync has not is kept aside.
        let custom = one(&format!(
            r#"{{{base},"entry":"20260101T000000Z","priority":"U"}}"#
        ));
        assert_eq!(custom.priority, None);
        assert_eq!(custom.attributes, attrs(&[("tw.priority", "\"U\"")]));
        assert_eq!(to_export(&[custom])[0]["priority"], "U");
    }

    #[test]
    fn both_input_forms_give_the_same_tasks() {
        let from_array = parse_export(&array_text(&ALL)).unwrap();
        assert_eq!(from_array.len(), ALL.len());
        let lines = format!("\n{}\n\n", ALL.join("\n\n"));
        assert_eq!(parse_export(&lines).unwrap(), from_array);
        // Importing the same file again reads the same tasks.
        assert_eq!(parse_export(&array_text(&ALL)).unwrap(), from_array);
        assert_eq!(parse_export("").unwrap(), vec![]);
        assert_eq!(parse_export("[]").unwrap(), vec![]);
        assert_eq!(parse_export(" \n\n").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_line_or_element() {
        let text = format!("{GIFTS}\n{REPORT}\n{{\"uuid\": oops}}\n{DONE}\n");
        let message = error(&text);
        assert!(
            message.starts_with("line 3: not JSON: expected value at line 1 column 10"),
            "{message}"
        );

        let control = DEPENDS.replace("Depends on gifts", "Depends\\u001bon gifts");
        assert_eq!(
            error(&array_text(&[GIFTS, &control, DONE])),
            "element 2 (uuid 72fbbe8f-fedd-43d3-8876-1e555e9dde15): description breaks the \
             title rule: title must not contain control characters (found U+001B)"
        );
        // A tab is a control character for the title rule too (Taskwarrior allows one).
        assert!(error(&REPORT.replace("Write report", "Write\\treport"))
            .starts_with("line 1: description breaks the title rule"));
        assert_eq!(
            error(&array_text(&[
                GIFTS,
                &DONE.replace("20261203T075844Z", "2026-12-03")
            ])),
            "element 2 (uuid 7c23c2e4-43e2-4d12-8b3a-c49dd7a83c56): entry: bad date \
             \"2026-12-03\" (expected 20261224T170000Z or RFC 3339)"
        );
        assert_eq!(
            error(&DONE.replace("\"completed\"", "\"done\"")),
            "line 1: unknown status \"done\": expected pending, waiting, recurring, completed \
             or deleted"
        );
        assert_eq!(
            error(&array_text(&[
                GIFTS,
                REPORT,
                r#"{"description":"no id","entry":"20261203T075844Z"}"#
            ])),
            "element 3: missing uuid"
        );
        assert_eq!(
            error(&format!("{GIFTS}\n{GIFTS}")),
            "line 2: uuid 8fa2a418-da24-4824-835c-f7785c13cc41 appears again (first at line 1)"
        );
        assert_eq!(error("[1]"), "element 1: not a JSON object but a number");
        let message = error(&format!("[\n{GIFTS},\n{REPORT}\n"));
        assert!(
            message.starts_with("not JSON: EOF while parsing a list at line 4"),
            "{message}"
        );
        assert!(error(&GIFTS.replace("remember", "\\u0007")).starts_with(
            "line 1: annotations break the description rule: description must not contain \
             control characters"
        ));
        assert!(error(&GIFTS.replace(
            "\"entry\":\"20261203T075844Z\",\"description\"",
            "\"description\""
        ))
        .starts_with("line 1: annotation 1: missing entry"));
        assert!(
            error(&GIFTS.replace("\"home.shopping\"", "\"home shopping\""))
                .starts_with("line 1: project must be")
        );
        assert!(error(&GIFTS.replace("\"xmas\"", "\"x mas\"")).starts_with("line 1: tag must be"));
    }

    #[test]
    fn attribute_keys_and_values_must_fit() {
        let base = r#""uuid":"11111111-1111-4111-8111-111111111111","description":"x","entry":"20260101T000000Z""#;
        assert_eq!(
            error(&format!(r#"{{{base},"Estimate":1}}"#)),
            "line 1: field \"Estimate\": attribute key \"tw.Estimate\" is invalid (it must \
             match ^[a-z][a-z0-9_.-]{0,63}$)"
        );
        let long = "y".repeat(5000);
        assert_eq!(
            error(&format!(r#"{{{base},"note":"{long}"}}"#)),
            "line 1: field note: value too long for attribute tw.note (5002 characters; the \
             limit is 4096)"
        );
        let tags: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
        assert_eq!(
            error(&format!(r#"{{{base},"tags":[{}]}}"#, tags.join(","))),
            "line 1: tags: at most 64 tags, got 65"
        );
    }

    #[test]
    fn export_has_taskwarrior_shape() {
        let tasks = parse_export(&array_text(&ALL)).unwrap();
        let export = to_export(&tasks);
        let by_uuid = |uuid: &str| {
            export
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["uuid"] == uuid)
                .unwrap()
                .clone()
        };
        let strip = |line: &str| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("id");
            object.remove("urgency");
            value
        };
        // What came from Taskwarrior goes back as it was (computed fields aside), annotation
        // entries at midnight.
        for line in [
            REPORT,
            TEMPLATE,
            DEPENDS,
            CHILD,
            TRIP,
            UNTIL,
            DONE,
            DELETED,
            OLD_WAITING,
        ] {
            let original = strip(line);
            assert_eq!(by_uuid(original["uuid"].as_str().unwrap()), original);
        }
        let gifts = by_uuid("8fa2a418-da24-4824-835c-f7785c13cc41");
        assert_eq!(gifts["estimate"], 2.5);
        assert_eq!(gifts["tags"], serde_json::json!(["errand", "xmas"]));
        assert_eq!(
            gifts["annotations"],
            serde_json::json!([{"entry": "20261203T000000Z", "description": "remember the wrapping paper"}])
        );
        assert_eq!(gifts["due"], "20261224T170000Z");
        // Two annotations of one day: Taskwarrior keys them by entry second, so they differ.
        assert_eq!(
            by_uuid("02ff4a0b-53f9-43d7-97a5-63226ca3136c")["annotations"],
            serde_json::json!([
                {"entry": "20261203T000000Z", "description": "first note"},
                {"entry": "20261203T000001Z", "description": "second note"},
            ])
        );

        // A task made in tasksync: milliseconds dropped, `end` for Taskwarrior, no tags key.
        let mut native = Task {
            id: "33333333-3333-4333-8333-333333333333".parse().unwrap(),
            number: Some(4),
            title: "Native".into(),
            description: Some("2026-05-01 a\n\nfree text\n2026-05-01 b\n2026-13-01 c".into()),
            completed: true,
            created_at: ts("2026-04-30T10:00:00.999Z"),
            updated_at: ts("2026-05-02T10:00:00.500Z"),
            is_deleted: false,
            sync_status: SyncStatus::Synced,
            last_synced_at: Some(ts("2026-05-02T10:00:01Z")),
            due: None,
            priority: None,
            project: None,
            tags: BTreeSet::new(),
            attributes: attrs(&[
                ("myapp.colour", "red"),
                ("tw.note", "not json"),
                ("tw.status", "\"waiting\""),
                ("tw.description", "\"shadow\""),
            ]),
        };
        let json = to_export(std::slice::from_ref(&native));
        assert_eq!(
            json,
            serde_json::json!([{
                "uuid": "33333333-3333-4333-8333-333333333333",
                "description": "Native",
                "status": "completed",
                "entry": "20260430T100000Z",
                "modified": "20260502T100000Z",
                "end": "20260502T100000Z",
                "note": "not json",
                "annotations": [
                    {"entry": "20260501T000000Z", "description": "a"},
                    {"entry": "20260430T100000Z", "description": "free text"},
                    {"entry": "20260501T000001Z", "description": "b"},
                    {"entry": "20260430T100001Z", "description": "2026-13-01 c"},
                ],
            }])
        );
        // Open: the kept status comes back, and no `end`.
        native.completed = false;
        native
            .attributes
            .insert("tw.end".into(), "\"20260502T100000Z\"".into());
        let open = &to_export(std::slice::from_ref(&native))[0];
        assert_eq!(open["status"], "waiting");
        assert!(open.get("end").is_none());
        native.is_deleted = true;
        assert_eq!(to_export(&[native])[0]["status"], "deleted");
    }

    #[test]
    fn parse_of_export_gives_the_tasks_back() {
        let tasks = parse_export(&array_text(&ALL)).unwrap();
        let text = to_export(&tasks).to_string();
        assert_eq!(parse_export(&text).unwrap(), tasks);

        let native = Task {
            id: "44444444-4444-4444-8444-444444444444".parse().unwrap(),
            number: None,
            title: "Native \"quoted\" ünïcode ✓".into(),
            description: Some("2026-05-01 a\n2026-05-01 b\n2026-05-03 c".into()),
            completed: false,
            created_at: ts("2026-04-30T10:00:00Z"),
            updated_at: ts("2026-05-02T10:00:00Z"),
            is_deleted: false,
            sync_status: SyncStatus::Pending,
            last_synced_at: None,
            due: Some(ts("2026-06-01T12:30:00Z")),
            priority: Some(Priority::M),
            project: Some("home.garden".into()),
            tags: ["a".to_string(), "b-c".to_string()].into(),
            attributes: attrs(&[
                ("tw.depends", r#"["8fa2a418-da24-4824-835c-f7785c13cc41"]"#),
                ("tw.estimate", "3"),
                ("tw.obj", r#"{"a":[1,true,null]}"#),
            ]),
        };
        let mut done = native.clone();
        done.id = "55555555-5555-4555-8555-555555555555".parse().unwrap();
        done.completed = true;
        done.attributes
            .insert("tw.end".into(), "\"20260502T090000Z\"".into());
        let both = [native, done];
        let text = to_export(&both).to_string();
        assert_eq!(parse_export(&text).unwrap(), both);
    }
}
