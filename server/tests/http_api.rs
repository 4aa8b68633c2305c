//! End-to-end tests of the real `tasksync-server` binary over HTTP: each test starts its own
//! server on `127.0.0.1:0` with a fresh database (through the harness the end-to-end tests
//! share, `tasksync_e2e::Server`), and kills it when done.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tasksync_e2e::DEADLINE;
use tasksync_proto::wire::{
    content_digest, BatchItem, BatchRequest, BatchResponse, ChangesResponse, ErrorBody, Field,
    Operation, WireTask,
};
use tasksync_proto::Timestamp;
use uuid::Uuid;

const LAPTOP: Uuid = Uuid::from_u128(0xA);
const PHONE: Uuid = Uuid::from_u128(0xB);

/// A server process (started by the shared harness, `tasksync_e2e::Server`) and how this file
/// talks to it.
struct Server {
    process: tasksync_e2e::Server,
    addr: SocketAddr,
    token: Option<String>,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(None)
    }

    fn start_with(token: Option<&str>) -> Server {
        Server::start_in(tempfile::tempdir().expect("temp dir"), token)
    }

    /// Starts a server on the database `server.db` in `dir`.
    fn start_in(dir: tempfile::TempDir, token: Option<&str>) -> Server {
        let mut builder = tasksync_e2e::Server::builder(dir.path());
        if let Some(token) = token {
            builder = builder.token(token);
        }
        let process = builder.start();
        let addr = process
            .addr
            .parse()
            .unwrap_or_else(|e| panic!("the server's address {:?}: {e}", process.addr));
        Server {
            process,
            addr,
            token: token.map(str::to_owned),
            dir,
        }
    }

    /// Sends one request on a fresh connection, with the server's token when it has one.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::from(body))).expect("request");
        send_raw(self.addr, request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Vec::new()).await
    }

    /// POSTs a batch with a correct digest; returns the answers after checking for 200.
    async fn push(&self, device: Uuid, items: Vec<BatchItem>) -> Vec<Value> {
        let reply = self.push_raw(&batch_body(device, items)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let response: BatchResponse = serde_json::from_slice(&reply.body).expect("batch response");
        let value: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            response.processed_items.len(),
            value["processed_items"].as_array().unwrap().len()
        );
        value["processed_items"].as_array().unwrap().clone()
    }

    async fn push_raw(&self, body: &[u8]) -> Reply {
        let digest = content_digest(body);
        self.send(
            Method::POST,
            "/api/batch",
            &[
                ("content-digest", &digest),
                ("content-type", "application/json"),
            ],
            body.to_vec(),
        )
        .await
    }

    async fn tasks(&self) -> Vec<WireTask> {
        let reply = self.get("/api/tasks").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        serde_json::from_slice(&reply.body).expect("task list")
    }

    async fn task(&self, id: Uuid) -> WireTask {
        self.tasks()
            .await
            .into_iter()
            .find(|t| t.id == id)
            .expect("task on the server")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status; hands back the database folder.
    fn terminate(self) -> (ExitStatus, tempfile::TempDir) {
        let Server {
            mut process, dir, ..
        } = self;
        (process.terminate(), dir)
    }
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// Checks an error answer: status and `{error, timestamp, path}`.
    fn assert_error(&self, status: StatusCode, path: &str) -> ErrorBody {
        assert_eq!(self.status, status, "{}", self.text());
        let body: ErrorBody = serde_json::from_slice(&self.body).expect("error body");
        assert_eq!(body.path, path);
        assert!(!body.error.is_empty());
        body
    }
}

async fn send_raw(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Writes `request` on a raw connection and reads the answer until the server closes it.
async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                // Stop once a complete JSON error body arrived.
                if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                    break;
                }
            }
            Err(_) => panic!("no answer within {DEADLINE:?}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A fixed time in the past (2023-11-14), so no test item trips the clock-skew check.
fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms).unwrap()
}

fn base_task(id: Uuid) -> WireTask {
    WireTask {
        id,
        title: "Buy milk".into(),
        description: None,
        completed: false,
        created_at: ts(0),
        updated_at: ts(0),
        is_deleted: false,
        device_id: Uuid::nil(),
        due: None,
        priority: None,
        project: None,
        tags: Default::default(),
        attributes: Default::default(),
    }
}

