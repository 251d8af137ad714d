//! What the commands print: human text to stdout, or with `--json` one JSON document to
//! stdout and the human text to stderr; warnings to stderr; nothing under `--quiet` but
//! errors (which `main` prints, once).

use std::io::Write;

use crate::spill::Lines;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Human text: stdout normally, stderr under `--json`, nowhere under `--quiet`.
    pub fn say(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// Warnings go to stderr unless `--quiet`.
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            crate::terminal::above_the_bar(|| eprintln!("{text}"));
        }
    }

    /// The machine-readable result, under `--json` only.
    pub fn document(&self, value: &serde_json::Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = writeln!(out);
        }
    }

    /// The result under `--json`, where each [`list_mark`] in `value` stands for an
    /// array of the lines in `lists` it names, written as they are read back: a list of
    /// a million objects is never held whole.
    pub fn document_with_lists(&self, value: &serde_json::Value, lists: &mut [Lines]) {
        if !self.json {
            return;
        }
        let text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
        let mut out = std::io::stdout().lock();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(MARK_START) {
            let after = &rest[at + MARK_START.len()..];
            let Some((n, tail)) = after
                .split_once(MARK_END)
                .and_then(|(n, tail)| Some((n.parse::<usize>().ok()?, tail)))
            else {
                break;
            };
            let _ = write!(out, "{}[", &rest[..at]);
            let mut first = true;
            if let Some(list) = lists.get_mut(n) {
                let _ = list.for_each(|line| {
                    let sep = if std::mem::take(&mut first) { "" } else { "," };
                    write!(out, "{sep}\n    ")?;
                    serde_json::to_writer(&mut out, &line)?;
                    Ok(())
                });
            }
            let _ = write!(out, "]");
            rest = tail;
        }
        let _ = writeln!(out, "{rest}");
    }
}

/// How a [`list_mark`] reads in pretty JSON text.
const MARK_START: &str = "\"\\u0000list ";
const MARK_END: &str = "\\u0000\"";

/// A placeholder in a document for the `n`th of the lists given to
/// [`Output::document_with_lists`].
pub fn list_mark(n: usize) -> serde_json::Value {
    serde_json::Value::String(format!("\u{0}list {n}\u{0}"))
}

pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}
