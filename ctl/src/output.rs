//! How taskctl prints: short tables for people, stable JSON for programs.
//!
//! JSON shapes: a task is a bare object with the fields of docs/LOCAL-API.md ("A task"), a list is a
//! bare array, `status` is the daemon's status object.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use tasksync_proto::events::{
    ChangeOrigin, Connectivity, ConnectivityState, Event, SyncProgress, TimedEvent,
};
use tasksync_proto::ipc::{Kept, QueueEntry, QueueState, SyncReport, TaskHistory, TaskHistoryJson};
use tasksync_proto::task::TaskJson;
use tasksync_proto::{StatusInfo, SyncStatus, Task, Timestamp};
use uuid::Uuid;

use crate::display::{self, escape, escape_keeping_lines, Terminal};
use crate::table::{paint, Cell, Table};
use crate::{dates, listing};

pub struct Output {
    pub json: bool,
    pub terminal: Terminal,
    /// The local now: relative and local due dates are told against it.
    pub now: jiff::ZonedDateTime,
}

impl Output {
    /// `add`: the new task's number and id (`--json`: the task).
    pub fn created(&self, task: &Task) {
        if self.json {
            return print_json(&TaskJson::from(task));
        }
        let line = match task.number {
            Some(number) => format!("created task {number} ({})\n", task.id),
            None => format!("created task {}\n", task.id),
        };
        write_stdout(&line);
    }

    /// `done` and `rm`: one line saying what happened (`--json`: the task after it).
    /// `label` names the task as the user knew it (its number, now gone, or short id).
    pub fn changed(&self, task: &Task, what: &str, label: &str) {
        if self.json {
            return print_json(&TaskJson::from(task));
        }
        write_stdout(&format!("{what} {label} {}\n", quoted_title(task)));
    }

    /// `done` on a done task, `rm` on a deleted one: nothing changed, and it says so on
    /// stderr (`--json`: the task as it is on stdout).
    pub fn unchanged(&self, task: &Task, why: &str, label: &str) {
        if self.json {
            print_json(&TaskJson::from(task));
        }
        eprintln!(
            "taskctl: {label} {} {why}; nothing changed",
            quoted_title(task)
        );
    }

    /// `show` (and `edit`): every field of the task, one a line.
    pub fn task(&self, task: &Task) {
        if self.json {
            return print_json(&TaskJson::from(task));
        }
        let now = Timestamp::now();
        let when = |t: Timestamp| {
            format!(
                "{t} ({})",
                display::age_in_words(now.as_millis() - t.as_millis())
            )
        };
        let label = Style::new().bold();
        let mut rows: Vec<(&str, String)> = vec![
            ("id", task.id.to_string()),
            (
                "number",
                task.number.map_or(
                    "- (only tasks neither done nor deleted have one)".into(),
                    |n| n.to_string(),
                ),
            ),
            ("title", escape(&task.title).into_owned()),
        ];
        let description = match &task.description {
            None => "-".to_string(),
            // Continuation lines line up under the first one.
            Some(text) => escape_keeping_lines(text).replace('\n', "\n              "),
        };
        rows.push(("description", description));
        let now_ms = self.now.timestamp().as_millisecond();
        let due = task.due.map_or("-".to_string(), |due| {
            let ms = due.as_millis();
            let local = dates::local_time(ms, &self.now).unwrap_or_else(|| due.to_string());
            format!("{local}, {}", dates::relative(ms, now_ms))
        });
        rows.push(("due", due));
        rows.push((
            "priority",
            task.priority.map_or("-", |p| p.as_str()).to_string(),
        ));
        rows.push((
            "project",
            task.project
                .as_deref()
                .map_or("-".to_string(), |p| escape(p).into_owned()),
        ));
        let tags: Vec<String> = task.tags.iter().map(|t| escape(t).into_owned()).collect();
        rows.push((
            "tags",
            if tags.is_empty() {
                "-".to_string()
            } else {
                tags.join(" ")
            },
        ));
        let attributes: Vec<String> = task
            .attributes
            .iter()
            .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
            .collect();
        rows.push((
            "attributes",
            if attributes.is_empty() {
                "-".to_string()
            } else {
                attributes.join("\n              ")
            },
        ));
        let state = match (task.is_deleted, task.completed) {
            (true, true) => "deleted (was done)",
            (true, false) => "deleted",
            (false, true) => "done",
            (false, false) => "open",
        };
        rows.push(("status", state.into()));
        rows.push(("created", when(task.created_at)));
        rows.push(("updated", when(task.updated_at)));
        rows.push(("sync", describe_sync(task.sync_status).into()));
        rows.push((
            "last synced",
            task.last_synced_at.map_or("never".into(), when),
        ));
        let mut out = String::new();
        for (name, value) in rows {
            let name = format!("{name:<12}");
            paint(&mut out, &name, label, self.terminal.color);
            out.push_str("  ");
            let style = match name.trim_end() {
                "sync" => sync_style(task.sync_status),
                "number" if task.number.is_some() => number_style(),
                "due" if is_overdue(task, now.as_millis()) => overdue_style(),
                _ => Style::new(),
            };
            paint(&mut out, &value, style, self.terminal.color);
            out.push('\n');
        }
        write_stdout(&out);
    }

