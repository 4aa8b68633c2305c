//! How taskctl prints: short tables for people, stable JSON for programs.
//!
//! JSON shapes: a task is a bare object with the fields of DESIGN.md section 3, a list is a
//! bare array, `status` is the daemon's status object.

use std::io::Write;
use std::path::Path;

use tasksync_proto::events::{ChangeOrigin, ConnectivityState, Event, SyncProgress};
use tasksync_proto::ipc::{QueueEntry, SyncReport};
use tasksync_proto::{StatusInfo, Task};
use uuid::Uuid;

pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn created(&self, task: &Task) {
        if self.json {
            print_json(task);
        } else {
            println!("{}", task.id);
        }
    }

    pub fn task(&self, task: &Task) {
        if self.json {
            return print_json(task);
        }
        let mut out = String::new();
        let description = task.description.as_deref().unwrap_or("-");
        let synced = task
            .last_synced_at
            .map_or("never".to_string(), |t| t.to_string());
        out.push_str(&format!("id:          {}\n", task.id));
        out.push_str(&format!("title:       {}\n", task.title));
        out.push_str(&format!("description: {description}\n"));
        out.push_str(&format!("completed:   {}\n", yes_no(task.completed)));
        out.push_str(&format!("deleted:     {}\n", yes_no(task.is_deleted)));
        out.push_str(&format!("created:     {}\n", task.created_at));
        out.push_str(&format!("updated:     {}\n", task.updated_at));
        out.push_str(&format!(
            "sync:        {} (last synced: {synced})\n",
            task.sync_status
        ));
        write_stdout(&out);
    }

    pub fn tasks(&self, tasks: &[Task]) {
        if self.json {
            return print_json(&tasks);
        }
        if tasks.is_empty() {
            eprintln!("no tasks");
            return;
        }
        let ids = short_ids(&tasks.iter().map(|t| t.id).collect::<Vec<_>>());
        let width = ids.iter().map(String::len).max().unwrap_or(2).max(2);
        let mut out = format!("{:<width$}  DONE  SYNC         TITLE\n", "ID");
        for (task, id) in tasks.iter().zip(&ids) {
            let done = if task.completed { "x" } else { " " };
            let deleted = if task.is_deleted { " (deleted)" } else { "" };
            out.push_str(&format!(
                "{id:<width$}  [{done}]   {:<11}  {}{deleted}\n",
                task.sync_status.as_str(),
                task.title
            ));
        }
        write_stdout(&out);
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
            state: status.state.clone(),
            since: status.since,
            next_probe_at: status.next_probe_at,
        };
        let out = format!(
            "state:        {}\nserver:       {server}\npending:      {}\nfailed:       {}\nlast sync:    {last_sync}\n\
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
    /// `sync`: the report on stdout (`{success, synced_items, failed_items, errors}` with
    /// `--json`), errors on stderr for people.
    pub fn sync(&self, report: &SyncReport) {
        if self.json {
            return print_json(&serde_json::json!({
                "success": report.success,
                "synced_items": report.synced_items,
                "failed_items": report.failed_items,
                "errors": report.errors,
            }));
        }
        write_stdout(&format!(
            "synced {}, failed {}\n",
            report.synced_items, report.failed_items
        ));
        for error in &report.errors {
            eprintln!("taskctl: {error}");
        }
    }

    pub fn queue(&self, entries: &[QueueEntry]) {
        if self.json {
            return print_json(entries);
        }
        if entries.is_empty() {
            eprintln!("the queue is empty");
            return;
        }
        let ops = short_ids(&entries.iter().map(|e| e.id).collect::<Vec<_>>());
        let tasks = short_ids(&entries.iter().map(|e| e.task_id).collect::<Vec<_>>());
        let op_width = ops.iter().map(String::len).max().unwrap_or(9).max(9);
        let task_width = tasks.iter().map(String::len).max().unwrap_or(4).max(4);
        let mut out = format!(
            "{:<op_width$}  {:<task_width$}  {:<9}  {:<9}  TRIES  ERROR\n",
            "OPERATION", "TASK", "OP", "STATE"
        );
        for ((entry, op), task) in entries.iter().zip(&ops).zip(&tasks) {
            out.push_str(&format!(
                "{op:<op_width$}  {task:<task_width$}  {:<9}  {:<9}  {:>5}  {}\n",
                entry.operation,
                entry.state,
                entry.retry_count,
                entry.error_message.as_deref().unwrap_or(""),
            ));
        }
        write_stdout(&out);
    }

    /// One event of `watch`: a line for people, or one JSON object a line.
    pub fn event(&self, event: &Event) {
        if self.json {
            let line = serde_json::to_string(&event_json(event)).unwrap_or_default();
            return write_stdout(&format!("{line}\n"));
        }
        let line = match event {
            Event::Snapshot(s) => format!(
                "{}, {} pending, {} failed, last sync {}",
                describe_connectivity(&s.connectivity),
                s.pending,
                s.failed,
                s.last_sync_at
                    .map_or("never".to_string(), |t| t.to_string())
            ),
            Event::TaskChanged { task, origin } => {
                let origin = match origin {
                    ChangeOrigin::Local => "here",
                    ChangeOrigin::Remote => "from the server",
                };
                let deleted = if task.is_deleted { " (deleted)" } else { "" };
                let done = if task.completed { "[x]" } else { "[ ]" };
                format!(
                    "task {} changed {origin}: {done} {}{deleted}",
                    task.id, task.title
                )
            }
            Event::Connectivity(state) => format!("now {}", describe_connectivity(state)),
            Event::Sync(SyncProgress::BatchSent { items }) => {
                format!("sync: sent a batch of {items}")
            }
            Event::Sync(SyncProgress::BatchAnswered { synced, failed }) => {
                format!("sync: batch answered, {synced} synced, {failed} failed")
            }
            Event::Sync(SyncProgress::Pulled { changes }) => {
                format!("sync: pulled {changes} change(s)")
            }
            Event::Sync(SyncProgress::RoundFinished {
                success,
                synced,
                failed,
            }) => {
                let how = if *success {
                    "done"
                } else {
                    "finished with errors"
                };
                format!("sync: round {how}, {synced} synced, {failed} failed")
            }
            Event::Lagged { missed } => {
                format!("(missed {missed} events: this terminal read too slowly)")
            }
        };
        write_stdout(&format!("{line}\n"));
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

/// The stable JSON form of an event: `{"event": NAME, ...fields}`.
fn event_json(event: &Event) -> serde_json::Value {
    use serde_json::json;
    match event {
        Event::Snapshot(s) => json!({
            "event": "snapshot",
            "connectivity": s.connectivity,
            "pending": s.pending,
            "failed": s.failed,
            "last_sync_at": s.last_sync_at,
        }),
        Event::TaskChanged { task, origin } => {
            json!({"event": "task_changed", "origin": origin, "task": task})
        }
        Event::Connectivity(state) => {
            json!({"event": "connectivity", "state": state.state, "since": state.since, "next_probe_at": state.next_probe_at})
        }
        Event::Sync(SyncProgress::BatchSent { items }) => {
            json!({"event": "batch_sent", "items": items})
        }
        Event::Sync(SyncProgress::BatchAnswered { synced, failed }) => {
            json!({"event": "batch_answered", "synced": synced, "failed": failed})
        }
        Event::Sync(SyncProgress::Pulled { changes }) => {
            json!({"event": "pulled", "changes": changes})
        }
        Event::Sync(SyncProgress::RoundFinished {
            success,
            synced,
            failed,
        }) => {
            json!({"event": "sync_finished", "success": success, "synced": synced, "failed": failed})
        }
        Event::Lagged { missed } => json!({"event": "lagged", "missed": missed}),
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// The shortest prefix of each id (at least 8 characters) that no other listed id shares.
fn short_ids(ids: &[Uuid]) -> Vec<String> {
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

fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => write_stdout(&format!("{text}\n")),
        Err(e) => eprintln!("taskctl: cannot print JSON: {e}"),
    }
}

/// Writes to stdout, staying quiet if the reader went away (`taskctl list | head`).
fn write_stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

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
