//! What one pushed batch does to a user's tasks: a pure function over what the storage loaded.
//!
//! For each item, in order: an op id seen before gets its recorded answer again (nothing is
//! applied twice); an item that fails its checks gets `error`; otherwise it is merged into the
//! task with field-wise LWW ([`tasksync_proto::lww::merge`]). A changed field whose stored
//! value is neither the value the item replaced (its `base`) nor one its own device wrote was
//! edited concurrently by another device: when the two values differ, the plan records a
//! conflict, whichever of them LWW keeps. The plan lists the answers, the answers to record
//! with their op ids, the tasks to write (each once, in the order of its last change) and the
//! conflicts. [`crate::protocol::apply_batch`] loads the inputs and writes the plan through
//! a backend's transaction.

use std::collections::HashMap;

use tasksync_proto::events::FieldValue;
use tasksync_proto::lww::{self, Incoming, Merged, Versioned};
use tasksync_proto::wire::{BatchItem, Field, ItemStatus, ProcessedItem, WireConflict, WireTask};
use uuid::Uuid;

use crate::answer::RecordedAnswer;
use crate::validate::{check_item, ClockLimit};

/// What a batch changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One answer per item, in order.
    pub(crate) answers: Vec<ProcessedItem>,
    /// The answers to record under their op ids (items applied now).
    pub(crate) record: Vec<RecordedAnswer>,
    /// Tasks to write, each once, in the order of their last change in the batch.
    pub(crate) save: Vec<Versioned>,
    /// Concurrent edits met by the batch, in order.
    pub(crate) conflicts: Vec<WireConflict>,
}

/// Plans the batch `items` pushed by `device_id`.
///
/// `recorded` holds the recorded answers of the batch's op ids, `stored` the stored state of
/// its tasks (both only for ids that exist).
pub(crate) fn plan(
    device_id: Uuid,
    items: &[BatchItem],
    clock: ClockLimit,
    recorded: &HashMap<Uuid, RecordedAnswer>,
    mut stored: HashMap<Uuid, Versioned>,
) -> Plan {
    let mut answers = Vec::with_capacity(items.len());
    let mut record: Vec<RecordedAnswer> = Vec::new();
    // Op ids applied earlier in this batch, with their answer.
    let mut this_batch: HashMap<Uuid, RecordedAnswer> = HashMap::new();
    // Task id -> index of its last change in the batch.
    let mut changed_at: HashMap<Uuid, usize> = HashMap::new();
    let mut conflicts = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let error = |message: String| ProcessedItem {
            client_id: item.id,
            server_id: item.task_id,
            status: ItemStatus::Error,
            resolved_data: None,
            error: Some(message),
        };
        if let Some(earlier) = recorded.get(&item.id).or(this_batch.get(&item.id)) {
            answers.push(if earlier.task_id == item.task_id {
                replayed(earlier, item, device_id, stored.get(&item.task_id))
            } else {
                error(format!(
                    "op id {} was already used for task {}",
                    item.id, earlier.task_id
                ))
            });
            continue;
        }
        let checked = match check_item(index, item, device_id, clock) {
            Ok(checked) => checked,
            Err(message) => {
                answers.push(error(message));
                continue;
            }
        };
        let before = stored.get(&item.task_id);
        let concurrent = before.map_or_else(Vec::new, |before| {
            concurrent_fields(item, &checked.data, before, device_id)
        });
        let merged = lww::merge(
            before,
            Incoming {
                data: &checked.data,
                operation: checked.operation,
                changed_fields: checked.changed_fields.as_deref(),
            },
        );
        conflicts.extend(
            concurrent
                .into_iter()
                .map(|stored| record_conflict(item, device_id, &merged, stored, clock.now())),
        );
        let conflict = merged.is_conflict();
        let changed = before.is_none() || !merged.applied.is_empty();
        let versioned = merged.into_versioned();
        let answer = RecordedAnswer {
            op_id: item.id,
            task_id: item.task_id,
            status: if conflict {
                ItemStatus::Conflict
            } else {
                ItemStatus::Success
            },
            resolved_data: conflict.then(|| versioned.task.clone()),
        };
        if changed {
            changed_at.insert(item.task_id, index);
            stored.insert(item.task_id, versioned);
        }
        answers.push(answer.answer());
        this_batch.insert(item.id, answer.clone());
        record.push(answer);
    }
    let mut order: Vec<(usize, Uuid)> = changed_at.into_iter().map(|(id, i)| (i, id)).collect();
    order.sort_unstable();
    let save = order
        .into_iter()
        .filter_map(|(_, id)| stored.remove(&id))
        .collect();
    Plan {
        answers,
        record,
        save,
        conflicts,
    }
}

