//! The order and the optional columns of `list`: by due date (none last), then priority
//! (H, M, L, none), then number; tasks without a number after those, newest first. A column of
//! the new fields shows only when some shown task has a value in it.

use std::cmp::Ordering;

use tasksync_proto::{Priority, Task};

/// Sorts `tasks` into the order `list` shows them (its table and its JSON alike).
pub(crate) fn sort(tasks: &mut [&Task]) {
    tasks.sort_by(|a, b| order(a, b));
}

fn order(a: &Task, b: &Task) -> Ordering {
    match (a.number, b.number) {
        (Some(x), Some(y)) => due_rank(a)
            .cmp(&due_rank(b))
            .then(priority_rank(a.priority).cmp(&priority_rank(b.priority)))
            .then(x.cmp(&y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)),
    }
}

/// Due tasks first, earliest first; then those without a due date.
fn due_rank(task: &Task) -> (bool, i64) {
    match task.due {
        Some(due) => (false, due.as_millis()),
        None => (true, 0),
    }
}

fn priority_rank(priority: Option<Priority>) -> u8 {
    match priority {
        Some(Priority::H) => 0,
        Some(Priority::M) => 1,
        Some(Priority::L) => 2,
        None => 3,
    }
}

/// Which optional columns have something to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Columns {
    pub due: bool,
    pub priority: bool,
    pub project: bool,
    pub tags: bool,
}

/// The optional columns in which at least one of `tasks` has a value.
pub(crate) fn columns(tasks: &[&Task]) -> Columns {
    Columns {
        due: tasks.iter().any(|t| t.due.is_some()),
        priority: tasks.iter().any(|t| t.priority.is_some()),
        project: tasks.iter().any(|t| t.project.is_some()),
        tags: tasks.iter().any(|t| !t.tags.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::Timestamp;

    fn task(n: u8, number: Option<u32>, due: Option<&str>, priority: Option<Priority>) -> Task {
        let mut task: Task = serde_json::from_value(serde_json::json!({
            "id": format!("01900000-0000-7000-8000-0000000000{n:02}"),
            "number": number,
            "title": format!("t{n}"),
            "description": null,
            "completed": number.is_none(),
            "created_at": format!("2026-01-01T00:00:{n:02}.000Z"),
            "updated_at": "2026-01-01T00:00:00.000Z",
            "is_deleted": false,
            "sync_status": "pending",
            "last_synced_at": null,
        }))
        .unwrap();
        task.due = due.map(|d| d.parse::<Timestamp>().unwrap());
        task.priority = priority;
        task
    }

    #[test]
    fn due_then_priority_then_number_then_unnumbered_newest_first() {
        let tasks = [
            task(1, Some(1), None, None),
            task(2, Some(2), None, Some(Priority::L)),
            task(3, Some(3), Some("2026-12-05T00:00:00Z"), None),
            task(4, Some(4), Some("2026-12-04T00:00:00Z"), Some(Priority::L)),
            task(5, Some(5), Some("2026-12-04T00:00:00Z"), Some(Priority::H)),
            task(6, None, None, Some(Priority::H)),
            task(7, None, Some("2026-01-01T00:00:00Z"), None),
            task(8, Some(8), None, Some(Priority::H)),
            task(9, Some(9), None, None),
        ];
        let mut shown: Vec<&Task> = tasks.iter().collect();
        sort(&mut shown);
        let titles: Vec<&str> = shown.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(
            titles,
            ["t5", "t4", "t3", "t8", "t2", "t1", "t9", "t7", "t6"]
        );
    }

    #[test]
    fn only_columns_with_a_value_show() {
        let plain = task(1, Some(1), None, None);
        let mut tagged = task(2, Some(2), Some("2026-12-05T00:00:00Z"), None);
        tagged.tags.insert("x".into());
        assert_eq!(columns(&[&plain]), Columns::default());
        assert_eq!(
            columns(&[&plain, &tagged]),
            Columns {
                due: true,
                tags: true,
                ..Columns::default()
            }
        );
    }
}
