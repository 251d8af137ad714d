//! Part-level resume: a run that dies in the middle of a large object (the process
//! aborts right after its third part line is recorded, as kill -9 would leave it) is
//! resumed by the next run from its last recorded part — the bytes before it are neither
//! read from the source nor uploaded again — and the object ends byte-exact, its recorded
//! SHA-256 the whole file's, `verify --deep` clean. Where the upload cannot be continued
//! (the source changed, the upload is gone, its part list is not the one recorded,
//! `--no-resume-uploads`) it is aborted and the object copied from its start, and the
//! record says why.

mod common;

use common::proxy::FaultProxy;
use common::*;
use r2migrate::checksum::{crc64nvme, crc64nvme_b64};

const MIB: usize = 1024 * 1024;
/// 8 parts of 5 MiB (the last 1 MiB + 3): the run dies after recording parts 1 to 3.
const SIZE: usize = 36 * MIB + 3;
const PARTS: &[&str] = &[
    "--multipart-threshold",
    "5MiB",
    "--part-size",
    "5MiB",
    "--concurrency",
    "1",
];

fn lines_of(manifest: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(manifest)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// `run` from a local directory into R2 at `endpoint` (the server, or a proxy before it).
fn run_local(
    work: &std::path::Path,
    r2_endpoint: &str,
    src: &std::path::Path,
    extra: &[&str],
) -> assert_cmd::Command {
    let mut cmd = r2migrate(work);
    cmd.env("R2_ENDPOINT_URL", r2_endpoint)
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["run", "--json", "--from"])
        .arg(src)
        .args(["--to", "r2://media/"])
        .args(PARTS)
        .args(extra);
    cmd
}

/// The first run, dying after its third part line.
fn dies_after_three_parts(mut cmd: assert_cmd::Command, manifest: &std::path::Path) {
    let out = cmd
        .env("R2MIGRATE_TEST_DIE_AFTER_PARTS", "3")
        .output()
        .unwrap();
    assert!(
        out.status.code().is_none() || out.status.code() == Some(134),
        "the run was to die: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let parts = lines_of(manifest, "part");
    assert_eq!(parts.len(), 3, "three part lines before dying");
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["part"], i + 1);
        assert_eq!(p["size"], 5 * MIB);
        assert_eq!(p["state"]["len"], (i + 1) * 5 * MIB);
        let line = serde_json::to_string(p).unwrap();
        assert!(line.len() < 700, "a part line stays small: {line}");
    }
    assert!(manifest_objects(manifest).is_empty(), "no outcome yet");
}

/// The resumed object: byte-exact, the whole file's SHA-256, `verify --deep` clean.
fn assert_whole(work: &std::path::Path, r2: &StrictR2, key: &str, want: &[u8]) {
    let rec = manifest_objects(&work.join("r2migrate-manifest.jsonl"))
        .into_iter()
        .rfind(|r| r["source_key"] == key)
        .unwrap();
    assert_eq!(rec["status"], "copied", "{rec}");
    assert_eq!(rec["sha256"], sha256_hex(want), "{rec}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(get_bytes(&r2.client(), "media", key));
    assert!(got == want, "{key}: the object is byte-exact");
    assert_eq!(r2.open_uploads(), 0, "no upload left open");
    let verify = r2migrate_to(work, r2)
        .args(["verify", "--deep"])
        .output()
        .unwrap();
    assert_exit(&verify, 0);
}

fn record_of(work: &std::path::Path, key: &str) -> serde_json::Value {
    manifest_objects(&work.join("r2migrate-manifest.jsonl"))
        .into_iter()
        .rfind(|r| r["source_key"] == key)
        .unwrap()
}

/// The bytes of every PUT request body the proxy saw (parts and single PUTs).
fn put_bytes_seen(proxy: &FaultProxy, since: std::time::Instant) -> usize {
    proxy
        .traffic(
            "PUT",
            since,
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(3600),
        )
        .1
}

/// A fresh strict server with bucket `media`, a work directory and its manifest's path.
fn strict_and_work() -> (StrictR2, tempfile::TempDir, std::path::PathBuf) {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    (r2, work, manifest)
}

/// `run` from `s3://legacy/` at `endpoint` into the strict server.
fn run_s3(
    work: &std::path::Path,
    r2: &StrictR2,
    endpoint: &str,
    keys: (&str, &str),
) -> assert_cmd::Command {
    let mut cmd = from_s3_at(r2migrate_to(work, r2), endpoint, keys);
    cmd.args([
        "run",
        "--json",
        "--from",
        "s3://legacy/",
        "--to",
        "r2://media/",
    ])
    .args(PARTS);
    cmd
}

/// A local file whose first run into a fresh strict server died after three part lines.
struct Crashed {
    r2: StrictR2,
    work: tempfile::TempDir,
    src: std::path::PathBuf,
    body: Vec<u8>,
    manifest: std::path::PathBuf,
}

fn crashed_local(seed: u64) -> Crashed {
    let (r2, work, manifest) = strict_and_work();
    let src = work.path().join("src");
    let body = bytes_for(seed, SIZE);
    write(&src, "video.mp4", &body);
    dies_after_three_parts(run_local(work.path(), &r2.endpoint(), &src, &[]), &manifest);
    Crashed {
        r2,
        work,
        src,
        body,
        manifest,
    }
}

#[test]
fn a_local_file_resumes_from_its_last_recorded_part_on_the_strict_server() {
    let Crashed {
        r2,
        work,
        src,
        body,
        ..
    } = crashed_local(1);
    assert_eq!(
        r2.open_uploads(),
        1,
        "the killed run's upload is still open"
    );

    let proxy = FaultProxy::start(r2.r2_port());
    let since = std::time::Instant::now();
    let out = run_local(work.path(), &proxy.endpoint(), &src, &[])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "video.mp4");
    assert_eq!(rec["resume"], "resumed from part 4 of 8", "{rec}");
    // Parts 4 to 8 only: 36 MiB + 3 less the 15 MiB already in R2.
    assert_eq!(put_bytes_seen(&proxy, since), SIZE - 15 * MIB);
    assert_eq!(
        proxy.count("POST", "uploads"),
        0,
        "no new upload was created"
    );
    assert_whole(work.path(), &r2, "video.mp4", &body);
}

