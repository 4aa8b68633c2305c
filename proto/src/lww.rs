//! Field-wise Last-Write-Wins (docs/SYNC-PROTOCOL.md, section 5) as pure functions.
//!
//! Every mergeable field of a task ([`Field`]) carries the [`FieldClock`] of its last change:
//! `(updated_at, operation rank, device_id)`, compared in that order, so a tie on `updated_at`
//! goes to delete over update over create, then to the larger device id. An incoming
//! operation changes only its `changed_fields`, each one only where its clock is greater than
//! the stored one. The server's protocol (`tasksync-core`) merges every push with [`merge`],
//! in every implementation: both storage backends and the in-memory server the daemon's sync
//! simulation runs against (`daemon/src/sync/fake_server.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::timestamp::Timestamp;
use crate::wire::{Field, Operation, WireTask};

/// The clock of one field's last change. The derived order is the LWW order:
/// `updated_at`, then `rank` (create=0 < update=1 < delete=2), then `device_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FieldClock {
    pub updated_at: Timestamp,
    pub rank: u8,
    pub device_id: Uuid,
}

impl FieldClock {
    pub fn new(updated_at: Timestamp, operation: Operation, device_id: Uuid) -> Self {
        FieldClock {
            updated_at,
            rank: operation.rank(),
            device_id,
        }
    }
}

/// The clocks of a task's fields.
///
/// The task's first four fields always have one. The others (due, priority, project, each tag
/// and attribute key) have one once they were written; a field without one holds the value
/// it was created with, and [`FieldClocks::floor`] stands for its clock: older than any write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldClocks {
    pub title: FieldClock,
    pub description: FieldClock,
    pub completed: FieldClock,
    pub is_deleted: FieldClock,
    /// Clocks of the other fields that were written, by field.
    #[serde(default)]
    pub others: BTreeMap<Field, FieldClock>,
}

impl FieldClocks {
    /// Every field at the same clock (a task just created by one operation).
    pub fn uniform(clock: FieldClock) -> Self {
        FieldClocks {
            title: clock,
            description: clock,
            completed: clock,
            is_deleted: clock,
            others: BTreeMap::new(),
        }
    }

    /// The clock of a field never written since the task was created at `created_at`.
    pub fn floor(created_at: Timestamp) -> FieldClock {
        FieldClock {
            updated_at: created_at,
            rank: 0,
            device_id: Uuid::nil(),
        }
    }

    /// The clock of `field`; `created_at` is the task's (for a field never written).
    pub fn get(&self, field: &Field, created_at: Timestamp) -> FieldClock {
        match field {
            Field::Title => self.title,
            Field::Description => self.description,
            Field::Completed => self.completed,
            Field::IsDeleted => self.is_deleted,
            other => self
                .others
                .get(other)
                .copied()
                .unwrap_or_else(|| FieldClocks::floor(created_at)),
        }
    }

    pub fn set(&mut self, field: &Field, clock: FieldClock) {
        match field {
            Field::Title => self.title = clock,
            Field::Description => self.description = clock,
            Field::Completed => self.completed = clock,
            Field::IsDeleted => self.is_deleted = clock,
            other => {
                self.others.insert(other.clone(), clock);
            }
        }
    }

    /// The greatest clock: its `updated_at` is the task's, its device the task's last writer.
    pub fn latest(&self) -> FieldClock {
        [
            self.title,
            self.description,
            self.completed,
            self.is_deleted,
        ]
        .into_iter()
        .chain(self.others.values().copied())
        .max()
        .unwrap_or(self.title)
    }

    /// The storage column of [`FieldClocks::others`]: JSON, or `None` when there are none.
    pub fn others_column(&self) -> Option<String> {
        if self.others.is_empty() {
            return None;
        }
        serde_json::to_string(&self.others).ok()
    }

    /// Reads [`FieldClocks::others_column`].
    pub fn others_from_column(
        column: Option<&str>,
    ) -> Result<BTreeMap<Field, FieldClock>, serde_json::Error> {
        column.map_or(Ok(BTreeMap::new()), serde_json::from_str)
    }
}

