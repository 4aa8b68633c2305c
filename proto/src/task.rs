//! The `Task` model and the one place that decides what a valid task is.
//!
//! JSON field names are those of docs/LOCAL-API.md ("A task"). Every program that accepts task input (IPC,
//! HTTP, the sync server) validates it through [`NewTask::validate`] and
//! [`TaskPatch::validate`], so the limits below exist exactly once.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::timestamp::Timestamp;

/// A task id: a UUID (v7 when made by a daemon), the same on every device.
pub type TaskId = Uuid;

/// Longest title, counted in characters after trimming.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

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
}

/// Input of an update: `None` leaves a field as it is. `description: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub completed: Option<bool>,
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
    #[error("nothing to change: give at least one of title, description, completed")]
    EmptyPatch,
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
        validate_title(&self.title)?;
        validate_description(self.description.as_deref())
    }
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.completed.is_none()
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str) -> NewTask {
        NewTask {
            title: title.into(),
            description: None,
            id: None,
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
    fn sync_status_names_round_trip() {
        for status in SyncStatus::ALL {
            assert_eq!(status.as_str().parse::<SyncStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("done".parse::<SyncStatus>().is_err());
    }
}
