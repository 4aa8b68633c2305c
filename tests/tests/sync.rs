//! The sync engine against the real tasksync-server and against a scripted one: batching,
//! ordering, retries, dead letters, conflicts, two devices, and crashes mid-flush.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tasksync_e2e::scripted::{accepting, failing_batches, Response, Scripted};
use tasksync_e2e::sse::SseStream;
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{
    check_revocation_reaches_held_pulls, free_port, subdir, wait_until, Daemon, Server,
};

#[test]
fn every_queued_operation_is_processed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let daemon = Daemon::start_manual_sync(dir.path(), &server.url());
    let a = daemon.add_id("first");
    daemon.add_id("second");
    daemon.ctl(&["done", &a]);
    daemon.ctl(&["rm", &a]);
    assert_eq!(daemon.status()["pending"], 4);

    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report,
        json!({"success": true, "synced_items": 4, "failed_items": 0, "errors": [],
               "offline": false, "pulled_items": 0, "conflicts": 0, "resolved": []}),
        "our own operations coming back in the pull change nothing and count nothing"
    );
    let after = daemon.status();
    assert_eq!(after["pending"], 0);
    assert_eq!(after["state"], "online");
    assert!(after["last_sync_at"].is_string());
    for task in daemon
        .ctl(&["--json", "list", "--all"])
        .json()
        .as_array()
        .unwrap()
    {
        assert_eq!(task["sync_status"], "synced");
        assert!(task["last_synced_at"].is_string());
    }
    assert_eq!(server.replica(None), daemon.replica());
    assert_eq!(
        server
            .tasks()
            .iter()
            .filter(|t| t["is_deleted"] == true)
            .count(),
        1,
        "the delete synced as a tombstone"
    );
    assert!(daemon
        .ctl(&["--json", "queue"])
        .json()
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn an_unreachable_server_leaves_everything_queued_and_counts_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let url = format!("http://127.0.0.1:{}", free_port());
    let daemon = Daemon::start_manual_sync(dir.path(), &url);
    daemon.add_id("offline work");
    let (code, report) = daemon.sync();
    assert_eq!(code, 4, "offline exit code: {report}");
    assert_eq!(report["success"], false);
    assert_eq!(report["errors"][0]["kind"], "offline", "{report}");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{report}"
    );
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(queue[0]["state"], "pending");
    assert_eq!(
        queue[0]["retry_count"], 0,
        "being offline is not a failed attempt"
    );
    assert_eq!(daemon.status()["state"], "offline");

    let local_only = Daemon::start(&subdir(&dir, "solo"));
    let run = local_only.ctl(&["sync"]);
    run.assert_says(4, "no sync server configured");
    // Each place the setting can come from is named, the config file's key too.
    for place in ["server_url", "--server", "TASKSYNC_SERVER_URL"] {
        run.assert_says(4, place);
    }
}

#[test]
fn a_failing_server_is_survived_and_items_stay_queued() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(failing_batches(500, "database on fire"));
    let daemon = Daemon::start_manual_sync(dir.path(), &scripted.url());
    daemon.add_id("precious");
    let (code, report) = daemon.sync();
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["success"], false);
    assert_eq!(report["failed_items"], 1);
    assert_eq!(report["errors"][0]["kind"], "rejected", "{report}");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("database on fire"),
        "{report}"
    );
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(queue[0]["retry_count"], 1, "a 5xx counts an attempt");
    assert_eq!(queue[0]["state"], "pending");
    assert!(queue[0]["error_message"]
        .as_str()
        .unwrap()
        .contains("database on fire"));
    let task = &daemon.ctl(&["--json", "list"]).json()[0];
    assert_eq!(task["sync_status"], "error");
    assert_eq!(task["title"], "precious");
}