#[test]
fn the_rehearsal_target_resumes_the_same_way() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let body = bytes_for(2, SIZE);
    write(&src, "video.mp4", &body);
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    let rehearse = || {
        let mut cmd = r2migrate(work.path());
        cmd.args(["run", "--json", "--from"])
            .arg(&src)
            .args(["--to", "./rehearsal"])
            .args(PARTS);
        cmd
    };
    dies_after_three_parts(rehearse(), &manifest);
    let out = rehearse().output().unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "video.mp4");
    assert_eq!(rec["resume"], "resumed from part 4 of 8", "{rec}");
    assert_eq!(rec["sha256"], sha256_hex(&body));
    let at = work.path().join("rehearsal/video.mp4");
    assert!(std::fs::read(at).unwrap() == body, "byte-exact");
    let tmp = work.path().join("rehearsal/.r2migrate/tmp");
    let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no part file left");
    let verify = r2migrate(work.path())
        .args(["verify", "--deep"])
        .output()
        .unwrap();
    assert_exit(&verify, 0);
}

/// A multipart object at the source (parts of 6 MiB, ours of 5 MiB: the layouts do not
/// line up): the resumed run reads only from the first part not kept, with a ranged GET
/// of the version listed, and still checks every byte against the source's multipart
/// ETag (the MD5 of its parts' MD5s).
#[test]
fn an_s3_multipart_object_resumes_reading_only_the_rest_and_checks_its_etag() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    rt.block_on(moto.create_bucket("legacy"));
    let source_parts = vec![
        bytes_for(3, 6 * MIB),
        bytes_for(4, 6 * MIB),
        bytes_for(5, 6 * MIB),
        bytes_for(6, 6 * MIB),
        bytes_for(7, 6 * MIB),
        bytes_for(8, 6 * MIB + 3),
    ];
    rt.block_on(put_in_parts(
        &moto.client(),
        "legacy",
        "big.bin",
        None,
        &source_parts,
    ));
    let body = source_parts.concat();
    assert_eq!(body.len(), SIZE);
    let (r2, work, manifest) = strict_and_work();
    let from_s3 = |endpoint: &str| run_s3(work.path(), &r2, endpoint, ("moto", "moto"));
    dies_after_three_parts(from_s3(&moto.endpoint()), &manifest);
    let state = &lines_of(&manifest, "part")[2]["state"];
    assert!(
        state["composite"].is_object(),
        "the multipart ETag's running state is recorded: {state}"
    );

    let source = FaultProxy::start(moto.port);
    let out = from_s3(&source.endpoint()).output().unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "big.bin");
    assert_eq!(rec["resume"], "resumed from part 4 of 8", "{rec}");
    assert_eq!(rec["source_checked"], true, "{rec}");
    let ranges = source.header_values("GET", "big.bin", "range");
    assert_eq!(
        ranges,
        vec![format!("bytes={}-{}", 15 * MIB, SIZE - 1)],
        "one ranged read from part 4 on"
    );
    let if_match = source.header_values("GET", "big.bin", "if-match");
    assert_eq!(if_match.len(), 1, "the read is of the version listed");
    assert_whole(work.path(), &r2, "big.bin", &body);
}

