//! Tables for people: `plan`'s and `report`'s summaries, as aligned text on stdout and as
//! Markdown for `--report FILE.md`. comfy-table measures cells by their display width, so
//! keys in any script stay aligned.

use comfy_table::{presets, CellAlignment, ContentArrangement};

/// No borders, one rule under the header: reads well in a terminal and in a log.
const HEADER_RULE_ONLY: &str = "     --            ";

/// A table: a header and rows of cells, columns after the first aligned right when they
/// hold numbers.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    numeric: Vec<bool>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            numeric: vec![false; header.len()],
        }
    }

    /// Aligns these columns (by index) to the right.
    pub fn numbers(mut self, columns: &[usize]) -> Table {
        for &c in columns {
            if let Some(n) = self.numeric.get_mut(c) {
                *n = true;
            }
        }
        self
    }

    pub fn row<S: ToString>(&mut self, cells: &[S]) {
        self.rows
            .push(cells.iter().map(|c| c.to_string()).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Plain aligned text, each line indented by `indent` spaces; no terminal codes.
    pub fn text(&self, indent: usize) -> String {
        // Without the `tty` feature comfy-table never styles: no escape codes in logs.
        let t = self.build(HEADER_RULE_ONLY, |s| s.to_string());
        let pad = " ".repeat(indent);
        t.lines()
            .map(|l| format!("{pad}{}", l.trim_end()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A GitHub-flavoured Markdown table (`|` in a cell escaped).
    pub fn markdown(&self) -> String {
        let t = self.build(presets::ASCII_MARKDOWN, |s| s.replace('|', "\\|"));
        t.lines().collect::<Vec<_>>().join("\n")
    }

    fn build(&self, preset: &str, cell: impl Fn(&str) -> String) -> comfy_table::Table {
        let mut t = comfy_table::Table::new();
        t.load_preset(preset)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.header.iter().map(|h| cell(h)).collect::<Vec<_>>());
        for r in &self.rows {
            t.add_row(r.iter().map(|c| cell(c)).collect::<Vec<_>>());
        }
        for (i, numeric) in self.numeric.iter().enumerate() {
            if let (true, Some(col)) = (*numeric, t.column_mut(i)) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["status", "objects", "bytes"]).numbers(&[1, 2]);
        t.row(&["new", "11", "34.3 KiB"]);
        t.row(&["café|é", "1", "0 B"]);
        t
    }

    #[test]
    fn text_is_aligned_and_plain() {
        let text = sample().text(2);
        assert!(!text.contains('\x1b'), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let new = lines.iter().find(|l| l.contains("new")).unwrap();
        let cafe = lines.iter().find(|l| l.contains("café")).unwrap();
        // Right-aligned numbers end in the same display column.
        assert_eq!(new.chars().count(), cafe.chars().count(), "{text}");
        assert!(lines.iter().all(|l| l.starts_with("  ")), "{text}");
    }

    #[test]
    fn markdown_has_a_header_rule_and_escapes_pipes() {
        let md = sample().markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].starts_with("| status"), "{md}");
        assert!(lines[1].starts_with("|-"), "{md}");
        assert!(md.contains("café\\|é"), "{md}");
        assert_eq!(lines.len(), 4, "{md}");
    }
}
