//! The edges of the local API (issue 20): `If-Match` over IPC and the protocol version that
//! carries it, the `task_sync` event on both surfaces, `?events=` / `watch --events`, and
//! taskctl's words for ambiguous references and an `edit` without a change.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;
use tasksync_e2e::http::unix_get;
use tasksync_e2e::scripted::{accepting, Scripted};
use tasksync_e2e::sse::SseStream;
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{block_on, wait_until, Daemon, DEADLINE};
use tasksync_proto::codec::{decode_frame, encode};
use tasksync_proto::ipc::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tasksync_proto::{Client, ClientError, TaskPatch};

fn title(text: &str) -> TaskPatch {
    TaskPatch {
        title: Some(text.into()),
        ..TaskPatch::default()
    }
}

fn code_of(result: Result<tasksync_proto::Task, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Daemon(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn ipc_updates_and_deletes_honour_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    block_on(async {
        let mut client = Client::connect(&daemon.socket, "if-match-test")
            .await
            .unwrap();
        let task = client
            .create_task(tasksync_proto::NewTask {
                title: "first".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let id = task.id.to_string();
        let read = task.etag();

        // Another writer changes it; the tag read before is stale now.
        let changed = client.update_task(&id, title("second")).await.unwrap();
        assert_ne!(changed.etag(), read);
        let stale = client
            .update_task_if(&id, title("third"), Some(read.clone()))
            .await;
        assert_eq!(code_of(stale), ErrorCode::PreconditionFailed);
        let stale = client.delete_task_if(&id, Some(read.clone())).await;
        assert_eq!(code_of(stale), ErrorCode::PreconditionFailed);
        let now = client.get_task(&id).await.unwrap();
        assert_eq!((now.title.as_str(), now.is_deleted), ("second", false));

        // The current tag (by number too, as taskctl names tasks), one of a list, or `*`.
        let number = now.number.unwrap().to_string();
        let list = format!("\"0000000000000000\", {}", now.etag());
        let third = client
            .update_task_if(&number, title("third"), Some(list))
            .await
            .unwrap();
        assert_eq!(third.title, "third");
        let gone = client.delete_task_if(&id, Some("*".into())).await.unwrap();
        assert!(gone.is_deleted);
    });
    // Refused attempts queued nothing: a create and two updates and a delete.
    assert_eq!(daemon.status()["pending"], 4);
}

/// A taskctl of the previous protocol (6, before `TaskHistory`) is told to upgrade, in a frame it
/// can still read (`Fatal` has kept its layout), instead of meeting garbage later.
#[test]
fn a_client_of_the_previous_protocol_is_told_to_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let hello = ClientMessage::Hello {
        protocol: PROTOCOL_VERSION - 1,
        client: "taskctl 0.0.9".into(),
    };
    stream.write_all(&encode(&hello).unwrap()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    match decode_frame::<ServerMessage>(&answer).unwrap() {
        ServerMessage::Fatal(e) => {
            assert_eq!(e.code, ErrorCode::Incompatible);
            assert!(
                e.message.contains("taskctl 0.0.9 is older: upgrade it"),
                "{}",
                e.message
            );
        }
        other => panic!("expected Fatal, got {other:?}"),
    }
    assert_eq!(
        PROTOCOL_VERSION, 8,
        "due, priority, project, tags and attributes came with 8"
    );
}

/// The `(task id, state)` pairs of a `task_sync` event: `{"task_ids": [...], "sync_status"}`.
fn task_sync_states(event: &Value) -> Vec<(String, String)> {
    let status = event["sync_status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    event["task_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no task_ids in {event}"))
        .iter()
        .map(|id| (id.as_str().unwrap_or_default().to_string(), status.clone()))
        .collect()
}

/// An answered batch tells SSE and `watch --json` alike, as `task_sync`, which tasks now
/// stand where (synced, failed), and a retry of a dead letter does too; filters let through
/// only the events asked for.
#[test]
fn task_sync_reports_sync_state_changes_on_both_surfaces_and_filters_apply() {
    let dir = tempfile::tempdir().unwrap();
    let rejected: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let reject = rejected.clone();
    let scripted = Scripted::start(accepting(move |item| {
        let bad = reject.lock().ok()?.clone();
        (item["task_id"].as_str() == bad.as_deref()).then(|| "refused by policy".to_string())
    }));
    let daemon = Daemon::builder(dir.path())
        .server(&scripted.url())
        .manual_sync()
        .args(&["--retry-attempts", "1"])
        .start();
    let mut sse = SseStream::open_path(&daemon.socket, "/api/events?events=task_sync", None);
    assert!(sse.head.starts_with("HTTP/1.1 200"), "{}", sse.head);
    let watch = Watch::start_with(&daemon, &["--events", "status,task_sync"]);

    let good = daemon.add_id("good");
    let bad = daemon.add_id("bad");
    *rejected.lock().unwrap() = Some(bad.clone());
    let (code, report) = daemon.sync();
    assert_eq!(code, 1, "{report}");

    // SSE: `status` first (it always comes), then no `task`, no `sync`: the answered batch,
    // one `task_sync` per state.
    let opening = sse.next_event().expect("an event");
    assert_eq!(opening.event, "status", "{opening:?}");
    let mut states = Vec::new();
    let mut seen = Vec::new();
    while states.len() < 2 {
        let event = sse.next_event().expect("an event");
        assert_eq!(event.event, "task_sync", "{event:?}");
        let data = event.json();
        assert_eq!(data["event"], "task_sync");
        assert!(data["task_ids"]
            .as_array()
            .is_some_and(|ids| ids.len() <= 1000));
        states.extend(task_sync_states(&data));
        seen.push(data);
    }
    states.sort();
    let mut expected = vec![
        (good.clone(), "synced".to_string()),
        (bad.clone(), "failed".to_string()),
    ];
    expected.sort();
    assert_eq!(states, expected, "{seen:?}");

    // watch --json: the same events, under the same name with the same fields.
    wait_until("watch to report the batch", || {
        watch.events("task_sync") > 1
    });
    let watched = watch.matching(|e| e["event"] == "task_sync");
    for (watched, streamed) in watched.iter().zip(&seen) {
        assert_eq!(watched["task_ids"], streamed["task_ids"]);
        assert_eq!(watched["sync_status"], streamed["sync_status"]);
    }
    let names: Vec<Value> = watch.all().iter().map(|e| e["event"].clone()).collect();
    assert!(
        names.iter().all(|n| n == "status" || n == "task_sync"),
        "{names:?}"
    );

    // A dead letter sent again: failed -> pending, on both.
    daemon.ctl(&["retry", "--all"]).assert_says(0, "");
    let event = sse.until(|e| e.event == "task_sync");
    assert_eq!(
        task_sync_states(&event.json()),
        [(bad.clone(), "pending".to_string())]
    );
    wait_until("watch to report the retry", || {
        watch.events("task_sync") > 2
    });
}

#[test]
fn unknown_event_names_are_refused_with_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    for (path, words) in [
        ("/api/events?events=task,nope", "unknown event \"nope\""),
        ("/api/events?events=", "name at least one event"),
        ("/api/events?event=task", "unknown query parameter"),
    ] {
        let answer = unix_get(&daemon.socket, path);
        assert_eq!(answer.status, 400, "{path}");
        let body = answer.json();
        assert_eq!(body["code"], "invalid_input", "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
        if !path.contains("event=") {
            assert!(
                message.contains("task_sync, conflict, connectivity, sync"),
                "{message}"
            );
        }
    }
    // HEAD checks the query the same way.
    let answer = tasksync_e2e::http::unix_request(
        &daemon.socket,
        "HEAD",
        "/api/events?events=nope",
        &[],
        b"",
    );
    assert_eq!(answer.status, 400);

    let watch = daemon.ctl(&["watch", "--events", "task,tasks"]);
    watch.assert_says(2, "unknown event \"tasks\"");
    assert!(
        watch.stderr().contains("batch_answered"),
        "{}",
        watch.stderr()
    );
}

#[test]
fn an_ambiguous_prefix_lists_its_candidates_with_titles() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let a = daemon.add_id("Buy oat milk");
    let b = daemon.add_id("Call the plumber");
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let prefix = &a[..common.max(7)];

    let human = daemon.ctl(&["show", prefix]);
    assert_eq!(human.code(), 1);
    let text = human.stderr();
    let line_of = |id: &str| {
        text.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed: {text}"))
            .to_string()
    };
    assert!(line_of(&a).contains("\"Buy oat milk\""), "{text}");
    assert!(line_of(&b).contains("\"Call the plumber\""), "{text}");

    let json = daemon.ctl(&["--json", "done", prefix]).json_error();
    assert_eq!(json["error"]["code"], "ambiguous");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{a}  task 1    \"Buy oat milk\"")),
        "{message}"
    );
    assert!(message.contains("\"Call the plumber\""), "{message}");

    // Digits are a number first; when no task has it but ids start with them, they are listed.
    assert_eq!(daemon.ctl(&["done", "1"]).code(), 0);
    let digits: String = a
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(6)
        .collect();
    if !digits.is_empty() && digits.parse::<u32>().ok() != Some(2) {
        let miss = daemon.ctl(&["show", &digits]);
        assert_eq!(miss.code(), 1);
        assert!(
            miss.stderr().contains("\"Buy oat milk\""),
            "{}",
            miss.stderr()
        );
    }
}

