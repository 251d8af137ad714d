// The Source conformance suite: every source must pass it (DESIGN.md) — local, S3 on
// s3s-fs and on moto, GCS on fake-gcs-server, SQLite. Included by each source's test
// file; `fixture()` is what the test puts in the source under its prefix.

use futures::StreamExt;
use md5::Digest as _;
use r2migrate::source::{ListItem, Source};

/// Keys every source must carry faithfully: nesting, odd characters, zero bytes.
pub fn fixture() -> Vec<(String, Vec<u8>)> {
    let mut items: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"alpha".to_vec()),
        ("nested/deeper/b.bin".into(), (0u8..=255).collect()),
        ("with space/c d.txt".into(), b"spaces".to_vec()),
        ("unicode/caf\u{e9}/cr\u{e8}me.txt".into(), b"unicode".to_vec()),
        ("odd/100% + #1.txt".into(), b"odd".to_vec()),
        ("empty/zero.bin".into(), Vec::new()),
    ];
    for i in 0..7 {
        items.push((format!("many/item-{i}.txt"), format!("item {i}").into_bytes()));
    }
    items
}

/// Lists and reads everything and checks it against `fixture()`.
pub async fn check(source: &dyn Source) {
    check_items(source, fixture()).await
}

/// The same checks against what this source must list: a source that names its items
/// otherwise (SQLite rows are `row:<id>`) or cannot hold some (no empty blob in SQLite).
pub async fn check_items(source: &dyn Source, want: Vec<(String, Vec<u8>)>) {
    source.check_access().await.expect("check_access");
    let first: Vec<ListItem> = source.list().map(|r| r.expect("listing")).collect().await;
    let second: Vec<ListItem> = source.list().map(|r| r.expect("listing")).collect().await;
    let keys = |items: &[ListItem]| -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                ListItem::Object(o) => o.key.clone(),
                ListItem::Unreadable { key, reason, .. } | ListItem::Skipped { key, reason } => {
                    panic!("{key} not listed as an object: {reason}")
                }
            })
            .collect()
    };
    let (k1, k2) = (keys(&first), keys(&second));
    assert_eq!(k1, k2, "listing order must be stable");

    // A listing polled after its end says so again (an unfused stream panics there).
    let mut listing = source.list();
    while listing.next().await.is_some() {}
    assert!(listing.next().await.is_none(), "a finished listing polled again must end again");
    drop(listing);

    // Every object carries the source's change signal, the same on every listing.
    let versions = |items: &[ListItem]| -> Vec<Option<String>> {
        items
            .iter()
            .map(|i| match i {
                ListItem::Object(o) => o.version.clone(),
                ListItem::Unreadable { .. } | ListItem::Skipped { .. } => None,
            })
            .collect()
    };
    let (v1, v2) = (versions(&first), versions(&second));
    for (key, v) in k1.iter().zip(&v1) {
        assert!(v.as_deref().is_some_and(|v| !v.is_empty()), "{key}: no source_version");
    }
    assert_eq!(v1, v2, "source_version must be stable while nothing changes");
    let mut unique = k1.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), k1.len(), "no key listed twice");

    let mut want = want;
    want.sort();
    let mut got_keys = k1.clone();
    got_keys.sort();
    assert_eq!(got_keys, want.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), "keys relative to the prefix, nothing outside it");

    for item in first {
        let ListItem::Object(info) = item else { unreachable!() };
        let (_, body) = want.iter().find(|(k, _)| *k == info.key).unwrap();
        assert_eq!(info.size, body.len() as u64, "{}: size", info.key);
        let mut opened = source.open(&info, None).await.expect("open");
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) = opened.body.next().await {
            bytes.extend_from_slice(&chunk.expect("read"));
        }
        // Read to its end, then polled again (the multipart reader's last look): no panic.
        assert!(opened.body.next().await.is_none(), "{}: a finished body polled again must end again", info.key);
        assert_eq!(&bytes, body, "{}: bytes", info.key);
        if let Some(md5) = opened.digests.as_ref().and_then(|d| d.md5) {
            assert_eq!(md5, <[u8; 16]>::from(md5::Md5::digest(body)), "{}: stated MD5", info.key);
        }
        if body.len() > 4 {
            let part: Vec<u8> = source
                .open(&info, Some(1..4))
                .await
                .expect("open a range")
                .body
                .map(|c| c.expect("read").to_vec())
                .concat()
                .await;
            assert_eq!(part, body[1..4], "{}: range", info.key);
        }
    }
}

/// A source walked by delimiter lists exactly what its flat listing lists, in the same
/// order (resume and the target merge-join depend on the order), and the fixture has
/// folders for the walk to go through.
#[allow(dead_code)] // only the sources that list by delimiter (S3, GCS) use it
pub async fn same_listing(walked: &dyn Source, flat: &dyn Source) {
    let a: Vec<String> = walked
        .list()
        .map(|i| i.expect("listing").key().to_string())
        .collect()
        .await;
    let b: Vec<String> = flat
        .list()
        .map(|i| i.expect("listing").key().to_string())
        .collect()
        .await;
    assert_eq!(a, b, "a walk by delimiter must give the flat listing's order");
    assert!(a.iter().any(|k| k.contains('/')), "the fixture has folders: {a:?}");
}
