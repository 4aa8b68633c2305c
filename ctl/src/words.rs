//! Taskwarrior-style words of `add`, `modify` and `list`: `+tag`, `-tag`, `project:P`,
//! `due:WHEN`, `priority:H` / `pri:H`, `due.before:WHEN`, `due.after:WHEN`; other words are the
//! title. Pure functions from words (and a fixed `now`) to a [`NewTask`], a [`TaskPatch`] or a
//! [`Filter`], so that nothing reaches the daemon when one word is wrong.

use std::collections::BTreeSet;

use jiff::ZonedDateTime;
use tasksync_proto::task::{validate_project, validate_tag};
use tasksync_proto::{NewTask, Priority, Task, TaskPatch, Timestamp};

use crate::dates;

/// A word that looks like a field word but is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WordError {
    #[error("{word:?}: {reason}")]
    Bad { word: String, reason: String },
    #[error("nothing to change: give a new title or words such as +tag, -tag, project:P, due:WHEN, pri:H (an empty value clears: due:)")]
    NothingToChange,
    #[error("{0:?} is a filter word of `list`; here use due:WHEN")]
    FilterOnly(String),
}

/// Which command the words belong to: what `-tag` and an empty value mean differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Modify,
    Filter,
}

/// One word, read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Tag(String),
    NoTag(String),
    Project(Option<String>),
    Due(Option<Timestamp>),
    Priority(Option<Priority>),
    DueBefore(Timestamp),
    DueAfter(Timestamp),
    Text(String),
}

fn bad(word: &str, reason: impl ToString) -> WordError {
    WordError::Bad {
        word: word.to_string(),
        reason: reason.to_string(),
    }
}

fn when(word: &str, value: &str, now: &ZonedDateTime) -> Result<Timestamp, WordError> {
    let millis = dates::parse_when(value, now).map_err(|e| bad(word, e))?;
    Timestamp::from_millis(millis).ok_or_else(|| bad(word, "the date is out of range"))
}

/// Reads one word. An empty value (`due:`) is `None`, which only `modify` accepts.
fn read(word: &str, mode: Mode, now: &ZonedDateTime) -> Result<Word, WordError> {
    if let Some(tag) = word.strip_prefix('+') {
        validate_tag(tag).map_err(|e| bad(word, e))?;
        return Ok(Word::Tag(tag.to_string()));
    }
    if mode != Mode::Add {
        // `-` alone or `-5` (a number) stays text in a new title.
        if let Some(tag) = word.strip_prefix('-').filter(|t| !t.is_empty()) {
            validate_tag(tag).map_err(|e| bad(word, e))?;
            return Ok(Word::NoTag(tag.to_string()));
        }
    }
    let Some((name, value)) = word.split_once(':') else {
        return Ok(Word::Text(word.to_string()));
    };
    let empty_refused = |what: &str| {
        if mode == Mode::Modify {
            Ok(())
        } else {
            Err(bad(word, format!("give a {what} after the colon")))
        }
    };
    match name.to_ascii_lowercase().as_str() {
        "project" | "proj" => {
            if value.is_empty() {
                empty_refused("project")?;
                return Ok(Word::Project(None));
            }
            validate_project(value).map_err(|e| bad(word, e))?;
            Ok(Word::Project(Some(value.to_string())))
        }
        "due" => {
            if value.is_empty() {
                empty_refused("date")?;
                return Ok(Word::Due(None));
            }
            Ok(Word::Due(Some(when(word, value, now)?)))
        }
        "priority" | "pri" => {
            if value.is_empty() {
                empty_refused("priority (H, M or L)")?;
                return Ok(Word::Priority(None));
            }
            let priority = value
                .to_ascii_uppercase()
                .parse::<Priority>()
                .map_err(|_| bad(word, "priority must be H, M or L"))?;
            Ok(Word::Priority(Some(priority)))
        }
        "due.before" | "due.after" if mode != Mode::Filter => {
            Err(WordError::FilterOnly(word.to_string()))
        }
        "due.before" => Ok(Word::DueBefore(when(word, value, now)?)),
        "due.after" => Ok(Word::DueAfter(when(word, value, now)?)),
        // `Re: the plan`, `10:30`: ordinary title words.
        _ => Ok(Word::Text(word.to_string())),
    }
}

/// Reads `words` in `mode`; the words after the first `--` (if `literal` is given) are text.
fn read_all(
    words: &[String],
    literal: &[String],
    mode: Mode,
    now: &ZonedDateTime,
) -> Result<Vec<Word>, WordError> {
    let mut read_words = words
        .iter()
        .map(|w| read(w, mode, now))
        .collect::<Result<Vec<_>, _>>()?;
    read_words.extend(literal.iter().cloned().map(Word::Text));
    Ok(read_words)
}

