//! The example clients of `examples/` (Python and Node, standard library only) against a real
//! daemon: each lists, creates with a retry-safe id and follows the event stream until it
//! sees its task. Under CI (`CI` set) a missing interpreter is a failure, elsewhere a skip.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tasksync_e2e::{Daemon, DEADLINE};

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
    let daemon = Daemon::start(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let mut child = Command::new(interpreter)
        .arg(&script)
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{} did not finish within {DEADLINE:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let created = stdout
        .lines()
        .find_map(|l| l.strip_prefix("created "))
        .unwrap_or_else(|| panic!("no `created` line: {stdout}"));
    assert!(
        stdout.contains(&format!("task {created} (local)")),
        "{stdout}"
    );
    // The retry added nothing: one task, one queued operation.
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
}

#[test]
fn the_python_example_runs() {
    run_example("python3", "examples/python/tasks.py");
}

#[test]
fn the_node_example_runs() {
    run_example("node", "examples/node/tasks.mjs");
}