#[test]
fn batches_hold_at_most_sync_batch_size_items_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(accepting(|_| None));
    let daemon = Daemon::builder(dir.path())
        .server(&scripted.url())
        .manual_sync()
        .env("SYNC_BATCH_SIZE", "7")
        .start();
    let mut made = Vec::new();
    for i in 0..20 {
        made.push(daemon.add_id(&format!("task {i}")));
    }
    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["synced_items"], 20);
    // Two batches may be in flight at once, so the server may see them in either order;
    // put them back in the order their first operation was made.
    let mut batches = scripted.batches();
    batches.sort_by(|a, b| {
        a["items"][0]["created_at"]
            .as_str()
            .cmp(&b["items"][0]["created_at"].as_str())
    });
    let sizes: Vec<usize> = batches
        .iter()
        .map(|b| b["items"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [7, 7, 6]);
    assert_eq!(scripted.batches().len(), 3, "exactly 3 requests");
    let sent: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["task_id"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(sent, made, "in the order made");
    for batch in &batches {
        assert_eq!(batch["device_id"], daemon.status()["device_id"]);
        for item in batch["items"].as_array().unwrap() {
            assert_eq!(item["operation"], "create");
            // The scripted server's health says no api_version: it is a server of sync
            // API 1, so these plain creates go out as an API-1 daemon sent them, naming the
            // four fields it knows (against API 2 a create names every field, section 3a's
            // too; the daemon's own tests check that, and what waits for an older server).
            assert_eq!(
                item["changed_fields"],
                json!(["title", "description", "completed", "is_deleted"])
            );
            assert_eq!(item["data"]["id"], item["task_id"]);
        }
    }
    let digests = scripted
        .requests()
        .iter()
        .filter(|r| r.path == "/api/batch")
        .all(|r| {
            r.headers
                .iter()
                .any(|(name, value)| name == "content-digest" && value.starts_with("sha-256=:"))
        });
    assert!(digests, "every push carries a Content-Digest");
}

#[test]
fn a_rejected_task_is_dead_lettered_after_three_attempts_while_others_sync() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let poison = poisoned.clone();
    let scripted = Scripted::start(accepting(move |item| {
        let bad = poison.lock().unwrap().clone();
        (item["task_id"].as_str() == bad.as_deref()).then(|| "title rejected by policy".to_string())
    }));
    let daemon = Daemon::start_manual_sync(dir.path(), &scripted.url());
    let bad = daemon.add_id("bad one");
    *poisoned.lock().unwrap() = Some(bad.clone());
    daemon.ctl(&["edit", &bad, "--title", "bad one, edited"]);

    for attempt in 1..=3 {
        let good = daemon.add_id(&format!("good {attempt}"));
        let (code, report) = daemon.sync();
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["synced_items"], 1, "the good task syncs: {report}");
        assert_eq!(report["failed_items"], 1);
        let task = daemon.show(&good);
        assert_eq!(task["sync_status"], "synced");
    }
    // The edit of the poisoned task was never sent before its create succeeded: a batch
    // carries at most one operation of a task, the earliest still queued.
    for batch in scripted.batches() {
        for item in batch["items"].as_array().unwrap() {
            if item["task_id"] == bad.as_str() {
                assert_eq!(
                    item["operation"], "create",
                    "later operations wait behind the failing one"
                );
            }
        }
    }
    let failed = daemon.ctl(&["--json", "queue", "--failed"]).json();
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["task_id"], bad.as_str());
    assert_eq!(failed[0]["retry_count"], 3);
    assert_eq!(failed[0]["state"], "failed");
    assert_eq!(failed[0]["error_message"], "title rejected by policy");
    assert_eq!(daemon.show(&bad)["sync_status"], "failed");
    let st = daemon.status();
    assert_eq!(
        (st["failed"].as_u64(), st["pending"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );

    // A fourth sync does not send it again.
    let before = scripted.batches().len();
    let (code, report) = daemon.sync();
    assert_eq!(code, 1, "dead letters keep sync failing: {report}");
    assert_eq!(report["failed_items"], 1);
    assert_eq!(
        scripted.batches().len(),
        before,
        "nothing eligible, nothing sent"
    );

    // The server relents; retry brings the operation back and order holds.
    *poisoned.lock().unwrap() = None;
    let retried = daemon.ctl(&["--json", "retry", &bad[..13]]).json();
    assert_eq!(retried["retried"], 1);
    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["synced_items"], 2);
    let ops: Vec<String> = scripted.batches()[before..]
        .iter()
        .flat_map(|b| b["items"].as_array().unwrap().clone())
        .filter(|item| item["task_id"] == bad.as_str())
        .map(|item| item["operation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ["create", "update"]);
    assert_eq!(daemon.show(&bad)["sync_status"], "synced");

    let nothing = daemon.ctl(&["--json", "retry", "--all"]).json();
    assert_eq!(nothing["retried"], 0);
    let missing = daemon.ctl(&["retry", "ffff"]);
    missing.assert_says(1, "no dead-lettered operation");
}

#[test]
fn a_conflict_is_resolved_in_favour_of_the_later_edit_on_both_devices() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let laptop = Daemon::start_manual_sync(&subdir(&dir, "laptop"), &server.url());
    let phone = Daemon::start_manual_sync(&subdir(&dir, "phone"), &server.url());
    let id = laptop.add_id("original");
    assert_eq!(laptop.sync().0, 0);
    assert_eq!(phone.sync().0, 0);
    assert_eq!(phone.show(&id)["title"], "original");

    // Both edit the title while "offline" (before syncing); the phone edits last.
    laptop.ctl(&["edit", &id, "--title", "laptop title"]);
    phone.ctl(&["edit", &id, "--title", "phone title"]);
    // The later edit syncs first, the earlier one second: it must lose, and say so.
    let watch = Watch::start_with(&laptop, &["--events", "conflict"]);
    let mut sse = SseStream::open_path(&laptop.socket, "/api/events?events=conflict", None);
    assert_eq!(phone.sync().0, 0);
    let (code, report) = laptop.sync();
    assert_eq!(code, 0, "{report}");
    let event = sse.until(|e| e.event == "conflict").json();
    assert_eq!(event["task_id"], id.as_str(), "{event}");
    assert_eq!(event["field"], "title");
    assert_eq!(event["kept"], "phone title");
    assert_eq!(event["lost"], "laptop title", "the lost value is told");
    assert_eq!(
        event["lost_device"],
        laptop.status()["device_id"],
        "{event}"
    );
    assert_eq!(event["kept_device"], phone.status()["device_id"], "{event}");
    wait_until("watch --json to show the conflict", || {
        watch.events("conflict") == 1
    });
    let watched = watch.matching(|e| e["event"] == "conflict").remove(0);
    for key in [
        "task_id",
        "field",
        "kept",
        "kept_device",
        "lost",
        "lost_device",
    ] {
        assert_eq!(watched[key], event[key], "{key}");
    }
    assert_eq!(phone.sync().0, 0);
    for daemon in [&laptop, &phone] {
        assert_eq!(daemon.show(&id)["title"], "phone title");
    }
    assert_eq!(server.replica(None), laptop.replica());
    assert_eq!(laptop.replica(), phone.replica());
}

#[test]
fn concurrent_edits_of_different_fields_both_survive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let laptop = Daemon::start_manual_sync(&subdir(&dir, "laptop"), &server.url());
    let phone = Daemon::start_manual_sync(&subdir(&dir, "phone"), &server.url());
    let renamed = laptop.add_id("rename me");
    let deleted = laptop.add_id("delete me");
    laptop.sync();
    phone.sync();

    laptop.ctl(&["edit", &renamed, "--title", "renamed on the laptop"]);
    phone.ctl(&["done", &renamed]);
    phone.ctl(&["rm", &deleted]);
    laptop.ctl(&["edit", &deleted, "--title", "edited after the delete"]);
    for daemon in [&phone, &laptop, &phone] {
        let (code, report) = daemon.sync();
        assert_eq!(code, 0, "{report}");
    }
    for daemon in [&laptop, &phone] {
        let task = daemon.show(&renamed);
        assert_eq!(
            (task["title"].as_str(), task["completed"].as_bool()),
            (Some("renamed on the laptop"), Some(true))
        );
        let task = daemon.show(&deleted);
        assert_eq!(
            (task["title"].as_str(), task["is_deleted"].as_bool()),
            (Some("edited after the delete"), Some(true))
        );
    }
    assert_eq!(server.replica(None), laptop.replica());
    assert_eq!(laptop.replica(), phone.replica());
}

