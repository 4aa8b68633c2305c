//! The daemon's HTTP API (docs/LOCAL-API.md) against the real tasksyncd: every route and
//! status code, the bearer token and its file, the loopback rule, and the original
//! challenge's offline flow over HTTP with the real tasksync-server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tasksync_e2e::http::{request, Answer};
use tasksync_e2e::scripted::{accepting, Scripted};
use tasksync_e2e::{free_port, subdir, Daemon, DaemonBuilder, Server, DEADLINE};

/// A daemon serving the HTTP API on a free loopback port, with its config folder in the
/// test's temporary folder.
struct Api {
    daemon: Daemon,
    addr: String,
    token: String,
    config_home: PathBuf,
}

impl Api {
    fn start(dir: &Path) -> Api {
        Api::start_with(Daemon::builder(dir))
    }

    /// Starts `daemon` with the API on, its config folder `config` beside its log.
    fn start_with(daemon: DaemonBuilder) -> Api {
        let daemon = daemon.args(&["--http", "127.0.0.1:0"]).start();
        let config_home = daemon.log.with_file_name("config");
        Api::attach(daemon, config_home)
    }

    fn attach(daemon: Daemon, config_home: PathBuf) -> Api {
        let addr = http_addr(&daemon);
        let token = std::fs::read_to_string(token_path(&config_home))
            .expect("token file")
            .trim()
            .to_string();
        Api {
            daemon,
            addr,
            token,
            config_home,
        }
    }

    /// Restarts the daemon (after a clean stop) on the same files, flags and config folder.
    fn restart(mut self) -> Api {
        assert!(self.daemon.stop_with(libc::SIGTERM).success());
        let daemon = self.daemon.restart().start();
        Api::attach(daemon, self.config_home.clone())
    }

    /// A request with the token and, if given, a JSON body.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(method, path, body.as_bytes())
    }

    /// A request with the token and these exact body bytes.
    fn send(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        let auth = format!("Bearer {}", self.token);
        request(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    fn create(&self, title: &str) -> Value {
        let answer = self.call("POST", "/api/tasks", Some(json!({ "title": title })));
        assert_eq!(answer.status, 201, "{}", text(&answer));
        answer.json()
    }

    fn status(&self) -> Value {
        let answer = self.call("GET", "/api/status", None);
        assert_eq!(answer.status, 200, "{}", text(&answer));
        answer.json()
    }
}

fn token_path(config_home: &Path) -> PathBuf {
    config_home.join("tasksync/api-token")
}

/// The address the daemon's HTTP API listens on, as `taskctl status` reports it.
fn http_addr(daemon: &Daemon) -> String {
    let status = daemon.status();
    status["http"]
        .as_str()
        .unwrap_or_else(|| panic!("the HTTP API is on: {status}"))
        .to_string()
}

fn text(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

/// Asserts an error answer: its status and the `{error, code, timestamp, path}` body.
#[track_caller]
fn assert_error(answer: &Answer, status: u16, path: &str) -> String {
    assert_eq!(answer.status, status, "{}", text(answer));
    let body = answer.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["code", "error", "path", "timestamp"], "{body}");
    let code = body["code"].as_str().unwrap();
    let expected = match status {
        400 => "invalid_input",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "too_large",
        503 => "unavailable",
        _ => code,
    };
    assert_eq!(code, expected, "{body}");
    assert_eq!(body["path"], path);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    let message = body["error"].as_str().unwrap().to_string();
    assert!(!message.is_empty());
    message
}

/// Sends raw bytes and returns the whole answer as text (head included).
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn tasks_can_be_created_read_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());

    let answer = api.call(
        "POST",
        "/api/tasks",
        Some(json!({"title": "Buy milk", "description": "2 litres"})),
    );
    assert_eq!(answer.status, 201, "{}", text(&answer));
    let milk = answer.json();
    let id = milk["id"].as_str().unwrap().to_string();
    assert_eq!(milk["title"], "Buy milk");
    assert_eq!(milk["description"], "2 litres");
    assert_eq!(milk["completed"], false);
    assert_eq!(milk["is_deleted"], false);
    assert_eq!(milk["sync_status"], "pending");
    assert_eq!(milk["last_synced_at"], Value::Null);
    assert_eq!(milk["created_at"], milk["updated_at"]);
    // The entity tag in the body and the header, and the same Task JSON as taskctl's,
    // etag included (one TaskJson for every surface).
    let tag = milk["etag"].as_str().expect("an etag").to_string();
    assert_eq!(answer.header("etag"), Some(tag));
    assert_eq!(milk, api.daemon.show(&id), "the same Task JSON as taskctl");
    let bread = api.create("Bake bread");
    assert_eq!(bread["description"], Value::Null);

    let list = api.call("GET", "/api/tasks", None);
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), json!([bread, milk]), "newest first");

    let one = api.call("GET", &format!("/api/tasks/{id}"), None);
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), milk);
    let upper = api.call("GET", &format!("/api/tasks/{}", id.to_uppercase()), None);
    assert_eq!(upper.status, 200, "ids are case-insensitive");

    let answer = api.call(
        "PUT",
        &format!("/api/tasks/{id}"),
        Some(json!({"completed": true})),
    );
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let done = answer.json();
    assert_eq!(done["completed"], true);
    assert_eq!(done["title"], "Buy milk");
    assert_eq!(done["description"], "2 litres");
    assert!(done["updated_at"].as_str() > milk["updated_at"].as_str());
    let answer = api.call(
        "PUT",
        &format!("/api/tasks/{id}"),
        Some(json!({"title": "Buy oat milk", "description": null, "completed": false})),
    );
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let edited = answer.json();
    assert_eq!(edited["title"], "Buy oat milk");
    assert_eq!(edited["description"], Value::Null, "null clears");
    assert_eq!(edited["completed"], false);

    let answer = api.call("DELETE", &format!("/api/tasks/{id}"), None);
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
    let path = format!("/api/tasks/{id}");
    assert_error(&api.call("GET", &path, None), 404, &path);
    assert_error(
        &api.call("PUT", &path, Some(json!({"completed": true}))),
        404,
        &path,
    );
    assert_error(&api.call("DELETE", &path, None), 404, &path);
    assert_eq!(api.call("GET", "/api/tasks", None).json(), json!([bread]));
    let tombstone = api.daemon.show(&id);
    assert_eq!(tombstone["is_deleted"], true, "a soft delete");

    let unknown = "0190b6e2-7c1e-7a3d-9f00-2b8c4d5e6f70";
    let path = format!("/api/tasks/{unknown}");
    assert_error(&api.call("GET", &path, None), 404, &path);
    assert_error(
        &api.call("PUT", &path, Some(json!({"title": "x"}))),
        404,
        &path,
    );
    assert_error(&api.call("DELETE", &path, None), 404, &path);
}

