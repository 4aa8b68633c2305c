//! Importing whole tasks (`taskctl import`, IPC `ImportTasks`): one writer request, one transaction.
//!
//! Each task is created as given when its id is new here, left alone when the stored task has
//! the same content, and otherwise changed by one local update of the fields that differ
//! (README, "Taskwarrior"). All or nothing: every task is checked before anything is written,
//! and the writes run under a savepoint, so a refusal leaves the rest of the writer's group
//! as it was.

use std::collections::HashSet;

use rusqlite::Transaction;
use tasksync_proto::ipc::{HistoryOrigin, ImportSummary};
use tasksync_proto::lww;
use tasksync_proto::wire::{Field, Operation, WireTask};
use tasksync_proto::{SyncStatus, Task};
use uuid::Uuid;

use super::clock::{HybridClock, MAX_CLOCK_SKEW};
use super::commands::{enqueue, insert_numbered, load, number_of, write_content};
use super::history;
use super::writer::{Executed, WriteRequest};
use super::StoreError;

/// Imports tasks: see the module's documentation. Checked with [`check`] before it is sent.
pub(crate) struct ImportTasks(pub(crate) Vec<Task>);

/// What an import did: its counts, and every task it created or changed, as stored now.
#[derive(Debug)]
pub(crate) struct Imported {
    pub(crate) summary: ImportSummary,
    pub(crate) changed: Vec<Task>,
}

/// What to do with one imported task, decided before anything is written.
enum Step {
    Create,
    Unchanged,
    /// The stored task, to be changed into the imported one, and the fields that differ.
    Update(Box<Task>, Vec<Field>),
}

/// The checks that need no database: each task passes the task rules, its `updated_at` is not
/// before its `created_at`, and no id comes twice. The error names the task and the field.
pub(crate) fn check(tasks: &[Task]) -> Result<(), StoreError> {
    let mut seen = HashSet::with_capacity(tasks.len());
    for task in tasks {
        WireTask::from_task(task, Uuid::nil())
            .validate()
            .map_err(|e| refused(task.id, e))?;
        if task.updated_at < task.created_at {
            return Err(refused(
                task.id,
                format!(
                    "updated_at {} is before created_at {}",
                    task.updated_at, task.created_at
                ),
            ));
        }
        if !seen.insert(task.id) {
            return Err(refused(task.id, "the id appears more than once"));
        }
    }
    Ok(())
}

fn refused(id: Uuid, why: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidImport(format!("task {id}: {why}; nothing was imported"))
}

/// The fields whose content differs between two versions of a task (their clocks aside).
fn content_diff(a: &Task, b: &Task) -> Vec<Field> {
    lww::diff(
        &WireTask::from_task(a, Uuid::nil()),
        &WireTask::from_task(b, Uuid::nil()),
    )
}

impl WriteRequest for ImportTasks {
    type Output = Imported;

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Imported> {
        // Timestamps far ahead would push this device's clock (and every later edit) there.
        for task in &self.0 {
            for (field, at) in [
                ("created_at", task.created_at),
                ("updated_at", task.updated_at),
            ] {
                if clock.too_far_ahead(at) {
                    let why = format!(
                        "{field} {at} lies more than {} minutes ahead of this device's clock",
                        MAX_CLOCK_SKEW.as_secs() / 60
                    );
                    return Ok(Err(refused(task.id, why)));
                }
            }
        }
        let mut steps = Vec::with_capacity(self.0.len());
        for task in &self.0 {
            steps.push(match load(tx, task.id)? {
                None => Step::Create,
                Some(stored) => {
                    let fields = content_diff(&stored, task);
                    if fields.is_empty() {
                        Step::Unchanged
                    } else {
                        Step::Update(Box::new(stored), fields)
                    }
                }
            });
        }
        for task in &self.0 {
            clock.observe(task.updated_at);
        }
        // Only a clock that cannot tick refuses the import once writing began: the savepoint
        // takes back what this request wrote, and the other requests of the group still commit.
        tx.execute_batch("SAVEPOINT import")?;
        match apply(tx, clock, &self.0, steps) {
            Ok(Ok(imported)) => {
                tx.execute_batch("RELEASE import")?;
                Ok(Ok(imported))
            }
            Ok(Err(refusal)) => {
                tx.execute_batch("ROLLBACK TO import; RELEASE import")?;
                Ok(Err(refusal))
            }
            Err(e) => Err(e),
        }
    }
}

fn apply(
    tx: &Transaction<'_>,
    clock: &mut HybridClock,
    tasks: &[Task],
    steps: Vec<Step>,
) -> Executed<Imported> {
    let mut summary = ImportSummary::default();
    let mut changed = Vec::new();
    for (task, step) in tasks.iter().zip(steps) {
        match step {
            Step::Unchanged => summary.unchanged += 1,
            Step::Create => {
                changed.push(create(tx, task)?);
                summary.created += 1;
            }
            Step::Update(stored, fields) => {
                let updated_at = match clock.tick() {
                    Ok(now) => now,
                    Err(e) => return Ok(Err(e.into())),
                };
                changed.push(update(tx, *stored, task, &fields, updated_at)?);
                summary.updated += 1;
            }
        }
    }
    Ok(Ok(Imported { summary, changed }))
}

