//! taskctl's command line, checked without a daemon.

use std::process::Command;

fn taskctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskctl"));
    command.env_remove("TASKSYNC_SOCKET");
    command
}

#[test]
fn version_and_usage_errors() {
    let out = taskctl().arg("--version").output().unwrap();
    assert!(out.status.success());
    let out = taskctl().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a command is required");
    let out = taskctl()
        .args(["list", "--sync-status", "done"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sync status"));
    let out = taskctl()
        .args(["list", "--done", "--open"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--done and --open exclude each other"
    );
}

#[test]
fn the_socket_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-env.sock");
    let out = taskctl()
        .env("TASKSYNC_SOCKET", &socket)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&socket.display().to_string()));
}
