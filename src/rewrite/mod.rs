//! Rewriting the application's stored URLs (SPEC.md "Rewriting stored URLs"): which URLs
//! mean the source ([`urls`]), what each stored value becomes, and the database seam the
//! `rewrite-urls` command drives ([`sqlite`]). A URL is pointed at R2 only when the
//! manifests record its object `copied` or `identical`; one that names the source but an
//! object not migrated is left as it is and reported.

pub mod db;
pub mod mysql;
pub mod mysql_settings;
pub mod postgres;
pub mod shapes;
pub mod sqlite;
pub mod urls;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::manifest::ManifestSet;
use crate::spill::SpillError;
pub use db::Db;
use shapes::{Serialized, Slashes, Span};
use urls::{render, Named, SourceUrls};

/// How a column holds URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole value is one URL.
    #[default]
    Url,
    /// URLs inside text (HTML, Markdown, JSON); the rest is kept byte for byte.
    Embedded,
}

/// One `[[rewrite]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub database: String,
    pub table: String,
    pub id_column: String,
    pub columns: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub from: Vec<String>,
    pub to: String,
}

/// What one stored value becomes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The new text, when at least one URL changed.
    pub new: Option<String>,
    /// The source URLs pointed at R2, as shown to the user (query cut off).
    pub changed: Vec<String>,
    /// URLs of the source whose object is not migrated (left as they are), as shown to
    /// the user: without a query string, which may hold a presigned URL's signature.
    pub not_migrated: Vec<String>,
    /// The value is PHP-serialized data that does not parse: left as it is, its source
    /// URLs in `not_migrated`.
    pub broken: bool,
}

/// Source key → R2 key, for every object recorded `copied` or `identical`: in memory,
/// or the manifests' records on disk for a migration of millions.
pub trait Migrated {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError>;
}

impl Migrated for HashMap<String, String> {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError> {
        Ok(self.get(source_key).cloned())
    }
}

impl Migrated for ManifestSet {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError> {
        let record = self.get(source_key)?;
        Ok(record
            .filter(|r| r.status.is_verified())
            .map(|r| r.target_key))
    }
}

/// Turns stored values into their R2 form.
pub struct Rewriter<'a> {
    pub urls: SourceUrls,
    pub migrated: &'a dyn Migrated,
    pub mode: Mode,
    pub to: String,
}

impl Rewriter<'_> {
    pub fn rewrite(&self, value: &str) -> Result<Rewritten, SpillError> {
        let mut out = Rewritten::default();
        let new = match self.mode {
            Mode::Url => {
                let trimmed = value.trim();
                let start = value.len() - value.trim_start().len();
                let whole = Span {
                    range: start..start + trimmed.len(),
                    slashes: Slashes::Plain,
                };
                self.replace(value, vec![whole], &mut out)?
            }
            Mode::Embedded => self.embedded(value, &mut out)?,
        };
        if !out.changed.is_empty() {
            out.new = Some(new);
        }
        Ok(out)
    }

    /// URLs in text (JSON-escaped ones in their escaped form), in PHP-serialized
    /// strings (each length recomputed, serialized values inside them too); serialized
    /// data that does not parse is left as it is and its source URLs listed.
    fn embedded(&self, value: &str, out: &mut Rewritten) -> Result<String, SpillError> {
        match shapes::serialized(value) {
            Serialized::Not => self.replace(value, shapes::spans(value), out),
            Serialized::Valid(pieces) => shapes::rebuild(&pieces, |s| self.embedded(s, out)),
            Serialized::Broken => {
                out.broken = true;
                for span in shapes::spans(value) {
                    let url = shapes::unescape(&value[span.range], span.slashes);
                    if self.urls.name(&url).is_some() {
                        out.not_migrated.push(shown(&url));
                    }
                }
                Ok(value.to_string())
            }
        }
    }

    /// `value` with each span naming a migrated object replaced by its R2 URL, written
    /// as the span was (escaped slashes stay escaped).
    fn replace(
        &self,
        value: &str,
        spans: Vec<Span>,
        out: &mut Rewritten,
    ) -> Result<String, SpillError> {
        let mut text = String::with_capacity(value.len());
        let mut at = 0;
        for span in spans {
            let found = &value[span.range.clone()];
            let url = shapes::unescape(found, span.slashes);
            let replacement = match self.urls.name(&url) {
                None => None,
                Some(Named::Key(key)) => match self.migrated.target_key(&key)? {
                    Some(target_key) => Some(render(&self.to, &target_key) + kept_tail(&url)),
                    None => {
                        out.not_migrated.push(shown(&url));
                        None
                    }
                },
                Some(Named::OutsidePrefix(_)) => {
                    out.not_migrated.push(shown(&url));
                    None
                }
            };
            if let Some(new_url) = replacement.map(|u| shapes::escape(&u, span.slashes)) {
                if new_url != found {
                    text.push_str(&value[at..span.range.start]);
                    text.push_str(&new_url);
                    at = span.range.end;
                    out.changed.push(shown(&url));
                }
            }
        }
        text.push_str(&value[at..]);
        Ok(text)
    }
}