fn op(
    task: Uuid,
    operation: Operation,
    fields: &[Field],
    at: i64,
    edit: impl FnOnce(&mut WireTask),
) -> BatchItem {
    let mut data = base_task(task);
    data.updated_at = ts(at);
    edit(&mut data);
    BatchItem {
        id: Uuid::now_v7(),
        task_id: task,
        operation,
        changed_fields: Some(fields.to_vec()),
        data,
        created_at: ts(at),
        retry_count: 0,
        base: Default::default(),
    }
}

fn create(task: Uuid) -> BatchItem {
    op(task, Operation::Create, &Field::ALL, 0, |_| {})
}

fn batch_body(device: Uuid, items: Vec<BatchItem>) -> Vec<u8> {
    serde_json::to_vec(&BatchRequest {
        device_id: device,
        client_timestamp: Timestamp::now(),
        items,
    })
    .unwrap()
}

#[tokio::test]
async fn health_answers_ok() {
    let server = Server::start();
    let reply = server.get("/api/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert!(body["timestamp"]
        .as_str()
        .unwrap()
        .parse::<Timestamp>()
        .is_ok());
    assert_eq!(body["api_version"], 3);
}

/// A daemon of sync API 1 sends batches without the fields of API 2, naming four fields:
/// they apply unchanged, keep the fields of API 2 a newer device set, and the answers and
/// pulled tasks it gets back parse for it (plain tasks have the API-1 shape).
#[tokio::test]
async fn a_daemon_of_api_1_is_served_unchanged() {
    let server = Server::start();
    let task = Uuid::now_v7();
    let (old, new) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let body = serde_json::json!({
        "device_id": old, "client_timestamp": ts(0),
        "items": [{"id": Uuid::now_v7(), "task_id": task, "operation": "create",
                   "changed_fields": ["title", "description", "completed", "is_deleted"],
                   "data": {"id": task, "title": "old", "description": null, "completed": false,
                            "created_at": ts(0), "updated_at": ts(0), "is_deleted": false,
                            "device_id": old},
                   "created_at": ts(0), "retry_count": 0}]});
    let reply = server.push_raw(&serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["processed_items"][0]["status"], "success");
    let plain = server.get("/api/tasks").await.json();
    let keys: Vec<&String> = plain[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "completed",
            "created_at",
            "description",
            "device_id",
            "id",
            "is_deleted",
            "title",
            "updated_at"
        ],
        "a plain task keeps the shape of API 1"
    );

    // A newer device tags it; the old one renames it later: the tag stays.
    let tag = op(
        task,
        Operation::Update,
        &[Field::Tag("shop".into())],
        1_000,
        |t| {
            t.tags = ["shop".to_string()].into();
        },
    );
    assert_eq!(server.push(new, vec![tag]).await[0]["status"], "success");
    let mut rename = body.clone();
    rename["items"][0]["id"] = serde_json::json!(Uuid::now_v7());
    rename["items"][0]["operation"] = "update".into();
    rename["items"][0]["changed_fields"] = serde_json::json!(["title"]);
    rename["items"][0]["data"]["title"] = "renamed".into();
    rename["items"][0]["data"]["updated_at"] = serde_json::json!(ts(2_000));
    let reply = server.push_raw(&serde_json::to_vec(&rename).unwrap()).await;
    assert_eq!(reply.json()["processed_items"][0]["status"], "success");
    let stored = server.task(task).await;
    assert_eq!(stored.title, "renamed");
    assert!(stored.tags.contains("shop"));
}

