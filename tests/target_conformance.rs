//! The Target conformance suite: one suite, every target — the rehearsal directory, R2
//! played by s3s-fs (integrity) and by moto (listings with ETags). A difference between
//! targets is a bug the rehearsal would hide from the user, so each check is the same for
//! all; where a loopback server falls short of R2 the gap is named, never silently
//! skipped for the directory.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use r2migrate::checksum::{b64, crc64nvme_b64, sha256, Hasher};
use r2migrate::manifest::{Intent, ObjectRecord, Status};
use r2migrate::object::{Body, MultipartChecksum, ObjectMeta, Part};
use r2migrate::target::Target;
use r2migrate::transfer::holds_what_we_wrote;
use r2migrate::transfer::intent::written_under;

use common::*;

const MIB: usize = 1024 * 1024;
/// R2's multipart scheme: CRC64NVME, FULL_OBJECT.
const CRC: MultipartChecksum = MultipartChecksum::Crc64nvme;

/// Where a loopback server differs from R2 (DESIGN.md "Testing against real servers").
struct Gaps {
    /// s3s-fs stores the body of a PUT it refused with BadDigest; R2 stores nothing.
    keeps_refused_put: bool,
    /// moto checks no checksum at all.
    checks_no_checksum: bool,
    /// s3s-fs lists no ETags (objects or parts); R2 and the directory do.
    lists_no_etag: bool,
    /// moto answers CompleteMultipartUpload with a `CompleteMultipartUploadResponse` root
    /// (S3 and R2 say `…Result`), which the Rust SDK refuses: its multipart steps are
    /// covered on s3s-fs.
    cannot_complete_multipart: bool,
    /// s3s-fs does not check the full-object CRC64NVME sent with Complete (R2 does).
    ignores_full_object_checksum: bool,
    /// s3s-fs and moto complete parts of unequal sizes; R2 refuses them at Complete
    /// (400 InvalidPart, error 10048).
    accepts_unequal_parts: bool,
    /// The code a refusal of unequal parts carries: R2's InvalidPart; miniflare answers
    /// 404 NoSuchUpload (and leaves no object either).
    unequal_parts_code: &'static str,
    /// R2 conditions a copy's destination in `cf-copy-destination-if-*` headers, R2's own
    /// extension: the S3 stand-ins copy regardless.
    ignores_copy_conditions: bool,
    /// miniflare answers ListParts 501: an upload a crash left cannot be continued there.
    cannot_list_parts: bool,
}

const DIRECTORY: Gaps = Gaps {
    keeps_refused_put: false,
    checks_no_checksum: false,
    lists_no_etag: false,
    cannot_complete_multipart: false,
    ignores_full_object_checksum: false,
    accepts_unequal_parts: false,
    unequal_parts_code: "InvalidPart",
    ignores_copy_conditions: false,
    cannot_list_parts: false,
};

fn pacer() -> Arc<r2migrate::pacer::Pacer> {
    Arc::new(r2migrate::pacer::Pacer::new(1, None, None))
}

/// The R2 target on a server playing R2, under a prefix, with the tests' keys.
fn r2_target(endpoint: &str) -> r2migrate::target::r2::R2Target {
    r2migrate::target::r2::R2Target::new(
        endpoint,
        ACCESS_KEY.into(),
        SECRET_KEY.into(),
        "media",
        "under/prefix/",
        pacer(),
    )
}

fn meta() -> ObjectMeta {
    let mut m = ObjectMeta {
        content_type: Some("image/png".into()),
        cache_control: Some("public, max-age=3600".into()),
        content_disposition: Some("inline".into()),
        content_language: Some("en".into()),
        ..Default::default()
    };
    m.custom.insert("origin".into(), "conformance".into());
    m
}

async fn read_all(target: &dyn Target, key: &str) -> Vec<u8> {
    let mut body = target.get(key).await.expect("get");
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("read"));
    }
    assert!(
        body.next().await.is_none(),
        "{key}: a finished body polled again must end again"
    );
    out
}

