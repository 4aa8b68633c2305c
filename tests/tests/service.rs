//! The daemon as a service: configuration precedence and errors, SIGTERM mid-flush, SIGHUP
//! reloads, readiness notification, socket activation, and journal-friendly logs.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tasksync_e2e::notify::NotifySocket;
use tasksync_e2e::scripted::{accepting, Scripted};
use tasksync_e2e::{bin, ctl_at, subdir, wait_until, Daemon, DaemonBuilder};

/// `tasksyncd --print-config` run as `daemon` says.
fn print_config(daemon: DaemonBuilder) -> std::process::Output {
    let mut command = daemon.arg("--print-config").command();
    command.stdout(std::process::Stdio::piped());
    command.output().unwrap()
}

#[test]
fn each_level_of_configuration_overrides_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "batch_size = 7\nretry_attempts = 5\npull_interval_ms = 1234\ntoken = \"hush\"\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let out = print_config(
        Daemon::builder(dir.path())
            .args(&["--config", &config_arg, "--batch-size", "9"])
            .env("SYNC_RETRY_ATTEMPTS", "6"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{text}"))
            .to_string()
    };
    assert!(
        line("batch_size").contains("= 9") && line("batch_size").contains("flag --batch-size"),
        "{text}"
    );
    assert!(
        line("retry_attempts").contains("= 6")
            && line("retry_attempts").contains("environment SYNC_RETRY_ATTEMPTS"),
        "{text}"
    );
    assert!(
        line("pull_interval_ms").contains("= 1234")
            && line("pull_interval_ms").contains(&config_arg),
        "{text}"
    );
    assert!(
        line("probe_max_ms").contains("= 2000") && line("probe_max_ms").contains("# default"),
        "{text}"
    );
    assert!(
        !text.contains("hush") && text.contains("# token = (a secret: not printed)"),
        "tokens are not printed:\n{text}"
    );
}

#[test]
fn a_typo_in_the_config_file_stops_the_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "batch_sise = 7\n").unwrap();
    let config_arg = config.display().to_string();
    let daemon = Daemon::builder(dir.path()).args(&["--config", &config_arg]);
    let (code, message) = daemon.clone().run_to_exit();
    assert_eq!(code, Some(1));
    assert!(
        message.contains("batch_sise") && message.contains(&config_arg),
        "{message}"
    );
    assert!(
        !dir.path().join("data/tasks.db").exists(),
        "nothing was touched"
    );

    std::fs::write(&config, "retry_attempts = 0\n").unwrap();
    let (code, message) = daemon.run_to_exit();
    assert_eq!(code, Some(1));
    assert!(
        message.contains("retry_attempts = 0 is out of range"),
        "{message}"
    );
}

#[test]
fn the_default_config_file_is_read_from_xdg_config_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = subdir(&dir, "xdg");
    std::fs::create_dir_all(home.join("tasksync")).unwrap();
    std::fs::write(home.join("tasksync/config.toml"), "batch_size = 11\n").unwrap();
    let out =
        print_config(Daemon::builder(dir.path()).env("XDG_CONFIG_HOME", home.to_str().unwrap()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("batch_size = 11")),
        "{text}"
    );
}

#[test]
fn sighup_reloads_the_batch_size_and_survives_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(accepting(|_| None));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = {:?}\nmanual_sync = true\nbatch_size = 7\n",
            scripted.url()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    // The daemon tells its service manager when a reload begins (RELOADING=1) and when it is
    // over, whether the file was good or not (READY=1).
    let manager = NotifySocket::bind(dir.path());
    let mut daemon = Daemon::builder(&subdir(&dir, "device"))
        .args(&["--config", &config_arg])
        .env("NOTIFY_SOCKET", manager.env())
        .start();
    manager.until("READY=1");
    let reload = || {
        let logged = daemon.log_text().len();
        unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
        manager.until("RELOADING=1");
        manager.until("READY=1");
        // What the reload logged.
        daemon.log_text()[logged..].to_string()
    };
    let add = |n: usize| {
        for i in 0..n {
            assert_eq!(daemon.ctl(&["add", &format!("task {i}")]).code(), 0);
        }
    };
    let sizes_since = |from: usize| -> Vec<usize> {
        scripted.batches()[from..]
            .iter()
            .map(|b| b["items"].as_array().unwrap().len())
            .collect()
    };
    let errors = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(" ERROR "))
            .map(str::to_string)
            .collect()
    };

    std::fs::write(
        &config,
        format!(
            "server_url = {:?}\nmanual_sync = true\nbatch_size = 3\n",
            scripted.url()
        ),
    )
    .unwrap();
    let logged = reload();
    assert_eq!(
        errors(&logged),
        Vec::<String>::new(),
        "a good file: {logged}"
    );
    add(8);
    assert_eq!(daemon.ctl(&["sync"]).code(), 0);
    let mut sizes = sizes_since(0);
    sizes.sort_unstable();
    assert_eq!(sizes, [2, 3, 3], "the next flush uses batch_size = 3");

    std::fs::write(&config, "batch_size = \"lots\"\n").unwrap();
    let logged = reload();
    assert_eq!(errors(&logged).len(), 1, "one error: {logged}");
    let error = &logged[logged.find(" ERROR ").unwrap_or(0)..];
    assert!(
        error.contains("batch_size"),
        "the error names the key: {error}"
    );
    let before = scripted.batches().len();
    add(4);
    assert_eq!(
        daemon.ctl(&["sync"]).code(),
        0,
        "still running on the old settings"
    );
    let mut sizes = sizes_since(before);
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3]);
    assert_eq!(daemon.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn sigterm_during_a_flush_exits_cleanly_and_the_batch_is_sent_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Arc::new(Mutex::new(true));
    let stall = slow.clone();
    let accept = accepting(|_| None);
    let scripted = Scripted::start(move |request| {
        if request.path == "/api/batch" && *stall.lock().unwrap() {
            std::thread::sleep(Duration::from_secs(30));
        }
        accept(request)
    });
    let mut daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&scripted.url())
        .manual_sync()
        .args(&["--batch-size", "10"])
        .start();
    for i in 0..10 {
        daemon.ctl(&["add", &format!("t{i}")]);
    }
    let socket = daemon.socket.clone();
    let syncing = std::thread::spawn(move || ctl_at(&socket, &["sync"]));
    wait_until("a batch to be in flight", || !scripted.batches().is_empty());
    let asked = Instant::now();
    let status = daemon.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopped within 5 s ({:?})",
        asked.elapsed()
    );
    assert!(!daemon.socket.exists(), "socket removed");
    let _ = syncing.join();

    *slow.lock().unwrap() = false;
    let daemon = daemon.restart().start();
    assert_eq!(daemon.status()["pending"], 10, "nothing lost");
    assert_eq!(daemon.ctl(&["sync"]).code(), 0);
    let batches = scripted.batches();
    assert_eq!(
        batches.len(),
        2,
        "the abandoned batch went out once more, and only once"
    );
    assert_eq!(
        batches[0]["items"], batches[1]["items"],
        "the same operations, same op ids"
    );
    assert_eq!(daemon.status()["pending"], 0);
}