/// The changed fields of `item` that another device changed since the value the item
/// replaced, to a value other than the item's: each with its stored value and writer. An
/// item without a base says nothing of what it replaced, and meets no conflict.
fn concurrent_fields(
    item: &BatchItem,
    data: &WireTask,
    stored: &Versioned,
    device_id: Uuid,
) -> Vec<(Field, serde_json::Value, Uuid)> {
    item.base
        .iter()
        .filter(|(field, _)| {
            item.changed_fields
                .as_ref()
                .is_none_or(|fields| fields.contains(field))
        })
        .filter_map(|(field, base)| {
            let writer = stored.clock(field).device_id;
            let stored_value = FieldValue::of(&stored.task, field).json();
            let concurrent = &stored_value != base
                && writer != device_id
                && !writer.is_nil()
                && !lww::same_value(&stored.task, data, field);
            concurrent.then(|| (field.clone(), stored_value, writer))
        })
        .collect()
}

/// The conflict on `field` between `item` and the stored value, as the merge resolved it.
fn record_conflict(
    item: &BatchItem,
    pushed_by: Uuid,
    merged: &Merged,
    (field, stored_value, stored_device): (Field, serde_json::Value, Uuid),
    at: tasksync_proto::Timestamp,
) -> WireConflict {
    let kept = FieldValue::of(&merged.task, &field).json();
    let (kept_device, lost, lost_device) = if merged.applied.contains(&field) {
        (pushed_by, stored_value, stored_device)
    } else {
        (
            stored_device,
            FieldValue::of(&item.data, &field).json(),
            pushed_by,
        )
    };
    WireConflict {
        task_id: item.task_id,
        field,
        kept,
        kept_device,
        lost,
        lost_device,
        op_id: item.id,
        pushed_by,
        at,
    }
}

