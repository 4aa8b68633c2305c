//! Convergence: three replicas make random changes and sync in random orders; after a final
//! round every replica and the server hold the same tasks, equal to a reference model that
//! applies the per-field Last-Write-Wins rule (docs/SYNC-PROTOCOL.md, section 5) to every operation made.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tasksync_e2e::{subdir, Daemon, Server};
use tasksync_proto::{Client, NewTask, Task, TaskPatch, Timestamp};
use uuid::Uuid;

const REPLICAS: usize = 3;

#[derive(Debug, Clone)]
enum Action {
    Create(String),
    Retitle(usize, String),
    Describe(usize, Option<String>),
    Toggle(usize),
    Delete(usize),
    AddTag(usize, String),
    RemoveTag(usize, String),
    SetAttribute(usize, String, Option<String>),
    Sync,
}

/// A small alphabet, so that replicas often touch the same tag or key.
fn tag() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["home", "shop", "work"]).prop_map(String::from)
}

fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["app.colour", "app.size"]).prop_map(String::from)
}

fn action() -> impl Strategy<Value = (usize, Action)> {
    let text = "[a-z]{1,6}";
    let kind = prop_oneof![
        2 => text.prop_map(Action::Create),
        2 => (any::<usize>(), text).prop_map(|(i, t)| Action::Retitle(i, t)),
        1 => (any::<usize>(), proptest::option::of(text)).prop_map(|(i, d)| Action::Describe(i, d)),
        2 => any::<usize>().prop_map(Action::Toggle),
        1 => any::<usize>().prop_map(Action::Delete),
        2 => (any::<usize>(), tag()).prop_map(|(i, t)| Action::AddTag(i, t)),
        2 => (any::<usize>(), tag()).prop_map(|(i, t)| Action::RemoveTag(i, t)),
        2 => (any::<usize>(), key(), proptest::option::of("[a-z]{1,3}"))
            .prop_map(|(i, k, v)| Action::SetAttribute(i, k, v)),
        3 => Just(Action::Sync),
    ];
    (0..REPLICAS, kind)
}

/// A field's clock: (updated_at, operation rank, device), compared in that order.
type Clock = (Timestamp, u8, Uuid);

/// The reference: for each task and field (`title`, ..., `tag:T`, `attribute:K`), the value
/// with the greatest clock. A tag's value is whether the task has it, an attribute's its value
/// or null; removing either is a write like any other.
#[derive(Default)]
struct Model {
    tasks: BTreeMap<Uuid, BTreeMap<String, (Clock, serde_json::Value)>>,
}

/// The value of `field` in `task`.
fn value_of(task: &Task, field: &str) -> serde_json::Value {
    if let Some(tag) = field.strip_prefix("tag:") {
        return serde_json::json!(task.tags.contains(tag));
    }
    if let Some(key) = field.strip_prefix("attribute:") {
        return serde_json::json!(task.attributes.get(key));
    }
    match field {
        "title" => serde_json::json!(task.title),
        "description" => serde_json::json!(task.description),
        "completed" => serde_json::json!(task.completed),
        "due" => serde_json::json!(task.due),
        "priority" => serde_json::json!(task.priority),
        "project" => serde_json::json!(task.project),
        _ => serde_json::json!(task.is_deleted),
    }
}

/// The fields a create writes: the task's own, and each tag and attribute it starts with.
fn created_fields(task: &Task) -> Vec<String> {
    let mut fields: Vec<String> = [
        "title",
        "description",
        "completed",
        "is_deleted",
        "due",
        "priority",
        "project",
    ]
    .map(String::from)
    .to_vec();
    fields.extend(task.tags.iter().map(|t| format!("tag:{t}")));
    fields.extend(task.attributes.keys().map(|k| format!("attribute:{k}")));
    fields
}

impl Model {
    fn record(&mut self, task: &Task, fields: &[String], rank: u8, device: Uuid) {
        let clock = (task.updated_at, rank, device);
        let entry = self.tasks.entry(task.id).or_default();
        for field in fields {
            let value = value_of(task, field);
            match entry.get(field) {
                Some((existing, _)) if *existing >= clock => {}
                _ => {
                    entry.insert(field.clone(), (clock, value));
                }
            }
        }
    }

    /// Each task as `{title, description, completed, is_deleted, updated_at, tags,
    /// attributes}`.
    fn expected(&self) -> BTreeMap<Uuid, serde_json::Value> {
        self.tasks
            .iter()
            .map(|(id, fields)| {
                let latest = fields.values().map(|(clock, _)| clock.0).max().unwrap();
                let value = |f: &str| fields[f].1.clone();
                let tags: Vec<&str> = fields
                    .iter()
                    .filter(|(_, (_, v))| *v == serde_json::json!(true))
                    .filter_map(|(f, _)| f.strip_prefix("tag:"))
                    .collect();
                let attributes: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .filter(|(_, (_, v))| !v.is_null())
                    .filter_map(|(f, (_, v))| {
                        Some((f.strip_prefix("attribute:")?.to_string(), v.clone()))
                    })
                    .collect();
                let task = serde_json::json!({
                    "title": value("title"), "description": value("description"),
                    "completed": value("completed"), "is_deleted": value("is_deleted"),
                    "updated_at": latest.to_string(),
                    "tags": tags, "attributes": attributes,
                });
                (*id, task)
            })
            .collect()
    }
}

