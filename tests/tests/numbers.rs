//! Working-set numbers and task references: numbers stay put, freed numbers wait for the next
//! `list`, synced tasks get the next free number, and every id `list` prints resolves.

use serde_json::Value;
use tasksync_e2e::{subdir, Daemon, Server};

fn number(task: &Value) -> Option<u64> {
    task["number"].as_u64()
}

#[test]
fn numbers_stay_put_and_freed_ones_wait_for_the_next_list() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let a = daemon.add("a");
    let b = daemon.add("b");
    let c = daemon.add("c");
    assert_eq!(
        [number(&a), number(&b), number(&c)],
        [Some(1), Some(2), Some(3)]
    );

    // Every command that takes a task takes its number.
    let done = daemon.ctl(&["--json", "done", "1"]).json();
    assert_eq!(done["id"], a["id"]);
    assert_eq!(done["completed"], true);
    assert_eq!(done["number"], Value::Null, "done tasks have no number");
    assert_eq!(daemon.show("2")["id"], b["id"], "others keep theirs");

    let d = daemon.add("d");
    assert_eq!(number(&d), Some(4), "1 is not reused before a list");
    let gone = daemon.ctl(&["show", "1"]);
    gone.assert_says(1, "number 1");

    let list = daemon.ctl(&["list"]);
    assert_eq!(list.code(), 0, "{}", list.stderr());
    let e = daemon.add("e");
    assert_eq!(
        number(&e),
        Some(1),
        "after a list, the freed number is reused"
    );

    let removed = daemon.ctl(&["--json", "rm", "3"]).json();
    assert_eq!(removed["id"], c["id"]);
    assert_eq!(removed["number"], Value::Null);
    // A filtered listing does not show the whole set: 3 stays held.
    daemon.ctl(&["list", "--search", "b"]);
    let undone = daemon
        .ctl(&["--json", "edit", a["id"].as_str().unwrap(), "--undone"])
        .json();
    assert_eq!(number(&undone), Some(5), "back in the set, a new number");

    let listed = daemon.ctl(&["--json", "list"]).json();
    let numbers: Vec<(String, Option<u64>)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["title"].as_str().unwrap().to_string(), number(t)))
        .collect();
    assert_eq!(
        numbers,
        [
            ("e".to_string(), Some(1)),
            ("b".into(), Some(2)),
            ("d".into(), Some(4)),
            ("a".into(), Some(5)),
        ],
        "by number (no due dates or priorities); c is deleted"
    );

    // Numbers survive a restart: they are stored, not computed per listing.
    let mut daemon = daemon;
    daemon.stop_with(libc::SIGTERM);
    let daemon = daemon.restart().start();
    assert_eq!(daemon.show("4")["title"], "d");
    assert_eq!(daemon.show("5")["title"], "a");
}

#[test]
fn one_to_six_digits_are_a_number_and_longer_digits_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let a = daemon.add("a");
    assert_eq!(daemon.show("000001")["id"], a["id"], "leading zeros");
    let prefix = daemon.ctl(&["--json", "show", "0000001"]);
    assert_eq!(prefix.code(), 1);
    prefix.assert_json_error("not_found", "no task matches 0000001");
    let none = daemon.ctl(&["--json", "done", "42"]).json_error();
    assert_eq!(none["error"]["code"], "not_found");
}

#[test]
fn tasks_arriving_by_sync_get_the_next_free_number() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let laptop = Daemon::start_manual_sync(&subdir(&dir, "laptop"), &server.url());
    let phone = Daemon::start_manual_sync(&subdir(&dir, "phone"), &server.url());

    let mine = phone.add("made on the phone");
    assert_eq!(number(&mine), Some(1));
    laptop.add("one");
    laptop.add("two");
    let done = laptop.add("done before it synced");
    laptop.ctl(&["done", done["id"].as_str().unwrap()]);
    assert_eq!(laptop.ctl(&["sync"]).code(), 0);
    assert_eq!(phone.ctl(&["sync"]).code(), 0);

    // --all: the done task too (plain `list` shows open tasks only).
    let listed = phone.ctl(&["--json", "list", "--all"]).json();
    let mut numbers: Vec<(String, Option<u64>)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["title"].as_str().unwrap().to_string(), number(t)))
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        [
            ("done before it synced".to_string(), None),
            ("made on the phone".into(), Some(1)),
            ("one".into(), Some(2)),
            ("two".into(), Some(3)),
        ]
    );

    // Done elsewhere: the task leaves the set here too, and its number is held until a list.
    laptop.ctl(&["done", "1"]);
    assert_eq!(laptop.ctl(&["sync"]).code(), 0);
    assert_eq!(phone.ctl(&["sync"]).code(), 0);
    let one = phone.ctl(&["--json", "show", "2"]);
    assert_eq!(one.code(), 1, "number 2 left with the task");
    let fresh = phone.add("fresh");
    assert_eq!(number(&fresh), Some(4));
}

