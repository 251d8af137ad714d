//! Which URLs mean the migration's source, and the source key each one names. For an
//! `s3://bucket/prefix` source every standard S3 URL form of the bucket is known (virtual-
//! hosted global and regional, legacy `s3-REGION`, path-style, `s3://`); for a
//! `gs://bucket/prefix` source the GCS forms (`storage.googleapis.com`, the bucket's own
//! host, `storage.cloud.google.com`, `gs://`). `from` bases (a CDN in front of the
//! bucket, or a local or SQLite source's old host) are matched as plain prefixes. The
//! key is percent-decoded; a query string (a presigned URL's `X-Amz-*`) and a fragment
//! are dropped.

/// What a URL of the source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A key under the migrated prefix: the source key, relative to that prefix.
    Key(String),
    /// The source bucket, but outside the migrated prefix.
    OutsidePrefix(String),
}

/// The source's bucket and prefix (for S3 and GCS), and any `from` bases.
#[derive(Debug, Clone, Default)]
pub struct SourceUrls {
    kind: Option<Store>,
    bucket: String,
    prefix: String,
    from: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    S3,
    Gcs,
}

impl SourceUrls {
    /// URLs of an S3 bucket (`prefix` in folder form or empty), plus `from` bases.
    pub fn s3(bucket: &str, prefix: &str, from: &[String]) -> SourceUrls {
        SourceUrls::of(Some(Store::S3), bucket, prefix, from)
    }

    /// URLs of a GCS bucket, plus `from` bases.
    pub fn gcs(bucket: &str, prefix: &str, from: &[String]) -> SourceUrls {
        SourceUrls::of(Some(Store::Gcs), bucket, prefix, from)
    }

    /// Only the `from` bases (local and SQLite sources have no URL of their own).
    pub fn bases(from: &[String]) -> SourceUrls {
        SourceUrls::of(None, "", "", from)
    }

    fn of(kind: Option<Store>, bucket: &str, prefix: &str, from: &[String]) -> SourceUrls {
        SourceUrls {
            kind,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            from: from.to_vec(),
        }
    }

    /// The key a URL names, if it is a URL of the source.
    pub fn name(&self, url: &str) -> Option<Named> {
        let full_key = self.full_key(url)?;
        Some(match full_key.strip_prefix(self.prefix.as_str()) {
            Some(rel) if !rel.is_empty() => Named::Key(rel.to_string()),
            _ => Named::OutsidePrefix(full_key),
        })
    }

    /// The whole key in the bucket (or after a `from` base), decoded.
    fn full_key(&self, url: &str) -> Option<String> {
        let bare = strip_query(url);
        for base in &self.from {
            if let Some(rest) = bare.strip_prefix(base.as_str()) {
                return decode(rest);
            }
        }
        let kind = self.kind?;
        let scheme = match kind {
            Store::S3 => "s3://",
            Store::Gcs => "gs://",
        };
        if let Some(rest) = bare.strip_prefix(scheme) {
            let (bucket, key) = rest.split_once('/')?;
            return (bucket == self.bucket).then(|| decode(key)).flatten();
        }
        let rest = bare
            .strip_prefix("https://")
            .or_else(|| bare.strip_prefix("http://"))?;
        let (host, path) = rest.split_once('/')?;
        let host = host.to_ascii_lowercase();
        let host = host.split(':').next().unwrap_or("");
        let in_path = |path: &str| {
            let (bucket, key) = path.split_once('/')?;
            (bucket == self.bucket).then(|| decode(key)).flatten()
        };
        match kind {
            Store::S3 => {
                if let Some(sub) = host.strip_suffix(".amazonaws.com") {
                    if is_s3_endpoint(sub) {
                        return in_path(path);
                    }
                    if let Some(endpoint) = sub.strip_prefix(&format!("{}.", self.bucket)) {
                        if is_s3_endpoint(endpoint) {
                            return decode(path);
                        }
                    }
                }
                None
            }
            Store::Gcs => {
                if host == "storage.googleapis.com" || host == "storage.cloud.google.com" {
                    in_path(path)
                } else if host == format!("{}.storage.googleapis.com", self.bucket) {
                    decode(path)
                } else {
                    None
                }
            }
        }
    }
}

/// `s3`, `s3.REGION`, `s3-REGION`, `s3.dualstack.REGION`: the S3 endpoints.
fn is_s3_endpoint(sub: &str) -> bool {
    let region_ok = |r: &str| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    sub == "s3"
        || sub.strip_prefix("s3.").is_some_and(region_ok)
        || sub.strip_prefix("s3-").is_some_and(region_ok)
}

fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// The percent-decoded key; `None` when empty or not UTF-8 once decoded.
fn decode(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// The `to` template filled in: `{key}` is the R2 key with each segment percent-encoded.
pub fn render(template: &str, target_key: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let encoded: Vec<String> = target_key
        .split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect();
    template.replace("{key}", &encoded.join("/"))
}

/// Every URL-looking span in `text`, as byte ranges: from a scheme (`http://`,
/// `https://`, `s3://`, `gs://`) to the first character that ends a URL in HTML,
/// Markdown or JSON (space, quote, angle bracket, closing bracket, backslash), less
/// trailing punctuation that belongs to the sentence.
pub fn spans(text: &str) -> Vec<std::ops::Range<usize>> {
    const SCHEMES: [&str; 4] = ["https://", "http://", "s3://", "gs://"];
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let next = SCHEMES
            .iter()
            .filter_map(|s| text[at..].find(s).map(|i| at + i))
            .min();
        let Some(start) = next else { break };
        // A scheme glued to a word ("xhttps://") is not a URL's start.
        let glued = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let len = text[start..]
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}' | '\\')
            })
            .unwrap_or(text.len() - start);
        let mut end = start + len;
        while end > start && text[..end].ends_with(['.', ',', ';', ':', '!', '?']) {
            end -= 1;
        }
        if !glued && end > start {
            out.push(start..end);
        }
        at = (start + len).max(start + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> SourceUrls {
        SourceUrls::s3(
            "media",
            "avatars/",
            &["https://d111.cloudfront.net/".into()],
        )
    }

    #[test]
    fn every_s3_form_names_the_key() {
        let key = Some(Named::Key("42 x.png".into()));
        for url in [
            "https://media.s3.amazonaws.com/avatars/42%20x.png",
            "http://media.s3.amazonaws.com/avatars/42%20x.png",
            "https://media.s3.eu-west-1.amazonaws.com/avatars/42%20x.png",
            "https://media.s3-eu-west-1.amazonaws.com/avatars/42%20x.png",
            "https://s3.amazonaws.com/media/avatars/42%20x.png",
            "https://s3.us-east-2.amazonaws.com/media/avatars/42%20x.png",
            "https://MEDIA.S3.AMAZONAWS.COM/avatars/42%20x.png",
            "s3://media/avatars/42 x.png",
            "https://d111.cloudfront.net/avatars/42%20x.png",
            // Presigned: the query is dropped.
            "https://media.s3.amazonaws.com/avatars/42%20x.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
        ] {
            assert_eq!(s3().name(url), key, "{url}");
        }
    }

    #[test]
    fn other_buckets_hosts_and_prefixes_are_told_apart() {
        for url in [
            "https://other.s3.amazonaws.com/avatars/42.png",
            "https://s3.amazonaws.com/other/avatars/42.png",
            "https://media.s3.amazonaws.com.evil.example/avatars/42.png",
            "https://example.com/avatars/42.png",
            "s3://other/avatars/42.png",
            "gs://media/avatars/42.png",
            "https://media.s3.amazonaws.com/",
        ] {
            assert_eq!(s3().name(url), None, "{url}");
        }
        assert_eq!(
            s3().name("https://media.s3.amazonaws.com/banners/1.png"),
            Some(Named::OutsidePrefix("banners/1.png".into()))
        );
    }

    #[test]
    fn every_gcs_form_names_the_key() {
        let gcs = SourceUrls::gcs("assets", "", &[]);
        for url in [
            "https://storage.googleapis.com/assets/img/%C3%A9t%C3%A9.jpg",
            "https://assets.storage.googleapis.com/img/%C3%A9t%C3%A9.jpg",
            "https://storage.cloud.google.com/assets/img/%C3%A9t%C3%A9.jpg",
            "gs://assets/img/été.jpg",
        ] {
            assert_eq!(
                gcs.name(url),
                Some(Named::Key("img/été.jpg".into())),
                "{url}"
            );
        }
        assert_eq!(gcs.name("https://storage.googleapis.com/other/x"), None);
    }

    #[test]
    fn keys_are_rendered_one_segment_at_a_time() {
        assert_eq!(
            render("https://cdn.example.com/{key}", "a b/c+d/é.png"),
            "https://cdn.example.com/a%20b/c%2Bd/%C3%A9.png"
        );
    }

    #[test]
    fn urls_are_found_in_html_markdown_and_json_without_their_punctuation() {
        let text = r#"<img src="https://a.test/x.png"> see (https://a.test/y.png), or https://a.test/z.png. {"u":"s3://b/k"} xhttps://no"#;
        let found: Vec<&str> = spans(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(
            found,
            vec![
                "https://a.test/x.png",
                "https://a.test/y.png",
                "https://a.test/z.png",
                "s3://b/k"
            ]
        );
    }
}
