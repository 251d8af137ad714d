//! A plan said in words (stdout) and as the `--json` document.

use serde_json::json;

use super::tables::{infrequent, usd};
use super::tally::PlanTally;
use crate::commands::run::Previous;
use crate::commands::{human_bytes, Output};
use crate::config::{CopyConfig, PlanReport};
use crate::error::Exit;
use crate::pricing::estimate;

impl PlanTally {
    pub fn say(&self, cfg: &CopyConfig, previous: &Previous, report: &PlanReport, out: &Output) {
        let c = &self.counts;
        out.say(&format!(
            "plan: {} → {} (nothing written)",
            cfg.source, cfg.target
        ));
        out.say("");
        out.say(&self.status_table().text(2));
        out.say(&format!("  excluded by filters or shard: {}", c.excluded));
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
                "  source storage class {class}: {} objects, {}",
                t.objects,
                human_bytes(t.bytes)
            ));
        }
        if c.multipart_at_source > 0 {
            out.say(&format!(
                "  uploaded in parts at the source: {} objects, each checked over its part sizes when copied ({} HEADs, one per part)",
                c.multipart_at_source, c.multipart_parts
            ));
        }
        for table in [self.largest_table(), self.collisions_table()] {
            if !table.is_empty() {
                out.say("");
                out.say(&table.text(2));
            }
        }
        out.say("");
        let (before, after) = self.cost_words(cfg, report);
        out.say(&format!("  {before}"));
        out.say(&self.cost_table(cfg).text(2));
        if let Some(after) = after {
            out.say(&format!("  {after}"));
        }
        self.say_delta_and_rows(cfg, previous, out);
        self.say_items(out);
        out.say("");
        out.say(&format!("  {}", self.verdict()));
    }

    /// The sentences around the cost table.
    fn cost_words(&self, cfg: &CopyConfig, report: &PlanReport) -> (String, Option<String>) {
        let cost = estimate(self.counts.selected_bytes, &self.ops, infrequent(cfg));
        let before = format!(
            "R2 cost estimate for {} (prices of {}; Infrequent Access bills {} days at least, --storage-class STANDARD_IA):",
            human_bytes(cost.stored_bytes),
            cost.prices_as_of,
            cost.infrequent_access.minimum_storage_days
        );
        let after = self.egress(report.source_egress_per_gb).map(|e| format!(
            "source egress at ${}/GB: {} to read it out once for this migration; after cutover R2 (no egress fees) saves {} on every full read",
            e.usd_per_gb,
            usd(e.migration_read_usd),
            usd(e.saved_usd_per_full_read)
        ));
        (before, after)
    }

    /// What a run would make of it, in one line.
    pub fn verdict(&self) -> String {
        let c = &self.counts;
        match self.exit() {
            Exit::Ok => format!(
                "a run would copy {} objects ({}) and exit 0",
                c.to_copy,
                human_bytes(c.to_copy_bytes)
            ),
            _ => format!(
                "a run would copy {} objects ({}) and exit 1; these need a decision first (listed above): conflicts {}, collisions {}, unreadable {}, unstorable {}",
                c.to_copy,
                human_bytes(c.to_copy_bytes),
                c.conflicts,
                c.collisions,
                c.unreadable,
                c.unstorable
            ),
        }
    }

    fn say_delta_and_rows(&self, cfg: &CopyConfig, previous: &Previous, out: &Output) {
        if previous.has_history() {
            out.say(&format!("  since the manifest {}:", cfg.manifest.display()));
            out.say(&self.delta_table().text(4));
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
        report: &PlanReport,
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
            "source_egress": self.egress(report.source_egress_per_gb),
            "largest": self.largest.items(),
            "delta": (previous.has_history()).then_some(&self.delta),
            "changed_at_source": l.changed,
            "deleted_at_source": l.deleted,
            "content_type_mismatches": l.type_mismatches,
            "sqlite": self.is_sqlite.then_some(&self.rows),
            "retries": retries,
            "exit_code": self.exit() as i32,
        })
    }
}
