//! A fault campaign: an S3 source and R2 (the strict R2 test server, then s3s-fs), each behind a proxy that gives a random share
//! of requests a fault (server errors, throttling, resets, requests never answered,
//! bodies cut or stalled halfway, bytes flipped on the way). The run is repeated — as a
//! user would resume — until it exits 0. After every run each `copied` record must hold
//! the source's bytes in R2; at the end every object must be there, byte for byte, and
//! `verify --deep` must agree. Seeded: `R2MIGRATE_CAMPAIGN_SEED` replays one, and
//! `R2MIGRATE_CAMPAIGN_ROUNDS` runs more.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

const SRC_KEY: &str = "src-key";
const SRC_SECRET: &str = "src-secret";
const MIB: usize = 1024 * 1024;

/// Sizes around the edges that matter: empty, one byte, small, and both sides of the
/// 5 MiB multipart threshold the campaign sets.
fn objects(seed: u64) -> Vec<(String, Vec<u8>)> {
    let sizes = [0, 1, 999, 64 * 1024, 5 * MIB - 1, 5 * MIB + 1, 11 * MIB];
    (0..120)
        .map(|i| {
            // Few large ones: most of the campaign's requests are small objects.
            let size = if i % 20 == 0 {
                sizes[4 + (i / 20) % 3]
            } else {
                sizes[i % 4] + i
            };
            (
                format!("c/{i:03}-{seed}.bin"),
                bytes_for(seed ^ i as u64, size),
            )
        })
        .collect()
}

async fn campaign(seed: u64, r2: &dyn PlaysR2, keeps_refused_put: bool) -> (usize, usize, usize) {
    let source = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    source.create_bucket("legacy");
    let client = s3_client_with(&source.endpoint(), SRC_KEY, SRC_SECRET);
    let all = objects(seed);
    for (k, v) in &all {
        put_bytes(&client, "legacy", k, v).await;
    }
    let src_proxy = FaultProxy::start(source.port);
    let r2_proxy = FaultProxy::start(r2.r2_port());
    src_proxy.inject_randomly(
        8,
        vec![
            Fault::Reply(503, "SlowDown"),
            Fault::Reply(500, "InternalError"),
            Fault::Reset,
            Fault::CutReplyBody,
            Fault::StallReplyBody,
            Fault::Hang,
            Fault::FlipReplyByte,
        ],
        seed,
    );
    let mut r2_faults = vec![
        Fault::Reply(503, "SlowDown"),
        Fault::Reply(429, "TooManyRequests"),
        Fault::Reply(500, "InternalError"),
        Fault::Reset,
        Fault::Hang,
    ];
    // s3s-fs stores the body of a PUT it refused (BadDigest), where R2 stores nothing:
    // the conditional resend (If-None-Match: *) then meets that body as someone else's
    // object. Flipped bodies are the strict server's to take.
    if !keeps_refused_put {
        r2_faults.push(Fault::FlipBodyByte);
    }
    r2_proxy.inject_randomly(8, r2_faults, seed.rotate_left(17));
    let work = tempfile::tempdir().unwrap();
    let mut runs = 0;
    loop {
        runs += 1;
        let out = r2migrate(work.path())
            .env("R2_ENDPOINT_URL", r2_proxy.endpoint())
            .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_ACCESS_KEY_ID", SRC_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SRC_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", src_proxy.endpoint())
            .args(["run", "--json", "--io-timeout", "1s", "--concurrency", "16"])
            .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
            .args(["--from", "s3://legacy/", "--to", "r2://media/"])
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1 | 3)),
            "seed {seed}, run {runs}: exit {code:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        honest(work.path(), r2, &all, seed).await;
        if code == Some(0) {
            break;
        }
        // Name what kept failing, so a seed that never finishes says why.
        assert!(
            runs < 8,
            "seed {seed}: still not done after {runs} runs; the last said:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every object, byte for byte; then the tool's own deep check agrees.
    for (k, v) in &all {
        let got = get_bytes(&r2.r2_client(), "media", k).await;
        assert!(got == *v, "seed {seed}: {k} differs in R2");
    }
    let out = r2migrate_to(work.path(), r2)
        .args(["verify", "--deep", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["checked"], all.len() as u64);
    assert_eq!(r2.r2_open_uploads(), 0, "seed {seed}: an upload left open");
    (src_proxy.injected() + r2_proxy.injected(), all.len(), runs)
}

/// Every `copied` record so far holds the source's bytes in R2.
async fn honest(work: &std::path::Path, r2: &dyn PlaysR2, all: &[(String, Vec<u8>)], seed: u64) {
    let path = work.join("r2migrate-manifest.jsonl");
    if !path.exists() {
        return;
    }
    for rec in manifest_objects(&path) {
        if rec["status"] != "copied" {
            continue;
        }
        let key = rec["target_key"].as_str().unwrap();
        let want = &all.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(rec["sha256"], sha256_hex(want), "seed {seed}: {key}");
        let got = get_bytes(&r2.r2_client(), "media", key).await;
        assert!(
            got == *want,
            "seed {seed}: {key} recorded copied, R2 differs"
        );
    }
}

#[tokio::test]
async fn random_faults_on_both_sides_lose_and_corrupt_nothing() {
    let seeds: Vec<u64> = match std::env::var("R2MIGRATE_CAMPAIGN_SEED") {
        Ok(s) => vec![s.parse().expect("a number")],
        Err(_) => {
            let rounds = std::env::var("R2MIGRATE_CAMPAIGN_ROUNDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(2u64);
            (0..rounds).map(|r| 0x5eed_0000 + r).collect()
        }
    };
    let (mut faults, mut checked) = (0, 0);
    // Each seed against R2 played by the strict server (R2's rules: a write to a key
    // within a second of the last is 429) and by s3s-fs; the objects go to a fresh
    // bucket each time.
    for seed in seeds {
        for (name, r2) in r2_stand_ins() {
            let (f, n, runs) = campaign(seed, r2.as_ref(), name == "s3s-fs").await;
            eprintln!(
                "seed {seed} on {name}: {f} faults injected, {n} objects checked, {runs} runs"
            );
            faults += f;
            checked += n;
        }
    }
    eprintln!("campaign: {faults} faults injected, {checked} objects checked, 0 lost or corrupted");
    assert!(faults > 0, "the campaign injected nothing");
}
