//! `rewrite-urls` on a real SQLite application database after an S3 → R2 migration:
//! every S3 URL form of the bucket is pointed at R2 when its object is migrated, URLs of
//! objects not migrated are listed (exit 1) and left alone, embedded URLs are replaced
//! with every other byte kept, a dry run writes nothing, a second pass changes nothing,
//! and rollback puts every value back except one the application changed since.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::wordpress::{fixture_values, per_table, restored, WP_COLUMNS};
use common::*;
use rusqlite::Connection;

const SRC_KEY: &str = "src-key";
const SRC_SECRET: &str = "src-secret";

/// (id, s3_url, body) as the application stored them, and what they must become.
fn rows() -> Vec<(i64, &'static str, &'static str, &'static str, &'static str)> {
    vec![
        (
            1,
            "https://media.s3.amazonaws.com/avatars/1.png",
            "https://cdn.example.test/avatars/1.png",
            "<img src=\"https://media.s3.eu-west-1.amazonaws.com/avatars/2%20b.jpg\" alt='a'>",
            "<img src=\"https://cdn.example.test/avatars/2%20b.jpg\" alt='a'>",
        ),
        (
            2,
            "https://s3.us-east-2.amazonaws.com/media/avatars/2%20b.jpg?X-Amz-Signature=abc",
            "https://cdn.example.test/avatars/2%20b.jpg",
            "See [it](https://media.s3-eu-west-1.amazonaws.com/avatars/1.png). And https://other.example.com/x.png, fine.",
            "See [it](https://cdn.example.test/avatars/1.png). And https://other.example.com/x.png, fine.",
        ),
        (
            3,
            "s3://media/avatars/%C3%A9t%C3%A9.gif",
            "https://cdn.example.test/avatars/%C3%A9t%C3%A9.gif",
            "{\"hero\":\"https://media.s3.amazonaws.com/avatars/1.png\",\"n\":3}",
            "{\"hero\":\"https://cdn.example.test/avatars/1.png\",\"n\":3}",
        ),
        // Not migrated: never in the source, and outside the migrated prefix.
        (
            4,
            "https://media.s3.amazonaws.com/avatars/missing.png",
            "https://media.s3.amazonaws.com/avatars/missing.png",
            "plain text, no URL",
            "plain text, no URL",
        ),
        (
            5,
            "https://media.s3.amazonaws.com/banners/top.png",
            "https://media.s3.amazonaws.com/banners/top.png",
            "",
            "",
        ),
    ]
}

const CONFIG: &str = r#"
[[rewrite]]
database = "sqlite://DB"
table = "media_files"
id_column = "id"
columns = ["s3_url"]
mode = "url"
to = "https://cdn.example.test/{key}"

[[rewrite]]
database = "sqlite://DB"
table = "media_files"
id_column = "id"
columns = ["body"]
mode = "embedded"
to = "https://cdn.example.test/{key}"
"#;