#[test]
fn a_daemon_killed_mid_flush_resends_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let mut daemon = Daemon::builder(dir.path())
        .server(&server.url())
        .manual_sync()
        .env("SYNC_BATCH_SIZE", "1")
        .start();
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(daemon.add_id(&format!("t{i}")));
    }
    // Start a sync and kill the daemon while batches are going out.
    let socket = daemon.socket.clone();
    let syncing = std::thread::spawn(move || tasksync_e2e::ctl_at(&socket, &["sync"]));
    tasksync_e2e::wait_until("a few batches to land", || server.tasks().len() >= 20);
    daemon.stop_with(libc::SIGKILL);
    let _ = syncing.join();
    let reached = server.tasks().len();
    assert!(
        reached < 300,
        "the kill landed mid-flush ({reached} of 300 synced)"
    );

    let daemon = daemon.restart().start();
    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    assert_eq!(daemon.status()["pending"], 0);
    let on_server = server.replica(None);
    assert_eq!(on_server.len(), 300, "no task lost");
    assert_eq!(on_server, daemon.replica(), "server and daemon agree");
    let changes = tasksync_e2e::http::get(&server.addr, "/api/changes?since=&limit=5000").json();
    assert_eq!(
        changes["changes"].as_array().unwrap().len(),
        300,
        "each task changed once: nothing applied twice"
    );
}

