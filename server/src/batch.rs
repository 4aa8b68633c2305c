//! Applying one pushed batch: every item in order, in one SQLite transaction.
//!
//! For each item: an op id seen before gets its recorded answer again (nothing is applied
//! twice); an item that fails its checks gets `error`; otherwise it is merged into the stored
//! task with field-wise LWW ([`tasksync_proto::lww::merge`]), the task is rewritten under a new
//! change sequence number when a field won, and the answer is recorded with the op id.

use rusqlite::TransactionBehavior;
use tasksync_proto::lww::{self, Incoming};
use tasksync_proto::wire::{BatchRequest, BatchResponse, ItemStatus, ProcessedItem};

use crate::store::{BatchWriter, Store, StoreError};
use crate::validate::{check_item, ClockLimit};

/// Applies `request` atomically and returns one answer per item, in order, and whether any
/// task changed (then live pulls are woken).
pub fn apply(
    store: &Store,
    request: &BatchRequest,
    clock: ClockLimit,
) -> Result<(BatchResponse, bool), StoreError> {
    let checked: Vec<_> = request
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| check_item(index, item, request.device_id, clock))
        .collect();

    store.write(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = BatchWriter::new(&tx)?;
        let mut processed = Vec::with_capacity(request.items.len());
        let mut any_change = false;
        for (item, checked) in request.items.iter().zip(checked) {
            let error = |message: String| ProcessedItem {
                client_id: item.id,
                server_id: item.task_id,
                status: ItemStatus::Error,
                resolved_data: None,
                error: Some(message),
            };
            if let Some((task_id, answer)) = writer.applied_answer(item.id)? {
                processed.push(if task_id == item.task_id {
                    answer
                } else {
                    error(format!(
                        "op id {} was already used for task {task_id}",
                        item.id
                    ))
                });
                continue;
            }
            let checked = match checked {
                Ok(checked) => checked,
                Err(message) => {
                    processed.push(error(message));
                    continue;
                }
            };
            let stored = writer.load_task(item.task_id)?;
            let merged = lww::merge(
                stored.as_ref(),
                Incoming {
                    data: &checked.data,
                    operation: checked.operation,
                    changed_fields: checked.changed_fields.as_deref(),
                },
            );
            let conflict = merged.is_conflict();
            let changed = stored.is_none() || !merged.applied.is_empty();
            let versioned = merged.into_versioned();
            if changed {
                writer.save_task(&versioned)?;
                any_change = true;
            }
            let answer = ProcessedItem {
                client_id: item.id,
                server_id: item.task_id,
                status: if conflict {
                    ItemStatus::Conflict
                } else {
                    ItemStatus::Success
                },
                resolved_data: conflict.then_some(versioned.task),
                error: None,
            };
            writer.record_answer(request.device_id, &answer)?;
            processed.push(answer);
        }
        drop(writer);
        tx.commit()?;
        Ok((
            BatchResponse {
                processed_items: processed,
            },
            any_change,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use tasksync_proto::wire::{BatchItem, Field, Operation, WireTask};
    use tasksync_proto::Timestamp;
    use uuid::Uuid;

    const TASK: Uuid = Uuid::from_u128(1);
    const LAPTOP: Uuid = Uuid::from_u128(0xA);
    const PHONE: Uuid = Uuid::from_u128(0xB);

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        (dir, store)
    }

    fn item(
        op: u128,
        operation: Operation,
        fields: &[Field],
        at: i64,
        edit: impl FnOnce(&mut WireTask),
    ) -> BatchItem {
        let mut data = WireTask {
            id: TASK,
            title: "t".into(),
            description: None,
            completed: false,
            created_at: Timestamp::from_millis(1_000).unwrap(),
            updated_at: Timestamp::from_millis(at).unwrap(),
            is_deleted: false,
            device_id: Uuid::nil(),
        };
        edit(&mut data);
        BatchItem {
            id: Uuid::from_u128(op),
            task_id: TASK,
            operation,
            changed_fields: Some(fields.to_vec()),
            data,
            created_at: Timestamp::from_millis(at).unwrap(),
            retry_count: 0,
        }
    }

    fn push(store: &Store, device: Uuid, items: Vec<BatchItem>) -> Vec<ProcessedItem> {
        let request = BatchRequest {
            device_id: device,
            client_timestamp: Timestamp::now(),
            items,
        };
        let clock = ClockLimit::new(Timestamp::now(), 600);
        apply(store, &request, clock).unwrap().0.processed_items
    }

    fn create(op: u128) -> BatchItem {
        item(op, Operation::Create, &Field::ALL, 1_000, |_| {})
    }

    #[test]
    fn a_resent_item_gets_the_same_answer_and_applies_once() {
        let (_dir, store) = open();
        let first = push(&store, LAPTOP, vec![create(1)]);
        assert_eq!(first[0].status, ItemStatus::Success);
        let seq_after_first = store.changes(0, 10).unwrap().cursor;
        let again = push(&store, LAPTOP, vec![create(1)]);
        assert_eq!(again, first);
        assert_eq!(store.changes(0, 10).unwrap().cursor, seq_after_first);
    }

    #[test]
    fn older_edit_of_the_same_field_conflicts_with_the_newer_value() {
        let (_dir, store) = open();
        push(&store, LAPTOP, vec![create(1)]);
        let newer = item(2, Operation::Update, &[Field::Title], 3_000, |t| {
            t.title = "phone".into()
        });
        assert_eq!(
            push(&store, PHONE, vec![newer])[0].status,
            ItemStatus::Success
        );
        let older = item(3, Operation::Update, &[Field::Title], 2_000, |t| {
            t.title = "laptop".into()
        });
        let answer = &push(&store, LAPTOP, vec![older])[0];
        assert_eq!(answer.status, ItemStatus::Conflict);
        let resolved = answer.resolved_data.as_ref().unwrap();
        assert_eq!(resolved.title, "phone");
        assert_eq!(resolved.device_id, PHONE);
        assert_eq!(resolved.updated_at, Timestamp::from_millis(3_000).unwrap());
    }

    #[test]
    fn a_bad_item_is_rejected_alone_and_an_op_id_cannot_change_task() {
        let (_dir, store) = open();
        let bad = item(2, Operation::Update, &[Field::Title], 2_000, |t| {
            t.title = " ".into()
        });
        let answers = push(&store, LAPTOP, vec![create(1), bad]);
        assert_eq!(answers[0].status, ItemStatus::Success);
        assert_eq!(answers[1].status, ItemStatus::Error);
        assert!(answers[1]
            .error
            .as_deref()
            .unwrap()
            .contains("items[1].data.title"));

        let mut reused = item(1, Operation::Create, &Field::ALL, 1_000, |_| {});
        reused.task_id = Uuid::from_u128(2);
        reused.data.id = Uuid::from_u128(2);
        let answer = &push(&store, LAPTOP, vec![reused])[0];
        assert_eq!(answer.status, ItemStatus::Error);
        assert_eq!(store.all_tasks().unwrap().len(), 1);
    }

    #[test]
    fn items_of_one_task_apply_in_order_within_a_batch() {
        let (_dir, store) = open();
        let answers = push(
            &store,
            LAPTOP,
            vec![
                create(1),
                item(2, Operation::Update, &[Field::Completed], 2_000, |t| {
                    t.completed = true
                }),
                item(3, Operation::Delete, &[Field::IsDeleted], 3_000, |t| {
                    t.completed = true;
                    t.is_deleted = true;
                }),
            ],
        );
        assert!(answers.iter().all(|a| a.status == ItemStatus::Success));
        let page = store.changes(0, 10).unwrap();
        assert_eq!(page.changes.len(), 1);
        let task = &page.changes[0];
        assert!(task.completed && task.is_deleted);
        assert_eq!(task.device_id, LAPTOP);
        assert_eq!(page.cursor, 3);
    }
}
