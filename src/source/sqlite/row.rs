//! What the SQLite seam says about one row: its settings (table, columns, write-back),
//! the row as listed ([`RowRef`]) and what the manifest records of it ([`RowRecord`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::blob::BlobForm;

/// `[source.write_back]`: rewrite rows after a verified upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    pub key_column: Option<String>,
    pub url_column: Option<String>,
    pub url_template: Option<String>,
    #[serde(default)]
    pub clear_data: bool,
}

/// A SQLite source's table and columns, validated against the database when opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SqliteSettings {
    pub table: String,
    pub id_column: String,
    pub data_column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "where")]
    pub where_clause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackConfig>,
    /// Columns a key or URL template names (beyond the built-in placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_columns: Vec<String>,
}

/// A SQLite row behind an object: its id and a fingerprint of the original value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowRef {
    pub id: String,
    pub id_is_int: bool,
    /// Hex SHA-256 and length of the stored text, as it was when read.
    pub original_sha256: String,
    pub original_len: u64,
    pub form: Option<BlobForm>,
    /// Values templates may use: `id`, `ext`, and named columns.
    pub vars: BTreeMap<String, String>,
}

/// What the manifest records about a row (the `row` field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    pub id: String,
    pub id_is_int: bool,
    /// Hex SHA-256 and length of the original text.
    pub original_sha256: String,
    pub original_len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BlobForm>,
    /// The row now holds the key/url (and no text, if `cleared`).
    #[serde(default)]
    pub written: bool,
    #[serde(default)]
    pub cleared: bool,
    /// The key and url columns' values before the rewrite (JSON null for SQL NULL).
    #[serde(default)]
    pub key_before: serde_json::Value,
    #[serde(default)]
    pub url_before: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `VACUUM INTO` copy holding the original text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_db: Option<String>,
}

impl From<&RowRef> for RowRecord {
    fn from(r: &RowRef) -> RowRecord {
        RowRecord {
            id: r.id.clone(),
            id_is_int: r.id_is_int,
            original_sha256: r.original_sha256.clone(),
            original_len: r.original_len,
            form: r.form.clone(),
            ..Default::default()
        }
    }
}
