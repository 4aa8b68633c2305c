//! The sync server on PostgreSQL, end to end with the real binaries: several server
//! processes on one database, users, revoked tokens, and a server killed mid-flush.
//! Each test gets its own database (`tasksync_e2e::pg`); without PostgreSQL they skip loudly
//! (and fail under `CI=true`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tasksync_e2e::pg::TestDatabase;
use tasksync_e2e::{
    add_user, check_revocation_reaches_held_pulls, http, push_task, server_cli, subdir, wait_until,
    Daemon, Server,
};

/// `taskctl --json sync`, which must succeed: its report.
fn sync(daemon: &Daemon) -> Value {
    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    report
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn two_daemons_through_two_server_processes_converge_and_pulls_wake_across_processes() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = Server::start_pg(&subdir(&dir, "s1"), &db.url);
    let two = Server::start_pg(&subdir(&dir, "s2"), &db.url);
    let laptop = Daemon::start_manual_sync(&subdir(&dir, "laptop"), &one.url());
    let phone = Daemon::start_manual_sync(&subdir(&dir, "phone"), &two.url());

    // A live pull waits on process two; the laptop pushes through process one.
    let cursor = http::get(&two.addr, "/api/changes").json()["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let two_addr = two.addr.clone();
    let started = Instant::now();
    let pull = std::thread::spawn(move || {
        http::get(&two_addr, &format!("/api/changes?since={cursor}&wait=30"))
    });
    let first = laptop.add_id("written on the laptop");
    sync(&laptop);
    let woken = pull.join().unwrap();
    assert_eq!(woken.status, 200);
    let changes = woken.json()["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["id"], first.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the pull on process two woke for a commit through process one"
    );

    // Edits on both sides, each through its own process.
    for i in 0..5 {
        laptop.add_id(&format!("laptop {i}"));
        phone.add_id(&format!("phone {i}"));
    }
    sync(&laptop);
    sync(&phone);
    phone.ctl(&["done", &first]);
    laptop.ctl(&["edit", &first, "--title", "renamed on the laptop"]);
    sync(&phone);
    sync(&laptop);
    sync(&phone);

    let on_one = one.replica(None);
    assert_eq!(on_one.len(), 11);
    assert_eq!(on_one, two.replica(None), "one database, one truth");
    assert_eq!(laptop.replica(), on_one);
    assert_eq!(phone.replica(), on_one);
    let merged = on_one.iter().find(|t| t["id"] == first.as_str()).unwrap();
    assert_eq!(merged["title"], "renamed on the laptop");
    assert_eq!(merged["completed"], true, "both field edits survive");
}

#[test]
fn three_users_are_isolated() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let storage = ["--database-url", db.url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_pg(&subdir(&dir, "s"), &db.url);
    // Users added while the server runs work at once.
    let names = ["alice", "bob", "carol"];
    let tokens: Vec<String> = names.iter().map(|n| add_user(&storage, n)).collect();
    let (code, listed, _) = server_cli(&[&["user", "list"][..], &storage].concat());
    assert_eq!(code, Some(0));
    let listed: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(listed, names);
    // With users, the server is no longer open.
    assert_eq!(http::get(&server.addr, "/api/tasks").status, 401);
    assert_eq!(http::get(&server.addr, "/api/health").status, 200);

    let daemons: Vec<Daemon> = names
        .iter()
        .zip(&tokens)
        .map(|(name, token)| {
            Daemon::builder(&subdir(&dir, name))
                .server(&server.url())
                .manual_sync()
                .token(token)
                .start()
        })
        .collect();
    for (daemon, name) in daemons.iter().zip(names) {
        daemon.add_id(&format!("{name}'s first"));
        daemon.add_id(&format!("{name}'s second"));
        sync(daemon);
    }
    for daemon in &daemons {
        sync(daemon);
    }
    for ((daemon, name), token) in daemons.iter().zip(names).zip(&tokens) {
        let mine = server.replica(Some(token));
        assert_eq!(mine.len(), 2, "{name}");
        assert!(mine
            .iter()
            .all(|t| t["title"].as_str().unwrap().starts_with(name)));
        assert_eq!(daemon.replica(), mine, "{name} pulled only their own");
        // Cursors are per user: each user's feed numbers only their own changes.
        let feed = http::request(
            &server.addr,
            "GET",
            "/api/changes",
            &[("Authorization", &bearer(token))],
            b"",
        )
        .json();
        assert_eq!(feed["cursor"], "2", "{name}: {feed}");
    }
    // Another user's task id is unknown to alice, even by id: her task list has only hers,
    // and a change of bob's task does not reach her feed.
    let bobs_task = server.replica(Some(&tokens[1]))[0]["id"].clone();
    let alice_ids: Vec<Value> = server
        .replica(Some(&tokens[0]))
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert!(!alice_ids.contains(&bobs_task));
}

#[test]
fn a_rotated_or_removed_users_token_gets_401_at_once() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let storage = ["--database-url", db.url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_pg(&subdir(&dir, "s"), &db.url);
    let old = add_user(&storage, "dana");
    let tasks = |token: &str| {
        http::request(
            &server.addr,
            "GET",
            "/api/tasks",
            &[("Authorization", &bearer(token))],
            b"",
        )
        .status
    };
    assert_eq!(tasks(&old), 200);
    let daemon = Daemon::builder(&subdir(&dir, "d"))
        .server(&server.url())
        .manual_sync()
        .token(&old)
        .start();
    daemon.add_id("before rotation");
    sync(&daemon);

    let (code, new, stderr) = server_cli(&[&["user", "token", "dana"][..], &storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    let new = new.trim().to_string();
    assert_ne!(new, old);
    assert_eq!(
        tasks(&old),
        401,
        "the old token is revoked on the running server"
    );
    assert_eq!(tasks(&new), 200);
    assert_eq!(server.tasks_of(Some(&new)).len(), 1);
    // The daemon with the old token is refused; its operation stays queued.
    daemon.add_id("after rotation");
    let run = daemon.ctl(&["--json", "sync"]);
    assert_ne!(run.code(), 0, "a refused token is not a successful sync");
    daemon.wait_for_state("unauthorized");
    assert_eq!(daemon.status()["pending"], 1);

    let (code, _, stderr) = server_cli(&[&["user", "remove", "dana"][..], &storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        tasks(&new),
        401,
        "a removed user's token is refused at once"
    );
    let (code, _, stderr) = server_cli(&[&["user", "remove", "dana"][..], &storage].concat());
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no user named dana"), "{stderr}");
}

#[test]
fn revoking_a_token_answers_its_held_pulls_401_on_every_process() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let storage = ["--database-url", db.url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let one = Server::start_pg(&subdir(&dir, "one"), &db.url);
    let two = Server::start_pg(&subdir(&dir, "two"), &db.url);
    check_revocation_reaches_held_pulls(&one, &one, &storage, "carol");
    check_revocation_reaches_held_pulls(&two, &one, &storage, "erin");
}

#[test]
fn a_push_with_a_just_revoked_token_is_refused_by_every_process_that_cached_it() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let storage = ["--database-url", db.url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        Server::start_pg(&subdir(&dir, "one"), &db.url),
        Server::start_pg(&subdir(&dir, "two"), &db.url),
    ];
    let old = add_user(&storage, "fay");
    // Twice on each process: the second push takes the token's owner from its cache.
    for server in &servers {
        for _ in 0..2 {
            assert_eq!(push_task(&server.addr, &old, "cached"), 200);
        }
    }
    let (code, new, stderr) = server_cli(&[&["user", "token", "fay"][..], &storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    let new = new.trim().to_string();
    // At once, before either process may have heard of the rotation.
    for server in &servers {
        assert_eq!(push_task(&server.addr, &old, "revoked"), 401);
    }
    for server in &servers {
        for _ in 0..2 {
            assert_eq!(push_task(&server.addr, &new, "new token"), 200);
        }
    }
    assert_eq!(servers[0].tasks_of(Some(&new)).len(), 8);
    let (code, _, stderr) = server_cli(&[&["user", "remove", "fay"][..], &storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    for server in &servers {
        assert_eq!(push_task(&server.addr, &new, "removed"), 401);
    }
}

#[test]
fn killing_a_server_process_mid_flush_loses_nothing_and_applies_nothing_twice() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start_pg(&subdir(&dir, "s1"), &db.url);
    let addr = first.addr.clone();
    let url = first.url();
    let mut daemon = Daemon::builder(&subdir(&dir, "d"))
        .server(&url)
        .manual_sync()
        .env("SYNC_BATCH_SIZE", "1")
        .start();
    for i in 0..300 {
        daemon.add_id(&format!("t{i}"));
    }
    let socket = daemon.socket.clone();
    let syncing = std::thread::spawn(move || tasksync_e2e::ctl_at(&socket, &["sync"]));
    wait_until("a few batches to land", || first.tasks().len() >= 20);
    first.stop();
    let _ = syncing.join();
    // Another process on the same database takes over the address (as behind a balancer).
    let second = Server::builder(&subdir(&dir, "s2"))
        .postgres(&db.url)
        .listen(&addr)
        .start();
    let reached = second.tasks().len();
    assert!(
        reached < 300,
        "the kill landed mid-flush ({reached} of 300)"
    );
    let daemon_again = {
        daemon.stop_with(libc::SIGTERM);
        daemon.restart().env("SYNC_BATCH_SIZE", "50").start()
    };
    sync(&daemon_again);
    assert_eq!(daemon_again.status()["pending"], 0);
    let on_server = second.replica(None);
    assert_eq!(on_server.len(), 300, "no task lost");
    assert_eq!(on_server, daemon_again.replica());
    let feed = http::get(&second.addr, "/api/changes?limit=5000").json();
    assert_eq!(feed["changes"].as_array().unwrap().len(), 300);
    assert_eq!(
        feed["cursor"], "300",
        "each create was numbered once: nothing applied twice"
    );
}

#[test]
fn an_unreachable_database_answers_503_with_retry_after_and_health_says_so() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_pg(&subdir(&dir, "s"), &db.url);
    let health = http::get(&server.addr, "/api/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["storage"], "postgres");
    assert_eq!(http::get(&server.addr, "/api/tasks").status, 200);

    db.drop_now();
    for path in ["/api/health", "/api/tasks", "/api/changes"] {
        let answer = http::get(&server.addr, path);
        assert_eq!(
            answer.status,
            503,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            answer.header("retry-after").is_some(),
            "{path}: {}",
            answer.head
        );
        assert_eq!(answer.json()["path"], path);
    }
    let body = br#"{"device_id":"00000000-0000-0000-0000-000000000001","client_timestamp":"2026-01-01T00:00:00.000Z","items":[]}"#;
    let digest = tasksync_proto::wire::content_digest(body);
    let push = http::request(
        &server.addr,
        "POST",
        "/api/batch",
        &[("Content-Digest", &digest)],
        body,
    );
    assert_eq!(push.status, 503, "{}", String::from_utf8_lossy(&push.body));
}

#[test]
fn a_change_reaches_a_device_on_another_server_process_live() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = Server::start_pg(&subdir(&dir, "s1"), &db.url);
    let two = Server::start_pg(&subdir(&dir, "s2"), &db.url);
    // No periodic pull within the test's deadline: only the live pull can bring the change.
    let slow_pulls = ["--pull-interval-ms", "600000"];
    let laptop = Daemon::builder(&subdir(&dir, "laptop"))
        .server(&one.url())
        .args(&slow_pulls)
        .start();
    let phone = Daemon::builder(&subdir(&dir, "phone"))
        .server(&two.url())
        .args(&slow_pulls)
        .start();
    laptop.wait_for_state("online");
    phone.wait_for_state("online");
    let id = laptop.add_id("pushed through process one");
    wait_until("the phone to receive it through process two", || {
        phone.replica().iter().any(|t| t["id"] == id.as_str())
    });
    let edit = laptop.ctl(&["edit", &id, "--title", "edited live"]);
    assert_eq!(edit.code(), 0, "{}", edit.stderr());
    wait_until("the phone to receive the edit", || {
        phone
            .replica()
            .iter()
            .any(|t| t["id"] == id.as_str() && t["title"] == "edited live")
    });
}
