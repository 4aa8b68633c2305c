//! The `Task` model and the one place that decides what a valid task is.
//!
//! JSON field names follow DESIGN.md section 3. Every program that accepts task input (IPC,
//! HTTP, the sync server) validates it through [`NewTask::validate`] and
//! [`TaskPatch::validate`], so the limits below exist exactly once.

use std::fmt;
use std::str::FromStr;

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
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub is_deleted: bool,
    pub sync_status: SyncStatus,
    pub last_synced_at: Option<Timestamp>,
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

impl SyncStatus {
    pub const ALL: [SyncStatus; 5] = [
        SyncStatus::Pending,
        SyncStatus::InProgress,
        SyncStatus::Synced,
        SyncStatus::Error,
        SyncStatus::Failed,
    ];

    /// The name used in JSON, in SQLite and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::InProgress => "in-progress",
            SyncStatus::Synced => "synced",
            SyncStatus::Error => "error",
            SyncStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyncStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!("unknown sync status {s:?}: expected pending, in-progress, synced, error or failed")
            })
    }
}

/// Input of a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
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
        0 => Err(ValidationError::EmptyTitle),
        n if n > MAX_TITLE_CHARS => Err(ValidationError::TitleTooLong(n)),
        _ => Ok(()),
    }
}

fn validate_description(description: Option<&str>) -> Result<(), ValidationError> {
    let chars = description.map_or(0, |d| d.chars().count());
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::DescriptionTooLong(chars));
    }
    Ok(())
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
