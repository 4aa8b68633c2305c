//! tasksyncd's command line and the errors it gives before it serves anything.

use std::process::Command;

fn tasksyncd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasksyncd"));
    command
        .env_remove("TASKSYNC_DB")
        .env_remove("TASKSYNC_SOCKET");
    command
}

#[test]
fn version_and_usage() {
    let out = tasksyncd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = tasksyncd().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn an_unusable_database_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = tasksyncd()
        .arg("--db")
        .arg(blocker.join("tasks.db"))
        .arg("--socket")
        .arg(dir.path().join("run/s.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tasksyncd:") && stderr.contains(&blocker.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn a_database_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    std::fs::write(&db, "this is not a database, and it is mine").unwrap();
    let out = tasksyncd()
        .arg("--db")
        .arg(&db)
        .arg("--socket")
        .arg(dir.path().join("run/s.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "this is not a database, and it is mine"
    );
}

#[test]
fn printed_settings_pasted_into_a_config_file_give_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let print = |args: &[&str], env: &[(&str, &str)]| {
        let out = tasksyncd()
            .env_remove("TASKSYNC_CONFIG")
            .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
            .envs(env.iter().copied())
            .arg("--print-config")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = print(
        &[
            "--db",
            "relative.db",
            "--batch-size",
            "9",
            "--http",
            "localhost:0",
        ],
        &[
            ("TASKSYNC_MANUAL_SYNC", "true"),
            ("TASKSYNC_TOKEN", "hush-hush"),
        ],
    );
    assert!(
        !first.contains("hush-hush"),
        "secrets are not printed:\n{first}"
    );
    let config = dir.path().join("printed.toml");
    std::fs::write(&config, &first).unwrap();
    let second = print(&["--config", config.to_str().unwrap()], &[]);
    // Every value line, without the comment that says where it came from.
    let values = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
            .collect()
    };
    assert_eq!(values(&second), values(&first), "{first}\n{second}");
    assert!(
        second.contains("batch_size = 9") && second.contains("manual_sync = true"),
        "{second}"
    );
    for line in second.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("# config file"), "all from the file: {line}");
    }
}
