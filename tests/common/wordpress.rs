//! The WordPress fixture (fixtures/wordpress.db) as the rewrite tests compare it across
//! databases: its three tables with their id and URL columns, their values, and each
//! table's counts from a `rewrite-urls --json` document, and what a rollback put back.

use std::path::Path;

/// (table, id column, column holding URLs), as fixtures/wordpress.toml names them.
pub const WP_COLUMNS: [(&str, &str, &str); 3] = [
    ("wp_posts", "ID", "post_content"),
    ("wp_postmeta", "meta_id", "meta_value"),
    ("wp_options", "option_id", "option_value"),
];

/// Each table's (id, value) rows of a SQLite copy of the fixture, in id order.
pub fn fixture_values(db: &Path) -> Vec<Vec<(i64, String)>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    WP_COLUMNS
        .iter()
        .map(|(table, id, column)| {
            let mut stmt = conn
                .prepare(&format!("SELECT {id}, {column} FROM {table} ORDER BY {id}"))
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        })
        .collect()
}

/// Each table's (name, rows_read, rows_changed, urls_changed, not_migrated).
pub fn per_table(doc: &serde_json::Value) -> Vec<(String, u64, u64, u64, u64)> {
    doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |f: &str| t[f].as_u64().unwrap();
            (
                t["table"].as_str().unwrap().to_string(),
                n("rows_read"),
                n("rows_changed"),
                n("urls_changed"),
                n("not_migrated"),
            )
        })
        .collect()
}

/// How many values a rollback's JSON says it put back (or, dry, would).
pub fn restored(doc: &serde_json::Value) -> usize {
    doc["urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["action"] == "url_restored")
        .count()
}
