//! The storage conformance suite: every test runs against SQLite and against PostgreSQL
//! (a fresh database per test, see `tasksync_e2e::pg`), so both backends behave the same.

use std::collections::HashSet;
use std::sync::Arc;

use tasksync_core::ClockLimit;
use tasksync_e2e::pg::TestDatabase;
use tasksync_proto::wire::{BatchItem, Field, ItemStatus, Operation, WireTask};
use tasksync_proto::Timestamp;
use tasksync_server::storage::Durability;
use tasksync_server::storage::{self, BatchInput, Storage, StorageConfig, StorageError, UserId};
use uuid::Uuid;

/// A storage under test and what keeps it alive.
struct Subject {
    storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage::open(&StorageConfig::Sqlite {
        path: dir.path().join("s.db"),
        durability: Durability::Normal,
    })
    .await
    .unwrap();
    Subject {
        storage,
        _dir: Some(dir),
        _db: None,
    }
}

async fn postgres() -> Option<Subject> {
    let db = TestDatabase::create()?;
    let storage = storage::open(&StorageConfig::Postgres {
        url: db.url.clone(),
    })
    .await
    .unwrap();
    Some(Subject {
        storage,
        _dir: None,
        _db: Some(db),
    })
}

/// Runs each named test function on both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let subject = super::sqlite().await;
                    super::$name(subject.storage.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(subject) = super::postgres().await else { return };
                    super::$name(subject.storage.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    users_are_added_listed_rotated_and_removed,
    batches_apply_once_and_pages_follow_the_cursor,
    users_are_isolated_even_with_the_same_ids,
    field_wise_lww_conflicts_like_one_server,
    old_op_ids_are_pruned,
    concurrent_batches_of_one_user_never_skip_a_change,
    a_batch_checks_its_token_in_its_own_transaction,
    tags_and_attributes_merge_per_key_and_survive_storage,
    concurrent_edits_are_kept_in_the_feed_beside_the_tasks,
);

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms).unwrap()
}

fn op(task: Uuid, operation: Operation, fields: &[Field], ms: i64, title: &str) -> BatchItem {
    BatchItem {
        id: Uuid::now_v7(),
        task_id: task,
        operation,
        changed_fields: Some(fields.to_vec()),
        data: WireTask {
            id: task,
            title: title.into(),
            description: Some("d".into()),
            completed: false,
            created_at: at(0),
            updated_at: at(ms),
            is_deleted: operation == Operation::Delete,
            device_id: Uuid::nil(),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        },
        created_at: at(ms),
        retry_count: 0,
        base: Default::default(),
    }
}

fn create(task: Uuid, title: &str) -> BatchItem {
    op(task, Operation::Create, &Field::ALL, 0, title)
}

fn input(device: Uuid, items: Vec<BatchItem>) -> BatchInput {
    BatchInput {
        device_id: device,
        items,
        clock: ClockLimit::new(Timestamp::now(), 600),
    }
}

async fn user(storage: &dyn Storage, name: &str) -> UserId {
    storage
        .add_user(name, tasksync_server::auth::digest(name.as_bytes()))
        .await
        .unwrap();
    storage
        .user_by_token(tasksync_server::auth::digest(name.as_bytes()))
        .await
        .unwrap()
        .unwrap()
        .0
}

