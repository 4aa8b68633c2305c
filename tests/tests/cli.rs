//! taskctl against the real daemon: outputs, exit codes, prefixes and bad input.

use serde_json::Value;
use tasksync_e2e::{ctl_at, Daemon};

#[test]
fn the_crud_flow_works_end_to_end_with_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());

    let plain = daemon.ctl(&["add", "Buy", "milk", "-d", "two litres"]);
    assert_eq!(plain.code(), 0, "{}", plain.stderr());
    let printed = plain.stdout();
    let milk_id = printed
        .trim()
        .strip_prefix("created task 1 (")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("add prints the number and id: {printed:?}"))
        .to_string();
    assert_eq!(
        milk_id.len(),
        36,
        "add prints the number and id: {printed:?}"
    );

    let bread = daemon.add("Bake bread");
    assert_eq!(bread["title"], "Bake bread");
    assert_eq!(bread["completed"], false);
    assert_eq!(bread["is_deleted"], false);
    assert_eq!(bread["sync_status"], "pending");
    assert_eq!(bread["description"], Value::Null);
    assert_eq!(bread["last_synced_at"], Value::Null);
    assert_eq!(bread["number"], 2);
    let bread_id = bread["id"].as_str().unwrap().to_string();

    let list = daemon.ctl(&["--json", "list"]).json();
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Buy milk", "Bake bread"],
        "no due dates or priorities: by number"
    );

    let shown = daemon.show(&milk_id);
    assert_eq!(shown["description"], "two litres");

    let edited = daemon
        .ctl(&[
            "--json",
            "edit",
            &milk_id,
            "--title",
            "Buy oat milk",
            "--done",
        ])
        .json();
    assert_eq!(edited["title"], "Buy oat milk");
    assert_eq!(edited["completed"], true);
    assert!(edited["updated_at"].as_str().unwrap() > shown["updated_at"].as_str().unwrap());

    let undone = daemon
        .ctl(&[
            "--json",
            "edit",
            &milk_id,
            "--undone",
            "--clear-description",
        ])
        .json();
    assert_eq!(undone["completed"], false);
    assert_eq!(undone["description"], Value::Null);

    let done = daemon.ctl(&["--json", "done", &bread_id]).json();
    assert_eq!(done["completed"], true);

    let removed = daemon.ctl(&["--json", "rm", &bread_id]).json();
    assert_eq!(removed["is_deleted"], true);
    assert_eq!(
        daemon
            .ctl(&["--json", "list"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let all = daemon.ctl(&["--json", "list", "--all"]).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let pending = daemon
        .ctl(&["--json", "list", "--all", "--sync-status", "pending"])
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 2);
    let synced = daemon
        .ctl(&["--json", "list", "--sync-status", "synced"])
        .json();
    assert_eq!(synced, Value::Array(vec![]));

    let status = daemon.status();
    assert_eq!(status["state"], "local-only");
    assert_eq!(status["online"], false);
    assert_eq!(status["server"], Value::Null);
    assert_eq!(status["pending"], 6, "2 creates, 2 edits, 1 done, 1 delete");
    assert_eq!(status["failed"], 0);
    assert_eq!(status["tasks"], 1);
    assert_eq!(status["deleted_tasks"], 1);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["device_id"].as_str().unwrap().len(), 36);
}

#[test]
fn human_output_is_short_and_messages_go_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let empty = daemon.ctl(&["list"]);
    assert_eq!(empty.code(), 0);
    assert_eq!(empty.stdout(), "");
    assert!(empty.stderr().contains("no tasks"));

    daemon.add("Water the plants");
    let list = daemon.ctl(&["list"]);
    let lines: Vec<String> = list.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("ID  AGE  DONE  SYNC"), "{lines:?}");
    assert!(lines[1].starts_with("1 ") && lines[1].ends_with("pending  Water the plants"));
    assert_eq!(lines[2], "1 task (1 open, 0 done)");

    let status = daemon.ctl(&["status"]);
    assert!(
        status.stdout().contains("local-only"),
        "{}",
        status.stdout()
    );
}