/// An item whose fields of API 2 break their rules is refused alone, naming the field.
#[tokio::test]
async fn bad_fields_of_api_2_are_refused_naming_them() {
    let server = Server::start();
    type Edit = Box<dyn Fn(&mut WireTask)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "data.tags",
            Box::new(|t| t.tags = ["two words".to_string()].into()),
        ),
        (
            "data.tags",
            Box::new(|t| t.tags = (0..65).map(|i| format!("t{i}")).collect()),
        ),
        ("data.project", Box::new(|t| t.project = Some("a b".into()))),
        (
            "data.attributes",
            Box::new(|t| drop(t.attributes.insert("Bad".into(), "v".into()))),
        ),
        (
            "data.attributes",
            Box::new(|t| drop(t.attributes.insert("k".into(), "v".repeat(4_097)))),
        ),
    ];
    for (field, edit) in cases {
        let item = op(Uuid::now_v7(), Operation::Create, &Field::ALL, 0, |t| {
            edit(t)
        });
        let answer = &server.push(Uuid::now_v7(), vec![item]).await[0];
        assert_eq!(answer["status"], "error", "{field}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    assert!(server.tasks().await.is_empty());
}

#[tokio::test]
async fn a_batch_is_applied_and_listed() {
    let server = Server::start();
    let task = Uuid::now_v7();
    let item = create(task);
    let op_id = item.id;
    let answers = server.push(LAPTOP, vec![item]).await;
    assert_eq!(answers[0]["status"], "success");
    assert_eq!(answers[0]["client_id"], op_id.to_string());
    assert_eq!(answers[0]["server_id"], task.to_string());
    assert!(answers[0].get("resolved_data").is_none());
    let tasks = server.tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, "Buy milk");
    assert_eq!(tasks[0].device_id, LAPTOP);
}

#[tokio::test]
async fn missing_or_wrong_digest_is_refused_and_nothing_applied() {
    let server = Server::start();
    let body = batch_body(LAPTOP, vec![create(Uuid::now_v7())]);

    let reply = server
        .send(Method::POST, "/api/batch", &[], body.clone())
        .await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(error.error.contains("Content-Digest"), "{}", error.error);

    let digest = content_digest(&body);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("Buy milk", "Buy beer");
    let reply = server
        .send(
            Method::POST,
            "/api/batch",
            &[("content-digest", &digest)],
            tampered.into_bytes(),
        )
        .await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(error.error.contains("does not match"), "{}", error.error);

    assert!(server.tasks().await.is_empty());
    let changes: ChangesResponse = from_value(server.get("/api/changes").await.json());
    assert!(changes.changes.is_empty());
}

#[tokio::test]
async fn the_same_batch_twice_applies_once_with_the_same_answers() {
    let server = Server::start();
    let task = Uuid::now_v7();
    let body = batch_body(
        LAPTOP,
        vec![
            create(task),
            op(task, Operation::Update, &[Field::Completed], 10, |t| {
                t.completed = true
            }),
        ],
    );
    let first = server.push_raw(&body).await;
    assert_eq!(first.status, StatusCode::OK);
    let cursor_after_first = server.get("/api/changes").await.json()["cursor"].clone();
    let second = server.push_raw(&body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.json(), second.json());
    let changes = server.get("/api/changes").await.json();
    assert_eq!(changes["cursor"], cursor_after_first);
    assert_eq!(changes["changes"].as_array().unwrap().len(), 1);
    assert!(server.task(task).await.completed);
}

