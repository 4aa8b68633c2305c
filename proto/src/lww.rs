//! Field-wise Last-Write-Wins (docs/SYNC-PROTOCOL.md, section 5) as pure functions.
//!
//! Every mergeable field of a task ([`Field`]) carries the [`FieldClock`] of its last change:
//! `(updated_at, operation rank, device_id)`, compared in that order, so a tie on `updated_at`
//! goes to delete over update over create, then to the larger device id. An incoming
//! operation changes only its `changed_fields`, each one only where its clock is greater than
//! the stored one. The server's protocol (`tasksync-core`) merges every push with [`merge`],
//! in every implementation: both storage backends and the in-memory server the daemon's sync
//! simulation runs against (`daemon/src/sync/fake_server.rs`).

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

/// One clock per mergeable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldClocks {
    pub title: FieldClock,
    pub description: FieldClock,
    pub completed: FieldClock,
    pub is_deleted: FieldClock,
}

impl FieldClocks {
    /// Every field at the same clock (a task just created by one operation).
    pub fn uniform(clock: FieldClock) -> Self {
        FieldClocks {
            title: clock,
            description: clock,
            completed: clock,
            is_deleted: clock,
        }
    }

    pub fn get(&self, field: Field) -> FieldClock {
        match field {
            Field::Title => self.title,
            Field::Description => self.description,
            Field::Completed => self.completed,
            Field::IsDeleted => self.is_deleted,
        }
    }

    pub fn set(&mut self, field: Field, clock: FieldClock) {
        match field {
            Field::Title => self.title = clock,
            Field::Description => self.description = clock,
            Field::Completed => self.completed = clock,
            Field::IsDeleted => self.is_deleted = clock,
        }
    }

    /// The greatest clock: its `updated_at` is the task's, its device the task's last writer.
    pub fn latest(&self) -> FieldClock {
        Field::ALL
            .into_iter()
            .map(|field| self.get(field))
            .max()
            .unwrap_or(self.title)
    }
}

/// A task together with the clocks of its fields, as the merge point stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    pub task: WireTask,
    pub clocks: FieldClocks,
}

/// An operation arriving at the merge point.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The whole task after the operation; its `updated_at` and `device_id` are the writer's
    /// clock.
    pub data: &'a WireTask,
    pub operation: Operation,
    /// The fields the operation changed; `None` means all four.
    pub changed_fields: Option<&'a [Field]>,
}

impl Incoming<'_> {
    /// The clock every changed field of this operation carries.
    pub fn clock(&self) -> FieldClock {
        FieldClock::new(self.data.updated_at, self.operation, self.data.device_id)
    }

    /// The changed fields, without repeats, in [`Field::ALL`] order.
    pub fn fields(&self) -> Vec<Field> {
        match self.changed_fields {
            None => Field::ALL.to_vec(),
            Some(fields) => Field::ALL
                .into_iter()
                .filter(|field| fields.contains(field))
                .collect(),
        }
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
pub fn same_value(a: &WireTask, b: &WireTask, field: Field) -> bool {
    match field {
        Field::Title => a.title == b.title,
        Field::Description => a.description == b.description,
        Field::Completed => a.completed == b.completed,
        Field::IsDeleted => a.is_deleted == b.is_deleted,
    }
}

/// The fields whose values differ between `before` and `after` (what an update changed).
pub fn diff(before: &WireTask, after: &WireTask) -> Vec<Field> {
    Field::ALL
        .into_iter()
        .filter(|&field| !same_value(before, after, field))
        .collect()
}

fn copy_value(to: &mut WireTask, from: &WireTask, field: Field) {
    match field {
        Field::Title => to.title.clone_from(&from.title),
        Field::Description => to.description.clone_from(&from.description),
        Field::Completed => to.completed = from.completed,
        Field::IsDeleted => to.is_deleted = from.is_deleted,
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
    let fields = incoming.fields();
    let Some(stored) = stored else {
        let base = FieldClock::new(
            incoming.data.created_at.min(clock.updated_at),
            Operation::Create,
            incoming.data.device_id,
        );
        let mut clocks = FieldClocks::uniform(base);
        for &field in &fields {
            clocks.set(field, clock);
        }
        return finish(incoming.data.clone(), clocks, fields, Vec::new());
    };

    let mut task = stored.task.clone();
    let mut clocks = stored.clocks;
    let mut applied = Vec::new();
    let mut lost = Vec::new();
    for field in fields {
        let current = clocks.get(field);
        if clock > current {
            copy_value(&mut task, incoming.data, field);
            clocks.set(field, clock);
            applied.push(field);
        } else if clock < current || !same_value(&task, incoming.data, field) {
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
        assert_eq!(
            v.clocks,
            FieldClocks::uniform(FieldClock::new(ts(200), Operation::Create, A))
        );
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

    #[test]
    fn diff_lists_changed_fields() {
        let a = task("t", 200, A);
        let mut b = a.clone();
        b.completed = true;
        b.description = Some("d".into());
        assert_eq!(diff(&a, &b), vec![Field::Description, Field::Completed]);
    }
}