async fn users_are_added_listed_rotated_and_removed(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    storage.ping().await.unwrap();
    assert!(!s.requires_token().await.unwrap());
    let default = s.ensure_user("default").await.unwrap();
    assert_eq!(s.ensure_user("default").await.unwrap(), default);
    assert!(!s.requires_token().await.unwrap(), "default has no token");

    let alice = user(s, "alice").await;
    assert_ne!(alice, default);
    assert!(s.requires_token().await.unwrap());
    assert_eq!(
        s.add_user("alice", [9; 32]).await,
        Err(StorageError::UserExists("alice".into()))
    );
    let names: Vec<_> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.has_token))
        .collect();
    assert_eq!(
        names,
        vec![("alice".into(), true), ("default".into(), false)]
    );

    // Rotation: the old token names nobody, the new one names alice; the credentials version
    // moves (held requests check their token again), and a failed rotation leaves it.
    let old = tasksync_server::auth::digest(b"alice");
    let version = s.credentials_version().await.unwrap();
    assert!(s.set_token("alice", [7; 32]).await.unwrap());
    let rotated = s.credentials_version().await.unwrap();
    assert_ne!(rotated, version);
    assert_eq!(s.user_by_token(old).await.unwrap(), None);
    assert_eq!(
        s.user_by_token([7; 32]).await.unwrap(),
        Some((alice, [7; 32]))
    );
    assert!(!s.set_token("nobody", [1; 32]).await.unwrap());
    assert_eq!(s.credentials_version().await.unwrap(), rotated);

    // Removal deletes the tasks; the removed user cannot push any more.
    let task = Uuid::now_v7();
    s.apply_batch(alice, input(Uuid::now_v7(), vec![create(task, "a")]))
        .await
        .unwrap();
    assert!(s.remove_user("alice").await.unwrap());
    let removed = s.credentials_version().await.unwrap();
    assert_ne!(removed, rotated);
    assert!(!s.remove_user("alice").await.unwrap());
    assert_eq!(s.credentials_version().await.unwrap(), removed);
    assert_eq!(s.user_by_token([7; 32]).await.unwrap(), None);
    assert!(
        s.requires_token().await.unwrap(),
        "removing the last user does not open the server"
    );
    assert!(s.all_tasks(alice).await.unwrap().is_empty());
    assert_eq!(
        s.apply_batch(alice, input(Uuid::now_v7(), vec![create(task, "a")]))
            .await,
        Err(StorageError::NoSuchUser)
    );
}