#[test]
fn bad_requests_get_the_right_code_and_an_error_body_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let task = api.create("keep me");
    let id = task["id"].as_str().unwrap();
    let task_path = format!("/api/tasks/{id}");

    let creates: &[&[u8]] = &[
        br#"{"description": "no title"}"#,
        br#"{"title": ""}"#,
        br#"{"title": "   "}"#,
        br#"{"title": 42}"#,
        br#"{"title": null}"#,
        br#"{"title": "ok", "completed": true}"#,
        br#"{"title": "ok", "description": 5}"#,
        br#"{"title": "ok""#,
        b"not json",
        b"",
        br#"["a title"]"#,
    ];
    for body in creates {
        let answer = api.send("POST", "/api/tasks", body);
        let message = assert_error(&answer, 400, "/api/tasks");
        eprintln!("{} -> {message}", String::from_utf8_lossy(body));
    }
    let long = json!({ "title": "x".repeat(501) });
    let message = assert_error(
        &api.call("POST", "/api/tasks", Some(long)),
        400,
        "/api/tasks",
    );
    assert!(message.contains("500"), "{message}");
    let message = assert_error(
        &api.send("POST", "/api/tasks", br#"{"title": "a", "extra": 1}"#),
        400,
        "/api/tasks",
    );
    assert!(message.contains("unknown field `extra`"), "{message}");
    let message = assert_error(&api.send("POST", "/api/tasks", b"{"), 400, "/api/tasks");
    assert!(message.contains("malformed JSON"), "{message}");

    let updates: &[&[u8]] = &[
        b"{}",
        br#"{"title": ""}"#,
        br#"{"title": null}"#,
        br#"{"completed": "yes"}"#,
        br#"{"is_deleted": false}"#,
        br#"{"completed": true"#,
    ];
    for body in updates {
        assert_error(&api.send("PUT", &task_path, body), 400, &task_path);
    }
    let message = assert_error(&api.send("PUT", &task_path, b"{}"), 400, &task_path);
    assert!(message.contains("nothing to change"), "{message}");

    for bad_id in ["abc", &id[..8], &id.replace('-', "")] {
        let path = format!("/api/tasks/{bad_id}");
        for (method, body) in [
            ("GET", None),
            ("DELETE", None),
            ("PUT", Some(json!({"completed": true}))),
        ] {
            let message = assert_error(&api.call(method, &path, body), 400, &path);
            assert!(message.contains("not a UUID"), "{message}");
        }
    }

    // Over 1 MiB: 413, whether the body is sent or the client waits for 100-continue.
    let huge = format!(r#"{{"title": "{}"}}"#, "x".repeat(1024 * 1024));
    assert_error(
        &api.send("POST", "/api/tasks", huge.as_bytes()),
        413,
        "/api/tasks",
    );
    assert_error(
        &api.send("PUT", &task_path, huge.as_bytes()),
        413,
        &task_path,
    );
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 5000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        api.addr, api.token
    );
    let answer = raw(&api.addr, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Unknown routes and wrong methods.
    for path in [
        "/",
        "/api",
        "/api/tasks/",
        "/api/tasks/a/b",
        "/api/task",
        "/api/statuses",
    ] {
        let message = assert_error(&api.call("GET", path, None), 404, path);
        assert!(message.contains("no route"), "{message}");
    }
    for (method, path, allow) in [
        ("DELETE", "/api/tasks", "GET, HEAD, POST"),
        ("POST", task_path.as_str(), "GET, HEAD, PUT, DELETE"),
        ("PATCH", task_path.as_str(), "GET, HEAD, PUT, DELETE"),
        ("GET", "/api/sync", "POST"),
        ("POST", "/api/status", "GET, HEAD"),
        ("PUT", "/api/health", "GET, HEAD"),
    ] {
        assert_error(&api.call(method, path, None), 405, path);
        let answer = raw(
            &api.addr,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n",
                api.token
            )
            .as_bytes(),
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
            "{method} {path}: {answer}"
        );
    }

    // Nothing of the above reached the store.
    assert_eq!(api.call("GET", "/api/tasks", None).json(), json!([task]));
    assert_eq!(api.status()["sync_queue_size"], 1);
}