/// A task together with the clocks of its fields, as the merge point stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    pub task: WireTask,
    pub clocks: FieldClocks,
}

impl Versioned {
    /// The clock of `field`.
    pub fn clock(&self, field: &Field) -> FieldClock {
        self.clocks.get(field, self.task.created_at)
    }
}

/// An operation arriving at the merge point.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The whole task after the operation; its `updated_at` and `device_id` are the writer's
    /// clock.
    pub data: &'a WireTask,
    pub operation: Operation,
    /// The fields the operation changed; `None` means every field (whole-task LWW).
    pub changed_fields: Option<&'a [Field]>,
}

impl Incoming<'_> {
    /// The clock every changed field of this operation carries.
    pub fn clock(&self) -> FieldClock {
        FieldClock::new(self.data.updated_at, self.operation, self.data.device_id)
    }

    /// The changed fields, without repeats, in [`Field`] order. `None` means all of them:
    /// the task's own fields, and every tag and attribute key either version has or had.
    pub fn fields(&self, stored: Option<&Versioned>) -> Vec<Field> {
        let set: BTreeSet<Field> = match self.changed_fields {
            Some(fields) => fields.iter().cloned().collect(),
            None => {
                let mut all: BTreeSet<Field> = Field::all_of(self.data).into_iter().collect();
                if let Some(stored) = stored {
                    all.extend(Field::all_of(&stored.task));
                    all.extend(stored.clocks.others.keys().cloned());
                }
                all
            }
        };
        set.into_iter().collect()
    }
}

/// The outcome of [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged task: `updated_at` and `device_id` come from its greatest field clock.
    pub task: WireTask,
    pub clocks: FieldClocks,
    /// Changed fields whose clock won: the stored task must be rewritten when non-empty.
    pub applied: Vec<Field>,
    /// Changed fields that lost to a newer stored write.
    pub lost: Vec<Field>,
}

impl Merged {
    /// Any changed field lost: answer `conflict` with [`Merged::task`].
    pub fn is_conflict(&self) -> bool {
        !self.lost.is_empty()
    }

    pub fn into_versioned(self) -> Versioned {
        Versioned {
            task: self.task,
            clocks: self.clocks,
        }
    }
}

/// Whether two tasks hold the same value in `field`.
pub fn same_value(a: &WireTask, b: &WireTask, field: &Field) -> bool {
    match field {
        Field::Title => a.title == b.title,
        Field::Description => a.description == b.description,
        Field::Completed => a.completed == b.completed,
        Field::IsDeleted => a.is_deleted == b.is_deleted,
        Field::Due => a.due == b.due,
        Field::Priority => a.priority == b.priority,
        Field::Project => a.project == b.project,
        Field::Tag(tag) => a.tags.contains(tag) == b.tags.contains(tag),
        Field::Attribute(key) => a.attributes.get(key) == b.attributes.get(key),
    }
}

/// The fields whose values differ between `before` and `after` (what an update changed), in
/// [`Field`] order.
pub fn diff(before: &WireTask, after: &WireTask) -> Vec<Field> {
    let mut fields: Vec<Field> = Field::ALL
        .into_iter()
        .filter(|field| !same_value(before, after, field))
        .collect();
    fields.extend(
        before
            .tags
            .symmetric_difference(&after.tags)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|tag| Field::Tag(tag.clone())),
    );
    let keys: BTreeSet<&String> = before
        .attributes
        .keys()
        .chain(after.attributes.keys())
        .collect();
    fields.extend(
        keys.into_iter()
            .filter(|key| before.attributes.get(*key) != after.attributes.get(*key))
            .map(|key| Field::Attribute(key.clone())),
    );
    fields
}