fn app_db(dir: &Path) -> PathBuf {
    let db = dir.join("app.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE media_files (id INTEGER PRIMARY KEY, s3_url TEXT, body TEXT);",
    )
    .unwrap();
    for (id, url, _, body, _) in rows() {
        conn.execute(
            "INSERT INTO media_files VALUES (?1, ?2, ?3)",
            rusqlite::params![id, url, body],
        )
        .unwrap();
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    db
}

fn values(db: &Path) -> Vec<(i64, String, String)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, s3_url, body FROM media_files ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

struct Setup {
    _source: S3Server,
    r2: S3Server,
    work: tempfile::TempDir,
    db: PathBuf,
}

async fn migrated() -> Setup {
    let source = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    source.create_bucket("media");
    let client = s3_client_with(&source.endpoint(), SRC_KEY, SRC_SECRET);
    for key in [
        "avatars/1.png",
        "avatars/2 b.jpg",
        "avatars/été.gif",
        "banners/top.png",
    ] {
        put_bytes(&client, "media", key, key.as_bytes()).await;
    }
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_s3(work.path(), &source, &r2, SRC_KEY, SRC_SECRET)
        .args([
            "run",
            "--from",
            "s3://media/avatars/",
            "--to",
            "r2://media/avatars/",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let db = app_db(work.path());
    std::fs::write(
        work.path().join("rewrite.toml"),
        CONFIG.replace("DB", &db.display().to_string()),
    )
    .unwrap();
    Setup {
        _source: source,
        r2,
        work,
        db,
    }
}

fn rewrite(s: &Setup, extra: &[&str]) -> std::process::Output {
    r2migrate(s.work.path())
        .args(["rewrite-urls", "--json", "--config", "rewrite.toml"])
        .args(extra)
        .output()
        .unwrap()
}

fn totals(doc: &serde_json::Value, field: &str) -> u64 {
    doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn stored_urls_point_at_r2_only_where_migrated_and_roll_back_byte_exact() {
    let s = migrated().await;
    let before = values(&s.db);

    // Dry run: counts, lists what is not migrated, writes nothing.
    let dry = rewrite(&s, &["--dry-run"]);
    assert_exit(&dry, 1);
    let doc = json_of(&dry);
    assert_eq!(totals(&doc, "urls_changed"), 6, "{doc}");
    assert_eq!(totals(&doc, "not_migrated"), 2, "{doc}");
    let listed = doc.to_string();
    assert!(listed.contains("avatars/missing.png") && listed.contains("banners/top.png"));
    assert_eq!(values(&s.db), before, "a dry run changed the database");

    // The real pass: exactly the expected text, a private backup, lines in the manifest.
    let out = rewrite(&s, &[]);
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(totals(&doc, "urls_changed"), 6, "{doc}");
    let want: Vec<(i64, String, String)> = rows()
        .into_iter()
        .map(|(id, _, url, _, body)| (id, url.to_string(), body.to_string()))
        .collect();
    assert_eq!(values(&s.db), want);
    let backup = doc["tables"][0]["backup"].as_str().unwrap();
    let mode = std::fs::metadata(backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup is as private as the database");
    let manifest = std::fs::read_to_string(s.work.path().join("r2migrate-manifest.jsonl")).unwrap();
    assert_eq!(manifest.matches("\"type\":\"rewrite\"").count(), 6);

    // Idempotent: a second pass changes nothing.
    let again = json_of(&rewrite(&s, &[]));
    assert_eq!(totals(&again, "urls_changed"), 0, "{again}");
    assert_eq!(values(&s.db), want);

    // The application edits one row; rollback puts every other value back, keeps that one.
    Connection::open(&s.db)
        .unwrap()
        .execute(
            "UPDATE media_files SET s3_url = 'https://cdn.example.test/edited.png' WHERE id = 3",
            [],
        )
        .unwrap();
    let rb = r2migrate_to(s.work.path(), &s.r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 1);
    let rdoc = json_of(&rb);
    assert_eq!(rdoc["urls_kept"], 1, "{rdoc}");
    let mut expected = before.clone();
    expected[2].1 = "https://cdn.example.test/edited.png".into();
    assert_eq!(values(&s.db), expected);
    assert!(list_keys(&s.r2.client(), "media", "").await.is_empty());
}

#[tokio::test]
async fn bad_rewrite_settings_exit_2_naming_what_to_fix() {
    let s = migrated().await;
    for (config, words) in [
        ("", "[[rewrite]]"),
        (
            "[[rewrite]]\ndatabase = \"postgres://app:hunter2@127.0.0.1/app\"\ntable = \"t\"\nid_column = \"id\"\ncolumns = [\"u\"]\nto = \"https://x/{key}\"\n",
            "PGPASSWORD",
        ),
        (
            &CONFIG.replace("DB", &s.db.display().to_string()).replace("\"body\"", "\"no_such_column\""),
            "no_such_column",
        ),
        (
            "[[rewrite]]\ndatabase = \"sqlite://app.db\"\ntable = \"t\"\nid_column = \"id\"\ncolumns = [\"u\"]\nto = \"https://x/\"\n",
            "{key}",
        ),
    ] {
        std::fs::write(s.work.path().join("bad.toml"), config).unwrap();
        let out = r2migrate(s.work.path())
            .args(["rewrite-urls", "--config", "bad.toml"])
            .output()
            .unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{words}: {err}");
        assert!(!err.contains("hunter2"), "the password was repeated: {err}");
    }
}

/// The same application table in PostgreSQL (a real server, password and TLS on).
async fn pg_app(pg: &common::pg::Postgres) {
    let admin = pg.client("postgres").await;
    admin.execute("CREATE DATABASE app", &[]).await.unwrap();
    let app = pg.client("app").await;
    app.batch_execute(
        "CREATE TABLE media_files (id integer PRIMARY KEY, s3_url varchar(400), body text)",
    )
    .await
    .unwrap();
    for (id, url, _, body, _) in rows() {
        app.execute(
            "INSERT INTO media_files VALUES ($1, $2, $3)",
            &[&(id as i32), &url, &body],
        )
        .await
        .unwrap();
    }
}

async fn pg_values(pg: &common::pg::Postgres) -> Vec<(i64, String, String)> {
    let app = pg.client("app").await;
    app.query("SELECT id, s3_url, body FROM media_files ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn postgresql_urls_over_tls_are_rewritten_and_rolled_back_and_the_password_never_shows() {
    let s = migrated().await;
    let pg = common::pg::Postgres::start();
    pg_app(&pg).await;
    let before = pg_values(&pg).await;
    let verified = format!(
        "postgres://postgres@localhost:{}/app?sslmode=verify-full&sslrootcert={}",
        pg.port,
        pg.ca_file().display()
    );
    let encrypted = pg.url("app", "?sslmode=require");
    std::fs::write(
        s.work.path().join("pg.toml"),
        CONFIG
            .replacen("sqlite://DB", &verified, 1)
            .replacen("sqlite://DB", &encrypted, 1),
    )
    .unwrap();
    let cmd = |extra: &[&str]| {
        r2migrate(s.work.path())
            .env("PGPASSWORD", common::pg::PG_PASSWORD)
            .args(["rewrite-urls", "-vvv", "--json", "--config", "pg.toml"])
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = cmd(&["--dry-run"]);
    assert_exit(&dry, 1);
    assert_eq!(totals(&json_of(&dry), "urls_changed"), 6);
    assert_eq!(
        pg_values(&pg).await,
        before,
        "a dry run changed the database"
    );

    let out = cmd(&[]);
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(totals(&doc, "urls_changed"), 6, "{doc}");
    assert_eq!(totals(&doc, "rows_changed"), 6, "{doc}");
    let want: Vec<(i64, String, String)> = rows()
        .into_iter()
        .map(|(id, _, url, _, body)| (id, url.to_string(), body.to_string()))
        .collect();
    assert_eq!(pg_values(&pg).await, want);
    let manifest = std::fs::read_to_string(s.work.path().join("r2migrate-manifest.jsonl")).unwrap();
    for text in [
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        manifest,
    ] {
        assert!(
            !text.contains(common::pg::PG_PASSWORD),
            "the password leaked"
        );
    }
    assert_eq!(totals(&json_of(&cmd(&[])), "urls_changed"), 0, "idempotent");

    // A wrong password: exit 3, and the password is not repeated.
    let wrong = r2migrate(s.work.path())
        .env("PGPASSWORD", "not-the-password")
        .args(["rewrite-urls", "--dry-run", "--config", "pg.toml"])
        .output()
        .unwrap();
    assert_exit(&wrong, 3);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("PGPASSWORD") && !err.contains("not-the-password"),
        "{err}"
    );

    // The password from a pgpass file alone works.
    let pgpass = s.work.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("*:{}:app:postgres:{}\n", pg.port, common::pg::PG_PASSWORD),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_file = r2migrate(s.work.path())
        .env("PGPASSFILE", &pgpass)
        .args(["rewrite-urls", "--dry-run", "--json", "--config", "pg.toml"])
        .output()
        .unwrap();
    // Exit 1: the two URLs whose objects are not migrated are still there, by design.
    assert_exit(&from_file, 1);
    assert_eq!(totals(&json_of(&from_file), "rows_read"), 10);

    // The application edits one row; rollback restores the rest, keeps that one.
    pg.client("app")
        .await
        .execute(
            "UPDATE media_files SET s3_url = 'https://cdn.example.test/edited.png' WHERE id = 3",
            &[],
        )
        .await
        .unwrap();
    // A dry run judges every value as the rollback will, and writes nothing.
    let edited_now = pg_values(&pg).await;
    let dry = r2migrate_to(s.work.path(), &s.r2)
        .env("PGPASSWORD", common::pg::PG_PASSWORD)
        .args(["rollback", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_exit(&dry, 1);
    let ddoc = json_of(&dry);
    assert_eq!(ddoc["urls_kept"], 1, "{ddoc}");
    let would = restored(&ddoc);
    assert_eq!(edited_now, pg_values(&pg).await, "the dry run wrote");
    let rb = r2migrate_to(s.work.path(), &s.r2)
        .env("PGPASSWORD", common::pg::PG_PASSWORD)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 1);
    assert_eq!(json_of(&rb)["urls_kept"], 1);
    let did = restored(&json_of(&rb));
    assert!(would > 0 && would == did, "dry run {would}, rollback {did}");
    let mut expected = before.clone();
    expected[2].1 = "https://cdn.example.test/edited.png".into();
    assert_eq!(pg_values(&pg).await, expected);
    assert!(list_keys(&s.r2.client(), "media", "").await.is_empty());
}

/// The README's walk-through: the bundled fixtures into a rehearsal directory, then the
/// bundled site database's old CDN URLs pointed at the new host.
#[test]
fn the_bundled_site_database_walk_through() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures.join("site.db"), work.path().join("site.db")).unwrap();
    let out = to_rehearsal(work.path(), &["run"], &fixtures.join("media"));
    assert_exit(&out, 0);
    let out = r2migrate(work.path())
        .args(["rewrite-urls", "--json", "--config"])
        .arg(fixtures.join("site.toml"))
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(totals(&doc, "urls_changed"), 6, "{doc}");
    assert_eq!(totals(&doc, "not_migrated"), 1, "{doc}");
    let conn = Connection::open(work.path().join("site.db")).unwrap();
    let hero: String = conn
        .query_row("SELECT hero_url FROM pages WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        hero,
        "https://media.example.test/photos/2024/summer%20trip/beach%20sunset.jpg"
    );
    let body: String = conn
        .query_row("SELECT body_html FROM pages WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        body,
        "![done](https://media.example.test/photos/2024/100%25%20done.png) and https://example.com/other.png"
    );
}

/// A crash between two batches: what committed is in the manifest, line for line; the
/// same command again finishes the job; rollback puts every row back.
#[tokio::test]
async fn a_crash_between_batches_loses_nothing_and_a_rerun_finishes() {
    let s = migrated().await;
    let big = s.work.path().join("big.db");
    let conn = Connection::open(&big).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT)")
        .unwrap();
    for id in 0..600 {
        conn.execute(
            "INSERT INTO t VALUES (?1, 'https://media.s3.amazonaws.com/avatars/1.png')",
            [id],
        )
        .unwrap();
    }
    drop(conn);
    std::fs::write(
        s.work.path().join("big.toml"),
        format!(
            "[[rewrite]]\ndatabase = \"sqlite://{}\"\ntable = \"t\"\nid_column = \"id\"\ncolumns = [\"u\"]\nto = \"https://cdn.example.test/{{key}}\"\n",
            big.display()
        ),
    )
    .unwrap();
    let changed = || -> i64 {
        Connection::open(&big)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM t WHERE u LIKE 'https://cdn.%'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let lines = || {
        std::fs::read_to_string(s.work.path().join("r2migrate-manifest.jsonl"))
            .unwrap()
            .matches("\"type\":\"rewrite\"")
            .count()
    };
    let crashed = r2migrate(s.work.path())
        .env("R2MIGRATE_TEST_DIE_AFTER_REWRITE_BATCHES", "1")
        .args(["rewrite-urls", "--config", "big.toml", "--no-db-backup"])
        .output()
        .unwrap();
    assert!(
        crashed.status.code().is_none(),
        "it was to die: {crashed:?}"
    );
    assert_eq!(changed(), 256, "one batch committed");
    assert_eq!(lines(), 256, "and each of its changes is in the manifest");
    let again = r2migrate(s.work.path())
        .args([
            "rewrite-urls",
            "--json",
            "--config",
            "big.toml",
            "--no-db-backup",
        ])
        .output()
        .unwrap();
    assert_exit(&again, 0);
    assert_eq!(totals(&json_of(&again), "rows_changed"), 344);
    assert_eq!((changed(), lines()), (600, 600));
    let rb = r2migrate_to(s.work.path(), &s.r2)
        .args(["rollback", "--yes"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(changed(), 0, "every row is back");
}

/// WordPress's shapes in one table: a PHP-serialized option holding a URL and a
/// JSON-escaped one (each string's length recomputed in bytes), block markup with
/// escaped slashes, an `srcset` list; rewritten in place, then rolled back byte for byte.
#[tokio::test]
async fn wordpress_shapes_are_rewritten_in_place_and_rolled_back_byte_for_byte() {
    let s = migrated().await;
    let u = "https://media.s3.amazonaws.com/avatars/1.png";
    let esc = r"https:\/\/media.s3.amazonaws.com\/avatars\/2%20b.jpg";
    let json = format!(r#"{{"u":"{esc}"}}"#);
    let shapes = [
        (
            format!(
                r#"a:2:{{s:4:"logo";s:{}:"{u}";s:4:"meta";s:{}:"{json}";}}"#,
                u.len(),
                json.len()
            ),
            r#"a:2:{s:4:"logo";s:38:"https://cdn.example.test/avatars/1.png";s:4:"meta";s:54:"{"u":"https:\/\/cdn.example.test\/avatars\/2%20b.jpg"}";}"#.to_string(),
        ),
        (
            format!(r#"<!-- wp:image {{"url":"{esc}"}} --><img srcset="{u} 300w, {u} 1024w">"#),
            r#"<!-- wp:image {"url":"https:\/\/cdn.example.test\/avatars\/2%20b.jpg"} --><img srcset="https://cdn.example.test/avatars/1.png 300w, https://cdn.example.test/avatars/1.png 1024w">"#.to_string(),
        ),
        // Serialized data whose length is wrong already: left alone, its URL listed.
        (
            format!(r#"a:1:{{s:1:"k";s:99:"{u}";}}"#),
            format!(r#"a:1:{{s:1:"k";s:99:"{u}";}}"#),
        ),
    ];
    let conn = Connection::open(&s.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE wp_options (option_id INTEGER PRIMARY KEY, option_value TEXT)",
    )
    .unwrap();
    for (i, (before, _)) in shapes.iter().enumerate() {
        conn.execute(
            "INSERT INTO wp_options VALUES (?1, ?2)",
            rusqlite::params![i as i64 + 1, before],
        )
        .unwrap();
    }
    std::fs::write(
        s.work.path().join("wp.toml"),
        format!(
            "[[rewrite]]\ndatabase = \"sqlite://{}\"\ntable = \"wp_options\"\nid_column = \"option_id\"\ncolumns = [\"option_value\"]\nmode = \"embedded\"\nto = \"https://cdn.example.test/{{key}}\"\n",
            s.db.display()
        ),
    )
    .unwrap();
    let stored = || -> Vec<String> {
        let conn = Connection::open(&s.db).unwrap();
        let mut stmt = conn
            .prepare("SELECT option_value FROM wp_options ORDER BY option_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let out = r2migrate(s.work.path())
        .args(["rewrite-urls", "--json", "--config", "wp.toml"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(totals(&doc, "urls_changed"), 5, "{doc}");
    assert_eq!(totals(&doc, "not_migrated"), 1, "{doc}");
    let want: Vec<String> = shapes.iter().map(|(_, after)| after.clone()).collect();
    assert_eq!(stored(), want);
    let rb = r2migrate_to(s.work.path(), &s.r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    let original: Vec<String> = shapes.iter().map(|(before, _)| before.clone()).collect();
    assert_eq!(stored(), original);
}

/// The bundled WordPress database (fixtures/wordpress.db, built by
/// fixtures/make_wordpress_db.py): after the README's first command, its block markup,
/// srcset lists, serialized attachment metadata and options point at the new host, each
/// serialized length recomputed; rollback puts every byte back.
#[test]
fn the_bundled_wordpress_database_walk_through() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("wordpress.db");
    std::fs::copy(fixtures.join("wordpress.db"), &db).unwrap();
    let out = to_rehearsal(work.path(), &["run"], &fixtures.join("media"));
    assert_exit(&out, 0);
    let column = |table: &str, column: &str| -> Vec<String> {
        let conn = Connection::open(&db).unwrap();
        let sql = format!("SELECT {column} FROM {table} ORDER BY rowid");
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let all = || {
        [
            column("wp_posts", "post_content"),
            column("wp_postmeta", "meta_value"),
            column("wp_options", "option_value"),
        ]
    };
    let before = all();
    let rewrite = |extra: &[&str]| {
        r2migrate(work.path())
            .args(["rewrite-urls", "--json", "--config"])
            .arg(fixtures.join("wordpress.toml"))
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = rewrite(&["--dry-run"]);
    assert_exit(&dry, 1);
    let doc = json_of(&dry);
    assert_eq!(totals(&doc, "urls_changed"), 13, "{doc}");
    assert_eq!(totals(&doc, "not_migrated"), 2, "{doc}");
    // The value an earlier naive search-and-replace broke is listed with why.
    let broken = &doc["tables"][1]["not_migrated_urls"][0];
    assert_eq!(broken["id"], 4, "{doc}");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("PHP-serialized"),
        "{doc}"
    );
    assert_eq!(all(), before, "a dry run changed the database");
    assert_exit(&rewrite(&[]), 1);
    let [posts, meta, options] = all();
    assert!(posts[0].contains(
        r#""url":"https:\/\/media.example.test\/photos\/2024\/summer%20trip\/beach%20sunset.jpg""#
    ), "{}", posts[0]);
    assert!(posts[0].contains(
        r#"srcset="https://media.example.test/photos/2024/summer%20trip/dunes%20%232.jpg 300w, https://media.example.test/photos/2024/summer%20trip/beach%20sunset.jpg 1024w""#
    ), "{}", posts[0]);
    assert!(posts[1].contains("old-cdn.example.test/media/photos/gone.jpg"));
    // A cache-busting query and a fragment kept; a URL ending a sentence; \u002F slashes.
    assert!(
        posts[2].contains(r#"href="https://media.example.test/docs/readme.md?ver=6.4#install""#),
        "{}",
        posts[2]
    );
    assert!(
        posts[2].contains("https://media.example.test/avatars/user_43.gif!</p>"),
        "{}",
        posts[2]
    );
    assert!(posts[2].contains(r#"["https:\u002F\u002Fmedia.example.test\u002Fphotos\u002Fcaf%C3%A9\u002Fa%2Bb%3Dc.png"]"#), "{}", posts[2]);
    // A serialized object, its nested array, a percent-encoded key: lengths in bytes.
    assert_eq!(
        meta[2],
        r#"O:8:"stdClass":2:{s:3:"src";s:46:"https://media.example.test/avatars/user_42.png";s:5:"sizes";a:1:{i:0;s:56:"https://media.example.test/photos/2024/100%25%20done.png";}}"#
    );
    assert_eq!(
        meta[3], before[1][3],
        "broken serialized data is left as it is"
    );
    assert!(meta[0].contains(
        r#"s:8:"original";s:71:"https://media.example.test/photos/2024/summer%20trip/beach%20sunset.jpg";"#
    ), "{}", meta[0]);
    assert_eq!(
        options[0],
        r#"a:2:{s:3:"url";s:46:"https://media.example.test/avatars/user_42.png";s:3:"alt";s:5:"café";}"#
    );
    let rb = r2migrate(work.path())
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(all(), before, "rollback puts every byte back");
}

/// The WordPress fixture's tables in PostgreSQL: the same shapes, the same counts and the
/// same bytes as in SQLite, and rollback puts every byte back.
#[tokio::test]
async fn the_wordpress_shapes_in_postgresql_become_what_they_become_in_sqlite() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let work = tempfile::tempdir().unwrap();
    let lite = work.path().join("wordpress.db");
    std::fs::copy(fixtures.join("wordpress.db"), &lite).unwrap();
    assert_exit(
        &to_rehearsal(work.path(), &["run"], &fixtures.join("media")),
        0,
    );
    let pg = common::pg::Postgres::start();
    pg.client("postgres")
        .await
        .execute("CREATE DATABASE wordpress", &[])
        .await
        .unwrap();
    let client = pg.client("wordpress").await;
    // WordPress's column names, quoted where PostgreSQL would fold them.
    for ((table, id, col), rows) in WP_COLUMNS.iter().zip(fixture_values(&lite)) {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (\"{id}\" bigint PRIMARY KEY, {col} text)"
            ))
            .await
            .unwrap();
        for (i, v) in rows {
            client
                .execute(&format!("INSERT INTO {table} VALUES ($1, $2)"), &[&i, &v])
                .await
                .unwrap();
        }
    }
    let pg_values = || async {
        let mut all = Vec::new();
        for (table, id, col) in WP_COLUMNS {
            let rows = client
                .query(
                    &format!("SELECT \"{id}\", {col} FROM {table} ORDER BY \"{id}\""),
                    &[],
                )
                .await
                .unwrap();
            all.push(
                rows.iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
                    .collect::<Vec<_>>(),
            );
        }
        all
    };
    let before = pg_values().await;
    assert_eq!(before, fixture_values(&fixtures.join("wordpress.db")));
    let toml = std::fs::read_to_string(fixtures.join("wordpress.toml")).unwrap();
    std::fs::write(
        work.path().join("pg.toml"),
        toml.replace("sqlite://wordpress.db", &pg.url("wordpress", "")),
    )
    .unwrap();
    let rewrite = |config: &Path, extra: &[&str]| {
        r2migrate(work.path())
            .env("PGPASSWORD", common::pg::PG_PASSWORD)
            .args(["rewrite-urls", "--json", "--config"])
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = rewrite(&work.path().join("pg.toml"), &["--dry-run"]);
    assert_exit(&dry, 1);
    assert_eq!(
        per_table(&json_of(&dry)),
        vec![
            ("wp_posts".into(), 3, 3, 8, 1),
            ("wp_postmeta".into(), 4, 2, 4, 1),
            ("wp_options".into(), 2, 1, 1, 0),
        ]
    );
    assert_eq!(pg_values().await, before, "a dry run changed the database");
    assert_exit(&rewrite(&work.path().join("pg.toml"), &[]), 1);
    assert_exit(&rewrite(&fixtures.join("wordpress.toml"), &[]), 1);
    let after = pg_values().await;
    assert_ne!(after, before);
    assert_eq!(after, fixture_values(&lite), "the same bytes as SQLite's");
    let rb = r2migrate(work.path())
        .env("PGPASSWORD", common::pg::PG_PASSWORD)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(pg_values().await, before, "rollback puts every byte back");
}

/// More rows than one page, whose ids sort differently as text ("10" < "9"): every row is
/// read once, in id order, and every URL rewritten. (Pages were ordered by the id's text
/// while resuming from its number, and 9,617 of 100,000 rows were never read.)
#[tokio::test]
async fn postgresql_pages_read_every_row_once_in_id_order() {
    let s = migrated().await;
    let pg = common::pg::Postgres::start();
    pg.client("postgres")
        .await
        .execute("CREATE DATABASE many", &[])
        .await
        .unwrap();
    let client = pg.client("many").await;
    client
        .batch_execute(
            "CREATE TABLE media_files (id bigint PRIMARY KEY, s3_url text);
             INSERT INTO media_files SELECT i, 'https://media.s3.amazonaws.com/avatars/1.png'
               FROM generate_series(1, 1200) AS i;",
        )
        .await
        .unwrap();
    std::fs::write(
        s.work.path().join("many.toml"),
        format!(
            "[[rewrite]]\ndatabase = \"{}\"\ntable = \"media_files\"\nid_column = \"id\"\ncolumns = [\"s3_url\"]\nto = \"https://cdn.example.test/{{key}}\"\n",
            pg.url("many", "?sslmode=disable")
        ),
    )
    .unwrap();
    let out = r2migrate(s.work.path())
        .env("PGPASSWORD", common::pg::PG_PASSWORD)
        .args(["rewrite-urls", "--json", "--config", "many.toml"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(totals(&doc, "rows_read"), 1200, "{doc}");
    assert_eq!(totals(&doc, "urls_changed"), 1200, "{doc}");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM media_files WHERE s3_url NOT LIKE 'https://cdn.example.test/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
