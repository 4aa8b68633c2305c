//! Tags and attributes merge per tag and per key across two real daemons and the real server
//! (docs/SYNC-PROTOCOL.md, section 5): concurrent offline edits of different tags, a removal,
//! attributes and plain fields all survive, in either order of syncing.

use serde_json::{json, Value};
use tasksync_e2e::http::unix_request;
use tasksync_e2e::{subdir, Daemon, Server};

/// `PUT /api/tasks/:id` with `body` over the daemon's local socket; the updated task.
fn put(daemon: &Daemon, id: &str, body: Value) -> Value {
    let answer = unix_request(
        &daemon.socket,
        "PUT",
        &format!("/api/tasks/{id}"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// The synced content of a task, with the server's omitted empty fields filled in.
fn content(task: &Value) -> Value {
    let or = |v: &Value, empty: Value| if v.is_null() { empty } else { v.clone() };
    json!({
        "id": task["id"], "title": task["title"], "description": task["description"],
        "completed": task["completed"], "is_deleted": task["is_deleted"],
        "updated_at": task["updated_at"], "due": task["due"], "priority": task["priority"],
        "project": task["project"],
        "tags": or(&task["tags"], json!([])),
        "attributes": or(&task["attributes"], json!({})),
    })
}

fn concurrent_tag_edits_merge(a_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "s"));
    let a = Daemon::start_manual_sync(&subdir(&dir, "a"), &server.url());
    let b = Daemon::start_manual_sync(&subdir(&dir, "b"), &server.url());
    let id = a.add_id("shared");
    put(&a, &id, json!({"add_tags": ["both", "keep"]}));
    assert_eq!(a.sync().0, 0);
    assert_eq!(b.sync().0, 0);
    assert_eq!(b.show(&id)["tags"], json!(["both", "keep"]));

    // Neither syncs between these edits: they are concurrent.
    let on_a = put(
        &a,
        &id,
        json!({"add_tags": ["home"], "attributes": {"app.colour": "red"}}),
    );
    assert_eq!(on_a["tags"], json!(["both", "home", "keep"]));
    let on_b = put(
        &b,
        &id,
        json!({"add_tags": ["shop"], "remove_tags": ["both"],
               "due": "2030-01-02T03:04:05.000Z", "priority": "H",
               "attributes": {"app.size": "large"}}),
    );
    assert_eq!(on_b["tags"], json!(["keep", "shop"]));

    let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
    for daemon in [first, second, first] {
        let (code, report) = daemon.sync();
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            report["conflicts"], 0,
            "different tags never conflict: {report}"
        );
    }

    let expected_tags = json!(["home", "keep", "shop"]);
    let expected_attributes = json!({"app.colour": "red", "app.size": "large"});
    let on_server = server
        .tasks()
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .expect("the task on the server");
    let on_server = content(&on_server);
    assert_eq!(on_server["tags"], expected_tags, "{on_server}");
    assert_eq!(on_server["attributes"], expected_attributes);
    assert_eq!(on_server["due"], "2030-01-02T03:04:05.000Z");
    assert_eq!(on_server["priority"], "H");
    for daemon in [&a, &b] {
        let shown = daemon.show(&id);
        assert_eq!(shown["tags"], expected_tags, "{shown}");
        assert_eq!(shown["attributes"], expected_attributes, "{shown}");
        assert_eq!(content(&shown), on_server, "a device equals the server");
        assert_eq!(daemon.status()["pending"], 0);
    }
    let (shown_a, shown_b) = (a.show(&id), b.show(&id));
    assert_eq!(
        content(&shown_a),
        content(&shown_b),
        "`taskctl --json show` agrees"
    );
    assert_eq!(
        shown_a["etag"], shown_b["etag"],
        "the same content and clock"
    );
}

#[test]
fn concurrent_tag_edits_merge_when_a_syncs_first() {
    concurrent_tag_edits_merge(true);
}

#[test]
fn concurrent_tag_edits_merge_when_b_syncs_first() {
    concurrent_tag_edits_merge(false);
}