    /// `list`: a table of `shown`, newest first. `short_ids` names each task without a
    /// number by an id prefix that resolves to it (see [`short_ids`]).
    pub fn tasks(&self, shown: &[&Task], short_ids: &HashMap<Uuid, String>) {
        if self.json {
            let shown: Vec<TaskJson<'_>> = shown.iter().map(|t| TaskJson::from(*t)).collect();
            return print_json(&shown);
        }
        if shown.is_empty() {
            eprintln!("no tasks");
            return;
        }
        let now = Timestamp::now().as_millis();
        let columns = listing::columns(shown);
        let mut headers = vec!["ID", ">AGE", "DONE", "SYNC"];
        for (wanted, header) in [
            (columns.due, "DUE"),
            (columns.priority, "PRI"),
            (columns.project, "PROJECT"),
            (columns.tags, "TAGS"),
        ] {
            if wanted {
                headers.push(header);
            }
        }
        headers.push("TITLE");
        let mut table = Table::new(&headers);
        let dim = Style::new().dimmed();
        for task in shown {
            let finished = task.completed || task.is_deleted;
            let row_style = if finished { dim } else { Style::new() };
            let id = match task.number {
                Some(number) => Cell::styled(number.to_string(), number_style()),
                None => Cell::styled(
                    short_ids
                        .get(&task.id)
                        .cloned()
                        .unwrap_or_else(|| task.id.to_string()),
                    row_style,
                ),
            };
            let title = if task.is_deleted {
                format!("{} (deleted)", escape(&task.title))
            } else {
                escape(&task.title).into_owned()
            };
            let mut row = vec![
                id,
                Cell::styled(display::age(now - task.created_at.as_millis()), row_style),
                Cell::styled(if task.completed { "[x]" } else { "[ ]" }, row_style),
                Cell::styled(task.sync_status.as_str(), sync_style(task.sync_status)),
            ];
            if columns.due {
                let due = task
                    .due
                    .map_or(String::new(), |d| dates::relative(d.as_millis(), now));
                let style = if is_overdue(task, now) {
                    overdue_style()
                } else {
                    row_style
                };
                row.push(Cell::styled(due, style));
            }
            if columns.priority {
                row.push(Cell::styled(
                    task.priority.map_or("", |p| p.as_str()),
                    row_style,
                ));
            }
            if columns.project {
                let project = task.project.as_deref().map_or(String::new(), |p| {
                    display::cut(&escape(p), MAX_NAME_COLUMNS).into_owned()
                });
                row.push(Cell::styled(project, row_style));
            }
            if columns.tags {
                let tags: Vec<String> = task.tags.iter().map(|t| escape(t).into_owned()).collect();
                let tags = display::cut(&tags.join(" "), MAX_NAME_COLUMNS).into_owned();
                row.push(Cell::styled(tags, row_style));
            }
            row.push(Cell::styled(title, row_style));
            table.push(row);
        }
        let done = shown
            .iter()
            .filter(|t| t.completed && !t.is_deleted)
            .count();
        let deleted = shown.iter().filter(|t| t.is_deleted).count();
        let open = shown.len() - done - deleted;
        let mut count = format!(
            "{} ({open} open, {done} done",
            plural(shown.len(), "task", "tasks")
        );
        if deleted > 0 {
            count.push_str(&format!(", {deleted} deleted"));
        }
        count.push(')');
        write_stdout(&table.render(self.terminal, Some(&count)));
    }