/// What follows a URL's path that its R2 URL keeps: a query that is not a signature
/// (`?ver=6.4`, a cache buster) and a `#fragment`. A presigned URL's query (`X-Amz-*`,
/// `X-Goog-*`, `Signature`, `Expires`) signs for the source and is dropped whole.
fn kept_tail(url: &str) -> &str {
    let Some(start) = url.find(['?', '#']) else {
        return "";
    };
    let fragment = url[start..].find('#').map_or(url.len(), |i| start + i);
    let signed = url[start..fragment]
        .trim_start_matches('?')
        .split('&')
        .filter_map(|p| p.split('=').next())
        .any(|name| {
            let name = name.to_ascii_lowercase();
            name.starts_with("x-amz-")
                || name.starts_with("x-goog-")
                || ["signature", "expires", "awsaccesskeyid", "googleaccessid"]
                    .contains(&name.as_str())
        });
    if signed {
        &url[fragment..]
    } else {
        &url[start..]
    }
}

/// Why a database cannot be used: a usage error (exit 2) or a connection failure.
#[derive(Debug)]
pub enum OpenError {
    Usage(String),
    Connect(String),
}

/// A database URL without its user info or a password parameter, for messages.
pub fn redact(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    !(k.contains("password") || k == "pwd" || k == "pass")
                })
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            // Rebuilt only when something is hidden: else the query as written.
            if kept.is_empty() && u.query().is_some() {
                u.set_query(None);
            } else if kept.len() < u.query_pairs().count() {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        }
        Err(_) => "the database URL".into(),
    }
}

/// The SQLite file a `database` names (`sqlite:///path` or a plain path).
pub fn sqlite_path(database: &str) -> PathBuf {
    PathBuf::from(database.strip_prefix("sqlite://").unwrap_or(database))
}