/// The answer to an op id sent again: its recorded answer, with the task as it is now when
/// the recorded answer carried the task (a conflict), or when another device has written a
/// field the op wrote since (then the answer becomes a `conflict`). The device that sent it
/// kept its own values while the op was queued (a queued field is not overwritten by pulls),
/// and the pulls that brought newer values are behind it, so this answer is its only way to
/// learn the server's; the task as it was when the op was first applied would take it back
/// in time. Its own later writes it knows already: they are no conflict.
fn replayed(
    earlier: &RecordedAnswer,
    item: &BatchItem,
    device_id: Uuid,
    now: Option<&Versioned>,
) -> ProcessedItem {
    let mut answer = earlier.answer();
    if let Some(now) = now {
        let fields = Incoming {
            data: &item.data,
            operation: item.operation,
            changed_fields: item.changed_fields.as_deref(),
        }
        .fields(Some(now));
        let overwritten = fields.iter().any(|field| {
            !lww::same_value(&item.data, &now.task, field)
                && now.clock(field).device_id != device_id
        });
        if overwritten || answer.resolved_data.is_some() {
            answer.status = ItemStatus::Conflict;
            answer.resolved_data = Some(now.task.clone());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::wire::{Field, Operation, WireTask};
    use tasksync_proto::Timestamp;

    const TASK: Uuid = Uuid::from_u128(1);
    const LAPTOP: Uuid = Uuid::from_u128(0xA);

    fn item(op: u128, operation: Operation, fields: &[Field], at: i64) -> BatchItem {
        let data = WireTask {
            id: TASK,
            title: format!("t{op}"),
            description: None,
            completed: false,
            created_at: Timestamp::from_millis(1_000).unwrap(),
            updated_at: Timestamp::from_millis(at).unwrap(),
            is_deleted: operation == Operation::Delete,
            device_id: Uuid::nil(),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        };
        BatchItem {
            id: Uuid::from_u128(op),
            task_id: TASK,
            operation,
            changed_fields: Some(fields.to_vec()),
            data,
            created_at: Timestamp::from_millis(at).unwrap(),
            retry_count: 0,
            base: Default::default(),
        }
    }

    fn clock() -> ClockLimit {
        ClockLimit::new(Timestamp::now(), 600)
    }

    #[test]
    fn a_task_changed_twice_is_saved_once_in_its_latest_state() {
        let items = vec![
            item(1, Operation::Create, &Field::ALL, 1_000),
            item(2, Operation::Update, &[Field::Title], 2_000),
            item(3, Operation::Delete, &[Field::IsDeleted], 3_000),
        ];
        let plan = plan(LAPTOP, &items, clock(), &HashMap::new(), HashMap::new());
        assert!(plan.answers.iter().all(|a| a.status == ItemStatus::Success));
        assert_eq!(plan.record.len(), 3);
        assert_eq!(plan.save.len(), 1);
        let task = &plan.save[0].task;
        assert_eq!(task.title, "t2");
        assert!(task.is_deleted);
        assert_eq!(task.device_id, LAPTOP);
    }

    #[test]
    fn a_repeated_op_id_gets_its_first_answer_and_changes_nothing() {
        let first = item(1, Operation::Create, &Field::ALL, 1_000);
        let items = vec![first.clone(), first.clone()];
        let plan1 = plan(LAPTOP, &items, clock(), &HashMap::new(), HashMap::new());
        assert_eq!(plan1.answers[0], plan1.answers[1]);
        assert_eq!(plan1.record.len(), 1);

        let recorded: HashMap<_, _> = [(first.id, plan1.record[0].clone())].into();
        let stored: HashMap<_, _> = [(TASK, plan1.save[0].clone())].into();
        let again = plan(
            LAPTOP,
            std::slice::from_ref(&first),
            clock(),
            &recorded,
            stored,
        );
        assert_eq!(again.answers, vec![plan1.answers[0].clone()]);
        assert!(again.record.is_empty() && again.save.is_empty());

        let mut other_task = first;
        other_task.task_id = Uuid::from_u128(2);
        other_task.data.id = other_task.task_id;
        let reused = plan(LAPTOP, &[other_task], clock(), &recorded, HashMap::new());
        assert_eq!(reused.answers[0].status, ItemStatus::Error);
        assert!(reused.save.is_empty());
    }

    #[test]
    fn an_older_edit_conflicts_and_a_bad_item_is_rejected_alone() {
        let create = plan(
            LAPTOP,
            &[item(1, Operation::Create, &Field::ALL, 5_000)],
            clock(),
            &HashMap::new(),
            HashMap::new(),
        );
        let stored: HashMap<_, _> = [(TASK, create.save[0].clone())].into();
        let mut bad = item(3, Operation::Update, &[Field::Title], 6_000);
        bad.data.title = " ".into();
        let plan = plan(
            LAPTOP,
            &[item(2, Operation::Update, &[Field::Title], 2_000), bad],
            clock(),
            &HashMap::new(),
            stored,
        );
        assert_eq!(plan.answers[0].status, ItemStatus::Conflict);
        assert_eq!(plan.answers[0].resolved_data.as_ref().unwrap().title, "t1");
        assert_eq!(plan.answers[1].status, ItemStatus::Error);
        assert_eq!(plan.record.len(), 1);
        assert!(plan.save.is_empty());
    }

    #[test]
    fn a_resent_op_whose_value_was_overwritten_since_learns_the_current_task() {
        let create = item(1, Operation::Create, &Field::ALL, 1_000);
        let first = plan(
            LAPTOP,
            std::slice::from_ref(&create),
            clock(),
            &HashMap::new(),
            HashMap::new(),
        );
        let recorded: HashMap<_, _> = [(create.id, first.record[0].clone())].into();
        // Another device deletes the task; the laptop's answer to the create was lost.
        let phone = Uuid::from_u128(0xB);
        let stored: HashMap<_, _> = [(TASK, first.save[0].clone())].into();
        let delete = plan(
            phone,
            &[item(2, Operation::Delete, &[Field::IsDeleted], 2_000)],
            clock(),
            &HashMap::new(),
            stored,
        );
        let stored: HashMap<_, _> = [(TASK, delete.save[0].clone())].into();
        let again = plan(
            LAPTOP,
            std::slice::from_ref(&create),
            clock(),
            &recorded,
            stored,
        );
        assert_eq!(again.answers[0].status, ItemStatus::Conflict);
        let now = again.answers[0].resolved_data.as_ref().unwrap();
        assert!(now.is_deleted);
        assert_eq!(now.device_id, phone);
        assert!(
            again.record.is_empty() && again.save.is_empty(),
            "nothing applied twice"
        );
    }

    #[test]
    fn a_resent_conflict_carries_the_task_as_it_is_now_not_as_it_was() {
        let phone = Uuid::from_u128(0xB);
        let create = plan(
            phone,
            &[item(1, Operation::Create, &Field::ALL, 3_000)],
            clock(),
            &HashMap::new(),
            HashMap::new(),
        );
        let stored: HashMap<_, _> = [(TASK, create.save[0].clone())].into();
        // The laptop's older title edit loses, and its answer is recorded.
        let edit = item(2, Operation::Update, &[Field::Title], 2_000);
        let first = plan(
            LAPTOP,
            std::slice::from_ref(&edit),
            clock(),
            &HashMap::new(),
            stored,
        );
        assert_eq!(first.answers[0].status, ItemStatus::Conflict);
        let recorded: HashMap<_, _> = [(edit.id, first.record[0].clone())].into();
        // The phone completes the task; then the laptop sends its edit again.
        let mut done = item(3, Operation::Update, &[Field::Completed], 4_000);
        done.data.completed = true;
        let stored: HashMap<_, _> = [(TASK, create.save[0].clone())].into();
        let later = plan(phone, &[done], clock(), &HashMap::new(), stored);
        let stored: HashMap<_, _> = [(TASK, later.save[0].clone())].into();
        let again = plan(
            LAPTOP,
            std::slice::from_ref(&edit),
            clock(),
            &recorded,
            stored,
        );
        assert_eq!(again.answers[0].status, ItemStatus::Conflict);
        assert!(again.answers[0].resolved_data.as_ref().unwrap().completed);
        assert!(again.record.is_empty() && again.save.is_empty());
    }

    /// The stored state after `device` created the task at `at` ms (title "t1").
    fn created(device: Uuid, at: i64) -> HashMap<Uuid, Versioned> {
        let create = plan(
            device,
            &[item(1, Operation::Create, &Field::ALL, at)],
            clock(),
            &HashMap::new(),
            HashMap::new(),
        );
        [(TASK, create.save[0].clone())].into()
    }

    /// `edit` as `device` made it, having seen the title `base`.
    fn based(mut edit: BatchItem, base: &str) -> BatchItem {
        edit.base = [(Field::Title, serde_json::json!(base))].into();
        edit
    }

    #[test]
    fn concurrent_edits_of_one_field_are_recorded_whichever_pushes_first() {
        let phone = Uuid::from_u128(0xB);
        for laptop_first in [true, false] {
            let mut stored = created(LAPTOP, 1_000);
            // Both saw "t1"; the laptop edits at 2 s, the phone at 3 s (the phone wins).
            let laptop = based(item(2, Operation::Update, &[Field::Title], 2_000), "t1");
            let phone_edit = based(item(3, Operation::Update, &[Field::Title], 3_000), "t1");
            let order = if laptop_first {
                [(LAPTOP, laptop), (phone, phone_edit)]
            } else {
                [(phone, phone_edit), (LAPTOP, laptop)]
            };
            let mut met = Vec::new();
            for (device, edit) in order {
                let p = plan(device, &[edit], clock(), &HashMap::new(), stored.clone());
                if let Some(saved) = p.save.first() {
                    stored.insert(TASK, saved.clone());
                }
                met.push(p.conflicts);
            }
            assert!(met[0].is_empty(), "the first push meets nothing");
            let [conflict] = &met[1][..] else {
                panic!("one conflict expected, got {:?}", met[1]);
            };
            assert_eq!(conflict.field, Field::Title);
            assert_eq!(
                (&conflict.kept, conflict.kept_device),
                (&serde_json::json!("t3"), phone)
            );
            assert_eq!(
                (&conflict.lost, conflict.lost_device),
                (&serde_json::json!("t2"), LAPTOP)
            );
            assert_eq!(
                conflict.pushed_by,
                if laptop_first { phone } else { LAPTOP }
            );
            assert_eq!(stored[&TASK].task.title, "t3");
        }
    }

    #[test]
    fn an_edit_made_after_seeing_the_other_is_no_conflict_nor_is_an_own_or_equal_one() {
        let phone = Uuid::from_u128(0xB);
        let first = plan(
            phone,
            &[based(
                item(2, Operation::Update, &[Field::Title], 2_000),
                "t1",
            )],
            clock(),
            &HashMap::new(),
            created(LAPTOP, 1_000),
        );
        let stored: HashMap<_, _> = [(TASK, first.save[0].clone())].into();
        // The laptop saw the phone's "t2" before its edit: a later edit, not a concurrent one.
        let seen = based(item(3, Operation::Update, &[Field::Title], 3_000), "t2");
        // The phone's own next edit, based on its own value.
        let own = based(item(4, Operation::Update, &[Field::Title], 4_000), "t1");
        // The laptop sets the value the phone set: nothing is lost.
        let mut same = based(item(5, Operation::Update, &[Field::Title], 5_000), "t1");
        same.data.title = "t2".into();
        for (device, edit) in [(LAPTOP, seen), (phone, own), (LAPTOP, same)] {
            let p = plan(device, &[edit], clock(), &HashMap::new(), stored.clone());
            assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        }
    }
}