    pub fn status(&self, status: &StatusInfo, socket: &Path) {
        if self.json {
            return print_json(status);
        }
        let server = status.server.as_deref().unwrap_or("none (local only)");
        let last_sync = status
            .last_sync_at
            .map_or("never".to_string(), |t| t.to_string());
        let connectivity = ConnectivityState {
            state: status.state,
            since: status.since,
            next_probe_at: status.next_probe_at,
        };
        let last_error = match (&status.last_error, status.state) {
            (_, Connectivity::Unauthorized) => format!(
                "the server refuses our token: fix token / token_file and reload ({})\n",
                escape(
                    status
                        .last_error
                        .as_ref()
                        .map_or("401", |e| e.message.as_str())
                )
            ),
            // The server's words: never raw to a terminal.
            (Some(error), _) => format!("{}\n", escape(&error.message)),
            (None, _) => "none\n".into(),
        };
        let out = format!(
            "state:        {}\nserver:       {server}\npending:      {}\nfailed:       {}\nlast sync:    {last_sync} (the last round that succeeded)\n\
             last error:   {last_error}\
             tasks:        {} ({} deleted)\ndevice:       {}\ndaemon:       tasksyncd {}\nsocket:       {}\ndatabase:     {}\n",
            describe_connectivity(&connectivity),
            status.pending,
            status.failed,
            status.tasks,
            status.deleted_tasks,
            status.device_id,
            status.version,
            socket.display(),
            status.database,
        );
        write_stdout(&out);
    }
}

impl Output {
    /// `sync`: the report on stdout (with `--json`, the report of `POST /api/sync` and of
    /// the `sync` event: `{success, synced_items, failed_items, errors, ...}`), errors on
    /// stderr for people.
    pub fn sync(&self, report: &SyncReport) {
        if self.json {
            return print_json(report);
        }
        // Offline (or no server): nothing was tried, so only the reason is worth saying.
        if !report.offline {
            let mut out = format!(
                "synced {}, pulled {}, conflicts {}, failed {}\n",
                report.synced_items, report.pulled_items, report.conflicts, report.failed_items
            );
            for conflict in &report.resolved {
                let fields: Vec<String> = conflict
                    .fields
                    .iter()
                    .map(|f| match f.kept {
                        Kept::Local => format!("{} kept this device's value", f.field),
                        Kept::Remote => {
                            format!("{} took a newer value from another device", f.field)
                        }
                    })
                    .collect();
                out.push_str(&format!(
                    "  conflict on {} \"{}\": {}\n",
                    conflict.task_id,
                    escape(&conflict.title),
                    fields.join(", ")
                ));
            }
            write_stdout(&out);
        }
        for error in &report.errors {
            eprintln!("taskctl: {}", escape(&error.message));
        }
    }

