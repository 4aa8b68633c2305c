//! The local API over the daemon's real socket: HTTP and postcard on one socket, the event
//! stream, safe retries, listings for apps, and bad input on the HTTP dialect.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use tasksync_e2e::http::{self, unix_get, unix_request};
use tasksync_e2e::sse::SseStream;
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{Daemon, DEADLINE};

const ID: &str = "0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70";

fn create(daemon: &Daemon, body: &str) -> http::Answer {
    unix_request(&daemon.socket, "POST", "/api/tasks", &[], body.as_bytes())
}

/// Whether the daemon closed its end of `stream`, even with unread data still queued.
fn peer_hung_up(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready == 1 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// Sends raw bytes on a fresh socket connection and reads until the daemon closes it.
fn raw_exchange(daemon: &Daemon, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The daemon may answer and close before everything is written: that is fine.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn the_socket_speaks_http_without_a_token_beside_postcard() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let listed = unix_get(&daemon.socket, "/api/tasks");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), serde_json::json!([]));

    let created = create(&daemon, r#"{"title":"Buy milk"}"#);
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_string();
    // The same database through postcard, on the same socket.
    let shown = daemon.show(&id);
    assert_eq!(shown["title"], "Buy milk");

    let status = unix_get(&daemon.socket, "/api/status").json();
    assert_eq!(status["pending_sync_count"], 1);
    assert_eq!(status["state"], "local-only");
    assert_eq!(status["pending"], 1);
    assert!(status["http"].is_null());
    assert!(status["device_id"].is_string());

    let head = unix_request(
        &daemon.socket,
        "HEAD",
        &format!("/api/tasks/{id}"),
        &[],
        b"",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let missing = unix_get(&daemon.socket, &format!("/api/tasks/{ID}"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");
    let bad = unix_request(
        &daemon.socket,
        "POST",
        "/api/tasks",
        &[],
        b"{\"title\":\"\"}",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "invalid_input");
    let wrong = unix_request(&daemon.socket, "PATCH", "/api/tasks", &[], b"");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow").as_deref(), Some("GET, HEAD, POST"));
}

#[test]
fn a_create_with_a_client_id_is_safe_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let body = format!(r#"{{"title":"Call mum","description":"Sunday","id":"{ID}"}}"#);
    let first = create(&daemon, &body);
    assert_eq!(first.status, 201);
    assert_eq!(first.json()["id"], ID);
    let again = create(&daemon, &body);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());
    let other = create(&daemon, &format!(r#"{{"title":"Call dad","id":"{ID}"}}"#));
    assert_eq!(other.status, 409);
    assert_eq!(other.json()["code"], "conflict");

    // taskctl add --id, over postcard: the same rules.
    let retried = daemon.ctl(&["--json", "add", "Call mum", "-d", "Sunday", "--id", ID]);
    assert_eq!(retried.code(), 0, "{}", retried.stderr());
    assert_eq!(retried.json()["created_at"], first.json()["created_at"]);
    let clash = daemon.ctl(&["--json", "add", "Other", "--id", ID]);
    assert_eq!(clash.code(), 1);
    assert_eq!(clash.json_error()["error"]["code"], "conflict");

    // One create, one queue row.
    let queue = daemon.ctl(&["--json", "queue"]).json();
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
}

#[test]
fn listings_filter_search_and_page_with_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut ids = Vec::new();
    for title in [
        "Buy MILK",
        "Walk the dog",
        "milkshake",
        "Crème brûlée",
        "Taxes",
    ] {
        ids.push(create(&daemon, &format!(r#"{{"title":"{title}"}}"#)).json()["id"].clone());
    }
    let id = |i: usize| ids[i].as_str().unwrap().to_string();
    let done = unix_request(
        &daemon.socket,
        "PUT",
        &format!("/api/tasks/{}", id(1)),
        &[],
        br#"{"completed":true}"#,
    );
    assert_eq!(done.status, 200);
    let gone = unix_request(
        &daemon.socket,
        "DELETE",
        &format!("/api/tasks/{}", id(4)),
        &[],
        b"",
    );
    assert_eq!(gone.status, 204);

    let titles = |path: &str| -> Vec<String> {
        let answer = unix_get(&daemon.socket, path);
        assert_eq!(
            answer.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(titles("/api/tasks?q=milk"), ["milkshake", "Buy MILK"]);
    assert_eq!(titles("/api/tasks?q=BR%C3%BBL%C3%89E"), ["Crème brûlée"]);
    assert_eq!(titles("/api/tasks?completed=true"), ["Walk the dog"]);
    assert_eq!(titles("/api/tasks?completed=false").len(), 3);
    assert_eq!(titles("/api/tasks").len(), 4);
    assert_eq!(titles("/api/tasks?include_deleted=true").len(), 5);

    // Paging: two at a time, following Link until it stops.
    let mut path = "/api/tasks?include_deleted=true&limit=2".to_string();
    let mut seen = Vec::new();
    loop {
        let answer = unix_get(&daemon.socket, &path);
        let page = answer.json();
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(page.as_array().unwrap().iter().map(|t| t["id"].clone()));
        let Some(link) = answer.header("link") else {
            break;
        };
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        path = link[1..link.find('>').unwrap()].to_string();
        assert!(path.contains("include_deleted=true"), "{path}");
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let bad = unix_get(&daemon.socket, "/api/tasks?limit=0");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "invalid_input");
}

/// `GET /api/events` and `taskctl --json watch` print each event as the same JSON object:
/// the same name, the same fields, even the same time.
#[test]
fn the_event_stream_and_watch_print_the_same_objects() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut events = SseStream::open(&daemon.socket, None);
    let status = events.next_event().unwrap();
    assert_eq!(status.json()["event"], "status");
    assert_eq!(status.json()["pending_sync_count"], 0);
    let watch = Watch::start(&daemon);
    let opening = &watch.matching(|e| e["event"] == "status")[0];
    assert_eq!(opening["state"], status.json()["state"]);
    assert_eq!(opening["sync_queue_size"], 0);

    let added = daemon.ctl(&["--json", "add", "seen twice"]).json();
    let streamed = events.until(|e| e.event == "task");
    tasksync_e2e::wait_until("watch to see the task", || watch.events("task") > 0);
    let watched = &watch.matching(|e| e["event"] == "task")[0];
    assert_eq!(streamed.json()["task"]["id"], added["id"]);
    assert_eq!(&streamed.json(), watched);
    let mut keys: Vec<String> = watched.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["at", "event", "origin", "task"]);
}

#[test]
fn the_event_stream_opens_with_status_and_resumes_or_resets() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut events = SseStream::open(&daemon.socket, None);
    assert!(events.head.starts_with("HTTP/1.1 200"), "{}", events.head);
    assert!(events
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    let status = events.next_event().unwrap();
    assert_eq!(status.event, "status");
    assert_eq!(status.json()["state"], "local-only");
    let status_id: u64 = status.id.clone().unwrap().parse().unwrap();

    // A change by taskctl (postcard) reaches the HTTP stream, marked local.
    let added = daemon.ctl(&["--json", "add", "seen live"]).json();
    let task = events.until(|e| e.event == "task");
    assert_eq!(task.json()["task"]["id"], added["id"]);
    assert_eq!(task.json()["origin"], "local");
    let task_id: u64 = task.id.clone().unwrap().parse().unwrap();
    assert!(task_id > status_id);
    drop(events);

    // Two changes while disconnected; resuming gets exactly those, in order.
    let a = daemon.ctl(&["--json", "add", "missed a"]).json();
    let b = daemon.ctl(&["--json", "add", "missed b"]).json();
    let mut resumed = SseStream::open(&daemon.socket, Some(&task_id.to_string()));
    let first = resumed.next_event().unwrap();
    let second = resumed.next_event().unwrap();
    assert_eq!(first.json()["task"]["id"], a["id"]);
    assert_eq!(second.json()["task"]["id"], b["id"]);
    let ids: Vec<u64> = [&first, &second]
        .iter()
        .map(|e| e.id.clone().unwrap().parse().unwrap())
        .collect();
    assert!(task_id < ids[0] && ids[0] < ids[1]);

    // An id the daemon never gave (an earlier run's): reset, then the status.
    let mut stale = SseStream::open(&daemon.socket, Some("12"));
    assert_eq!(stale.next_event().unwrap().event, "reset");
    assert_eq!(stale.next_event().unwrap().event, "status");

    // HEAD answers the headers only.
    let head = unix_request(&daemon.socket, "HEAD", "/api/events", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn bad_http_input_gets_a_4xx_and_a_closed_connection_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    // A request line that is not HTTP.
    let answer = raw_exchange(&daemon, b"GARBAGE\r\n\r\n");
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Garbage pipelined after a valid request: the request is answered, then a 400.
    let answer = raw_exchange(
        &daemon,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02NOT HTTP\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    // A huge header.
    let mut huge = b"GET /api/tasks HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200 * 1024));
    huge.extend(b"\r\n\r\n");
    let answer = raw_exchange(&daemon, &huge);
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    // A body over the cap.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let answer = unix_request(&daemon.socket, "POST", "/api/tasks", &[], &big);
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["code"], "too_large");
    // Postcard garbage (not a letter): a frame error, also closed.
    let answer = raw_exchange(&daemon, b"\xff\xff\xff\xff");
    assert!(!answer.is_empty());

    // Everyone else is fine.
    let listed = daemon.ctl(&["--json", "list"]);
    assert_eq!(listed.code(), 0, "{}", listed.stderr());
    assert_eq!(unix_get(&daemon.socket, "/api/health").status, 200);
}

#[test]
fn silent_and_half_sent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    // One that sends nothing, one that sends half a request head: both closed within a few
    // seconds, with no effect on others.
    let mut silent = UnixStream::connect(&daemon.socket).unwrap();
    let mut partial = UnixStream::connect(&daemon.socket).unwrap();
    partial
        .write_all(b"GET /api/tasks HTTP/1.1\r\nHost:")
        .unwrap();
    // An event stream whose client never reads.
    let mut deaf = UnixStream::connect(&daemon.socket).unwrap();
    deaf.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(unix_get(&daemon.socket, "/api/health").status, 200);
    for stream in [&mut silent, &mut partial] {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut rest = Vec::new();
        if let Err(e) = stream.read_to_end(&mut rest) {
            panic!("a silent connection was left open: {e}");
        }
    }
    assert_eq!(daemon.ctl(&["list"]).code(), 0);
    drop(deaf);
}

#[test]
fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mode = std::fs::metadata(&daemon.db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// As root, a client of another user (here: the socket opened to everyone on purpose) is
/// told why it is refused, in both dialects, and taskctl exits 3 with that message.
#[test]
fn another_users_client_is_told_it_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let open = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(dir.path(), 0o711);
    open(daemon.socket.parent().unwrap(), 0o711);
    open(&daemon.socket, 0o666);
    let output = std::process::Command::new(tasksync_e2e::bin("taskctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("list")
        .uid(1001)
        .gid(1001)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    // The HTTP dialect: a 403 that says why (with curl, when the machine has it).
    let curl = std::path::Path::new("/usr/bin/curl");
    if curl.exists() {
        let output = std::process::Command::new(curl)
            .args(["-s", "-w", " %{http_code}", "--unix-socket"])
            .arg(&daemon.socket)
            .arg("http://localhost/api/tasks")
            .uid(1001)
            .gid(1001)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.ends_with(" 403"), "{stdout}");
        assert!(
            stdout.contains("\"code\":\"permission_denied\""),
            "{stdout}"
        );
    }
    let log = daemon.log_text();
    assert!(log.contains("refused a connection from uid 1001"), "{log}");
    assert!(!log.contains("Some(1001)"), "{log}");
}

/// More idle postcard connections (after Hello) than the cap: the newest client still gets
/// in at once, and the idlest connections are the ones closed for it. Idle postcard
/// connections have no timeout of their own, so a closed one was evicted.
#[test]
fn idle_postcard_connections_cannot_lock_a_user_out() {
    use tasksync_proto::codec::encode;
    use tasksync_proto::ipc::{ClientMessage, PROTOCOL_VERSION};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let hello = encode(&ClientMessage::Hello {
        protocol: PROTOCOL_VERSION,
        client: "idler".into(),
    })
    .unwrap();
    let mut idle = Vec::new();
    for _ in 0..1030 {
        let mut stream = UnixStream::connect(&daemon.socket).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(&hello).unwrap();
        // The Welcome: this connection is now served and idle.
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).unwrap();
        let mut welcome = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut welcome).unwrap();
        idle.push(stream);
    }
    let listed = daemon.ctl(&["--json", "list"]);
    assert_eq!(listed.code(), 0, "{}", listed.stderr());
    // Idle connections were evicted for the newcomers (6 over the cap, then taskctl's): their
    // peer hung up.
    tasksync_e2e::wait_until("idle connections to be evicted", || {
        idle.iter().filter(|s| peer_hung_up(s)).count() >= 7
    });
    let evicted: Vec<usize> = (0..idle.len())
        .filter(|&i| peer_hung_up(&idle[i]))
        .collect();
    // The idlest are the oldest.
    assert!(evicted.iter().all(|&i| i < 100), "{evicted:?}");
    // The newest ones are still served.
    let last = idle.last_mut().unwrap();
    let request = encode(&ClientMessage::Request {
        id: 1,
        command: tasksync_proto::Command::Status,
    })
    .unwrap();
    last.write_all(&request).unwrap();
    let mut header = [0u8; 4];
    last.read_exact(&mut header).unwrap();
}

/// An event-stream client that never reads does not hold up anyone: changes keep being
/// acknowledged, other clients keep getting their events, and the daemon hangs up on it once
/// its queue has stayed full for a while.
#[test]
fn an_event_stream_client_that_never_reads_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut deaf = UnixStream::connect(&daemon.socket).unwrap();
    deaf.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = SseStream::open(&daemon.socket, None);
    assert_eq!(reader.next_event().unwrap().event, "status");
    // A reader that keeps up, in its own thread, waits for the last change.
    const LAST: &str = "0190b6e2-7c1e-7a3d-9f00-00000000ffff";
    let attentive = std::thread::spawn(move || {
        reader.until(|e| e.event == "task" && e.data.contains(LAST));
    });
    // Far more events than fit in the deaf client's socket buffer and queue.
    tasksync_e2e::block_on(async {
        let mut client = tasksync_proto::Client::connect(&daemon.socket, "filler")
            .await
            .unwrap();
        let description = "x".repeat(2000);
        for n in 0..1500 {
            let new = tasksync_proto::NewTask {
                title: format!("filler {n}"),
                description: Some(description.clone()),
                id: (n == 1499).then(|| LAST.parse().unwrap()),
                ..Default::default()
            };
            client.create_task(new).await.unwrap();
        }
    });
    attentive
        .join()
        .expect("the attentive reader saw the last change");
    // The deaf one is hung up on: its peer closed, though unread data is still queued.
    tasksync_e2e::wait_until("the deaf client to be disconnected", || peer_hung_up(&deaf));
    assert_eq!(daemon.ctl(&["status"]).code(), 0);
}

/// The value of the sample `name` (labels included, as printed) in a metrics exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `GET /api/metrics` moves with the work done: the queue, sync rounds, connectivity and the
/// connections held.
#[test]
fn metrics_follow_the_queue_rounds_and_connectivity() {
    let dir = tempfile::tempdir().unwrap();
    let server = tasksync_e2e::Server::start(&tasksync_e2e::subdir(&dir, "server"));
    let daemon = Daemon::start_manual_sync(&tasksync_e2e::subdir(&dir, "device"), &server.url());
    let scrape = || {
        let answer = unix_get(&daemon.socket, "/api/metrics");
        assert_eq!(answer.status, 200);
        assert!(answer
            .header("content-type")
            .is_some_and(|t| t.contains("openmetrics-text")));
        String::from_utf8(answer.body).unwrap()
    };
    daemon.add_id("one");
    daemon.add_id("two");
    let before = scrape();
    assert_eq!(
        sample(&before, r#"tasksyncd_queue_operations{state="pending"}"#),
        2.0
    );
    assert!(sample(&before, r#"tasksyncd_connections_open{listener="socket"}"#) >= 1.0);
    let (code, report) = daemon.sync();
    assert_eq!(code, 0, "{report}");
    let after = scrape();
    assert_eq!(
        sample(&after, r#"tasksyncd_queue_operations{state="pending"}"#),
        0.0
    );
    assert_eq!(sample(&after, "tasksyncd_pushed_operations_total"), 2.0);
    let rounds = r#"tasksyncd_sync_rounds_total{kind="pull",outcome="ok"}"#;
    assert_eq!(sample(&after, rounds) - sample(&before, rounds), 1.0);
    assert_eq!(
        sample(&after, r#"tasksyncd_connectivity{state="online"}"#),
        1.0
    );
    assert_eq!(
        sample(&after, r#"tasksyncd_connectivity{state="offline"}"#),
        0.0
    );
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::builder(dir.path())
        .args(&["--log-format", "json"])
        .start();
    daemon.stop_with(libc::SIGTERM);
    let log = daemon.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

/// Optimistic concurrency: every task answer carries its entity tag; a `PUT` or `DELETE`
/// against a stale one is 412 and changes nothing; a `PUT` that changes no value changes
/// nothing either (no new `updated_at`, nothing queued).
#[test]
fn etags_guard_updates_and_a_no_op_update_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let created = create(&daemon, r#"{"title":"Buy milk"}"#);
    assert_eq!(created.status, 201);
    let task = created.json();
    let id = task["id"].as_str().unwrap().to_string();
    let tag = created.header("etag").expect("an ETag");
    assert_eq!(task["etag"], tag.as_str());
    let path = format!("/api/tasks/{id}");
    let got = unix_get(&daemon.socket, &path);
    assert_eq!(got.header("etag").as_deref(), Some(tag.as_str()));
    let listed = unix_get(&daemon.socket, "/api/tasks").json();
    assert_eq!(listed[0]["etag"], tag.as_str());
    let pending = || daemon.status()["pending"].as_u64().unwrap();
    assert_eq!(pending(), 1);

    // Nothing changes: the same task, the same tag, nothing queued.
    let same = unix_request(
        &daemon.socket,
        "PUT",
        &path,
        &[],
        br#"{"title":"Buy milk"}"#,
    );
    assert_eq!(same.status, 200);
    assert_eq!(same.json()["updated_at"], task["updated_at"]);
    assert_eq!(same.header("etag").as_deref(), Some(tag.as_str()));
    assert_eq!(pending(), 1);

    // A real change with the current tag goes through and gets a new tag.
    let edited = unix_request(
        &daemon.socket,
        "PUT",
        &path,
        &[("If-Match", &tag)],
        br#"{"title":"Buy oat milk"}"#,
    );
    assert_eq!(edited.status, 200);
    let new_tag = edited.header("etag").unwrap();
    assert_ne!(new_tag, tag);
    assert_eq!(pending(), 2);

    // The old tag is stale now: refused, nothing changed or queued.
    for (method, body) in [("PUT", &br#"{"title":"stale"}"#[..]), ("DELETE", &b""[..])] {
        let stale = unix_request(&daemon.socket, method, &path, &[("If-Match", &tag)], body);
        assert_eq!(stale.status, 412, "{method}");
        assert_eq!(stale.json()["code"], "precondition_failed");
    }
    assert_eq!(
        unix_get(&daemon.socket, &path).json()["title"],
        "Buy oat milk"
    );
    assert_eq!(pending(), 2);
    let gone = unix_request(
        &daemon.socket,
        "DELETE",
        &path,
        &[("If-Match", &new_tag)],
        b"",
    );
    assert_eq!(gone.status, 204);
}

#[test]
fn every_answer_says_the_api_version() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    for path in ["/api/health", "/api/status", "/api/tasks", "/api/nowhere"] {
        let answer = unix_get(&daemon.socket, path);
        assert_eq!(
            answer.header("tasksync-api-version").as_deref(),
            Some("1"),
            "{path}"
        );
    }
    assert_eq!(
        unix_get(&daemon.socket, "/api/health").json()["api_version"],
        1
    );
    assert_eq!(
        unix_get(&daemon.socket, "/api/status").json()["api_version"],
        1
    );
}
