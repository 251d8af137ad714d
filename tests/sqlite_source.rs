//! base64 rows in SQLite → R2 (s3s-fs) or a rehearsal directory: every form decodes,
//! bad rows fail alone, rows are rewritten after verification, a crash before write-back
//! heals on the next run, rollback restores rows byte for byte, and the application can
//! keep writing while the migration runs.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::*;
use rusqlite::Connection;

const CONFIG: &str = r#"
[source]
table = "images"
id_column = "id"
data_column = "image_data"
content_type_column = "mime"
key_template = "images/{user_id}/{id}.{ext}"

[source.write_back]
key_column = "r2_key"
url_column = "image_url"
url_template = "https://img.example.test/{key}"
clear_data = true
"#;

const NO_WRITE_BACK: &str = r#"
[source]
table = "images"
data_column = "image_data"
content_type_column = "mime"
key_template = "images/{user_id}/{id}.{ext}"
"#;

fn fixture_db(dir: &Path) -> PathBuf {
    fixture_copy(dir, "app.db")
}

/// The objects in a rehearsal directory (its own `.r2migrate/` state left out).
fn objects_in(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && !e.path().to_string_lossy().contains(".r2migrate"))
        .map(|e| e.into_path())
        .collect()
}

/// A copy of `fixtures/<name>` in `dir`, for a test to rewrite.
fn fixture_copy(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
        &db,
    )
    .unwrap();
    db
}

fn media(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/media")
            .join(rel),
    )
    .unwrap()
}

/// Every column of every row, as text, for byte-exact comparisons.
fn snapshot(db: &Path) -> Vec<Vec<Option<Vec<u8>>>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM images ORDER BY id").unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => None,
                    rusqlite::types::ValueRef::Integer(v) => Some(format!("i{v}").into_bytes()),
                    rusqlite::types::ValueRef::Real(v) => Some(format!("r{v}").into_bytes()),
                    rusqlite::types::ValueRef::Text(t) => Some([b"t".as_slice(), t].concat()),
                    rusqlite::types::ValueRef::Blob(b) => Some([b"b".as_slice(), b].concat()),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn rehearse(work: &Path, db: &Path, config: &str, extra: &[&str]) -> std::process::Output {
    std::fs::write(work.join("m.toml"), config).unwrap();
    let args = [&["run"][..], extra].concat();
    with_config(work, db, &work.join("m.toml"), &args)
}

/// `args --json --config CONFIG` from the database into `work/out`.
fn with_config(work: &Path, db: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    r2migrate(work)
        .args(args)
        .args(["--json", "--config"])
        .arg(config)
        .args(["--from", &format!("sqlite://{}", db.display())])
        .args(["--to", &format!("file://{}", work.join("out").display())])
        .output()
        .unwrap()
}

#[test]
fn every_base64_form_decodes_and_bad_rows_fail_alone() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    let out = rehearse(work.path(), &db, NO_WRITE_BACK, &[]);
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 5);
    assert_eq!(doc["counts"]["failed"], 2);
    let errors: Vec<String> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["source_key"], p["error"]))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("row:5") && e.contains("not valid base64")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("row:6") && e.contains("empty")),
        "{errors:?}"
    );
    let out_dir = work.path().join("out");
    for (key, want) in [
        ("images/42/1.png", media("avatars/user_42.png")),
        (
            "images/42/2.jpg",
            media("photos/2024/summer trip/beach sunset.jpg"),
        ), // type from the data: URI
        ("images/7/3.webp", media("photos/café/crème brûlée.webp")), // URL-safe, unpadded, magic bytes
        ("images/7/4.gif", media("avatars/user_43.gif")),            // wrapped lines
        ("images/11/7.png", media("avatars/user_42.png")),           // wrapped data: URI
    ] {
        assert_eq!(std::fs::read(out_dir.join(key)).unwrap(), want, "{key}");
    }
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let r2 = recs.iter().find(|r| r["source_key"] == "row:2").unwrap();
    assert_eq!(r2["content_type"], "image/jpeg");
    assert_eq!(r2["row"]["id"], "2");
    // Without write_back, the database is untouched.
    let pristine = tempfile::tempdir().unwrap();
    assert_eq!(snapshot(&db), snapshot(&fixture_db(pristine.path())));
}

