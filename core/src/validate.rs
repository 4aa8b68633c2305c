//! Checks one batch item beyond what its JSON types already guarantee.
//!
//! A failed check rejects only that item (`status: "error"`, the message names the field as
//! `items[i].<path>`), so one bad operation cannot block the rest of a device's queue.

use tasksync_proto::wire::{BatchItem, Field, Operation, WireTask};
use tasksync_proto::{Timestamp, ValidationError};
use uuid::Uuid;

/// An item that passed every check, ready to merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedItem {
    /// The task after the operation, written by the pushing device.
    pub(crate) data: WireTask,
    pub(crate) operation: Operation,
    pub(crate) changed_fields: Option<Vec<Field>>,
}

/// The latest timestamp the server accepts on an item: its clock plus the allowed skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockLimit {
    pub latest: Timestamp,
    pub max_skew_secs: u32,
}

impl ClockLimit {
    /// `now` plus `max_skew_secs`.
    pub fn new(now: Timestamp, max_skew_secs: u32) -> Self {
        let latest = Timestamp::from_millis(
            now.as_millis()
                .saturating_add(i64::from(max_skew_secs) * 1_000),
        )
        .unwrap_or(now);
        ClockLimit {
            latest,
            max_skew_secs,
        }
    }
}

impl ClockLimit {
    /// The server's clock this limit was made from.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(
            self.latest
                .as_millis()
                .saturating_sub(i64::from(self.max_skew_secs) * 1_000),
        )
        .unwrap_or(self.latest)
    }
}

