//! Date words for `due:` and relative due dates: reads `2026-12-24`, `tomorrow`, `fri`, `eow`,
//! `3d`, ... in the local time zone, and tells a due date as `in 3d` or `2w ago` for `list`.
//!
//! Every word is read against a `now` in the user's time zone, so "tomorrow" and "eod" follow
//! the local calendar and its daylight saving time changes (a day can last 23 or 25 hours).
//! Results are instants in milliseconds since the Unix epoch, the way tasks store them.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};

/// The forms [`parse_when`] accepts, as error messages list them.
const ACCEPTED: &str = "2026-12-24, 2026-12-24T17:00, today, tomorrow, yesterday, \
                        monday..sunday, eod, eow, eom, 3d, 2w, or an RFC 3339 timestamp";

/// A date word that [`parse_when`] does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DateError {
    /// Not one of the accepted forms (or a date that does not exist, like 2026-02-30).
    #[error("invalid date {word:?}: use {ACCEPTED}")]
    Invalid { word: String },
    /// A well-formed word whose time falls outside the years 0000 to 9999.
    #[error("date {word:?} is out of range: dates must fall in the years 0000 to 9999")]
    OutOfRange { word: String },
}

/// Parses a date word relative to `now` (a [`ZonedDateTime`] in the user's local time zone).
/// Returns the instant as milliseconds since the Unix epoch (UTC).
///
/// Words are case-insensitive and read in `now`'s time zone:
/// - `2026-12-24` (00:00 that day), `2026-12-24T17:00`, `2026-12-24T17:00:30` (local time; a
///   time that a DST change skips moves forward by the gap, a repeated one takes the first);
///   an RFC 3339 timestamp with `Z` or an offset (`2026-12-24T17:00:00.123+01:00`).
/// - `now`; `today`/`sod`, `tomorrow`, `yesterday`: the start (00:00) of that day.
/// - `monday`..`sunday`, `mon`..`sun`: the start of the next such day, never today.
/// - `eod`, `eow`, `eom`: the last second (23:59:59) of today, of this week's Sunday (weeks
///   start on Monday), of this month's last day; `sow`, `som`: the start of this week's Monday,
///   of this month's first day.
/// - `Nmin`, `Nh`, `Nd`, `Nw`, `Nmo`, `Ny` with N in 1..=9999: that long from now (hours and
///   minutes are elapsed time; days and longer follow the calendar and keep the clock time).
///
/// There is no `m`: it could mean minutes or months. An empty word is an error too (the caller
/// reads `due:` alone as "clear").
pub(crate) fn parse_when(word: &str, now: &ZonedDateTime) -> Result<i64, DateError> {
    let word = word.to_owned();
    let instant = match resolve(&word.to_ascii_lowercase(), now) {
        Ok(instant) => instant,
        Err(Bad::Invalid) => return Err(DateError::Invalid { word }),
        Err(Bad::OutOfRange) => return Err(DateError::OutOfRange { word }),
    };
    // jiff itself refuses instants much past its range (about years -9999..=9999); the rest of
    // the range check is ours, in local time and in UTC.
    if !in_years(instant, now.time_zone()) || !in_years(instant, &TimeZone::UTC) {
        return Err(DateError::OutOfRange { word });
    }
    Ok(millis(instant))
}

/// Why a word has no instant.
enum Bad {
    /// Not an accepted form, or a date or time that does not exist (2026-02-30, 24:00).
    Invalid,
    /// Beyond the times jiff can hold.
    OutOfRange,
}

impl From<jiff::Error> for Bad {
    /// jiff's errors here only come from arithmetic or conversions leaving its range: the
    /// values that make up a date or time are checked where they are read.
    fn from(_: jiff::Error) -> Bad {
        Bad::OutOfRange
    }
}

