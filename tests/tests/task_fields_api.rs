//! The task fields of DESIGN section 3a on the local HTTP API: bad input is a `400` that names
//! the field and stores nothing, the listing filters find the right tasks, and `PUT` clears,
//! removes and leaves alone as documented (docs/LOCAL-API.md).

use serde_json::{json, Value};
use tasksync_e2e::http::{unix_get, unix_request, Answer};
use tasksync_e2e::Daemon;

fn send(daemon: &Daemon, method: &str, path: &str, body: &Value) -> Answer {
    unix_request(
        &daemon.socket,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

fn create(daemon: &Daemon, body: Value) -> Value {
    let answer = send(daemon, "POST", "/api/tasks", &body);
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

fn list(daemon: &Daemon, query: &str) -> Value {
    let answer = unix_get(&daemon.socket, &format!("/api/tasks{query}"));
    assert_eq!(
        answer.status,
        200,
        "{query}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// The titles a listing answers, sorted.
fn titles(daemon: &Daemon, query: &str) -> Vec<String> {
    let mut titles: Vec<String> = list(daemon, query)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles
}

fn pending(daemon: &Daemon) -> u64 {
    unix_get(&daemon.socket, "/api/status").json()["pending"]
        .as_u64()
        .unwrap()
}

#[test]
fn bad_task_fields_are_refused_naming_the_field_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let task = create(&daemon, json!({"title": "kept", "tags": ["a"]}));
    let id = task["id"].as_str().unwrap().to_string();
    let tasks_before = list(&daemon, "?include_deleted=true");
    let pending_before = pending(&daemon);

    let many_tags: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let many_attributes: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a tag of 65 characters",
            json!({"tags": ["x".repeat(65)]}),
            "tag",
        ),
        ("an empty tag", json!({"tags": [""]}), "tag"),
        ("a tag with a space", json!({"tags": ["two words"]}), "tag"),
        ("65 tags", json!({"tags": many_tags}), "tags"),
        (
            "65 attributes",
            json!({"attributes": many_attributes}),
            "attribute",
        ),
        (
            "a bad attribute key",
            json!({"attributes": {"Bad": "v"}}),
            "attribute",
        ),
        (
            "an attribute value over 4,096 characters",
            json!({"attributes": {"app.k": "v".repeat(4097)}}),
            "attribute",
        ),
        ("a due date in words", json!({"due": "tomorrow"}), "due"),
        ("an unknown priority", json!({"priority": "X"}), "priority"),
        (
            "a project with a space",
            json!({"project": "my home"}),
            "project",
        ),
    ];
    for (what, fields, named) in &cases {
        let mut create_body = json!({"title": "refused"});
        let mut update_body = json!({});
        for (key, value) in fields.as_object().unwrap() {
            create_body[key] = value.clone();
            update_body[key] = value.clone();
        }
        for (method, path, body) in [
            ("POST", "/api/tasks".to_string(), &create_body),
            ("PUT", format!("/api/tasks/{id}"), &update_body),
        ] {
            let answer = send(&daemon, method, &path, body);
            let text = String::from_utf8_lossy(&answer.body).to_string();
            assert_eq!(answer.status, 400, "{method} with {what}: {text}");
            let error = answer.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                error.contains(named),
                "{method} with {what}: the error should name {named}: {text}"
            );
        }
        // `add_tags` is checked like `tags`.
        if let Some(tags) = fields.get("tags") {
            let answer = send(
                &daemon,
                "PUT",
                &format!("/api/tasks/{id}"),
                &json!({"add_tags": tags}),
            );
            assert_eq!(answer.status, 400, "add_tags with {what}");
            assert!(
                answer.json()["error"].as_str().unwrap().contains("tag"),
                "add_tags with {what}"
            );
        }
    }
    assert_eq!(
        list(&daemon, "?include_deleted=true"),
        tasks_before,
        "nothing was stored"
    );
    assert_eq!(pending(&daemon), pending_before, "nothing was queued");
}

#[test]
fn listings_filter_by_tag_project_due_and_priority() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    create(
        &daemon,
        json!({"title": "ab", "tags": ["a", "b"], "project": "home.garden",
               "due": "2030-01-10T00:00:00.000Z", "priority": "H"}),
    );
    create(
        &daemon,
        json!({"title": "a", "tags": ["a"], "project": "home",
               "due": "2030-01-20T00:00:00.000Z", "priority": "L"}),
    );
    create(
        &daemon,
        json!({"title": "b", "tags": ["b"], "project": "homework", "priority": "H"}),
    );
    create(&daemon, json!({"title": "plain"}));

    assert_eq!(titles(&daemon, "?tag=a&tag=b"), ["ab"]);
    assert_eq!(titles(&daemon, "?tag=a"), ["a", "ab"]);
    assert_eq!(
        titles(&daemon, "?project=home"),
        ["a", "ab"],
        "home and below it, not homework"
    );
    assert_eq!(titles(&daemon, "?project=home.garden"), ["ab"]);
    assert_eq!(
        titles(&daemon, "?due_before=2030-01-15T00:00:00.000Z"),
        ["ab"]
    );
    assert_eq!(
        titles(&daemon, "?due_after=2030-01-15T00:00:00.000Z"),
        ["a"]
    );
    assert_eq!(titles(&daemon, "?priority=H"), ["ab", "b"]);
    assert_eq!(titles(&daemon, "?priority=H&tag=b&project=home"), ["ab"]);
    for bad in ["?priority=X", "?due_before=tomorrow"] {
        let answer = unix_get(&daemon.socket, &format!("/api/tasks{bad}"));
        assert_eq!(answer.status, 400, "{bad}");
    }
}

#[test]
fn put_clears_tags_removes_keys_and_a_put_without_change_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let task = create(
        &daemon,
        json!({"title": "t", "tags": ["a", "b"],
               "attributes": {"app.k": "v", "app.other": "w"}}),
    );
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());

    let answer = send(
        &daemon,
        "PUT",
        &path,
        &json!({"attributes": {"app.k": null}}),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["attributes"], json!({"app.other": "w"}));
    assert_eq!(answer.json()["tags"], json!(["a", "b"]), "tags left alone");

    let answer = send(&daemon, "PUT", &path, &json!({"tags": null}));
    assert_eq!(answer.status, 200);
    let cleared = answer.json();
    assert_eq!(cleared["tags"], json!([]));
    assert_eq!(cleared["attributes"], json!({"app.other": "w"}));

    let queued = pending(&daemon);
    for unchanged in [
        json!({"tags": null}),
        json!({"remove_tags": ["a"]}),
        json!({"attributes": {"app.k": null, "app.other": "w"}}),
        json!({"title": "t", "priority": null}),
    ] {
        let answer = send(&daemon, "PUT", &path, &unchanged);
        assert_eq!(answer.status, 200, "{unchanged}");
        let same = answer.json();
        assert_eq!(same["updated_at"], cleared["updated_at"], "{unchanged}");
        assert_eq!(same["etag"], cleared["etag"], "{unchanged}");
        assert_eq!(pending(&daemon), queued, "{unchanged} queued nothing");
    }
}
