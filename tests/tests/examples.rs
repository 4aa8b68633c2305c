//! The example clients of `examples/` (Python and Node, standard library only) against a real
//! daemon: each lists page by page, creates with a retry-safe id, edits with If-Match (and
//! handles the 412 of a stale one), deletes, follows the event stream until it sees the
//! delete, and then resumes the stream across a restart of the daemon with Last-Event-ID.
//! Under CI (`CI` set) a missing interpreter is a failure, elsewhere a skip.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tasksync_e2e::{wait_until, Daemon, DEADLINE};

fn run_example(interpreter: &str, script: &str) {
    if Command::new(interpreter)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "{interpreter} is needed to run {script} in CI"
        );
        eprintln!("skipped: {interpreter} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    for i in 1..=5 {
        daemon.add(&format!("already there {i}"));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let mut child = Command::new(interpreter)
        .arg(&script)
        .arg(&daemon.socket)
        .arg("--wait-for-restart")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let collected = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    let said = |prefix: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
    };
    let exited = |child: &mut std::process::Child| child.try_wait().unwrap().is_some();
    wait_until("the example to follow events up to the delete", || {
        said("waiting for the daemon to restart").is_some() || exited(&mut child)
    });
    if !exited(&mut child) {
        // SIGTERM and start again on the same files: a new run, whose event ids are new.
        daemon.stop_with(libc::SIGTERM);
        daemon = daemon.restart().start();
    }
    let start = Instant::now();
    while !exited(&mut child) {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{} did not finish within {DEADLINE:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    // The reader thread has everything once the pipe closed; wait for its last line.
    wait_until("the example's output", || {
        said("resumed").is_some() || !output.status.success()
    });
    let stdout = lines.lock().unwrap().join("\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    assert_eq!(
        said("listed ").as_deref(),
        Some("listed 5 task(s) in 3 page(s)"),
        "{stdout}"
    );
    let created = said("created ").unwrap_or_else(|| panic!("no `created` line: {stdout}"));
    let id = created.trim_start_matches("created ");
    assert!(stdout.contains("stale If-Match refused (412)"), "{stdout}");
    assert!(
        stdout.contains(&format!("task {id} deleted (local)")),
        "{stdout}"
    );
    assert_eq!(
        said("resumed").as_deref(),
        Some("resumed after a restart: reset, listed 5 task(s)"),
        "{stdout}"
    );
    // What reached the store: the retried create and the refused edit added nothing; the
    // second tag is an update of that tag alone.
    let queue = daemon.ctl(&["--json", "queue"]).json();
    let ops: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["task_id"] == id)
        .map(|op| op["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["create", "update", "update", "update", "delete"],
        "{queue}"
    );
    let tag_update = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["task_id"] == id && op["operation"] == "update")
        .unwrap();
    assert_eq!(
        tag_update["changed_fields"].as_array().unwrap().len(),
        1,
        "{tag_update}"
    );
    let task = daemon.ctl(&["--json", "show", id]).json();
    assert_eq!(task["description"], "not stale");
    assert_eq!(task["is_deleted"], true);
    assert_eq!(task["priority"], "M");
    assert_eq!(task["tags"].as_array().unwrap().len(), 2, "{task}");
    assert!(task["due"].is_string(), "{task}");
}

#[test]
fn the_python_example_runs() {
    run_example("python3", "examples/python/tasks.py");
}

#[test]
fn the_node_example_runs() {
    run_example("node", "examples/node/tasks.mjs");
}
