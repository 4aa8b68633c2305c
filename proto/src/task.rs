//! The `Task` model and the one place that decides what a valid task is.
//!
//! JSON field names are those of docs/LOCAL-API.md ("A task"). Every program that accepts task input (IPC,
//! HTTP, the sync server) validates it through [`NewTask::validate`] and
//! [`TaskPatch::validate`], so the limits below exist exactly once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::timestamp::Timestamp;

/// A task id: a UUID (v7 when made by a daemon), the same on every device.
pub type TaskId = Uuid;

/// Longest title, counted in characters after trimming.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest project name, in characters.
pub const MAX_PROJECT_CHARS: usize = 200;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Most tags a task may be given.
pub const MAX_TAGS: usize = 64;
/// Longest attribute key, in characters (`^[a-z][a-z0-9_.-]{0,63}$`).
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
/// Longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 4_096;
/// Most attributes a task may be given.
pub const MAX_ATTRIBUTES: usize = 64;

/// A task as the daemon stores and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    /// The task's working-set number on this device (README, "Naming tasks"): set while the task
    /// is neither completed nor deleted, `None` otherwise. Local only, like `sync_status`.
    #[serde(default)]
    pub number: Option<u32>,
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub is_deleted: bool,
    pub sync_status: SyncStatus,
    pub last_synced_at: Option<Timestamp>,
    /// When the task is due.
    #[serde(default)]
    pub due: Option<Timestamp>,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// A project name; dots make a hierarchy (`home.garden` is below `home`).
    #[serde(default)]
    pub project: Option<String>,
    /// Sorted and unique.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// An app's own fields, key -> value (apps namespace theirs: `myapp.colour`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Task {
    /// The task's entity tag for the local HTTP API (`ETag`, `If-Match`): a strong tag over
    /// everything a user or another device can change (not the local sync state or number), so
    /// it changes exactly when the task's content or clock does.
    pub fn etag(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [
            self.id.to_string(),
            self.title.clone(),
            format!("{:?}", self.description),
            self.completed.to_string(),
            self.is_deleted.to_string(),
            self.created_at.to_string(),
            self.updated_at.to_string(),
            format!("{:?}", self.due),
            format!("{:?}", self.priority),
            format!("{:?}", self.project),
            format!("{:?}", self.tags),
            format!("{:?}", self.attributes),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }
}

/// A task as every JSON surface shows it (the local HTTP API, `taskctl --json`, the `task`
/// event): its fields and its entity tag, `etag`, which `If-Match` takes.
#[derive(Debug, Clone, Serialize)]
pub struct TaskJson<'a> {
    #[serde(flatten)]
    pub task: &'a Task,
    pub etag: String,
}

impl<'a> From<&'a Task> for TaskJson<'a> {
    fn from(task: &'a Task) -> Self {
        TaskJson {
            task,
            etag: task.etag(),
        }
    }
}

/// Where a task stands with respect to the sync server (local only, never synced itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStatus {
    Pending,
    InProgress,
    Synced,
    Error,
    Failed,
}

crate::names::named!(SyncStatus, "sync status", {
    Pending => "pending",
    InProgress => "in-progress",
    Synced => "synced",
    Error => "error",
    Failed => "failed",
});

/// A task's priority: high, medium or low (Taskwarrior's `H`, `M`, `L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    H,
    M,
    L,
}

crate::names::named!(Priority, "priority", {
    H => "H",
    M => "M",
    L => "L",
});

/// Input of a create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    /// A client-chosen id, so that the create can be retried safely: the same create again
    /// returns the task made the first time; the id with other content is a conflict.
    /// `None`: the daemon picks a UUIDv7.
    #[serde(default)]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub due: Option<Timestamp>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Input of an update: `None` leaves a field as it is; `Some(None)` clears an optional one.
///
/// Tags change by `tags` (the whole new set), or by `add_tags` and `remove_tags` (which leave
/// the other tags alone, so two clients adding different tags both keep theirs). In
/// `attributes`, a key set to `None` removes it; keys not named stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub completed: Option<bool>,
    #[serde(default)]
    pub due: Option<Option<Timestamp>>,
    #[serde(default)]
    pub priority: Option<Option<Priority>>,
    #[serde(default)]
    pub project: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<BTreeSet<String>>,
    #[serde(default)]
    pub add_tags: BTreeSet<String>,
    #[serde(default)]
    pub remove_tags: BTreeSet<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
}