/// The record a copy would write for these bytes, as `transfer` builds it: a single
/// PUT's SHA-256, or a multipart upload's full-object CRC64NVME.
fn record(key: &str, body: &[u8], checksum: Checksum, etag: Option<String>) -> ObjectRecord {
    let mut r = ObjectRecord::new(key, key, body.len() as u64, Status::Copied);
    r.sha256 = Some(hex::encode(sha256(body)));
    match checksum {
        Checksum::Sha256(c) => r.target_checksum = Some(c),
        Checksum::Crc64nvme(c) => r.target_crc64nvme = Some(c),
    }
    r.target_etag = etag;
    r
}

enum Checksum {
    Sha256(String),
    Crc64nvme(String),
}

async fn check(target: &dyn Target, gaps: &Gaps, open_uploads: impl Fn() -> usize) {
    let p = target.prefix().to_string();
    target.check_access().await.expect("check_access");

    // HEAD of a missing key is "absent", not an error.
    assert!(target
        .head(&format!("{p}missing.bin"))
        .await
        .expect("head")
        .is_none());

    // A wrong SHA-256 is refused, with R2's class: BadDigest, worth resending.
    let body = Bytes::from(bytes_for(1, 3000));
    let wrong = target
        .put(
            &format!("{p}bad.bin"),
            Body {
                bytes: body.clone(),
                sha256: [7u8; 32],
            },
            &meta(),
        )
        .await;
    if gaps.checks_no_checksum {
        assert!(wrong.is_ok(), "this server checks nothing (a known gap)");
        target.delete(&format!("{p}bad.bin")).await.unwrap();
    } else {
        let err = wrong.expect_err("a body that does not match its SHA-256 must be refused");
        assert!(
            err.is_retryable(),
            "BadDigest is retryable on every target: {err}"
        );
        assert!(err.to_string().contains("BadDigest"), "{err}");
        if !gaps.keeps_refused_put {
            assert!(
                target.head(&format!("{p}bad.bin")).await.unwrap().is_none(),
                "nothing stored"
            );
        }
    }

    // A single PUT: HEAD reports what verify accepts; metadata is kept.
    let key = format!("{p}single.png");
    let put = target
        .put(&key, Body::of(body.clone()), &meta())
        .await
        .expect("put");
    let head = target.head(&key).await.unwrap().expect("head after put");
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.meta, meta(), "metadata as sent");
    assert!(holds_what_we_wrote(
        &head,
        &record(
            &key,
            &body,
            Checksum::Sha256(b64(&sha256(&body))),
            put.etag.clone()
        )
    ));
    assert_eq!(read_all(target, &key).await, body);
    conditional_puts(target, &key, &body, put.etag.as_deref()).await;

    if !gaps.cannot_complete_multipart {
        multipart(target, gaps, &p).await;
        multipart_rules(target, gaps, &p).await;
        resumed_upload(target, gaps, &p).await;
    }

    // Abort leaves nothing: no object, no upload in progress.
    let key = format!("{p}multi/aborted.bin");
    let up = target.start_multipart(&key, &meta(), CRC).await.unwrap();
    let part = Bytes::from(bytes_for(4, 5 * MIB));
    up.upload_part(1, Part::of(part.clone(), CRC))
        .await
        .unwrap();
    up.abort().await.expect("abort");
    assert!(
        target.head(&key).await.unwrap().is_none(),
        "aborted: no object"
    );
    assert_eq!(open_uploads(), 0, "aborted: no upload left open");

    // An upload a killed process forgot: its recorded id is enough to abort it, and an
    // id that is no longer open (or never was) is no error.
    let key = format!("{p}multi/forgotten.bin");
    let up = target.start_multipart(&key, &meta(), CRC).await.unwrap();
    up.upload_part(1, Part::of(part.clone(), CRC))
        .await
        .unwrap();
    let id = up.id();
    assert!(!id.is_empty(), "an upload has an id to record");
    drop(up);
    assert!(open_uploads() > 0, "the forgotten upload is open");
    target.abort_upload(&key, &id).await.expect("abort by id");
    assert_eq!(open_uploads(), 0, "aborted by id: no upload left open");
    target
        .abort_upload(&key, &id)
        .await
        .expect("again: already gone");
    assert!(target.head(&key).await.unwrap().is_none());

    // Copy keeps bytes and metadata (backups before overwrite, restores in rollback).
    let from = format!("{p}single.png");
    let to = format!("{p}_backup/single.png");
    target.copy(&from, &to).await.expect("copy");
    let a = target.head(&from).await.unwrap().unwrap();
    let b = target.head(&to).await.unwrap().unwrap();
    assert_eq!(
        (b.size, &b.meta),
        (a.size, &a.meta),
        "a copy keeps size and metadata"
    );
    assert_eq!(read_all(target, &to).await, body);
    conditional_copies(target, gaps, &from, &to).await;

    // The listing reports what resume relies on: every key, its size, and an ETag that
    // is the one HEAD reports while the object is untouched.
    let mut listed = Vec::new();
    let mut listing = target.list();
    while let Some(obj) = listing.next().await {
        listed.push(obj.expect("listing"));
    }
    assert!(
        listing.next().await.is_none(),
        "a finished listing polled again must end again"
    );
    drop(listing);
    let mut keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    keys.sort();
    let mut want = vec![format!("{p}_backup/single.png"), format!("{p}single.png")];
    if !gaps.cannot_complete_multipart {
        want.push(format!("{p}multi/part.bin"));
    }
    if gaps.keeps_refused_put {
        want.push(format!("{p}bad.bin"));
    }
    want.sort();
    assert_eq!(keys, want.iter().map(String::as_str).collect::<Vec<_>>());
    for obj in &listed {
        let head = target.head(&obj.key).await.unwrap().unwrap();
        assert_eq!(obj.size, head.size, "{}: listed size", obj.key);
        if gaps.lists_no_etag {
            assert!(
                obj.etag.is_none(),
                "{}: this server was known to list no ETag",
                obj.key
            );
        } else {
            assert_eq!(obj.etag, head.etag, "{}: listed ETag is HEAD's", obj.key);
        }
    }

    // Delete is idempotent.
    for obj in &listed {
        target.delete(&obj.key).await.expect("delete");
        target.delete(&obj.key).await.expect("delete again");
        assert!(target.head(&obj.key).await.unwrap().is_none());
    }
}