/// The instant of a lowercase word, against `now`.
fn resolve(word: &str, now: &ZonedDateTime) -> Result<Timestamp, Bad> {
    let tz = now.time_zone();
    let today = now.date();
    let days = |n: i64| Span::new().days(n);
    Ok(match word {
        "now" => now.timestamp(),
        "today" | "sod" => start_of(today, tz)?,
        "tomorrow" => start_of(today.checked_add(days(1))?, tz)?,
        "yesterday" => start_of(today.checked_sub(days(1))?, tz)?,
        "eod" => end_of(today, tz)?,
        "sow" => {
            let back = today.weekday().to_monday_zero_offset();
            start_of(today.checked_sub(days(back.into()))?, tz)?
        }
        "eow" => {
            let ahead = 7 - today.weekday().to_monday_one_offset();
            end_of(today.checked_add(days(ahead.into()))?, tz)?
        }
        "som" => start_of(today.first_of_month(), tz)?,
        "eom" => end_of(today.last_of_month(), tz)?,
        _ => {
            if let Some(weekday) = weekday(word) {
                // The next such day: a week ahead when today is that day.
                let ahead = match weekday.since(today.weekday()) {
                    0 => 7,
                    n => n,
                };
                start_of(today.checked_add(days(ahead.into()))?, tz)?
            } else if let Some(span) = duration(word) {
                now.checked_add(span)?.timestamp()
            } else {
                datetime(word, tz)?
            }
        }
    })
}

/// "in 2d", "in 5h", "in 20min", "3d ago", "2w ago", ...: a short relative text of `due_ms`
/// against `now_ms`.
///
/// Within a minute either way it says `now`. Otherwise it counts in the largest unit that
/// fits: minutes up to 59, hours up to 23, days up to 13, weeks up to 8, months (of 30.44
/// days) up to 23, then years (of 365.2425 days). Counts are rounded to the nearest (halves
/// up), so a task just given `due:3d` reads `in 3d`, not `in 2d`, and `due:2w` reads `in 2w`
/// even when a DST change makes it an hour short. It is elapsed time only, so it needs no time
/// zone and is the same wherever it runs.
pub(crate) fn relative(due_ms: i64, now_ms: i64) -> String {
    const MINUTE: u128 = 60;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    const WEEK: u128 = 7 * DAY;
    // The Gregorian calendar's average year and month.
    const YEAR: u128 = 31_556_952;
    const MONTH: u128 = YEAR / 12;

    let diff = i128::from(due_ms) - i128::from(now_ms);
    let seconds = diff.unsigned_abs() / 1000;
    if seconds < MINUTE {
        return "now".to_owned();
    }
    let count = |unit: u128| (seconds + unit / 2) / unit;
    // Each step is taken only once the count of the unit before has reached its limit, so
    // the count of the next unit is at least 1 (e.g. 59.5 minutes is 1h, not 0h or 60min).
    let steps = [
        (MINUTE, 60, "min"),
        (HOUR, 24, "h"),
        (DAY, 14, "d"),
        (WEEK, 9, "w"),
        (MONTH, 24, "mo"),
    ];
    let (count, unit) = steps
        .into_iter()
        .map(|(length, limit, unit)| (count(length), limit, unit))
        .find(|&(count, limit, _)| count < limit)
        .map_or((count(YEAR), "y"), |(count, _, unit)| (count, unit));
    if diff > 0 {
        format!("in {count}{unit}")
    } else {
        format!("{count}{unit} ago")
    }
}

/// The local now ([`ZonedDateTime::now`]): the time zone comes from `TZ`, else
/// `/etc/localtime` (or the system's setting), else UTC.
pub(crate) fn local_now() -> ZonedDateTime {
    ZonedDateTime::now()
}

/// `due_ms` as a local date and time for `show`: `2026-12-24 17:00 (CET)`, in `now`'s time
/// zone; `None` when the instant is out of jiff's range.
pub(crate) fn local_time(due_ms: i64, now: &ZonedDateTime) -> Option<String> {
    let instant = Timestamp::from_millisecond(due_ms).ok()?;
    let local = instant.to_zoned_datetime(now.time_zone().clone());
    Some(local.strftime("%Y-%m-%d %H:%M (%Z)").to_string())
}

/// The first instant of `date` in `tz` (00:00, or the end of a DST gap that swallows
/// midnight).
fn start_of(date: Date, tz: &TimeZone) -> Result<Timestamp, jiff::Error> {
    date.to_zoned_datetime(tz.clone()).map(|z| z.timestamp())
}

