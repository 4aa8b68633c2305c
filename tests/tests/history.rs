//! The local history of each task against the real binaries: `taskctl log`, `GET
//! /api/tasks/:id/history`, and the value that lost Last-Write-Wins kept as a conflict entry.

use serde_json::Value;
use tasksync_e2e::http::{request, Answer};
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{subdir, wait_until, Daemon, Server};

/// `GET path` on the daemon's HTTP API, with its token.
fn get(daemon: &Daemon, path: &str) -> Answer {
    let addr = daemon.status()["http"]
        .as_str()
        .expect("the HTTP API is on")
        .to_string();
    let token_file = daemon
        .log
        .with_file_name("config")
        .join("tasksync/api-token");
    let token = std::fs::read_to_string(token_file).expect("token file");
    let auth = format!("Bearer {}", token.trim());
    request(&addr, "GET", path, &[("Authorization", &auth)], b"")
}

/// (field, old, new, origin, conflict) of each entry of a history's JSON, newest first.
fn entries(history: &Value) -> Vec<(String, Value, Value, String, bool)> {
    history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {history}"))
        .iter()
        .map(|e| {
            assert!(e["at"].is_string(), "{e}");
            (
                e["field"].as_str().unwrap().to_string(),
                e["old"].clone(),
                e["new"].clone(),
                e["origin"].as_str().unwrap().to_string(),
                e["conflict"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn log_and_the_http_api_show_every_change_newest_first_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::builder(dir.path())
        .args(&["--http", "127.0.0.1:0"])
        .start();
    let id = daemon.add_id("Buy milk");
    let edit = daemon.ctl(&["edit", "1", "--title", "Buy oat milk", "--done"]);
    assert_eq!(edit.code(), 0, "{}", edit.stderr());
    // An edit that changes nothing records nothing.
    daemon.ctl(&["edit", &id, "--title", "Buy oat milk"]);

    let logged = daemon.ctl(&["--json", "log", &id[..8]]).json();
    assert_eq!(logged["task_id"], id.as_str());
    let changes = entries(&logged);
    assert_eq!(
        changes.len(),
        3,
        "the title created (nothing else was set), two fields edited: {logged}"
    );
    let local = |field: &str, old: Value, new: Value| {
        (field.to_string(), old, new, "local".to_string(), false)
    };
    use serde_json::json;
    assert_eq!(changes[0], local("completed", json!(false), json!(true)));
    assert_eq!(
        changes[1],
        local("title", json!("Buy milk"), json!("Buy oat milk"))
    );
    assert_eq!(changes[2], local("title", Value::Null, json!("Buy milk")));

    let answer = get(&daemon, &format!("/api/tasks/{id}/history"));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), logged, "the same JSON as taskctl --json log");

    let text = daemon.ctl(&["log", &id]);
    assert_eq!(text.code(), 0, "{}", text.stderr());
    let out = text.stdout();
    assert!(
        out.contains("\"Buy milk\" -> \"Buy oat milk\""),
        "old -> new: {out}"
    );
    assert!(out.contains("local") && !out.contains("! lost"), "{out}");

    // Unknown and malformed ids, as for GET /api/tasks/:id.
    let unknown = "0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70";
    assert_eq!(
        get(&daemon, &format!("/api/tasks/{unknown}/history")).status,
        404
    );
    assert_eq!(get(&daemon, "/api/tasks/abc/history").status, 400);
    assert_ne!(daemon.ctl(&["log", unknown]).code(), 0);

    // A deleted task keeps its history, and the history outlives the daemon.
    daemon.ctl(&["rm", &id]);
    assert!(daemon.stop_with(libc::SIGTERM).success());
    let daemon = daemon.restart().start();
    let after = entries(&daemon.ctl(&["--json", "log", &id]).json());
    assert_eq!(after.len(), 4);
    assert_eq!(after[0], local("is_deleted", json!(false), json!(true)));
}

/// A sync server, a laptop and a phone (manual sync), and a task "Buy milk" made on the
/// laptop that both hold.
fn two_devices_share_a_task(dir: &tempfile::TempDir) -> (Server, Daemon, Daemon, String) {
    let server = Server::start(&subdir(dir, "s"));
    let laptop = Daemon::start_manual_sync(&subdir(dir, "laptop"), &server.url());
    let phone = Daemon::start_manual_sync(&subdir(dir, "phone"), &server.url());
    let id = laptop.add_id("Buy milk");
    assert_eq!(laptop.sync().0, 0);
    assert_eq!(phone.sync().0, 0);
    (server, laptop, phone, id)
}

/// Both edit the title offline; the phone's edit is the later one and wins, the laptop's
/// pushes second and loses.
fn the_laptop_loses_a_title_race(laptop: &Daemon, phone: &Daemon, id: &str) {
    laptop.ctl(&["edit", id, "--title", "Buy oat milk (A)"]);
    phone.ctl(&["edit", id, "--title", "Buy oat milk (B)"]);
    assert_eq!(phone.sync().0, 0);
    let (code, report) = laptop.sync();
    assert_eq!(code, 0, "{report}");
}

#[test]
fn the_device_whose_title_lost_keeps_its_value_as_a_conflict_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, laptop, phone, id) = two_devices_share_a_task(&dir);
    let pulled = entries(&phone.ctl(&["--json", "log", &id]).json());
    assert_eq!(pulled.len(), 1, "the pulled title: {pulled:?}");
    assert!(pulled.iter().all(|c| c.3 == "remote" && !c.4), "{pulled:?}");

    the_laptop_loses_a_title_race(&laptop, &phone, &id);
    assert_eq!(laptop.show(&id)["title"], "Buy oat milk (B)");

    let history = laptop.ctl(&["--json", "log", &id]).json();
    let conflicts: Vec<_> = entries(&history).into_iter().filter(|c| c.4).collect();
    assert_eq!(
        conflicts,
        [(
            "title".to_string(),
            Value::from("Buy oat milk (A)"),
            Value::from("Buy oat milk (B)"),
            "remote".to_string(),
            true
        )],
        "the laptop's losing title is recoverable: {history}"
    );
    let text = laptop.ctl(&["log", &id]).stdout();
    assert!(text.contains("! lost"), "{text}");
    assert!(text.contains("Buy oat milk (A)"), "{text}");
}

