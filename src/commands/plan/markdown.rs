//! `plan --report FILE.md`: the plan as a Markdown document to review or attach to a
//! change request — the same tables as the summary, and every object listed by key.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::tables::usd;
use super::tally::{Item, PlanTally};
use crate::commands::human_bytes;
use crate::commands::run::Previous;
use crate::config::{CopyConfig, PlanReport};
use crate::table::Table;

impl PlanTally {
    pub fn markdown(&self, cfg: &CopyConfig, previous: &Previous, report: &PlanReport) -> String {
        let c = &self.counts;
        let mut md = String::new();
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let _ = writeln!(md, "# Migration plan\n");
        let _ = writeln!(md, "- source: `{}`", cfg.source);
        let _ = writeln!(md, "- target: `{}`", cfg.target);
        let _ = writeln!(
            md,
            "- planned {now} by r2migrate {}; nothing was written to either side",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(md, "- **{}**", self.verdict());
        section(&mut md, "Objects by status", &self.status_table());
        let _ = writeln!(md, "\nExcluded by filters or shard: {}.", c.excluded);
        section(&mut md, "Largest objects", &self.largest_table());
        section(&mut md, "Key collisions", &self.collisions_table());
        let e = crate::pricing::estimate(c.selected_bytes, &self.ops, false);
        let _ = writeln!(
            md,
            "\n## R2 cost estimate\n\nFor {} stored, at Cloudflare's prices of {}. Operations count every request the run makes (a multipart upload is create + parts + complete, then a HEAD). Infrequent Access bills {} days of storage at least.\n",
            human_bytes(c.selected_bytes),
            e.prices_as_of,
            e.infrequent_access.minimum_storage_days
        );
        let _ = writeln!(md, "{}", self.cost_table(cfg).markdown());
        if let Some(eg) = self.egress(report.source_egress_per_gb) {
            let _ = writeln!(
                md,
                "\nSource egress at ${}/GB: reading the data out once for this migration costs {}; once the application reads from R2, which charges no egress, every full read of it saves {}.",
                eg.usd_per_gb,
                usd(eg.migration_read_usd),
                usd(eg.saved_usd_per_full_read)
            );
        }
        if previous.has_history() {
            section(&mut md, "Delta since the manifest", &self.delta_table());
        }
        let l = &self.lists;
        for (title, list) in [
            ("Conflicts", &l.conflicts),
            ("Unreadable", &l.unreadable),
            ("R2 cannot store", &l.unstorable),
            ("Changed at the source", &l.changed),
            ("Deleted at the source", &l.deleted),
            ("Declared content type differs", &l.type_mismatches),
            ("Skipped", &l.skipped),
        ] {
            items(&mut md, title, list);
        }
        md
    }

    /// Writes the Markdown report; a path that cannot be written is the user's to fix.
    pub fn write_markdown(
        &self,
        path: &Path,
        cfg: &CopyConfig,
        previous: &Previous,
        report: &PlanReport,
    ) -> anyhow::Result<()> {
        std::fs::write(path, self.markdown(cfg, previous, report)).with_context(|| {
            format!(
                "writing the plan report {}: choose a path you can write (--report FILE.md)",
                path.display()
            )
        })
    }
}

fn section(md: &mut String, title: &str, table: &Table) {
    if table.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## {title}\n\n{}", table.markdown());
}

fn items(md: &mut String, title: &str, list: &[Item]) {
    if !list.is_empty() {
        section(
            md,
            &format!("{title} ({})", list.len()),
            &PlanTally::items_table(list),
        );
    }
}