/// Checks item number `index` of a batch pushed by `device_id`.
///
/// The writer of an operation is the device that pushes it, so `data.device_id` is taken from
/// the batch, whatever the item says. A timestamp further ahead than `clock` allows is refused
/// (docs/SYNC-PROTOCOL.md, "Clock skew"): accepting it would drag every replica's clock into
/// the future.
pub(crate) fn check_item(
    index: usize,
    item: &BatchItem,
    device_id: Uuid,
    clock: ClockLimit,
) -> Result<CheckedItem, String> {
    let at =
        |path: &str, message: &dyn std::fmt::Display| format!("items[{index}].{path}: {message}");
    let data = &item.data;
    if data.id != item.task_id {
        return Err(at("task_id", &"does not match data.id"));
    }
    for (path, value) in [
        ("data.updated_at", data.updated_at),
        ("data.created_at", data.created_at),
        ("created_at", item.created_at),
    ] {
        if value > clock.latest {
            return Err(at(
                path,
                &format_args!(
                    "{value} is more than {} s ahead of the server clock; \
                     check this device's clock (max clock skew)",
                    clock.max_skew_secs
                ),
            ));
        }
    }
    if let Err(error) = data.validate() {
        let field = match error {
            ValidationError::DescriptionTooLong(_) | ValidationError::ControlInDescription(_) => {
                "data.description"
            }
            ValidationError::BadProject(_) => "data.project",
            ValidationError::BadTag(_) | ValidationError::TooManyTags(_) => "data.tags",
            ValidationError::BadAttributeKey(_)
            | ValidationError::BadAttributeValue(_)
            | ValidationError::TooManyAttributes(_) => "data.attributes",
            _ => "data.title",
        };
        return Err(at(field, &error));
    }
    if data.updated_at < data.created_at {
        return Err(at("data.updated_at", &"is earlier than data.created_at"));
    }
    if let Some(fields) = &item.changed_fields {
        if fields.is_empty() {
            return Err(at("changed_fields", &"must name at least one field"));
        }
        if item.operation == Operation::Create && !Field::V1.iter().all(|f| fields.contains(f)) {
            return Err(at(
                "changed_fields",
                &"a create changes every field: title, description, completed, is_deleted",
            ));
        }
        if item.operation == Operation::Delete && !fields.contains(&Field::IsDeleted) {
            return Err(at("changed_fields", &"a delete must include is_deleted"));
        }
    }
    for (field, value) in &item.base {
        if !matches!(
            value,
            serde_json::Value::String(_) | serde_json::Value::Bool(_) | serde_json::Value::Null
        ) {
            return Err(at(
                &format!("base.{field}"),
                &"must be the replaced value: a string, null or a boolean",
            ));
        }
    }
    if item.operation == Operation::Delete && !data.is_deleted {
        return Err(at(
            "data.is_deleted",
            &"a delete must set is_deleted to true",
        ));
    }
    let mut data = data.clone();
    data.device_id = device_id;
    Ok(CheckedItem {
        data,
        operation: item.operation,
        changed_fields: item.changed_fields.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(operation: Operation, fields: Option<Vec<Field>>) -> BatchItem {
        let at = Timestamp::from_millis(1_000).unwrap();
        BatchItem {
            id: Uuid::from_u128(100),
            task_id: Uuid::from_u128(1),
            operation,
            changed_fields: fields,
            data: WireTask {
                id: Uuid::from_u128(1),
                title: "t".into(),
                description: None,
                completed: false,
                created_at: at,
                updated_at: at,
                is_deleted: operation == Operation::Delete,
                device_id: Uuid::from_u128(5),
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

    const DEVICE: Uuid = Uuid::from_u128(0xD);

    fn limit() -> ClockLimit {
        ClockLimit::new(Timestamp::from_millis(10_000).unwrap(), 5)
    }

    fn check_item(index: usize, item: &BatchItem, device: Uuid) -> Result<CheckedItem, String> {
        super::check_item(index, item, device, limit())
    }

    #[test]
    fn timestamps_too_far_ahead_are_refused_naming_the_clock() {
        // 15 s is exactly now + skew: accepted; one millisecond more is not.
        let mut ok = item(Operation::Update, None);
        ok.data.updated_at = Timestamp::from_millis(15_000).unwrap();
        ok.created_at = ok.data.updated_at;
        assert!(check_item(0, &ok, DEVICE).is_ok());
        let ahead = Timestamp::from_millis(15_001).unwrap();
        let mut updated = item(Operation::Update, None);
        updated.data.updated_at = ahead;
        let mut created = item(Operation::Update, None);
        created.data.created_at = ahead;
        created.data.updated_at = ahead;
        let mut queued = item(Operation::Update, None);
        queued.created_at = ahead;
        for (bad, field) in [
            (updated, "data.updated_at"),
            (created, "data.updated_at"),
            (queued, "items[0].created_at"),
        ] {
            let error = check_item(0, &bad, DEVICE).unwrap_err();
            assert!(error.contains(field), "{error}");
            assert!(error.contains("clock"), "{error}");
        }
        let far = Timestamp::from_millis(253_402_300_799_999).unwrap();
        let mut year_9999 = item(Operation::Update, None);
        year_9999.data.updated_at = far;
        assert!(check_item(0, &year_9999, DEVICE).is_err());
    }

    #[test]
    fn valid_items_take_the_pushing_device() {
        let checked = check_item(0, &item(Operation::Create, None), DEVICE).unwrap();
        assert_eq!(checked.data.device_id, DEVICE);
        assert!(check_item(
            0,
            &item(Operation::Update, Some(vec![Field::Title])),
            DEVICE
        )
        .is_ok());
        assert!(check_item(
            0,
            &item(Operation::Delete, Some(vec![Field::IsDeleted])),
            DEVICE
        )
        .is_ok());
    }

    #[test]
    fn messages_name_the_field() {
        let mut bad = item(Operation::Update, Some(vec![Field::Title]));
        bad.data.title = "   ".into();
        let error = check_item(3, &bad, DEVICE).unwrap_err();
        assert!(error.starts_with("items[3].data.title:"), "{error}");

        let mut bad = item(Operation::Update, None);
        bad.data.description = Some("x".repeat(10_001));
        assert!(check_item(0, &bad, DEVICE)
            .unwrap_err()
            .starts_with("items[0].data.description:"));

        let mut bad = item(Operation::Update, None);
        bad.task_id = Uuid::from_u128(2);
        assert!(check_item(0, &bad, DEVICE).unwrap_err().contains("task_id"));

        let mut bad = item(Operation::Update, None);
        bad.data.created_at = Timestamp::from_millis(2_000).unwrap();
        assert!(check_item(0, &bad, DEVICE)
            .unwrap_err()
            .contains("data.updated_at"));
    }

    #[test]
    fn operation_and_changed_fields_must_agree() {
        for (operation, fields) in [
            (Operation::Update, vec![]),
            (Operation::Create, vec![Field::Title]),
            (Operation::Delete, vec![Field::Title]),
        ] {
            let error = check_item(0, &item(operation, Some(fields)), DEVICE).unwrap_err();
            assert!(error.contains("changed_fields"), "{error}");
        }
        let mut undeleting_delete = item(Operation::Delete, None);
        undeleting_delete.data.is_deleted = false;
        assert!(check_item(0, &undeleting_delete, DEVICE)
            .unwrap_err()
            .contains("is_deleted"));
    }
}