/// Ids made in the same millisecond share long prefixes; deleting some of them must not make
/// the short ids `list` prints ambiguous.
#[test]
fn short_ids_that_list_prints_always_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let ids: Vec<String> = tasksync_e2e::block_on(async {
        let mut client = tasksync_proto::Client::connect(&daemon.socket, "filler")
            .await
            .unwrap();
        for i in 0..30 {
            let command = tasksync_proto::Command::CreateTask(tasksync_proto::NewTask {
                title: format!("task {i}"),
                description: None,
                id: None,
                ..Default::default()
            });
            client.send(command).await.unwrap();
        }
        let mut ids = Vec::new();
        for _ in 0..30 {
            match client.receive_response().await.unwrap().1 {
                Ok(tasksync_proto::Reply::Task(task)) => ids.push(task.id.to_string()),
                other => panic!("{other:?}"),
            }
        }
        ids
    });
    // Delete every third task, complete every other of the rest.
    for (i, id) in ids.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(daemon.ctl(&["rm", id]).code(), 0);
        } else if i % 2 == 0 {
            assert_eq!(daemon.ctl(&["done", id]).code(), 0);
        }
    }

    for args in [&["list"][..], &["list", "--all"], &["list", "--done"]] {
        let list = daemon.ctl(args);
        assert_eq!(list.code(), 0, "{}", list.stderr());
        let rows: Vec<String> = list.stdout().lines().skip(1).map(String::from).collect();
        assert!(rows.len() > 2, "{args:?}: {}", list.stdout());
        for row in &rows[..rows.len() - 1] {
            let reference = row.split_whitespace().next().unwrap();
            let title = row
                .split("  ")
                .last()
                .unwrap()
                .trim_end_matches(" (deleted)");
            let shown = daemon.show(reference);
            assert_eq!(shown["title"], title, "{args:?}: {reference} in {row:?}");
        }
    }
}

#[test]
fn a_prefix_names_a_live_task_before_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    daemon.stop_with(libc::SIGTERM);
    let db = rusqlite::Connection::open(&daemon.db).unwrap();
    for (id, deleted) in [
        ("aaaaaaaa-0000-7000-8000-000000000001", false),
        ("aaaaaaaa-0000-7000-8000-000000000002", true),
        ("aaaaaaaa-0000-7000-8000-000000000003", true),
        ("bbbbbbbb-0000-7000-8000-000000000001", true),
        ("bbbbbbbb-0000-7000-8000-000000000002", true),
    ] {
        db.execute(
            "INSERT INTO tasks (id, title, created_at, updated_at, is_deleted)
             VALUES (?1, ?1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', ?2)",
            rusqlite::params![id, deleted],
        )
        .unwrap();
    }
    drop(db);
    let daemon = daemon.restart().start();
    let live = "aaaaaaaa-0000-7000-8000-000000000001";
    assert_eq!(daemon.show("aaaaaaaa")["id"], live);
    assert_eq!(
        daemon.show("aaaaaaaa-0000-7000-8000-0000000000")["id"],
        live
    );
    assert_eq!(
        daemon.show("aaaaaaaa-0000-7000-8000-000000000003")["is_deleted"],
        true,
        "a full id still names a deleted task"
    );
    let ambiguous = daemon.ctl(&["--json", "show", "bbbbbbbb"]).json_error();
    assert_eq!(ambiguous["error"]["code"], "ambiguous");
    assert_eq!(daemon.show("1")["id"], live, "the live task got number 1");
}
