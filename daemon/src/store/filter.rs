//! Filtered task listings for apps (`GET /api/tasks`): done or not, deleted or not, a text
//! search, and paging by cursor.

use rusqlite::Connection;
use tasksync_proto::ipc::PageCursor;
use tasksync_proto::Task;

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
}

impl TaskFilter {
    fn matches(&self, task: &Task, needle: Option<&str>) -> bool {
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
