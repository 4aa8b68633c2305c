//! Tables for people: columns padded to their widest cell, lines cut to the terminal's width
//! with an ellipsis, optional colour, and a count line underneath.
//!
//! Cells must already be escaped ([`crate::display::escape`]); the table only measures, cuts
//! and styles them. Colour is applied after cutting, so escape sequences never get cut.

use anstyle::Style;

use crate::display::{cut, pad, width, Terminal};

/// One cell: its text and how to colour it.
pub(crate) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            style: Style::new(),
        }
    }

    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

pub(crate) struct Table {
    headers: Vec<&'static str>,
    /// Columns aligned to the right (numbers, ages).
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these headers; a header starting with `>` is right-aligned (the `>` is
    /// not shown).
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| h.strip_prefix('>').unwrap_or(h))
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// The table as text: header, rows, then `count` (if any) on a line of its own. The last
    /// column is not padded; each line is cut to the terminal's width.
    pub fn render(&self, terminal: Terminal, count: Option<&str>) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(&cell.text));
            }
        }
        let header_style = Style::new().bold();
        let mut out = String::new();
        let header: Vec<Cell> = self
            .headers
            .iter()
            .map(|h| Cell::styled(*h, header_style))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            let mut room = terminal.width.unwrap_or(usize::MAX);
            for (i, cell) in row.iter().enumerate() {
                let last = i + 1 == columns;
                if i > 0 {
                    if room <= 2 {
                        break;
                    }
                    line.push_str("  ");
                    room -= 2;
                }
                let text = if last {
                    cell.text.clone()
                } else if self.right[i] {
                    format!("{}{}", " ".repeat(widths[i] - width(&cell.text)), cell.text)
                } else {
                    pad(&cell.text, widths[i])
                };
                let shown = cut(&text, room);
                room -= width(&shown);
                paint(&mut line, &shown, cell.style, terminal.color);
                if room == 0 {
                    break;
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if let Some(count) = count {
            let shown = cut(count, terminal.width.unwrap_or(usize::MAX));
            paint(&mut out, &shown, Style::new().dimmed(), terminal.color);
            out.push('\n');
        }
        out
    }
}

/// Appends `text` to `line`, in `style` when colour is on.
pub(crate) fn paint(line: &mut String, text: &str, style: Style, color: bool) {
    if color && style != Style::new() {
        line.push_str(&format!("{style}{text}{style:#}"));
    } else {
        line.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut table = Table::new(&["ID", ">AGE", "TITLE"]);
        table.push(vec![
            Cell::new("1"),
            Cell::new("5m"),
            Cell::new("Buy bread"),
        ]);
        table.push(vec![
            Cell::new("12"),
            Cell::new("3d"),
            Cell::new("A title that is much longer than the terminal is wide"),
        ]);
        table
    }

    #[test]
    fn columns_are_padded_and_lines_cut_with_an_ellipsis() {
        let plain = Terminal {
            width: None,
            color: false,
        };
        let text = table().render(plain, Some("2 tasks"));
        assert_eq!(
            text,
            "ID  AGE  TITLE\n\
             1    5m  Buy bread\n\
             12   3d  A title that is much longer than the terminal is wide\n\
             2 tasks\n"
        );
        let narrow = Terminal {
            width: Some(24),
            color: false,
        };
        let text = table().render(narrow, Some("2 tasks"));
        assert_eq!(
            text,
            "ID  AGE  TITLE\n\
             1    5m  Buy bread\n\
             12   3d  A title that i…\n\
             2 tasks\n"
        );
        assert!(text.lines().all(|l| width(l) <= 24));
        let tiny = Terminal {
            width: Some(5),
            color: false,
        };
        assert!(table().render(tiny, None).lines().all(|l| width(l) <= 5));
    }

    #[test]
    fn colour_only_when_asked_and_never_inside_a_cut() {
        let colour = Terminal {
            width: Some(24),
            color: true,
        };
        let text = table().render(colour, None);
        assert!(text.contains("\u{1b}[1mID"), "{text:?}");
        let plain = Terminal {
            width: Some(24),
            color: false,
        };
        assert!(!table().render(plain, None).contains('\u{1b}'));
    }
}