#[test]
fn edit_without_a_change_names_the_flags_and_list_says_open() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    daemon.add("Water the plants");
    let edit = daemon.ctl(&["edit", "1"]);
    edit.assert_says(
        1,
        "give at least one of --title, -d/--description, --clear-description, --done, --undone",
    );
    let list = daemon.ctl(&["list", "--open"]);
    assert!(
        list.stdout().ends_with("1 task (1 open, 0 done)\n"),
        "{}",
        list.stdout()
    );
    // The old name of the filter still works for scripts, but is no longer offered.
    assert_eq!(
        daemon.ctl(&["--json", "list", "--pending"]).json()[0]["number"],
        1
    );
    let help = daemon.ctl(&["list", "--help"]).stdout();
    assert!(
        help.contains("--open") && !help.contains("--pending"),
        "{help}"
    );
}

/// docs/LOCAL-API.md keeps up with the code: a row for every error code, every event and
/// every field of a task as served.
#[test]
fn the_local_api_document_lists_every_code_event_and_task_field() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/LOCAL-API.md"),
    )
    .unwrap();
    let row = |name: &str| format!("| `{name}` |");
    for code in ErrorCode::NAMES {
        assert!(doc.contains(&row(code)), "error code {code} has no row");
    }
    for event in tasksync_proto::events::EVENT_NAMES {
        assert!(doc.contains(&row(event)), "event {event} has no row");
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let task = unix_get(&daemon.socket, "/api/tasks").json();
    assert_eq!(task, Value::Array(Vec::new()));
    let served = daemon.add("documented");
    for field in served.as_object().unwrap().keys() {
        assert!(doc.contains(&row(field)), "task field {field} has no row");
    }
    assert!(served["etag"].is_string(), "{served}");
}
