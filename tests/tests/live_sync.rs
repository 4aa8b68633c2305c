//! Live, trustworthy sync with the real binaries: changes reach another online device through
//! the live pull, a busy or refusing server costs no attempt, far-future timestamps never break
//! a clock, reports say what was pulled and how conflicts ended, `watch` tells the truth and
//! outlives a daemon restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tasksync_e2e::scripted::{accepting, error, Response, Scripted};
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{http, subdir, wait_until, wait_until_past, Daemon, Server};

/// The periodic pull is an hour away: only the live pull can bring changes quickly.
const NO_PERIODIC_PULL: &[&str] = &["--pull-interval-ms", "3600000"];

fn device(dir: &tempfile::TempDir, name: &str, server: &str, extra: &[&str]) -> Daemon {
    Daemon::builder(&subdir(dir, name))
        .server(server)
        .args(extra)
        .start()
}

#[test]
fn a_change_reaches_the_other_online_device_through_the_live_pull() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let a = device(&dir, "a", &server.url(), NO_PERIODIC_PULL);
    let b = device(&dir, "b", &server.url(), NO_PERIODIC_PULL);
    a.wait_for_state("online");
    b.wait_for_state("online");
    let id = a.add_id("made on a");
    wait_until("b to see a's task", || b.task(&id).is_some());
    a.ctl(&["edit", &id, "--title", "edited on a"]);
    wait_until("b to see a's edit", || {
        b.task(&id).is_some_and(|t| t["title"] == "edited on a")
    });
    a.ctl(&["rm", &id]);
    wait_until("b to see the tombstone", || {
        b.task(&id).is_some_and(|t| t["is_deleted"] == true)
    });
}

#[test]
fn a_busy_server_dead_letters_nothing_and_the_queue_goes_once_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let busy = |request: &tasksync_e2e::scripted::Request| match request.path.as_str() {
        "/api/batch" | "/api/changes" => error(503, "storage full", request),
        _ => accepting(|_| None)(request),
    };
    let server = Scripted::start(busy);
    let daemon = device(&dir, "device", &server.url(), &["--manual-sync"]);
    for i in 0..3 {
        daemon.add_id(&format!("task {i}"));
    }
    for _ in 0..4 {
        let run = daemon.ctl(&["--json", "sync"]);
        assert_ne!(run.code(), 0, "a busy server is no success");
    }
    let queue = daemon.ctl(&["--json", "queue"]).json();
    let rows = queue.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["retry_count"], 0, "a 503 counts no attempt: {row}");
        assert_eq!(row["state"], "pending");
    }
    let now = daemon.status();
    assert_eq!(now["failed"], 0);
    assert_eq!(now["last_error"]["kind"], "busy", "{now}");
    assert!(
        now["last_error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{now}"
    );
    server.set_handler(accepting(|_| None));
    let run = daemon.ctl(&["--json", "sync"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["synced_items"], 3);
    let now = daemon.status();
    assert_eq!(now["pending"], 0);
    assert_eq!(now["last_error"], Value::Null);
    assert!(now["last_sync_at"].is_string());
}

#[test]
fn a_refused_token_is_shown_as_unauthorized_and_costs_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&subdir(&dir, "server"))
        .token("the-right-token-0123456789")
        .start();
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&server.url())
        .env("TASKSYNC_TOKEN", "a-wrong-token-0123456789")
        .start();
    daemon.add_id("waits for a good token");
    daemon.wait_for_state("unauthorized");
    let now = daemon.status();
    assert_eq!(now["online"], false);
    assert_eq!(now["last_sync_at"], Value::Null, "no round succeeded");
    assert_eq!(now["last_error"]["kind"], "unauthorized", "{now}");
    assert!(
        now["last_error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("token")),
        "{now}"
    );
    let human = daemon.ctl(&["status"]).stdout();
    assert!(human.contains("unauthorized"), "{human}");
    assert!(human.contains("refuses our token"), "{human}");
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(queue[0]["retry_count"], 0, "{queue}");
}