/// R2's conditional writes: a PUT expecting the key absent, or another ETag, is refused
/// as a changed key (412) and leaves the object as it was; one expecting its ETag lands.
/// Every stand-in honours them on PutObject (miniflare's Complete ignores If-None-Match).
async fn conditional_puts(target: &dyn Target, key: &str, body: &Bytes, etag: Option<&str>) {
    use r2migrate::error::StoreError;
    use r2migrate::object::Expect;
    let other = Bytes::from_static(b"someone else's bytes");
    for expect in [Expect::Absent, Expect::Etag("0123456789abcdef".into())] {
        let put = target
            .put_if(key, Body::of(other.clone()), &meta(), &expect)
            .await;
        assert!(
            matches!(put, Err(StoreError::Changed(_))),
            "{expect:?} on an existing key must be refused as changed: {put:?}"
        );
        assert_eq!(
            read_all(target, key).await,
            *body,
            "{expect:?}: left as it was"
        );
    }
    let etag = etag.expect("a PUT states its ETag");
    // R2 takes one write per second to a key: the strict server holds to it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    target
        .put_if(
            key,
            Body::of(body.clone()),
            &meta(),
            &Expect::Etag(etag.into()),
        )
        .await
        .expect("a PUT expecting the ETag there lands");
}

/// R2's conditional copies (rollback's restore, the undo of a bad write): a copy over a
/// key expecting it absent, or another ETag, is refused as changed and leaves it; one
/// expecting the ETag there lands.
async fn conditional_copies(target: &dyn Target, gaps: &Gaps, from: &str, to: &str) {
    use r2migrate::error::StoreError;
    use r2migrate::object::Expect;
    let there = target.head(to).await.unwrap().expect("the copy is there");
    for expect in [Expect::Absent, Expect::Etag("0123456789abcdef".into())] {
        match target.copy_if(from, to, &expect).await {
            Err(StoreError::Changed(_)) => assert!(
                !gaps.ignores_copy_conditions,
                "{expect:?}: this server was known to copy regardless; update its gaps"
            ),
            Ok(()) => assert!(
                gaps.ignores_copy_conditions,
                "{expect:?} on an existing key must be refused as changed"
            ),
            Err(e) => panic!("{expect:?}: {e}"),
        }
        let now = target.head(to).await.unwrap().unwrap();
        assert_eq!(now.size, there.size, "{expect:?}: left as it was");
        if gaps.ignores_copy_conditions {
            // R2 takes one write per second to a key.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let etag = target
        .head(to)
        .await
        .unwrap()
        .unwrap()
        .etag
        .expect("an ETag");
    target
        .copy_if(from, to, &Expect::Etag(etag))
        .await
        .expect("a copy expecting the ETag there lands");
}

/// Part-level resume: an upload a killed run left (parts 1 and 2 landed) is listed with
/// the parts' sizes, the ETags UploadPart answered and their CRC64NVME; going on with it
/// sends part 3 only, and Complete (with the whole object's CRC64NVME) assembles all
/// three. An id that is not open lists as gone.
async fn resumed_upload(target: &dyn Target, gaps: &Gaps, p: &str) {
    use r2migrate::object::Expect;
    let key = format!("{p}multi/resumed.bin");
    let whole = bytes_for(7, 10 * MIB + 5);
    let up = target.start_multipart(&key, &meta(), CRC).await.unwrap();
    let mut etags = Vec::new();
    for (n, part) in [&whole[..5 * MIB], &whole[5 * MIB..10 * MIB]]
        .into_iter()
        .enumerate()
    {
        let part = Part::of(Bytes::copy_from_slice(part), CRC);
        etags.push(up.upload_part(n as i32 + 1, part).await.unwrap());
    }
    let id = up.id();
    drop(up); // the run is killed
    let listed = match target.list_parts(&key, &id).await {
        Ok(listed) => listed.expect("the upload is open"),
        Err(e) => {
            assert!(gaps.cannot_list_parts, "ListParts: {e}");
            target.abort_upload(&key, &id).await.unwrap();
            return;
        }
    };
    assert!(
        !gaps.cannot_list_parts,
        "this server was known to refuse ListParts"
    );
    let sizes: Vec<(i32, u64)> = listed.iter().map(|l| (l.number, l.size)).collect();
    assert_eq!(sizes, vec![(1, 5 * MIB as u64), (2, 5 * MIB as u64)]);
    for (l, etag) in listed.iter().zip(&etags) {
        if gaps.lists_no_etag {
            assert!(l.etag.is_none(), "s3s-fs was known to list no part ETags");
        } else {
            assert_eq!(
                &l.etag, etag,
                "part {}: the ETag UploadPart answered",
                l.number
            );
        }
        if let Some(crc) = &l.crc64nvme {
            let n = l.number as usize;
            let bytes = &whole[(n - 1) * 5 * MIB..n * 5 * MIB];
            assert_eq!(crc, &crc64nvme_b64(r2migrate::checksum::crc64nvme(bytes)));
        }
    }
    let up = target
        .resume_multipart(&key, &id, &Expect::Absent, &listed)
        .await
        .expect("go on with the upload");
    let last = Bytes::copy_from_slice(&whole[10 * MIB..]);
    up.upload_part(3, Part::of(last, CRC)).await.unwrap();
    up.complete(&crc64_of(&whole)).await.expect("complete");
    assert!(read_all(target, &key).await == whole, "all three parts");
    let gone = target.list_parts(&key, &id).await.unwrap();
    // Gone; s3s-fs lists it with no parts, which a resume reads as gone too (its
    // recorded parts are not listed).
    assert!(
        gone.as_ref().is_none_or(Vec::is_empty),
        "a completed upload lists as gone: {gone:?}"
    );
    target.delete(&key).await.unwrap();
}

/// Multipart: two equal parts and a short last one, sent at once in reverse order; HEAD reports what verify accepts and
/// what resume recognises as ours; a wrong part checksum is refused like a wrong PUT.
async fn multipart(target: &dyn Target, gaps: &Gaps, p: &str) {
    let key = format!("{p}multi/part.bin");
    let whole = bytes_for(2, 10 * MIB + 1);
    let parts: Vec<&[u8]> = vec![
        &whole[..5 * MIB],
        &whole[5 * MIB..10 * MIB],
        &whole[10 * MIB..],
    ];
    let up = target
        .start_multipart(&key, &meta(), CRC)
        .await
        .expect("start multipart");
    // All at once, last first: a target takes parts in any order (the uploader sends
    // several of one object at a time) and assembles them by number.
    let sends =
        parts.iter().enumerate().rev().map(|(i, part)| {
            up.upload_part(i as i32 + 1, Part::of(Bytes::copy_from_slice(part), CRC))
        });
    for sent in futures::future::join_all(sends).await {
        sent.expect("upload part");
    }
    let crc = crc64_of(&whole);
    let done = up.complete(&crc).await.expect("complete");
    if let Some(stated) = &done.checksum_crc64nvme {
        assert_eq!(
            stated, &crc,
            "the CRC64NVME Complete states is the one sent"
        );
    }
    let head = target
        .head(&key)
        .await
        .unwrap()
        .expect("head after complete");
    assert_eq!(head.size, whole.len() as u64);
    assert_eq!(head.meta.content_type, meta().content_type);
    let rec = record(
        &key,
        &whole,
        Checksum::Crc64nvme(crc.clone()),
        done.etag.clone(),
    );
    assert!(
        holds_what_we_wrote(&head, &rec),
        "verify must accept a completed multipart object: {head:?}"
    );
    let mut intent = Intent::new(&key, &key, None);
    intent.size = Some(whole.len() as u64);
    intent.sha256 = rec.sha256.clone();
    intent.crc64nvme = Some(crc.clone());
    assert!(
        written_under(&head, &[intent]),
        "resume must know it as ours"
    );
    assert!(read_all(target, &key).await == whole, "multipart bytes");

    // A wrong full-object CRC64NVME is refused on Complete, and leaves no object.
    let bad_key = format!("{p}multi/bad-crc.bin");
    let up = target
        .start_multipart(&bad_key, &meta(), CRC)
        .await
        .unwrap();
    let sends = parts
        .iter()
        .enumerate()
        .map(|(i, part)| up.upload_part(i as i32 + 1, Part::of(Bytes::copy_from_slice(part), CRC)));
    for sent in futures::future::join_all(sends).await {
        sent.expect("upload part");
    }
    match up.complete(&crc64_of(b"other bytes")).await {
        Err(e) => {
            assert!(e.to_string().contains("BadDigest"), "{e}");
            assert!(
                target.head(&bad_key).await.unwrap().is_none(),
                "refused: no object"
            );
        }
        Ok(_) => {
            assert!(
                gaps.ignores_full_object_checksum,
                "a wrong CRC64NVME must be refused"
            );
            target.delete(&bad_key).await.unwrap();
        }
    }

    // A wrong part checksum is refused the same way (where the server checks parts).
    let up = target
        .start_multipart(&format!("{p}multi/bad.bin"), &meta(), CRC)
        .await
        .unwrap();
    let part = Bytes::from(bytes_for(3, 5 * MIB));
    match up
        .upload_part(
            1,
            Part {
                bytes: part,
                crc64nvme: 9,
                md5: None,
            },
        )
        .await
    {
        Err(e) => assert!(
            e.is_retryable() && e.to_string().contains("BadDigest"),
            "{e}"
        ),
        Ok(_) => assert!(
            gaps.keeps_refused_put || gaps.checks_no_checksum,
            "only s3s-fs and miniflare ignore part checksums (known gaps)"
        ),
    }
    up.abort().await.unwrap();
}

/// R2's equal-part rule, and the Content-MD5 scheme (`--multipart-checksum md5`): parts
/// checked by their MD5, the object's ETag the MD5 of the parts' MD5s.
async fn multipart_rules(target: &dyn Target, gaps: &Gaps, p: &str) {
    // Unequal parts are refused at Complete, and leave no object.
    let key = format!("{p}multi/unequal.bin");
    let up = target.start_multipart(&key, &meta(), CRC).await.unwrap();
    let (a, b) = (bytes_for(5, 5 * MIB), bytes_for(6, 6 * MIB));
    up.upload_part(1, Part::of(Bytes::from(a.clone()), CRC))
        .await
        .unwrap();
    up.upload_part(2, Part::of(Bytes::from(b.clone()), CRC))
        .await
        .unwrap();
    let whole = [a, b].concat();
    match up.complete(&crc64_of(&whole)).await {
        Err(e) => {
            assert!(e.to_string().contains(gaps.unequal_parts_code), "{e}");
            assert!(
                target.head(&key).await.unwrap().is_none(),
                "refused: no object"
            );
        }
        Ok(_) => {
            assert!(
                gaps.accepts_unequal_parts,
                "unequal parts must be refused, as R2 does"
            );
            target.delete(&key).await.unwrap();
        }
    }

    // Content-MD5 per part: the object lands whole, with the multipart ETag.
    const MD5: MultipartChecksum = MultipartChecksum::Md5;
    let key = format!("{p}multi/md5.bin");
    let whole = bytes_for(7, 10 * MIB + 9);
    let parts: Vec<&[u8]> = whole.chunks(5 * MIB).collect();
    let up = target.start_multipart(&key, &meta(), MD5).await.unwrap();
    let sends = parts
        .iter()
        .enumerate()
        .map(|(i, part)| up.upload_part(i as i32 + 1, Part::of(Bytes::copy_from_slice(part), MD5)));
    for sent in futures::future::join_all(sends).await {
        sent.expect("upload part with Content-MD5");
    }
    let done = up.complete(&crc64_of(&whole)).await.expect("complete");
    let md5s: Vec<[u8; 16]> = parts.iter().map(|p| r2migrate::checksum::md5(p)).collect();
    assert_eq!(
        done.etag.as_deref(),
        Some(r2migrate::checksum::multipart_etag(&md5s).as_str()),
        "the MD5 of the parts' MD5s"
    );
    assert!(read_all(target, &key).await == whole, "md5-scheme bytes");
    target.delete(&key).await.unwrap();

    // A part whose Content-MD5 is wrong is refused as a corrupted body.
    let up = target
        .start_multipart(&format!("{p}multi/bad-md5.bin"), &meta(), MD5)
        .await
        .unwrap();
    let bytes = Bytes::from(bytes_for(8, 5 * MIB));
    let part = Part {
        md5: Some([3u8; 16]),
        ..Part::of(bytes, MD5)
    };
    match up.upload_part(1, part).await {
        Err(e) => assert!(
            e.is_retryable() && e.to_string().contains("BadDigest"),
            "{e}"
        ),
        Ok(_) => assert!(
            gaps.keeps_refused_put || gaps.checks_no_checksum,
            "only s3s-fs and moto ignore a part's Content-MD5 (known gaps)"
        ),
    }
    up.abort().await.unwrap();
}

#[tokio::test]
async fn the_rehearsal_directory_passes_the_target_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rehearsal");
    let target = r2migrate::target::dir::DirTarget::new(root.clone());
    let tmp = root.join(".r2migrate/tmp");
    check(&target, &DIRECTORY, || {
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0)
    })
    .await;
}