#[test]
fn rows_are_rewritten_after_verification_and_rollback_restores_them_exactly() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    let before = snapshot(&db);
    let out = rehearse(work.path(), &db, CONFIG, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "two bad rows: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json_of(&out);
    assert_eq!(doc["rows_rewritten"], 5);
    let backup = PathBuf::from(doc["db_backup"].as_str().unwrap());
    assert!(
        backup.is_file(),
        "VACUUM INTO backup made before the first write"
    );

    let conn = Connection::open(&db).unwrap();
    let (key, url, data): (String, String, Option<String>) = conn
        .query_row(
            "SELECT r2_key, image_url, image_data FROM images WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(key, "images/42/1.png");
    assert_eq!(url, "https://img.example.test/images/42/1.png");
    assert_eq!(
        data, None,
        "clear_data NULLs the text once the key is written"
    );
    let bad: (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT r2_key, image_data FROM images WHERE id = 5",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        bad,
        (None, Some("this is not base64 at all!".into())),
        "failed rows are not touched"
    );
    drop(conn);

    // A second run has nothing to do: cleared rows are no longer listed.
    let again = json_of(&rehearse(work.path(), &db, CONFIG, &[]));
    assert_eq!(again["counts"]["copied"], 0);

    let rb = r2migrate(work.path())
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(snapshot(&db), before, "every row back byte for byte");
    let left = objects_in(&work.path().join("out"));
    assert!(left.is_empty(), "objects removed: {left:?}");
}

#[test]
fn a_row_changed_after_migration_is_kept_with_its_object() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    rehearse(work.path(), &db, CONFIG, &[]);
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE images SET image_url = 'https://cdn.example.test/edited.png' WHERE id = 1",
            [],
        )
        .unwrap();
    let rb = r2migrate(work.path())
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(rb.status.code(), Some(1));
    let doc = json_of(&rb);
    assert_eq!(doc["kept"], 1);
    let conn = Connection::open(&db).unwrap();
    let url: String = conn
        .query_row("SELECT image_url FROM images WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        url, "https://cdn.example.test/edited.png",
        "the application's change survives"
    );
    assert!(
        work.path().join("out/images/42/1.png").is_file(),
        "its object is kept too"
    );
    let restored: Option<String> = conn
        .query_row("SELECT image_data FROM images WHERE id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(restored.unwrap().starts_with("data:image/jpeg;base64,"));
}