#[test]
fn repeated_done_and_rm_say_so_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let task = daemon.add("Water the plants");
    let id = task["id"].as_str().unwrap();

    let done = daemon.ctl(&["done", "1"]);
    assert_eq!(done.code(), 0, "{}", done.stderr());
    assert_eq!(done.stdout(), "completed task 1 \"Water the plants\"\n");
    let again = daemon.ctl(&["done", id]);
    assert_eq!(again.stdout(), "");
    again.assert_says(0, "already done; nothing changed");
    let json = daemon.ctl(&["--json", "done", id]).json();
    assert_eq!(json["completed"], true);
    assert_eq!(daemon.status()["pending"], 2, "create + done");

    let removed = daemon.ctl(&["rm", id]);
    assert_eq!(removed.code(), 0);
    assert!(
        removed.stdout().starts_with("deleted task "),
        "{}",
        removed.stdout()
    );
    let again = daemon.ctl(&["rm", id]);
    again.assert_says(0, "already deleted; nothing changed");
    let edit = daemon.ctl(&["--json", "edit", id, "--title", "x"]);
    assert_eq!(edit.code(), 1);
    edit.assert_json_error("not_found", "is deleted");
    assert_eq!(daemon.status()["pending"], 3, "+ delete");

    let failed = daemon.ctl(&["queue", "--failed"]);
    assert_eq!(failed.stdout(), "");
    failed.assert_says(0, "no dead-lettered operations");
    let queue = daemon.ctl(&["queue"]);
    let stdout = queue.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let task_column: Vec<&str> = lines[1..4]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert!(
        task_column.iter().all(|t| *t == &id[..8]),
        "{task_column:?}"
    );
    assert_eq!(lines[4], "3 operations (0 dead-lettered)");

    let sync = daemon.ctl(&["sync"]);
    assert_eq!(sync.stdout(), "", "nothing was tried, so no counts");
    sync.assert_says(4, "no sync server");
}

#[test]
fn ids_can_be_given_as_unique_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let a = daemon.add("a")["id"].as_str().unwrap().to_string();
    let b = daemon.add("b")["id"].as_str().unwrap().to_string();
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();

    let shown = daemon.ctl(&["--json", "show", &a[..common + 1]]).json();
    assert_eq!(shown["id"], a.as_str());
    let upper = daemon
        .ctl(&["--json", "show", &b[..common + 1].to_uppercase()])
        .json();
    assert_eq!(upper["id"], b.as_str());

    let ambiguous = daemon.ctl(&["show", &a[..common]]);
    assert_eq!(ambiguous.code(), 1);
    assert!(
        ambiguous.stderr().contains(&a) && ambiguous.stderr().contains(&b),
        "{}",
        ambiguous.stderr()
    );
    let ambiguous = daemon.ctl(&["--json", "done", &a[..common]]);
    assert_eq!(ambiguous.json_error()["error"]["code"], "ambiguous");

    assert_eq!(daemon.ctl(&["rm", &a]).code(), 0);
    let tombstone = daemon.ctl(&["--json", "show", &a[..common + 1]]).json();
    assert_eq!(
        tombstone["is_deleted"], true,
        "deleted tasks count for prefixes"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let kept = daemon.add("keep me");
    let kept_id = kept["id"].as_str().unwrap();

    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec!["add".into(), "   ".into()],
            "invalid_input",
            "title must not be empty",
        ),
        (
            vec!["add".into(), "x".repeat(501)],
            "invalid_input",
            "limit is 500",
        ),
        (
            vec!["add".into(), "t".into(), "-d".into(), "d".repeat(10_001)],
            "invalid_input",
            "limit is 10000",
        ),
        (
            vec!["show".into(), "not-an-id!".into()],
            "invalid_input",
            "invalid task id",
        ),
        (
            vec!["show".into(), "ffffffff".into()],
            "not_found",
            "no task matches ffffffff",
        ),
        (
            vec![
                "edit".into(),
                "ffffffff-ffff-7fff-bfff-ffffffffffff".into(),
                "--done".into(),
            ],
            "not_found",
            "no task matches",
        ),
        (
            vec!["rm".into(), "ffffffff".into()],
            "not_found",
            "no task matches",
        ),
        (
            vec!["edit".into(), kept_id.to_string()],
            "invalid_input",
            "nothing to change",
        ),
        (
            vec![
                "edit".into(),
                kept_id.to_string(),
                "--title".into(),
                "".into(),
            ],
            "invalid_input",
            "title must not be empty",
        ),
    ];
    for (args, code, message) in cases {
        let mut json_args = vec!["--json"];
        json_args.extend(args.iter().map(String::as_str));
        let run = daemon.ctl(&json_args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stderr());
        assert_eq!(run.stdout(), "", "{args:?}");
        run.assert_json_error(code, message);

        let plain = daemon.ctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(plain.code(), 1);
        assert!(
            plain.stderr().starts_with("taskctl: "),
            "{}",
            plain.stderr()
        );
    }

    let usage = daemon.ctl(&["edit", kept_id, "--done", "--undone"]);
    assert_eq!(usage.code(), 2, "usage errors exit 2");
    let status = daemon.status();
    assert_eq!(status["pending"], 1, "only the first add was queued");
    let list = daemon.ctl(&["--json", "list", "--all"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["title"], "keep me");
}