#[tokio::test]
async fn r2_on_s3s_fs_passes_the_target_suite() {
    let server = S3Server::start();
    server.create_bucket("media");
    let target = r2_target(&server.endpoint());
    let gaps = Gaps {
        keeps_refused_put: true,
        checks_no_checksum: false,
        lists_no_etag: true,
        cannot_complete_multipart: false,
        ignores_full_object_checksum: true,
        accepts_unequal_parts: true,
        unequal_parts_code: "InvalidPart",
        ignores_copy_conditions: true,
        cannot_list_parts: false,
    };
    check(&target, &gaps, || server.open_uploads()).await;
}

/// The strict R2 test server knows R2's rules: no gap but what no local server can know.
#[tokio::test]
async fn r2_on_the_strict_server_passes_the_target_suite() {
    let server = StrictR2::start();
    server.create_bucket("media");
    let target = r2_target(&server.endpoint());
    let gaps = Gaps {
        keeps_refused_put: false,
        checks_no_checksum: false,
        lists_no_etag: false,
        cannot_complete_multipart: false,
        ignores_full_object_checksum: false,
        accepts_unequal_parts: false,
        unequal_parts_code: "InvalidPart",
        ignores_copy_conditions: false,
        cannot_list_parts: false,
    };
    check(&target, &gaps, || server.open_uploads()).await;
}