#[test]
fn a_crash_before_write_back_heals_without_uploading_again() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    // The state a crash between upload and write-back leaves: copied, rows untouched.
    let first = json_of(&rehearse(work.path(), &db, NO_WRITE_BACK, &[]));
    assert_eq!(first["counts"]["copied"], 5);
    let second = rehearse(work.path(), &db, CONFIG, &["--no-db-backup"]);
    let doc = json_of(&second);
    assert_eq!(doc["counts"]["copied"], 0, "nothing uploaded again");
    assert_eq!(doc["already_verified"], 5);
    assert_eq!(doc["rows_rewritten"], 5);
    assert!(doc["db_backup"].is_null());
    let n: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM images WHERE r2_key IS NOT NULL AND image_data IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn missing_table_column_or_bad_where_exit_2_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    for (config, needle) in [
        (
            NO_WRITE_BACK.replace("\"images\"", "\"pictures\""),
            "pictures",
        ),
        (NO_WRITE_BACK.replace("\"image_data\"", "\"img\""), "img"),
        (
            format!("{NO_WRITE_BACK}where = \"image_data IS NOT\"\n"),
            "image_data IS NOT",
        ),
        (NO_WRITE_BACK.replace("{user_id}", "{owner}"), "owner"),
    ] {
        let out = rehearse(work.path(), &db, &config, &[]);
        assert_eq!(out.status.code(), Some(2), "{needle}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{needle}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn plan_counts_rows_failures_and_freed_space() {
    let work = tempfile::tempdir().unwrap();
    let db = fixture_db(work.path());
    std::fs::write(work.path().join("m.toml"), CONFIG).unwrap();
    let before = snapshot(&db);
    let out = r2migrate(work.path())
        .args([
            "plan",
            "--json",
            "--config",
            "m.toml",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            "file:///tmp/r2migrate-never-written",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    let rows = &doc["sqlite"];
    assert_eq!(rows["rows"], 7);
    assert_eq!(rows["decodable"], 5);
    assert_eq!(rows["failures_by_reason"]["empty"], 1);
    assert_eq!(rows["failures_by_reason"]["not valid base64"], 1);
    assert!(rows["db_bytes_freed"].as_u64().unwrap() > rows["decoded_bytes"].as_u64().unwrap());
    assert_eq!(snapshot(&db), before);
}

#[test]
fn text_ids_page_through_a_table_larger_than_a_page() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("t.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE blobs (uid TEXT PRIMARY KEY, body TEXT)")
        .unwrap();
    for i in 0..150 {
        let body = base64::engine::general_purpose::STANDARD.encode(bytes_for(i, 100));
        conn.execute(
            "INSERT INTO blobs VALUES (?1, ?2)",
            (format!("u-{i:04}"), body),
        )
        .unwrap();
    }
    drop(conn);
    let config = "[source]\ntable = \"blobs\"\nid_column = \"uid\"\ndata_column = \"body\"\nkey_template = \"b/{id}.{ext}\"\n";
    let out = rehearse(work.path(), &db, config, &[]);
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 150);
    assert_eq!(
        std::fs::read(work.path().join("out/b/u-0149.bin")).unwrap(),
        bytes_for(149, 100)
    );
}

#[tokio::test]
async fn the_application_keeps_writing_during_the_run_and_to_r2() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("live.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE images (id INTEGER PRIMARY KEY, user_id INTEGER, image_data TEXT, mime TEXT, r2_key TEXT, image_url TEXT);",
        )
        .unwrap();
        for i in 0..400u64 {
            let body = base64::engine::general_purpose::STANDARD.encode(bytes_for(i, 2000));
            conn.execute(
                "INSERT INTO images (id, user_id, image_data) VALUES (?1, 1, ?2)",
                (i as i64 + 1, body),
            )
            .unwrap();
        }
    }
    // The application: inserts and updates other rows for as long as the run lasts.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut writes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.execute(
                    "INSERT INTO images (user_id, image_data) VALUES (2, NULL)",
                    [],
                )
                .unwrap();
                conn.execute("UPDATE images SET user_id = user_id WHERE user_id = 2", [])
                    .unwrap();
                writes += 2;
            }
            writes
        })
    };
    std::fs::write(work.path().join("m.toml"), CONFIG.replace("{user_id}/", "")).unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--json",
            "--config",
            "m.toml",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            "r2://media/",
        ])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = app.join().expect("the application never failed to write");
    assert!(
        writes > 10,
        "the application wrote during the run ({writes})"
    );
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 400);
    assert_eq!(doc["rows_rewritten"], 400);
    assert_eq!(list_keys(&r2.client(), "media", "images/").await.len(), 400);
    let h = head(&r2.client(), "media", "images/1.bin").await.unwrap();
    assert_eq!(h.content_length(), Some(2000));
}

/// The shared Source conformance suite on SQLite: text ids named like the suite's keys,
/// each row's bytes as base64 (SQLite has no empty blob: an empty row is `failed`, as
/// `every_base64_form_decodes_and_bad_rows_fail_alone` shows).
#[tokio::test]
async fn sqlite_source_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("suite.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE blobs (id TEXT PRIMARY KEY, data TEXT)")
        .unwrap();
    let want: Vec<(String, Vec<u8>)> = conformance::fixture()
        .into_iter()
        .filter(|(_, body)| !body.is_empty())
        .collect();
    for (key, body) in &want {
        conn.execute(
            "INSERT INTO blobs VALUES (?1, ?2)",
            (key, base64::engine::general_purpose::STANDARD.encode(body)),
        )
        .unwrap();
    }
    drop(conn);
    let settings: r2migrate::source::sqlite::SqliteSettings =
        toml::from_str("table = \"blobs\"\nid_column = \"id\"\ndata_column = \"data\"\n").unwrap();
    let source = r2migrate::source::sqlite::SqliteSource::open(db, settings)
        .await
        .unwrap();
    let rows = want
        .into_iter()
        .map(|(k, v)| (format!("row:{k}"), v))
        .collect();
    conformance::check_items(&source, rows).await;
}

#[allow(dead_code)] // SQLite names its items itself: `check_items`, not `check`
mod conformance {
    include!("conformance/suite.rs");
}

const USERS: &str = "fixtures/users.toml";

fn users_db(dir: &Path) -> PathBuf {
    fixture_copy(dir, "users.db")
}