/// A URL for messages: its query (a presigned URL's `X-Amz-Signature`) cut off.
fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((bare, _)) => format!("{bare}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> HashMap<String, String> {
        HashMap::from([
            ("42.png".to_string(), "avatars/42.png".to_string()),
            ("a b.jpg".to_string(), "avatars/a b.jpg".to_string()),
        ])
    }

    fn rewriter(map: &HashMap<String, String>, mode: Mode) -> Rewriter<'_> {
        Rewriter {
            urls: SourceUrls::s3("media", "avatars/", &[]),
            migrated: map,
            mode,
            to: "https://cdn.example.com/{key}".into(),
        }
    }

    #[test]
    fn a_url_value_is_replaced_only_when_its_object_is_migrated() {
        let map = migrated();
        let r = rewriter(&map, Mode::Url);
        let done = r
            .rewrite("https://media.s3.amazonaws.com/avatars/42.png")
            .unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some("https://cdn.example.com/avatars/42.png")
        );
        let missing = r
            .rewrite("https://media.s3.amazonaws.com/avatars/7.png?X-Amz-Signature=s3cr3t")
            .unwrap();
        assert_eq!(missing.new, None);
        assert_eq!(
            missing.not_migrated,
            vec!["https://media.s3.amazonaws.com/avatars/7.png?…".to_string()],
            "listed without the signature"
        );
        let other = r.rewrite("https://example.com/avatars/42.png").unwrap();
        assert_eq!(other, Rewritten::default(), "other hosts are not counted");
        // Already rewritten: nothing to do (idempotent).
        assert_eq!(
            r.rewrite("https://cdn.example.com/avatars/42.png").unwrap(),
            Rewritten::default()
        );
    }

    #[test]
    fn a_cache_busting_query_and_a_fragment_stay_a_signature_goes() {
        let map = migrated();
        let r = rewriter(&map, Mode::Embedded);
        let cases = [
            ("https://media.s3.amazonaws.com/avatars/42.png?ver=6.4", "https://cdn.example.com/avatars/42.png?ver=6.4"),
            ("https://media.s3.amazonaws.com/avatars/42.png#top", "https://cdn.example.com/avatars/42.png#top"),
            ("https://media.s3.amazonaws.com/avatars/42.png?v=2#top.", "https://cdn.example.com/avatars/42.png?v=2#top."),
            ("https://media.s3.amazonaws.com/avatars/42.png?X-Amz-Expires=60&X-Amz-Signature=s3cr3t#top", "https://cdn.example.com/avatars/42.png#top"),
            ("https://media.s3.amazonaws.com/avatars/42.png?AWSAccessKeyId=A&Expires=1&Signature=s", "https://cdn.example.com/avatars/42.png"),
        ];
        for (before, after) in cases {
            let text = format!("see {before} now");
            let done = r.rewrite(&text).unwrap();
            assert_eq!(done.new, Some(format!("see {after} now")), "{before}");
        }
    }

    #[test]
    fn wordpress_shapes_escaped_json_serialized_php_and_srcset() {
        let map = migrated();
        let r = rewriter(&map, Mode::Embedded);
        // Block attributes and post meta: PHP's json_encode escapes slashes.
        let json = r#"<!-- wp:image {"url":"https:\/\/media.s3.amazonaws.com\/avatars\/42.png","id":7} -->"#;
        let done = r.rewrite(json).unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some(
                r#"<!-- wp:image {"url":"https:\/\/cdn.example.com\/avatars\/42.png","id":7} -->"#
            )
        );
        let unicode =
            r#"{"u":"https:\u002F\u002Fmedia.s3.amazonaws.com\u002Favatars\u002F42.png"}"#;
        assert_eq!(
            r.rewrite(unicode).unwrap().new.as_deref(),
            Some(r#"{"u":"https:\u002F\u002Fcdn.example.com\u002Favatars\u002F42.png"}"#)
        );
        // wp_options: a serialized array; the string's length follows its new bytes.
        let option = r#"a:2:{s:3:"img";s:45:"https://media.s3.amazonaws.com/avatars/42.png";s:4:"json";s:57:"{"u":"https:\/\/media.s3.amazonaws.com\/avatars\/42.png"}";}"#;
        let done = r.rewrite(option).unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some(
                r#"a:2:{s:3:"img";s:38:"https://cdn.example.com/avatars/42.png";s:4:"json";s:50:"{"u":"https:\/\/cdn.example.com\/avatars\/42.png"}";}"#
            )
        );
        assert_eq!(done.changed.len(), 2);
        // Serialized data that does not parse: untouched, its URL listed.
        let broken = r#"a:1:{s:3:"img";s:99:"https://media.s3.amazonaws.com/avatars/42.png";}"#;
        let done = r.rewrite(broken).unwrap();
        assert_eq!(done.new, None);
        assert_eq!(done.not_migrated.len(), 1);
        assert!(done.broken);
        // srcset: every URL of the list.
        let img = r#"<img srcset="https://media.s3.amazonaws.com/avatars/42.png 300w, https://media.s3.amazonaws.com/avatars/a%20b.jpg 1024w">"#;
        let done = r.rewrite(img).unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some(
                r#"<img srcset="https://cdn.example.com/avatars/42.png 300w, https://cdn.example.com/avatars/a%20b.jpg 1024w">"#
            )
        );
    }

    #[test]
    fn embedded_urls_are_replaced_and_every_other_byte_is_kept() {
        let map = migrated();
        let r = rewriter(&map, Mode::Embedded);
        let html = "<p>Hi!</p><img src=\"https://media.s3.amazonaws.com/avatars/42.png\" alt='x'> \
                    [pic](https://media.s3.eu-west-1.amazonaws.com/avatars/a%20b.jpg). \
                    {\"u\": \"s3://media/avatars/42.png\"} https://example.com/avatars/42.png, \
                    https://media.s3.amazonaws.com/avatars/gone.png!";
        let done = r.rewrite(html).unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some(
                "<p>Hi!</p><img src=\"https://cdn.example.com/avatars/42.png\" alt='x'> \
                 [pic](https://cdn.example.com/avatars/a%20b.jpg). \
                 {\"u\": \"https://cdn.example.com/avatars/42.png\"} https://example.com/avatars/42.png, \
                 https://media.s3.amazonaws.com/avatars/gone.png!"
            )
        );
        assert_eq!(done.changed.len(), 3);
        assert_eq!(
            done.not_migrated,
            vec!["https://media.s3.amazonaws.com/avatars/gone.png".to_string()]
        );
    }
}
