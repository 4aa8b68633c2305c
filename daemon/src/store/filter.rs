//! Filtered task listings for apps (`GET /api/tasks`): done or not, deleted or not, a text
//! search, tags, project, due dates, priority, and paging by cursor.

use rusqlite::Connection;
use tasksync_proto::ipc::PageCursor;
use tasksync_proto::{Priority, Task, Timestamp};

use super::rows::{task_from_row, TASK_COLUMNS};
use super::StoreError;

/// Which tasks a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TaskFilter {
    /// Only done (`Some(true)`) or only not done (`Some(false)`) tasks.
    pub(crate) completed: Option<bool>,
    pub(crate) include_deleted: bool,
    /// Text the title or description contains, compared case-insensitively (Unicode).
    pub(crate) text: Option<String>,
    /// Tags the task must all have.
    pub(crate) tags: Vec<String>,
    /// A project the task is in, or below (`home` matches `home.garden`).
    pub(crate) project: Option<String>,
    /// Due strictly before / after these instants (a task without a due date matches neither).
    pub(crate) due_before: Option<Timestamp>,
    pub(crate) due_after: Option<Timestamp>,
    pub(crate) priority: Option<Priority>,
}

/// Whether `project` is `wanted` or below it in the hierarchy.
pub(crate) fn in_project(project: Option<&str>, wanted: &str) -> bool {
    project.is_some_and(|project| {
        project == wanted
            || project
                .strip_prefix(wanted)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

impl TaskFilter {
    fn matches(&self, task: &Task, needle: Option<&str>) -> bool {
        if !self.tags.iter().all(|tag| task.tags.contains(tag)) {
            return false;
        }
        if let Some(project) = &self.project {
            if !in_project(task.project.as_deref(), project) {
                return false;
            }
        }
        if let Some(before) = self.due_before {
            if task.due.is_none_or(|due| due >= before) {
                return false;
            }
        }
        if let Some(after) = self.due_after {
            if task.due.is_none_or(|due| due <= after) {
                return false;
            }
        }
        if self.priority.is_some() && task.priority != self.priority {
            return false;
        }
        let Some(needle) = needle else {
            return true;
        };
        task.title.to_lowercase().contains(needle)
            || task
                .description
                .as_ref()
                .is_some_and(|d| d.to_lowercase().contains(needle))
    }
}

/// Tasks matching `filter`, newest first, after `after`; at most `limit` (all without one).
/// The cursor is `Some` when more remain.
pub(super) fn page(
    conn: &Connection,
    filter: &TaskFilter,
    after: Option<PageCursor>,
    limit: Option<usize>,
) -> Result<(Vec<Task>, Option<PageCursor>), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks
         WHERE (?1 OR is_deleted = 0) AND (?2 IS NULL OR completed = ?2)
           AND (created_at, id) < (COALESCE(?3, '~'), COALESCE(?4, '~'))
         ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map(
        rusqlite::params![
            filter.include_deleted,
            filter.completed,
            after.map(|a| a.created_at.to_string()),
            after.map(|a| a.id.to_string()),
        ],
        task_from_row,
    )?;
    let needle = filter.text.as_ref().map(|t| t.to_lowercase());
    let mut tasks = Vec::new();
    let mut more = false;
    for task in rows {
        let task = task?;
        if !filter.matches(&task, needle.as_deref()) {
            continue;
        }
        if limit.is_some_and(|limit| tasks.len() == limit) {
            more = true;
            break;
        }
        tasks.push(task);
    }
    let next = next_cursor(&tasks, more);
    Ok((tasks, next))
}

/// Where the next page starts: after the last task of this one, if `more` remain.
pub(super) fn next_cursor(tasks: &[Task], more: bool) -> Option<PageCursor> {
    let last = tasks.last().filter(|_| more)?;
    Some(PageCursor {
        created_at: last.created_at,
        id: last.id,
    })
}