    /// `log`: the task's history, newest first: when, which field, where the change came
    /// from, a red `! lost` where a value lost a conflict (it is the old value of that line),
    /// and old -> new. `--json` prints the JSON of `GET /api/tasks/:id/history`.
    pub fn history(&self, history: &TaskHistory) {
        if self.json {
            return print_json(&TaskHistoryJson::from(history));
        }
        if history.entries.is_empty() {
            eprintln!("no changes recorded for task {}", history.task_id);
            return;
        }
        // CHANGE comes last: a table cuts only its last column to fit, never the mark.
        let mut table = Table::new(&["ENTRY", "WHEN", "FIELD", "ORIGIN", "CONFLICT", "CHANGE"]);
        let conflict_style = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
        let mut conflicts = 0;
        for entry in &history.entries {
            let mark = if entry.conflict {
                conflicts += 1;
                Cell::styled("! lost", conflict_style)
            } else {
                Cell::new("")
            };
            table.push(vec![
                Cell::new(entry.entry.to_string()),
                Cell::new(entry.at.to_string()),
                Cell::new(entry.field.to_string()),
                Cell::new(entry.origin.to_string()),
                mark,
                Cell::new(escape(&format!("{} -> {}", entry.old, entry.new)).into_owned()),
            ]);
        }
        let mut count = format!(
            "{} of task {}",
            plural(history.entries.len(), "change", "changes"),
            history.task_id
        );
        if conflicts > 0 {
            count.push_str(&format!(
                "; {conflicts} marked \"! lost\": the old value lost a conflict; `taskctl restore TASK ENTRY` puts it back"
            ));
        }
        write_stdout(&table.render(self.terminal, Some(&count)));
    }

    /// `queue`: a table of operations, oldest first (`failed_only`: `queue --failed`).
    pub fn queue(&self, entries: &[QueueEntry], failed_only: bool) {
        if self.json {
            return print_json(entries);
        }
        if entries.is_empty() {
            if failed_only {
                eprintln!("no dead-lettered operations");
            } else {
                eprintln!("the queue is empty");
            }
            return;
        }
        let ops = short_ids(&entries.iter().map(|e| e.id).collect::<Vec<_>>());
        let mut task_ids: Vec<Uuid> = entries.iter().map(|e| e.task_id).collect();
        task_ids.sort_unstable();
        task_ids.dedup();
        let tasks: HashMap<Uuid, String> =
            task_ids.iter().copied().zip(short_ids(&task_ids)).collect();
        let now = Timestamp::now().as_millis();
        let mut table = Table::new(&[
            "OPERATION",
            "TASK",
            "OP",
            "STATE",
            ">AGE",
            ">TRIES",
            "ERROR",
        ]);
        let mut failed = 0;
        for (entry, op) in entries.iter().zip(ops) {
            let state_style = match entry.state {
                QueueState::Failed => {
                    failed += 1;
                    Style::new().fg_color(Some(AnsiColor::Red.into()))
                }
                QueueState::InFlight => Style::new().fg_color(Some(AnsiColor::Blue.into())),
                QueueState::Pending => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            };
            table.push(vec![
                Cell::new(op),
                Cell::new(tasks.get(&entry.task_id).cloned().unwrap_or_default()),
                Cell::new(entry.operation.to_string()),
                Cell::styled(entry.state.to_string(), state_style),
                Cell::new(display::age(now - entry.created_at.as_millis())),
                Cell::new(entry.retry_count.to_string()),
                Cell::new(escape(entry.error_message.as_deref().unwrap_or(""))),
            ]);
        }
        let count = format!(
            "{} ({failed} dead-lettered)",
            plural(entries.len(), "operation", "operations")
        );
        write_stdout(&table.render(self.terminal, Some(&count)));
    }