#[test]
fn every_route_but_health_needs_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    assert_eq!(api.token.len(), 64, "256 bits as hex");
    assert!(api.token.bytes().all(|b| b.is_ascii_hexdigit()));
    let task = api.create("secret");
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());

    let health = request(&api.addr, "GET", "/api/health", &[], b"");
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    let wrong = format!("Bearer {}0", api.token);
    let basic = format!("Basic {}", api.token);
    let routes = [
        ("GET", "/api/tasks"),
        ("POST", "/api/tasks"),
        ("GET", task_path.as_str()),
        ("PUT", task_path.as_str()),
        ("DELETE", task_path.as_str()),
        ("POST", "/api/sync"),
        ("GET", "/api/status"),
    ];
    for (method, path) in routes {
        let body = br#"{"title": "sneaky"}"#;
        for headers in [
            &[][..],
            &[("Authorization", wrong.as_str())][..],
            &[("Authorization", basic.as_str())][..],
            &[("Authorization", "Bearer")][..],
        ] {
            let answer = request(&api.addr, method, path, headers, body);
            let message = assert_error(&answer, 401, path);
            assert!(message.contains("Bearer"), "{message}");
        }
    }
    assert_eq!(api.call("GET", "/api/tasks", None).json(), json!([task]));
    let log = api.daemon.log_text();
    assert!(
        log.contains(&api.addr),
        "the log read is this daemon's, which names its API's address: {log}"
    );
    assert!(!log.contains(&api.token), "the token never reaches the log");
}

#[test]
fn status_and_sync_report_the_queue_local_only() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    api.create("one");
    api.create("two");
    let status = api.status();
    let original = [
        "pending_sync_count",
        "last_sync_timestamp",
        "is_online",
        "sync_queue_size",
    ];
    let original: serde_json::Map<String, Value> = original
        .iter()
        .map(|key| (key.to_string(), status[key].clone()))
        .collect();
    assert_eq!(
        Value::Object(original),
        json!({"pending_sync_count": 2, "last_sync_timestamp": null, "is_online": false, "sync_queue_size": 2})
    );
    // Plus the fields of `taskctl status --json`, with the TCP API's own address.
    let ctl = api.daemon.status();
    for (key, value) in ctl.as_object().unwrap() {
        if key != "since" {
            assert_eq!(&status[key], value, "{key}");
        }
    }
    assert_eq!(status["http"].as_str(), Some(api.addr.as_str()));
    let answer = api.call("POST", "/api/sync", None);
    assert_eq!(answer.status, 503, "{}", text(&answer));
    let report = answer.json();
    assert_eq!(report["success"], false);
    assert_eq!(report["synced_items"], 0);
    assert_eq!(report["failed_items"], 0);
    assert_eq!(report["errors"][0]["kind"], "offline", "{report}");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("local only"),
        "{report}"
    );
    // The original challenge's four fields, then those every sync report has (the same as
    // `taskctl sync --json` and the `sync` event).
    let mut keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "conflicts",
            "errors",
            "failed_items",
            "offline",
            "pulled_items",
            "resolved",
            "success",
            "synced_items"
        ]
    );
}

