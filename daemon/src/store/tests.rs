//! The original challenge's task-service cases, plus what group commit and the clock promise.

use super::*;
use rusqlite::Connection;
use tasksync_proto::ipc::QueueState;
use tasksync_proto::wire::{Field, Operation};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tasks.db")).unwrap();
    (dir, store)
}

fn new_task(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        description: Some(format!("about {title}")),
        id: None,
        ..Default::default()
    }
}

fn raw(store: &Store) -> Connection {
    Connection::open(store.path()).unwrap()
}

#[tokio::test]
async fn a_new_task_has_defaults_and_one_create_in_the_queue() {
    let (_dir, store) = open();
    let task = store.create(new_task("Buy milk")).await.unwrap();
    assert_eq!(task.title, "Buy milk");
    assert!(!task.completed);
    assert!(!task.is_deleted);
    assert_eq!(task.sync_status, SyncStatus::Pending);
    assert_eq!(task.created_at, task.updated_at);
    assert_eq!(task.id.get_version_num(), 7);
    assert_eq!(store.get(task.id).unwrap(), task);

    let queue = store.queue(false).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].entry.operation, Operation::Create);
    assert_eq!(queue[0].entry.task_id, task.id);
    assert_eq!(queue[0].entry.state, QueueState::Pending);
    assert_eq!(queue[0].entry.retry_count, 0);
    assert_eq!(queue[0].entry.changed_fields, Field::ALL);
    let data: Task = serde_json::from_str(&queue[0].data).unwrap();
    assert_eq!(data, task);
}

#[tokio::test]
async fn update_changes_fields_bumps_updated_at_and_queues_an_update() {
    let (_dir, store) = open();
    let task = store.create(new_task("Draft")).await.unwrap();
    raw(&store)
        .execute("UPDATE tasks SET sync_status = 'synced'", [])
        .unwrap();
    let patch = TaskPatch {
        title: Some("Final".into()),
        completed: Some(true),
        ..Default::default()
    };
    let updated = store.update(task.id, patch).await.unwrap();
    assert_eq!(updated.title, "Final");
    assert!(updated.completed);
    assert_eq!(updated.description, task.description);
    assert!(updated.updated_at > task.updated_at);
    assert_eq!(updated.created_at, task.created_at);
    assert_eq!(updated.sync_status, SyncStatus::Pending);
    assert_eq!(store.get(task.id).unwrap(), updated);

    let queue = store.queue(false).unwrap();
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[1].entry.operation, Operation::Update);
    assert_eq!(
        queue[1].entry.changed_fields,
        [Field::Title, Field::Completed]
    );
    let data: Task = serde_json::from_str(&queue[1].data).unwrap();
    assert_eq!(data, updated);

    let cleared = store
        .update(
            task.id,
            TaskPatch {
                description: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.description, None);
}

