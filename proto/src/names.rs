//! Enums that travel as fixed names (in JSON, in SQLite, on the command line): one macro
//! gives each its list of values, its name, `Display` and `FromStr`, so a name is written
//! once per value. The serde renames of each enum must give the same names; every enum's
//! test checks that.

use std::fmt;

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What the name was meant to be, e.g. "sync status".
    pub what: &'static str,
    pub name: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}: expected ", self.what, self.name)?;
        for (i, name) in self.expected.iter().enumerate() {
            let sep = match i {
                0 => "",
                i if i + 1 == self.expected.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{name}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownName {}

/// `named!(Type, "what", { Variant => "name", ... })`: `Type::ALL`, `Type::NAMES`,
/// `as_str`, `Display` and `FromStr` (with [`UnknownName`]).
macro_rules! named {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];
            /// Every value's name, in the order of `ALL`.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// The value's name in JSON, SQLite and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .into_iter()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| $crate::names::UnknownName {
                        what: $what,
                        name: s.to_string(),
                        expected: &$ty::NAMES,
                    })
            }
        }
    };
}

pub(crate) use named;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Connectivity;
    use crate::ipc::{ErrorCode, Kept, QueueState, SyncErrorKind};
    use crate::task::SyncStatus;
    use crate::wire::{Field, ItemStatus, Operation};

    /// Serde's JSON name of every value is its `as_str` name, and it parses back.
    fn assert_names_agree<T>(values: &[T])
    where
        T: Clone + fmt::Display + fmt::Debug + PartialEq + std::str::FromStr + serde::Serialize,
        T::Err: fmt::Debug,
    {
        for value in values {
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{value}\""));
            assert_eq!(value.to_string().parse::<T>().unwrap(), *value);
        }
    }

    #[test]
    fn serde_names_are_the_listed_names() {
        assert_names_agree(&SyncStatus::ALL);
        assert_names_agree(&Operation::ALL);
        assert_names_agree(&Field::ALL);
        assert_names_agree(&[
            Field::Tag("shop.x:y".into()),
            Field::Attribute("myapp.colour".into()),
        ]);
        assert_names_agree(&crate::task::Priority::ALL);
        assert_names_agree(&ItemStatus::ALL);
        assert_names_agree(&QueueState::ALL);
        assert_names_agree(&Kept::ALL);
        assert_names_agree(&Connectivity::ALL);
        assert_names_agree(&ErrorCode::ALL);
        assert_names_agree(&SyncErrorKind::ALL);
    }

    #[test]
    fn an_unknown_name_lists_the_expected_ones() {
        let error = UnknownName {
            what: "colour",
            name: "teal".into(),
            expected: &["red", "green", "blue"],
        };
        assert_eq!(
            error.to_string(),
            "unknown colour \"teal\": expected red, green or blue"
        );
    }
}