#[test]
fn a_gcs_object_resumes_from_its_generation() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gcs = FakeGcs::start();
    rt.block_on(gcs.create_bucket("legacy"));
    let body = bytes_for(9, SIZE);
    rt.block_on(gcs.put_bytes("legacy", "big.bin", &body));
    let (r2, work, manifest) = strict_and_work();
    let from_gcs = || {
        let mut cmd = r2migrate_to(work.path(), &r2);
        cmd.env("STORAGE_EMULATOR_HOST", gcs.host())
            .args([
                "run",
                "--json",
                "--from",
                "gs://legacy/",
                "--to",
                "r2://media/",
            ])
            .args(PARTS);
        cmd
    };
    dies_after_three_parts(from_gcs(), &manifest);
    let proxy = FaultProxy::start(gcs.port);
    let out = from_gcs()
        .env("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", proxy.port))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "big.bin");
    assert_eq!(rec["resume"], "resumed from part 4 of 8", "{rec}");
    let ranges = proxy.header_values("GET", "big.bin", "range");
    assert_eq!(
        ranges,
        vec![format!("bytes={}-{}", 15 * MIB, SIZE - 1)],
        "one ranged read from part 4 on"
    );
    let reads = proxy.requests();
    assert!(
        reads.iter().any(|r| r.contains("generation=")),
        "the read names the generation listed: {reads:?}"
    );
    assert_whole(work.path(), &r2, "big.bin", &body);
}

/// What makes a run start the object over, and the words its record gives.
#[test]
fn an_upload_that_cannot_be_continued_is_aborted_and_the_object_copied_from_its_start() {
    let cases: [(&str, &str); 4] = [
        (
            "source-changed",
            "the source object changed since the upload began",
        ),
        ("aborted", "the upload is no longer open"),
        (
            "tampered",
            "part 2 the upload lists is not the one recorded",
        ),
        ("no-resume", ""),
    ];
    for (case, why) in cases {
        let Crashed {
            r2,
            work,
            src,
            mut body,
            manifest,
        } = crashed_local(10);
        let id = lines_of(&manifest, "part")[0]["upload_id"]
            .as_str()
            .unwrap()
            .to_string();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = r2.client();
        let mut extra: Vec<&str> = vec![];
        match case {
            "source-changed" => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                body[SIZE - 1] ^= 1;
                write(&src, "video.mp4", &body);
            }
            "aborted" => rt.block_on(async {
                client
                    .abort_multipart_upload()
                    .bucket("media")
                    .key("video.mp4")
                    .upload_id(&id)
                    .send()
                    .await
                    .unwrap();
            }),
            "tampered" => rt.block_on(async {
                let other = bytes_for(11, 5 * MIB);
                client
                    .upload_part()
                    .bucket("media")
                    .key("video.mp4")
                    .upload_id(&id)
                    .part_number(2)
                    .checksum_crc64_nvme(crc64nvme_b64(crc64nvme(&other)))
                    .body(other.clone().into())
                    .send()
                    .await
                    .unwrap();
            }),
            _ => extra.push("--no-resume-uploads"),
        }
        // Uncompacted, so the part lines of the crashed run can be counted after.
        let out = run_local(work.path(), &r2.endpoint(), &src, &extra)
            .env("R2MIGRATE_TEST_KEEP_INTENTS", "1")
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let rec = record_of(work.path(), "video.mp4");
        if case == "no-resume" {
            // Today's behaviour: the upload is aborted as the run opens, no part lines.
            assert!(rec["resume"].is_null(), "{rec}");
            assert_eq!(lines_of(&manifest, "part").len(), 3, "none written since");
            assert!(String::from_utf8_lossy(&out.stderr).contains("closed 1 multipart upload"));
        } else {
            let said = rec["resume"].as_str().unwrap_or_default();
            assert!(
                said.starts_with("started over: ") && said.contains(why),
                "{case}: {rec}"
            );
        }
        assert_whole(work.path(), &r2, "video.mp4", &body);
    }
}

/// Parts land out of order (several in flight): the digests go on only through the
/// unbroken run of recorded parts from 1; a later part recorded beyond a gap is read and
/// uploaded again (the same part number replaces it). Made here by taking part 2's line
/// out, as if the run died after parts 1 and 3 had landed.
#[test]
fn a_recorded_part_beyond_a_gap_is_sent_again() {
    let Crashed {
        r2,
        work,
        src,
        body,
        manifest,
    } = crashed_local(12);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains(r#""type":"part""#) && l.contains(r#""part":2,"#)))
        .collect();
    assert_eq!(kept.len() + 1, text.lines().count());
    std::fs::write(&manifest, kept.join("\n") + "\n").unwrap();

    let proxy = FaultProxy::start(r2.r2_port());
    let since = std::time::Instant::now();
    let out = run_local(work.path(), &proxy.endpoint(), &src, &[])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "video.mp4");
    assert_eq!(rec["resume"], "resumed from part 2 of 8", "{rec}");
    assert_eq!(
        put_bytes_seen(&proxy, since),
        SIZE - 5 * MIB,
        "parts 2 to 8"
    );
    assert_whole(work.path(), &r2, "video.mp4", &body);
}