/// `add`: the fields of the new task; the text words (and all words after `--`) are the title.
pub(crate) fn new_task(
    words: &[String],
    literal: &[String],
    now: &ZonedDateTime,
) -> Result<NewTask, WordError> {
    let mut task = NewTask::default();
    let mut title = Vec::new();
    for word in read_all(words, literal, Mode::Add, now)? {
        match word {
            Word::Tag(tag) => {
                task.tags.insert(tag);
            }
            Word::Project(project) => task.project = project,
            Word::Due(due) => task.due = due,
            Word::Priority(priority) => task.priority = priority,
            Word::Text(text) => title.push(text),
            // Not produced in Mode::Add.
            Word::NoTag(_) | Word::DueBefore(_) | Word::DueAfter(_) => {}
        }
    }
    task.title = title.join(" ");
    Ok(task)
}

/// `modify`: a patch. Tags change by `add_tags` / `remove_tags`, so that edits of other tags
/// on other devices merge; text words make a new title.
pub(crate) fn patch(words: &[String], now: &ZonedDateTime) -> Result<TaskPatch, WordError> {
    let mut patch = TaskPatch::default();
    let mut title = Vec::new();
    for word in read_all(words, &[], Mode::Modify, now)? {
        match word {
            Word::Tag(tag) => {
                patch.remove_tags.remove(&tag);
                patch.add_tags.insert(tag);
            }
            Word::NoTag(tag) => {
                patch.add_tags.remove(&tag);
                patch.remove_tags.insert(tag);
            }
            Word::Project(project) => patch.project = Some(project),
            Word::Due(due) => patch.due = Some(due),
            Word::Priority(priority) => patch.priority = Some(priority),
            Word::Text(text) => title.push(text),
            Word::DueBefore(_) | Word::DueAfter(_) => {}
        }
    }
    if !title.is_empty() {
        patch.title = Some(title.join(" "));
    }
    if patch.is_empty() {
        return Err(WordError::NothingToChange);
    }
    Ok(patch)
}

/// What `list`'s filter words ask for; every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    has: BTreeSet<String>,
    has_not: BTreeSet<String>,
    project: Option<String>,
    due_before: Option<Timestamp>,
    due_after: Option<Timestamp>,
    priority: Option<Priority>,
}

impl Filter {
    /// Whether the filter asks for nothing (every task passes).
    pub(crate) fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `task` passes: it has every `+tag` and none of the `-tag`s, is in the project
    /// or below it (`home` takes `home.garden`), is due strictly before / after the given
    /// instants (a task without a due date passes neither), and has the priority.
    pub(crate) fn matches(&self, task: &Task) -> bool {
        let in_project = |wanted: &str| {
            task.project.as_deref().is_some_and(|p| {
                p == wanted
                    || p.strip_prefix(wanted)
                        .is_some_and(|below| below.starts_with('.'))
            })
        };
        self.has.iter().all(|t| task.tags.contains(t))
            && !self.has_not.iter().any(|t| task.tags.contains(t))
            && self.project.as_deref().is_none_or(in_project)
            && self
                .due_before
                .is_none_or(|b| task.due.is_some_and(|d| d < b))
            && self
                .due_after
                .is_none_or(|a| task.due.is_some_and(|d| d > a))
            && self.priority.is_none_or(|p| task.priority == Some(p))
    }
}