/// Why task input was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("title must contain a visible character, not only spaces or invisible characters")]
    InvisibleTitle,
    #[error("title must not contain control characters (found {0})")]
    ControlInTitle(String),
    #[error(
        "description must not contain control characters other than newline and tab (found {0})"
    )]
    ControlInDescription(String),
    #[error("title is {0} characters long; the limit is {MAX_TITLE_CHARS}")]
    TitleTooLong(usize),
    #[error("description is {0} characters long; the limit is {MAX_DESCRIPTION_CHARS}")]
    DescriptionTooLong(usize),
    #[error("nothing to change: give at least one of title, description, completed, due, priority, project, tags, attributes")]
    EmptyPatch,
    #[error("project must be 1 to {MAX_PROJECT_CHARS} characters without whitespace or control characters (got {0})")]
    BadProject(String),
    #[error("tag must be 1 to {MAX_TAG_CHARS} characters without whitespace or control characters (got {0})")]
    BadTag(String),
    #[error("tags: at most {MAX_TAGS} tags, got {0}")]
    TooManyTags(usize),
    #[error("attribute key {0} is invalid: it must match ^[a-z][a-z0-9_.-]{{0,63}}$")]
    BadAttributeKey(String),
    #[error("attribute {0}: the value must be 1 to {MAX_ATTRIBUTE_VALUE_CHARS} characters without control characters other than newline and tab")]
    BadAttributeValue(String),
    #[error("attributes: at most {MAX_ATTRIBUTES} keys, got {0}")]
    TooManyAttributes(usize),
}

fn validate_title(title: &str) -> Result<(), ValidationError> {
    let chars = title.trim().chars().count();
    match chars {
        0 => return Err(ValidationError::EmptyTitle),
        n if n > MAX_TITLE_CHARS => return Err(ValidationError::TitleTooLong(n)),
        _ => {}
    }
    if let Some(c) = title.chars().find(|c| c.is_control()) {
        return Err(ValidationError::ControlInTitle(code_point(c)));
    }
    if !title.chars().any(is_visible) {
        return Err(ValidationError::InvisibleTitle);
    }
    Ok(())
}

fn validate_description(description: Option<&str>) -> Result<(), ValidationError> {
    let Some(description) = description else {
        return Ok(());
    };
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::DescriptionTooLong(chars));
    }
    if let Some(c) = description
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::ControlInDescription(code_point(c)));
    }
    Ok(())
}

/// A shortened, escaped form of refused input for an error message (never raw).
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    let mut shown = format!("{:?}", cut);
    if text.chars().count() > 40 {
        shown.push_str("...");
    }
    shown
}

/// A name made of visible characters only: no whitespace, no control characters.
fn is_name(text: &str, max_chars: usize) -> bool {
    let chars = text.chars().count();
    (1..=max_chars).contains(&chars)
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !is_invisible(c))
}

/// The project rule: 1 to 200 characters, no whitespace or control characters.
pub fn validate_project(project: &str) -> Result<(), ValidationError> {
    if is_name(project, MAX_PROJECT_CHARS) {
        Ok(())
    } else {
        Err(ValidationError::BadProject(shown(project)))
    }
}

/// The tag rule: 1 to 64 characters, no whitespace or control characters.
pub fn validate_tag(tag: &str) -> Result<(), ValidationError> {
    if is_name(tag, MAX_TAG_CHARS) {
        Ok(())
    } else {
        Err(ValidationError::BadTag(shown(tag)))
    }
}

/// The attribute key rule: `^[a-z][a-z0-9_.-]{0,63}$`.
pub fn validate_attribute_key(key: &str) -> Result<(), ValidationError> {
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' || c == '-');
    if first_ok && rest_ok && key.len() <= MAX_ATTRIBUTE_KEY_CHARS {
        Ok(())
    } else {
        Err(ValidationError::BadAttributeKey(shown(key)))
    }
}

/// The attribute value rule: 1 to 4,096 characters, newline and tab the only control ones.
pub fn validate_attribute_value(key: &str, value: &str) -> Result<(), ValidationError> {
    let chars = value.chars().count();
    let clean = value
        .chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\t');
    if (1..=MAX_ATTRIBUTE_VALUE_CHARS).contains(&chars) && clean {
        Ok(())
    } else {
        Err(ValidationError::BadAttributeValue(key.to_string()))
    }
}

fn validate_tags<'a>(tags: impl IntoIterator<Item = &'a String>) -> Result<(), ValidationError> {
    let mut count = 0;
    for tag in tags {
        validate_tag(tag)?;
        count += 1;
    }
    if count > MAX_TAGS {
        return Err(ValidationError::TooManyTags(count));
    }
    Ok(())
}