#[test]
fn a_conflict_answer_without_the_merged_task_is_refused_as_a_bad_answer() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(|request| match request.path.as_str() {
        "/api/batch" => {
            let items = request.json()["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let processed: Vec<Value> = items
                .iter()
                .map(|i| json!({"client_id": i["id"], "server_id": i["task_id"], "status": "conflict"}))
                .collect();
            Response {
                status: 200,
                body: json!({ "processed_items": processed }),
            }
        }
        _ => accepting(|_| None)(request),
    });
    let daemon = Daemon::start_manual_sync(dir.path(), &scripted.url());
    daemon.add_id("kept until the server makes sense");
    let (code, report) = daemon.sync();
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["errors"][0]["kind"], "bad_answer", "{report}");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("without resolved_data"),
        "{report}"
    );
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(
        queue[0]["retry_count"], 1,
        "counted as a failed attempt, not accepted"
    );
}

#[test]
fn a_refused_token_does_not_make_the_daemon_retry_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(failing_batches(401, "no"));
    let daemon = Daemon::builder(dir.path())
        .server(&scripted.url())
        .args(&["--pull-interval-ms", "60000"])
        .start();
    daemon.wait_for_state("online");
    daemon.add_id("waits for a good token");
    daemon.wait_for_state("unauthorized");
    // An absence can only be seen over a window: half a second in which a loop would have
    // sent hundreds of requests.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        scripted.batches().len() <= 2,
        "{} pushes after a 401",
        scripted.batches().len()
    );
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(
        queue[0]["retry_count"], 0,
        "a refused token counts no attempt"
    );
}

#[test]
fn revoking_a_token_answers_its_held_pulls_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = dir.path().join("server.db");
    let storage = ["--db", db.to_str().unwrap()];
    check_revocation_reaches_held_pulls(&server, &server, &storage, "carol");
}