/// The fields of `patch` whose value differs between `before` and `after`: an update that
/// changes nothing (a tag added that was there, a key set to its value) is no write.
fn changed(before: &Task, after: &Task, candidates: &[String]) -> Vec<String> {
    candidates
        .iter()
        .filter(|f| value_of(before, f) != value_of(after, f))
        .cloned()
        .collect()
}

fn essence(task: &serde_json::Value) -> serde_json::Value {
    // The server leaves out empty tags and attributes; the daemon shows them empty.
    let or = |v: &serde_json::Value, empty: serde_json::Value| {
        if v.is_null() {
            empty
        } else {
            v.clone()
        }
    };
    serde_json::json!({
        "title": task["title"], "description": task["description"], "completed": task["completed"],
        "is_deleted": task["is_deleted"], "updated_at": task["updated_at"],
        "tags": or(&task["tags"], serde_json::json!([])),
        "attributes": or(&task["attributes"], serde_json::json!({})),
    })
}

fn by_id(tasks: &[serde_json::Value]) -> BTreeMap<Uuid, serde_json::Value> {
    tasks
        .iter()
        .map(|t| (t["id"].as_str().unwrap().parse().unwrap(), essence(t)))
        .collect()
}

fn run_case(actions: Vec<(usize, Action)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let daemons: Vec<Daemon> = (0..REPLICAS)
        .map(|r| Daemon::start_manual_sync(&subdir(&dir, &format!("replica{r}")), &server.url()))
        .collect();
    let model = tasksync_e2e::block_on(async {
        let mut clients = Vec::new();
        let mut devices = Vec::new();
        for daemon in &daemons {
            let mut client = Client::connect(&daemon.socket, "convergence")
                .await
                .unwrap();
            devices.push(client.status().await.unwrap().device_id);
            clients.push(client);
        }
        let mut model = Model::default();
        for (replica, action) in actions {
            let client = &mut clients[replica];
            let device = devices[replica];
            let known = client.list_tasks(true, None).await.unwrap();
            let pick =
                |i: usize| (!known.is_empty()).then(|| known[i % known.len()].id.to_string());
            let change = |fields: &[&str]| fields.iter().map(|f| f.to_string()).collect::<Vec<_>>();
            let result = match action {
                Action::Create(title) => {
                    let task = client
                        .create_task(NewTask {
                            title,
                            description: None,
                            id: None,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    model.record(&task, &created_fields(&task), 0, device);
                    continue;
                }
                Action::Sync => {
                    client.sync().await.unwrap();
                    continue;
                }
                Action::Retitle(i, title) => pick(i).map(|id| {
                    (
                        id,
                        TaskPatch {
                            title: Some(title),
                            ..Default::default()
                        },
                        change(&["title"]),
                    )
                }),
                Action::Describe(i, text) => pick(i).map(|id| {
                    (
                        id,
                        TaskPatch {
                            description: Some(text),
                            ..Default::default()
                        },
                        change(&["description"]),
                    )
                }),
                Action::Toggle(i) => pick(i).map(|id| {
                    let done = known
                        .iter()
                        .find(|t| t.id.to_string() == id)
                        .is_some_and(|t| t.completed);
                    (
                        id,
                        TaskPatch {
                            completed: Some(!done),
                            ..Default::default()
                        },
                        change(&["completed"]),
                    )
                }),
                Action::AddTag(i, tag) => pick(i).map(|id| {
                    let field = format!("tag:{tag}");
                    (
                        id,
                        TaskPatch {
                            add_tags: [tag].into(),
                            ..Default::default()
                        },
                        vec![field],
                    )
                }),
                Action::RemoveTag(i, tag) => pick(i).map(|id| {
                    let field = format!("tag:{tag}");
                    (
                        id,
                        TaskPatch {
                            remove_tags: [tag].into(),
                            ..Default::default()
                        },
                        vec![field],
                    )
                }),
                Action::SetAttribute(i, key, value) => pick(i).map(|id| {
                    let field = format!("attribute:{key}");
                    (
                        id,
                        TaskPatch {
                            attributes: [(key, value)].into(),
                            ..Default::default()
                        },
                        vec![field],
                    )
                }),
                Action::Delete(i) => {
                    if let Some(id) = pick(i) {
                        if let Ok(task) = client.delete_task(&id).await {
                            model.record(&task, &change(&["is_deleted"]), 2, device);
                        }
                    }
                    continue;
                }
            };
            if let Some((id, patch, fields)) = result {
                let before = known.iter().find(|t| t.id.to_string() == id).unwrap();
                // Refused when the replica has deleted the task itself: nothing to record.
                if let Ok(task) = client.update_task(&id, patch).await {
                    // A field set to the value it holds is no write: the daemon queues
                    // nothing and issues no clock.
                    let fields = changed(before, &task, &fields);
                    model.record(&task, &fields, 1, device);
                }
            }
        }
        // A final round: everyone pushes, then everyone pulls what the others pushed.
        for _ in 0..2 {
            for client in &mut clients {
                let report = client.sync().await.unwrap();
                assert!(report.success, "{report:?}");
            }
        }
        model
    });
    let expected = model.expected();
    let on_server = by_id(&server.tasks());
    prop_assert_eq!(&on_server, &expected, "the server equals the model");
    for daemon in &daemons {
        let local = daemon.ctl(&["--json", "list", "--all"]).json();
        let local = by_id(local.as_array().unwrap());
        prop_assert_eq!(&local, &expected, "a replica equals the model");
        prop_assert_eq!(daemon.status()["pending"].as_u64(), Some(0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 32, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_to_the_per_field_last_write(actions in proptest::collection::vec(action(), 4..40)) {
        run_case(actions)?;
    }
}