#[test]
fn a_far_future_timestamp_is_refused_by_the_server_and_skipped_by_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    // A device whose clock lies: the server refuses the item and applies nothing.
    let future = json!({
        "id": "01a22f00-0000-7000-8000-000000000001", "title": "from 9999",
        "description": null, "completed": false,
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "9999-12-31T23:59:59.999Z",
        "is_deleted": false, "device_id": "01a22f00-0000-7000-8000-0000000000dd"
    });
    let batch = json!({
        "device_id": "01a22f00-0000-7000-8000-0000000000dd",
        "client_timestamp": "2026-01-01T00:00:00.000Z",
        "items": [{"id": "01a22f00-0000-7000-8000-0000000000a1",
                   "task_id": "01a22f00-0000-7000-8000-000000000001", "operation": "create",
                   "changed_fields": ["title", "description", "completed", "is_deleted"],
                   "data": future, "created_at": "2026-01-01T00:00:00.000Z", "retry_count": 0}]
    });
    let body = batch.to_string();
    let digest = tasksync_proto::wire::content_digest(body.as_bytes());
    let answer = http::request(
        &server.addr,
        "POST",
        "/api/batch",
        &[("Content-Digest", &digest)],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200);
    let item = &answer.json()["processed_items"][0];
    assert_eq!(item["status"], "error", "{item}");
    assert!(
        item["error"].as_str().is_some_and(|e| e.contains("clock")),
        "{item}"
    );
    assert!(server.tasks().is_empty(), "nothing was applied");

    // A server that lies anyway: the daemon skips that task and its clock stays sane.
    let lying = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        match request.path.as_str() {
            "/api/changes" => Response {
                status: 200,
                body: json!({"changes": [future.clone()], "cursor": "1", "has_more": false}),
            },
            _ => accepting(|_| None)(request),
        }
    });
    let daemon = device(&dir, "device", &lying.url(), &["--manual-sync"]);
    let id = daemon.add_id("mine");
    daemon.ctl(&["--json", "sync"]);
    assert!(
        daemon
            .task("01a22f00-0000-7000-8000-000000000001")
            .is_none(),
        "the far-future task was not stored"
    );
    let edited = daemon.ctl(&["--json", "edit", &id, "--title", "still editable"]);
    assert_eq!(edited.code(), 0, "{}", edited.stderr());
    let updated_at = edited.json()["updated_at"].as_str().unwrap().to_string();
    assert!(
        updated_at.starts_with("20"),
        "the clock did not jump: {updated_at}"
    );
    assert!(!updated_at.starts_with("9999"));
}

#[test]
fn live_pulls_from_a_server_that_answers_garbage_or_at_once_do_not_loop() {
    let dir = tempfile::tempdir().unwrap();
    let pulls = Arc::new(AtomicUsize::new(0));
    let counted = pulls.clone();
    let server = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        if request.path == "/api/changes" {
            counted.fetch_add(1, Ordering::SeqCst);
            // Alternately garbage and an at-once empty answer (an older server).
            if counted.load(Ordering::SeqCst).is_multiple_of(2) {
                return Response {
                    status: 200,
                    body: json!("this is not a page of changes"),
                };
            }
        }
        accepting(|_| None)(request)
    });
    let daemon = device(&dir, "device", &server.url(), &[]);
    daemon.wait_for_state("online");
    let before = pulls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    let during = pulls.load(Ordering::SeqCst) - before;
    assert!(during <= 10, "{during} pulls in 3 s: the daemon loops");
    // Commands and flushes go on meanwhile.
    let id = daemon.add_id("still works");
    wait_until("the flush", || {
        server
            .batches()
            .iter()
            .any(|b| b["items"][0]["task_id"] == id.as_str())
    });
}

#[test]
fn sync_reports_what_it_pulled_and_which_value_won_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let a = device(&dir, "a", &server.url(), &["--manual-sync"]);
    let b = device(&dir, "b", &server.url(), &["--manual-sync"]);
    let id = a.add_id("shared");
    assert_eq!(a.ctl(&["sync"]).code(), 0);
    let pulled = b.ctl(&["--json", "sync"]).json();
    assert_eq!(pulled["pulled_items"], 1, "{pulled}");
    // a edits first, b later: b's title is newer and wins; a's done flag stands.
    let older = a.ctl(&["--json", "edit", &id, "--title", "older title", "--done"]);
    wait_until_past(&older.json()["updated_at"]);
    b.ctl(&["edit", &id, "--title", "newer title"]);
    assert_eq!(b.ctl(&["sync"]).code(), 0);
    let report = a.ctl(&["--json", "sync"]).json();
    assert_eq!(report["conflicts"], 1, "{report}");
    let fields = &report["resolved"][0]["fields"];
    let kept = |name: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .map(|f| f["kept"].clone())
    };
    assert_eq!(kept("title"), Some(json!("remote")), "{report}");
    assert_eq!(kept("completed"), Some(json!("local")), "{report}");
    let shown = a.task(&id).unwrap();
    assert_eq!(shown["title"], "newer title");
    assert_eq!(shown["completed"], true);

    // The human line says the same.
    let older = a.ctl(&["--json", "edit", &id, "--title", "older again"]);
    wait_until_past(&older.json()["updated_at"]);
    b.ctl(&["sync"]);
    b.ctl(&["edit", &id, "--title", "newest"]);
    b.ctl(&["sync"]);
    let human = a.ctl(&["sync"]).stdout();
    assert!(human.contains("conflicts 1"), "{human}");
    assert!(
        human.contains("title took a newer value from another device"),
        "{human}"
    );
}