/// Sets `field` of `to` to its value in `from`.
pub fn copy_value(to: &mut WireTask, from: &WireTask, field: &Field) {
    match field {
        Field::Title => to.title.clone_from(&from.title),
        Field::Description => to.description.clone_from(&from.description),
        Field::Completed => to.completed = from.completed,
        Field::IsDeleted => to.is_deleted = from.is_deleted,
        Field::Due => to.due = from.due,
        Field::Priority => to.priority = from.priority,
        Field::Project => to.project.clone_from(&from.project),
        Field::Tag(tag) => {
            if from.tags.contains(tag) {
                to.tags.insert(tag.clone());
            } else {
                to.tags.remove(tag);
            }
        }
        Field::Attribute(key) => match from.attributes.get(key) {
            Some(value) => {
                to.attributes.insert(key.clone(), value.clone());
            }
            None => {
                to.attributes.remove(key);
            }
        },
    }
}

/// Merges `incoming` into the `stored` version of its task (`None`: the task is new here).
///
/// A changed field is applied when its clock is greater than the stored one. It is lost when
/// the stored clock is greater, or equal with a different value (the same write sent twice is
/// neither). For a task not yet stored, every field takes the incoming value; fields the
/// operation did not change get the clock of the task's creation
/// (`created_at`, create, device) so any real write to them wins later.
pub fn merge(stored: Option<&Versioned>, incoming: Incoming<'_>) -> Merged {
    let clock = incoming.clock();
    let fields = incoming.fields(stored);
    let Some(stored) = stored else {
        let base = FieldClock::new(
            incoming.data.created_at.min(clock.updated_at),
            Operation::Create,
            incoming.data.device_id,
        );
        let mut clocks = FieldClocks::uniform(base);
        for field in &fields {
            clocks.set(field, clock);
        }
        return finish(incoming.data.clone(), clocks, fields, Vec::new());
    };

    let mut task = stored.task.clone();
    let mut clocks = stored.clocks.clone();
    let mut applied = Vec::new();
    let mut lost = Vec::new();
    for field in fields {
        let current = clocks.get(&field, task.created_at);
        if clock > current {
            copy_value(&mut task, incoming.data, &field);
            clocks.set(&field, clock);
            applied.push(field);
        } else if clock < current || !same_value(&task, incoming.data, &field) {
            lost.push(field);
        }
    }
    finish(task, clocks, applied, lost)
}

