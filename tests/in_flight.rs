//! How many objects a run keeps in flight: found as it goes when `--concurrency` is not
//! given (more where the store is far, less when it throttles), fixed when it is. The
//! proxy in front of the strict R2 server holds every request (a store at a distance),
//! answers 429 when told, and counts the requests it handles at once — the count seen
//! from the store's side, not the tool's word for it.

mod common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy};
use common::*;

/// `n` small files under `src/`.
fn small_files(root: &std::path::Path, n: usize) -> std::path::PathBuf {
    let src = root.join("src");
    for i in 0..n {
        write(
            &src,
            &format!("d{:02}/f{i:05}.bin", i % 20),
            &bytes_for(i as u64, 700),
        );
    }
    src
}

fn run_through(
    work: &std::path::Path,
    proxy: &FaultProxy,
    src: &std::path::Path,
    flags: &[&str],
) -> serde_json::Value {
    let out = via_proxy(work, proxy)
        .args(["run", "--json", "--from"])
        .arg(src)
        .args(["--to", "r2://media/"])
        .args(flags)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    json_of(&out)
}

#[test]
fn far_from_r2_the_run_keeps_more_in_flight_than_it_starts_with() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.delay_every_request(Duration::from_millis(150));
    let work = tempfile::tempdir().unwrap();
    let src = small_files(work.path(), 1500);
    let doc = run_through(work.path(), &proxy, &src, &[]);
    assert_eq!(doc["counts"]["copied"], 1500, "{doc}");
    let f = &doc["in_flight"];
    assert_eq!(f["adaptive"], true, "{f}");
    assert_eq!(
        (f["start"].as_u64(), f["ceiling"].as_u64()),
        (Some(32), Some(512))
    );
    let highest = f["highest"].as_u64().unwrap();
    assert!(
        highest >= 128,
        "at 150 ms a request it stopped at {highest}: {f}"
    );
    // Seen from the store's side: well beyond the 32 it started with.
    let most = proxy.most_at_once();
    assert!(
        most > 64,
        "the store never had more than {most} requests at once"
    );
    assert!(
        most <= highest as usize + 2,
        "{most} at once above its limit {highest}"
    );
    // verify finds its count the same way: its HEADs wait on round trips too.
    let far = FaultProxy::start(r2.port);
    far.delay_every_request(Duration::from_millis(150));
    let out = via_proxy(work.path(), &far)
        .args(["verify", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let heads = far.most_at_once();
    assert!(
        heads > 64,
        "verify never had more than {heads} HEADs at once"
    );
}

#[test]
fn with_concurrency_alone_the_count_is_fixed() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.delay_every_request(Duration::from_millis(100));
    let work = tempfile::tempdir().unwrap();
    let src = small_files(work.path(), 200);
    let doc = run_through(work.path(), &proxy, &src, &["--concurrency", "6"]);
    let f = &doc["in_flight"];
    assert_eq!(f["adaptive"], false, "{f}");
    for k in ["start", "ceiling", "lowest", "highest", "last"] {
        assert_eq!(f[k], 6, "{f}");
    }
    // One listing request may overlap the first PUTs; never more objects than six.
    let most = proxy.most_at_once();
    assert!(
        (4..=7).contains(&most),
        "{most} requests at once under --concurrency 6"
    );
}

#[test]
fn throttled_it_backs_off_then_climbs_again() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.delay_every_request(Duration::from_millis(60));
    // After 20 writes go through, 40 are answered 429 SlowDown.
    proxy.inject_after("PUT", "", "", 20, 40, Fault::Reply(429, "SlowDown"));
    let work = tempfile::tempdir().unwrap();
    let src = small_files(work.path(), 1500);
    let doc = run_through(
        work.path(),
        &proxy,
        &src,
        &["--concurrency", "64", "--max-concurrency", "256"],
    );
    assert_eq!(doc["counts"]["copied"], 1500, "{doc}");
    assert!(doc["retries"].as_u64().unwrap() >= 40, "{doc}");
    let f = &doc["in_flight"];
    assert_eq!(
        (f["adaptive"].as_bool(), f["start"].as_u64()),
        (Some(true), Some(64))
    );
    let (lowest, last) = (f["lowest"].as_u64().unwrap(), f["last"].as_u64().unwrap());
    assert!(f["backed_off"].as_u64().unwrap() >= 1, "{f}");
    assert!(
        lowest < 64,
        "the 429s never lowered it below where it started: {f}"
    );
    assert!(lowest >= 8, "cut once a turn, not once a retry: {f}");
    assert!(last > lowest, "it never climbed again after the 429s: {f}");
}

#[test]
fn max_concurrency_is_a_ceiling_and_bad_values_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let src = small_files(work.path(), 3);
    for (flags, words) in [
        (
            vec!["--concurrency", "64", "--max-concurrency", "8"],
            "--concurrency 64 is above --max-concurrency 8",
        ),
        (vec!["--max-concurrency", "0"], "--max-concurrency 0"),
        (vec!["--max-concurrency", "5000"], "--max-concurrency 5000"),
    ] {
        let out = r2migrate(work.path())
            .args(["run", "--from"])
            .arg(&src)
            .args(["--to", "./rehearsal"])
            .args(&flags)
            .output()
            .unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{flags:?}: {err}");
    }
    // From the config file too; the ceiling holds with no flag.
    std::fs::write(
        work.path().join("m.toml"),
        "[transfer]\nmax_concurrency = 4\n",
    )
    .unwrap();
    let out = r2migrate(work.path())
        .args(["run", "--json", "--config", "m.toml", "--from"])
        .arg(&src)
        .args(["--to", "./rehearsal"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let f = &json_of(&out)["in_flight"];
    assert_eq!(
        (f["start"].as_u64(), f["ceiling"].as_u64()),
        (Some(4), Some(4)),
        "{f}"
    );
}
