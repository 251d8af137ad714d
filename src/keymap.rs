//! Source key → target key: the target prefix plus the key relative to the source
//! prefix, or a template. Also the checks on keys R2 cannot store, and the NFC form
//! every collision check uses (R2 NFC-normalises keys before storing them).

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

use crate::error::usage;
use crate::limits::MAX_KEY_BYTES;

/// Names every template may use; SQLite sources add their columns.
const BUILTIN_VARS: &[&str] = &["key", "basename", "stem", "ext", "dir", "id"];

pub fn is_builtin(name: &str) -> bool {
    BUILTIN_VARS.contains(&name)
}

/// The placeholder names in a template, in order; unbalanced braces are an error.
pub fn placeholders(template: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| usage(format!("template {template:?}: '{{' without '}}'; placeholders are written {{key}}, {{dir}}, {{basename}}, {{stem}}, {{ext}}, {{id}}")))?;
        names.push(after[..close].to_string());
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(usage(format!("template {template:?}: '}}' without '{{'; placeholders are written {{key}}, {{dir}}, {{basename}}, {{stem}}, {{ext}}, {{id}}")));
    }
    Ok(names)
}

/// Renders a template from values alone (URLs for SQLite write-back).
pub fn render_values(template: &str, values: &BTreeMap<String, String>) -> String {
    render(template, "", values)
}

#[derive(Debug, Clone)]
pub struct KeyMap {
    target_prefix: String,
    template: Option<String>,
}

impl KeyMap {
    pub fn new(target_prefix: &str, template: Option<String>) -> KeyMap {
        KeyMap {
            target_prefix: target_prefix.to_string(),
            template,
        }
    }

    /// Refuses templates with unknown or unbalanced placeholders.
    pub fn check_template(template: &str) -> anyhow::Result<()> {
        Self::check_template_with(template, &[])
    }

    pub fn check_template_with(template: &str, extra: &[String]) -> anyhow::Result<()> {
        for name in placeholders(template)? {
            if !is_builtin(&name) && !extra.contains(&name) {
                return Err(usage(format!(
                    "key template {template:?}: unknown placeholder {{{name}}}; use {}{}",
                    BUILTIN_VARS
                        .iter()
                        .map(|v| format!("{{{v}}}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" or a column: {}", extra.join(", "))
                    }
                )));
            }
        }
        Ok(())
    }

    /// The full target key for a source key; `extra` holds SQLite columns and `{ext}`
    /// when the source knows better than the key's suffix.
    pub fn target_key(&self, source_key: &str, extra: &BTreeMap<String, String>) -> String {
        let rel = match &self.template {
            None => source_key.to_string(),
            Some(tpl) => render(tpl, source_key, extra),
        };
        format!("{}{}", self.target_prefix, rel.trim_start_matches('/'))
    }
}

fn render(template: &str, key: &str, extra: &BTreeMap<String, String>) -> String {
    let (dir, basename) = match key.rsplit_once('/') {
        Some((d, b)) => (d, b),
        None => ("", key),
    };
    let (stem, ext) = match basename.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, e),
        _ => (basename, ""),
    };
    let mut out = String::with_capacity(template.len() + key.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let value = match extra.get(name) {
            Some(v) => v.as_str(),
            None => match name {
                "key" => key,
                "basename" => basename,
                "stem" => stem,
                "ext" => ext,
                "dir" => dir,
                "id" => key,
                _ => "",
            },
        };
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    // "{dir}/{basename}" with an empty dir must not start the key with '/'.
    out.trim_start_matches('/').to_string()
}

/// The form R2 stores a key under: collisions are decided on this.
pub fn nfc(key: &str) -> String {
    key.nfc().collect()
}

/// Why R2 cannot store a key, if it cannot.
pub fn unstorable(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the target key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!(
            "the target key is {} bytes; R2 keys are at most {MAX_KEY_BYTES} bytes: shorten it with --key-template",
            key.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_mapping_keeps_the_relative_key() {
        let m = KeyMap::new("media/", None);
        assert_eq!(
            m.target_key("a/b c.jpg", &BTreeMap::new()),
            "media/a/b c.jpg"
        );
        assert_eq!(KeyMap::new("", None).target_key("x", &BTreeMap::new()), "x");
    }

    #[test]
    fn templates_render_their_parts() {
        let m = KeyMap::new("p/", Some("{dir}/{stem}-v1.{ext}".into()));
        assert_eq!(
            m.target_key("a/b/photo.jpg", &BTreeMap::new()),
            "p/a/b/photo-v1.jpg"
        );
        assert_eq!(
            m.target_key("photo.jpg", &BTreeMap::new()),
            "p/photo-v1.jpg"
        );
        let flat = KeyMap::new("", Some("flat/{basename}".into()));
        assert_eq!(flat.target_key("x/y/z.png", &BTreeMap::new()), "flat/z.png");
        let extra = BTreeMap::from([
            ("id".to_string(), "42".to_string()),
            ("ext".to_string(), "webp".to_string()),
        ]);
        let rows = KeyMap::new("", Some("images/{id}.{ext}".into()));
        assert_eq!(rows.target_key("row:42", &extra), "images/42.webp");
    }

    #[test]
    fn templates_are_checked() {
        assert!(KeyMap::check_template("{key}").is_ok());
        assert!(KeyMap::check_template("{nope}").is_err());
        assert!(KeyMap::check_template("{key").is_err());
        assert!(KeyMap::check_template_with("{user_id}/{id}", &["user_id".into()]).is_ok());
    }

    #[test]
    fn nfc_joins_the_two_spellings_of_cafe() {
        assert_eq!(nfc("cafe\u{301}"), nfc("caf\u{e9}"));
        assert_ne!("cafe\u{301}", "caf\u{e9}");
    }

    #[test]
    fn long_keys_are_unstorable() {
        assert!(unstorable(&"a".repeat(1024)).is_none());
        assert!(unstorable(&"a".repeat(1025)).unwrap().contains("1025"));
        assert!(unstorable("").is_some());
    }
}