async fn batches_apply_once_and_pages_follow_the_cursor(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let u = user(s, "u").await;
    let device = Uuid::now_v7();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let items: Vec<BatchItem> = ids.iter().map(|id| create(*id, "t")).collect();
    let first = s
        .apply_batch(u, input(device, items.clone()))
        .await
        .unwrap();
    assert!(first.changed);
    assert!(first
        .response
        .processed_items
        .iter()
        .all(|a| a.status == ItemStatus::Success));
    let cursor = s.changes(u, 0, 100).await.unwrap().cursor;
    // The same batch again: the same answers, nothing new to pull.
    let again = s.apply_batch(u, input(device, items)).await.unwrap();
    assert_eq!(again.response, first.response);
    assert!(!again.changed);
    assert_eq!(s.changes(u, 0, 100).await.unwrap().cursor, cursor);

    // Task 0 changes again: it moves to the end of the change order.
    s.apply_batch(
        u,
        input(
            device,
            vec![op(ids[0], Operation::Update, &[Field::Title], 5, "again")],
        ),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = s.changes(u, cursor, 2).await.unwrap();
        seen.extend(page.changes.iter().map(|t| t.id));
        assert!(page.cursor > cursor || page.changes.is_empty());
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    let mut expected = ids[1..].to_vec();
    expected.push(ids[0]);
    assert_eq!(seen, expected);
    let empty = s.changes(u, cursor, 2).await.unwrap();
    assert!(empty.changes.is_empty() && !empty.has_more && !empty.cursor_unknown);
    assert_eq!(empty.cursor, cursor);
    // A cursor beyond the latest change was never issued (a restore from an older backup).
    let ahead = s.changes(u, cursor + 1, 2).await.unwrap();
    assert!(ahead.cursor_unknown && ahead.changes.is_empty());
    assert_eq!(s.all_tasks(u).await.unwrap().len(), 5);
}

async fn users_are_isolated_even_with_the_same_ids(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let (alice, bob) = (user(s, "alice").await, user(s, "bob").await);
    let task = Uuid::now_v7();
    let item = create(task, "alice's");
    let a = s
        .apply_batch(alice, input(Uuid::now_v7(), vec![item.clone()]))
        .await
        .unwrap();
    assert_eq!(a.response.processed_items[0].status, ItemStatus::Success);
    // Bob sends the very same op id and task id: his own, new task; no replayed answer.
    let mut bobs = item.clone();
    bobs.data.title = "bob's".into();
    let b = s
        .apply_batch(bob, input(Uuid::now_v7(), vec![bobs]))
        .await
        .unwrap();
    assert!(b.changed, "bob's op must apply, not replay alice's answer");
    assert_eq!(s.all_tasks(alice).await.unwrap()[0].title, "alice's");
    assert_eq!(s.all_tasks(bob).await.unwrap()[0].title, "bob's");
    // Cursors are per user: bob's change does not move alice's cursor.
    let alice_page = s.changes(alice, 0, 10).await.unwrap();
    let bob_page = s.changes(bob, 0, 10).await.unwrap();
    assert_eq!(alice_page.changes.len(), 1);
    assert_eq!(bob_page.changes.len(), 1);
    assert_eq!(alice_page.cursor, 1);
    assert_eq!(bob_page.cursor, 1);
    assert!(s
        .changes(alice, alice_page.cursor, 10)
        .await
        .unwrap()
        .changes
        .is_empty());
    // Removing bob leaves alice alone.
    assert!(s.remove_user("bob").await.unwrap());
    assert_eq!(s.all_tasks(alice).await.unwrap().len(), 1);
}

async fn field_wise_lww_conflicts_like_one_server(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let u = user(s, "u").await;
    let (laptop, phone) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let task = Uuid::now_v7();
    s.apply_batch(u, input(laptop, vec![create(task, "t")]))
        .await
        .unwrap();
    let newer = op(task, Operation::Update, &[Field::Title], 3_000, "phone");
    s.apply_batch(u, input(phone, vec![newer])).await.unwrap();
    let mut done = op(
        task,
        Operation::Update,
        &[Field::Completed],
        2_000,
        "laptop",
    );
    done.data.completed = true;
    let older_title = op(task, Operation::Update, &[Field::Title], 2_500, "laptop");
    let answers = s
        .apply_batch(u, input(laptop, vec![done, older_title]))
        .await
        .unwrap()
        .response
        .processed_items;
    assert_eq!(answers[0].status, ItemStatus::Success);
    assert_eq!(answers[1].status, ItemStatus::Conflict);
    let resolved = answers[1].resolved_data.as_ref().unwrap();
    assert_eq!(resolved.title, "phone");
    assert!(resolved.completed);
    assert_eq!(resolved.updated_at, at(3_000));
    let stored = &s.all_tasks(u).await.unwrap()[0];
    assert_eq!(stored, resolved);
}

/// Two devices edit one title offline from the same value: the second push records the
/// conflict in the feed under its own number, even when the task does not change, and pages
/// carry it in number order beside the tasks.
async fn concurrent_edits_are_kept_in_the_feed_beside_the_tasks(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let u = user(s, "u").await;
    let (laptop, phone) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let task = Uuid::now_v7();
    s.apply_batch(u, input(laptop, vec![create(task, "t")]))
        .await
        .unwrap();
    let based = |ms: i64, title: &str| {
        let mut edit = op(task, Operation::Update, &[Field::Title], ms, title);
        edit.base = [(Field::Title, serde_json::json!("t"))].into();
        edit
    };
    s.apply_batch(u, input(phone, vec![based(3_000, "phone")]))
        .await
        .unwrap();
    let outcome = s
        .apply_batch(u, input(laptop, vec![based(2_000, "laptop")]))
        .await
        .unwrap();
    assert!(outcome.changed, "the conflict is news for live pulls");
    assert_eq!(
        outcome.response.processed_items[0].status,
        ItemStatus::Conflict
    );
    let page = s.changes(u, 0, 10).await.unwrap();
    assert_eq!(
        (page.changes.len(), page.cursor, page.has_more),
        (1, 3, false)
    );
    let [conflict] = &page.conflicts[..] else {
        panic!("{page:?}")
    };
    assert_eq!((conflict.task_id, &conflict.field), (task, &Field::Title));
    assert_eq!(
        (&conflict.kept, conflict.kept_device),
        (&serde_json::json!("phone"), phone)
    );
    assert_eq!(
        (&conflict.lost, conflict.lost_device),
        (&serde_json::json!("laptop"), laptop)
    );
    assert_eq!(conflict.pushed_by, laptop);
    // A page of one: the task (number 2), then the conflict alone (number 3).
    let first = s.changes(u, 0, 1).await.unwrap();
    assert_eq!(
        (first.changes.len(), first.conflicts.len(), first.has_more),
        (1, 0, true)
    );
    let second = s.changes(u, first.cursor, 1).await.unwrap();
    assert_eq!(
        (second.changes.len(), second.conflicts.len(), second.cursor),
        (0, 1, 3)
    );
    assert!(!second.has_more);
}

/// Two devices add different tags and attributes to one task offline: both survive, on every
/// backend, and the stored clocks keep deciding later writes after a reload.
async fn tags_and_attributes_merge_per_key_and_survive_storage(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let u = user(s, "u").await;
    let (laptop, phone) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let task = Uuid::now_v7();
    let mut first = create(task, "t");
    first.data.due = Some(at(86_400_000));
    first.data.priority = Some(tasksync_proto::Priority::H);
    first.data.project = Some("home.garden".into());
    first.data.tags = ["shared".to_string()].into();
    first.changed_fields = Some(Field::all_of(&first.data));
    s.apply_batch(u, input(laptop, vec![first])).await.unwrap();

    let mut on_laptop = op(
        task,
        Operation::Update,
        &[Field::Tag("home".into())],
        2_000,
        "t",
    );
    on_laptop.data.tags = ["home".to_string(), "shared".to_string()].into();
    on_laptop.data.attributes = [("app.colour".to_string(), "red".to_string())].into();
    on_laptop.changed_fields = Some(vec![
        Field::Tag("home".into()),
        Field::Attribute("app.colour".into()),
    ]);
    let mut on_phone = op(task, Operation::Update, &[], 1_500, "t");
    on_phone.data.tags = ["shop".to_string()].into();
    on_phone.data.attributes = [("app.size".to_string(), "L".to_string())].into();
    on_phone.changed_fields = Some(vec![
        Field::Tag("shop".into()),
        Field::Tag("shared".into()),
        Field::Attribute("app.size".into()),
    ]);
    s.apply_batch(u, input(laptop, vec![on_laptop]))
        .await
        .unwrap();
    let answers = s
        .apply_batch(u, input(phone, vec![on_phone]))
        .await
        .unwrap()
        .response
        .processed_items;
    assert_eq!(answers[0].status, ItemStatus::Success, "{answers:?}");
    let stored = &s.all_tasks(u).await.unwrap()[0];
    assert_eq!(
        stored.tags,
        ["home".to_string(), "shop".to_string()].into(),
        "both adds kept, the phone's removal of `shared` applied"
    );
    assert_eq!(stored.attributes.len(), 2);
    assert_eq!(stored.project.as_deref(), Some("home.garden"));
    assert_eq!(stored.priority, Some(tasksync_proto::Priority::H));
    assert_eq!(stored.due, Some(at(86_400_000)));

    // An older re-add of `shared` loses to the phone's removal, read back from storage.
    let mut stale = op(
        task,
        Operation::Update,
        &[Field::Tag("shared".into())],
        1_000,
        "t",
    );
    stale.data.tags = ["shared".to_string()].into();
    let answers = s
        .apply_batch(u, input(laptop, vec![stale]))
        .await
        .unwrap()
        .response
        .processed_items;
    assert_eq!(answers[0].status, ItemStatus::Conflict);
    assert!(!answers[0]
        .resolved_data
        .as_ref()
        .unwrap()
        .tags
        .contains("shared"));
    let page = s.changes(u, 0, 10).await.unwrap();
    assert_eq!(page.changes.last().unwrap(), stored);
}

async fn old_op_ids_are_pruned(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let u = user(s, "u").await;
    let item = create(Uuid::now_v7(), "t");
    let device = Uuid::now_v7();
    s.apply_batch(u, input(device, vec![item.clone()]))
        .await
        .unwrap();
    let past = Timestamp::from_millis(Timestamp::now().as_millis() - 60_000).unwrap();
    assert_eq!(s.prune_applied_ops(past).await.unwrap(), 0);
    let future = Timestamp::from_millis(Timestamp::now().as_millis() + 60_000).unwrap();
    assert_eq!(s.prune_applied_ops(future).await.unwrap(), 1);
    // A resend after pruning is harmless: its fields are not newer, so nothing changes.
    let cursor = s.changes(u, 0, 10).await.unwrap().cursor;
    let resent = s.apply_batch(u, input(device, vec![item])).await.unwrap();
    assert!(!resent.changed);
    assert_eq!(s.changes(u, 0, 10).await.unwrap().cursor, cursor);
}

async fn concurrent_batches_of_one_user_never_skip_a_change(storage: Arc<dyn Storage>) {
    const WRITERS: usize = 6;
    const BATCHES: usize = 10;
    let u = user(storage.as_ref(), "u").await;
    let shared = Uuid::now_v7();
    storage
        .apply_batch(u, input(Uuid::now_v7(), vec![create(shared, "t")]))
        .await
        .unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let device = Uuid::now_v7();
                let mut created = Vec::new();
                for b in 0..BATCHES {
                    let task = Uuid::now_v7();
                    created.push(task);
                    let ms = 10 + (b * WRITERS + w) as i64;
                    let edit = op(
                        shared,
                        Operation::Update,
                        &[Field::Title],
                        ms,
                        &format!("w{w}b{b}"),
                    );
                    let answers = storage
                        .apply_batch(u, input(device, vec![create(task, "n"), edit]))
                        .await
                        .unwrap()
                        .response
                        .processed_items;
                    assert_eq!(answers[0].status, ItemStatus::Success);
                    assert_ne!(answers[1].status, ItemStatus::Error);
                }
                created
            })
        })
        .collect();
    // A reader follows the cursor while the writers commit.
    let reader = {
        let storage = storage.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut cursor = 0;
            for _ in 0..2_000 {
                let page = storage.changes(u, cursor, 7).await.unwrap();
                seen.extend(page.changes.iter().map(|t| t.id));
                cursor = page.cursor;
                if seen.len() == WRITERS * BATCHES + 1 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            (seen, cursor)
        })
    };
    let mut all = HashSet::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    let (mut seen, mut cursor) = reader.await.unwrap();
    // Drain what the reader had not reached yet; it must not have skipped anything.
    loop {
        let page = storage.changes(u, cursor, 100).await.unwrap();
        seen.extend(page.changes.iter().map(|t| t.id));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    all.insert(shared);
    assert_eq!(seen, all, "a cursor skipped a change");
    let tasks = storage.all_tasks(u).await.unwrap();
    assert_eq!(tasks.len(), WRITERS * BATCHES + 1);
    let last = tasks.iter().find(|t| t.id == shared).unwrap();
    let latest = 10 + (WRITERS * BATCHES - 1) as i64;
    assert_eq!(last.updated_at, at(latest), "the latest edit wins");
}