/// `list FILTER...`: the filter; a word that is no filter word is refused.
pub(crate) fn filter(words: &[String], now: &ZonedDateTime) -> Result<Filter, WordError> {
    let mut filter = Filter::default();
    for (word, read_word) in words.iter().zip(read_all(words, &[], Mode::Filter, now)?) {
        match read_word {
            Word::Tag(tag) => {
                filter.has.insert(tag);
            }
            Word::NoTag(tag) => {
                filter.has_not.insert(tag);
            }
            Word::Project(project) => filter.project = project,
            Word::Priority(priority) => filter.priority = priority,
            Word::DueBefore(at) => filter.due_before = Some(at),
            Word::DueAfter(at) => filter.due_after = Some(at),
            Word::Due(_) | Word::Text(_) => {
                return Err(bad(
                    word,
                    "not a filter word: use +tag, -tag, project:P, pri:H, due.before:WHEN, \
                     due.after:WHEN (and --search TEXT for words of the title)",
                ))
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    /// Thursday 2026-12-03 10:00 UTC.
    fn now() -> ZonedDateTime {
        jiff::civil::date(2026, 12, 3)
            .at(10, 0, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap()
    }

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn task(tags: &[&str], project: Option<&str>, due: Option<&str>) -> Task {
        let mut task: Task = serde_json::from_value(serde_json::json!({
            "id": "01900000-0000-7000-8000-000000000001",
            "number": 1,
            "title": "t",
            "description": null,
            "completed": false,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "is_deleted": false,
            "sync_status": "pending",
            "last_synced_at": null,
        }))
        .unwrap();
        task.tags = tags.iter().map(|t| t.to_string()).collect();
        task.project = project.map(String::from);
        task.due = due.map(ts);
        task
    }

    #[test]
    fn add_words_set_fields_and_the_rest_is_the_title() {
        let new = new_task(
            &words("Buy milk +shop project:home due:tomorrow pri:h"),
            &[],
            &now(),
        )
        .unwrap();
        assert_eq!(new.title, "Buy milk");
        assert_eq!(new.tags, BTreeSet::from(["shop".to_string()]));
        assert_eq!(new.project.as_deref(), Some("home"));
        assert_eq!(new.due, Some(ts("2026-12-04T00:00:00Z")));
        assert_eq!(new.priority, Some(Priority::H));
        let new = new_task(&words("Call re: 10:30 -x"), &words("+not a tag"), &now()).unwrap();
        assert_eq!(new.title, "Call re: 10:30 -x +not a tag");
        assert!(new.tags.is_empty());
        let new = new_task(&words("x PRIORITY:l Project:a.b"), &[], &now()).unwrap();
        assert_eq!(new.priority, Some(Priority::L));
        assert_eq!(new.project.as_deref(), Some("a.b"));
    }

    #[test]
    fn bad_field_words_are_errors_that_name_them() {
        for (text, named) in [
            ("x due:someday", "due:someday"),
            ("x pri:X", "pri:X"),
            ("x +", "+"),
            ("x project:", "project:"),
            ("x due:", "due:"),
            ("x due.before:eow", "due.before:eow"),
        ] {
            let error = new_task(&words(text), &[], &now()).unwrap_err();
            assert!(error.to_string().contains(named), "{text}: {error}");
        }
        let long = format!("x +{}", "t".repeat(65));
        assert!(new_task(&words(&long), &[], &now()).is_err());
    }

    #[test]
    fn modify_adds_and_removes_tags_and_clears_with_empty_values() {
        let patch = patch(&words("+a -b due: project: pri:"), &now()).unwrap();
        assert_eq!(patch.add_tags, BTreeSet::from(["a".to_string()]));
        assert_eq!(patch.remove_tags, BTreeSet::from(["b".to_string()]));
        assert_eq!(patch.tags, None, "never the whole set");
        assert_eq!(patch.due, Some(None));
        assert_eq!(patch.project, Some(None));
        assert_eq!(patch.priority, Some(None));
        assert_eq!(patch.title, None);
        let titled = super::patch(&words("New title pri:M"), &now()).unwrap();
        assert_eq!(titled.title.as_deref(), Some("New title"));
        assert_eq!(titled.priority, Some(Some(Priority::M)));
        // The last word about a tag wins.
        let last = super::patch(&words("+a -a"), &now()).unwrap();
        assert!(last.add_tags.is_empty() && last.remove_tags.contains("a"));
        assert_eq!(
            super::patch(&[], &now()).unwrap_err(),
            WordError::NothingToChange
        );
    }

    #[test]
    fn filters_read_their_words_and_refuse_others() {
        let f = filter(
            &words("+a -b project:home pri:H due.before:2026-12-10 due.after:today"),
            &now(),
        )
        .unwrap();
        assert_eq!(f.project.as_deref(), Some("home"));
        assert_eq!(f.priority, Some(Priority::H));
        assert_eq!(f.due_before, Some(ts("2026-12-10T00:00:00Z")));
        assert_eq!(f.due_after, Some(ts("2026-12-03T00:00:00Z")));
        assert!(filter(&words("milk"), &now()).is_err());
        assert!(filter(&words("due:today"), &now()).is_err());
        assert!(filter(&[], &now()).unwrap().is_empty());
    }

    #[test]
    fn the_filter_predicate() {
        let f = |text: &str| filter(&words(text), &now()).unwrap();
        let garden = task(
            &["a", "b"],
            Some("home.garden"),
            Some("2026-12-05T00:00:00Z"),
        );
        let homework = task(&[], Some("homework"), None);
        assert!(f("project:home").matches(&garden));
        assert!(f("project:home.garden").matches(&garden));
        assert!(
            !f("project:home").matches(&homework),
            "home is not homework"
        );
        assert!(!f("project:home.garden.x").matches(&garden));
        assert!(f("+a +b").matches(&garden) && !f("+a +c").matches(&garden));
        assert!(!f("-a").matches(&garden) && f("-c").matches(&garden));
        assert!(f("due.before:2026-12-06").matches(&garden));
        assert!(!f("due.before:2026-12-05").matches(&garden));
        assert!(f("due.after:today").matches(&garden));
        assert!(!f("due.after:today").matches(&homework), "no due date");
        assert!(!f("due.before:eom").matches(&homework));
        assert!(!f("pri:L").matches(&garden));
    }
}
