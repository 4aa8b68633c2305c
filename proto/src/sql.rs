//! How the named enums are stored in SQLite (feature `sqlite`): as their names, the same text
//! the databases of earlier versions hold.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::ipc::{HistoryOrigin, QueueState};
use crate::task::{Priority, SyncStatus};
use crate::wire::{Field, Operation};

macro_rules! stored_as_name {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

stored_as_name!(Operation, QueueState, SyncStatus, HistoryOrigin, Priority);

/// A field is stored as its name too; a tag's or attribute's name is made, not borrowed.
impl ToSql for Field {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(rusqlite::types::Value::Text(
            self.to_string(),
        )))
    }
}

impl FromSql for Field {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stored_as_their_names_and_read_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let (text, back): (String, QueueState) = conn
            .query_row("SELECT ?1, ?1", [QueueState::Failed], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((text.as_str(), back), ("failed", QueueState::Failed));
        let bad = conn.query_row("SELECT 'sideways'", [], |row| row.get::<_, Operation>(0));
        assert!(bad.unwrap_err().to_string().contains("unknown operation"));
    }
}
