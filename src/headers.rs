//! Upload headers and storage class: `--header-upload "Name: value"` sets a header on
//! every object, `[[target.headers]]` on objects whose source key matches a glob (`*`
//! crosses `/`, as in `--include`), each over what the source carried; flags win over
//! the file's rules. Only headers R2 stores with an object are accepted.

use globset::{Glob, GlobMatcher};

use crate::error::usage;
use crate::object::ObjectMeta;

/// Headers R2 stores with an object (besides `x-amz-meta-*`).
const ACCEPTED: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-language",
    "content-type",
    "expires",
];

/// R2's storage classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    Standard,
    InfrequentAccess,
}

impl StorageClass {
    pub fn parse(text: &str) -> anyhow::Result<StorageClass> {
        match text.trim().to_ascii_uppercase().as_str() {
            "STANDARD" => Ok(StorageClass::Standard),
            "STANDARD_IA" => Ok(StorageClass::InfrequentAccess),
            _ => Err(usage(format!(
                "--storage-class {text:?}: R2 has STANDARD and STANDARD_IA (Infrequent Access)"
            ))),
        }
    }

    /// As the S3 API spells it (`x-amz-storage-class`).
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::InfrequentAccess => "STANDARD_IA",
        }
    }
}

/// One `Name: value` header, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Lower case.
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn parse(text: &str) -> anyhow::Result<Header> {
        let Some((name, value)) = text.split_once(':') else {
            return Err(usage(format!(
                "--header-upload {text:?}: write it as \"Name: value\", e.g. \"Cache-Control: max-age=86400\""
            )));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        let custom = name
            .strip_prefix("x-amz-meta-")
            .is_some_and(|n| !n.is_empty());
        if !custom && !ACCEPTED.contains(&name.as_str()) {
            return Err(usage(format!(
                "--header-upload {text:?}: R2 does not store {name:?} with an object; use Cache-Control, Content-Disposition, Content-Language, Content-Type, Expires or x-amz-meta-*"
            )));
        }
        if value.is_empty() || value.contains(['\r', '\n']) {
            return Err(usage(format!(
                "--header-upload {text:?}: the value must be one non-empty line"
            )));
        }
        Ok(Header { name, value })
    }

    fn apply(&self, meta: &mut ObjectMeta) {
        let v = Some(self.value.clone());
        match self.name.as_str() {
            "cache-control" => meta.cache_control = v,
            "content-disposition" => meta.content_disposition = v,
            "content-language" => meta.content_language = v,
            "content-type" => meta.content_type = v,
            "expires" => meta.expires = v,
            custom => {
                let key = custom.trim_start_matches("x-amz-meta-").to_string();
                meta.custom.insert(key, self.value.clone());
            }
        }
    }
}

/// Every rule, in the order they apply: the file's glob rules, then the flags.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    rules: Vec<(Option<GlobMatcher>, Vec<Header>)>,
}

impl HeaderRules {
    /// `file`: (glob, headers) from `[[target.headers]]`; `flags`: `--header-upload`.
    pub fn new(file: &[(String, Vec<String>)], flags: &[String]) -> anyhow::Result<HeaderRules> {
        let mut rules = Vec::new();
        for (glob, headers) in file {
            let matcher = Glob::new(glob)
                .map_err(|e| usage(format!("[[target.headers]] glob {glob:?}: {e}")))?
                .compile_matcher();
            let parsed = headers
                .iter()
                .map(|h| Header::parse(h))
                .collect::<anyhow::Result<Vec<_>>>()?;
            rules.push((Some(matcher), parsed));
        }
        let flags = flags
            .iter()
            .map(|h| Header::parse(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !flags.is_empty() {
            rules.push((None, flags));
        }
        Ok(HeaderRules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The metadata to upload `source_key` with.
    pub fn apply(&self, source_key: &str, meta: &mut ObjectMeta) {
        for (glob, headers) in &self.rules {
            if glob.as_ref().is_none_or(|g| g.is_match(source_key)) {
                for h in headers {
                    h.apply(meta);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_override_the_source_and_flags_override_rules() {
        let rules = HeaderRules::new(
            &[(
                "*.css".into(),
                vec![
                    "Cache-Control: max-age=60".into(),
                    "Content-Type: text/css".into(),
                ],
            )],
            &[
                "cache-control: public, max-age=31536000".into(),
                "X-Amz-Meta-Team: web".into(),
            ],
        )
        .unwrap();
        let mut css = ObjectMeta {
            cache_control: Some("no-cache".into()),
            content_type: Some("application/octet-stream".into()),
            ..Default::default()
        };
        rules.apply("site/a/b.css", &mut css);
        assert_eq!(css.content_type.as_deref(), Some("text/css"));
        assert_eq!(
            css.cache_control.as_deref(),
            Some("public, max-age=31536000")
        );
        assert_eq!(css.custom.get("team").map(String::as_str), Some("web"));
        let mut png = ObjectMeta::default();
        rules.apply("img/a.png", &mut png);
        assert_eq!(png.content_type, None, "the css rule does not match");
    }

    #[test]
    fn headers_r2_does_not_store_are_refused() {
        for bad in [
            "X-Foo: 1",
            "Content-Length: 3",
            "Cache-Control",
            "Expires:  ",
            "x-amz-meta-: v",
        ] {
            assert!(Header::parse(bad).is_err(), "{bad}");
        }
        assert!(StorageClass::parse("GLACIER").is_err());
        assert_eq!(
            StorageClass::parse("standard_ia").unwrap(),
            StorageClass::InfrequentAccess
        );
    }
}