#[test]
fn watch_reports_each_real_change_once_and_never_our_own_pushes_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let a = device(&dir, "a", &server.url(), &[]);
    let b = device(&dir, "b", &server.url(), &[]);
    a.wait_for_state("online");
    b.wait_for_state("online");
    let watch = Watch::start(&a);
    let mine: Vec<String> = (0..20).map(|i| a.add_id(&format!("mine {i}"))).collect();
    wait_until("a's tasks on the server", || server.tasks().len() == 20);
    let theirs = b.add_id("theirs");
    wait_until("b's task in a's watch", || {
        !watch
            .matching(|e| e["event"] == "task" && e["task"]["id"] == theirs.as_str())
            .is_empty()
    });
    // A last round trip through the server, so any echo would have arrived by now.
    a.ctl(&["sync"]);
    let changes = watch.matching(|e| e["event"] == "task");
    let remote: Vec<&Value> = changes.iter().filter(|e| e["origin"] == "remote").collect();
    assert_eq!(
        remote.len(),
        1,
        "only b's task is a remote change: {remote:?}"
    );
    assert_eq!(remote[0]["task"]["id"], theirs.as_str());
    let local = changes.iter().filter(|e| e["origin"] == "local").count();
    assert_eq!(local, mine.len(), "each local create once");
    assert!(
        changes.iter().all(|e| e["at"].is_string()),
        "every event carries its time"
    );
}

#[test]
fn watch_reconnects_when_the_daemon_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(&subdir(&dir, "device"));
    let mut watch = Watch::start(&daemon);
    daemon.stop_with(libc::SIGTERM);
    wait_until("watch to say the daemon went away", || {
        watch.messages().iter().any(|m| m.contains("went away"))
    });
    assert!(watch.running(), "watch waits instead of exiting");
    let daemon = daemon.restart().start();
    wait_until("watch to reconnect", || {
        watch.messages().iter().any(|m| m.contains("reconnected"))
    });
    let id = daemon.add_id("after the restart");
    wait_until("the new task in the watch", || {
        !watch
            .matching(|e| e["event"] == "task" && e["task"]["id"] == id.as_str())
            .is_empty()
    });
    assert!(
        watch.events("status") >= 2,
        "the new stream opens with a status"
    );
}