#[tokio::test]
async fn updating_or_deleting_a_missing_task_is_not_found() {
    let (_dir, store) = open();
    let missing = Uuid::now_v7();
    let patch = TaskPatch {
        completed: Some(true),
        ..Default::default()
    };
    assert!(matches!(
        store.update(missing, patch).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(store.get(missing), Err(StoreError::NotFound(_))));
    assert!(store.queue(false).unwrap().is_empty());
}

#[tokio::test]
async fn delete_is_soft_and_queued() {
    let (_dir, store) = open();
    let task = store.create(new_task("Old")).await.unwrap();
    let deleted = store.delete(task.id).await.unwrap();
    assert!(deleted.is_deleted);
    assert_eq!(deleted.sync_status, SyncStatus::Pending);
    assert!(deleted.updated_at > task.updated_at);
    let row: (i64, String) = raw(&store)
        .query_row(
            "SELECT is_deleted, title FROM tasks WHERE id = ?1",
            [task.id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row, (1, "Old".to_string()));
    let queue = store.queue(false).unwrap();
    assert_eq!(queue.last().unwrap().entry.operation, Operation::Delete);
    assert_eq!(
        queue.last().unwrap().entry.changed_fields,
        [Field::IsDeleted]
    );
    // A tombstone cannot be edited or deleted again.
    assert!(matches!(
        store.delete(task.id).await,
        Err(StoreError::NotFound(_))
    ));
    let patch = TaskPatch {
        title: Some("x".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.update(task.id, patch).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.queue(false).unwrap().len(), 2);
}

#[tokio::test]
async fn listing_hides_deleted_tasks_and_shows_newest_first() {
    let (_dir, store) = open();
    let a = store.create(new_task("a")).await.unwrap();
    let b = store.create(new_task("b")).await.unwrap();
    let c = store.create(new_task("c")).await.unwrap();
    store.delete(b.id).await.unwrap();
    let live: Vec<Uuid> = store
        .list(false, None)
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(live, [c.id, a.id]);
    let all: Vec<Uuid> = store
        .list(true, None)
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(all, [c.id, b.id, a.id]);
    raw(&store)
        .execute(
            "UPDATE tasks SET sync_status = 'synced' WHERE id = ?1",
            [a.id.to_string()],
        )
        .unwrap();
    let synced: Vec<Uuid> = store
        .list(true, Some(SyncStatus::Synced))
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(synced, [a.id]);
}

#[tokio::test]
async fn create_update_create_delete_leave_four_queue_rows_in_order() {
    let (_dir, store) = open();
    let first = store.create(new_task("first")).await.unwrap();
    store
        .update(
            first.id,
            TaskPatch {
                completed: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let second = store.create(new_task("second")).await.unwrap();
    store.delete(first.id).await.unwrap();
    let queue = store.queue(false).unwrap();
    let ops: Vec<(&str, Uuid)> = queue
        .iter()
        .map(|q| (q.entry.operation.as_str(), q.entry.task_id))
        .collect();
    assert_eq!(
        ops,
        [
            ("create", first.id),
            ("update", first.id),
            ("create", second.id),
            ("delete", first.id)
        ]
    );
    assert!(queue
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].entry.created_at < w[1].entry.created_at));
    let counts = store.counts().unwrap();
    assert_eq!(
        counts,
        Counts {
            tasks: 1,
            deleted_tasks: 1,
            pending: 4,
            failed: 0
        }
    );
}

#[tokio::test]
async fn invalid_input_is_refused_and_writes_nothing() {
    let (_dir, store) = open();
    let err = store
        .create(NewTask {
            title: "  ".into(),
            description: None,
            id: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ValidationError::EmptyTitle)),
        "{err}"
    );
    let err = store
        .create(NewTask {
            title: "x".repeat(501),
            description: None,
            id: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    let task = store.create(new_task("ok")).await.unwrap();
    let err = store
        .update(task.id, TaskPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Invalid(ValidationError::EmptyPatch)
    ));
    assert_eq!(store.queue(false).unwrap().len(), 1);
}

#[tokio::test]
async fn prefixes_resolve_when_unique_and_list_matches_when_not() {
    let (_dir, store) = open();
    let a = store.create(new_task("a")).await.unwrap();
    let b = store.create(new_task("b")).await.unwrap();
    let full = a.id.to_string();
    assert_eq!(
        store.resolve(&TaskRef::parse(&full).unwrap()).unwrap(),
        a.id
    );
    // v7 ids made together share their leading timestamp digits.
    let common: usize = full
        .chars()
        .zip(b.id.to_string().chars())
        .take_while(|(x, y)| x == y)
        .count();
    let shared = TaskRef::parse(&full[..common]).unwrap();
    match store.resolve(&shared) {
        Err(error @ StoreError::Ambiguous { .. }) => {
            let StoreError::Ambiguous { matches, more, .. } = &error else {
                unreachable!()
            };
            let ids: Vec<&str> = matches.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, [a.id.to_string(), b.id.to_string()]);
            assert!(!more);
            // The message lists each candidate with its title, one a line.
            let message = error.to_string();
            for task in [&a, &b] {
                let line = message
                    .lines()
                    .find(|l| l.contains(&task.id.to_string()))
                    .unwrap_or_else(|| panic!("{message}"));
                assert!(line.contains(&format!("\"{}\"", task.title)), "{message}");
            }
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    let unique = TaskRef::parse(&full[..common + 1]).unwrap();
    assert_eq!(store.resolve(&unique).unwrap(), a.id);
    store.delete(a.id).await.unwrap();
    assert_eq!(
        store.resolve(&unique).unwrap(),
        a.id,
        "deleted tasks count for prefixes"
    );
    let none = TaskRef::parse("ffffffff").unwrap();
    assert!(matches!(store.resolve(&none), Err(StoreError::NotFound(_))));
}

/// Holds the writer inside its transaction until told to go on, so that requests queue up
/// behind it; says when it holds.
struct HoldWriter {
    holding: std::sync::mpsc::Sender<()>,
    go_on: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl writer::WriteRequest for HoldWriter {
    type Output = ();

    fn must_be_durable(&self) -> bool {
        false
    }

    fn execute(
        &self,
        _tx: &rusqlite::Transaction<'_>,
        _clock: &mut clock::HybridClock,
    ) -> writer::Executed<()> {
        let _ = self.holding.send(());
        let _ = self.go_on.lock().unwrap().recv();
        Ok(Ok(()))
    }
}

#[tokio::test]
async fn commands_waiting_together_share_one_commit() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};

    let (_dir, store) = open();
    let (go_on, go_on_rx) = std::sync::mpsc::channel();
    let (holding_tx, holding) = std::sync::mpsc::channel();
    let before = store.writer.commits();
    let held = store.writer.submit(HoldWriter {
        holding: holding_tx,
        go_on: std::sync::Mutex::new(go_on_rx),
    });
    let mut held = std::pin::pin!(held);
    let mut cx = Context::from_waker(Waker::noop());
    // The first poll sends the request; once the writer holds, its group is closed.
    assert!(held.as_mut().poll(&mut cx).is_pending());
    holding
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the writer takes the held request");
    type Create<'a> = Pin<Box<dyn Future<Output = Result<Task, StoreError>> + 'a>>;
    let mut creates: Vec<Create<'_>> = (0..50)
        .map(|i| Box::pin(store.create(new_task(&format!("task {i}")))) as Create<'_>)
        .collect();
    for create in &mut creates {
        // Each first poll queues its request behind the held one.
        assert!(create.as_mut().poll(&mut cx).is_pending());
    }
    go_on.send(()).unwrap();
    held.await.unwrap();
    let mut stamps = Vec::new();
    for create in creates {
        stamps.push(create.await.unwrap().updated_at);
    }
    assert_eq!(
        store.writer.commits() - before,
        2,
        "the held request's commit, then one commit for all 50 creates"
    );
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 50, "every updated_at is distinct");
    assert_eq!(store.queue(false).unwrap().len(), 50);
    assert_eq!(store.counts().unwrap().tasks, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_all_land() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create(new_task(&format!("task {i}"))).await })
        })
        .collect();
    let mut stamps = Vec::new();
    for handle in handles {
        stamps.push(handle.await.unwrap().unwrap().updated_at);
    }
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 200, "every updated_at is distinct");
    assert_eq!(store.queue(false).unwrap().len(), 200);
    assert_eq!(store.counts().unwrap().tasks, 200);
}

