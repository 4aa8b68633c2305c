//! Taskwarrior interop against the real `task` binary: `task export` -> `taskctl import` ->
//! `taskctl export` -> `task import`, and malformed exports refused as a whole.
//!
//! Without `task` installed the test prints a notice and passes, except under `CI=true`,
//! where it fails: CI installs Taskwarrior (`.ci/run`), so it never passes without it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use tasksync_e2e::{bin, subdir, Ctl, Daemon};

/// A Taskwarrior of its own: a data folder and an rc file, in UTC so dates are fixed.
struct Taskwarrior {
    data: PathBuf,
    rc: PathBuf,
}

impl Taskwarrior {
    fn new(dir: &tempfile::TempDir, name: &str) -> Taskwarrior {
        let data = subdir(dir, name);
        let rc = data.join("taskrc");
        let settings = format!(
            "data.location={}\nconfirmation=off\nverbose=nothing\nhooks=off\n\
             uda.estimate.type=numeric\nuda.estimate.label=Estimate\n",
            data.display()
        );
        std::fs::write(&rc, settings).expect("write a taskrc");
        Taskwarrior { data, rc }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("task");
        command
            .env("TASKRC", &self.rc)
            .env("TASKDATA", &self.data)
            .env("TZ", "UTC")
            .arg("rc.confirmation=off")
            .arg("rc.verbose=nothing");
        command
    }

    /// Runs `task ARGS`, which must succeed; returns stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run task");
        assert!(
            output.status.success(),
            "task {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `task export`, as text and as the tasks by uuid.
    fn export(&self) -> (String, Vec<Value>) {
        let text = self.run(&["export"]);
        let tasks: Value = serde_json::from_str(&text).expect("task export is a JSON array");
        (text, tasks.as_array().expect("an array").clone())
    }
}

/// Whether `task` runs here; `false` after a notice when it does not and CI is not `true`.
fn taskwarrior_installed() -> bool {
    match Command::new("task").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        outcome => {
            let why = match outcome {
                Ok(output) => format!("`task --version` exited with {}", output.status),
                Err(e) => format!("`task` cannot run: {e}"),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why} (CI=true: the Taskwarrior tests must run; .ci/run installs it)");
            }
            eprintln!(
                "\n*** SKIPPED the Taskwarrior interop test: {why}; install taskwarrior ***\n"
            );
            false
        }
    }
}

fn by_title<'a>(tasks: &'a [Value], key: &str, title: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t[key] == title)
        .unwrap_or_else(|| panic!("no task {title:?} in {tasks:?}"))
}

fn list_all(daemon: &Daemon) -> Vec<Value> {
    let list = daemon.ctl(&["--json", "list", "--all"]).json();
    list.as_array().expect("list --json is an array").clone()
}

