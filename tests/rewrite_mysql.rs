//! `rewrite-urls` and `rollback` against a real MariaDB (Debian's, started per test on a
//! loopback port with TLS and a password): WordPress's own tables, with the values of
//! fixtures/wordpress.db, rewritten exactly as the SQLite fixture is; batches across
//! page boundaries and a crash between them; latin1 columns kept byte for byte; values
//! a column cannot hold refused for their row; passwords only from MYSQL_PWD or
//! ~/.my.cnf, never shown; TLS verified when asked.

mod common;

use std::path::Path;

use common::mariadb::{MariaDb, MY_PASSWORD};
use common::wordpress::{fixture_values, per_table, restored, WP_COLUMNS};
use common::{assert_exit, json_of, r2migrate, to_rehearsal};
use mysql_async::prelude::Queryable;

const OLD: &str = "https://old-cdn.example.test/media/";

/// WordPress's schema (wp-admin/includes/schema.php), as a 6.x site creates it.
const WP_SCHEMA: &str = "
CREATE TABLE wp_posts (
  ID bigint(20) unsigned NOT NULL auto_increment,
  post_author bigint(20) unsigned NOT NULL default '0',
  post_date datetime NOT NULL default '2024-01-01 00:00:00',
  post_content longtext NOT NULL,
  post_title text NOT NULL,
  post_status varchar(20) NOT NULL default 'publish',
  guid varchar(255) NOT NULL default '',
  post_type varchar(20) NOT NULL default 'post',
  PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_postmeta (
  meta_id bigint(20) unsigned NOT NULL auto_increment,
  post_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY (meta_id),
  KEY post_id (post_id),
  KEY meta_key (meta_key(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_options (
  option_id bigint(20) unsigned NOT NULL auto_increment,
  option_name varchar(191) NOT NULL default '',
  option_value longtext NOT NULL,
  autoload varchar(20) NOT NULL default 'yes',
  PRIMARY KEY (option_id),
  UNIQUE KEY option_name (option_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
";

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The bundled site's media copied into `./rehearsal` of `work` (the README's first step).
fn migrated_media(work: &Path) {
    assert_exit(&to_rehearsal(work, &["run"], &fixtures().join("media")), 0);
}

/// `r2migrate` with the MariaDB password in MYSQL_PWD and HOME in `work` (so the
/// machine's own ~/.my.cnf is never read).
fn with_password(work: &Path) -> assert_cmd::Command {
    let mut cmd = r2migrate(work);
    cmd.env("MYSQL_PWD", MY_PASSWORD).env("HOME", work);
    cmd
}

/// Database `db` with WordPress's tables holding fixtures/wordpress.db's rows.
async fn load_wordpress(my: &MariaDb, db: &str) {
    let mut admin = my.conn(None).await;
    admin
        .query_drop(format!("CREATE DATABASE {db} CHARACTER SET utf8mb4"))
        .await
        .unwrap();
    let mut conn = my.conn(Some(db)).await;
    conn.query_drop(WP_SCHEMA).await.unwrap();
    let lite = rusqlite::Connection::open(fixtures().join("wordpress.db")).unwrap();
    let rows = |sql: &str| -> Vec<Vec<String>> {
        let mut stmt = lite.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => panic!("{other:?}"),
                })
                .collect()
        })
        .collect()
    };
    for r in rows("SELECT ID, post_title, post_content FROM wp_posts ORDER BY ID") {
        conn.exec_drop(
            "INSERT INTO wp_posts (ID, post_title, post_content, guid) VALUES (?, ?, ?, ?)",
            (
                &r[0],
                &r[1],
                &r[2],
                format!("https://example.test/?p={}", r[0]),
            ),
        )
        .await
        .unwrap();
    }
    for r in rows("SELECT meta_id, post_id, meta_key, meta_value FROM wp_postmeta ORDER BY meta_id")
    {
        conn.exec_drop(
            "INSERT INTO wp_postmeta VALUES (?, ?, ?, ?)",
            (&r[0], &r[1], &r[2], &r[3]),
        )
        .await
        .unwrap();
    }
    for r in rows("SELECT option_id, option_name, option_value FROM wp_options ORDER BY option_id")
    {
        conn.exec_drop(
            "INSERT INTO wp_options (option_id, option_name, option_value) VALUES (?, ?, ?)",
            (&r[0], &r[1], &r[2]),
        )
        .await
        .unwrap();
    }
}

/// Every stored byte of `column` (as hex, so no conversion hides a change), by id.
async fn hex_of(my: &MariaDb, db: &str, table: &str, id: &str, column: &str) -> Vec<(u64, String)> {
    my.conn(Some(db))
        .await
        .exec(
            format!("SELECT {id}, HEX({column}) FROM {table} ORDER BY {id}"),
            (),
        )
        .await
        .unwrap()
}

async fn texts_of(my: &MariaDb, db: &str, table: &str, id: &str, column: &str) -> Vec<String> {
    my.conn(Some(db))
        .await
        .exec(format!("SELECT {column} FROM {table} ORDER BY {id}"), ())
        .await
        .unwrap()
}

async fn wp_hex(my: &MariaDb, db: &str) -> Vec<Vec<(u64, String)>> {
    let mut all = Vec::new();
    for (table, id, column) in WP_COLUMNS {
        all.push(hex_of(my, db, table, id, column).await);
    }
    all
}

/// The values of each table, without their ids.
fn texts(tables: Vec<Vec<(i64, String)>>) -> Vec<Vec<String>> {
    tables
        .into_iter()
        .map(|t| t.into_iter().map(|(_, v)| v).collect())
        .collect()
}

#[tokio::test]
async fn wordpress_in_mariadb_is_rewritten_as_in_sqlite_and_rolled_back_byte_for_byte() {
    let my = MariaDb::start();
    load_wordpress(&my, "wordpress").await;
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    migrated_media(work);
    let lite = work.join("wordpress.db");
    std::fs::copy(fixtures().join("wordpress.db"), &lite).unwrap();
    let before = wp_hex(&my, "wordpress").await;
    // Checked against the test CA, host name and all.
    let url = format!(
        "mariadb://wp@localhost:{}/wordpress?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        my.port,
        my.ca_file().display()
    );
    let wp_toml = std::fs::read_to_string(fixtures().join("wordpress.toml")).unwrap();
    std::fs::write(
        work.join("my.toml"),
        wp_toml.replace("sqlite://wordpress.db", &url),
    )
    .unwrap();
    let rewrite = |config: &Path, extra: &[&str]| {
        with_password(work)
            .args(["rewrite-urls", "--json", "--config"])
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    };

    let dry = rewrite(&work.join("my.toml"), &["--dry-run"]);
    assert_exit(&dry, 1);
    let counts = per_table(&json_of(&dry));
    assert_eq!(
        counts,
        vec![
            ("wp_posts".into(), 3, 3, 8, 1),
            ("wp_postmeta".into(), 4, 2, 4, 1),
            ("wp_options".into(), 2, 1, 1, 0),
        ],
        "{}",
        json_of(&dry)
    );
    assert_eq!(
        wp_hex(&my, "wordpress").await,
        before,
        "a dry run changed the database"
    );
    let lite_dry = rewrite(&fixtures().join("wordpress.toml"), &["--dry-run"]);
    assert_eq!(
        per_table(&json_of(&lite_dry)),
        counts,
        "SQLite counts the same"
    );

    // The same rules over the same values: byte for byte what the SQLite fixture becomes.
    let out = rewrite(&work.join("my.toml"), &[]);
    assert_exit(&out, 1);
    assert_exit(&rewrite(&fixtures().join("wordpress.toml"), &[]), 1);
    let mut in_mariadb = Vec::new();
    for (table, id, column) in WP_COLUMNS {
        in_mariadb.push(texts_of(&my, "wordpress", table, id, column).await);
    }
    assert_eq!(in_mariadb, texts(fixture_values(&lite)));
    assert!(in_mariadb[2][0].contains(r#"s:46:"https://media.example.test/avatars/user_42.png";"#));
    assert!(in_mariadb[0][1].contains("old-cdn.example.test/media/photos/gone.jpg"));
    let manifest = std::fs::read_to_string(work.join("r2migrate-manifest.jsonl")).unwrap();
    for text in [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        manifest,
    ] {
        assert!(!text.contains(MY_PASSWORD), "the password leaked");
    }
    let again = json_of(&rewrite(&work.join("my.toml"), &[]));
    assert!(
        per_table(&again).iter().all(|t| t.3 == 0),
        "idempotent: {again}"
    );

    // One rollback puts both databases back, every byte.
    let rb = with_password(work)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    // Six changed values in each database.
    assert_eq!(restored(&json_of(&rb)), 12, "{}", json_of(&rb));
    assert_eq!(
        wp_hex(&my, "wordpress").await,
        before,
        "rollback puts every byte back"
    );
    assert_eq!(
        texts(fixture_values(&lite)),
        texts(fixture_values(&fixtures().join("wordpress.db")))
    );
}

/// The config for one `[[rewrite]]` of a table in MariaDB.
fn rule(url: &str, table: &str, id: &str, column: &str, mode: &str, to: &str) -> String {
    format!(
        "[[rewrite]]\ndatabase = \"{url}\"\ntable = \"{table}\"\nid_column = \"{id}\"\ncolumns = [\"{column}\"]\nmode = \"{mode}\"\nfrom = [\"{OLD}\"]\nto = \"{to}\"\n"
    )
}

const KEYS: [&str; 4] = [
    "avatars/user_42.png",
    "photos/2024/summer%20trip/beach%20sunset.jpg",
    "photos/caf%C3%A9/a%2Bb%3Dc.png",
    "docs/readme.md",
];

#[tokio::test]
async fn mariadb_batches_survive_a_crash_and_roll_back() {
    let my = MariaDb::start();
    let mut admin = my.conn(None).await;
    admin.query_drop("CREATE DATABASE shop").await.unwrap();
    let mut conn = my.conn(Some("shop")).await;
    conn.query_drop(
        "CREATE TABLE products (id int NOT NULL PRIMARY KEY, img varchar(500), note text) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .await
    .unwrap();
    // 600 rows, ids with gaps; every tenth has no URL of the source and is never touched.
    let mut with_url = Vec::new();
    for i in 1..=600u32 {
        let id = i * 3;
        let img = if i % 10 == 0 {
            format!("https://elsewhere.example.test/{i}.png")
        } else {
            with_url.push(id);
            format!("{OLD}{}", KEYS[i as usize % KEYS.len()])
        };
        conn.exec_drop("INSERT INTO products VALUES (?, ?, 'n')", (id, img))
            .await
            .unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    migrated_media(work);
    let before = hex_of(&my, "shop", "products", "id", "img").await;
    let url = my.url("shop", "?ssl-mode=REQUIRED");
    std::fs::write(
        work.join("shop.toml"),
        rule(
            &url,
            "products",
            "id",
            "img",
            "url",
            "https://media.example.test/{key}",
        ),
    )
    .unwrap();
    let changed = || async {
        let n: Option<u64> = my
            .conn(Some("shop"))
            .await
            .query_first(
                "SELECT COUNT(*) FROM products WHERE img LIKE 'https://media.example.test/%'",
            )
            .await
            .unwrap();
        n.unwrap()
    };
    let lines = || {
        std::fs::read_to_string(work.join("r2migrate-manifest.jsonl"))
            .unwrap()
            .matches("\"type\":\"rewrite\"")
            .count()
    };
    let crashed = with_password(work)
        .env("R2MIGRATE_TEST_DIE_AFTER_REWRITE_BATCHES", "1")
        .args(["rewrite-urls", "--config", "shop.toml"])
        .output()
        .unwrap();
    assert!(
        crashed.status.code().is_none(),
        "it was to die: {crashed:?}"
    );
    // The first page is 256 rows; those of them with a source URL committed, each in
    // the manifest.
    let first_page = with_url.iter().filter(|&&id| id <= 256 * 3).count();
    assert_eq!(changed().await, first_page as u64, "one batch committed");
    assert_eq!(
        lines(),
        first_page,
        "and each of its changes is in the manifest"
    );

    let out = with_password(work)
        .args(["rewrite-urls", "--json", "--config", "shop.toml"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(
        per_table(&doc),
        vec![(
            "products".into(),
            600,
            (with_url.len() - first_page) as u64,
            (with_url.len() - first_page) as u64,
            0
        )]
    );
    assert_eq!(changed().await, with_url.len() as u64);
    assert_eq!(lines(), with_url.len());
    let after = hex_of(&my, "shop", "products", "id", "img").await;
    for ((id, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(with_url.contains(&(*id as u32)), a != b, "row {id}");
    }
    let texts = texts_of(&my, "shop", "products", "id", "img").await;
    assert!(
        texts.contains(&"https://media.example.test/photos/caf%C3%A9/a%2Bb%3Dc.png".to_string())
    );

    // The application edits one row after the rewrite, changing only letters' case: a
    // case-insensitive collation calls it equal, its bytes are not, so rollback keeps it.
    let edited = with_url[0];
    my.conn(Some("shop"))
        .await
        .exec_drop(
            "UPDATE products SET img = UPPER(img) WHERE id = ?",
            (edited,),
        )
        .await
        .unwrap();
    // A dry run judges every value as the rollback will, and writes nothing.
    let edited_now = hex_of(&my, "shop", "products", "id", "img").await;
    let dry = with_password(work)
        .args(["rollback", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_exit(&dry, 1);
    let ddoc = json_of(&dry);
    assert_eq!(restored(&ddoc), with_url.len() - 1, "{ddoc}");
    assert_eq!(ddoc["urls_kept"], 1, "{ddoc}");
    assert_eq!(
        hex_of(&my, "shop", "products", "id", "img").await,
        edited_now
    );
    let rb = with_password(work)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 1);
    let doc = json_of(&rb);
    assert_eq!(restored(&doc), with_url.len() - 1, "{doc}");
    assert_eq!(doc["urls_kept"], 1, "{doc}");
    let now = hex_of(&my, "shop", "products", "id", "img").await;
    for ((id, b), (_, a)) in before.iter().zip(&now) {
        if *id == u64::from(edited) {
            let upper = "https://media.example.test/photos/2024/summer%20trip/beach%20sunset.jpg"
                .to_uppercase();
            assert_eq!(
                *a,
                hex::encode_upper(upper),
                "the application's edit was overwritten"
            );
        } else {
            assert_eq!(a, b, "row {id}");
        }
    }
}

#[tokio::test]
async fn latin1_columns_keep_their_bytes_and_what_a_column_cannot_hold_is_refused() {
    let my = MariaDb::start();
    let mut admin = my.conn(None).await;
    admin.query_drop("CREATE DATABASE legacy").await.unwrap();
    let mut conn = my.conn(Some("legacy")).await;
    conn.query_drop(
        "CREATE TABLE pages (id int PRIMARY KEY, body text CHARACTER SET latin1) ENGINE=InnoDB;
         CREATE TABLE links (id bigint unsigned PRIMARY KEY, guid varchar(80) CHARACTER SET utf8mb4) ENGINE=InnoDB;
         CREATE TABLE old_pages (id int PRIMARY KEY, body text) ENGINE=MyISAM;",
    )
    .await
    .unwrap();
    let img = format!("<img src=\"{OLD}avatars/user_42.png\">");
    // Latin-1 text (é, an en dash and curly quotes: Windows-1252's bytes), and UTF-8
    // bytes stored in a latin1 column as old WordPress sites did ("naïve" twice encoded).
    conn.exec_drop(
        "INSERT INTO pages VALUES (1, ?)",
        (format!("café – “quoted” {img} trailing  "),),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "INSERT INTO pages VALUES (2, CONCAT(_latin1 X'6E61C3AF7665', ?))",
        (format!(" {img}"),),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "INSERT INTO links VALUES (1, ?), (2, ?)",
        (
            format!("{OLD}avatars/user_42.png"),
            format!("{OLD}photos/2024/summer%20trip/beach%20sunset.jpg"),
        ),
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    migrated_media(work);
    let url = my.url("legacy", "");
    let pages_before = hex_of(&my, "legacy", "pages", "id", "body").await;
    let links_before = hex_of(&my, "legacy", "links", "id", "guid").await;
    let run = |config: &str, extra: &[&str]| {
        std::fs::write(work.join("legacy.toml"), config).unwrap();
        with_password(work)
            .args(["rewrite-urls", "--json", "--config", "legacy.toml"])
            .args(extra)
            .output()
            .unwrap()
    };

    // A `to` with a character latin1 lacks: refused for each row, nothing stored.
    let arrow = run(
        &rule(
            &url,
            "pages",
            "id",
            "body",
            "embedded",
            "https://media.example.test/→/{key}",
        ),
        &[],
    );
    assert_exit(&arrow, 1);
    let doc = json_of(&arrow);
    let listed = &doc["tables"][0]["not_migrated_urls"];
    assert_eq!(listed.as_array().unwrap().len(), 2, "{doc}");
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("latin1"),
        "{doc}"
    );
    assert_eq!(
        hex_of(&my, "legacy", "pages", "id", "body").await,
        pages_before
    );

    // A `to` it can hold: only the URL's bytes change; é, –, “ ” and the twice-encoded
    // ï keep theirs (no mojibake), and so do the trailing spaces.
    let config = rule(
        &url,
        "pages",
        "id",
        "body",
        "embedded",
        "https://media.example.test/{key}",
    ) + &rule(
        &url,
        "links",
        "id",
        "guid",
        "url",
        "https://pub-0123456789abcdef0123.media.example.test/{key}",
    );
    let out = run(&config, &[]);
    assert_exit(&out, 1);
    let hex = |s: &str| hex::encode_upper(s.as_bytes());
    let want: Vec<(u64, String)> = pages_before
        .iter()
        .map(|(id, h)| {
            (
                *id,
                h.replace(
                    &hex(&format!("{OLD}avatars")),
                    &hex("https://media.example.test/avatars"),
                ),
            )
        })
        .collect();
    assert_ne!(want, pages_before);
    assert_eq!(hex_of(&my, "legacy", "pages", "id", "body").await, want);
    // links: the short URL fits its VARCHAR(80); the long one would not and is left.
    let doc = json_of(&out);
    let links = &doc["tables"][1];
    assert_eq!(
        (
            links["urls_changed"].as_u64(),
            links["not_migrated"].as_u64()
        ),
        (Some(1), Some(1)),
        "{doc}"
    );
    assert!(
        links["not_migrated_urls"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("holds 80"),
        "{doc}"
    );
    let guids = texts_of(&my, "legacy", "links", "id", "guid").await;
    assert_eq!(
        guids[0],
        "https://pub-0123456789abcdef0123.media.example.test/avatars/user_42.png"
    );
    assert_eq!(
        guids[1],
        format!("{OLD}photos/2024/summer%20trip/beach%20sunset.jpg")
    );

    let rb = with_password(work)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rb, 0);
    assert_eq!(
        hex_of(&my, "legacy", "pages", "id", "body").await,
        pages_before
    );
    assert_eq!(
        hex_of(&my, "legacy", "links", "id", "guid").await,
        links_before
    );

    // A table without transactions cannot commit after its manifest lines: exit 2.
    let myisam = run(
        &rule(
            &url,
            "old_pages",
            "id",
            "body",
            "embedded",
            "https://x.test/{key}",
        ),
        &["--dry-run"],
    );
    assert_exit(&myisam, 2);
    assert!(String::from_utf8_lossy(&myisam.stderr).contains("ENGINE=InnoDB"));

    // Every byte latin1 stores comes back as a character r2migrate knows it can hold.
    for b in 0u8..=255 {
        let c: Option<String> = conn
            .query_first(format!("SELECT CONVERT(_latin1 X'{b:02X}' USING utf8mb4)"))
            .await
            .unwrap();
        let c = c.unwrap();
        assert!(
            r2migrate::rewrite::mysql_settings::holds("latin1", &c),
            "byte {b:#x} is {c:?}"
        );
    }
}

#[tokio::test]
async fn mariadb_passwords_come_from_mysql_pwd_or_my_cnf_and_tls_is_verified() {
    let my = MariaDb::start();
    load_wordpress(&my, "wordpress").await;
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    migrated_media(work);
    let dry = |url: &str, pw: Option<&str>| {
        std::fs::write(
            work.join("wp.toml"),
            rule(
                url,
                "wp_options",
                "option_id",
                "option_value",
                "embedded",
                "https://media.example.test/{key}",
            ),
        )
        .unwrap();
        let mut cmd = r2migrate(work);
        cmd.env("HOME", work).env_remove("MYSQL_PWD");
        if let Some(pw) = pw {
            cmd.env("MYSQL_PWD", pw);
        }
        cmd.args(["rewrite-urls", "--dry-run", "--json", "--config", "wp.toml"])
            .output()
            .unwrap()
    };
    // A wrong password: exit 3, said without repeating it.
    let wrong = dry(&my.url("wordpress", ""), Some("not-the-password-9q"));
    assert_exit(&wrong, 3);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("MYSQL_PWD") && !err.contains("not-the-password-9q"),
        "{err}"
    );
    // In the URL: refused before connecting, exit 2, not repeated.
    let in_url = dry(
        &format!("mysql://wp:{MY_PASSWORD}@127.0.0.1:{}/wordpress", my.port),
        None,
    );
    assert_exit(&in_url, 2);
    assert!(!String::from_utf8_lossy(&in_url.stderr).contains(MY_PASSWORD));
    // From the [client] group of ~/.my.cnf alone.
    let cnf = work.join(".my.cnf");
    std::fs::write(
        &cnf,
        format!("[mysql]\npassword=wrong\n[client]\npassword = \"{MY_PASSWORD}\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cnf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_cnf = dry(
        &my.url(
            "wordpress",
            &format!("?ssl-mode=VERIFY_CA&ssl-ca={}", my.ca_file().display()),
        ),
        None,
    );
    assert_exit(&from_cnf, 0);
    assert_eq!(per_table(&json_of(&from_cnf))[0].3, 1);
    // A CA that did not sign the server's certificate: refused, exit 3.
    let other = tempfile::tempdir().unwrap();
    common::certs::make(other.path());
    let wrong_ca = dry(
        &my.url(
            "wordpress",
            &format!(
                "?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
                other.path().join("ca.crt").display()
            ),
        ),
        Some(MY_PASSWORD),
    );
    assert_exit(&wrong_ca, 3);
    // No TLS at all, when asked for.
    assert_exit(
        &dry(
            &my.url("wordpress", "?ssl-mode=DISABLED"),
            Some(MY_PASSWORD),
        ),
        0,
    );
}

/// Rows the application changes after `rewrite-urls` read them and before it writes: a
/// new value, and one that differs only in letter case (equal under the column's
/// case-insensitive collation, not in its bytes). Neither is overwritten, nor recorded.
#[tokio::test]
async fn rows_the_application_changes_meanwhile_are_left_as_it_wrote_them() {
    let my = MariaDb::start();
    my.conn(None)
        .await
        .query_drop("CREATE DATABASE app")
        .await
        .unwrap();
    let mut conn = my.conn(Some("app")).await;
    conn.query_drop(
        "CREATE TABLE media (id int PRIMARY KEY, url varchar(300)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci",
    )
    .await
    .unwrap();
    for id in 1..=10 {
        conn.exec_drop(
            "INSERT INTO media VALUES (?, ?)",
            (id, format!("{OLD}avatars/user_42.png")),
        )
        .await
        .unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_path_buf();
    migrated_media(&work);
    std::fs::write(
        work.join("app.toml"),
        rule(
            &my.url("app", ""),
            "media",
            "id",
            "url",
            "url",
            "https://media.example.test/{key}",
        ),
    )
    .unwrap();
    let hold = tempfile::tempdir().unwrap();
    let mut cmd = with_password(&work);
    cmd.env("R2MIGRATE_TEST_HOLD_REWRITE", hold.path()).args([
        "rewrite-urls",
        "--json",
        "--config",
        "app.toml",
    ]);
    let running = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !hold.path().join("held").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "rewrite-urls never got to its batch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let upper = format!("{OLD}avatars/user_42.png").to_uppercase();
    conn.exec_drop("UPDATE media SET url = ? WHERE id = 1", (&upper,))
        .await
        .unwrap();
    conn.query_drop("UPDATE media SET url = 'https://app.example.test/new.png' WHERE id = 2")
        .await
        .unwrap();
    std::fs::write(hold.path().join("go"), b"").unwrap();
    let out = running.await.unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(
        per_table(&doc),
        vec![("media".into(), 10, 8, 8, 0)],
        "{doc}"
    );
    assert_eq!(doc["tables"][0]["rows_changed_by_others"], 2, "{doc}");
    let urls = texts_of(&my, "app", "media", "id", "url").await;
    assert_eq!(
        urls[0], upper,
        "the application's case-only edit was overwritten"
    );
    assert_eq!(urls[1], "https://app.example.test/new.png");
    assert!(urls[2..]
        .iter()
        .all(|u| u == "https://media.example.test/avatars/user_42.png"));
    let manifest = std::fs::read_to_string(work.join("r2migrate-manifest.jsonl")).unwrap();
    assert_eq!(manifest.matches("\"type\":\"rewrite\"").count(), 8);
}