#[test]
fn taskctl_says_when_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-home.sock");
    let run = ctl_at(&socket, &["list"]);
    assert_eq!(run.code(), 3);
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("not running") && stderr.contains("start it with `tasksyncd`"),
        "{stderr}"
    );

    let json = ctl_at(&socket, &["--json", "status"]);
    assert_eq!(json.code(), 3);
    assert_eq!(json.json_error()["error"]["code"], "unavailable");
}

#[test]
fn a_queue_longer_than_one_frame_lists_completely() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    tasksync_e2e::block_on(async {
        let mut client = tasksync_proto::Client::connect(&daemon.socket, "filler")
            .await
            .unwrap();
        // Pipelined in windows of 100: a client must read answers as it goes.
        for window in 0..25 {
            for i in 0..100 {
                let command = tasksync_proto::Command::CreateTask(tasksync_proto::NewTask {
                    title: format!("task {window}-{i}"),
                    description: None,
                    id: None,
                    ..Default::default()
                });
                client.send(command).await.unwrap();
            }
            for _ in 0..100 {
                let (_, result) = client.receive_response().await.unwrap();
                assert!(result.is_ok());
            }
        }
    });
    let queue = daemon.ctl(&["--json", "queue"]).json();
    let entries = queue.as_array().unwrap();
    assert_eq!(entries.len(), 2500, "every page was fetched");
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["created_at"].as_str() <= w[1]["created_at"].as_str()),
        "oldest first"
    );
}

/// A title word that starts with '-' is an unknown option to clap; after `--` it is a word of
/// the title, and the error for the first form says so (clap's own suggested `--help` and
/// printed a usage line with `--help` in it).
#[test]
fn title_words_with_leading_dashes_work_after_double_dash_and_the_error_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());

    let refused = daemon.ctl(&["add", "Fix", "--the", "bug"]);
    refused.assert_says(2, "unexpected argument '--the'");
    let stderr = refused.stderr();
    assert!(stderr.contains("taskctl add -- Fix --the bug"), "{stderr}");
    assert!(
        stderr.contains("Usage: taskctl add [OPTIONS] <TITLE>..."),
        "{stderr}"
    );
    assert!(!stderr.contains("--help <TITLE>"), "{stderr}");
    assert_eq!(daemon.status()["tasks"], 0, "nothing was created");

    let task = daemon
        .ctl(&["--json", "add", "--", "Fix", "--the", "bug"])
        .json();
    assert_eq!(task["title"], "Fix --the bug");
    let task = daemon
        .ctl(&["--json", "add", "-d", "text", "Fix", "--", "-x", "now"])
        .json();
    assert_eq!(task["title"], "Fix -x now");
    assert_eq!(task["description"], "text");

    // Other commands keep clap's own message, with its suggestion.
    let typo = daemon.ctl(&["list", "--opne"]);
    typo.assert_says(2, "'--open'");
}

/// `--help` names the socket taskctl will really use: under `$XDG_RUNTIME_DIR` when that is
/// set, else the private folder under the temp dir.
#[test]
fn help_shows_the_default_socket_as_it_is_here() {
    let tmp = tempfile::tempdir().unwrap();
    let help = |runtime: Option<&str>| {
        let mut command = std::process::Command::new(tasksync_e2e::bin("taskctl"));
        command
            .arg("--help")
            .env_remove("TASKSYNC_SOCKET")
            .env("TMPDIR", tmp.path());
        match runtime {
            Some(dir) => command.env("XDG_RUNTIME_DIR", dir),
            None => command.env_remove("XDG_RUNTIME_DIR"),
        };
        let output = command.output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let unset = help(None);
    let expected = format!(
        "[default: {}/tasksync-{uid}/tasksyncd.sock]",
        tmp.path().display()
    );
    assert!(unset.contains(&expected), "{expected} not in:\n{unset}");
    assert!(!unset.contains("$XDG_RUNTIME_DIR"), "{unset}");
    let set = help(Some("/run/user/4242"));
    assert!(
        set.contains("[default: /run/user/4242/tasksync/tasksyncd.sock]"),
        "{set}"
    );
}

/// A socket whose folder (0700, the daemon's) does not let this user in: the daemon runs, and
/// taskctl says that it refuses this user rather than that it is not running. As root, taskctl
/// runs as `nobody`; otherwise the folder is made unreadable for the daemon's own user.
#[test]
fn permission_denied_says_the_daemon_refuses_this_user() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().unwrap();
    // Let others through the test folder, so that only the socket's folder stops them.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = Daemon::start(dir.path());
    let folder = daemon.socket.parent().unwrap().to_path_buf();
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    if !root {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let run = |json: bool| {
        let mut command = std::process::Command::new(tasksync_e2e::bin("taskctl"));
        command.arg("--socket").arg(&daemon.socket);
        if json {
            command.arg("--json");
        }
        command.arg("status").env_remove("TASKSYNC_SOCKET");
        if root {
            command.uid(65534).gid(65534);
        }
        command.output().unwrap()
    };
    let plain = run(false);
    let json = run(true);
    if !root {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains(&folder.display().to_string()), "{stderr}");
    assert!(stderr.contains("mode 0700") || !root, "{stderr}");
    assert!(stderr.contains("will not serve this user"), "{stderr}");
    assert!(!stderr.contains("not running"), "{stderr}");
    let error: Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["error"]["code"], "permission_denied", "{error}");
    // The daemon is unharmed and serves its own user.
    assert_eq!(daemon.status()["tasks"], 0);
}

