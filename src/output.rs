//! What the commands print: human text to stdout, or with `--json` one JSON document to
//! stdout and the human text to stderr; warnings to stderr; nothing under `--quiet` but
//! errors (which `main` prints, once).

use std::io::Write;

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
}

pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}
