//! The daemon as a process: durability across SIGKILL, single instance, stale sockets,
//! shutdown, socket permissions, and connections that misbehave.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tasksync_e2e::{ctl_at, subdir, Daemon, DEADLINE};
use tasksync_proto::codec::{decode_frame, encode, MAX_FRAME_LEN};
use tasksync_proto::ipc::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tasksync_proto::{Client, NewTask};

#[test]
fn acknowledged_creates_survive_sigkill_right_after_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    let acknowledged = tasksync_e2e::block_on(async {
        // Four connections create concurrently, so group commits are in play; the daemon is
        // killed the moment the last reply arrives.
        let mut handles = Vec::new();
        for worker in 0..4 {
            let socket = daemon.socket.clone();
            handles.push(tokio::spawn(async move {
                let mut client = Client::connect(&socket, "durability-test").await.unwrap();
                let mut ids = Vec::new();
                for i in 0..50 {
                    let new = NewTask {
                        title: format!("w{worker} #{i}"),
                        description: None,
                        id: None,
                        ..Default::default()
                    };
                    ids.push(client.create_task(new).await.unwrap().id);
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for handle in handles {
            ids.extend(handle.await.unwrap());
        }
        ids
    });
    let status = daemon.stop_with(libc::SIGKILL);
    assert!(!status.success());
    assert!(
        daemon.socket.exists(),
        "SIGKILL leaves the socket file behind"
    );

    // The stale socket does not stop the next start, and every acknowledged task is there.
    let restarted = daemon.restart().start();
    let list = restarted.ctl(&["--json", "list"]).json();
    let stored: std::collections::HashSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(&id.to_string()),
            "acknowledged task {id} lost"
        );
    }
    assert_eq!(restarted.status()["pending"], 200);
}

#[test]
fn a_second_daemon_on_the_same_database_or_socket_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());

    let (code, log) = daemon
        .restart()
        .socket(&dir.path().join("run/other.sock"))
        .log(&dir.path().join("second.log"))
        .run_to_exit();
    assert_eq!(code, Some(1));
    assert!(
        log.contains("another tasksyncd is already running"),
        "{log}"
    );
    assert!(
        log.contains(&daemon.socket.display().to_string()),
        "names the running one's socket: {log}"
    );

    let (code, log) = daemon
        .restart()
        .db(&dir.path().join("other.db"))
        .log(&dir.path().join("third.log"))
        .run_to_exit();
    assert_eq!(code, Some(1));
    assert!(
        log.contains("another tasksyncd is already running"),
        "{log}"
    );

    // The first one is unharmed.
    assert_eq!(daemon.ctl(&["--json", "status"]).code(), 0);
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    daemon.ctl(&["add", "survives a restart"]);
    let status = daemon.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(!daemon.socket.exists(), "socket file removed");
    let run = ctl_at(&daemon.socket, &["list"]);
    assert_eq!(run.code(), 3);

    let restarted = daemon.restart().start();
    assert_eq!(
        restarted.ctl(&["--json", "list"]).json()[0]["title"],
        "survives a restart"
    );
}

#[test]
fn the_socket_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let folder = std::fs::metadata(daemon.socket.parent().unwrap()).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let socket = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_socket_folder_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, log) = Daemon::builder(dir.path())
        .socket(&shared.join("s.sock"))
        .run_to_exit();
    assert_eq!(code, Some(1));
    assert!(log.contains("writable by other users"), "{log}");
}