#[tokio::test]
async fn an_older_edit_of_the_same_field_conflicts_and_the_later_one_wins() {
    let server = Server::start();
    let task = Uuid::now_v7();
    server.push(LAPTOP, vec![create(task)]).await;
    let phone = op(task, Operation::Update, &[Field::Title], 300, |t| {
        t.title = "phone".into()
    });
    assert_eq!(
        server.push(PHONE, vec![phone]).await[0]["status"],
        "success"
    );
    let laptop = op(task, Operation::Update, &[Field::Title], 200, |t| {
        t.title = "laptop".into()
    });
    let answer = &server.push(LAPTOP, vec![laptop]).await[0];
    assert_eq!(answer["status"], "conflict");
    let resolved: WireTask = from_value(answer["resolved_data"].clone());
    assert_eq!(resolved.title, "phone");
    assert_eq!(resolved.updated_at, ts(300));
    assert_eq!(resolved.device_id, PHONE);
    assert_eq!(server.task(task).await, resolved);
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_both_survive() {
    let server = Server::start();
    let task = Uuid::now_v7();
    server.push(LAPTOP, vec![create(task)]).await;
    let rename = op(task, Operation::Update, &[Field::Title], 200, |t| {
        t.title = "new title".into()
    });
    let done = op(task, Operation::Update, &[Field::Completed], 100, |t| {
        t.completed = true
    });
    assert_eq!(
        server.push(LAPTOP, vec![rename]).await[0]["status"],
        "success"
    );
    assert_eq!(server.push(PHONE, vec![done]).await[0]["status"], "success");
    let merged = server.task(task).await;
    assert_eq!(merged.title, "new title");
    assert!(merged.completed);
    assert_eq!(merged.updated_at, ts(200));
}

#[tokio::test]
async fn a_delete_and_a_title_edit_give_a_deleted_task_with_the_new_title() {
    let server = Server::start();
    let task = Uuid::now_v7();
    server.push(LAPTOP, vec![create(task)]).await;
    let delete = op(task, Operation::Delete, &[Field::IsDeleted], 300, |t| {
        t.is_deleted = true
    });
    let rename = op(task, Operation::Update, &[Field::Title], 200, |t| {
        t.title = "renamed".into()
    });
    assert_eq!(
        server.push(LAPTOP, vec![delete]).await[0]["status"],
        "success"
    );
    assert_eq!(
        server.push(PHONE, vec![rename]).await[0]["status"],
        "success"
    );
    let merged = server.task(task).await;
    assert!(merged.is_deleted);
    assert_eq!(merged.title, "renamed");
    // The tombstone is still pulled.
    let changes: ChangesResponse = from_value(server.get("/api/changes?since=").await.json());
    assert_eq!(changes.changes, vec![merged]);
}

#[tokio::test]
async fn the_token_is_required_except_for_health() {
    let server = Server::start_with(Some("s3cret"));
    assert_eq!(server.get("/api/tasks").await.status, StatusCode::OK);

    let request = |auth: Option<&str>, path: &str| {
        let mut builder = Request::builder().uri(path).header("host", "x");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    };
    let reply = send_raw(server.addr, request(None, "/api/tasks")).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "/api/tasks");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    let reply = send_raw(server.addr, request(Some("Bearer wrong"), "/api/changes")).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "/api/changes");
    let body = batch_body(LAPTOP, vec![create(Uuid::now_v7())]);
    let digest = content_digest(&body);
    let unauthenticated_push = Request::post("/api/batch")
        .header("host", "x")
        .header("content-digest", digest)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send_raw(server.addr, unauthenticated_push)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "/api/batch");
    assert!(server.tasks().await.is_empty());

    let reply = send_raw(server.addr, request(None, "/api/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.text().contains("s3cret"));
}

#[tokio::test]
async fn too_many_items_or_too_large_a_body_is_413() {
    let server = Server::start();
    let task = Uuid::now_v7();
    let items: Vec<_> = (0..1_001).map(|_| create(task)).collect();
    let reply = server.push_raw(&batch_body(LAPTOP, items)).await;
    let error = reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "/api/batch");
    assert!(error.error.contains("1000"), "{}", error.error);
    assert!(server.tasks().await.is_empty());

    // A declared body over 8 MiB is refused before it is read.
    let answer = raw_exchange(
        server.addr,
        "POST /api/batch HTTP/1.1\r\nhost: x\r\ncontent-length: 8388609\r\n\
         content-digest: sha-256=:AAAA:\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"path\":\"/api/batch\""), "{answer}");

    // Exactly the limit of items is fine.
    let items: Vec<_> = (0..1_000).map(|_| create(task)).collect();
    let answers = server.push(LAPTOP, items).await;
    assert_eq!(answers.len(), 1_000);
}

