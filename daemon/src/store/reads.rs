//! Queries, served by a small pool of read-only connections.
//!
//! WAL lets readers run beside the writer without blocking it; a read sees every command
//! acknowledged before it. Reads block the calling thread: front ends run point reads inline
//! and scans on the blocking pool (`App::scan`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};
use tasksync_proto::ipc::{
    PageCursor, QueueState, TaskPage, TaskRef, MAX_LIST_PAGE_TASKS, MAX_PAGE_TASKS,
};
use tasksync_proto::{SyncStatus, Task, Timestamp};
use uuid::Uuid;

use super::rows::{queued_op_from_row, task_from_row, QueuedOp, QUEUE_COLUMNS, TASK_COLUMNS};
use super::StoreError;

/// How many tasks an ambiguous prefix lists at most.
const AMBIGUOUS_LIST_LIMIT: usize = 10;

/// A task an ambiguous reference could mean, as the error lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) number: Option<u32>,
    pub(crate) completed: bool,
    pub(crate) deleted: bool,
}

/// Longest title, in characters, an error's list of candidates shows.
const CANDIDATE_TITLE_CHARS: usize = 60;

/// The candidates, one a line: id, number or state, and title (cut, in quotes; the client
/// escapes what it prints).
pub(crate) fn candidate_lines(candidates: &[Candidate], more: bool) -> String {
    let mut out = String::new();
    for c in candidates {
        let mut title: String = c.title.chars().take(CANDIDATE_TITLE_CHARS).collect();
        if c.title.chars().count() > CANDIDATE_TITLE_CHARS {
            title.push('…');
        }
        let what = match (c.number, c.deleted, c.completed) {
            (Some(n), _, _) => format!("task {n}"),
            (None, true, _) => "deleted".to_string(),
            (None, false, true) => "done".to_string(),
            (None, false, false) => "open".to_string(),
        };
        out.push_str(&format!("\n  {}  {what:<8}  \"{title}\"", c.id));
    }
    if more {
        out.push_str("\n  ... and more");
    }
    out
}

/// Counts for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) tasks: u64,
    pub(crate) deleted_tasks: u64,
    /// Queue rows not yet synced and not dead-lettered.
    pub(crate) pending: u64,
    /// Dead-lettered queue rows.
    pub(crate) failed: u64,
}