/// Inserts an imported task with its own times and state, and queues its `create`. An open
/// task is numbered in the INSERT, as `CreateTask` does.
fn create(tx: &Transaction<'_>, imported: &Task) -> rusqlite::Result<Task> {
    let mut task = Task {
        number: None,
        sync_status: SyncStatus::Pending,
        last_synced_at: None,
        ..imported.clone()
    };
    task.number = insert_numbered(tx, &task)?;
    let fields = Field::all_of(&WireTask::from_task(&task, Uuid::nil()));
    enqueue(tx, &task, Operation::Create, &fields, None)?;
    history::record_diff(tx, None, &task, HistoryOrigin::Local, &[])?;
    Ok(task)
}

/// Gives the stored task the imported content as one local edit at `updated_at`, and queues
/// an `update` naming `fields`, those that differ.
fn update(
    tx: &Transaction<'_>,
    stored: Task,
    imported: &Task,
    fields: &[Field],
    updated_at: tasksync_proto::Timestamp,
) -> rusqlite::Result<Task> {
    let mut task = Task {
        title: imported.title.clone(),
        description: imported.description.clone(),
        completed: imported.completed,
        is_deleted: imported.is_deleted,
        due: imported.due,
        priority: imported.priority,
        project: imported.project.clone(),
        tags: imported.tags.clone(),
        attributes: imported.attributes.clone(),
        updated_at,
        sync_status: SyncStatus::Pending,
        ..stored.clone()
    };
    write_content(tx, &task)?;
    task.number = number_of(tx, task.id)?;
    enqueue(tx, &task, Operation::Update, fields, Some(&stored))?;
    history::record_diff(tx, Some(&stored), &task, HistoryOrigin::Local, &[])?;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use tasksync_proto::{Priority, Timestamp};

    use super::super::Store;
    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tasks.db")).unwrap();
        (dir, store)
    }

    fn count(store: &Store, table: &str) -> i64 {
        Connection::open(store.path())
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    fn ts(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis).unwrap()
    }

    /// A task as an import brings it: from the past, with every kind of field.
    fn imported(title: &str) -> Task {
        Task {
            id: Uuid::now_v7(),
            number: Some(77),
            title: title.into(),
            description: Some("2026-12-01 an annotation".into()),
            completed: false,
            created_at: ts(1_700_000_000_000),
            updated_at: ts(1_700_000_100_000),
            is_deleted: false,
            sync_status: SyncStatus::Synced,
            last_synced_at: None,
            due: Some(ts(1_800_000_000_000)),
            priority: Some(Priority::H),
            project: Some("home.garden".into()),
            tags: ["errand".to_string()].into(),
            attributes: [("tw.estimate".to_string(), "2.5".to_string())].into(),
        }
    }

    #[tokio::test]
    async fn an_import_creates_tasks_as_given_and_queues_their_creates() {
        let (_dir, store) = open();
        let open_task = imported("Plant roses");
        let done = Task {
            completed: true,
            ..imported("Read book")
        };
        let deleted = Task {
            is_deleted: true,
            ..imported("Old idea")
        };
        let imported = store
            .import_tasks(vec![open_task.clone(), done.clone(), deleted.clone()])
            .await
            .unwrap();
        assert_eq!(
            imported.summary,
            ImportSummary {
                created: 3,
                updated: 0,
                unchanged: 0
            }
        );
        assert_eq!(imported.changed.len(), 3);

        let stored = store.get(open_task.id).unwrap();
        assert_eq!(stored.number, Some(1), "numbered as a new task");
        assert_eq!(stored.sync_status, SyncStatus::Pending);
        assert!(content_diff(&stored, &open_task).is_empty());
        assert_eq!(stored.created_at, open_task.created_at, "its own times");
        assert_eq!(stored.updated_at, open_task.updated_at);
        assert_eq!(store.get(done.id).unwrap().number, None);
        assert!(store.get(done.id).unwrap().completed);
        assert!(store.get(deleted.id).unwrap().is_deleted);

        let queue = store.queue(false).unwrap();
        assert_eq!(queue.len(), 3);
        for (row, task) in queue.iter().zip([&open_task, &done, &deleted]) {
            assert_eq!(row.entry.task_id, task.id);
            assert_eq!(row.entry.operation, Operation::Create);
            assert_eq!(
                row.entry.changed_fields,
                Field::all_of(&WireTask::from_task(task, Uuid::nil()))
            );
        }
        let history = store.history(open_task.id).unwrap();
        assert!(history
            .entries
            .iter()
            .all(|e| e.origin == HistoryOrigin::Local && e.old == "null"));
        assert!(history.entries.iter().any(|e| e.field == Field::Title));

        // A later edit comes after what was imported.
        let edited = store
            .update(
                open_task.id,
                tasksync_proto::TaskPatch {
                    title: Some("Plant tulips".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(edited.updated_at > open_task.updated_at);
    }

    #[tokio::test]
    async fn importing_the_same_tasks_again_writes_nothing() {
        let (_dir, store) = open();
        let tasks = vec![imported("a"), imported("b")];
        store.import_tasks(tasks.clone()).await.unwrap();
        let (queue, history) = (count(&store, "sync_queue"), count(&store, "history"));
        let before = store.list(true, None).unwrap();

        let again = store.import_tasks(tasks).await.unwrap();
        assert_eq!(
            again.summary,
            ImportSummary {
                created: 0,
                updated: 0,
                unchanged: 2
            }
        );
        assert!(again.changed.is_empty());
        assert_eq!(count(&store, "sync_queue"), queue, "nothing queued");
        assert_eq!(count(&store, "history"), history, "no history");
        assert_eq!(store.list(true, None).unwrap(), before, "no task changed");
    }

    #[tokio::test]
    async fn a_changed_task_becomes_one_local_update_of_the_fields_that_differ() {
        let (_dir, store) = open();
        let task = imported("Plant roses");
        store.import_tasks(vec![task.clone()]).await.unwrap();
        let stored = store.get(task.id).unwrap();
        let changed = Task {
            title: "Plant tulips".into(),
            completed: true,
            tags: ["errand".to_string(), "spring".to_string()].into(),
            attributes: Default::default(),
            // Times in the file do not decide the clock of a local edit.
            updated_at: ts(1_700_000_200_000),
            ..task.clone()
        };
        let (queue, history) = (count(&store, "sync_queue"), count(&store, "history"));

        let imported = store.import_tasks(vec![changed.clone()]).await.unwrap();
        assert_eq!(
            imported.summary,
            ImportSummary {
                created: 0,
                updated: 1,
                unchanged: 0
            }
        );
        let now = store.get(task.id).unwrap();
        assert_eq!(imported.changed, std::slice::from_ref(&now));
        assert!(content_diff(&now, &changed).is_empty());
        assert_eq!(now.created_at, stored.created_at);
        assert!(now.updated_at > stored.updated_at);
        assert!(
            (now.updated_at.as_millis() - Timestamp::now().as_millis()).abs() < 60_000,
            "a fresh tick of this device's clock: {}",
            now.updated_at
        );
        assert_eq!(now.number, None, "done tasks leave the working set");

        assert_eq!(count(&store, "sync_queue"), queue + 1, "one operation");
        let last = store.queue(false).unwrap().pop().unwrap();
        assert_eq!(last.entry.operation, Operation::Update);
        let fields = vec![
            Field::Title,
            Field::Completed,
            Field::Tag("spring".into()),
            Field::Attribute("tw.estimate".into()),
        ];
        assert_eq!(last.entry.changed_fields, fields);
        assert_eq!(count(&store, "history"), history + 4, "one entry a field");
    }

    #[tokio::test]
    async fn an_invalid_task_refuses_the_whole_import() {
        let (_dir, store) = open();
        let existing = imported("Stays as it is");
        store.import_tasks(vec![existing.clone()]).await.unwrap();
        let before = store.list(true, None).unwrap();
        let (queue, history) = (count(&store, "sync_queue"), count(&store, "history"));

        let good = imported("Would be new");
        let renamed = Task {
            title: "Renamed".into(),
            ..existing.clone()
        };
        let ahead = Timestamp::now().as_millis() + 3_600_000;
        let cases = [
            (
                Task {
                    title: "bad\u{7}title".into(),
                    ..imported("x")
                },
                "title",
            ),
            (
                Task {
                    project: Some("has space".into()),
                    ..imported("x")
                },
                "project",
            ),
            (
                Task {
                    updated_at: ts(ahead),
                    ..imported("x")
                },
                "updated_at",
            ),
            (
                Task {
                    created_at: ts(ahead),
                    updated_at: ts(ahead),
                    ..imported("x")
                },
                "created_at",
            ),
            (
                Task {
                    updated_at: ts(1),
                    ..imported("x")
                },
                "updated_at",
            ),
            (good.clone(), "more than once"),
        ];
        for (bad, words) in cases {
            let id = bad.id;
            let error = store
                .import_tasks(vec![good.clone(), renamed.clone(), bad])
                .await
                .unwrap_err();
            assert!(matches!(error, StoreError::InvalidImport(_)), "{error}");
            let message = error.to_string();
            let id = if words == "more than once" {
                good.id
            } else {
                id
            };
            assert!(message.contains(&id.to_string()), "{message}");
            assert!(message.contains(words), "{words:?} not in {message}");
            assert!(message.contains("nothing was imported"), "{message}");
        }
        assert_eq!(store.list(true, None).unwrap(), before, "nothing written");
        assert_eq!(count(&store, "sync_queue"), queue);
        assert_eq!(count(&store, "history"), history);
    }
}