#[tokio::test]
async fn the_clock_never_goes_back_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let future = Timestamp::now().as_millis() + 3_600_000;
    {
        let store = Store::open(&path).unwrap();
        store.create(new_task("a")).await.unwrap();
        let conn = raw(&store);
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'clock'",
            [Timestamp::from_millis(future).unwrap().to_string()],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let task = store.create(new_task("b")).await.unwrap();
    assert!(task.updated_at.as_millis() > future);
}

#[tokio::test]
async fn writes_after_shutdown_fail_cleanly() {
    let (_dir, store) = open();
    store.create(new_task("before")).await.unwrap();
    store.shut_down();
    assert!(matches!(
        store.create(new_task("after")).await,
        Err(StoreError::Closed)
    ));
    assert_eq!(store.list(false, None).unwrap().len(), 1);
}

#[tokio::test]
async fn pages_cover_a_listing_exactly_once_and_fit_a_frame() {
    let (_dir, store) = open();
    let long = "d".repeat(10_000);
    for i in 0..250 {
        let description = (i % 2 == 0).then(|| long.clone());
        store
            .create(NewTask {
                title: format!("t{i}"),
                description,
                id: None,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all = store.list(false, None).unwrap();
    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_page(false, None, after, 100).unwrap();
        let frame = tasksync_proto::codec::encode(&page).unwrap();
        assert!(frame.len() < tasksync_proto::codec::MAX_FRAME_LEN);
        assert!(!page.tasks.is_empty());
        pages += 1;
        paged.extend(page.tasks);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert!(pages >= 3, "the byte budget splits pages: {pages}");
}

#[tokio::test]
async fn an_edit_made_after_pulling_a_newer_version_wins_even_with_a_slow_clock() {
    // This device's clock is five minutes behind the device that made the pulled version
    // (inside the allowed skew).
    let (_dir, store) = open();
    let task = store.create(new_task("mine")).await.unwrap();
    let ahead = Timestamp::from_millis(Timestamp::now().as_millis() + 300_000).unwrap();
    let pulled = tasksync_proto::wire::WireTask {
        title: "from the future".into(),
        updated_at: ahead,
        device_id: Uuid::now_v7(),
        ..tasksync_proto::wire::WireTask::from_task(&task, Uuid::now_v7())
    };
    store
        .store_pulled(page(vec![pulled], "1"), "pull_cursor test".into())
        .await
        .unwrap();
    let edited = store
        .update(
            task.id,
            TaskPatch {
                title: Some("edited after seeing it".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        edited.updated_at > ahead,
        "{} must follow {}",
        edited.updated_at,
        ahead
    );
    let queued = store.queue(false).unwrap();
    let sent: Task = serde_json::from_str(&queued.last().unwrap().data).unwrap();
    assert!(
        sent.updated_at > ahead,
        "the queued operation carries the later clock"
    );
}

#[tokio::test]
async fn queue_pages_cover_the_queue_exactly_once_in_order() {
    let (_dir, store) = open();
    for i in 0..23 {
        store.create(new_task(&format!("t{i}"))).await.unwrap();
    }
    let all = store.queue(false).unwrap();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let (rows, next) = store.queue_page(false, after, 5).unwrap();
        assert!(rows.len() <= 5);
        paged.extend(rows);
        match next {
            Some(seq) => after = Some(seq),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let (failed, next) = store.queue_page(true, None, 5).unwrap();
    assert!(failed.is_empty() && next.is_none());
}

#[tokio::test]
async fn a_pulled_timestamp_far_in_the_future_is_skipped_and_leaves_the_clock_alone() {
    let (_dir, store) = open();
    let task = store.create(new_task("mine")).await.unwrap();
    let mut poisoned = Vec::new();
    for ahead in [
        Timestamp::from_millis(253_402_300_799_999).unwrap(),
        Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000).unwrap(),
    ] {
        poisoned.push(tasksync_proto::wire::WireTask {
            title: "from a broken clock".into(),
            updated_at: ahead,
            ..tasksync_proto::wire::WireTask::from_task(&task, Uuid::now_v7())
        });
    }
    let applied = store
        .store_pulled(page(poisoned, "2"), "pull_cursor test".into())
        .await
        .unwrap();
    assert!(applied.adopted.is_empty(), "nothing was adopted");
    assert_eq!(store.get(task.id).unwrap().title, "mine");
    let edited = store
        .update(
            task.id,
            TaskPatch {
                title: Some("still editable".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let now = Timestamp::now().as_millis();
    assert!(
        (edited.updated_at.as_millis() - now).abs() < 60_000,
        "the clock did not jump: {}",
        edited.updated_at
    );
    assert_eq!(
        store.meta("pull_cursor test").unwrap().as_deref(),
        Some("2"),
        "the cursor moves on past the skipped tasks"
    );
}

#[tokio::test]
async fn our_own_version_coming_back_is_no_change() {
    let (_dir, store) = open();
    let task = store.create(new_task("mine")).await.unwrap();
    let echo = tasksync_proto::wire::WireTask::from_task(&task, store.device_id());
    let applied = store
        .store_pulled(page(vec![echo], "1"), "pull_cursor test".into())
        .await
        .unwrap();
    assert!(applied.adopted.is_empty());
}

/// States are bound as parameters, not written into the SQL; SQLite still sees the bound
/// value when it plans, so the retry-time lookup keeps its partial index.
#[tokio::test]
async fn the_retry_time_lookup_uses_its_partial_index_with_a_bound_state() {
    let (_dir, store) = open();
    store.create(new_task("Waits")).await.unwrap();
    let conn = raw(&store);
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT min(next_attempt_at) FROM sync_queue
             WHERE state = ?1 AND next_attempt_at IS NOT NULL",
        )
        .unwrap()
        .query_map([QueueState::Pending], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("sync_queue_by_next_attempt")),
        "{plan:?}"
    );
    assert_eq!(store.next_retry_at().unwrap(), None);
}

#[tokio::test]
async fn a_retry_time_further_away_than_any_delay_is_due_at_once() {
    // A failed attempt set its retry time by a clock that has since gone back a day: waiting
    // for it would hold the operation for the size of the jump.
    let (_dir, store) = open();
    let stuck = store
        .create(new_task("set before the clock went back"))
        .await
        .unwrap();
    let waiting = store.create(new_task("waits its delay")).await.unwrap();
    let now = store.now().as_millis();
    let at = |ms: i64| Timestamp::from_millis(now + ms).unwrap().to_string();
    let conn = raw(&store);
    for (task, retry_at) in [(stuck.id, at(86_400_000)), (waiting.id, at(60_000))] {
        conn.execute(
            "UPDATE sync_queue SET retry_count = 1, next_attempt_at = ?2 WHERE task_id = ?1",
            rusqlite::params![task.to_string(), retry_at],
        )
        .unwrap();
    }
    let longest = std::time::Duration::from_secs(300);
    let taken = store
        .take_batch(10, longest, false, Default::default())
        .await
        .unwrap();
    let ids: Vec<_> = taken.iter().map(|row| row.entry.task_id).collect();
    assert_eq!(
        ids,
        vec![stuck.id],
        "only the row stuck beyond any delay is due"
    );
}

// The local history (see `history.rs`).

use tasksync_proto::ipc::{HistoryEntry, HistoryOrigin};
use tasksync_proto::wire::WireTask;

/// (field, old, new, origin, conflict) of each entry, newest first.
fn changes(store: &Store, id: Uuid) -> Vec<(Field, String, String, HistoryOrigin, bool)> {
    let history = store.history(id).unwrap();
    assert_eq!(history.task_id, id);
    history
        .entries
        .into_iter()
        .map(|e: HistoryEntry| (e.field, e.old, e.new, e.origin, e.conflict))
        .collect()
}

fn entry(
    field: Field,
    old: &str,
    new: &str,
    origin: HistoryOrigin,
    conflict: bool,
) -> (Field, String, String, HistoryOrigin, bool) {
    (field, old.into(), new.into(), origin, conflict)
}

#[tokio::test]
async fn create_update_and_delete_record_each_changed_field() {
    use HistoryOrigin::Local;
    let (_dir, store) = open();
    let task = store.create(new_task("Buy milk")).await.unwrap();
    let created = changes(&store, task.id);
    // Created: the title and each field it sets, from null (not completed and not deleted are
    // no change).
    let mut expected = vec![
        entry(Field::Title, "null", "\"Buy milk\"", Local, false),
        entry(
            Field::Description,
            "null",
            "\"about Buy milk\"",
            Local,
            false,
        ),
    ];
    expected.reverse();
    assert_eq!(created, expected);
    let history = store.history(task.id).unwrap();
    assert!(history.entries.iter().all(|e| e.at == task.updated_at));

    let updated = store
        .update(
            task.id,
            TaskPatch {
                title: Some("Buy oat milk".into()),
                description: Some(None),
                completed: Some(false),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    let after_update = changes(&store, task.id);
    assert_eq!(after_update.len(), 4, "only the two fields that changed");
    assert_eq!(
        after_update[..2],
        [
            entry(
                Field::Description,
                "\"about Buy milk\"",
                "null",
                Local,
                false
            ),
            entry(
                Field::Title,
                "\"Buy milk\"",
                "\"Buy oat milk\"",
                Local,
                false
            ),
        ]
    );
    assert_eq!(
        store.history(task.id).unwrap().entries[0].at,
        updated.updated_at
    );

    let deleted = store.delete(task.id).await.unwrap();
    let history = store.history(task.id).unwrap();
    assert_eq!(history.entries.len(), 5, "a deleted task keeps its history");
    assert_eq!(history.entries[0].at, deleted.updated_at);
    assert_eq!(
        changes(&store, task.id)[0],
        entry(Field::IsDeleted, "false", "true", Local, false)
    );
}

#[tokio::test]
async fn an_update_that_changes_nothing_records_nothing() {
    let (_dir, store) = open();
    let task = store.create(new_task("Same")).await.unwrap();
    let (_, changed) = store
        .update_if(
            task.id,
            TaskPatch {
                title: Some("Same".into()),
                completed: Some(false),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    assert_eq!(store.history(task.id).unwrap().entries.len(), 2);
}

#[tokio::test]
async fn history_is_written_in_the_same_transaction_as_the_change() {
    let (_dir, store) = open();
    let task = store.create(new_task("Kept")).await.unwrap();
    raw(&store)
        .execute_batch(
            "CREATE TRIGGER refuse_history BEFORE INSERT ON history
             BEGIN SELECT RAISE(ABORT, 'history refused'); END;",
        )
        .unwrap();
    let rename = TaskPatch {
        title: Some("Lost".into()),
        ..Default::default()
    };
    assert!(store.update(task.id, rename).await.is_err());
    assert!(store.create(new_task("Never")).await.is_err());
    assert_eq!(store.get(task.id).unwrap().title, "Kept");
    assert_eq!(store.list(true, None).unwrap().len(), 1);
    assert_eq!(
        store.queue(false).unwrap().len(),
        1,
        "nothing queued either"
    );
}

#[tokio::test]
async fn pulled_changes_record_only_fields_whose_stored_value_changed() {
    use HistoryOrigin::Remote;
    let (_dir, store) = open();
    let device = Uuid::now_v7();
    // A task this device never had: the fields it sets (here the title alone), from null.
    let mut theirs = WireTask {
        id: Uuid::now_v7(),
        title: "Theirs".into(),
        description: None,
        completed: false,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        is_deleted: false,
        device_id: device,
        due: None,
        priority: None,
        project: None,
        tags: Default::default(),
        attributes: Default::default(),
    };
    store
        .store_pulled(page(vec![theirs.clone()], "1"), "pull_cursor test".into())
        .await
        .unwrap();
    let pulled = changes(&store, theirs.id);
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].0, Field::Title);
    assert!(pulled
        .iter()
        .all(|c| c.1 == "null" && c.3 == Remote && !c.4));

    // Their edit: only the completion changed.
    theirs.completed = true;
    theirs.updated_at = Timestamp::from_millis(theirs.updated_at.as_millis() + 10).unwrap();
    store
        .store_pulled(page(vec![theirs.clone()], "2"), "pull_cursor test".into())
        .await
        .unwrap();
    let after = changes(&store, theirs.id);
    assert_eq!(after.len(), 2);
    assert_eq!(
        after[0],
        entry(Field::Completed, "false", "true", Remote, false)
    );
    assert_eq!(
        store.history(theirs.id).unwrap().entries[0].at,
        theirs.updated_at
    );

    // The same version again changes nothing and records nothing.
    store
        .store_pulled(page(vec![theirs.clone()], "3"), "pull_cursor test".into())
        .await
        .unwrap();
    assert_eq!(changes(&store, theirs.id).len(), 2);
}

#[tokio::test]
async fn a_conflict_answer_records_the_lost_local_value_as_a_conflict() {
    use HistoryOrigin::{Local, Remote};
    let (_dir, store) = open();
    let task = store.create(new_task("Buy milk")).await.unwrap();
    store
        .update(
            task.id,
            TaskPatch {
                title: Some("Buy oat milk (A)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let take = || store.take_batch(10, std::time::Duration::from_secs(60), true, HashSet::new());
    let answer = |row: &QueuedOp, resolved: Option<WireTask>| {
        let at = QueueRef {
            seq: row.seq,
            task_id: row.entry.task_id,
        };
        vec![(at, ItemOutcome::Accepted { resolved })]
    };
    let create = take().await.unwrap();
    assert_eq!(create[0].entry.operation, Operation::Create);
    store.finish_batch(answer(&create[0], None)).await.unwrap();
    let update = take().await.unwrap();
    assert_eq!(update[0].entry.operation, Operation::Update);
    // The server merged: another device's newer title and completion win.
    let local = store.get(task.id).unwrap();
    let merged = WireTask {
        title: "Buy oat milk (B)".into(),
        completed: true,
        updated_at: Timestamp::from_millis(local.updated_at.as_millis() + 5).unwrap(),
        ..WireTask::from_task(&local, Uuid::now_v7())
    };
    let outcomes = answer(&update[0], Some(merged));
    let adopted = store.finish_batch(outcomes).await.unwrap();
    assert_eq!(adopted, [task.id]);
    assert_eq!(store.get(task.id).unwrap().title, "Buy oat milk (B)");
    let history = changes(&store, task.id);
    // Newest first; same `at`, so in the order recorded, reversed.
    assert_eq!(
        history[..3],
        [
            entry(Field::Completed, "false", "true", Remote, false),
            entry(
                Field::Title,
                "\"Buy oat milk (A)\"",
                "\"Buy oat milk (B)\"",
                Remote,
                true
            ),
            entry(
                Field::Title,
                "\"Buy milk\"",
                "\"Buy oat milk (A)\"",
                Local,
                false
            ),
        ]
    );
}

#[tokio::test]
async fn history_is_pruned_by_age_and_by_count_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let (old, busy) = {
        let store = Store::open(&path).unwrap();
        let old = store.create(new_task("old")).await.unwrap();
        let busy = store.create(new_task("busy")).await.unwrap();
        for i in 0..10 {
            let patch = TaskPatch {
                title: Some(format!("busy {i}")),
                ..Default::default()
            };
            store.update(busy.id, patch).await.unwrap();
        }
        // Age the old task's entries by 100 days.
        raw(&store)
            .execute(
                "UPDATE history SET at = '2000-01-01T00:00:00.000Z' WHERE task_id = ?1",
                [old.id.to_string()],
            )
            .unwrap();
        store.shut_down();
        (old, busy)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.history(old.id).unwrap().entries.len(), 2);
    assert_eq!(store.history(busy.id).unwrap().entries.len(), 12);
    let pruned = store.prune_history(90).await.unwrap();
    assert_eq!(pruned, 2, "only the old task's entries were too old");
    assert!(store.history(old.id).unwrap().entries.is_empty());
    let newest = store.history(busy.id).unwrap().entries;

    let cutoff = Timestamp::from_millis(0).unwrap();
    assert_eq!(store.prune_history_before(cutoff, 5).await.unwrap(), 7);
    let kept = store.history(busy.id).unwrap().entries;
    assert_eq!(kept, newest[..5], "the newest five are kept");
    assert_eq!(kept[0].new, "\"busy 9\"");
    // Unknown tasks are not found; known ones without entries are.
    assert!(matches!(
        store.history(Uuid::now_v7()),
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_restore_puts_back_the_earlier_value_as_a_new_edit_but_never_undeletes() {
    let (_dir, store) = open();
    let task = store.create(new_task("first")).await.unwrap();
    store
        .update(
            task.id,
            TaskPatch {
                title: Some("second".into()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    let history = store.history(task.id).unwrap();
    let edit = &history.entries[0];
    assert_eq!(
        (edit.field.clone(), edit.new.as_str()),
        (Field::Title, "\"second\"")
    );
    let (restored, changed) = store.restore(task.id, edit.entry).await.unwrap();
    assert_eq!(restored.title, "first");
    assert_eq!(changed, vec![Field::Title]);
    let queued = store.queue(false).unwrap();
    assert_eq!(
        queued.last().unwrap().entry.operation,
        Operation::Update,
        "synced like any edit"
    );

    let deleted = store.delete(task.id).await.unwrap();
    let deletion = store.history(deleted.id).unwrap().entries[0].clone();
    assert_eq!(deletion.field, Field::IsDeleted);
    let refused = store.restore(task.id, deletion.entry).await.unwrap_err();
    assert!(matches!(refused, StoreError::CannotRestore(_)), "{refused}");
    let missing = store.restore(task.id, 999_999).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
}

#[tokio::test]
async fn undo_reverts_the_last_local_change_and_an_add_by_deleting() {
    let (_dir, store) = open();
    assert!(matches!(
        store.undo(None).await,
        Err(StoreError::NotFound(_))
    ));
    let task = store.create(new_task("first")).await.unwrap();
    store
        .update(
            task.id,
            TaskPatch {
                title: Some("second".into()),
                completed: Some(true),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    let (undone, mut changed) = store.undo(None).await.unwrap();
    changed.sort();
    assert_eq!((undone.title.as_str(), undone.completed), ("first", false));
    assert_eq!(changed, vec![Field::Title, Field::Completed]);
    // A second undo reverts the first.
    let (again, _) = store.undo(Some(task.id)).await.unwrap();
    assert_eq!((again.title.as_str(), again.completed), ("second", true));

    let other = store.create(new_task("made by mistake")).await.unwrap();
    let (gone, _) = store.undo(None).await.unwrap();
    assert_eq!(gone.id, other.id);
    assert!(gone.is_deleted, "undoing an add deletes the task");
    let refused = store.undo(Some(other.id)).await.unwrap_err();
    assert!(matches!(refused, StoreError::CannotRestore(_)), "{refused}");
}

/// A page of pulled changes without conflicts, ending at `cursor`.
fn page(
    changes: Vec<tasksync_proto::wire::WireTask>,
    cursor: &str,
) -> tasksync_proto::wire::ChangesResponse {
    tasksync_proto::wire::ChangesResponse {
        changes,
        cursor: cursor.into(),
        has_more: false,
        conflicts: Vec::new(),
    }
}

/// Each queued operation keeps the values its changed fields had before it (its base, which
/// the server needs to tell a concurrent edit from a later one); a create has none.
#[tokio::test]
async fn operations_queue_the_values_they_replaced() {
    let (_dir, store) = open();
    let task = store.create(new_task("Buy milk")).await.unwrap();
    let patch = TaskPatch {
        title: Some("Buy oat milk".into()),
        add_tags: ["shop".to_string()].into(),
        ..Default::default()
    };
    store.update(task.id, patch).await.unwrap();
    store.delete(task.id).await.unwrap();
    let bases: Vec<Option<serde_json::Value>> = store
        .queue(false)
        .unwrap()
        .iter()
        .map(|row| {
            row.base
                .as_deref()
                .map(|base| serde_json::from_str(base).unwrap())
        })
        .collect();
    assert_eq!(
        bases,
        [
            None,
            Some(serde_json::json!({"title": "Buy milk", "tag:shop": false})),
            Some(serde_json::json!({"is_deleted": false})),
        ]
    );
}