/// Opens a raw connection and completes the handshake.
fn raw_connection(daemon: &Daemon) -> UnixStream {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let hello = ClientMessage::Hello {
        protocol: PROTOCOL_VERSION,
        client: "raw".into(),
    };
    stream.write_all(&encode(&hello).unwrap()).unwrap();
    match read_message(&mut stream) {
        Some(ServerMessage::Welcome { .. }) => stream,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn read_message(stream: &mut UnixStream) -> Option<ServerMessage> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut frame = header.to_vec();
    frame.resize(4 + u32::from_be_bytes(header) as usize, 0);
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(decode_frame(&frame).unwrap())
}

fn expect_fatal_then_close(stream: &mut UnixStream, code: ErrorCode) -> String {
    match read_message(stream) {
        Some(ServerMessage::Fatal(e)) => {
            assert_eq!(e.code, code, "{}", e.message);
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(rest.is_empty(), "nothing after Fatal");
            e.message
        }
        other => panic!("expected Fatal({code:?}), got {other:?}"),
    }
}

#[test]
fn garbage_on_one_connection_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    tasksync_e2e::block_on(async {
        let mut good = Client::connect(&daemon.socket, "good").await.unwrap();
        good.create_task(NewTask {
            title: "before".into(),
            description: None,
            id: None,
            ..Default::default()
        })
        .await
        .unwrap();

        // A frame of undecodable bytes.
        let mut bad = raw_connection(&daemon);
        bad.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
            .unwrap();
        let message = expect_fatal_then_close(&mut bad, ErrorCode::BadFrame);
        assert!(message.contains("malformed"), "{message}");

        // A header announcing more than the 1 MiB cap.
        let mut huge = raw_connection(&daemon);
        huge.write_all(&((MAX_FRAME_LEN as u32 + 1).to_be_bytes()))
            .unwrap();
        let message = expect_fatal_then_close(&mut huge, ErrorCode::BadFrame);
        assert!(message.contains("exceeds the limit"), "{message}");

        // Garbage instead of a handshake (not HTTP either: that starts with an upper-case
        // method, and is served as HTTP).
        let mut rude = UnixStream::connect(&daemon.socket).unwrap();
        rude.set_read_timeout(Some(DEADLINE)).unwrap();
        rude.write_all(b"hello daemon\r\n\r\n").unwrap();
        expect_fatal_then_close(&mut rude, ErrorCode::BadFrame);

        // A request before Hello, and a connection that hangs up mid-frame.
        let mut early = UnixStream::connect(&daemon.socket).unwrap();
        early.set_read_timeout(Some(DEADLINE)).unwrap();
        let request = ClientMessage::Request {
            id: 1,
            command: tasksync_proto::Command::Status,
        };
        early.write_all(&encode(&request).unwrap()).unwrap();
        expect_fatal_then_close(&mut early, ErrorCode::BadFrame);
        let mut quitter = raw_connection(&daemon);
        quitter.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(quitter);

        // The good connection never noticed.
        let task = good
            .create_task(NewTask {
                title: "after".into(),
                description: None,
                id: None,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            good.get_task(&task.id.to_string()).await.unwrap().title,
            "after"
        );
        assert_eq!(good.list_tasks(false, None).await.unwrap().len(), 2);
    });
    // The daemon lives on, with the two tasks and nothing the garbage could have added.
    let status = daemon.ctl(&["--json", "status"]).json();
    assert_eq!(status["tasks"], 2, "{status}");
    assert_eq!(status["pending"], 2, "{status}");
}

#[test]
fn an_incompatible_client_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let hello = ClientMessage::Hello {
        protocol: PROTOCOL_VERSION + 1,
        client: "future-app".into(),
    };
    stream.write_all(&encode(&hello).unwrap()).unwrap();
    let message = expect_fatal_then_close(&mut stream, ErrorCode::Incompatible);
    assert!(
        message.contains("future-app") && message.contains("upgrade"),
        "{message}"
    );
}

#[test]
fn requests_may_be_pipelined_and_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    tasksync_e2e::block_on(async {
        let mut client = Client::connect(&daemon.socket, "pipeliner").await.unwrap();
        let mut sent = Vec::new();
        for i in 0..100 {
            let command = tasksync_proto::Command::CreateTask(NewTask {
                title: format!("p{i}"),
                description: None,
                id: None,
                ..Default::default()
            });
            sent.push(client.send(command).await.unwrap());
        }
        for expected in sent {
            let (id, result) =
                tokio::time::timeout(Duration::from_secs(20), client.receive_response())
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(id, expected);
            assert!(result.is_ok());
        }
        assert_eq!(client.list_tasks(false, None).await.unwrap().len(), 100);
    });
}