/// Every rule on a whole task's content; the message names the field at fault.
pub(crate) fn validate_content(
    title: &str,
    description: Option<&str>,
    project: Option<&str>,
    tags: &BTreeSet<String>,
    attributes: &BTreeMap<String, String>,
) -> Result<(), ValidationError> {
    validate_title(title)?;
    validate_description(description)?;
    validate_extras(project, tags, attributes)
}

/// The rules of section 3a for the fields beyond title and description.
fn validate_extras(
    project: Option<&str>,
    tags: &BTreeSet<String>,
    attributes: &BTreeMap<String, String>,
) -> Result<(), ValidationError> {
    if let Some(project) = project {
        validate_project(project)?;
    }
    validate_tags(tags)?;
    for (key, value) in attributes {
        validate_attribute_key(key)?;
        validate_attribute_value(key, value)?;
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ValidationError::TooManyAttributes(attributes.len()));
    }
    Ok(())
}

/// `U+001B` for ESC: how a refused character is named in messages (never raw).
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Whether `c` shows something on screen: not whitespace, not a control character (Unicode
/// category Cc, which `char::is_control` is exactly), and not a format or otherwise
/// invisible character (category Cf, variation selectors, fillers: the Default_Ignorable
/// code points of Unicode 16, plus the blank Braille pattern).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || is_invisible(c))
}

/// Code points that render as nothing: Unicode's Default_Ignorable_Code_Point set (which
/// holds every format character, Cf, that can appear in text: ZWSP, ZWJ, BOM, bidi
/// controls, ...), the Hangul fillers, and U+2800 BRAILLE PATTERN BLANK. A fixed table: these
/// sets change rarely, and a title rule must not change with a dependency update.
fn is_invisible(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),   // soft hyphen
        (0x034F, 0x034F),   // combining grapheme joiner
        (0x061C, 0x061C),   // Arabic letter mark
        (0x0600, 0x0605),   // Arabic number signs (Cf)
        (0x06DD, 0x06DD),   // Arabic end of ayah (Cf)
        (0x070F, 0x070F),   // Syriac abbreviation mark (Cf)
        (0x0890, 0x0891),   // Arabic pound/piastre marks above (Cf)
        (0x08E2, 0x08E2),   // Arabic disputed end of ayah (Cf)
        (0x115F, 0x1160),   // Hangul fillers
        (0x17B4, 0x17B5),   // Khmer inherent vowels
        (0x180B, 0x180F),   // Mongolian variation selectors, vowel separator
        (0x200B, 0x200F),   // ZWSP, ZWNJ, ZWJ, LRM, RLM
        (0x202A, 0x202E),   // bidi embeddings and overrides
        (0x2060, 0x206F),   // word joiner, invisible operators, bidi isolates
        (0x2800, 0x2800),   // Braille pattern blank
        (0x3164, 0x3164),   // Hangul filler
        (0xFE00, 0xFE0F),   // variation selectors
        (0xFEFF, 0xFEFF),   // BOM, zero-width no-break space
        (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
        (0xFFF0, 0xFFFB),   // unassigned specials, interlinear annotation (Cf)
        (0x110BD, 0x110BD), // Kaithi number sign (Cf)
        (0x110CD, 0x110CD), // Kaithi number sign above (Cf)
        (0x13430, 0x1343F), // Egyptian hieroglyph format controls (Cf)
        (0x1BCA0, 0x1BCA3), // shorthand format controls (Cf)
        (0x1D173, 0x1D17A), // musical symbol format controls (Cf)
        (0xE0000, 0xE0FFF), // tags, variation selectors supplement
    ];
    let c = u32::from(c);
    RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