    /// One event of `watch`: a line for people, or one JSON object a line (its one JSON
    /// form, the same as the `data:` of `GET /api/events`).
    pub fn event(&self, timed: &TimedEvent) {
        let event = &timed.event;
        if self.json {
            let line = serde_json::to_string(&timed.json()).unwrap_or_default();
            return write_stdout(&format!("{}\n", json_for_terminal(&line)));
        }
        let line = match event {
            Event::Status(s) => format!(
                "{}, {} operation(s) pending, {} failed, last sync {}",
                describe_connectivity(&ConnectivityState {
                    state: s.state,
                    since: s.since,
                    next_probe_at: s.next_probe_at,
                }),
                s.pending,
                s.failed,
                s.last_sync_at
                    .map_or("never".to_string(), |t| t.to_string())
            ),
            Event::TaskChanged { task, origin } => {
                let origin = match origin {
                    ChangeOrigin::Local => "here",
                    ChangeOrigin::Remote => "remotely",
                };
                let deleted = if task.is_deleted { " (deleted)" } else { "" };
                let done = if task.completed { "[x]" } else { "[ ]" };
                format!(
                    "task {} changed {origin}: {done} {}{deleted}",
                    task.id,
                    escape(&task.title)
                )
            }
            Event::Connectivity(state) => format!("now {}", describe_connectivity(state)),
            Event::Sync(SyncProgress::BatchSent { items }) => {
                format!("sync: sent a batch of {items}")
            }
            Event::Sync(SyncProgress::BatchAnswered {
                synced_items,
                failed_items,
            }) => {
                format!("sync: batch answered, {synced_items} synced, {failed_items} failed")
            }
            Event::Sync(SyncProgress::Pulled { pulled_items }) => {
                format!("sync: pulled changes to {pulled_items} task(s)")
            }
            Event::Sync(SyncProgress::RoundFinished(report)) => {
                let how = if report.success {
                    "done"
                } else {
                    "finished with errors"
                };
                let mut line = format!(
                    "sync: round {how}, {} synced, {} pulled, {} conflict(s), {} failed",
                    report.synced_items, report.pulled_items, report.conflicts, report.failed_items
                );
                for error in &report.errors {
                    line.push_str(&format!("; {}", escape(&error.message)));
                }
                line
            }
            Event::TaskSync {
                task_ids,
                sync_status,
            } => {
                let mut line = format!(
                    "{} {sync_status}",
                    plural(task_ids.len(), "task now", "tasks now")
                );
                // Those that need the user (error, failed) by id.
                if matches!(sync_status, SyncStatus::Error | SyncStatus::Failed) {
                    let ids: Vec<String> = task_ids.iter().map(Uuid::to_string).collect();
                    line.push_str(&format!(": {}", ids.join(", ")));
                }
                line
            }
            Event::Conflict(conflict) => format!(
                "conflict on task {}: {} kept {} (device {}), this device's {} lost",
                conflict.task_id,
                conflict.field,
                escape(&conflict.kept.to_string()),
                conflict.kept_device,
                escape(&conflict.lost.to_string()),
            ),
            Event::Lagged { missed } => {
                format!("(missed {missed} events: this terminal read too slowly)")
            }
        };
        write_stdout(&format!("{} {line}\n", timed.at));
    }

    pub fn api_token(&self, token: &str) {
        if self.json {
            print_json(&serde_json::json!({ "token": token }));
        } else {
            write_stdout(&format!("{token}\n"));
        }
    }

    pub fn retried(&self, count: u64) {
        if self.json {
            print_json(&serde_json::json!({ "retried": count }));
        } else {
            write_stdout(&format!("requeued {count} operation(s)\n"));
        }
    }
}

fn describe_connectivity(state: &ConnectivityState) -> String {
    match state.next_probe_at {
        Some(next) => format!(
            "{} since {}, next probe at {next}",
            state.state, state.since
        ),
        None => format!("{} since {}", state.state, state.since),
    }
}

/// `"Buy bread"`, escaped and cut to 60 columns, for one-line messages.
fn quoted_title(task: &Task) -> String {
    format!("\"{}\"", display::cut(&escape(&task.title), 60))
}

