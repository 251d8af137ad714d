//! A plan as tables: objects and bytes by status, the largest objects, collisions with
//! both spellings, the R2 cost by storage class, and the objects listed by key. `words`
//! prints them as text, `markdown` writes them for `--report`.

use super::tally::{Item, PlanTally};
use crate::commands::human_bytes;
use crate::config::CopyConfig;
use crate::pricing::{egress, estimate, Egress};
use crate::table::Table;

impl PlanTally {
    /// What changed at the source since the manifest's records.
    pub fn delta_table(&self) -> Table {
        let d = &self.delta;
        let mut t = Table::new(&["since the manifest", "objects", "bytes"]).numbers(&[1, 2]);
        t.row(&["new", &d.new.to_string(), &human_bytes(d.new_bytes)]);
        t.row(&[
            "changed",
            &d.changed.to_string(),
            &human_bytes(d.changed_bytes),
        ]);
        t.row(&["deleted at source", &d.deleted_at_source.to_string(), ""]);
        t.row(&["unchanged", &d.unchanged.to_string(), ""]);
        if d.in_open_uploads > 0 {
            t.row(&[
                "in R2 in open uploads (resumed)",
                &d.in_open_uploads.to_string(),
                &human_bytes(d.in_open_uploads_bytes),
            ]);
        }
        t
    }

    /// Every listed object that no filter or shard excluded lands in exactly one row;
    /// the last row is their sum.
    pub fn status_table(&self) -> Table {
        let c = &self.counts;
        let l = &self.lists;
        let bytes_of = |items: &[Item]| items.iter().map(|i| i.size).sum::<u64>();
        let too_large_bytes = c.too_large_bytes;
        let mut t = Table::new(&["status", "objects", "bytes"]).numbers(&[1, 2]);
        let (mut objects, mut total) = (0, 0);
        let mut row = |label: &str, n: u64, bytes: u64| {
            objects += n;
            total += bytes;
            t.row(&[label.to_string(), n.to_string(), human_bytes(bytes)])
        };
        row(
            "new: to copy",
            c.to_copy - c.changed_to_copy,
            c.to_copy_bytes - c.changed_to_copy_bytes,
        );
        row(
            "changed at source: to copy",
            c.changed_to_copy,
            c.changed_to_copy_bytes,
        );
        row("identical in the target", c.identical, c.identical_bytes);
        row(
            "already verified (manifest)",
            c.already_verified,
            c.already_verified_bytes,
        );
        row("conflict", c.conflicts, bytes_of(&l.conflicts));
        row("too large for R2", c.too_large, too_large_bytes);
        row(
            "key or metadata R2 refuses",
            c.unstorable - c.too_large,
            bytes_of(&l.unstorable) - too_large_bytes,
        );
        row("unreadable", c.unreadable, bytes_of(&l.unreadable));
        row("collision", c.collisions, bytes_of(&l.collisions));
        row(
            "skipped (links, special files)",
            c.skipped,
            bytes_of(&l.skipped),
        );
        t.row(&["total".to_string(), objects.to_string(), human_bytes(total)]);
        t
    }

    pub fn largest_table(&self) -> Table {
        let mut t = Table::new(&["largest objects", "bytes", "size"]).numbers(&[1, 2]);
        for i in self.largest.items() {
            t.row(&[i.source_key, i.size.to_string(), human_bytes(i.size)]);
        }
        t
    }

    /// Both spellings of each collision: the key refused, and the one that kept the key.
    pub fn collisions_table(&self) -> Table {
        let mut t = Table::new(&["refused source key", "kept source key", "target key"]);
        for i in &self.lists.collisions {
            let kept = i.collides_with.clone().unwrap_or_default();
            t.row(&[
                spelled(&i.source_key),
                spelled(&kept),
                spelled(&i.target_key),
            ]);
        }
        t
    }

    /// Storage per month and the migration's operations, for both storage classes.
    pub fn cost_table(&self, cfg: &CopyConfig) -> Table {
        let e = estimate(self.counts.selected_bytes, &self.ops, infrequent(cfg));
        let mut t = Table::new(&[
            "R2 storage class",
            "storage / month",
            "Class A ops",
            "Class B ops",
            "operations, once",
            "per full read",
        ])
        .numbers(&[1, 2, 3, 4, 5]);
        let chosen = |name: &str| {
            if name == e.storage_class {
                format!("{name} (this run)")
            } else {
                name.to_string()
            }
        };
        for (name, c) in [
            ("Standard", &e.standard),
            ("Infrequent Access", &e.infrequent_access),
        ] {
            t.row(&[
                chosen(name),
                usd(c.storage_usd_per_month),
                e.class_a_operations.to_string(),
                e.class_b_operations.to_string(),
                usd(c.operations_usd),
                usd(c.retrieval_usd_per_full_read),
            ]);
        }
        t
    }

    pub fn egress(&self, usd_per_gb: Option<f64>) -> Option<Egress> {
        usd_per_gb.map(|p| egress(self.counts.selected_bytes, p))
    }

    /// The objects of one kind, by key, with why.
    pub fn items_table(items: &[Item]) -> Table {
        let mut t = Table::new(&["source key", "target key", "bytes", "why"]).numbers(&[2]);
        for i in items {
            t.row(&[
                spelled(&i.source_key),
                spelled(&i.target_key),
                i.size.to_string(),
                i.reason.clone(),
            ]);
        }
        t
    }
}

/// A key as it must be read to be told apart: quoted, with escapes for what does not print
/// and for combining marks (two NFC spellings must not look the same).
fn spelled(key: &str) -> String {
    let mut s = String::from("\"");
    for ch in key.chars() {
        let combining = ('\u{300}'..='\u{36f}').contains(&ch);
        if ch.is_control() || combining {
            s.push_str(&ch.escape_unicode().to_string());
        } else if ch == '"' || ch == '\\' {
            s.push('\\');
            s.push(ch);
        } else {
            s.push(ch);
        }
    }
    s.push('"');
    s
}

pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v < 0.0001 {
        "<$0.0001".into()
    } else if v < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// Whether the run writes in Infrequent Access.
pub fn infrequent(cfg: &CopyConfig) -> bool {
    cfg.storage_class == Some(crate::headers::StorageClass::InfrequentAccess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_nfc_spellings_do_not_look_alike() {
        assert_eq!(spelled("caf\u{e9}.jpg"), "\"caf\u{e9}.jpg\"");
        assert_eq!(spelled("cafe\u{301}.jpg"), "\"cafe\\u{301}.jpg\"");
        assert_eq!(spelled("a\tb\"c"), "\"a\\u{9}b\\\"c\"");
    }

    #[test]
    fn dollars_keep_small_amounts_visible() {
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.00012), "$0.0001");
        assert_eq!(usd(0.000001), "<$0.0001");
        assert_eq!(usd(12.345), "$12.35");
    }
}
