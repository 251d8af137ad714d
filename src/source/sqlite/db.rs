//! The SQL side of the SQLite seam: quoting identifiers, connections that wait for the
//! application's writers, and row values to and from the JSON the manifest keeps.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

/// `"name"` with embedded quotes doubled.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A connection that waits for the application's writers instead of failing.
pub fn connect(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(wait_for_lock))?;
    Ok(conn)
}

/// How long a statement waits for the application's writers before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often it looks again. SQLite's own busy timeout backs off to 100 ms between looks,
/// and an application that writes back to back can then keep the lock for the whole
/// timeout (seen: every write-back batch failed after 30 s); looking every 2 ms finds the
/// gaps between its transactions.
const LOCK_POLL: Duration = Duration::from_millis(2);

fn wait_for_lock(attempts: i32) -> bool {
    if LOCK_POLL * attempts.max(0) as u32 >= LOCK_WAIT {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// The row id as the manifest spells it, and whether it is an integer.
pub fn id_text(v: &Value) -> Option<(String, bool)> {
    match v {
        Value::Integer(i) => Some((i.to_string(), true)),
        Value::Text(t) => Some((t.clone(), false)),
        _ => None,
    }
}

/// The id back as a value to bind.
pub fn id_value(id: &str, is_int: bool) -> Value {
    if is_int {
        id.parse::<i64>()
            .map(Value::Integer)
            .unwrap_or_else(|_| Value::Text(id.to_string()))
    } else {
        Value::Text(id.to_string())
    }
}

pub fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// A SQL value as JSON, exactly (text stays text, numbers stay numbers).
pub fn to_json(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => serde_json::json!(i),
        ValueRef::Real(f) => serde_json::json!(f),
        ValueRef::Text(t) => serde_json::Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => serde_json::json!({ "blob_hex": hex::encode(b) }),
    }
}

/// JSON recorded by [`to_json`] back to a SQL value.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(*b as i64),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Object(o) => o
            .get("blob_hex")
            .and_then(|h| h.as_str())
            .and_then(|h| hex::decode(h).ok())
            .map(Value::Blob)
            .unwrap_or(Value::Null),
        serde_json::Value::Array(_) => Value::Null,
    }
}