#[tokio::test]
async fn invalid_json_and_invalid_items_name_the_field() {
    let server = Server::start();
    let mut body: Value =
        serde_json::from_slice(&batch_body(LAPTOP, vec![create(Uuid::now_v7())])).unwrap();
    body["items"][0]["data"]["created_at"] = json!("last tuesday");
    let reply = server.push_raw(&serde_json::to_vec(&body).unwrap()).await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(
        error.error.starts_with("items[0].data.created_at"),
        "{}",
        error.error
    );

    body["items"][0]["data"]["created_at"] = json!(ts(0).to_string());
    body["items"][0]["operation"] = json!("upsert");
    let reply = server.push_raw(&serde_json::to_vec(&body).unwrap()).await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(
        error.error.starts_with("items[0].operation"),
        "{}",
        error.error
    );

    let reply = server.push_raw(b"{not json").await;
    reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");

    // A well-formed but invalid item is rejected alone, naming the field.
    let good = create(Uuid::now_v7());
    let bad = op(Uuid::now_v7(), Operation::Create, &Field::ALL, 0, |t| {
        t.title = "  ".into()
    });
    let answers = server.push(LAPTOP, vec![good, bad]).await;
    assert_eq!(answers[0]["status"], "success");
    assert_eq!(answers[1]["status"], "error");
    assert!(answers[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("items[1].data.title"));
    assert_eq!(server.tasks().await.len(), 1);
}

#[tokio::test]
async fn changes_page_with_cursor_and_has_more() {
    let server = Server::start();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    server
        .push(LAPTOP, ids.iter().map(|id| create(*id)).collect())
        .await;
    // The first task changes again: it moves to the end of the change order.
    let edit = op(ids[0], Operation::Update, &[Field::Completed], 50, |t| {
        t.completed = true
    });
    server.push(PHONE, vec![edit]).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = Vec::new();
    loop {
        let reply = server
            .get(&format!("/api/changes?since={cursor}&limit=2"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let page: ChangesResponse = from_value(reply.json());
        pages.push(page.changes.len());
        seen.extend(page.changes.iter().map(|t| t.id));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(pages, vec![2, 2, 1]);
    let mut expected = ids[1..].to_vec();
    expected.push(ids[0]);
    assert_eq!(seen, expected);

    let last: ChangesResponse = from_value(
        server
            .get(&format!("/api/changes?since={cursor}"))
            .await
            .json(),
    );
    assert!(last.changes.is_empty());
    assert!(!last.has_more);
    assert_eq!(last.cursor, cursor);

    let all: ChangesResponse = from_value(server.get("/api/changes").await.json());
    assert_eq!(all.changes.len(), 5);
    assert!(all.changes[4].completed);
}

#[tokio::test]
async fn unknown_cursor_unknown_route_and_wrong_method() {
    let server = Server::start();
    // A cursor this server never issued: not a number, or beyond the user's latest change
    // (a server restored from an older backup). 410: pull again from the beginning.
    for since in ["banana", "-1", "7"] {
        let reply = server.get(&format!("/api/changes?since={since}")).await;
        let error = reply.assert_error(StatusCode::GONE, "/api/changes");
        assert!(error.error.starts_with("since"), "{}", error.error);
    }
    server
        .push(Uuid::now_v7(), vec![create(Uuid::now_v7())])
        .await;
    let page = server.get("/api/changes?since=1").await.json();
    assert_eq!(page["cursor"], "1", "the latest change's cursor is known");
    server
        .get("/api/changes?limit=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "/api/changes");

    server
        .get("/api/nothing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "/api/nothing");
    server
        .get("/")
        .await
        .assert_error(StatusCode::NOT_FOUND, "/");

    let reply = server.get("/api/batch").await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "/api/batch");
    assert_eq!(reply.headers["allow"], "POST");
    let reply = server
        .send(Method::DELETE, "/api/tasks", &[], Vec::new())
        .await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "/api/tasks");
    assert_eq!(reply.headers["allow"], "GET");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_data_persists() {
    let server = Server::start();
    let task = Uuid::now_v7();
    server.push(LAPTOP, vec![create(task)]).await;
    let (status, dir) = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let restarted = Server::start_in(dir, None);
    assert_eq!(restarted.task(task).await.title, "Buy milk");
}

#[tokio::test]
async fn a_second_sha256_digest_member_is_refused() {
    let server = Server::start();
    let body = batch_body(LAPTOP, vec![create(Uuid::now_v7())]);
    let right = content_digest(&body);
    let wrong = content_digest(b"something else");
    let header = format!("{right}, {wrong}");
    let reply = server
        .send(
            Method::POST,
            "/api/batch",
            &[("content-digest", &header)],
            body,
        )
        .await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(error.error.contains("more than one"), "{}", error.error);
    assert!(server.tasks().await.is_empty());
}

#[tokio::test]
async fn a_second_sha256_digest_on_its_own_header_line_is_refused() {
    let server = Server::start();
    let body = batch_body(LAPTOP, vec![create(Uuid::now_v7())]);
    let right = content_digest(&body);
    let wrong = content_digest(b"something else");
    let reply = server
        .send(
            Method::POST,
            "/api/batch",
            &[("content-digest", &right), ("content-digest", &wrong)],
            body,
        )
        .await;
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "/api/batch");
    assert!(error.error.contains("more than one"), "{}", error.error);
    assert!(server.tasks().await.is_empty());
}

#[tokio::test]
async fn items_from_a_clock_too_far_ahead_are_refused_alone() {
    let server = Server::start();
    let (ok, ahead, created_ahead) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let future = Timestamp::from_millis(Timestamp::now().as_millis() + 11 * 60 * 1_000).unwrap();
    let mut far = create(ahead);
    far.data.updated_at = Timestamp::from_millis(253_402_300_799_999).unwrap();
    let mut created = create(created_ahead);
    created.data.created_at = future;
    created.data.updated_at = future;
    created.created_at = future;
    let answers = server.push(LAPTOP, vec![create(ok), far, created]).await;
    assert_eq!(answers[0]["status"], "success");
    for answer in &answers[1..] {
        assert_eq!(answer["status"], "error", "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("clock"),
            "{answer}"
        );
    }
    let ids: Vec<Uuid> = server.tasks().await.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![ok]);
    // A timestamp within the allowed skew (here 1 minute ahead) is fine.
    let near = Uuid::now_v7();
    let mut soon = create(near);
    let in_a_minute = Timestamp::from_millis(Timestamp::now().as_millis() + 60_000).unwrap();
    soon.data.updated_at = in_a_minute;
    soon.data.created_at = in_a_minute;
    soon.created_at = in_a_minute;
    assert_eq!(
        server.push(LAPTOP, vec![soon]).await[0]["status"],
        "success"
    );
}

#[tokio::test]
async fn a_live_pull_waits_for_the_next_change_and_answers_it() {
    let server = Server::start();
    server.push(LAPTOP, vec![create(Uuid::now_v7())]).await;
    let first: ChangesResponse = from_value(server.get("/api/changes").await.json());
    let cursor = first.cursor;

    let task = Uuid::now_v7();
    let path = format!("/api/changes?since={cursor}&wait=30");
    let started = std::time::Instant::now();
    let (reply, ()) = tokio::join!(server.get(&path), async {
        // Push once the pull is certainly waiting: it holds while nothing is new.
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.push(PHONE, vec![create(task)]).await;
    });
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let page: ChangesResponse = from_value(reply.json());
    assert_eq!(
        page.changes.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![task]
    );
    assert_ne!(page.cursor, cursor);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "woken by the push"
    );
}

#[tokio::test]
async fn a_live_pull_with_nothing_new_answers_empty_after_the_wait() {
    let server = Server::start();
    server.push(LAPTOP, vec![create(Uuid::now_v7())]).await;
    let first: ChangesResponse = from_value(server.get("/api/changes").await.json());
    let started = std::time::Instant::now();
    let reply = server
        .get(&format!("/api/changes?since={}&wait=1", first.cursor))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let page: ChangesResponse = from_value(reply.json());
    assert!(page.changes.is_empty());
    assert_eq!(page.cursor, first.cursor);
    assert!(!page.has_more);
    // Something already new is answered at once, wait or not.
    let all: ChangesResponse = from_value(server.get("/api/changes?wait=60").await.json());
    assert_eq!(all.changes.len(), 1);
    for bad in ["wait=0", "wait=61", "wait=x"] {
        server
            .get(&format!("/api/changes?{bad}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "/api/changes");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_answers_waiting_pulls_at_once() {
    let server = Server::start();
    let addr = server.addr;
    let pull = tokio::spawn(async move {
        let request = Request::builder()
            .uri("/api/changes?wait=60")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        send_raw(addr, request).await
    });
    // The pull is held (nothing on the server); give it a moment to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (status, _dir) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success());
    let reply = pull.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_busy_port_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let (code, _, stderr) =
        tasksync_e2e::server_cli(&["--listen", &addr, "--db", db.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert_eq!(stderr.matches("cannot listen").count(), 1, "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[tokio::test]
async fn health_names_the_storage_and_needs_no_token() {
    let server = Server::start_with(Some("s3cret"));
    let reply = send_raw(
        server.addr,
        Request::builder()
            .uri("/api/health")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["storage"], "sqlite");
}

fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("JSON of the expected shape")
}

/// More idle connections than the server's open-file limit allows: the idlest (head-less)
/// ones are closed for newcomers, so health checks and devices are still served, and a live
/// pull held from before the flood is not among those closed.
#[test]
fn a_flood_of_idle_connections_does_not_lock_out_health_checks_or_devices() {
    use std::net::TcpStream;
    use tasksync_e2e::{http, push_task, HeldPulls};
    let dir = tempfile::tempdir().unwrap();
    let server = tasksync_e2e::Server::builder(dir.path())
        .token("secret")
        .open_file_limit(256)
        .start();
    let held = HeldPulls::open(&server.addr, "secret", "", 1);
    let flood: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    for _ in 0..5 {
        assert_eq!(http::get(&server.addr, "/api/health").status, 200);
    }
    assert_eq!(push_task(&server.addr, "secret", "during a flood"), 200);
    let answers = held.answers();
    assert_eq!(
        answers[0].status, 200,
        "the held pull was answered, not closed"
    );
    assert_eq!(answers[0].json()["changes"][0]["title"], "during a flood");
    drop(flood);
}

/// The value of the sample `name` (with its labels, as printed) in a metrics exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `GET /metrics` moves with the work done: requests, applied items, held live pulls and
/// their wake-ups.
#[test]
fn metrics_count_requests_items_and_live_pulls() {
    use tasksync_e2e::{http, push_task, HeldPulls};
    let dir = tempfile::tempdir().unwrap();
    let server = tasksync_e2e::Server::builder(dir.path())
        .token("secret")
        .start();
    let scrape = || {
        let answer = http::get(&server.addr, "/metrics");
        assert_eq!(answer.status, 200);
        assert!(answer
            .header("content-type")
            .is_some_and(|t| t.contains("openmetrics-text")));
        String::from_utf8(answer.body).unwrap()
    };
    let before = scrape();
    assert!(before.contains("tasksync_server_process_start_time_seconds "));
    let held = HeldPulls::open(&server.addr, "secret", "", 1);
    tasksync_e2e::wait_until("the pull to be held", || {
        sample(&scrape(), "tasksync_server_live_pulls_open") == 1.0
    });
    assert_eq!(push_task(&server.addr, "secret", "counted"), 200);
    assert_eq!(held.answers()[0].status, 200);
    let after = scrape();
    let batch = r#"tasksync_server_http_requests_total{route="batch",status="200"}"#;
    assert_eq!(sample(&after, batch) - sample(&before, batch), 1.0);
    let success = r#"tasksync_server_batch_items_total{outcome="success"}"#;
    assert_eq!(sample(&after, success), 1.0);
    assert_eq!(
        sample(&after, "tasksync_server_live_pull_wakeups_total"),
        1.0
    );
    assert_eq!(sample(&after, "tasksync_server_live_pulls_open"), 0.0);
    let pulls = r#"tasksync_server_http_request_duration_seconds_count{route="changes"}"#;
    assert!(sample(&after, pulls) >= 1.0, "{after}");
}

#[test]
fn metrics_listen_moves_metrics_off_the_public_listener() {
    use tasksync_e2e::http;
    let dir = tempfile::tempdir().unwrap();
    let port = tasksync_e2e::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = tasksync_e2e::Server::builder(dir.path())
        .arg("--metrics-listen")
        .arg(&metrics_addr)
        .start();
    assert_eq!(http::get(&server.addr, "/metrics").status, 404);
    tasksync_e2e::wait_until("the metrics listener", || {
        std::net::TcpStream::connect(&metrics_addr).is_ok()
    });
    let answer = http::get(&metrics_addr, "/metrics");
    assert_eq!(answer.status, 200);
    assert!(String::from_utf8_lossy(&answer.body).contains("tasksync_server_http_requests_total"));
    assert_eq!(http::get(&metrics_addr, "/api/health").status, 404);
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = tasksync_e2e::Server::builder(dir.path())
        .arg("--log-format")
        .arg("json")
        .start();
    // Serving (its start-up lines are written), and its signal handler in place.
    assert_eq!(
        tasksync_e2e::http::get(&server.addr, "/api/health").status,
        200
    );
    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
}