#[tokio::test]
async fn r2_on_moto_passes_the_target_suite() {
    let moto = Moto::start();
    moto.create_bucket("media").await;
    let target = r2migrate::target::r2::R2Target::new(
        &moto.endpoint(),
        "moto".into(),
        "moto".into(),
        "media",
        "p/",
        pacer(),
    );
    let client = moto.client();
    let gaps = Gaps {
        keeps_refused_put: false,
        checks_no_checksum: true,
        lists_no_etag: false,
        cannot_complete_multipart: true,
        ignores_full_object_checksum: true,
        accepts_unequal_parts: true,
        unequal_parts_code: "InvalidPart",
        ignores_copy_conditions: true,
        cannot_list_parts: false,
    };
    let open = || {
        let client = client.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let out = client
                        .list_multipart_uploads()
                        .bucket("media")
                        .send()
                        .await
                        .unwrap();
                    out.uploads().len()
                })
        })
        .join()
        .unwrap()
    };
    check(&target, &gaps, open).await;
}

/// Cloudflare's own local R2 (miniflare, wrangler 4.164.0). Where it falls short of R2's
/// documents: it checks Content-MD5 but neither checks nor returns any `x-amz-checksum-*`
/// (so r2migrate proves each write by a HEAD there), and calls unequal parts 404
/// NoSuchUpload (R2: 400 InvalidPart, 10048). Beyond this suite: ListMultipartUploads and
/// ListParts answer 501 (its open uploads are counted in its SQLite file), STANDARD_IA is
/// 501, keys are not NFC-normalised, a key over 1,024 bytes is a 500, Complete ignores
/// If-None-Match, and an aws-chunked body is stored with its framing (the matrix reads
/// every object back from it with boto3: r2migrate sends plain bodies).
#[tokio::test]
async fn r2_on_miniflare_passes_the_target_suite() {
    let server = miniflare::Miniflare::start(&["media"]);
    let target = r2_target(&server.endpoint());
    let gaps = Gaps {
        keeps_refused_put: false,
        checks_no_checksum: true,
        lists_no_etag: false,
        cannot_complete_multipart: false,
        ignores_full_object_checksum: true,
        accepts_unequal_parts: false,
        unequal_parts_code: "NoSuchUpload",
        ignores_copy_conditions: true,
        cannot_list_parts: true,
    };
    check(&target, &gaps, || server.open_uploads()).await;
}

/// The whole object's CRC64NVME as Complete sends it.
fn crc64_of(bytes: &[u8]) -> String {
    let mut h = Hasher::new();
    h.update(bytes);
    crc64nvme_b64(h.finish().crc64nvme)
}