/// Both retitle the task offline, the phone last (its title wins). Whichever pushes first,
/// both devices report the conflict: `sync --json` counts it and names the field, `watch`
/// shows a `conflict` event with both values and both devices, and `log` holds the lost value
/// as a conflict entry that `restore` puts back.
#[test]
fn both_devices_report_a_concurrent_edit_whichever_pushes_first() {
    for laptop_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (_server, laptop, phone, id) = two_devices_share_a_task(&dir);
        let watches = [Watch::start(&laptop), Watch::start(&phone)];
        laptop.ctl(&["edit", &id, "--title", "Buy oat milk (A)"]);
        phone.ctl(&["edit", &id, "--title", "Buy oat milk (B)"]);
        let (first, second) = if laptop_first {
            (&laptop, &phone)
        } else {
            (&phone, &laptop)
        };
        let (code, report) = first.sync();
        assert_eq!(
            (code, &report["conflicts"]),
            (0, &Value::from(0)),
            "{report}"
        );
        let (code, second_report) = second.sync();
        assert_eq!(code, 0, "{second_report}");
        let (code, first_report) = first.sync();
        assert_eq!(code, 0, "{first_report}");
        for (which, report) in [("second", &second_report), ("first", &first_report)] {
            assert_eq!(
                report["conflicts"], 1,
                "laptop_first={laptop_first}: the device that pushed {which}: {report}"
            );
            assert_eq!(report["resolved"][0]["task_id"], id.as_str(), "{report}");
            assert_eq!(
                report["resolved"][0]["fields"][0]["field"], "title",
                "{report}"
            );
        }
        let device_ids = [&laptop, &phone].map(|d| d.status()["device_id"].clone());
        for (name, device, watch) in [
            ("laptop", &laptop, &watches[0]),
            ("phone", &phone, &watches[1]),
        ] {
            assert_eq!(device.show(&id)["title"], "Buy oat milk (B)");
            wait_until(&format!("a conflict event on the {name}"), || {
                watch.events("conflict") > 0
            });
            let event = &watch.matching(|e| e["event"] == "conflict")[0];
            assert_eq!(event["task_id"], id.as_str(), "{event}");
            assert_eq!(event["field"], "title", "{event}");
            assert_eq!(event["kept"], "Buy oat milk (B)", "{event}");
            assert_eq!(event["lost"], "Buy oat milk (A)", "{event}");
            assert_eq!(event["kept_device"], device_ids[1], "{event}");
            assert_eq!(event["lost_device"], device_ids[0], "{event}");
            let history = device.ctl(&["--json", "log", &id]).json();
            let lost: Vec<_> = entries(&history).into_iter().filter(|c| c.4).collect();
            assert_eq!(
                lost.len(),
                1,
                "laptop_first={laptop_first}, {name}: {history}"
            );
            assert_eq!(
                (&lost[0].0, &lost[0].1, &lost[0].2),
                (
                    &"title".to_string(),
                    &Value::from("Buy oat milk (A)"),
                    &Value::from("Buy oat milk (B)")
                ),
                "{name}: {history}"
            );
        }
        // The phone, whose value won, can still put the laptop's back.
        let history = phone.ctl(&["--json", "log", &id]).json();
        let entry = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["conflict"] == true)
            .and_then(|e| e["entry"].as_i64())
            .expect("a conflict entry")
            .to_string();
        let restored = phone.ctl(&["--json", "restore", &id, &entry]).json();
        assert_eq!(restored["title"], "Buy oat milk (A)", "{restored}");
    }
}

