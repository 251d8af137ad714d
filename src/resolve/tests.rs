//! Flags over the config file over the defaults: what each command ends up with, and
//! the bad values each refuses.

use super::*;

fn file_of(text: &str) -> FileConfig {
    toml::from_str(text).unwrap()
}

/// `copy` refuses these flags and file as a usage error (exit 2).
fn assert_refused(args: &CopyArgs, file: &FileConfig, what: &str) {
    let err = copy(args, file).unwrap_err();
    let usage = err.downcast_ref::<crate::error::UsageError>().is_some();
    assert!(usage, "{what}: {err}");
}
use crate::limits::MIB;
use std::path::Path;

#[test]
fn the_example_config_parses_and_resolves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrate.example.toml");
    let file = FileConfig::load(&path).unwrap();
    let cfg = copy(&CopyArgs::default(), &file).unwrap();
    assert!(matches!(cfg.target, Location::R2 { .. }));
    assert_eq!(cfg.stores.concurrency, 32);
    assert!(!cfg.filter.spec.include.is_empty() || !cfg.filter.spec.exclude.is_empty());
}

#[test]
fn the_sqlite_fixture_config_parses_every_sqlite_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app.toml");
    let file = FileConfig::load(&path).unwrap();
    let args = CopyArgs {
        from: Some("sqlite:///tmp/app.db".into()),
        to: Some("file:///tmp/out".into()),
        ..Default::default()
    };
    let cfg = copy(&args, &file).unwrap();
    let s = cfg.sqlite.unwrap();
    assert_eq!(
        (s.table.as_str(), s.data_column.as_str()),
        ("images", "image_data")
    );
    assert_eq!(s.template_columns, vec!["user_id".to_string()]);
    assert!(s.write_back.unwrap().clear_data);
    assert_eq!(
        cfg.key_template.as_deref(),
        Some("images/{user_id}/{id}.{ext}")
    );
}

#[test]
fn sqlite_sources_need_a_table_and_sane_write_back() {
    let args = CopyArgs {
        from: Some("sqlite:///tmp/app.db".into()),
        to: Some("file:///tmp/out".into()),
        ..Default::default()
    };
    for text in [
        "[source]\ndata_column = \"d\"\n",
        "[source]\ntable = \"t\"\ndata_column = \"d\"\n[source.write_back]\nclear_data = true\n",
        "[source]\ntable = \"t\"\ndata_column = \"d\"\n[source.write_back]\nurl_column = \"u\"\n",
    ] {
        assert_refused(&args, &file_of(text), text);
    }
}

#[test]
fn flags_override_the_file() {
    let file = file_of("[source]\nurl = \"/data\"\n[target]\nurl = \"r2://b-1/x\"\n[transfer]\nconcurrency = 4\npart_size = \"8 MiB\"\n");
    let args = CopyArgs {
        stores: StoreArgs {
            concurrency: Some(9),
            ..Default::default()
        },
        to: Some("file:///tmp/rehearse".into()),
        ..Default::default()
    };
    let cfg = copy(&args, &file).unwrap();
    assert_eq!(cfg.stores.concurrency, 9);
    assert_eq!(cfg.part_size, 8 * MIB);
    assert_eq!(
        cfg.target,
        Location::Local {
            root: "/tmp/rehearse".into()
        }
    );
}

#[test]
fn bad_values_are_usage_errors() {
    let file = FileConfig::default();
    let base = CopyArgs {
        from: Some("/data".into()),
        to: Some("r2://bucket/x".into()),
        ..Default::default()
    };
    for bad in [
        CopyArgs {
            stores: StoreArgs {
                concurrency: Some(0),
                ..Default::default()
            },
            ..base.clone()
        },
        CopyArgs {
            part_size: Some("1MiB".into()),
            ..base.clone()
        },
        CopyArgs {
            shard: Some("4/4".into()),
            ..base.clone()
        },
        CopyArgs {
            key_template: Some("{nope}".into()),
            ..base.clone()
        },
        CopyArgs {
            from: None,
            ..base.clone()
        },
    ] {
        assert_refused(&bad, &file, &format!("{bad:?}"));
    }
}

#[test]
fn every_command_reads_the_same_file_settings() {
    let file = file_of("manifest = \"m.jsonl\"\n[source]\nendpoint = \"http://10.0.0.9:9000\"\nregion = \"eu-west-1\"\n[transfer]\nconcurrency = 3\nretries = 0\nmax_rate = 7\nallow_http = true\nio_timeout = \"7s\"\n");
    let verify_args = VerifyArgs {
        manifests: ManifestArgs::default(),
        deep: false,
        against_source: true,
        source: SourceArgs::default(),
        stores: StoreArgs::default(),
    };
    let v = verify(&verify_args, &file).unwrap();
    let r = rollback(
        &RollbackArgs {
            manifest: Vec::new(),
            dry_run: true,
            yes: false,
            stores: StoreArgs::default(),
        },
        &file,
    )
    .unwrap();
    for s in [&v.stores, &r.stores] {
        assert_eq!((s.concurrency, s.retries, s.max_rate), (3, 0, Some(7)));
        assert!(s.allow_http);
        assert_eq!(s.io_timeout, std::time::Duration::from_secs(7));
    }
    assert_eq!(v.stores.source_region.as_deref(), Some("eu-west-1"));
    assert_eq!(v.manifests, vec![PathBuf::from("m.jsonl")]);
    assert_eq!(r.manifest, PathBuf::from("m.jsonl"));
    let reported = report(
        &ReportArgs {
            manifests: ManifestArgs::default(),
        },
        &file,
    );
    assert_eq!(reported.unwrap().manifests, vec![PathBuf::from("m.jsonl")]);

    // A plain-http endpoint off this machine needs allow_http, from either place.
    let strict = file_of("[source]\nendpoint = \"http://10.0.0.9:9000\"\n");
    assert!(verify(&verify_args, &strict).is_err());
    let flagged = VerifyArgs {
        stores: StoreArgs {
            allow_http: true,
            retries: Some(2),
            ..Default::default()
        },
        ..verify_args.clone()
    };
    assert_eq!(verify(&flagged, &strict).unwrap().stores.retries, 2);
    let quick = VerifyArgs {
        stores: StoreArgs {
            io_timeout: Some("500ms".into()),
            ..Default::default()
        },
        ..verify_args.clone()
    };
    let resolved = verify(&quick, &file).unwrap().stores.io_timeout;
    assert_eq!(
        resolved,
        std::time::Duration::from_millis(500),
        "the flag wins"
    );
}