pub(crate) struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    pub(crate) fn new(conns: Vec<Connection>) -> Self {
        assert!(!conns.is_empty(), "a read pool needs a connection");
        ReadPool {
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on a free connection, waiting for one if all are busy.
    pub(super) fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        for conn in &self.conns {
            if let Ok(conn) = conn.try_lock() {
                return f(&conn);
            }
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let conn = self.conns[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn)
    }

    /// One task by full id, deleted or not.
    pub(crate) fn get(&self, id: Uuid) -> Result<Task, StoreError> {
        self.with(|conn| {
            conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
                .query_row([id.to_string()], task_from_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))
        })
    }

    /// The one task a working-set number, full id or unique prefix names. A prefix resolves
    /// among tasks that are not deleted first, then among deleted ones, so the short ids a
    /// listing computes among the tasks it shows keep naming those tasks.
    pub(crate) fn resolve(&self, reference: &TaskRef) -> Result<Uuid, StoreError> {
        if let Some(number) = reference.as_number() {
            return self.resolve_number(number, reference.as_str());
        }
        if let Some(id) = reference.as_full_id() {
            return Ok(id);
        }
        let prefix = reference.as_str();
        let mut matches = self.matching_prefix(prefix, false)?;
        if matches.is_empty() {
            matches = self.matching_prefix(prefix, true)?;
        }
        match matches.as_slice() {
            [] => Err(StoreError::NotFound(prefix.to_string())),
            [only] => Uuid::parse_str(&only.id)
                .map_err(|e| StoreError::Corrupt(format!("task id {:?}: {e}", only.id))),
            _ => Err(StoreError::Ambiguous {
                prefix: prefix.to_string(),
                more: matches.len() > AMBIGUOUS_LIST_LIMIT,
                matches: matches.into_iter().take(AMBIGUOUS_LIST_LIMIT).collect(),
            }),
        }
    }

    /// Tasks whose id starts with `prefix`, deleted ones or the others, at most one more than
    /// an ambiguity lists.
    fn matching_prefix(&self, prefix: &str, deleted: bool) -> Result<Vec<Candidate>, StoreError> {
        // Ids hold only [0-9a-f-], all below 'g': [prefix, prefix + "g") is exactly the ids
        // that start with the prefix, and the primary key index serves the range.
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, title, number, completed, is_deleted FROM tasks
                 WHERE id >= ?1 AND id < ?2 AND is_deleted = ?3
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                rusqlite::params![
                    prefix,
                    format!("{prefix}g"),
                    deleted,
                    AMBIGUOUS_LIST_LIMIT as i64 + 1
                ],
                |row| {
                    Ok(Candidate {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        number: row.get(2)?,
                        completed: row.get(3)?,
                        deleted: row.get(4)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The task holding working-set number `number` (typed as `digits`). When none does but
    /// ids start with those digits, the error lists them: the user may have meant a prefix.
    fn resolve_number(&self, number: u32, digits: &str) -> Result<Uuid, StoreError> {
        let id: Option<String> = self.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT id FROM tasks WHERE number = ?1")?
                .query_row([number], |row| row.get(0))
                .optional()?)
        })?;
        let Some(id) = id else {
            let mut message = format!(
                "number {number} (only tasks that are neither done nor deleted have numbers; `taskctl list` shows them)"
            );
            let mut ids = self.matching_prefix(digits, false)?;
            ids.extend(self.matching_prefix(digits, true)?);
            if !ids.is_empty() {
                let more = ids.len() > AMBIGUOUS_LIST_LIMIT;
                ids.truncate(AMBIGUOUS_LIST_LIMIT);
                message.push_str(&format!(
                    "; {digits} is read as a number, but these ids start with it (name one by 7 or more characters of its id):{}",
                    candidate_lines(&ids, more)
                ));
            }
            return Err(StoreError::NotFound(message));
        };
        Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("task id {id:?}: {e}")))
    }

    /// Whether any freed working-set number waits to become reusable.
    pub(crate) fn holds_freed_numbers(&self) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM freed_numbers WHERE reusable = 0)")?
                .query_row([], |row| row.get(0))?)
        })
    }

    /// Tasks, newest first by `created_at`.
    #[cfg(test)]
    pub(crate) fn list(
        &self,
        include_deleted: bool,
        status: Option<SyncStatus>,
    ) -> Result<Vec<Task>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks
                 WHERE (?1 OR is_deleted = 0) AND (?2 IS NULL OR sync_status = ?2)
                 ORDER BY created_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![include_deleted, status.map(SyncStatus::as_str)],
                task_from_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One page of tasks, newest first, after `after`: at most `limit` tasks and about
    /// `byte_budget` bytes of titles and descriptions, but always at least one task.
    pub(crate) fn list_page(
        &self,
        include_deleted: bool,
        status: Option<SyncStatus>,
        after: Option<PageCursor>,
        limit: u32,
        byte_budget: usize,
    ) -> Result<TaskPage, StoreError> {
        let limit = limit.clamp(1, MAX_LIST_PAGE_TASKS);
        self.with(|conn| {
            // The cursor bound is a range the index on created_at (which holds the id too)
            // serves: a page starts where the last one ended instead of scanning past every
            // earlier page. Without a cursor, '~' sorts after every timestamp and id.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks
                 WHERE (?1 OR is_deleted = 0) AND (?2 IS NULL OR sync_status = ?2)
                   AND (created_at, id) < (COALESCE(?3, '~'), COALESCE(?4, '~'))
                 ORDER BY created_at DESC, id DESC LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![
                    include_deleted,
                    status.map(SyncStatus::as_str),
                    after.map(|a| a.created_at.to_string()),
                    after.map(|a| a.id.to_string()),
                    i64::from(limit) + 1,
                ],
                task_from_row,
            )?;
            let mut tasks = Vec::new();
            let mut bytes = 0;
            let mut more = false;
            for task in rows {
                let task = task?;
                let size = task.title.len() + task.description.as_ref().map_or(0, String::len) + 96;
                if tasks.len() == limit as usize
                    || (!tasks.is_empty() && bytes + size > byte_budget)
                {
                    more = true;
                    break;
                }
                bytes += size;
                tasks.push(task);
            }
            let next = super::filter::next_cursor(&tasks, more);
            Ok(TaskPage { tasks, next })
        })
    }

    /// Queue rows, oldest first; only dead-lettered ones with `failed_only`.
    pub(crate) fn queue(&self, failed_only: bool) -> Result<Vec<QueuedOp>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM sync_queue WHERE NOT ?1 OR state = ?2 ORDER BY id"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![failed_only, QueueState::Failed],
                queued_op_from_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// When the earliest waiting operation may be retried, if any waits.
    pub(crate) fn next_retry_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.with(|conn| {
            let text: Option<String> = conn
                .prepare_cached(
                    "SELECT min(next_attempt_at) FROM sync_queue
                     WHERE state = ?1 AND next_attempt_at IS NOT NULL",
                )?
                .query_row([QueueState::Pending], |row| row.get(0))?;
            text.map(|t| {
                t.parse()
                    .map_err(|e| StoreError::Corrupt(format!("next_attempt_at: {e}")))
            })
            .transpose()
        })
    }

    /// Dead-lettered rows whose operation id or task id starts with `prefix`.
    pub(crate) fn failed_matching(&self, prefix: &TaskRef) -> Result<Vec<QueuedOp>, StoreError> {
        let prefix = prefix.as_str();
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM sync_queue
                 WHERE state = ?2 AND (substr(op_id, 1, length(?1)) = ?1 OR substr(task_id, 1, length(?1)) = ?1)
                 ORDER BY id"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![prefix, QueueState::Failed],
                queued_op_from_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A value from `meta`.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
    }

    /// One page of the queue, oldest first, after sequence number `after`: at most `limit`
    /// rows and about `byte_budget` bytes, but always at least one row.
    pub(crate) fn queue_page(
        &self,
        failed_only: bool,
        after: Option<i64>,
        limit: u32,
        byte_budget: usize,
    ) -> Result<(Vec<QueuedOp>, Option<i64>), StoreError> {
        let limit = limit.clamp(1, MAX_PAGE_TASKS);
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM sync_queue
                 WHERE (NOT ?1 OR state = ?4) AND id > ?2 ORDER BY id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![
                    failed_only,
                    after.unwrap_or(0),
                    i64::from(limit) + 1,
                    QueueState::Failed
                ],
                queued_op_from_row,
            )?;
            let mut page = Vec::new();
            let mut bytes = 0;
            let mut more = false;
            for row in rows {
                let row = row?;
                let size = row.entry.error_message.as_ref().map_or(0, String::len)
                    + row.entry.changed_fields.len()
                    + 160;
                if page.len() == limit as usize || (!page.is_empty() && bytes + size > byte_budget)
                {
                    more = true;
                    break;
                }
                bytes += size;
                page.push(row);
            }
            let next = if more {
                page.last().map(|row: &QueuedOp| row.seq)
            } else {
                None
            };
            Ok((page, next))
        })
    }

    pub(crate) fn counts(&self) -> Result<Counts, StoreError> {
        self.with(|conn| {
            let (tasks, deleted_tasks) = conn
                .prepare_cached("SELECT count(*) FILTER (WHERE is_deleted = 0), count(*) FILTER (WHERE is_deleted = 1) FROM tasks")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let (pending, failed) = conn
                .prepare_cached(
                    "SELECT count(*) FILTER (WHERE state = ?1), count(*) FILTER (WHERE state = ?2)
                     FROM sync_queue",
                )?
                .query_row([QueueState::Pending, QueueState::Failed], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            Ok(Counts { tasks, deleted_tasks, pending, failed })
        })
    }
}
