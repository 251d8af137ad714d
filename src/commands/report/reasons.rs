//! Failures grouped by reason: the error of each `failed`, `conflict` or `kept` record with
//! what belongs to one object taken out (its keys, quoted names, numbers), so a thousand
//! objects that failed the same way read as one line with a count.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::ObjectRecord;

/// The longest reason shown; errors are long and the start says what happened.
const MAX_REASON: usize = 160;

#[derive(Debug, Serialize, PartialEq)]
pub struct Reason {
    pub status: String,
    pub reason: String,
    pub objects: u64,
    pub bytes: u64,
    /// One object it happened to, to start from.
    pub example: String,
}

/// Most frequent first, then by reason.
pub fn group<'a>(records: impl IntoIterator<Item = &'a ObjectRecord>) -> Vec<Reason> {
    let mut groups: BTreeMap<(String, String), Reason> = BTreeMap::new();
    for r in records {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let reason = reason_of(r);
        let g = groups
            .entry((status.clone(), reason.clone()))
            .or_insert_with(|| Reason {
                status,
                reason,
                objects: 0,
                bytes: 0,
                example: r.source_key.clone(),
            });
        g.objects += 1;
        g.bytes += r.size;
    }
    let mut v: Vec<Reason> = groups.into_values().collect();
    v.sort_by(|a, b| {
        b.objects
            .cmp(&a.objects)
            .then_with(|| a.reason.cmp(&b.reason))
    });
    v
}

/// The error with the object's own details replaced: keys by `<key>`, quoted text by
/// `"…"`, numbers by `N`.
pub fn reason_of(r: &ObjectRecord) -> String {
    let Some(error) = r.error.as_deref() else {
        return "no error recorded".into();
    };
    let mut text = error.to_string();
    for key in [&r.source_key, &r.target_key] {
        if !key.is_empty() {
            text = text.replace(key.as_str(), "<key>");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // To the closing quote, over Rust-style escapes (`{key:?}` in messages).
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"…\"");
            }
            d if d.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_digit() || *n == '.')
                {
                    chars.next();
                }
                out.push('N');
            }
            other => out.push(other),
        }
    }
    let out = out.trim_start_matches("<key>: ").trim().to_string();
    match out.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Status;

    fn failed(key: &str, error: &str) -> ObjectRecord {
        ObjectRecord::new(key, key, 10, Status::Failed).with_error(error)
    }

    #[test]
    fn the_same_failure_on_many_objects_is_one_reason() {
        let records = [
            failed("a/1.jpg", "a/1.jpg: HTTP 503 SlowDown after 3 retries"),
            failed("b/2.jpg", "b/2.jpg: HTTP 503 SlowDown after 3 retries"),
            failed(
                "c.txt",
                "the target holds 14 bytes at this key, the source 12",
            ),
            failed(
                "d \"x\".txt",
                "could not read \"d \\\"x\\\".txt\": permission denied",
            ),
        ];
        let groups = group(&records);
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert!(groups
            .iter()
            .any(|g| g.reason == "could not read \"…\": permission denied"));
        assert_eq!(groups[0].reason, "HTTP N SlowDown after N retries");
        assert_eq!((groups[0].objects, groups[0].bytes), (2, 20));
        assert_eq!(groups[0].example, "a/1.jpg");
        assert!(groups
            .iter()
            .any(|g| g.reason == "the target holds N bytes at this key, the source N"));
    }

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let r = reason_of(&failed("k", &long));
        assert_eq!(r.chars().count(), MAX_REASON + 1);
        assert!(r.ends_with('…'));
    }
}