fn finish(
    mut task: WireTask,
    clocks: FieldClocks,
    applied: Vec<Field>,
    lost: Vec<Field>,
) -> Merged {
    let latest = clocks.latest();
    task.updated_at = latest.updated_at;
    task.device_id = latest.device_id;
    Merged {
        task,
        clocks,
        applied,
        lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Uuid = Uuid::from_u128(0xA);
    const B: Uuid = Uuid::from_u128(0xB);

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn task(title: &str, at: i64, device: Uuid) -> WireTask {
        WireTask {
            id: Uuid::from_u128(1),
            title: title.into(),
            description: None,
            completed: false,
            created_at: ts(100),
            updated_at: ts(at),
            is_deleted: false,
            device_id: device,
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        }
    }

    fn created(title: &str, at: i64, device: Uuid) -> Versioned {
        let data = task(title, at, device);
        let merged = merge(
            None,
            Incoming {
                data: &data,
                operation: Operation::Create,
                changed_fields: None,
            },
        );
        assert!(!merged.is_conflict());
        merged.into_versioned()
    }

    fn apply(
        stored: &Versioned,
        data: &WireTask,
        operation: Operation,
        fields: &[Field],
    ) -> Merged {
        merge(
            Some(stored),
            Incoming {
                data,
                operation,
                changed_fields: Some(fields),
            },
        )
    }

    #[test]
    fn clock_order_is_time_then_rank_then_device() {
        let update_b = FieldClock::new(ts(5), Operation::Update, B);
        let delete_a = FieldClock::new(ts(5), Operation::Delete, A);
        let create_b = FieldClock::new(ts(5), Operation::Create, B);
        let update_a = FieldClock::new(ts(5), Operation::Update, A);
        let later = FieldClock::new(ts(6), Operation::Create, A);
        assert!(delete_a > update_b);
        assert!(update_b > create_b);
        assert!(update_b > update_a);
        assert!(later > delete_a);
    }

    #[test]
    fn create_sets_every_field_clock() {
        let v = created("t", 200, A);
        for field in Field::ALL {
            assert_eq!(
                v.clock(&field),
                FieldClock::new(ts(200), Operation::Create, A),
                "{field}"
            );
        }
        assert_eq!(v.task.updated_at, ts(200));
        assert_eq!(v.task.device_id, A);
    }

    #[test]
    fn later_edit_of_same_field_wins_earlier_one_conflicts() {
        let v = created("t", 200, A);
        let newer = apply(
            &v,
            &task("from B", 400, B),
            Operation::Update,
            &[Field::Title],
        );
        assert_eq!(newer.applied, vec![Field::Title]);
        assert!(!newer.is_conflict());
        let v = newer.into_versioned();

        let older = apply(
            &v,
            &task("from A", 300, A),
            Operation::Update,
            &[Field::Title],
        );
        assert!(older.is_conflict());
        assert_eq!(older.lost, vec![Field::Title]);
        assert!(older.applied.is_empty());
        assert_eq!(older.task.title, "from B");
        assert_eq!(older.task.updated_at, ts(400));
        assert_eq!(older.task.device_id, B);
    }

    #[test]
    fn tie_on_time_delete_beats_update_beats_create() {
        let v = created("t", 200, A);
        let mut del = task("t", 300, A);
        del.is_deleted = true;
        let mut undelete = task("t", 300, B);
        undelete.is_deleted = false;

        // delete first, then a same-millisecond update of is_deleted from a larger device: loses.
        let after_delete = apply(&v, &del, Operation::Delete, &[Field::IsDeleted]).into_versioned();
        let m = apply(
            &after_delete,
            &undelete,
            Operation::Update,
            &[Field::IsDeleted],
        );
        assert!(m.is_conflict());
        assert!(m.task.is_deleted);

        // the other arrival order gives the same result.
        let after_update =
            apply(&v, &undelete, Operation::Update, &[Field::IsDeleted]).into_versioned();
        let m = apply(&after_update, &del, Operation::Delete, &[Field::IsDeleted]);
        assert!(!m.is_conflict());
        assert!(m.task.is_deleted);

        // update beats create at the same time.
        let create_b = created("created", 300, B);
        let m = apply(
            &create_b,
            &task("updated", 300, A),
            Operation::Update,
            &[Field::Title],
        );
        assert_eq!(m.task.title, "updated");
        assert!(!m.is_conflict());
    }

    #[test]
    fn tie_on_time_and_rank_larger_device_wins() {
        let v = created("t", 200, A);
        let by_b =
            apply(&v, &task("B", 300, B), Operation::Update, &[Field::Title]).into_versioned();
        let m = apply(
            &by_b,
            &task("A", 300, A),
            Operation::Update,
            &[Field::Title],
        );
        assert!(m.is_conflict());
        assert_eq!(m.task.title, "B");

        let by_a =
            apply(&v, &task("A", 300, A), Operation::Update, &[Field::Title]).into_versioned();
        let m = apply(
            &by_a,
            &task("B", 300, B),
            Operation::Update,
            &[Field::Title],
        );
        assert!(!m.is_conflict());
        assert_eq!(m.task.title, "B");
        assert_eq!(m.task.device_id, B);
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let v = created("t", 200, A);
        // A renames at 300; B (which saw only the create) completes at 250.
        let renamed = apply(
            &v,
            &task("new title", 300, A),
            Operation::Update,
            &[Field::Title],
        );
        let v = renamed.into_versioned();
        let mut done = task("t", 250, B);
        done.completed = true;
        let m = apply(&v, &done, Operation::Update, &[Field::Completed]);
        assert!(!m.is_conflict(), "B's stale title was not a changed field");
        assert_eq!(m.task.title, "new title");
        assert!(m.task.completed);
        assert_eq!(m.task.updated_at, ts(300));
        assert_eq!(m.task.device_id, A);
    }

    #[test]
    fn delete_and_edit_of_another_field_both_apply() {
        let v = created("t", 200, A);
        let mut del = task("t", 400, A);
        del.is_deleted = true;
        let v = apply(&v, &del, Operation::Delete, &[Field::IsDeleted]).into_versioned();
        // B edits the title earlier than the delete but it arrives later.
        let m = apply(
            &v,
            &task("renamed", 300, B),
            Operation::Update,
            &[Field::Title],
        );
        assert!(!m.is_conflict());
        assert!(m.task.is_deleted);
        assert_eq!(m.task.title, "renamed");
        assert_eq!(m.task.updated_at, ts(400));
    }

    #[test]
    fn missing_changed_fields_means_whole_task() {
        let v = created("t", 200, A);
        let mut newer = task("x", 300, B);
        newer.completed = true;
        let m = merge(
            Some(&v),
            Incoming {
                data: &newer,
                operation: Operation::Update,
                changed_fields: None,
            },
        );
        assert_eq!(m.applied, Field::ALL.to_vec());
        assert_eq!(m.task, newer);

        // A whole-task write covers the tags and attributes either version has.
        let mut tagged = newer.clone();
        tagged.tags = ["a".to_string(), "b".to_string()].into();
        let v = apply(
            &m.into_versioned(),
            &tagged,
            Operation::Update,
            &[Field::Tag("a".into()), Field::Tag("b".into())],
        )
        .into_versioned();
        let mut whole = task("x", 500, A);
        whole.tags = ["c".to_string()].into();
        let m = merge(
            Some(&v),
            Incoming {
                data: &whole,
                operation: Operation::Update,
                changed_fields: None,
            },
        );
        assert_eq!(m.task.tags, ["c".to_string()].into());
    }

    #[test]
    fn the_same_write_twice_is_no_conflict_and_no_change() {
        let v = created("t", 200, A);
        let data = task("t2", 300, A);
        let v = apply(&v, &data, Operation::Update, &[Field::Title]).into_versioned();
        let again = apply(&v, &data, Operation::Update, &[Field::Title]);
        assert!(!again.is_conflict());
        assert!(again.applied.is_empty());
        assert_eq!(again.task, v.task);
    }

    #[test]
    fn update_of_an_unknown_task_takes_its_data() {
        let data = task("only update", 300, B);
        let m = merge(
            None,
            Incoming {
                data: &data,
                operation: Operation::Update,
                changed_fields: Some(&[Field::Title]),
            },
        );
        assert_eq!(m.task, data);
        assert_eq!(
            m.clocks.title,
            FieldClock::new(ts(300), Operation::Update, B)
        );
        assert_eq!(
            m.clocks.completed,
            FieldClock::new(ts(100), Operation::Create, B)
        );
    }

    fn with_tags(mut task: WireTask, tags: &[&str]) -> WireTask {
        task.tags = tags.iter().map(|t| t.to_string()).collect();
        task
    }

    fn tag(name: &str) -> Field {
        Field::Tag(name.into())
    }

    #[test]
    fn tags_added_on_two_devices_are_both_kept_in_either_order() {
        let v = created("t", 200, A);
        let on_a = with_tags(task("t", 300, A), &["home"]);
        let on_b = with_tags(task("t", 250, B), &["shop"]);
        for (first, second) in [(&on_a, &on_b), (&on_b, &on_a)] {
            let once = apply(&v, first, Operation::Update, &diff(&v.task, first));
            assert!(!once.is_conflict());
            let twice = apply(
                &once.into_versioned(),
                second,
                Operation::Update,
                &diff(&v.task, second),
            );
            assert!(!twice.is_conflict(), "different tags never conflict");
            assert_eq!(
                twice.task.tags,
                ["home".to_string(), "shop".to_string()].into()
            );
        }
    }

    #[test]
    fn adding_and_removing_one_tag_resolves_on_that_tag_alone() {
        let v = apply(
            &created("t", 200, A),
            &with_tags(task("t", 250, A), &["x", "y"]),
            Operation::Update,
            &[tag("x"), tag("y")],
        )
        .into_versioned();
        // A removes x at 300, B (having seen x) removes nothing but adds z at 400, and a
        // stale B removal of y at 260 loses to nothing: y was last written at 250.
        let removed = apply(
            &v,
            &with_tags(task("t", 300, A), &["y"]),
            Operation::Update,
            &[tag("x")],
        );
        assert_eq!(removed.applied, vec![tag("x")]);
        let v = removed.into_versioned();
        let readd = apply(
            &v,
            &with_tags(task("t", 280, B), &["x", "y"]),
            Operation::Update,
            &[tag("x")],
        );
        assert!(
            readd.is_conflict(),
            "an older add of x loses to the newer removal"
        );
        assert!(!readd.task.tags.contains("x"));
        let later = apply(
            &v,
            &with_tags(task("t", 400, B), &["x", "y"]),
            Operation::Update,
            &[tag("x")],
        );
        assert!(!later.is_conflict());
        assert_eq!(later.task.tags, ["x".to_string(), "y".to_string()].into());
    }

    #[test]
    fn attributes_merge_per_key_and_a_removal_is_a_write() {
        let key = |k: &str| Field::Attribute(k.into());
        let mut on_a = task("t", 300, A);
        on_a.attributes = [("app.a".to_string(), "1".to_string())].into();
        let mut on_b = task("t", 310, B);
        on_b.attributes = [("app.b".to_string(), "2".to_string())].into();
        let v = created("t", 200, A);
        let v = apply(&v, &on_a, Operation::Update, &[key("app.a")]).into_versioned();
        let m = apply(&v, &on_b, Operation::Update, &[key("app.b")]);
        assert!(!m.is_conflict());
        assert_eq!(m.task.attributes.len(), 2);
        // B removes app.a later: the key goes.
        let v = m.into_versioned();
        let mut removal = task("t", 320, B);
        removal.attributes = [("app.b".to_string(), "2".to_string())].into();
        let m = apply(&v, &removal, Operation::Update, &[key("app.a")]);
        assert_eq!(m.task.attributes.keys().collect::<Vec<_>>(), ["app.b"]);
        assert_eq!(
            m.clocks.others.get(&key("app.a")).map(|c| c.updated_at),
            Some(ts(320))
        );
    }

    #[test]
    fn due_priority_and_project_are_plain_lww_fields() {
        let v = created("t", 200, A);
        let mut on_a = task("t", 300, A);
        on_a.due = Some(ts(9_000));
        on_a.project = Some("home".into());
        let mut on_b = task("t", 350, B);
        on_b.due = Some(ts(8_000));
        on_b.priority = Some(crate::task::Priority::H);
        let v = apply(&v, &on_a, Operation::Update, &[Field::Due, Field::Project]).into_versioned();
        let m = apply(&v, &on_b, Operation::Update, &[Field::Due, Field::Priority]);
        assert!(!m.is_conflict());
        assert_eq!(
            (m.task.due, m.task.priority, m.task.project.as_deref()),
            (
                Some(ts(8_000)),
                Some(crate::task::Priority::H),
                Some("home")
            )
        );
        // The older write of due loses, and says so.
        let m = apply(&m.into_versioned(), &on_a, Operation::Update, &[Field::Due]);
        assert_eq!(m.lost, vec![Field::Due]);
    }

    #[test]
    fn others_clocks_round_trip_through_their_column() {
        let mut clocks = FieldClocks::uniform(FieldClock::new(ts(1), Operation::Create, A));
        assert_eq!(clocks.others_column(), None);
        clocks.set(&tag("a:b"), FieldClock::new(ts(2), Operation::Update, B));
        clocks.set(&Field::Due, FieldClock::new(ts(3), Operation::Update, A));
        let column = clocks.others_column().unwrap();
        assert_eq!(
            FieldClocks::others_from_column(Some(&column)).unwrap(),
            clocks.others
        );
        assert!(FieldClocks::others_from_column(Some("{\"nope\": 1}")).is_err());
    }

    #[test]
    fn diff_lists_changed_fields() {
        let a = task("t", 200, A);
        let mut b = a.clone();
        b.completed = true;
        b.description = Some("d".into());
        assert_eq!(diff(&a, &b), vec![Field::Description, Field::Completed]);
    }
}