/// `apply_batch_as` with a token digest applies nothing once that digest is no longer the
/// user's (rotated, removed, or never), so a cached token owner cannot write on its own.
async fn a_batch_checks_its_token_in_its_own_transaction(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let first = tasksync_server::auth::digest(b"first");
    let second = tasksync_server::auth::digest(b"second");
    s.add_user("alice", first).await.unwrap();
    let (alice, _) = s.user_by_token(first).await.unwrap().unwrap();
    let device = Uuid::now_v7();
    let applied = s
        .apply_batch_as(
            alice,
            Some(first),
            input(device, vec![create(Uuid::now_v7(), "a")]),
        )
        .await
        .unwrap();
    assert!(applied.changed);

    // A digest that is not the user's: refused, nothing written, the op id not answered.
    let item = create(Uuid::now_v7(), "b");
    assert_eq!(
        s.apply_batch_as(alice, Some(second), input(device, vec![item.clone()]))
            .await,
        Err(StorageError::NoSuchUser)
    );
    assert_eq!(s.all_tasks(alice).await.unwrap().len(), 1);

    // Rotated: the old digest is refused from the moment `set_token` returned.
    assert!(s.set_token("alice", second).await.unwrap());
    assert_eq!(
        s.apply_batch_as(alice, Some(first), input(device, vec![item.clone()]))
            .await,
        Err(StorageError::NoSuchUser)
    );
    assert_eq!(s.all_tasks(alice).await.unwrap().len(), 1);
    let applied = s
        .apply_batch_as(alice, Some(second), input(device, vec![item]))
        .await
        .unwrap();
    assert!(applied.changed, "the refused op id was never recorded");
    assert_eq!(
        applied.response.processed_items[0].status,
        ItemStatus::Success
    );

    // Removed: refused with its last token too.
    assert!(s.remove_user("alice").await.unwrap());
    assert_eq!(
        s.apply_batch_as(
            alice,
            Some(second),
            input(device, vec![create(Uuid::now_v7(), "c")])
        )
        .await,
        Err(StorageError::NoSuchUser)
    );
}

