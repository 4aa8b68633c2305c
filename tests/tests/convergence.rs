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
    Sync,
}

fn action() -> impl Strategy<Value = (usize, Action)> {
    let text = "[a-z]{1,6}";
    let kind = prop_oneof![
        2 => text.prop_map(Action::Create),
        2 => (any::<usize>(), text).prop_map(|(i, t)| Action::Retitle(i, t)),
        1 => (any::<usize>(), proptest::option::of(text)).prop_map(|(i, d)| Action::Describe(i, d)),
        2 => any::<usize>().prop_map(Action::Toggle),
        1 => any::<usize>().prop_map(Action::Delete),
        3 => Just(Action::Sync),
    ];
    (0..REPLICAS, kind)
}

/// A field's clock: (updated_at, operation rank, device), compared in that order.
type Clock = (Timestamp, u8, Uuid);

/// The reference: for each task and field, the value with the greatest clock.
#[derive(Default)]
struct Model {
    tasks: BTreeMap<Uuid, BTreeMap<&'static str, (Clock, serde_json::Value)>>,
}

impl Model {
    fn record(&mut self, task: &Task, fields: &[&'static str], rank: u8, device: Uuid) {
        let clock = (task.updated_at, rank, device);
        let entry = self.tasks.entry(task.id).or_default();
        for field in fields {
            let value = match *field {
                "title" => serde_json::json!(task.title),
                "description" => serde_json::json!(task.description),
                "completed" => serde_json::json!(task.completed),
                _ => serde_json::json!(task.is_deleted),
            };
            match entry.get(field) {
                Some((existing, _)) if *existing >= clock => {}
                _ => {
                    entry.insert(field, (clock, value));
                }
            }
        }
    }

    /// Each task as `{title, description, completed, is_deleted, updated_at}`.
    fn expected(&self) -> BTreeMap<Uuid, serde_json::Value> {
        self.tasks
            .iter()
            .map(|(id, fields)| {
                let latest = fields.values().map(|(clock, _)| clock.0).max().unwrap();
                let value = |f: &str| fields[f].1.clone();
                let task = serde_json::json!({
                    "title": value("title"), "description": value("description"),
                    "completed": value("completed"), "is_deleted": value("is_deleted"),
                    "updated_at": latest.to_string(),
                });
                (*id, task)
            })
            .collect()
    }
}

fn essence(task: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "title": task["title"], "description": task["description"], "completed": task["completed"],
        "is_deleted": task["is_deleted"], "updated_at": task["updated_at"],
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
            let change = |fields: &'static [&'static str]| fields;
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
                    model.record(
                        &task,
                        &["title", "description", "completed", "is_deleted"],
                        0,
                        device,
                    );
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
                Action::Delete(i) => {
                    if let Some(id) = pick(i) {
                        if let Ok(task) = client.delete_task(&id).await {
                            model.record(&task, &["is_deleted"], 2, device);
                        }
                    }
                    continue;
                }
            };
            if let Some((id, patch, fields)) = result {
                // Refused when the replica has deleted the task itself: nothing to record.
                if let Ok(task) = client.update_task(&id, patch).await {
                    model.record(&task, fields, 1, device);
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