#[test]
fn status_counts_dead_letters_in_the_queue_size_only() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(accepting(|item| {
        (item["data"]["title"] == "doomed").then(|| "refused".to_string())
    }));
    let api = Api::start_with(
        Daemon::builder(dir.path())
            .server(&scripted.url())
            .args(&["--retry-attempts", "1"]),
    );
    api.create("doomed");
    api.create("fine");
    let answer = api.call("POST", "/api/sync", None);
    assert_eq!(
        answer.status,
        200,
        "the server was reached: {}",
        text(&answer)
    );
    let report = answer.json();
    assert_eq!(report["success"], false, "{report}");
    assert_eq!(report["failed_items"], 1, "{report}");
    let status = api.status();
    assert_eq!(status["pending_sync_count"], 0, "{status}");
    assert_eq!(
        status["sync_queue_size"], 1,
        "the dead letter is still queued: {status}"
    );
    assert_eq!(status["is_online"], true, "{status}");
    assert!(status["last_sync_timestamp"].is_string(), "{status}");
}

#[test]
fn the_original_challenge_flow_works_over_http() {
    let dir = tempfile::tempdir().unwrap();
    // The server is down: a port nothing listens on yet.
    let server_addr = format!("127.0.0.1:{}", free_port());
    let api = Api::start_with(Daemon::builder(dir.path()).server(&format!("http://{server_addr}")));

    let a = api.create("Task A");
    let a_id = a["id"].as_str().unwrap().to_string();
    let answer = api.call(
        "PUT",
        &format!("/api/tasks/{a_id}"),
        Some(json!({"completed": true})),
    );
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let b = api.create("Task B");
    let b_id = b["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call("DELETE", &format!("/api/tasks/{a_id}"), None)
            .status,
        204
    );

    let queue = api.daemon.ctl(&["--json", "queue"]).json();
    let ops: Vec<(String, String)> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["operation"].as_str().unwrap().to_string(),
                op["task_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("create", &a_id),
        ("update", &a_id),
        ("create", &b_id),
        ("delete", &a_id),
    ]
    .map(|(op, id)| (op.to_string(), id.to_string()));
    assert_eq!(ops, expected, "4 operations, in order");
    let status = api.status();
    assert_eq!(status["pending_sync_count"], 4);
    assert_eq!(status["sync_queue_size"], 4);
    assert_eq!(status["is_online"], false);

    let answer = api.call("POST", "/api/sync", None);
    assert_eq!(answer.status, 503, "offline: {}", text(&answer));
    assert_eq!(answer.json()["success"], false);
    assert_eq!(api.status()["pending_sync_count"], 4, "nothing lost");

    let server = Server::builder(&subdir(&dir, "server"))
        .listen(&server_addr)
        .start();
    let answer = api.call("POST", "/api/sync", None);
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let report = answer.json();
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(report["failed_items"], 0, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");

    let held = server.tasks();
    assert_eq!(held.len(), 2, "{held:?}");
    let find = |id: &str| held.iter().find(|t| t["id"] == id).unwrap().clone();
    let (a_server, b_server) = (find(&a_id), find(&b_id));
    assert_eq!(a_server["is_deleted"], true, "A is a tombstone");
    assert_eq!(a_server["completed"], true);
    assert_eq!(b_server["is_deleted"], false);
    assert_eq!(b_server["title"], "Task B");

    let status = api.status();
    assert_eq!(status["pending_sync_count"], 0, "{status}");
    assert_eq!(status["sync_queue_size"], 0, "{status}");
    assert_eq!(status["is_online"], true, "{status}");
    assert!(status["last_sync_timestamp"].is_string(), "{status}");
    let live = api.call("GET", "/api/tasks", None).json();
    assert_eq!(live.as_array().unwrap().len(), 1);
    assert_eq!(live[0]["id"], b_id.as_str());
    assert_eq!(live[0]["sync_status"], "synced");
}

#[test]
fn the_token_file_is_private_reused_and_printed_by_taskctl() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let file = token_path(&api.config_home);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    let printed = api.daemon.ctl(&["api-token"]);
    assert_eq!(printed.code(), 0, "{}", printed.stderr());
    assert_eq!(printed.stdout().trim(), api.token);

    let first = api.token.clone();
    let task = api.create("survives restarts");
    let api = api.restart();
    assert_eq!(api.token, first, "the same token after a restart");
    let answer = api.call("GET", "/api/tasks", None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()[0]["id"], task["id"]);
    assert_eq!(mode(&file), 0o600);

    // A clean stop closes the port.
    let addr = api.addr.clone();
    let mut daemon = api.daemon;
    assert!(daemon.stop_with(libc::SIGTERM).success());
    assert!(TcpStream::connect(&addr).is_err(), "the port is closed");
}