impl NewTask {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_content(
            &self.title,
            self.description.as_deref(),
            self.project.as_deref(),
            &self.tags,
            &self.attributes,
        )
    }
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.completed.is_none()
            && self.due.is_none()
            && self.priority.is_none()
            && self.project.is_none()
            && self.tags.is_none()
            && self.add_tags.is_empty()
            && self.remove_tags.is_empty()
            && self.attributes.is_empty()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.is_empty() {
            return Err(ValidationError::EmptyPatch);
        }
        if let Some(title) = &self.title {
            validate_title(title)?;
        }
        if let Some(description) = &self.description {
            validate_description(description.as_deref())?;
        }
        if let Some(Some(project)) = &self.project {
            validate_project(project)?;
        }
        if let Some(tags) = &self.tags {
            validate_tags(tags)?;
        }
        validate_tags(&self.add_tags)?;
        for tag in &self.remove_tags {
            validate_tag(tag)?;
        }
        for (key, value) in &self.attributes {
            validate_attribute_key(key)?;
            if let Some(value) = value {
                validate_attribute_value(key, value)?;
            }
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(ValidationError::TooManyAttributes(self.attributes.len()));
        }
        Ok(())
    }

    /// Applies the patch to `task`'s content (not its clock) and checks the result against
    /// the limits on the whole task (at most 64 tags and 64 attributes).
    pub fn apply(&self, task: &mut Task) -> Result<(), ValidationError> {
        if let Some(title) = &self.title {
            task.title.clone_from(title);
        }
        if let Some(description) = &self.description {
            task.description.clone_from(description);
        }
        if let Some(completed) = self.completed {
            task.completed = completed;
        }
        if let Some(due) = self.due {
            task.due = due;
        }
        if let Some(priority) = self.priority {
            task.priority = priority;
        }
        if let Some(project) = &self.project {
            task.project.clone_from(project);
        }
        if let Some(tags) = &self.tags {
            task.tags.clone_from(tags);
        }
        task.tags.extend(self.add_tags.iter().cloned());
        task.tags.retain(|tag| !self.remove_tags.contains(tag));
        for (key, value) in &self.attributes {
            match value {
                Some(value) => {
                    task.attributes.insert(key.clone(), value.clone());
                }
                None => {
                    task.attributes.remove(key);
                }
            }
        }
        if task.tags.len() > MAX_TAGS {
            return Err(ValidationError::TooManyTags(task.tags.len()));
        }
        if task.attributes.len() > MAX_ATTRIBUTES {
            return Err(ValidationError::TooManyAttributes(task.attributes.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str) -> NewTask {
        NewTask {
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn titles_are_checked_after_trimming_in_characters() {
        assert_eq!(new("   ").validate(), Err(ValidationError::EmptyTitle));
        assert_eq!(new("").validate(), Err(ValidationError::EmptyTitle));
        assert!(new(&"é".repeat(500)).validate().is_ok());
        assert!(new(&format!("  {}  ", "a".repeat(500))).validate().is_ok());
        assert_eq!(
            new(&"a".repeat(501)).validate(),
            Err(ValidationError::TitleTooLong(501))
        );
    }

    #[test]
    fn titles_refuse_control_characters_and_need_something_visible() {
        for bad in [
            "evil\u{1b}]0;pwned\u{7}",
            "clear\u{1b}[2J",
            "tab\there",
            "line\nbreak",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}31m",
        ] {
            assert!(
                matches!(new(bad).validate(), Err(ValidationError::ControlInTitle(_))),
                "{bad:?}"
            );
        }
        let err = new("a\u{1b}b").validate().unwrap_err().to_string();
        assert!(err.contains("U+001B") && !err.contains('\u{1b}'), "{err}");
        for invisible in [
            "\u{200b}",
            "\u{feff}",
            " \u{200b}\u{feff} ",
            "\u{2060}\u{200d}",
            "\u{3164}",
            "\u{202e}",
            "\u{2800}",
        ] {
            assert_eq!(
                new(invisible).validate(),
                Err(ValidationError::InvisibleTitle),
                "{invisible:?}"
            );
        }
        for fine in ["a\u{200b}", "日本", "👍", "x\u{202e}y", "Ünïcödé"] {
            assert!(new(fine).validate().is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn descriptions_allow_newlines_and_tabs_but_no_other_control() {
        let mut task = new("t");
        task.description = Some("line 1\n\tline 2\n".into());
        assert!(task.validate().is_ok());
        for bad in ["a\rb", "\u{1b}[2J", "bell\u{7}", "\u{85}"] {
            task.description = Some(bad.into());
            assert!(
                matches!(
                    task.validate(),
                    Err(ValidationError::ControlInDescription(_))
                ),
                "{bad:?}"
            );
        }
        let patch = TaskPatch {
            description: Some(Some("\u{1b}]0;x\u{7}".into())),
            ..Default::default()
        };
        assert!(patch.validate().is_err());
    }

    #[test]
    fn descriptions_are_capped() {
        let mut task = new("t");
        task.description = Some("x".repeat(10_000));
        assert!(task.validate().is_ok());
        task.description = Some("x".repeat(10_001));
        assert_eq!(
            task.validate(),
            Err(ValidationError::DescriptionTooLong(10_001))
        );
    }

    #[test]
    fn patches_must_change_something_valid() {
        assert_eq!(
            TaskPatch::default().validate(),
            Err(ValidationError::EmptyPatch)
        );
        let patch = TaskPatch {
            title: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(patch.validate(), Err(ValidationError::EmptyTitle));
        let patch = TaskPatch {
            description: Some(None),
            ..Default::default()
        };
        assert!(patch.validate().is_ok());
    }

    #[test]
    fn the_fields_of_section_3a_are_checked_and_errors_name_them() {
        let with = |f: &dyn Fn(&mut NewTask)| {
            let mut task = new("t");
            f(&mut task);
            task.validate()
        };
        let too_long_tag = "x".repeat(65);
        for (bad, field) in [
            (
                with(&|t| {
                    t.tags.insert(String::new());
                }),
                "tag",
            ),
            (
                with(&|t| {
                    t.tags.insert(too_long_tag.clone());
                }),
                "tag",
            ),
            (
                with(&|t| {
                    t.tags.insert("two words".into());
                }),
                "tag",
            ),
            (
                with(&|t| {
                    t.tags.insert("bell\u{7}".into());
                }),
                "tag",
            ),
            (
                with(&|t| t.tags = (0..65).map(|i| format!("t{i}")).collect()),
                "tags",
            ),
            (with(&|t| t.project = Some("home garden".into())), "project"),
            (with(&|t| t.project = Some(String::new())), "project"),
            (with(&|t| t.project = Some("p".repeat(201))), "project"),
            (
                with(&|t| t.attributes = (0..65).map(|i| (format!("k{i}"), "v".into())).collect()),
                "attributes",
            ),
            (
                with(&|t| {
                    t.attributes.insert("Bad".into(), "v".into());
                }),
                "attribute key",
            ),
            (
                with(&|t| {
                    t.attributes.insert("9a".into(), "v".into());
                }),
                "attribute key",
            ),
            (
                with(&|t| {
                    t.attributes.insert("a b".into(), "v".into());
                }),
                "attribute key",
            ),
            (
                with(&|t| {
                    t.attributes.insert("k".repeat(65), "v".into());
                }),
                "attribute key",
            ),
            (
                with(&|t| {
                    t.attributes.insert("a".into(), "v".repeat(4_097));
                }),
                "attribute a",
            ),
            (
                with(&|t| {
                    t.attributes.insert("a".into(), String::new());
                }),
                "attribute a",
            ),
        ] {
            let message = bad.expect_err(field).to_string();
            assert!(message.contains(field), "{message} should name {field}");
        }
        assert!(with(&|t| {
            t.tags = (0..64).map(|i| format!("t{i}")).collect();
            t.attributes = (0..64)
                .map(|i| (format!("myapp.k{i}"), "v".repeat(4_096)))
                .collect();
            t.project = Some("home.garden".into());
            t.tags.insert("x".repeat(64));
            t.tags.remove("t0");
        })
        .is_ok());
        assert!(serde_json::from_str::<Priority>("\"X\"").is_err());
        assert!(serde_json::from_str::<NewTask>(r#"{"title":"t","due":"tomorrow"}"#).is_err());
    }

    #[test]
    fn a_patch_adds_and_removes_tags_and_attributes_and_keeps_the_limits() {
        let mut task = sample_task();
        let patch = TaskPatch {
            add_tags: ["b".to_string(), "c".to_string()].into(),
            remove_tags: ["a".to_string()].into(),
            attributes: [("k".to_string(), None), ("n".to_string(), Some("v".into()))].into(),
            due: Some(Some(Timestamp::from_millis(5).unwrap())),
            ..Default::default()
        };
        patch.validate().unwrap();
        patch.apply(&mut task).unwrap();
        assert_eq!(task.tags, ["b".to_string(), "c".to_string()].into());
        assert_eq!(task.attributes, [("n".to_string(), "v".to_string())].into());
        assert_eq!(task.due, Timestamp::from_millis(5));
        let many = TaskPatch {
            add_tags: (0..64).map(|i| format!("t{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(many.apply(&mut task), Err(ValidationError::TooManyTags(66)));
    }

    fn sample_task() -> Task {
        Task {
            id: Uuid::nil(),
            number: None,
            title: "t".into(),
            description: None,
            completed: false,
            created_at: Timestamp::from_millis(1).unwrap(),
            updated_at: Timestamp::from_millis(1).unwrap(),
            is_deleted: false,
            sync_status: SyncStatus::Synced,
            last_synced_at: None,
            due: None,
            priority: None,
            project: None,
            tags: ["a".to_string()].into(),
            attributes: [("k".to_string(), "v".to_string())].into(),
        }
    }

    #[test]
    fn sync_status_names_round_trip() {
        for status in SyncStatus::ALL {
            assert_eq!(status.as_str().parse::<SyncStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("done".parse::<SyncStatus>().is_err());
    }
}
