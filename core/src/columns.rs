//! How storage keeps a task's fields beyond the first ones: two text columns.
//!
//! `extras` holds due, priority, project, tags and attributes as one JSON object (NULL for a
//! task that has none of them, which every task of API version 1 is), and `other_clocks` the
//! clocks of those fields ([`FieldClocks::others`], NULL when none was written). Both SQL
//! backends read and write them through these functions, so a row means the same in each, and
//! a database of the previous schema gains them as two NULL columns.
//!
//! A conflict of the change feed is kept as its JSON in one text column (`conflicts.body`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tasksync_proto::lww::FieldClocks;
use tasksync_proto::task::Priority;
use tasksync_proto::wire::{WireConflict, WireTask};
use tasksync_proto::Timestamp;

use crate::answer::CorruptAnswer;

/// The `extras` column's JSON.
#[derive(Serialize, Deserialize, Default)]
struct Extras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    tags: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
}

/// The `conflicts.body` column of `conflict`.
pub fn conflict_column(conflict: &WireConflict) -> String {
    // A struct of strings, ids, booleans and plain JSON values always encodes.
    serde_json::to_string(conflict).unwrap_or_default()
}

/// Reads a `conflicts.body` column written by [`conflict_column`].
pub fn read_conflict(column: &str) -> Result<WireConflict, CorruptAnswer> {
    serde_json::from_str(column).map_err(|e| CorruptAnswer::column("conflicts.body", e))
}

/// The `extras` column of `task`.
pub fn extras_column(task: &WireTask) -> Option<String> {
    if !task.has_v2_fields() {
        return None;
    }
    serde_json::to_string(&Extras {
        due: task.due,
        priority: task.priority,
        project: task.project.clone(),
        tags: task.tags.clone(),
        attributes: task.attributes.clone(),
    })
    .ok()
}

/// Fills `task`'s fields beyond the first ones from its `extras` column.
pub fn read_extras(task: &mut WireTask, column: Option<&str>) -> Result<(), CorruptAnswer> {
    let Some(column) = column else {
        return Ok(());
    };
    let extras: Extras =
        serde_json::from_str(column).map_err(|e| CorruptAnswer::column("tasks.extras", e))?;
    task.due = extras.due;
    task.priority = extras.priority;
    task.project = extras.project;
    task.tags = extras.tags;
    task.attributes = extras.attributes;
    Ok(())
}

/// The `other_clocks` column of `clocks`.
pub fn other_clocks_column(clocks: &FieldClocks) -> Option<String> {
    clocks.others_column()
}

/// Fills `clocks.others` from the `other_clocks` column.
pub fn read_other_clocks(
    clocks: &mut FieldClocks,
    column: Option<&str>,
) -> Result<(), CorruptAnswer> {
    clocks.others = FieldClocks::others_from_column(column)
        .map_err(|e| CorruptAnswer::column("tasks.other_clocks", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::lww::FieldClock;
    use tasksync_proto::wire::{Field, Operation};
    use uuid::Uuid;

    fn plain() -> WireTask {
        let at = Timestamp::from_millis(1_000).unwrap();
        WireTask {
            id: Uuid::from_u128(1),
            title: "t".into(),
            description: None,
            completed: false,
            created_at: at,
            updated_at: at,
            is_deleted: false,
            device_id: Uuid::from_u128(2),
            due: None,
            priority: None,
            project: None,
            tags: BTreeSet::new(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn a_plain_task_has_null_columns_and_a_rich_one_round_trips() {
        assert_eq!(extras_column(&plain()), None);
        let mut rich = plain();
        rich.due = Timestamp::from_millis(5_000);
        rich.priority = Some(Priority::M);
        rich.project = Some("home.garden".into());
        rich.tags = ["a".to_string(), "b:c".to_string()].into();
        rich.attributes = [("app.x".to_string(), "1".to_string())].into();
        let column = extras_column(&rich);
        let mut back = plain();
        read_extras(&mut back, column.as_deref()).unwrap();
        assert_eq!(back, rich);
        assert!(read_extras(&mut back, Some("[1]")).is_err());

        let mut clocks = FieldClocks::uniform(FieldClock::new(
            rich.created_at,
            Operation::Create,
            rich.device_id,
        ));
        assert_eq!(other_clocks_column(&clocks), None);
        clocks.set(
            &Field::Tag("a".into()),
            FieldClock::new(rich.updated_at, Operation::Update, rich.device_id),
        );
        let column = other_clocks_column(&clocks);
        let mut back = FieldClocks::uniform(clocks.title);
        read_other_clocks(&mut back, column.as_deref()).unwrap();
        assert_eq!(back, clocks);
    }
}