#[test]
fn a_lost_value_is_restored_by_taskctl_restore_and_reaches_the_other_device() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, laptop, phone, id) = two_devices_share_a_task(&dir);
    the_laptop_loses_a_title_race(&laptop, &phone, &id);

    let history = laptop.ctl(&["--json", "log", &id]).json();
    let lost = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["conflict"] == true)
        .unwrap_or_else(|| panic!("no conflict entry in {history}"));
    let entry = lost["entry"]
        .as_i64()
        .expect("entries have numbers")
        .to_string();
    let restored = laptop.ctl(&["--json", "restore", &id, &entry]).json();
    assert_eq!(restored["title"], "Buy oat milk (A)");
    assert_eq!(laptop.sync().0, 0);
    assert_eq!(phone.sync().0, 0);
    assert_eq!(
        phone.show(&id)["title"],
        "Buy oat milk (A)",
        "a restore syncs"
    );
    let newest = &laptop.ctl(&["--json", "log", &id]).json()["entries"][0];
    assert_eq!(newest["origin"], "local");
    assert_eq!(newest["new"], "Buy oat milk (A)");

    // The creation has no earlier value, and an unknown entry is not found.
    let created = history["entries"].as_array().unwrap().last().unwrap()["entry"]
        .as_i64()
        .unwrap()
        .to_string();
    let refused = laptop.ctl(&["restore", &id, &created]);
    refused.assert_says(1, "had no earlier value");
    laptop
        .ctl(&["restore", &id, "999999"])
        .assert_says(1, "history entry 999999");
}

#[test]
fn the_http_api_restores_an_entry_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::builder(dir.path())
        .args(&["--http", "127.0.0.1:0"])
        .start();
    let id = daemon.add_id("first");
    daemon.ctl(&["edit", &id, "--title", "second"]);
    let history = get(&daemon, &format!("/api/tasks/{id}/history")).json();
    let edit = &history["entries"][0];
    assert_eq!(edit["new"], "second");
    let post = |body: &str| {
        let addr = daemon.status()["http"].as_str().unwrap().to_string();
        let token_file = daemon
            .log
            .with_file_name("config")
            .join("tasksync/api-token");
        let token = std::fs::read_to_string(token_file).unwrap();
        let auth = format!("Bearer {}", token.trim());
        request(
            &addr,
            "POST",
            &format!("/api/tasks/{id}/restore"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let answer = post(&format!("{{\"entry\": {}}}", edit["entry"]));
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["title"], "first");
    assert!(answer.header("etag").is_some(), "{}", answer.head);
    for (body, status) in [
        ("{\"entry\": 999999}", 404),
        ("{\"entry\": \"x\"}", 400),
        ("{}", 400),
    ] {
        assert_eq!(post(body).status, status, "{body}");
    }
}

#[test]
fn undo_reverts_the_last_change_here_and_the_revert_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let laptop = Daemon::start_manual_sync(&subdir(&dir, "laptop"), &server.url());
    let phone = Daemon::start_manual_sync(&subdir(&dir, "phone"), &server.url());
    laptop.ctl(&["undo"]).assert_says(1, "to undo");
    let id = laptop.add_id("Buy milk");
    laptop.ctl(&["edit", &id, "--title", "Buy oat milk", "--done"]);
    let undone = laptop.ctl(&["--json", "undo"]).json();
    assert_eq!(undone["title"], "Buy milk");
    assert_eq!(undone["completed"], false);
    assert_eq!(laptop.sync().0, 0);
    assert_eq!(phone.sync().0, 0);
    assert_eq!(phone.show(&id)["title"], "Buy milk");

    // After an add, undo deletes the task; a deletion is not undone.
    let typo = laptop.add_id("Bye milk");
    let gone = laptop.ctl(&["--json", "undo", &typo]).json();
    assert_eq!(gone["is_deleted"], true);
    laptop
        .ctl(&["undo", &typo])
        .assert_says(1, "cannot be undone");
}
