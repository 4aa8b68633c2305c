//! Millisecond-precision UTC timestamps.
//!
//! On JSON (and any human-readable format) a [`Timestamp`] is an RFC 3339 string with exactly
//! three fractional digits and a `Z` suffix, e.g. `2026-11-25T16:47:58.123Z`; that fixed shape
//! sorts lexicographically in time order, which the daemon's SQLite indexes rely on. On the
//! binary IPC wire it is the plain count of milliseconds since the Unix epoch.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The earliest and latest instants we accept: years 0000..=9999 keep the text form fixed-width.
const MIN_MILLIS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
const MAX_MILLIS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Error for a timestamp that is not RFC 3339 or lies outside years 0000..=9999.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected RFC 3339, e.g. 2026-11-25T16:47:58.123Z")]
pub struct TimestampError(String);

impl Timestamp {
    /// The current wall-clock time, truncated to milliseconds.
    pub fn now() -> Self {
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(-MIN_MILLIS),
        };
        Timestamp(millis.clamp(MIN_MILLIS, MAX_MILLIS))
    }

    /// A timestamp from milliseconds since the epoch, or `None` outside years 0000..=9999.
    pub fn from_millis(millis: i64) -> Option<Self> {
        (MIN_MILLIS..=MAX_MILLIS)
            .contains(&millis)
            .then_some(Timestamp(millis))
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// The next representable instant (one millisecond later), or `None` at the maximum.
    pub fn checked_next(self) -> Option<Self> {
        Timestamp::from_millis(self.0 + 1)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let nanos = i128::from(self.0) * 1_000_000;
        let text = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| fmt::Error)?
            .format(&format)
            .map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError(s.into()))?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(millis)
            .ok()
            .and_then(Timestamp::from_millis)
            .ok_or_else(|| TimestampError(s.into()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(D::Error::custom)
        } else {
            let millis = i64::deserialize(deserializer)?;
            Timestamp::from_millis(millis)
                .ok_or_else(|| D::Error::custom(format!("timestamp {millis} ms out of range")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_with_milliseconds() {
        let ts = Timestamp::from_millis(1_764_089_278_123).unwrap();
        assert_eq!(ts.to_string(), "2025-11-25T16:47:58.123Z");
        assert_eq!(
            Timestamp::from_millis(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_offsets_and_truncates_to_millis() {
        let ts: Timestamp = "2025-11-25T17:47:58.123456+01:00".parse().unwrap();
        assert_eq!(ts.as_millis(), 1_764_089_278_123);
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("2025-13-01T00:00:00Z".parse::<Timestamp>().is_err());
    }

    #[test]
    fn text_order_is_time_order() {
        let a = Timestamp::from_millis(999).unwrap();
        let b = Timestamp::from_millis(1_000).unwrap();
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn json_is_text_and_postcard_is_millis() {
        let ts = Timestamp::from_millis(1_500).unwrap();
        assert_eq!(
            serde_json::to_string(&ts).unwrap(),
            "\"1970-01-01T00:00:01.500Z\""
        );
        let bytes = postcard::to_stdvec(&ts).unwrap();
        assert_eq!(postcard::from_bytes::<Timestamp>(&bytes).unwrap(), ts);
        assert!(serde_json::from_str::<Timestamp>("\"nope\"").is_err());
    }
}