/// `taskctl ARGS` with `TZ=UTC`, so that date words read the same everywhere.
fn utc(daemon: &Daemon, args: &[&str]) -> tasksync_e2e::Ctl {
    daemon.ctl_env(args, &[("TZ", "UTC")])
}

#[test]
fn words_set_and_clear_the_fields_of_add_and_modify() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let add = utc(
        &daemon,
        &[
            "add",
            "Buy",
            "milk",
            "+shop",
            "project:home",
            "due:2026-12-24T17:00",
            "pri:h",
            "+dairy",
        ],
    );
    assert_eq!(add.code(), 0, "{}", add.stderr());
    let task = daemon.show("1");
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["tags"], serde_json::json!(["dairy", "shop"]));
    assert_eq!(task["project"], "home");
    assert_eq!(task["due"], "2026-12-24T17:00:00.000Z");
    assert_eq!(task["priority"], "H");
    assert_eq!(task["attributes"], serde_json::json!({}));

    // After `--` every word is title.
    let literal = daemon
        .ctl(&["--json", "add", "Fix", "--", "+x", "pri:H"])
        .json();
    assert_eq!(literal["title"], "Fix +x pri:H");
    assert_eq!(literal["tags"], serde_json::json!([]));
    assert_eq!(literal["priority"], Value::Null);

    let modified = utc(
        &daemon,
        &["--json", "modify", "1", "+urgent", "-shop", "due:", "pri:"],
    );
    assert_eq!(modified.code(), 0, "{}", modified.stderr());
    let task = modified.json();
    assert_eq!(task["tags"], serde_json::json!(["dairy", "urgent"]));
    assert_eq!(task["due"], Value::Null);
    assert_eq!(task["priority"], Value::Null);
    assert_eq!(task["project"], "home", "not named, not changed");
    assert_eq!(task["title"], "Buy milk", "no text words, same title");

    let renamed = daemon
        .ctl(&["--json", "modify", "1", "Buy", "oat", "milk", "project:"])
        .json();
    assert_eq!(renamed["title"], "Buy oat milk");
    assert_eq!(renamed["project"], Value::Null);
    assert_eq!(renamed["tags"], serde_json::json!(["dairy", "urgent"]));

    let shown = utc(&daemon, &["modify", "2", "due:2030-01-02", "project:a.b"]);
    assert_eq!(shown.code(), 0, "{}", shown.stderr());
    let stdout = shown.stdout();
    assert!(
        stdout.contains("\ndue           2030-01-02 00:00 (UTC), in "),
        "{stdout}"
    );
    assert!(stdout.contains("\nproject       a.b\n"), "{stdout}");
    assert!(stdout.contains("\ntags          -\n"), "{stdout}");
}

