//! `report` as an operator reads it after a run that went partly wrong: objects and bytes
//! by status in a table that adds up, failures grouped by reason (two conflicts of one
//! kind are one line), each failure still listed by key, and throughput over time.

mod common;

use common::*;

fn row_cells<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{text}"));
    line.trim_start()[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Five objects: two collide with other bytes already in the target, one panics in the
/// copier ("internal error"), two copy.
fn partly_failed_run() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src, "a.txt", b"alpha");
    write(&src, "b.txt", b"bravo!");
    write(&src, "clash/one.txt", b"source one");
    write(&src, "clash/two.txt", b"source two");
    write(&src, "boom.txt", b"explodes");
    write(&work.path().join("rehearsal"), "clash/one.txt", b"other");
    write(
        &work.path().join("rehearsal"),
        "clash/two.txt",
        b"other too",
    );
    let out = r2migrate(work.path())
        .env("R2MIGRATE_TEST_PANIC_KEY", "boom")
        .args(["run", "--from", "./src", "--to", "./rehearsal"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    work
}

#[test]
fn the_report_is_tables_that_add_up_with_failures_by_reason() {
    let work = partly_failed_run();
    let out = r2migrate(work.path()).args(["report"]).output().unwrap();
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "{text}");
    assert_eq!(row_cells(&text, "copied"), ["2", "11 B"], "{text}");
    assert_eq!(row_cells(&text, "conflict"), ["2", "20 B"], "{text}");
    assert_eq!(row_cells(&text, "failed"), ["1", "8 B"], "{text}");
    assert_eq!(row_cells(&text, "total"), ["5", "39 B"], "{text}");
    // Grouped: the two conflicts share one reason, with a count and an example.
    let grouped = text
        .lines()
        .skip_while(|l| !l.contains("failures by reason"))
        .collect::<Vec<_>>()
        .join("\n");
    let conflict = grouped
        .lines()
        .find(|l| l.trim_start().starts_with("conflict"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = conflict
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(&cells[..3], ["conflict", "2", "20 B"], "{conflict}");
    assert!(
        cells[3].contains('N') && !cells[3].contains("10"),
        "numbers folded: {conflict}"
    );
    assert!(grouped.contains("internal error"), "{text}");
    // Each failure is still named by key.
    for key in ["clash/one.txt", "clash/two.txt", "boom.txt"] {
        assert!(
            text.lines().any(|l| l.contains(key) && l.contains(':')),
            "{key}: {text}"
        );
    }
    assert!(text.contains("throughput of run"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with('+') && l.contains('#')),
        "{text}"
    );
}

#[test]
fn the_json_report_groups_the_same_way() {
    let work = partly_failed_run();
    let out = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    let groups = doc["failures_by_reason"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{doc}");
    assert_eq!(groups[0]["status"], "conflict");
    assert_eq!(groups[0]["objects"], 2);
    assert_eq!(groups[0]["bytes"], 20);
    assert_eq!(groups[1]["status"], "failed");
    assert_eq!(groups[1]["example"], "boom.txt");
    let t = &doc["throughput"][0];
    let copied: u64 = t["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert_eq!(copied, 11, "every copied byte is in some slice: {doc}");
    let objects: u64 = t["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert_eq!(objects, 5);
}

/// One large object under `--max-bandwidth`: the chart shows it moving at about the cap
/// through its transfer, not nothing and then a spike in the slice where it finished.
#[test]
fn the_chart_spreads_a_large_object_over_its_transfer() {
    const MIB: usize = 1024 * 1024;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src, "video.mp4", &bytes_for(40, 15 * MIB));
    let out = r2migrate(work.path())
        .args(["run", "--from"])
        .arg(&src)
        .args(["--to", "./rehearsal", "--max-bandwidth", "3MiB"])
        .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let out = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    let doc = json_of(&out);
    let t = &doc["throughput"][0];
    let width = t["slice_seconds"].as_f64().unwrap();
    let bytes: Vec<u64> = t["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(bytes.iter().sum::<u64>(), 15 * MIB as u64, "{t}");
    let moving = bytes.iter().filter(|b| **b > 0).count();
    assert!(moving * 2 >= bytes.len(), "bytes in most slices: {bytes:?}");
    // The limiter lets the first second's 3 MiB go at once: no slice above twice the cap.
    let fastest = bytes.iter().copied().max().unwrap() as f64 / width;
    assert!(
        fastest <= 2.0 * 3.0 * MIB as f64,
        "{:.1} MiB/s in one slice under a 3 MiB/s cap: {bytes:?}",
        fastest / MIB as f64
    );
}