#[test]
fn a_token_on_the_command_line_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-from-a-file\n").unwrap();
    let quiet = Daemon::builder(&subdir(&dir, "file"))
        .args(&["--token-file", token_file.to_str().unwrap()])
        .start();
    let flag = Daemon::builder(&subdir(&dir, "flag"))
        .args(&["--token", "s3cret-on-the-line"])
        .start();
    // The same words are looked for in both logs: were they reworded, the first check
    // would fail rather than the last pass for nothing.
    const WARNING: &str = "given with --token";
    let flagged = flag.log_text();
    let warning = flagged
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| panic!("a warning: {flagged}"));
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains("token_file"),
        "names the way out: {warning}"
    );
    assert!(
        !flagged.contains("s3cret"),
        "the token itself is never logged"
    );
    let quiet_log = quiet.log_text();
    assert!(
        quiet_log.contains(&quiet.socket.display().to_string()),
        "this is the quiet daemon's log, which names its socket: {quiet_log}"
    );
    assert!(!quiet_log.contains(WARNING), "{quiet_log}");
}

/// `tasksyncd &` from an interactive shell: stderr is the terminal, but another process group
/// (the shell's) is in its foreground. The daemon says once where its log goes and writes it
/// to `tasksyncd.log` next to the database, so nothing lands over the prompt; started in the
/// foreground's process group, it logs to the terminal as before. The terminal is a pty from
/// `script` (util-linux), the shell `bash` with job control (`set -m`).
#[test]
fn started_in_the_background_from_a_terminal_it_logs_to_a_file_and_says_so() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    };
    if !have("script") || !have("bash") {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) and bash are needed for this test in CI"
        );
        eprintln!("SKIPPED: script (util-linux) or bash is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Runs the daemon from a shell on a pty (job control on or off), waits until it
    // serves, stops it; returns what reached the terminal.
    let on_terminal = |name: &str, job_control: bool| {
        let db = dir.path().join(name).join("tasks.db");
        let socket = dir.path().join(name).join("run/tasksyncd.sock");
        let script = dir.path().join(format!("{name}.sh"));
        std::fs::write(
            &script,
            format!(
                "{set}\n'{daemon}' --db '{db}' --socket '{socket}' &\n\
                 for _ in $(seq 200); do '{ctl}' --socket '{socket}' status >/dev/null 2>&1 && break; sleep 0.05; done\n\
                 kill -TERM $!\nwait\n",
                set = if job_control { "set -m" } else { "" },
                daemon = tasksync_e2e::bin("tasksyncd").display(),
                ctl = tasksync_e2e::bin("taskctl").display(),
                db = db.display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let output = std::process::Command::new("script")
            .arg("-qec")
            .arg(format!("bash {}", script.display()))
            .arg("/dev/null")
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("TASKSYNC_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), db)
    };

    let (terminal, db) = on_terminal("background", true);
    let log = db.with_file_name("tasksyncd.log");
    assert!(
        terminal.contains(&format!(
            "running in the background; logging to {}",
            log.display()
        )),
        "{terminal}"
    );
    assert!(
        !terminal.contains("INFO"),
        "log lines on the terminal: {terminal}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("serving"), "{logged}");
    assert!(logged.contains("shutting down"), "{logged}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (terminal, db) = on_terminal("foreground", false);
    assert!(terminal.contains("serving"), "{terminal}");
    assert!(
        !terminal.contains("running in the background"),
        "{terminal}"
    );
    assert!(!db.with_file_name("tasksyncd.log").exists());
}