#[test]
fn readiness_is_announced_only_once_the_socket_serves_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manager = NotifySocket::bind(dir.path());
    let home = subdir(&dir, "device");
    let mut child = Daemon::builder(&home)
        .env("NOTIFY_SOCKET", manager.env())
        .command()
        .spawn()
        .unwrap();
    let socket = home.join("run/tasksyncd.sock");
    let message = manager.next();
    assert!(message.iter().any(|l| l == "READY=1"), "{message:?}");
    // At the moment READY=1 arrived the socket already accepted connections.
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the socket serves once READY=1 is sent"
    );
    assert_eq!(ctl_at(&socket, &["status"]).code(), 0);

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let message = manager.next();
    assert!(message.iter().any(|l| l == "STOPPING=1"), "{message:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_socket_passed_by_the_service_manager_is_served() {
    let activate = Path::new("/usr/bin/systemd-socket-activate");
    assert!(
        activate.exists(),
        "systemd-socket-activate is needed (Debian package systemd; .ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let home = subdir(&dir, "device");
    std::fs::create_dir_all(home.join("run")).unwrap();
    std::fs::set_permissions(
        home.join("run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let socket = home.join("run/activated.sock");
    let log = std::fs::File::create(home.join("daemon.log")).unwrap();
    let mut manager = Command::new(activate)
        .arg("-l")
        .arg(&socket)
        .arg(bin("tasksyncd"))
        .arg("--db")
        .arg(home.join("tasks.db"))
        .arg("--socket")
        .arg(&socket)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TASKSYNC_SOCKET")
        .stderr(log)
        .spawn()
        .unwrap();
    // The socket file appears at bind(), a moment before listen(): wait until it accepts.
    wait_until("the service manager to listen", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    // The first connection, in HTTP as an app would make it, starts the daemon, which takes
    // over the listening socket.
    let listed = tasksync_e2e::http::unix_get(&socket, "/api/tasks");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), serde_json::json!([]));
    let added = ctl_at(&socket, &["--json", "add", "via socket activation"]);
    assert_eq!(added.code(), 0, "{}", added.stderr());
    let listed = ctl_at(&socket, &["--json", "list"]).json();
    assert_eq!(listed[0]["title"], "via socket activation");
    let log_text = std::fs::read_to_string(home.join("daemon.log")).unwrap();
    assert!(
        log_text.contains(&format!(
            "serving the socket passed by the service manager: {}",
            socket.display()
        )),
        "{log_text}"
    );
    unsafe { libc::kill(manager.id() as i32, libc::SIGTERM) };
    let _ = manager.wait();
}

#[test]
fn logs_under_the_journal_have_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::builder(&subdir(&dir, "device"))
        .env("JOURNAL_STREAM", "8:1234")
        .start();
    daemon.stop_with(libc::SIGTERM);
    let log = daemon.log_text();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.trim_start().starts_with("INFO") || first.trim_start().starts_with("DEBUG"),
        "{first}"
    );
    assert!(
        !first.contains(":00Z") && !first.starts_with("20"),
        "no timestamp: {first}"
    );
    let mut plain = Daemon::start(&subdir(&dir, "other"));
    plain.stop_with(libc::SIGTERM);
    let log = plain.log_text();
    let first = log.lines().next().unwrap_or_default();
    assert!(first.starts_with("20"), "timestamps otherwise: {first}");
}
