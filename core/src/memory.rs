//! The protocol over plain maps: one user's server state in memory.
//!
//! The daemon's tests sync against it (`daemon/src/sync/fake_server.rs` wraps it in a mutex
//! and adds live pulls and faults), so the simulation exercises the server's own protocol
//! code, not a copy. It also counts how often each op id's answer was recorded: the server
//! applied that op id that many times, which must never exceed one.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use tasksync_proto::lww::Versioned;
use tasksync_proto::wire::WireTask;
use uuid::Uuid;

use crate::answer::RecordedAnswer;
use crate::protocol::{
    self, BatchInput, BatchOutcome, BatchTransaction, Change, ChangeFeed, ChangesPage,
    FeedConflict, Loaded, Writes,
};

/// One user's tasks, recorded answers and change feed.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Each task with the number of its latest change.
    tasks: HashMap<Uuid, (i64, Versioned)>,
    /// The feed: change number -> task id, the latest change of each task only.
    feed: BTreeMap<i64, Uuid>,
    answers: HashMap<Uuid, RecordedAnswer>,
    /// How often each op id's answer was recorded.
    recorded: HashMap<Uuid, u32>,
    /// The feed's conflicts, by change number.
    conflicts: BTreeMap<i64, FeedConflict>,
    last_change: i64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Applies a batch (see [`protocol::apply_batch`]).
    pub fn apply_batch(&mut self, batch: &BatchInput) -> BatchOutcome {
        match protocol::block_on(protocol::apply_batch(self, batch)) {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// The page of at most `limit` changes after `since` (see [`protocol::changes`]).
    pub fn changes(&self, since: i64, limit: usize) -> ChangesPage {
        match protocol::block_on(protocol::changes(self, since, limit)) {
            Ok(page) => page,
            Err(never) => match never {},
        }
    }

    /// Every task, tombstones included, by id.
    pub fn tasks(&self) -> Vec<WireTask> {
        let mut tasks: Vec<WireTask> = self.tasks.values().map(|(_, v)| v.task.clone()).collect();
        tasks.sort_by_key(|t| t.id);
        tasks
    }

    /// How often each op id was applied (its answer recorded).
    pub fn applied(&self) -> &HashMap<Uuid, u32> {
        &self.recorded
    }

    /// The number of the latest change (0 before any).
    pub fn last_change(&self) -> i64 {
        self.last_change
    }

    /// Every conflict the feed holds, in order.
    pub fn conflicts(&self) -> impl Iterator<Item = &FeedConflict> {
        self.conflicts.values()
    }
}

impl BatchTransaction for MemoryStore {
    type Error = Infallible;

    async fn load(&mut self, op_ids: &[Uuid], task_ids: &[Uuid]) -> Result<Loaded, Infallible> {
        Ok(Loaded {
            last_change: self.last_change,
            recorded: op_ids
                .iter()
                .filter_map(|id| self.answers.get(id).cloned())
                .collect(),
            stored: task_ids
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|(_, v)| v.clone()))
                .collect(),
        })
    }

    async fn write(&mut self, writes: Writes<'_>) -> Result<(), Infallible> {
        for changed in &writes.tasks {
            let id = changed.task.task.id;
            if let Some((old, _)) = self
                .tasks
                .insert(id, (changed.change, changed.task.clone()))
            {
                self.feed.remove(&old);
            }
            self.feed.insert(changed.change, id);
        }
        for answer in writes.record {
            *self.recorded.entry(answer.op_id).or_default() += 1;
            self.answers.insert(answer.op_id, answer.clone());
        }
        for conflict in writes.conflicts {
            self.conflicts.insert(conflict.number, conflict);
        }
        if let Some(last) = writes.last_change {
            self.last_change = last;
        }
        Ok(())
    }
}

impl ChangeFeed for MemoryStore {
    type Error = Infallible;

    async fn after(&self, since: i64, count: usize) -> Result<Vec<Change>, Infallible> {
        Ok(self
            .feed
            .range(since.saturating_add(1)..)
            .take(count)
            .filter_map(|(&number, id)| {
                self.tasks.get(id).map(|(_, v)| Change {
                    number,
                    task: v.task.clone(),
                })
            })
            .collect())
    }

    async fn conflicts_after(
        &self,
        since: i64,
        count: usize,
    ) -> Result<Vec<FeedConflict>, Infallible> {
        Ok(self
            .conflicts
            .range(since.saturating_add(1)..)
            .take(count)
            .map(|(_, conflict)| conflict.clone())
            .collect())
    }

