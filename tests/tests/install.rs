//! install.sh: installs the programs, man pages, completions and service files for one user,
//! makes the systemd unit follow the configured paths, and removes everything again.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Runs install.sh with a fresh home folder and the binaries this test run built.
fn install(home: &Path, args: &[&str]) -> String {
    let built = tasksync_e2e::bin("taskctl");
    let from = built.parent().unwrap();
    let output = Command::new("bash")
        .arg(repo().join("install.sh"))
        .args(["--from", from.to_str().unwrap(), "--no-start"])
        .args(["--prefix", home.join(".local").to_str().unwrap()])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .output()
        .expect("run install.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "install.sh {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn install_follows_the_configured_paths_and_uninstall_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    // A custom database and socket in the config file.
    let config = home.join(".config/tasksync/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let db = home.join("my data/tasks.db");
    let socket = home.join("sockets/tasksyncd.sock");
    std::fs::write(
        &config,
        format!(
            "db = {:?}\nsocket = {:?}\n",
            db.display().to_string(),
            socket.display().to_string()
        ),
    )
    .unwrap();

    install(home, &["--service", "systemd"]);
    let bin = home.join(".local/bin");
    for file in [
        bin.join("tasksyncd"),
        bin.join("taskctl"),
        home.join(".local/share/man/man1/taskctl.1"),
        home.join(".local/share/man/man1/taskctl-add.1"),
        home.join(".local/share/man/man1/tasksyncd.1"),
        home.join(".local/share/man/man1/tasksync-server.1"),
        home.join(".local/share/bash-completion/completions/taskctl"),
        home.join(".local/share/zsh/site-functions/_taskctl"),
        home.join(".config/fish/completions/taskctl.fish"),
    ] {
        assert!(file.exists(), "{} is missing", file.display());
    }
    let units = home.join(".config/systemd/user");
    let service = read(&units.join("tasksyncd.service"));
    assert!(
        service.contains(&format!("\nExecStart={}/tasksyncd\n", bin.display())),
        "{service}"
    );
    let paths = read(&units.join("tasksyncd.service.d/paths.conf"));
    let db_dir = home.join("my\\x20data").display().to_string();
    assert!(
        paths.contains(&format!("\nReadWritePaths={db_dir}\n")),
        "{paths}"
    );
    assert!(
        paths.contains(&format!("\nExecStartPre=+/bin/mkdir -p {db_dir}\n")),
        "{paths}"
    );
    let sockets = home.join("sockets").display().to_string();
    assert!(
        paths.contains(&format!("\nReadWritePaths=-{sockets}\n")),
        "{paths}"
    );
    let socket_unit = read(&units.join("tasksyncd.socket.d/paths.conf"));
    assert!(
        socket_unit.contains(&format!("\nListenStream={}\n", socket.display())),
        "{socket_unit}"
    );

    install(home, &["--service", "launchd"]);
    let agent = read(&home.join("Library/LaunchAgents/dev.tasksync.tasksyncd.plist"));
    assert!(
        agent.contains(&format!("<string>{}/tasksyncd</string>", bin.display())),
        "{agent}"
    );
    assert!(!agent.contains('@'), "every placeholder is filled: {agent}");

    install(home, &["--uninstall", "--service", "systemd"]);
    install(home, &["--uninstall", "--service", "launchd"]);
    let mut left: Vec<String> = Vec::new();
    for entry in walk(home) {
        left.push(entry.strip_prefix(home).unwrap().display().to_string());
    }
    left.sort();
    assert_eq!(
        left,
        [".config/tasksync/config.toml"],
        "only the user's settings stay"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