/// `taskctl import -` with `text` on stdin.
fn import_stdin(daemon: &Daemon, text: &str) -> Ctl {
    let mut child = Command::new(bin("taskctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--json", "import", "-"])
        .env_remove("TASKSYNC_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run taskctl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("write stdin");
    drop(stdin);
    Ctl {
        output: child.wait_with_output().expect("taskctl finishes"),
    }
}

/// The fields a trip through both programs must keep, of one `task export` object.
fn round_tripped(task: &Value) -> Value {
    let annotations: Vec<Value> = task["annotations"]
        .as_array()
        .map(|a| a.iter().map(|a| a["description"].clone()).collect())
        .unwrap_or_default();
    serde_json::json!({
        "description": task["description"],
        "status": task["status"],
        "due": task["due"],
        "priority": task["priority"],
        "project": task["project"],
        "tags": task["tags"],
        "estimate": task["estimate"],
        "annotations": annotations,
    })
}

#[test]
fn taskwarrior_exports_round_trip_through_taskctl() {
    if !taskwarrior_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&subdir(&dir, "daemon"));
    let tw = Taskwarrior::new(&dir, "tw");

    tw.run(&[
        "add",
        "Buy gifts",
        "due:2026-12-24",
        "priority:H",
        "project:home",
        "+xmas",
        "+errand",
        "estimate:2.5",
    ]);
    tw.run(&["add", "Read book", "+leisure"]);
    tw.run(&["add", "Old idea", "priority:L"]);
    tw.run(&["add", "Write report", "project:work"]);
    let (_, made) = tw.export();
    let uuid = |title: &str| {
        by_title(&made, "description", title)["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (gifts, book, idea) = (uuid("Buy gifts"), uuid("Read book"), uuid("Old idea"));
    tw.run(&[&gifts, "annotate", "remember the paper"]);
    tw.run(&[&book, "done"]);
    tw.run(&[&idea, "delete"]);
    let (exported, tw_tasks) = tw.export();
    let file = dir.path().join("tw.json");
    std::fs::write(&file, &exported).unwrap();

    // task export -> taskctl import: every mapped field arrives.
    let imported = daemon.ctl(&["import", file.to_str().unwrap()]);
    assert_eq!(imported.code(), 0, "{}", imported.stderr());
    assert_eq!(
        imported.stdout().trim(),
        "imported 4: 4 created, 0 updated, 0 unchanged"
    );
    let tasks = list_all(&daemon);
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    let task = by_title(&tasks, "title", "Buy gifts");
    assert_eq!(task["id"], gifts.as_str(), "the uuid is kept");
    let annotated = by_title(&tw_tasks, "description", "Buy gifts");
    let day = annotated["annotations"][0]["entry"].as_str().unwrap();
    let day = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..8]);
    assert_eq!(task["description"], format!("{day} remember the paper"));
    assert_eq!(task["completed"], false);
    assert_eq!(task["is_deleted"], false);
    assert_eq!(task["due"], "2026-12-24T00:00:00.000Z");
    assert_eq!(task["priority"], "H");
    assert_eq!(task["project"], "home");
    assert_eq!(task["tags"], serde_json::json!(["errand", "xmas"]));
    assert_eq!(
        task["attributes"],
        serde_json::json!({"tw.estimate": "2.5"})
    );
    assert!(
        task["number"].is_u64(),
        "an open task gets a number: {task}"
    );
    let book_task = by_title(&tasks, "title", "Read book");
    assert_eq!(book_task["completed"], true);
    assert_eq!(book_task["tags"], serde_json::json!(["leisure"]));
    assert!(book_task["attributes"]["tw.end"].is_string(), "{book_task}");
    let idea_task = by_title(&tasks, "title", "Old idea");
    assert_eq!(idea_task["is_deleted"], true);
    assert_eq!(idea_task["priority"], "L");
    let report = by_title(&tasks, "title", "Write report");
    assert_eq!(report["project"], "work");
    assert_eq!(report["description"], Value::Null);

    // The same export again (through stdin) changes nothing.
    let again = import_stdin(&daemon, &exported).json();
    assert_eq!(
        again,
        serde_json::json!({"created": 0, "updated": 0, "unchanged": 4})
    );
    assert_eq!(list_all(&daemon), tasks, "a second import changes nothing");

    // A task changed in Taskwarrior is one update.
    tw.run(&[&gifts, "modify", "priority:M"]);
    let (changed, _) = tw.export();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(&changed_file, &changed).unwrap();
    let summary = daemon
        .ctl(&["--json", "import", changed_file.to_str().unwrap()])
        .json();
    assert_eq!(
        summary,
        serde_json::json!({"created": 0, "updated": 1, "unchanged": 3})
    );
    let tasks = list_all(&daemon);
    assert_eq!(by_title(&tasks, "title", "Buy gifts")["priority"], "M");
    let (_, tw_tasks) = tw.export();

    // taskctl export -> task import into a fresh Taskwarrior: the same tasks come back.
    let export = daemon.ctl(&["export"]);
    assert_eq!(export.code(), 0, "{}", export.stderr());
    let exported: Value = serde_json::from_str(&export.stdout()).expect("export is JSON");
    assert_eq!(exported.as_array().map(Vec::len), Some(4), "{exported}");
    let export_file = dir.path().join("taskctl.json");
    std::fs::write(&export_file, export.stdout()).unwrap();
    let fresh = Taskwarrior::new(&dir, "tw2");
    fresh.run(&["import", export_file.to_str().unwrap()]);
    let (_, fresh_tasks) = fresh.export();
    assert_eq!(fresh_tasks.len(), 4, "{fresh_tasks:?}");
    for original in &tw_tasks {
        let back = fresh_tasks
            .iter()
            .find(|t| t["uuid"] == original["uuid"])
            .unwrap_or_else(|| panic!("{} did not come back", original["uuid"]));
        assert_eq!(round_tripped(back), round_tripped(original));
    }

    // Malformed exports are refused with their place, and nothing is imported.
    let before = list_all(&daemon);
    let line = |title: &str| {
        serde_json::json!({
            "uuid": uuid::Uuid::now_v7().to_string(),
            "description": title,
            "entry": "20261203T080000Z",
            "status": "pending",
        })
        .to_string()
    };
    let bad_json = dir.path().join("bad-json.json");
    std::fs::write(
        &bad_json,
        format!("{}\n{{\"uuid\": \"oops\",\n", line("fine")),
    )
    .unwrap();
    let refused = daemon.ctl(&["import", bad_json.to_str().unwrap()]);
    refused.assert_says(1, "line 2");
    assert!(
        refused.stderr().contains("nothing was imported"),
        "{}",
        refused.stderr()
    );

    let control = dir.path().join("control.json");
    let bell = line("rings \u{7} a bell");
    assert!(bell.contains("\\u0007"), "{bell}");
    std::fs::write(&control, format!("[\n{},\n{bell}\n]\n", line("fine"))).unwrap();
    let refused = daemon.ctl(&["--json", "import", control.to_str().unwrap()]);
    assert_eq!(refused.code(), 1);
    let error = refused.assert_json_error("invalid_input", "element 2");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("control"), "{message}");
    assert_eq!(list_all(&daemon), before, "nothing was imported");
}