/// A PostgreSQL database of schema version 1 (a B-tree on `applied_ops.applied_at`) is
/// migrated to version 2 (a BRIN index) and on to today's schema on open, keeping its rows;
/// pruning and the conflicts of the feed work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_1_migrates_to_a_brin_index_and_the_tables_of_today() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let config = StorageConfig::Postgres {
        url: db.url.clone(),
    };
    let u = {
        let s = storage::open(&config).await.unwrap();
        let u = user(s.as_ref(), "u").await;
        s.apply_batch(u, input(Uuid::now_v7(), vec![create(Uuid::now_v7(), "t")]))
            .await
            .unwrap();
        u
    };
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Back to what a version 1 server left.
    client
        .batch_execute(
            "DROP INDEX applied_ops_by_time;
             CREATE INDEX applied_ops_by_time ON applied_ops (applied_at);
             ALTER TABLE tasks DROP COLUMN extras;
             ALTER TABLE tasks DROP COLUMN other_clocks;
             DROP TABLE conflicts;
             UPDATE tasksync_schema SET version = 1;",
        )
        .await
        .unwrap();
    let access_method = "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam \
                         WHERE c.relname = 'applied_ops_by_time'";
    let method: String = client.query_one(access_method, &[]).await.unwrap().get(0);
    assert_eq!(method, "btree");

    let s = storage::open(&config).await.unwrap();
    let method: String = client.query_one(access_method, &[]).await.unwrap().get(0);
    assert_eq!(method, "brin");
    let version: i64 = client
        .query_one("SELECT version FROM tasksync_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        version, 4,
        "and on to version 3, which adds the columns of the new fields, and 4 (conflicts)"
    );
    let tasks = s.all_tasks(u).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(!tasks[0].has_v2_fields());
    let future = Timestamp::from_millis(Timestamp::now().as_millis() + 60_000).unwrap();
    assert_eq!(s.prune_applied_ops(future).await.unwrap(), 1);
    assert!(s.changes(u, 0, 10).await.unwrap().conflicts.is_empty());
}