#[test]
fn list_filters_with_words_and_orders_by_due_priority_number() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    for words in [
        &["plain"][..],
        &["low", "pri:L"],
        &["later", "due:2099-01-02", "+shop"],
        &["soon", "due:2099-01-01", "pri:L", "project:home.garden"],
        &[
            "soon high",
            "due:2099-01-01",
            "pri:H",
            "+shop",
            "project:home",
        ],
        &["high", "pri:H", "project:homework"],
    ] {
        let mut args = vec!["add"];
        args.extend(words);
        let run = utc(&daemon, &args);
        assert_eq!(run.code(), 0, "{words:?}: {}", run.stderr());
    }
    daemon.add("finished");
    assert_eq!(daemon.ctl(&["done", "7"]).code(), 0);
    let titles = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "list"];
        all.extend(args);
        let run = utc(&daemon, &all);
        assert_eq!(run.code(), 0, "{args:?}: {}", run.stderr());
        run.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        titles(&[]),
        ["soon high", "soon", "later", "high", "low", "plain"],
        "due first, then priority, then number; done tasks left out"
    );
    assert_eq!(
        titles(&["--all"]),
        [
            "soon high",
            "soon",
            "later",
            "high",
            "low",
            "plain",
            "finished"
        ]
    );
    assert_eq!(titles(&["+shop"]), ["soon high", "later"]);
    assert_eq!(titles(&["+shop", "-later"]), ["soon high", "later"]);
    assert_eq!(
        titles(&["-shop"]),
        ["soon", "high", "low", "plain"],
        "-tag: has not"
    );
    assert_eq!(titles(&["project:home"]), ["soon high", "soon"]);
    assert_eq!(titles(&["pri:H"]), ["soon high", "high"]);
    assert_eq!(titles(&["due.before:2099-01-02"]), ["soon high", "soon"]);
    assert_eq!(titles(&["due.after:2099-01-01"]), ["later"]);
    assert_eq!(titles(&["+shop", "pri:h"]), ["soon high"]);

    // The table shows the new columns, relative due dates, and leaves empty ones out.
    let table = utc(&daemon, &["list"]).stdout();
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("DUE") && header.contains("PRI") && header.contains("PROJECT"),
        "{table}"
    );
    assert!(table.contains("home.garden"), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("in "), "{table}");
    let plain = utc(&daemon, &["list", "pri:L", "-shop", "due.after:2000-01-01"]).stdout();
    let header = plain.lines().next().unwrap();
    assert!(
        header.contains("DUE") && !header.contains("TAGS"),
        "{plain}"
    );
}

#[test]
fn bad_words_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    daemon.add("keep me");
    for (args, named) in [
        (&["add", "x", "due:someday"][..], "due:someday"),
        (&["add", "x", "pri:X"], "pri:X"),
        (&["add", "x", "+"], "\"+\""),
        (&["add", "x", "project:"], "project:"),
        (&["modify", "1", "due:never"], "due:never"),
        (&["modify", "1", "+a b"], "+a b"),
        (&["list", "milk"], "milk"),
        (&["list", "due.before:soon"], "due.before:soon"),
    ] {
        let run = daemon.ctl(args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains(named), "{args:?}: {}", run.stderr());
        assert_eq!(run.stdout(), "", "{args:?}");
        let mut json = vec!["--json"];
        json.extend(args);
        daemon.ctl(&json).assert_json_error("invalid_input", named);
    }
    daemon
        .ctl(&["--json", "modify", "1"])
        .assert_json_error("invalid_input", "nothing to change");
    assert_eq!(
        daemon.status()["pending"],
        1,
        "only the first add was queued"
    );
    let task = daemon.show("1");
    assert_eq!(task["title"], "keep me");
    assert_eq!(task["due"], Value::Null);
}

#[test]
fn completion_offers_numbers_tags_and_projects_from_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    daemon.ctl(&["add", "a", "+shop", "project:home.garden"]);
    daemon.ctl(&["add", "b", "+work"]);
    daemon.ctl(&["add", "c"]);
    daemon.ctl(&["done", "3"]);
    let complete = |line: &[&str]| -> Vec<String> {
        let mut args = vec!["__complete", "--", "taskctl"];
        args.extend(line);
        let run = daemon.ctl(&args);
        assert_eq!(run.code(), 0, "{line:?}: {}", run.stderr());
        run.stdout().lines().map(String::from).collect()
    };
    assert_eq!(complete(&["show", ""]), ["1", "2"], "open tasks' numbers");
    assert_eq!(complete(&["modify", "1"]), ["1"]);
    assert_eq!(complete(&["add", "x", "+"]), ["+shop", "+work"]);
    assert_eq!(complete(&["modify", "2", "-s"]), ["-shop"]);
    assert_eq!(complete(&["list", "proj"]), ["project:home.garden"]);
    assert!(complete(&["status", ""]).is_empty());

    // No daemon: nothing, quickly, and success.
    let gone = dir.path().join("nobody.sock");
    let started = std::time::Instant::now();
    let run = ctl_at(&gone, &["__complete", "--", "taskctl", "show", ""]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // The bash script is valid bash and registers the hook.
    if let Ok(script) = std::process::Command::new("bash")
        .arg("-c")
        .arg("source /dev/stdin && complete -p taskctl")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        let mut child = script;
        let text = ctl_at(&gone, &["completions", "bash"]).stdout();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("_taskctl_with_tasks"));
    }
}