/// The last whole second of `date` in `tz` (23:59:59, unless a DST change moves it).
fn end_of(date: Date, tz: &TimeZone) -> Result<Timestamp, jiff::Error> {
    let end = date
        .to_zoned_datetime(tz.clone())?
        .end_of_day()?
        .timestamp();
    let second = end.as_nanosecond().div_euclid(1_000_000_000);
    // The floor of a valid timestamp is valid: it only drops the fraction.
    Timestamp::from_second(second as i64)
}

/// Whether `instant`, read in `tz`, falls in the years 0000 to 9999.
fn in_years(instant: Timestamp, tz: &TimeZone) -> bool {
    (0..=9999).contains(&tz.to_datetime(instant).year())
}

/// Milliseconds since the Unix epoch, rounded down (also before 1970).
fn millis(instant: Timestamp) -> i64 {
    // Years 0000..=9999 are about ±2.6e14 ms: well inside i64.
    instant.as_nanosecond().div_euclid(1_000_000) as i64
}

/// `monday`..`sunday` and `mon`..`sun` (already lowercase).
fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// `Nmin`, `Nh`, `Nd`, `Nw`, `Nmo`, `Ny` (already lowercase) with N in 1..=9999.
fn duration(word: &str) -> Option<Span> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 4 {
        return None;
    }
    let count: i64 = word[..digits].parse().ok()?;
    if count == 0 {
        return None;
    }
    let span = Span::new();
    // 9999 of any unit is within a span's limits, so these never fail.
    match &word[digits..] {
        "min" => span.try_minutes(count),
        "h" => span.try_hours(count),
        "d" => span.try_days(count),
        "w" => span.try_weeks(count),
        "mo" => span.try_months(count),
        "y" => span.try_years(count),
        _ => return None,
    }
    .ok()
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.F]]` (local, in `tz`) and RFC 3339
/// `YYYY-MM-DDTHH:MM:SS[.F](z|+HH:MM|-HH:MM)`, already lowercase.
fn datetime(word: &str, tz: &TimeZone) -> Result<Timestamp, Bad> {
    let b = word.as_bytes();
    // The number in `b[range]`, all ASCII digits.
    let number = |range: std::ops::Range<usize>| -> Result<i64, Bad> {
        let part = b.get(range).ok_or(Bad::Invalid)?;
        if part.is_empty() || part.len() > 9 || !part.iter().all(u8::is_ascii_digit) {
            return Err(Bad::Invalid);
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let punct = |at: usize, c: u8| -> Result<(), Bad> {
        match b.get(at) == Some(&c) {
            true => Ok(()),
            false => Err(Bad::Invalid),
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    punct(4, b'-')?;
    punct(7, b'-')?;
    // Every field has at most 4 digits (the fraction is read apart), so the casts are exact.
    let date = Date::new(year as i16, month as i8, day as i8).map_err(|_| Bad::Invalid)?;
    if b.len() == 10 {
        return Ok(start_of(date, tz)?);
    }
    punct(10, b't')?;
    punct(13, b':')?;
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    let mut at = 16;
    let mut second = None;
    let mut nanos = 0;
    if b.get(at) == Some(&b':') {
        second = Some(number(at + 1..at + 3)?);
        at += 3;
        if b.get(at) == Some(&b'.') {
            let len = b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let fraction = number(at + 1..at + 1 + len)?;
            nanos = fraction * 10_i64.pow(9 - len as u32);
            at += 1 + len;
        }
    }
    let rest = &b[at..];
    // RFC 3339 allows a leap second; like jiff, read it as the second before.
    let leap = !rest.is_empty() && second == Some(60);
    let time = jiff::civil::Time::new(
        hour as i8,
        minute as i8,
        if leap { 59 } else { second.unwrap_or(0) as i8 },
        nanos as i32,
    )
    .map_err(|_| Bad::Invalid)?;
    let civil = DateTime::from_parts(date, time);
    if rest.is_empty() {
        return Ok(civil.to_zoned_datetime(tz.clone())?.timestamp());
    }
    // RFC 3339 needs the seconds, then `z` or `+HH:MM` / `-HH:MM` (hours 00..=23).
    if second.is_none() {
        return Err(Bad::Invalid);
    }
    let offset_seconds = match rest {
        b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return Err(Bad::Invalid);
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return Err(Bad::Invalid),
    };
    let offset = jiff::tz::Offset::from_seconds(offset_seconds)?;
    Ok(offset.to_timestamp(civil)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// America/New_York as a POSIX rule (no tzdb needed): DST from the second Sunday of March
    /// (2026-03-08) to the first Sunday of November (2026-11-01), changing at 02:00.
    fn new_york() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()
    }

    /// Europe/Berlin as a POSIX rule: CEST from the last Sunday of March to the last Sunday of
    /// October.
    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    fn at(tz: TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> ZonedDateTime {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(tz)
            .unwrap()
    }

    /// The milliseconds of an RFC 3339 instant, read by jiff (not by the code under test).
    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn when(word: &str, now: &ZonedDateTime) -> i64 {
        parse_when(word, now).unwrap_or_else(|e| panic!("{word}: {e}"))
    }

    fn invalid(word: &str) -> DateError {
        DateError::Invalid {
            word: word.to_owned(),
        }
    }

    fn out_of_range(word: &str) -> DateError {
        DateError::OutOfRange {
            word: word.to_owned(),
        }
    }

    #[test]
    fn dates_local_dates_and_times() {
        let now = at(berlin(), 2026, 6, 15, 10, 0);
        assert_eq!(when("2026-12-24", &now), ms("2026-12-23T23:00:00Z"));
        assert_eq!(when("2026-12-24T17:00", &now), ms("2026-12-24T16:00:00Z"));
        assert_eq!(
            when("2026-12-24T17:00:30", &now),
            ms("2026-12-24T16:00:30Z")
        );
        assert_eq!(
            when("2026-12-24t17:00:30", &now),
            ms("2026-12-24T16:00:30Z")
        );
        assert_eq!(
            when("2026-12-24T17:00:30.25", &now),
            ms("2026-12-24T16:00:30.250Z")
        );
        // Summer time: two hours ahead of UTC.
        assert_eq!(when("2026-07-01", &now), ms("2026-06-30T22:00:00Z"));
        assert_eq!(when("2026-07-01T17:00", &now), ms("2026-07-01T15:00:00Z"));
        assert_eq!(when("2028-02-29", &now), ms("2028-02-28T23:00:00Z"));
    }

    #[test]
    fn dates_local_times_in_dst_gaps_and_folds() {
        let now = at(new_york(), 2026, 1, 10, 9, 0);
        // 02:30 does not exist on 2026-03-08: it moves forward by the gap, to 03:30 EDT.
        assert_eq!(when("2026-03-08T02:30", &now), ms("2026-03-08T07:30:00Z"));
        // 01:30 happens twice on 2026-11-01: the first (EDT) is taken.
        assert_eq!(when("2026-11-01T01:30", &now), ms("2026-11-01T05:30:00Z"));
        assert_eq!(when("2026-03-08", &now), ms("2026-03-08T05:00:00Z"));
        assert_eq!(when("2026-03-09", &now), ms("2026-03-09T04:00:00Z"));
    }

    #[test]
    fn dates_rfc3339_timestamps() {
        let now = at(new_york(), 2026, 6, 15, 10, 0);
        assert_eq!(
            when("2026-12-24T17:00:00Z", &now),
            ms("2026-12-24T17:00:00Z")
        );
        assert_eq!(
            when("2026-12-24t17:00:00z", &now),
            ms("2026-12-24T17:00:00Z")
        );
        assert_eq!(
            when("2026-12-24T17:00:00.123+01:00", &now),
            ms("2026-12-24T16:00:00.123Z")
        );
        assert_eq!(
            when("2026-12-24T17:00:00-05:30", &now),
            ms("2026-12-24T22:30:00Z")
        );
        assert_eq!(
            when("2026-12-24T17:00:00+00:00", &now),
            ms("2026-12-24T17:00:00Z")
        );
        assert_eq!(
            when("2026-12-24T17:00:00.123456789Z", &now),
            ms("2026-12-24T17:00:00.123Z")
        );
        // A leap second reads as the second before it.
        assert_eq!(
            when("2016-12-31T23:59:60Z", &now),
            ms("2016-12-31T23:59:59Z")
        );
        // Milliseconds round down before 1970 too.
        assert_eq!(when("1969-12-31T23:59:59.9995Z", &now), -1);
        assert_eq!(when("1970-01-01T00:00:00Z", &now), 0);
    }

    #[test]
    fn dates_malformed_dates_and_times_are_invalid() {
        let now = at(TimeZone::UTC, 2026, 6, 15, 10, 0);
        for word in [
            "2026-02-29",
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "2026-12-00",
            "2026-12-24T24:00",
            "2026-12-24T17:60",
            "2026-12-24T17:00:60",
            "2026-12-24T17",
            "2026-12-24T17:0",
            "2026-12-24T",
            "2026-12-24T17:00:",
            "2026-12-24T17:00:00.",
            "2026-12-24T17:00:00.Z",
            "2026-12-24T17:00:00.1234567890Z",
            "2026-12-24T17:00Z",
            "2026-12-24T17:00+01:00",
            "2026-12-24T17:00:00+24:00",
            "2026-12-24T17:00:00+01:60",
            "2026-12-24T17:00:00+0100",
            "2026-12-24T17:00:00+01",
            "2026-12-24T17:00:00 Z",
            "2026-12-24T17:00:00ZZ",
            "2026-12-24T17:00:00[UTC]",
            "2026-12-24 17:00",
            "2026-12-24Z",
            "26-12-24",
            "20261224",
            "2026/12/24",
            "+2026-12-24",
            "2026-1-24",
            "2026-12-2x",
            "2026-12-24-",
            "２０２６-12-24",
        ] {
            assert_eq!(parse_when(word, &now), Err(invalid(word)), "{word}");
        }
    }

    #[test]
    fn dates_day_words_on_the_day_dst_starts() {
        // Sunday 2026-03-08 lasts 23 hours in New York.
        let now = at(new_york(), 2026, 3, 8, 12, 0);
        assert_eq!(when("now", &now), ms("2026-03-08T16:00:00Z"));
        assert_eq!(when("today", &now), ms("2026-03-08T05:00:00Z"));
        assert_eq!(when("sod", &now), ms("2026-03-08T05:00:00Z"));
        assert_eq!(when("tomorrow", &now), ms("2026-03-09T04:00:00Z"));
        assert_eq!(when("yesterday", &now), ms("2026-03-07T05:00:00Z"));
        assert_eq!(when("eod", &now), ms("2026-03-09T03:59:59Z"));
        // A calendar day from the day before is 23 hours; 24 hours is a clock hour later.
        let before = at(new_york(), 2026, 3, 7, 12, 0);
        assert_eq!(when("1d", &before), ms("2026-03-08T16:00:00Z"));
        assert_eq!(when("24h", &before), ms("2026-03-08T17:00:00Z"));
    }

    #[test]
    fn dates_day_words_on_the_day_dst_ends() {
        // Sunday 2026-11-01 lasts 25 hours in New York.
        let now = at(new_york(), 2026, 11, 1, 12, 0);
        assert_eq!(when("today", &now), ms("2026-11-01T04:00:00Z"));
        assert_eq!(when("tomorrow", &now), ms("2026-11-02T05:00:00Z"));
        assert_eq!(when("yesterday", &now), ms("2026-10-31T04:00:00Z"));
        assert_eq!(when("eod", &now), ms("2026-11-02T04:59:59Z"));
        let before = at(new_york(), 2026, 10, 31, 12, 0);
        assert_eq!(when("1d", &before), ms("2026-11-01T17:00:00Z"));
        assert_eq!(when("24h", &before), ms("2026-11-01T16:00:00Z"));
        assert_eq!(when("tomorrow", &before), ms("2026-11-01T04:00:00Z"));
    }

    #[test]
    fn dates_weekdays_are_the_next_such_day() {
        // Thursday 2026-12-24, in Berlin.
        let now = at(berlin(), 2026, 12, 24, 15, 0);
        assert_eq!(now.weekday(), Weekday::Thursday);
        let start = |d: i8| date(2026, 12, d).to_zoned_datetime(berlin()).unwrap();
        for (long, short, day) in [
            ("friday", "fri", 25),
            ("saturday", "sat", 26),
            ("sunday", "sun", 27),
            ("monday", "mon", 28),
            ("tuesday", "tue", 29),
            ("wednesday", "wed", 30),
            // Today is Thursday: a week later, not today.
            ("thursday", "thu", 31),
        ] {
            let want = start(day).timestamp().as_millisecond();
            assert_eq!(when(long, &now), want, "{long}");
            assert_eq!(when(short, &now), want, "{short}");
        }
        assert_eq!(when("thursday", &now), ms("2026-12-30T23:00:00Z"));
        // Across the start of DST: Saturday 2026-03-28 to Monday 2026-03-30 in Berlin.
        let now = at(berlin(), 2026, 3, 28, 23, 30);
        assert_eq!(when("mon", &now), ms("2026-03-29T22:00:00Z"));
        assert_eq!(when("sun", &now), ms("2026-03-28T23:00:00Z"));
    }

    #[test]
    fn dates_week_and_month_words() {
        // Thursday 2026-12-24.
        let now = at(berlin(), 2026, 12, 24, 15, 0);
        assert_eq!(when("eow", &now), ms("2026-12-27T22:59:59Z"));
        assert_eq!(when("sow", &now), ms("2026-12-20T23:00:00Z"));
        assert_eq!(when("eom", &now), ms("2026-12-31T22:59:59Z"));
        assert_eq!(when("som", &now), ms("2026-11-30T23:00:00Z"));
        // On a Sunday, this week ends today and began last Monday.
        let sunday = at(berlin(), 2026, 12, 27, 10, 0);
        assert_eq!(when("eow", &sunday), ms("2026-12-27T22:59:59Z"));
        assert_eq!(when("sow", &sunday), ms("2026-12-20T23:00:00Z"));
        // On a Monday, this week began today.
        let monday = at(berlin(), 2026, 12, 21, 0, 0);
        assert_eq!(when("sow", &monday), ms("2026-12-20T23:00:00Z"));
        assert_eq!(when("eow", &monday), ms("2026-12-27T22:59:59Z"));
        // February of a leap year, and of a common one.
        let leap = at(TimeZone::UTC, 2028, 2, 10, 8, 0);
        assert_eq!(when("eom", &leap), ms("2028-02-29T23:59:59Z"));
        assert_eq!(when("som", &leap), ms("2028-02-01T00:00:00Z"));
        let common = at(TimeZone::UTC, 2027, 2, 28, 23, 59);
        assert_eq!(when("eom", &common), ms("2027-02-28T23:59:59Z"));
        // The end of a week and a month that span the end of DST.
        let october = at(berlin(), 2026, 10, 22, 12, 0);
        assert_eq!(when("eow", &october), ms("2026-10-25T22:59:59Z"));
        assert_eq!(when("eom", &october), ms("2026-10-31T22:59:59Z"));
    }

    #[test]
    fn dates_durations_from_now() {
        let now = at(TimeZone::UTC, 2026, 1, 31, 10, 0);
        assert_eq!(when("30min", &now), ms("2026-01-31T10:30:00Z"));
        assert_eq!(when("1min", &now), ms("2026-01-31T10:01:00Z"));
        assert_eq!(when("5h", &now), ms("2026-01-31T15:00:00Z"));
        assert_eq!(when("3d", &now), ms("2026-02-03T10:00:00Z"));
        assert_eq!(when("2w", &now), ms("2026-02-14T10:00:00Z"));
        // Months and years follow the calendar, clamping to the month's last day.
        assert_eq!(when("1mo", &now), ms("2026-02-28T10:00:00Z"));
        assert_eq!(when("13mo", &now), ms("2027-02-28T10:00:00Z"));
        assert_eq!(when("1y", &now), ms("2027-01-31T10:00:00Z"));
        assert_eq!(when("03d", &now), ms("2026-02-03T10:00:00Z"));
        assert_eq!(when("9999min", &now), ms("2026-02-07T08:39:00Z"));
        assert_eq!(when("9999d", &now), ms("2053-06-17T10:00:00Z"));
        assert_eq!(when("9999mo", &now), ms("2859-04-30T10:00:00Z"));
        assert_eq!(when("7973y", &now), ms("9999-01-31T10:00:00Z"));
        for word in ["9999y", "7974y"] {
            assert_eq!(parse_when(word, &now), Err(out_of_range(word)), "{word}");
        }
        for word in [
            "0d", "0000h", "10000d", "00001d", "3m", "3", "d", "min", "3 d", "-3d", "+3d", "3dd",
            "3days", "3s", "1.5h", "3mon", "3mins", "3hr",
        ] {
            assert_eq!(parse_when(word, &now), Err(invalid(word)), "{word}");
        }
    }

    #[test]
    fn dates_words_are_case_insensitive() {
        let now = at(berlin(), 2026, 12, 24, 15, 0);
        for (upper, lower) in [
            ("NOW", "now"),
            ("Today", "today"),
            ("TOMORROW", "tomorrow"),
            ("yEsTeRdAy", "yesterday"),
            ("FrIdAy", "friday"),
            ("THU", "thu"),
            ("EOD", "eod"),
            ("Eow", "eow"),
            ("EOM", "eom"),
            ("SOD", "sod"),
            ("SOW", "sow"),
            ("SOM", "som"),
            ("3D", "3d"),
            ("2W", "2w"),
            ("5H", "5h"),
            ("30MIN", "30min"),
            ("4Mo", "4mo"),
            ("2Y", "2y"),
            ("2026-12-24T17:00:00Z", "2026-12-24t17:00:00z"),
        ] {
            assert_eq!(when(upper, &now), when(lower, &now), "{upper}");
        }
    }

    #[test]
    fn dates_other_words_are_errors_that_say_what_works() {
        let now = at(TimeZone::UTC, 2026, 6, 15, 10, 0);
        for word in [
            "",
            " ",
            "foo",
            " today",
            "today ",
            "next monday",
            "mond",
            "tues",
            "eoy",
            "soy",
            "later",
            "now!",
            "day",
            "tomorrow\n",
            "étoday",
        ] {
            assert_eq!(parse_when(word, &now), Err(invalid(word)), "{word:?}");
        }
        let error = parse_when("foo", &now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid date \"foo\": use 2026-12-24, 2026-12-24T17:00, today, tomorrow, \
             yesterday, monday..sunday, eod, eow, eom, 3d, 2w, or an RFC 3339 timestamp"
        );
        // The word is quoted as given (case kept, control characters escaped).
        let error = parse_when("Foo\n", &now).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid date \"Foo\\n\": use "),
            "{error}"
        );
        let error: Box<dyn std::error::Error> = Box::new(parse_when("", &now).unwrap_err());
        assert!(
            error.to_string().starts_with("invalid date \"\": use "),
            "{error}"
        );
    }

    #[test]
    fn dates_only_years_0000_to_9999() {
        let utc = at(TimeZone::UTC, 2026, 6, 15, 10, 0);
        assert_eq!(when("0000-01-01", &utc), ms("0000-01-01T00:00:00Z"));
        assert_eq!(when("0000-01-01", &utc), -62_167_219_200_000);
        assert_eq!(
            when("9999-12-30T12:00:00Z", &utc),
            ms("9999-12-30T12:00:00Z")
        );
        // The start of year 0000 in Berlin is still year -0001 in UTC.
        let berlin_now = at(berlin(), 2026, 6, 15, 10, 0);
        assert_eq!(
            parse_when("0000-01-01", &berlin_now),
            Err(out_of_range("0000-01-01"))
        );
        assert_eq!(
            when("0000-01-01T01:00", &berlin_now),
            ms("0000-01-01T00:00:00Z")
        );
        // An offset that takes a year-9999 time into year 10000 in UTC.
        let word = "9999-12-31T23:00:00-05:00";
        assert_eq!(parse_when(word, &utc), Err(out_of_range(word)));
        let error = parse_when(word, &utc).unwrap_err().to_string();
        assert_eq!(
            error,
            "date \"9999-12-31T23:00:00-05:00\" is out of range: dates must fall in the years \
             0000 to 9999"
        );
    }

    #[test]
    fn dates_relative_in_the_future_and_past() {
        const S: i64 = 1000;
        const MIN: i64 = 60 * S;
        const H: i64 = 60 * MIN;
        const D: i64 = 24 * H;
        let now = ms("2026-06-15T10:00:00Z");
        for (diff, future, past) in [
            (0, "now", "now"),
            (1, "now", "now"),
            (59 * S + 999, "now", "now"),
            (MIN, "in 1min", "1min ago"),
            (89 * S, "in 1min", "1min ago"),
            (90 * S, "in 2min", "2min ago"),
            (20 * MIN + 29 * S, "in 20min", "20min ago"),
            (20 * MIN + 30 * S, "in 21min", "21min ago"),
            (59 * MIN + 29 * S, "in 59min", "59min ago"),
            (59 * MIN + 30 * S, "in 1h", "1h ago"),
            (H, "in 1h", "1h ago"),
            (5 * H + 29 * MIN, "in 5h", "5h ago"),
            (5 * H + 30 * MIN, "in 6h", "6h ago"),
            (23 * H + 29 * MIN, "in 23h", "23h ago"),
            (23 * H + 30 * MIN, "in 1d", "1d ago"),
            (D, "in 1d", "1d ago"),
            (2 * D + 11 * H, "in 2d", "2d ago"),
            // A `due:3d` listed a moment later.
            (3 * D - 5 * S, "in 3d", "3d ago"),
            (13 * D + 11 * H, "in 13d", "13d ago"),
            (13 * D + 12 * H, "in 2w", "2w ago"),
            (17 * D, "in 2w", "2w ago"),
            (18 * D, "in 3w", "3w ago"),
            (59 * D + 11 * H, "in 8w", "8w ago"),
            (59 * D + 12 * H, "in 2mo", "2mo ago"),
            (122 * D, "in 4mo", "4mo ago"),
            (365 * D, "in 12mo", "12mo ago"),
            (715 * D, "in 23mo", "23mo ago"),
            (716 * D, "in 2y", "2y ago"),
            (1096 * D, "in 3y", "3y ago"),
            (9000 * 365 * D, "in 8994y", "8994y ago"),
        ] {
            assert_eq!(relative(now + diff, now), future, "+{diff}");
            assert_eq!(relative(now - diff, now), past, "-{diff}");
        }
        // No overflow at the extremes.
        assert!(relative(i64::MAX, i64::MIN).starts_with("in "));
        assert!(relative(i64::MIN, i64::MAX).ends_with(" ago"));
    }

    #[test]
    fn dates_relative_of_parsed_words() {
        let now = at(new_york(), 2026, 3, 7, 12, 0);
        let now_ms = now.timestamp().as_millisecond();
        let rel = |word: &str| relative(when(word, &now), now_ms);
        assert_eq!(rel("now"), "now");
        assert_eq!(rel("20min"), "in 20min");
        // Tomorrow starts 12 hours from now; the day after is 35 hours away (DST starts).
        assert_eq!(rel("tomorrow"), "in 12h");
        assert_eq!(rel("2026-03-09"), "in 1d");
        // Durations read as typed although DST makes them an hour short.
        assert_eq!(rel("3d"), "in 3d");
        assert_eq!(rel("2w"), "in 2w");
        assert_eq!(rel("4mo"), "in 4mo");
        assert_eq!(rel("2026-01-01"), "2mo ago");
    }

    #[test]
    fn dates_local_now_is_now() {
        let before = Timestamp::now().as_millisecond();
        let now = local_now().timestamp().as_millisecond();
        let after = Timestamp::now().as_millisecond();
        assert!(before <= now && now <= after);
    }

    #[test]
    fn dates_local_time_in_the_zone_of_now() {
        let now = at(berlin(), 2026, 12, 3, 10, 0);
        let due = ms("2026-12-24T16:00:00Z");
        assert_eq!(
            local_time(due, &now).as_deref(),
            Some("2026-12-24 17:00 (CET)")
        );
    }
}