/// How a task is named in messages: its number if it has one, else its id's first 8 digits.
pub fn label(task: &Task) -> String {
    match task.number {
        Some(number) => format!("task {number}"),
        None => format!("task {}", &task.id.to_string()[..8]),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The widest a project or the tags take in `list`: the title, last, keeps some room.
const MAX_NAME_COLUMNS: usize = 24;

/// Whether `task` is open and its due date has passed.
fn is_overdue(task: &Task, now_ms: i64) -> bool {
    !task.completed && !task.is_deleted && task.due.is_some_and(|d| d.as_millis() < now_ms)
}

fn overdue_style() -> Style {
    Style::new().fg_color(Some(AnsiColor::Red.into()))
}

fn number_style() -> Style {
    Style::new().fg_color(Some(AnsiColor::Cyan.into())).bold()
}

fn sync_style(status: SyncStatus) -> Style {
    let color = match status {
        SyncStatus::Synced => AnsiColor::Green,
        SyncStatus::Pending => AnsiColor::Yellow,
        SyncStatus::InProgress => AnsiColor::Blue,
        SyncStatus::Error | SyncStatus::Failed => AnsiColor::Red,
    };
    Style::new().fg_color(Some(color.into()))
}

fn describe_sync(status: SyncStatus) -> &'static str {
    match status {
        SyncStatus::Synced => "synced: the server has this version",
        SyncStatus::Pending => "pending: changes wait to be sent",
        SyncStatus::InProgress => "in-progress: being sent now",
        SyncStatus::Error => "error: a send failed, it will be retried",
        SyncStatus::Failed => {
            "failed: dead-lettered, see `taskctl queue --failed` and `taskctl retry`"
        }
    }
}

/// The shortest prefix of each id (at least 8 characters) that no other id of `ids` shares.
pub fn short_ids(ids: &[Uuid]) -> Vec<String> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    ids.iter()
        .map(|id| {
            let at = sorted.binary_search(&id.as_str()).unwrap_or(0);
            let before = at.checked_sub(1).map_or(0, |i| common(sorted[i], id));
            let after = sorted.get(at + 1).map_or(0, |next| common(next, id));
            let len = (before.max(after) + 1).clamp(8, id.len());
            id[..len].to_string()
        })
        .collect()
}

pub(crate) fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => write_stdout(&format!("{}\n", json_for_terminal(&text))),
        Err(e) => eprintln!("taskctl: cannot print JSON: {e}"),
    }
}

/// serde_json escapes C0 controls but writes DEL, C1 controls and bidi overrides as they
/// are; those can only occur inside strings, where `\uXXXX` means the same to a JSON reader
/// and nothing to a terminal.
fn json_for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = |c: char| matches!(u32::from(c), 0x7f..=0x9f | 0x202a..=0x202e | 0x2066..=0x2069);
    if !text.chars().any(risky) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if risky(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes to stdout, staying quiet if the reader went away (`taskctl list | head`).
fn write_stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_escapes_what_serde_json_leaves_raw() {
        let text = serde_json::to_string(&"a\u{1b}b\u{9b}c\u{202e}d").unwrap();
        let safe = json_for_terminal(&text);
        assert_eq!(safe, "\"a\\u001bb\\u009bc\\u202ed\"");
        let back: String = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, "a\u{1b}b\u{9b}c\u{202e}d");
    }

    #[test]
    fn short_ids_are_unique_prefixes_of_at_least_eight() {
        let tasks: Vec<Uuid> = [
            "01900000-0000-7000-8000-000000000001",
            "01900000-0000-7000-8000-000000000002",
            "abcdef01-0000-7000-8000-000000000000",
        ]
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
        let ids = short_ids(&tasks);
        assert_eq!(
            ids,
            [
                "01900000-0000-7000-8000-000000000001",
                "01900000-0000-7000-8000-000000000002",
                "abcdef01"
            ]
        );
    }
}
