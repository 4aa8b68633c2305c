//! An answer recorded under its op id: what a resend of that op id gets again.
//!
//! Storage keeps it as two columns beside the op id and task id: `status` (`success` or
//! `conflict`; an item that failed its checks is never recorded) and `resolved_data` (the
//! merged task as JSON, for a conflict). Both SQL backends read and write them through
//! [`RecordedAnswer::from_columns`], [`RecordedAnswer::status_column`] and
//! [`RecordedAnswer::resolved_column`].

use tasksync_proto::wire::{ItemStatus, ProcessedItem, WireTask};
use uuid::Uuid;

/// The answer given to op id `op_id` when it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAnswer {
    pub op_id: Uuid,
    /// The task the op id was applied to (a resend naming another task is refused).
    pub task_id: Uuid,
    /// [`ItemStatus::Success`] or [`ItemStatus::Conflict`].
    pub status: ItemStatus,
    /// The task as merged, for a conflict.
    pub resolved_data: Option<WireTask>,
}

/// A stored row (a recorded answer, or a task's [`crate::columns`]) whose columns cannot be
/// read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt stored row: {0}")]
pub struct CorruptAnswer(String);

impl CorruptAnswer {
    /// `column` (`table.column`) holds something unreadable.
    pub(crate) fn column(column: &str, error: impl std::fmt::Display) -> Self {
        CorruptAnswer(format!("{column}: {error}"))
    }
}

impl RecordedAnswer {
    /// The recorded answer of `op_id` from its stored columns.
    pub fn from_columns(
        op_id: Uuid,
        task_id: Uuid,
        status: &str,
        resolved_data: Option<&str>,
    ) -> Result<RecordedAnswer, CorruptAnswer> {
        let status = match status {
            "success" => ItemStatus::Success,
            "conflict" => ItemStatus::Conflict,
            other => {
                return Err(CorruptAnswer::column(
                    "applied_ops.status",
                    format_args!("unknown status {other:?}"),
                ))
            }
        };
        let resolved_data = resolved_data
            .map(serde_json::from_str::<WireTask>)
            .transpose()
            .map_err(|e| CorruptAnswer::column("applied_ops.resolved_data", e))?;
        Ok(RecordedAnswer {
            op_id,
            task_id,
            status,
            resolved_data,
        })
    }

    /// The `status` column.
    pub fn status_column(&self) -> &'static str {
        self.status.as_str()
    }

    /// The `resolved_data` column.
    pub fn resolved_column(&self) -> Result<Option<String>, serde_json::Error> {
        self.resolved_data
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
    }

    /// The answer for an item carrying this op id.
    pub(crate) fn answer(&self) -> ProcessedItem {
        ProcessedItem {
            client_id: self.op_id,
            server_id: self.task_id,
            status: self.status,
            resolved_data: self.resolved_data.clone(),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::Timestamp;

    #[test]
    fn columns_round_trip_and_bad_columns_are_corrupt() {
        let task = WireTask {
            id: Uuid::from_u128(1),
            title: "t".into(),
            description: None,
            completed: true,
            created_at: Timestamp::from_millis(1_000).unwrap(),
            updated_at: Timestamp::from_millis(2_000).unwrap(),
            is_deleted: false,
            device_id: Uuid::from_u128(9),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        };
        for (status, resolved_data) in [
            (ItemStatus::Success, None),
            (ItemStatus::Conflict, Some(task)),
        ] {
            let answer = RecordedAnswer {
                op_id: Uuid::from_u128(7),
                task_id: Uuid::from_u128(1),
                status,
                resolved_data,
            };
            let resolved = answer.resolved_column().unwrap();
            let read = RecordedAnswer::from_columns(
                answer.op_id,
                answer.task_id,
                answer.status_column(),
                resolved.as_deref(),
            )
            .unwrap();
            assert_eq!(read, answer);
            assert_eq!(read.answer().status, status);
        }
        let op = Uuid::from_u128(7);
        assert!(RecordedAnswer::from_columns(op, op, "error", None).is_err());
        assert!(RecordedAnswer::from_columns(op, op, "conflict", Some("{")).is_err());
    }
}
