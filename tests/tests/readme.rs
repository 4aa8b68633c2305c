//! README's shell examples run as written: the `taskctl` lines of the quick start and of
//! "Syncing between devices" run, through `sh`, against a temporary daemon (and sync server),
//! so the README cannot drift from what the programs accept.

use std::path::{Path, PathBuf};
use std::process::Command;

use tasksync_e2e::{subdir, Daemon, Server};

fn readme() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("README.md")).expect("README.md")
}

/// The lines of the first ```sh block after the heading `heading`.
fn shell_block(readme: &str, heading: &str) -> Vec<String> {
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no sh block under {heading:?}"))
        .0;
    block.lines().map(str::to_string).collect()
}

/// Splits a block into the lines that run `taskctl` and the others, which must be among
/// `setup` (starting programs, building): a new kind of line is a decision for this test.
fn taskctl_lines(block: &[String], setup: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    for line in block {
        let command = line.trim();
        if command.is_empty() || command.starts_with('#') {
            continue;
        }
        if command.contains("taskctl ") {
            lines.push(command.to_string());
        } else {
            assert!(
                setup.iter().any(|s| command.starts_with(s)),
                "README line this test does not know how to run: {command:?}"
            );
        }
    }
    lines
}

/// Runs `lines` with `sh -e`, the built binaries first on PATH and the daemon's socket as the
/// default; returns stdout.
fn run(lines: &[String], socket: &Path) -> String {
    let bin_dir: PathBuf = tasksync_e2e::bin("taskctl").parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let script = format!("set -e\n{}\n", lines.join("\n"));
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("TASKSYNC_SOCKET", socket)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "README lines failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_quick_start_runs_as_written() {
    let block = shell_block(&readme(), "## Quick start");
    let lines = taskctl_lines(
        &block,
        &["cargo build", "export PATH=", "tasksyncd &", "kill %1"],
    );
    assert!(
        lines.iter().any(|l| l.starts_with("taskctl show")),
        "{lines:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let out = run(&lines, &daemon.socket);
    assert!(out.contains("Buy milk"), "{out}");
    assert!(out.contains("Fix the bike"), "show printed the task: {out}");
    let tasks = daemon.ctl(&["--json", "list", "--all"]).json();
    let titles: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    for title in [
        "Buy milk",
        "Call the plumber",
        "Fix the bike",
        "Fix --verbose flag",
    ] {
        assert!(titles.contains(&title), "{title} not in {titles:?}");
    }
}

#[test]
fn the_sync_example_runs_as_written() {
    let block = shell_block(&readme(), "## Syncing between devices");
    let lines = taskctl_lines(&block, &["tasksync-server --listen", "tasksyncd --server"]);
    assert!(
        lines.iter().any(|l| l.starts_with("taskctl sync")),
        "{lines:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let daemon = Daemon::start_manual_sync(&subdir(&dir, "device"), &server.url());
    let out = run(&lines, &daemon.socket);
    assert!(out.contains("synced 1"), "{out}");
    assert_eq!(server.tasks().len(), 1);
}

/// The local API examples find the socket with `taskctl status`, whether or not
/// `XDG_RUNTIME_DIR` is set; the `curl` lines themselves are HTTP examples (docs/LOCAL-API.md
/// and tests/http_api.rs cover the routes), and the last one streams forever.
#[test]
fn the_local_api_example_finds_the_socket() {
    let block = shell_block(&readme(), "## How apps connect: the local API");
    let find = block
        .iter()
        .find(|l| l.starts_with("SOCK="))
        .expect("a SOCK= line");
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let lines = vec![find.clone(), "echo \"$SOCK\"".to_string()];
    let out = run(&lines, &daemon.socket);
    assert_eq!(out.trim(), daemon.socket.display().to_string());
}
