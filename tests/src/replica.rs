//! What a replica holds: the synced fields of every task, tombstones included, as the server
//! and every daemon syncing with it must agree on them once they converged.

use serde_json::{json, Value};

use crate::{Daemon, Server};

/// The synced fields of a task (what sync carries; not the local sync state or number).
pub fn essence(task: &Value) -> Value {
    json!({
        "id": task["id"], "title": task["title"], "description": task["description"],
        "completed": task["completed"], "is_deleted": task["is_deleted"],
        "created_at": task["created_at"], "updated_at": task["updated_at"],
    })
}

fn sorted(tasks: &[Value]) -> Vec<Value> {
    let mut tasks: Vec<Value> = tasks.iter().map(essence).collect();
    tasks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    tasks
}

impl Daemon {
    /// Every task this daemon holds, deleted ones included, by id.
    pub fn replica(&self) -> Vec<Value> {
        let list = self.ctl(&["--json", "list", "--all"]).json();
        sorted(list.as_array().expect("a JSON array of tasks"))
    }
}

impl Server {
    /// Every task of the user with `token` (or of the open server's user), by id.
    pub fn replica(&self, token: Option<&str>) -> Vec<Value> {
        sorted(&self.tasks_of(token))
    }
}