fn users(db: &Path) -> Vec<(String, Option<String>)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, image_url FROM users ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn users_cmd(work: &Path, db: &Path, args: &[&str]) -> std::process::Output {
    with_config(
        work,
        db,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(USERS),
        args,
    )
}

/// Finding 4 of "No silent loss": a real schema — text UUID ids, the data: URI in the
/// column that later receives the URL — migrates, is rolled back byte for byte, and the
/// rows holding NULL, a relative path or an external URL are never touched.
#[test]
fn data_and_url_in_one_column_with_uuid_ids_migrate_and_roll_back_byte_exact() {
    let work = tempfile::tempdir().unwrap();
    let db = users_db(work.path());
    let before = users(&db);
    let untouched: Vec<_> = before
        .iter()
        .filter(|(_, v)| !v.as_deref().unwrap_or("").starts_with("data:"))
        .cloned()
        .collect();
    assert_eq!(
        untouched.len(),
        3,
        "NULL, a relative path and an external URL"
    );

    // plan: the four blobs, and the declared type the bytes contradict.
    let plan = users_cmd(work.path(), &db, &["plan"]);
    assert_exit(&plan, 0);
    let doc = json_of(&plan);
    assert_eq!(doc["counts"]["selected"], 4, "{doc}");
    let mismatches = doc["content_type_mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{doc}");
    assert_eq!(
        mismatches[0]["source_key"],
        "row:1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
    );
    assert!(mismatches[0]["reason"]
        .as_str()
        .unwrap()
        .contains("image/jpeg"));

    let run = users_cmd(work.path(), &db, &["run"]);
    assert_exit(&run, 0);
    let doc = json_of(&run);
    assert_eq!(doc["counts"]["copied"], 4, "{doc}");
    assert_eq!(doc["rows_rewritten"], 4, "{doc}");
    let after = users(&db);
    for (id, url) in &after {
        let was = &before.iter().find(|(i, _)| i == id).unwrap().1;
        if was.as_deref().unwrap_or("").starts_with("data:") {
            let url = url.as_deref().unwrap();
            assert!(
                url.starts_with("https://media.example.com/avatars/"),
                "{id}: {url}"
            );
        } else {
            assert_eq!(url, was, "{id} is not a blob and must not be touched");
        }
    }
    // The object takes the type of its bytes; the declared one is recorded.
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let liar = recs
        .iter()
        .rev()
        .find(|r| r["source_key"] == "row:1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5")
        .unwrap();
    assert_eq!(liar["content_type"], "image/png");
    assert_eq!(liar["declared_content_type"], "image/jpeg");
    assert_eq!(
        liar["target_key"],
        "avatars/1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5.png"
    );
    assert_eq!(
        std::fs::read(
            work.path()
                .join("out/avatars/0b0f7a6e-3c1d-4d55-9a0e-6f1c2b9d8e01.png")
        )
        .unwrap(),
        media("avatars/user_42.png")
    );

    // A second run (the cutover pass) finds nothing to do, and nothing "deleted".
    let again = users_cmd(work.path(), &db, &["run"]);
    assert_exit(&again, 0);
    assert_eq!(json_of(&again)["counts"]["copied"], 0);
    let verify = r2migrate(work.path())
        .args(["verify", "--deep", "--against-source", "--json"])
        .output()
        .unwrap();
    assert_exit(&verify, 0);

    let rb = r2migrate(work.path())
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(json_of(&rb)["rolled_back"], 4);
    assert_eq!(users(&db), before, "every row back byte for byte");
    let left = objects_in(&work.path().join("out"));
    assert!(left.is_empty(), "objects removed: {left:?}");
}

#[test]
fn the_database_backup_and_the_manifest_are_as_private_as_the_database() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for db_mode in [0o600, 0o640] {
        let work = tempfile::tempdir().unwrap();
        let db = fixture_db(work.path());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(db_mode)).unwrap();
        let out = rehearse(work.path(), &db, CONFIG, &[]);
        assert_exit(&out, 1); // the fixture's two bad rows
        let backup = PathBuf::from(json_of(&out)["db_backup"].as_str().unwrap().to_string());
        // The copy holds every row: no more readable than the database itself.
        assert_eq!(mode(&backup), db_mode, "{}", backup.display());
        assert_eq!(mode(&work.path().join("r2migrate-manifest.jsonl")), 0o600);
    }
}
