//! What reads untrusted input never panics on it: the manifest reader, the config file
//! parser and resolver, the URL parser, and the base64 / data-URI decoder, fed arbitrary
//! bytes and near-misses of valid input (proptest, a bounded number of cases; raise it
//! with `PROPTEST_CASES`). An error is fine — it is what the user sees; a panic is not.

use proptest::prelude::*;

use r2migrate::config::FileConfig;
use r2migrate::location::{Location, Role};
use r2migrate::manifest::Manifest;
use r2migrate::source::sqlite::blob;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Lines that look like a manifest's, with pieces cut, swapped or garbled.
fn manifest_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just(r#"{"type":"header","version":1,"run_id":"r","source":"file:///a/","target":"file:///b/","started_at":"2026-01-01T00:00:00Z","selection":{}}"#.to_string()),
        Just(r#"{"type":"object","source_key":"k","target_key":"k","size":1,"status":"copied","at":"x"}"#.to_string()),
        Just(r#"{"type":"intent","source_key":"k","target_key":"k","at":"x"}"#.to_string()),
        Just(r#"{"type":"source_deleted","source_key":"k","target_key":"k","run_id":"r","at":"x"}"#.to_string()),
        Just(r#"{"type":"object","row":{"id":7}}"#.to_string()),
        Just(r#"{"type":"header","version":99}"#.to_string()),
        "[ -~]{0,80}",
    ];
    prop::collection::vec((line, 0usize..200, any::<bool>()), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(mut l, cut, newline)| {
                l.truncate(cut.min(l.len()));
                if newline {
                    l.push('\n');
                }
                l
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn the_manifest_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), text in manifest_like()) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [("raw.jsonl", bytes), ("like.jsonl", text.into_bytes())] {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let _ = Manifest::load(&path);
        }
    }

    #[test]
    fn the_config_parser_and_resolver_never_panic(text in "(\\[(source|target|filter|transfer|source\\.write_back)\\]\n|(url|endpoint|region|table|id_column|data_column|content_type_column|key_template|where|key_column|url_column|url_template|clear_data|include|exclude|min_size|max_size|modified_after|modified_before|shard|concurrency|part_size|multipart_threshold|max_rate|max_bandwidth|retries|allow_http|io_timeout|on_conflict|backup_prefix|manifest|[a-z_]{1,20}) = (\"[ -~]{0,20}\"|[0-9]{1,12}|true|\\[\"[*a-z/.]{0,8}\"\\])\n|[ -~]{0,30}\n){0,10}") {
        if let Ok(file) = toml::from_str::<FileConfig>(&text) {
            let args = r2migrate::cli::CopyArgs {
                from: Some("/tmp/fuzz-source".into()),
                to: Some("file:///tmp/fuzz-target".into()),
                ..Default::default()
            };
            let _ = r2migrate::resolve::copy(&args, &file);
        }
    }

    #[test]
    fn the_url_parser_never_panics(text in "((s3|gs|r2|file|sqlite|http|)(://|:/|:)|/|\\./)?[ -~\u{e9}\u{301}%]{0,40}") {
        for role in [Role::Source, Role::Target] {
            if let Ok(loc) = Location::parse(&text, role) {
                // What parsed prints and parses again as the same place.
                let again = Location::parse(&loc.canonical(), role);
                prop_assert_eq!(again.ok(), Some(loc));
            }
        }
    }

    #[test]
    fn the_blob_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), text in "(data:[a-z/+;=-]{0,20}(;base64)?,)?[A-Za-z0-9+/=_\\- \n]{0,200}") {
        let _ = blob::decode(&bytes);
        let _ = blob::is_reference(&bytes);
        if let Ok(d) = blob::decode(text.as_bytes()) {
            prop_assert!(!d.bytes.is_empty(), "a decoded blob has bytes");
        }
    }
}
