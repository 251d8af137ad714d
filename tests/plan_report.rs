//! `plan`'s summary as an operator reads it: objects and bytes by status in a table, the
//! largest objects, collisions with both spellings, the R2 cost by storage class, the
//! source's egress at a given price, and the same as Markdown with `--report`.

mod common;

use common::*;

/// A tree with one of everything a plan sorts: new objects, a conflict with what the
/// target holds, an object larger than R2 stores, and two NFC spellings of one key.
fn awkward_tree() -> (tempfile::TempDir, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"hello");
    write(src.path(), "big/video.mp4", &bytes_for(1, 300_000));
    write(src.path(), "clash.txt", b"source bytes");
    write(src.path(), "caf\u{e9}.txt", b"composed");
    write(src.path(), "cafe\u{301}.txt", b"decomposed");
    let huge = std::fs::File::create(src.path().join("disk.img")).unwrap();
    huge.set_len(5 * 1024 * 1024 * 1024 * 1024).unwrap(); // sparse; never read
    let work = tempfile::tempdir().unwrap();
    write(
        &work.path().join("rehearsal"),
        "clash.txt",
        b"someone else's",
    );
    (src, work)
}

fn plan(work: &std::path::Path, src: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["plan"];
    args.extend_from_slice(extra);
    to_rehearsal(work, &args, src)
}

/// The row of the text table whose first cell is `label`, split into cells.
fn row<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{text}"));
    line[line.find(label).unwrap() + label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn the_summary_is_a_table_of_every_status_with_bytes() {
    let (src, work) = awkward_tree();
    let out = plan(work.path(), src.path(), &["--source-egress-price", "0.09"]);
    assert_exit(&out, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\x1b'),
        "no terminal codes in a pipe:\n{text}"
    );
    // Every selected object in exactly one row; the rows add up to "selected".
    assert_eq!(row(&text, "new: to copy"), ["3", "293.0 KiB"], "{text}");
    assert_eq!(row(&text, "conflict"), ["1", "12 B"], "{text}");
    assert_eq!(row(&text, "too large for R2"), ["1", "5.0 TiB"], "{text}");
    // The listing is sorted: the decomposed spelling comes first and keeps the key.
    assert_eq!(row(&text, "collision"), ["1", "8 B"], "{text}");
    assert_eq!(row(&text, "total"), ["6", "5.0 TiB"], "{text}");
    // The largest first, and the too-large one is not among what will be copied.
    assert_eq!(
        row(&text, "big/video.mp4"),
        ["300000", "293.0 KiB"],
        "{text}"
    );
    let largest = text.find("big/video.mp4").unwrap();
    assert!(largest < text.find(" clash.txt").unwrap(), "{text}");
    // Both spellings, told apart.
    let collision = text
        .lines()
        .find(|l| l.contains("cafe\\u{301}.txt"))
        .unwrap_or_else(|| panic!("no collision row:\n{text}"));
    let refused = collision.find("\"caf\u{e9}.txt\"").unwrap();
    assert!(
        refused < collision.find("cafe\\u{301}").unwrap(),
        "{collision}"
    );
    // Both storage classes priced; the egress line at the price given.
    assert!(row(&text, "Standard (this run)").len() == 5, "{text}");
    assert!(row(&text, "Infrequent Access").len() == 5, "{text}");
    assert!(text.contains("source egress at $0.09/GB"), "{text}");
    assert!(
        text.contains("a run would copy 3 objects (293.0 KiB) and exit 1"),
        "{text}"
    );
}

#[test]
fn the_json_document_carries_what_the_table_shows() {
    let (src, work) = awkward_tree();
    let out = plan(
        work.path(),
        src.path(),
        &["--json", "--source-egress-price", "0.09"],
    );
    assert_exit(&out, 1);
    let doc = json_of(&out);
    let c = &doc["counts"];
    assert_eq!(c["too_large"], 1, "{doc}");
    assert_eq!(c["too_large_bytes"], 5u64 << 40, "{doc}");
    assert_eq!(
        c["unstorable"], 1,
        "too large is among the unstorable: {doc}"
    );
    assert_eq!(c["identical_bytes"], 0);
    assert_eq!(doc["largest"][0]["source_key"], "big/video.mp4", "{doc}");
    assert_eq!(doc["largest"][0]["size"], 300_000);
    assert_eq!(doc["collisions"][0]["source_key"], "caf\u{e9}.txt");
    assert_eq!(doc["collisions"][0]["collides_with"], "cafe\u{301}.txt");
    let e = &doc["source_egress"];
    assert_eq!(e["usd_per_gb"], 0.09);
    let selected = c["selected_bytes"].as_f64().unwrap();
    let want = selected / 1e9 * 0.09;
    assert!(
        (e["migration_read_usd"].as_f64().unwrap() - want).abs() < 1e-12,
        "{doc}"
    );
}

#[test]
fn report_writes_the_plan_as_markdown() {
    let (src, work) = awkward_tree();
    let out = plan(
        work.path(),
        src.path(),
        &["--report", "plan.md", "--source-egress-price", "0.09"],
    );
    assert_exit(&out, 1);
    let md = std::fs::read_to_string(work.path().join("plan.md")).unwrap();
    for want in [
        "# Migration plan",
        "a run would copy 3 objects (293.0 KiB) and exit 1",
        "## Objects by status",
        "| new: to copy ",
        "## Largest objects",
        "## Key collisions",
        "## R2 cost estimate",
        "| Standard (this run) ",
        "| Infrequent Access ",
        "Source egress at $0.09/GB",
        "## Conflicts (1)",
        "## R2 cannot store (1)",
    ] {
        assert!(md.contains(want), "{want:?} missing from\n{md}");
    }
    let conflict = md.lines().find(|l| l.contains("\"clash.txt\"")).unwrap();
    assert!(
        conflict.starts_with('|') && conflict.ends_with('|'),
        "{conflict}"
    );
    // Nothing was written to the target by the plan.
    assert_eq!(
        std::fs::read(work.path().join("rehearsal/clash.txt")).unwrap(),
        b"someone else's"
    );
}

#[test]
fn plan_report_flags_are_refused_where_they_mean_nothing() {
    let (src, work) = awkward_tree();
    let negative = plan(work.path(), src.path(), &["--source-egress-price", "-1"]);
    assert_exit(&negative, 2);
    assert!(String::from_utf8_lossy(&negative.stderr).contains("--source-egress-price"));
    let run = to_rehearsal(work.path(), &["run", "--report", "x.md"], src.path());
    assert_exit(&run, 2);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("run --dry-run"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let unwritable = plan(
        work.path(),
        src.path(),
        &["--report", "/nonexistent/dir/p.md"],
    );
    assert!(!unwritable.status.success());
    assert!(
        String::from_utf8_lossy(&unwritable.stderr).contains("/nonexistent/dir/p.md"),
        "{}",
        String::from_utf8_lossy(&unwritable.stderr)
    );
    // `run --dry-run` is the plan, report included.
    let dry = to_rehearsal(
        work.path(),
        &["run", "--dry-run", "--report", "dry.md"],
        src.path(),
    );
    assert_exit(&dry, 1);
    assert!(work.path().join("dry.md").exists());
}
