//! A plan said in words (stdout) and as the `--json` document.

use serde_json::json;

use super::tally::PlanTally;
use crate::commands::run::Previous;
use crate::commands::{human_bytes, Output};
use crate::config::CopyConfig;
use crate::pricing::estimate;

impl PlanTally {
    pub fn say(&self, cfg: &CopyConfig, previous: &Previous, out: &Output) {
        let c = &self.counts;
        out.say(&format!(
            "plan: {} → {} (nothing written)",
            cfg.source, cfg.target
        ));
        out.say(&format!(
            "  selected {} objects ({}); {} excluded by filters or shard",
            c.selected,
            human_bytes(c.selected_bytes),
            c.excluded
        ));
        if c.selected == 0 {
            let why = if c.excluded == 0 {
                "the source lists no object under its prefix; check the URL (a prefix names a folder: s3://bucket/photos/)".to_string()
            } else {
                format!(
                    "the filters and shard leave none of the {} listed",
                    c.excluded
                )
            };
            out.warn(&format!("  warning: nothing to migrate: {why}"));
        }
        for (class, t) in &c.by_storage_class {
            out.say(&format!(
                "    storage class {class}: {} objects, {}",
                t.objects,
                human_bytes(t.bytes)
            ));
        }
        out.say(&format!(
            "  to copy {} ({}), identical {}, already verified {}",
            c.to_copy,
            human_bytes(c.to_copy_bytes),
            c.identical,
            c.already_verified
        ));
        out.say(&format!(
            "  conflicts {}, collisions {}, unreadable {}, keys R2 cannot store {}, skipped {}",
            c.conflicts, c.collisions, c.unreadable, c.unstorable, c.skipped
        ));
        let cost = estimate(c.selected_bytes, &self.ops, infrequent(cfg));
        out.say(&format!(
            "  estimated R2 cost ({}, prices of {}): storage ${:.4}/month for {}; {} Class A + {} Class B operations ${:.4} once",
            cost.storage_class,
            cost.prices_as_of,
            cost.storage_usd_per_month,
            human_bytes(cost.stored_bytes),
            cost.class_a_operations,
            cost.class_b_operations,
            cost.operations_usd
        ));
        let (s, ia) = (&cost.standard, &cost.infrequent_access);
        out.say(&format!(
            "    Standard: ${:.4}/month + ${:.4} once; Infrequent Access: ${:.4}/month + ${:.4} once, ${:.4} per full read, billed {} days at least (--storage-class STANDARD_IA)",
            s.storage_usd_per_month,
            s.operations_usd,
            ia.storage_usd_per_month,
            ia.operations_usd,
            ia.retrieval_usd_per_full_read,
            ia.minimum_storage_days
        ));
        self.say_delta_and_rows(cfg, previous, out);
        self.say_items(out);
    }

    fn say_delta_and_rows(&self, cfg: &CopyConfig, previous: &Previous, out: &Output) {
        let d = &self.delta;
        if !previous.records.is_empty() {
            out.say(&format!(
                "  since the manifest {}: new {} ({}), changed {} ({}), deleted at source {}, unchanged {}",
                cfg.manifest.display(),
                d.new,
                human_bytes(d.new_bytes),
                d.changed,
                human_bytes(d.changed_bytes),
                d.deleted_at_source,
                d.unchanged
            ));
        }
        if self.is_sqlite {
            let r = &self.rows;
            let failures = if r.failures_by_reason.is_empty() {
                "none".to_string()
            } else {
                r.failures_by_reason
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.say(&format!(
                "  rows {}: {} decode to {}; failures {failures}; the database would free {} (clear_data)",
                r.rows,
                r.decodable,
                human_bytes(r.decoded_bytes),
                human_bytes(r.db_bytes_freed)
            ));
        }
    }

    fn say_items(&self, out: &Output) {
        let l = &self.lists;
        for (label, list) in [
            ("changed at source", &l.changed),
            ("deleted at source", &l.deleted),
            ("content type", &l.type_mismatches),
            ("conflict", &l.conflicts),
            ("collision", &l.collisions),
            ("unreadable", &l.unreadable),
            ("unstorable", &l.unstorable),
            ("skipped", &l.skipped),
        ] {
            for i in list.iter() {
                out.say(&format!(
                    "  {label}: {} → {}: {}",
                    i.source_key, i.target_key, i.reason
                ));
            }
        }
    }

    pub fn document(
        &self,
        cfg: &CopyConfig,
        previous: &Previous,
        retries: u64,
    ) -> serde_json::Value {
        let l = &self.lists;
        json!({
            "command": "plan",
            "source": cfg.source.canonical(),
            "target": cfg.target.canonical(),
            "counts": self.counts,
            "conflicts": l.conflicts,
            "collisions": l.collisions,
            "unreadable": l.unreadable,
            "unstorable": l.unstorable,
            "skipped": l.skipped,
            "estimate": estimate(self.counts.selected_bytes, &self.ops, infrequent(cfg)),
            "delta": (!previous.records.is_empty()).then_some(&self.delta),
            "changed_at_source": l.changed,
            "deleted_at_source": l.deleted,
            "content_type_mismatches": l.type_mismatches,
            "sqlite": self.is_sqlite.then_some(&self.rows),
            "retries": retries,
            "exit_code": self.exit() as i32,
        })
    }
}

/// Whether the run writes in Infrequent Access.
fn infrequent(cfg: &CopyConfig) -> bool {
    cfg.storage_class == Some(crate::headers::StorageClass::InfrequentAccess)
}