/// Batches cancelled while they wait (a client that hung up) leave no connection inside a
/// transaction: each rolls back or is closed, and later batches commit as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancelled_batches_leave_no_transaction_open() {
    let Some(subject) = postgres().await else {
        return;
    };
    let s = subject.storage.clone();
    let u = user(s.as_ref(), "u").await;
    let url = subject._db.as_ref().map(|db| db.url.clone()).unwrap();
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Hold the user's lock, so that batches stop inside their transaction, then cancel them.
    let holder = client.transaction().await.unwrap();
    holder
        .execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&u])
        .await
        .unwrap();
    for _ in 0..3 {
        let s = s.clone();
        let batch = input(Uuid::now_v7(), vec![create(Uuid::now_v7(), "cancelled")]);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), async move {
            s.apply_batch(u, batch).await
        })
        .await;
        assert!(waited.is_err(), "the batch waits for the lock");
    }
    holder.commit().await.unwrap();
    let open = "SELECT count(*) FROM pg_stat_activity \
                WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n: i64 = client.query_one(open, &[]).await.unwrap().get(0);
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} connections stay inside a transaction"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        s.all_tasks(u).await.unwrap().is_empty(),
        "nothing cancelled was applied"
    );
    // The pool still works, and what it commits is committed (seen from elsewhere).
    for _ in 0..20 {
        let task = Uuid::now_v7();
        let outcome = s
            .apply_batch(u, input(Uuid::now_v7(), vec![create(task, "after")]))
            .await
            .unwrap();
        assert!(outcome.changed);
        let seen: i64 = client
            .query_one("SELECT count(*) FROM tasks WHERE id = $1", &[&task])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 1);
    }
    assert_eq!(s.changes(u, 0, 100).await.unwrap().changes.len(), 20);
}