    async fn last_change(&self) -> Result<i64, Infallible> {
        Ok(self.last_change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClockLimit;
    use tasksync_proto::wire::{BatchItem, Field, ItemStatus, Operation};
    use tasksync_proto::Timestamp;

    fn create(task: u128, op: u128, title: &str) -> BatchItem {
        let at = Timestamp::from_millis(1_000).unwrap();
        BatchItem {
            id: Uuid::from_u128(op),
            task_id: Uuid::from_u128(task),
            operation: Operation::Create,
            changed_fields: Some(Field::ALL.to_vec()),
            data: WireTask {
                id: Uuid::from_u128(task),
                title: title.into(),
                description: None,
                completed: false,
                created_at: at,
                updated_at: at,
                is_deleted: false,
                device_id: Uuid::nil(),
                due: None,
                priority: None,
                project: None,
                tags: Default::default(),
                attributes: Default::default(),
            },
            created_at: at,
            retry_count: 0,
            base: Default::default(),
        }
    }

    fn batch(items: Vec<BatchItem>) -> BatchInput {
        BatchInput {
            device_id: Uuid::from_u128(0xD),
            items,
            clock: ClockLimit::new(Timestamp::now(), 600),
        }
    }

    fn titled(item: &BatchItem, op: u128, title: &str, at: i64) -> BatchItem {
        let mut edit = item.clone();
        edit.id = Uuid::from_u128(op);
        edit.operation = Operation::Update;
        edit.changed_fields = Some(vec![Field::Title]);
        edit.data.title = title.into();
        edit.data.updated_at = Timestamp::from_millis(at).unwrap();
        edit.created_at = edit.data.updated_at;
        edit
    }

    #[test]
    fn batches_apply_once_and_pages_follow_the_cursor() {
        let mut store = MemoryStore::new();
        let items: Vec<BatchItem> = (1..=5).map(|n| create(n, 100 + n, "t")).collect();
        let first = store.apply_batch(&batch(items.clone()));
        assert!(first.changed);
        assert_eq!(store.last_change(), 5);
        // The same batch again: the same answers, nothing written, nothing applied twice.
        let again = store.apply_batch(&batch(items.clone()));
        assert_eq!(again.response, first.response);
        assert!(!again.changed);
        assert_eq!(store.last_change(), 5);
        assert!(store.applied().values().all(|&n| n == 1));

        // Task 1 changes again: it moves to the end of the feed.
        let edit = store.apply_batch(&batch(vec![titled(&items[0], 200, "again", 2_000)]));
        assert!(edit.changed);
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let page = store.changes(cursor, 2);
            assert!(page.cursor > cursor || page.changes.is_empty());
            seen.extend(page.changes.iter().map(|t| t.id.as_u128()));
            cursor = page.cursor;
            if !page.has_more {
                break;
            }
        }
        assert_eq!(seen, vec![2, 3, 4, 5, 1]);
        assert_eq!(cursor, 6);
        let empty = store.changes(cursor, 2);
        assert!(empty.changes.is_empty() && !empty.has_more && !empty.cursor_unknown);
        assert_eq!(empty.cursor, cursor);
        // A cursor this feed never issued (a server restored from an older backup).
        let ahead = store.changes(cursor + 1, 2);
        assert!(ahead.cursor_unknown && ahead.changes.is_empty());
        assert!(!store.changes(0, 2).cursor_unknown);
        assert_eq!(store.changes(0, 0).cursor, 0);
        assert!(store.changes(0, 0).has_more);
    }

    #[test]
    fn a_conflict_is_recorded_and_a_rejected_item_is_not() {
        let mut store = MemoryStore::new();
        let item = create(1, 1, "t");
        store.apply_batch(&batch(vec![item.clone(), titled(&item, 2, "newer", 3_000)]));
        let mut bad = titled(&item, 4, "   ", 4_000);
        bad.data.title = "   ".into();
        let answers = store
            .apply_batch(&batch(vec![titled(&item, 3, "older", 2_000), bad]))
            .response
            .processed_items;
        assert_eq!(answers[0].status, ItemStatus::Conflict);
        assert_eq!(answers[0].resolved_data.as_ref().unwrap().title, "newer");
        assert_eq!(answers[1].status, ItemStatus::Error);
        assert_eq!(
            store.applied().len(),
            3,
            "the rejected op id is not recorded"
        );
        assert_eq!(
            store.last_change(),
            1,
            "a task changed twice in a batch is one change"
        );
        // A resend of the conflict gets its recorded answer.
        let resent = store.apply_batch(&batch(vec![titled(&item, 3, "older", 2_000)]));
        assert_eq!(resent.response.processed_items[0], answers[0]);
        assert_eq!(store.tasks()[0].device_id, Uuid::from_u128(0xD));
    }

    #[test]
    fn a_conflict_takes_a_feed_number_even_when_no_task_changed() {
        let mut store = MemoryStore::new();
        let item = create(1, 1, "t");
        store.apply_batch(&batch(vec![item.clone()]));
        // Another device, having seen "t", sets "newer"; then this device's older edit,
        // also based on "t", loses: the task stays as it is, and the conflict is recorded.
        let mut newer = titled(&item, 2, "newer", 3_000);
        newer.base = [(Field::Title, serde_json::json!("t"))].into();
        let mut other = batch(vec![newer]);
        other.device_id = Uuid::from_u128(0xE);
        store.apply_batch(&other);
        let mut older = titled(&item, 3, "older", 2_000);
        older.base = [(Field::Title, serde_json::json!("t"))].into();
        let outcome = store.apply_batch(&batch(vec![older]));
        assert!(outcome.changed, "a conflict wakes live pulls");
        assert_eq!(store.last_change(), 3);
        let page = store.changes(2, 10);
        assert!(page.changes.is_empty());
        assert_eq!(page.cursor, 3);
        let [conflict] = &page.conflicts[..] else {
            panic!("{page:?}")
        };
        assert_eq!(conflict.lost, serde_json::json!("older"));
        assert_eq!(conflict.kept, serde_json::json!("newer"));
        // Pages of one entry walk tasks and conflicts in number order.
        let first = store.changes(0, 1);
        assert_eq!(
            (first.cursor, first.changes.len(), first.has_more),
            (2, 1, true)
        );
        let second = store.changes(first.cursor, 1);
        assert_eq!((second.cursor, second.conflicts.len()), (3, 1));
        assert!(!second.has_more);
    }
}