#[test]
fn a_413_sends_the_batch_again_in_smaller_pieces_and_costs_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let accept = accepting(|_| None);
    let server = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        let items = request.json()["items"].as_array().map_or(0, Vec::len);
        if request.path == "/api/batch" && items > 2 {
            return error(413, "too large", request);
        }
        accept(request)
    });
    let daemon = device(&dir, "device", &server.url(), &["--manual-sync"]);
    for i in 0..7 {
        daemon.add_id(&format!("task {i}"));
    }
    let run = daemon.ctl(&["--json", "sync"]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    assert_eq!(run.json()["synced_items"], 7);
    assert_eq!(daemon.status()["pending"], 0);
    let sizes: Vec<usize> = server
        .batches()
        .iter()
        .map(|b| b["items"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(
        sizes.iter().any(|&n| n > 2),
        "the first batch was refused: {sizes:?}"
    );
    assert!(
        sizes.iter().filter(|&&n| n <= 2).sum::<usize>() == 7,
        "every operation went out in a smaller batch: {sizes:?}"
    );
}

#[test]
fn a_live_pull_that_hangs_holds_up_neither_commands_nor_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = Scripted::start(|request: &tasksync_e2e::scripted::Request| {
        if request.path == "/api/changes" && request.query.contains("wait=") {
            // Never answers within the test.
            std::thread::sleep(Duration::from_secs(60));
        }
        accepting(|_| None)(request)
    });
    let daemon = device(&dir, "device", &hanging.url(), &[]);
    daemon.wait_for_state("online");
    wait_until("a live pull to be waiting", || {
        hanging.requests().iter().any(|r| r.path.contains("wait="))
    });
    for i in 0..3 {
        let id = daemon.add_id(&format!("during the hang {i}"));
        wait_until("the flush", || {
            hanging
                .batches()
                .iter()
                .any(|b| b["items"][0]["task_id"] == id.as_str())
        });
    }
    assert_eq!(daemon.status()["state"], "online");
}

#[test]
fn one_invalid_pulled_task_is_skipped_and_does_not_stop_the_pull() {
    let dir = tempfile::tempdir().unwrap();
    let task = |id: &str, title: &str| {
        json!({
            "id": id, "title": title, "description": null, "completed": false,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
            "is_deleted": false, "device_id": "01a22f00-0000-7000-8000-0000000000dd"
        })
    };
    // An older server let a control character in; today's rules refuse it.
    let bad = task("01a22f00-0000-7000-8000-000000000001", "bell\u{7}");
    let good = task("01a22f00-0000-7000-8000-000000000002", "fine");
    let server = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        match request.path.as_str() {
            "/api/changes" => Response {
                status: 200,
                body: json!({"changes": [bad.clone(), good.clone()], "cursor": "2", "has_more": false}),
            },
            _ => accepting(|_| None)(request),
        }
    });
    let daemon = device(&dir, "device", &server.url(), &["--manual-sync"]);
    let run = daemon.ctl(&["--json", "sync"]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    assert_eq!(run.json()["pulled_items"], 1);
    assert!(daemon
        .task("01a22f00-0000-7000-8000-000000000002")
        .is_some());
    assert!(daemon
        .task("01a22f00-0000-7000-8000-000000000001")
        .is_none());
    // The next pull starts after the page: nothing is stuck.
    assert_eq!(daemon.ctl(&["sync"]).code(), 0);
}

#[test]
fn a_huge_error_from_a_busy_server_is_cut_and_status_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let huge = format!("\u{1b}[31m{}", "x".repeat(2 * 1024 * 1024));
    let server = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        match request.path.as_str() {
            "/api/batch" => error(503, &huge, request),
            _ => accepting(|_| None)(request),
        }
    });
    let daemon = device(&dir, "device", &server.url(), &["--manual-sync"]);
    daemon.add_id("waits");
    let run = daemon.ctl(&["--json", "sync"]);
    assert_ne!(run.code(), 0);
    let report: Value = serde_json::from_str(&run.stdout()).expect("a JSON report");
    let error = report["errors"][0]["message"]
        .as_str()
        .expect("an error")
        .to_string();
    assert!(error.len() < 1_000, "{} bytes", error.len());
    assert!(!error.contains('\u{1b}'), "control characters are escaped");
    let status = daemon.status();
    let last = status["last_error"]["message"]
        .as_str()
        .expect("last_error");
    assert!(last.len() < 1_000 && last.contains("503"), "{last:.200}");
    let answer = http::unix_get(&daemon.socket, "/api/status");
    assert_eq!(answer.status, 200);
    assert!(answer.body.len() < 10_000, "{} bytes", answer.body.len());
}

#[test]
fn a_pulled_entry_with_a_non_uuid_id_is_skipped_and_the_cursor_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |id: &str| {
        json!({
            "id": id, "title": "t", "description": null, "completed": false,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
            "is_deleted": false, "device_id": "01a22f00-0000-7000-8000-0000000000dd"
        })
    };
    let good = "01a22f00-0000-7000-8000-000000000003";
    let (bad, fine) = (entry("not-a-uuid"), entry(good));
    let server = Scripted::start(move |request: &tasksync_e2e::scripted::Request| {
        match request.path.as_str() {
            "/api/changes" if request.query.contains("since=7") => Response {
                status: 200,
                body: json!({"changes": [], "cursor": "7", "has_more": false}),
            },
            "/api/changes" => Response {
                status: 200,
                body: json!({"changes": [bad.clone(), fine.clone()], "cursor": "7", "has_more": false}),
            },
            _ => accepting(|_| None)(request),
        }
    });
    let daemon = device(&dir, "device", &server.url(), &["--manual-sync"]);
    let run = daemon.ctl(&["--json", "sync"]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    assert_eq!(run.json()["pulled_items"], 1);
    assert!(daemon.task(good).is_some());
    // The next pull asks from after the page.
    assert_eq!(daemon.ctl(&["sync"]).code(), 0);
    let last = server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.starts_with("/api/changes"))
        .expect("a pull");
    assert!(last.query.contains("since=7"), "{}", last.query);
}