#[test]
fn a_token_file_can_be_chosen_and_the_api_is_off_by_default() {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config_home = dir.path().join("cfg");
    let plain = Daemon::builder(&subdir(&dir, "plain"))
        .env("XDG_CONFIG_HOME", config_home.to_str().unwrap())
        .start();
    let off = plain.ctl(&["api-token"]);
    assert_ne!(off.code(), 0);
    assert!(off.stderr().contains("--http"), "{}", off.stderr());
    let status = plain.status();
    assert_eq!(status["http"], Value::Null, "no HTTP API: {status}");
    assert!(!token_path(&config_home).exists());
    drop(plain);

    let chosen = dir.path().join("my-token");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&chosen)
        .unwrap();
    file.write_all(b"my-own-long-token-123456\n").unwrap();
    drop(file);
    let daemon = Daemon::builder(&subdir(&dir, "api"))
        .args(&["--http", "127.0.0.1:0"])
        .env("XDG_CONFIG_HOME", config_home.to_str().unwrap())
        .env("TASKSYNC_API_TOKEN_FILE", chosen.to_str().unwrap())
        .start();
    let addr = http_addr(&daemon);
    let auth = [("Authorization", "Bearer my-own-long-token-123456")];
    assert_eq!(request(&addr, "GET", "/api/tasks", &auth, b"").status, 200);
    assert_eq!(
        daemon.ctl(&["api-token"]).stdout().trim(),
        "my-own-long-token-123456"
    );
    assert!(!token_path(&config_home).exists(), "no second token file");
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config_home = dir.path().join("config");
    let builder = Daemon::builder(dir.path());
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let (code, text) = builder.clone().args(&["--http", addr]).run_to_exit();
        assert_ne!(code, Some(0));
        assert!(
            text.contains(&format!("refusing to serve the HTTP API on {addr}")),
            "{text}"
        );
        assert!(text.contains("--http-allow-remote"), "{text}");
    }
    assert!(
        !dir.path().join("run/tasksyncd.sock").exists(),
        "refused before serving anything"
    );
    assert!(!token_path(&config_home).exists());

    let (code, text) = builder
        .clone()
        .args(&["--http", "example.com:80"])
        .run_to_exit();
    assert_ne!(code, Some(0));
    assert!(text.contains("not an address to listen on"), "{text}");

    let daemon = builder
        .args(&["--http", "0.0.0.0:0", "--http-allow-remote"])
        .start();
    let addr = http_addr(&daemon);
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();
    // Tests stay on loopback: reach the all-interfaces listener through 127.0.0.1.
    let answer = request(&format!("127.0.0.1:{port}"), "GET", "/api/health", &[], b"");
    assert_eq!(answer.status, 200);
}

/// Silent TCP connections beyond the cap cannot keep a client out: the health check is
/// answered while 300 of them are open, a request with the token works too, and the silent
/// ones are closed (evicted, or after the 5 s head timeout).
#[test]
fn silent_connections_cannot_lock_a_client_out() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let mut silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&api.addr).unwrap())
        .collect();
    let health = tasksync_e2e::http::get(&api.addr, "/api/health");
    assert_eq!(health.status, 200);
    assert_eq!(api.call("GET", "/api/tasks", None).status, 200);
    for stream in &mut silent {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut rest = Vec::new();
        // The daemon ends each one: a clean end, or a reset for the ones evicted.
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a silent connection was left open: {e}"),
        }
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
    }
}