/// After the crash: `plan` shows the bytes already in R2 in the open upload, `verify
/// --against-source` does not call the object copied, and `rollback` aborts the upload
/// (nothing of it left for R2 to keep and bill).
#[test]
fn plan_counts_the_open_upload_and_rollback_aborts_it() {
    let Crashed { r2, work, src, .. } = crashed_local(13);
    let plan = r2migrate_to(work.path(), &r2)
        .args(["plan", "--json", "--from"])
        .arg(&src)
        .args(["--to", "r2://media/"])
        .args(PARTS)
        .output()
        .unwrap();
    let delta = &json_of(&plan)["delta"];
    assert_eq!(delta["in_open_uploads"], 1, "{delta}");
    assert_eq!(delta["in_open_uploads_bytes"], 15 * MIB, "{delta}");
    let text = r2migrate_to(work.path(), &r2)
        .args(["plan", "--from"])
        .arg(&src)
        .args(["--to", "r2://media/"])
        .args(PARTS)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(said.contains("in R2 in open uploads (resumed)"), "{said}");
    let verify = r2migrate_to(work.path(), &r2)
        .args(["verify", "--against-source"])
        .output()
        .unwrap();
    assert_exit(&verify, 1);
    assert_eq!(r2.open_uploads(), 1);
    let rollback = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes"])
        .output()
        .unwrap();
    assert_exit(&rollback, 0);
    assert_eq!(r2.open_uploads(), 0, "rollback aborted the upload");
}

/// A store that lists no ETags (s3s-fs; some S3-compatible ones): the object's version is
/// its size and modification time, and the resumed run's HEAD is not compared with an
/// ETag the listing never gave. Found by scripts/bench-resume.sh: the resumed run failed
/// the object as "changed at the source since it was listed".
#[test]
fn an_s3_store_that_lists_no_etags_resumes_too() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("legacy");
    let body = bytes_for(14, SIZE);
    rt.block_on(put_bytes(&s3.client(), "legacy", "big.bin", &body));
    let (r2, work, manifest) = strict_and_work();
    let from_s3 = || run_s3(work.path(), &r2, &s3.endpoint(), (ACCESS_KEY, SECRET_KEY));
    dies_after_three_parts(from_s3(), &manifest);
    let out = from_s3().output().unwrap();
    assert_exit(&out, 0);
    let rec = record_of(work.path(), "big.bin");
    assert_eq!(rec["resume"], "resumed from part 4 of 8", "{rec}");
    assert_whole(work.path(), &r2, "big.bin", &body);
}

/// The source object is replaced after the resumed run listed it, before its ranged read:
/// the read names the listed version (`If-Match`), so the new bytes are never joined to
/// the old parts. The object fails as changed at the source, the upload is aborted (its
/// story in the manifest ends with that record), and the next run copies the new bytes.
#[test]
fn a_source_replaced_during_the_resumed_read_is_never_mixed_with_the_old_parts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    rt.block_on(moto.create_bucket("legacy"));
    let old = bytes_for(15, SIZE);
    rt.block_on(put_bytes(&moto.client(), "legacy", "big.bin", &old));
    let (r2, work, manifest) = strict_and_work();
    let from_s3 = |endpoint: &str| run_s3(work.path(), &r2, endpoint, ("moto", "moto"));
    dies_after_three_parts(from_s3(&moto.endpoint()), &manifest);
    let proxy = FaultProxy::start(moto.port);
    // Long enough for moto to take the whole new object before the read goes on.
    let held = std::time::Duration::from_secs(5);
    proxy.inject("GET", "big.bin", "", 1, common::proxy::Fault::Delay(held));
    let mut resumed = from_s3(&proxy.endpoint());
    let running = std::thread::spawn(move || resumed.output().unwrap());
    // Listed and looked at by now; its ranged GET is held while the object is replaced.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let new = bytes_for(16, SIZE);
    rt.block_on(put_bytes(&moto.client(), "legacy", "big.bin", &new));
    let out = running.join().unwrap();
    let rec = record_of(work.path(), "big.bin");
    assert_exit(&out, 1);
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("changed at the source"),
        "{rec}"
    );
    assert_eq!(r2.open_uploads(), 0, "the upload was aborted");
    let out = from_s3(&moto.endpoint()).output().unwrap();
    assert_exit(&out, 0);
    assert_whole(work.path(), &r2, "big.bin", &new);
}
