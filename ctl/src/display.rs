//! Text that is safe and fits: escaping stored text for a terminal, display widths, cutting
//! with an ellipsis, relative ages, and the terminal facts (width, colour) output depends on.
//!
//! Nothing taken from the store or the network reaches a terminal raw: titles may come from
//! other devices, from an older store, or from a server, so [`escape`] is applied at display
//! time whatever validation let in.

use std::borrow::Cow;
use std::io::IsTerminal;

use unicode_width::UnicodeWidthChar;

/// `text` with every character that could steer a terminal written out as an escape: C0 and
/// C1 controls and DEL (`\n`, `\t`, `\r`, else `\x1b` style), and the invisible format
/// characters that reorder or hide text (bidi overrides and isolates, zero-width characters,
/// BOM; written `\u{202e}` style). Everything else, backslashes included, stays as it is.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// Like [`escape`], but keeps newlines and tabs (for multi-line descriptions in `show`).
pub(crate) fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if is_hidden_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_hidden_format(c)
}

/// Format characters that change how the text around them shows without showing
/// themselves: bidi embeddings, overrides, isolates and marks, zero-width spaces and joiners,
/// word joiners and invisible operators, the BOM, interlinear annotation marks.
fn is_hidden_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x061C | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
    )
}

/// How many terminal columns `text` takes (East Asian wide characters take two).
pub(crate) fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// `text` cut to at most `max` columns; a cut text ends with `…` (which takes one column).
pub(crate) fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    Cow::Owned(out)
}

/// `text` padded with spaces to `columns` (never cut).
pub(crate) fn pad(text: &str, columns: usize) -> String {
    let mut out = text.to_string();
    out.extend(std::iter::repeat_n(
        ' ',
        columns.saturating_sub(width(text)),
    ));
    out
}

/// How long ago `millis_ago` milliseconds is, in one short unit: `12s`, `5m`, `3h`, `4d`,
/// `2w`, `5mo`, `1y`. A time in the future (a clock ahead of ours) shows as `0s`.
pub(crate) fn age(millis_ago: i64) -> String {
    let seconds = millis_ago.max(0) / 1000;
    let (value, unit) = match seconds {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "m"),
        s if s < 86_400 => (s / 3600, "h"),
        s if s < 14 * 86_400 => (s / 86_400, "d"),
        s if s < 61 * 86_400 => (s / (7 * 86_400), "w"),
        s if s < 365 * 86_400 => (s / (30 * 86_400), "mo"),
        s => (s / (365 * 86_400), "y"),
    };
    format!("{value}{unit}")
}

/// The same age in words, for `show`: `5 minutes ago`.
pub(crate) fn age_in_words(millis_ago: i64) -> String {
    if millis_ago < 1000 {
        return "just now".into();
    }
    let short = age(millis_ago);
    let split = short
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(short.len());
    let (value, unit) = short.split_at(split);
    let unit = match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        _ => "year",
    };
    let plural = if value == "1" { "" } else { "s" };
    format!("{value} {unit}{plural} ago")
}

/// What output may assume about stdout: how wide it is and whether it takes colour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terminal {
    /// Columns a line may take; `None`: no limit (not a terminal and no `COLUMNS`).
    pub width: Option<usize>,
    pub color: bool,
}

impl Terminal {
    /// Stdout's facts: on a terminal its width and colour unless `NO_COLOR` is set (to
    /// anything but the empty string) or `TERM=dumb`; elsewhere no colour, and the width of
    /// `COLUMNS` if that is set, else no limit.
    pub fn detect() -> Terminal {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0);
        let width = if tty {
            terminal_size::terminal_size()
                .map(|(w, _)| usize::from(w.0))
                .filter(|&w| w > 0)
                .or(columns)
                .or(Some(80))
        } else {
            columns
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Terminal {
            width,
            color: tty && !no_color && !dumb,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_written_out() {
        let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2Jdone";
        assert_eq!(escape(evil), "evil\\x1b]0;pwned\\x07\\x1b[2Jdone");
        assert_eq!(escape("a\nb\tc\rd\u{7f}\u{9b}"), "a\\nb\\tc\\rd\\x7f\\x9b");
        assert_eq!(escape("rtl\u{202e}txt\u{200b}"), "rtl\\u{202e}txt\\u{200b}");
        assert!(matches!(
            escape("plain — ünïcode 日本 \\x1b"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_keeping_lines("one\n\ttwo\u{1b}[2J"),
            "one\n\ttwo\\x1b[2J"
        );
    }

    #[test]
    fn cutting_counts_columns_and_ends_with_an_ellipsis() {
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("hello world", 5), "hell…");
        assert_eq!(cut("日本語テキスト", 6), "日本…");
        assert_eq!(width(&cut("日本語テキスト", 6)), 5);
        assert_eq!(cut("abc", 1), "…");
        assert_eq!(cut("abc", 0), "");
        assert_eq!(pad("日本", 6), "日本  ");
    }

    #[test]
    fn ages_take_one_short_unit() {
        let min = 60_000;
        assert_eq!(age(-5000), "0s");
        assert_eq!(age(59_999), "59s");
        assert_eq!(age(5 * min), "5m");
        assert_eq!(age(3 * 60 * min), "3h");
        assert_eq!(age(4 * 1440 * min), "4d");
        assert_eq!(age(20 * 1440 * min), "2w");
        assert_eq!(age(100 * 1440 * min), "3mo");
        assert_eq!(age(800 * 1440 * min), "2y");
        assert_eq!(age_in_words(min), "1 minute ago");
        assert_eq!(age_in_words(10), "just now");
        assert_eq!(age_in_words(4 * 1440 * min), "4 days ago");
    }
}
