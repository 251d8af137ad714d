//! The shapes a stored URL takes inside text beyond plain HTML, Markdown and JSON: JSON
//! written with escaped slashes (`https:\/\/…`, PHP's `json_encode` default, and
//! `\u002F`), rewritten in the same escaped form; and PHP-serialized values
//! (`s:53:"https://…";`, WordPress options and post meta), whose strings are rewritten
//! one by one with each length recomputed in bytes — replacing a URL inside without that
//! corrupts the whole value.

use std::ops::Range;

use super::urls;

/// How a URL's slashes are written where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slashes {
    Plain,
    /// `\/`, as JSON may escape them.
    Backslash,
    /// `\u002F`, as JSON may also escape them.
    Unicode,
}

/// A URL-looking span of a text, and how its slashes are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub range: Range<usize>,
    pub slashes: Slashes,
}

/// Every URL-looking span in `text`, plain or JSON-escaped, in order.
pub fn spans(text: &str) -> Vec<Span> {
    let mut out: Vec<Span> = urls::spans(text)
        .into_iter()
        .map(|range| Span {
            range,
            slashes: Slashes::Plain,
        })
        .collect();
    out.extend(escaped_spans(text));
    out.sort_by_key(|s| s.range.start);
    // A later span inside an earlier one is part of it.
    let mut end = 0;
    out.retain(|s| {
        let keep = s.range.start >= end;
        if keep {
            end = s.range.end;
        }
        keep
    });
    out
}

const SCHEMES: [&str; 4] = ["https:", "http:", "s3:", "gs:"];

/// `scheme:\/\/…` and `scheme:\u002F\u002F…` spans: to the first character that ends a
/// URL, or a backslash that does not escape a slash, less the sentence's punctuation.
fn escaped_spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for (slashes, double) in [
        (Slashes::Backslash, "\\/\\/"),
        (Slashes::Unicode, "\\u002F\\u002F"),
        (Slashes::Unicode, "\\u002f\\u002f"),
    ] {
        for (at, _) in text.match_indices(double) {
            let Some(scheme) = SCHEMES.iter().find(|s| text[..at].ends_with(*s)) else {
                continue;
            };
            let start = at - scheme.len();
            let glued = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            if glued {
                continue;
            }
            let mut end = at + double.len();
            while end < text.len() {
                let rest = &text[end..];
                if let Some(n) = escaped_slash(rest) {
                    end += n;
                    continue;
                }
                let c = rest.chars().next().expect("not at the end");
                if c.is_whitespace()
                    || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}' | '\\')
                {
                    break;
                }
                end += c.len_utf8();
            }
            while end > at && text[..end].ends_with(['.', ',', ';', ':', '!', '?']) {
                end -= 1;
            }
            out.push(Span {
                range: start..end,
                slashes,
            });
        }
    }
    out
}

/// The length of an escaped slash at the start of `text`, if one is there.
fn escaped_slash(text: &str) -> Option<usize> {
    if text.starts_with("\\/") {
        return Some(2);
    }
    let u = text.get(..6)?;
    u.eq_ignore_ascii_case("\\u002f").then_some(6)
}

/// The URL as it reads with its slashes unescaped.
pub fn unescape(text: &str, slashes: Slashes) -> String {
    match slashes {
        Slashes::Plain => text.to_string(),
        _ => text
            .replace("\\/", "/")
            .replace("\\u002F", "/")
            .replace("\\u002f", "/"),
    }
}

/// A URL written with its slashes escaped as `slashes` says.
pub fn escape(url: &str, slashes: Slashes) -> String {
    match slashes {
        Slashes::Plain => url.to_string(),
        Slashes::Backslash => url.replace('/', "\\/"),
        Slashes::Unicode => url.replace('/', "\\u002F"),
    }
}

/// What a text is to PHP's `unserialize`.
pub enum Serialized<'a> {
    /// Not serialized data (plain text, HTML, JSON): URLs are found in it as text.
    Not,
    /// A serialized array, object or string, its pieces in order.
    Valid(Vec<Piece<'a>>),
    /// It starts like serialized data but does not parse: rewriting it as text could
    /// corrupt it, so it is left alone.
    Broken,
}

/// A piece of a serialized value: structure copied as it is, or a string's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Raw(&'a str),
    Str(&'a str),
}

/// Reads `text` as PHP-serialized data when it starts like an array, object or string.
pub fn serialized(text: &str) -> Serialized<'_> {
    if !looks_serialized(text) {
        return Serialized::Not;
    }
    let mut p = Parser { s: text, at: 0 };
    let mut pieces = Vec::new();
    match p.value(&mut pieces) {
        Some(()) if p.at == text.len() => Serialized::Valid(pieces),
        _ => Serialized::Broken,
    }
}

/// `a:N:{`, `O:N:"`, `s:N:"`: how serialized arrays, objects and strings start.
fn looks_serialized(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 4 || !matches!(b[0], b'a' | b'O' | b's') || b[1] != b':' {
        return false;
    }
    let digits = b[2..].iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && b.get(2 + digits) == Some(&b':')
}

/// The value again, each string's contents passed through `f` and its length written
/// anew in bytes; structure byte for byte as it was.
pub fn rebuild<E>(
    pieces: &[Piece<'_>],
    mut f: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Raw(raw) => out.push_str(raw),
            Piece::Str(contents) => {
                let new = f(contents)?;
                out.push_str(&format!("s:{}:\"{new}\";", new.len()));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn value(&mut self, out: &mut Vec<Piece<'a>>) -> Option<()> {
        let start = self.at;
        match *self.s.as_bytes().get(self.at)? {
            b'N' => self.expect("N;")?,
            b'b' | b'i' | b'd' | b'r' | b'R' => {
                self.at += 1;
                self.expect(":")?;
                let end = self.at + self.s[self.at..].find(';')?;
                let scalar = &self.s[self.at..end];
                let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+');
                if scalar.is_empty() || !scalar.chars().all(ok) {
                    return None;
                }
                self.at = end + 1;
            }
            b's' => {
                self.expect("s:")?;
                let contents = self.counted()?;
                self.expect(";")?;
                out.push(Piece::Str(contents));
                return Some(());
            }
            // A PHP 8.1 enum case: `E:N:"Class:Case";`, a name, not a string.
            b'E' => {
                self.expect("E:")?;
                self.counted()?;
                self.expect(";")?;
            }
            b'a' => {
                self.expect("a:")?;
                let n = self.number()?;
                self.expect(":{")?;
                out.push(Piece::Raw(&self.s[start..self.at]));
                return self.members(n, out);
            }
            b'O' => {
                self.expect("O:")?;
                self.counted()?;
                self.expect(":")?;
                let n = self.number()?;
                self.expect(":{")?;
                out.push(Piece::Raw(&self.s[start..self.at]));
                return self.members(n, out);
            }
            _ => return None,
        }
        out.push(Piece::Raw(&self.s[start..self.at]));
        Some(())
    }

    /// `n` keys and values, then `}`.
    fn members(&mut self, n: usize, out: &mut Vec<Piece<'a>>) -> Option<()> {
        for _ in 0..n.checked_mul(2)? {
            self.value(out)?;
        }
        let start = self.at;
        self.expect("}")?;
        out.push(Piece::Raw(&self.s[start..self.at]));
        Some(())
    }

    /// `N:"<N bytes>"`: the bytes.
    fn counted(&mut self) -> Option<&'a str> {
        let n = self.number()?;
        self.expect(":\"")?;
        let end = self.at.checked_add(n)?;
        if end > self.s.len() || !self.s.is_char_boundary(end) {
            return None;
        }
        let contents = &self.s[self.at..end];
        self.at = end;
        self.expect("\"")?;
        Some(contents)
    }

    fn number(&mut self) -> Option<usize> {
        let digits = self.s[self.at..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n = self.s[self.at..self.at + digits].parse().ok()?;
        self.at += digits;
        Some(n)
    }

    fn expect(&mut self, token: &str) -> Option<()> {
        self.s[self.at..].starts_with(token).then(|| {
            self.at += token.len();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(text: &str) -> Vec<(String, Slashes)> {
        spans(text)
            .into_iter()
            .map(|s| (text[s.range].to_string(), s.slashes))
            .collect()
    }

    #[test]
    fn escaped_slashes_are_urls_too() {
        let json = r#"{"url":"https:\/\/media.s3.amazonaws.com\/a\/b.png","u2":"https:\u002F\u002Fmedia.s3.amazonaws.com\u002Fc.png","plain":"https://x.test/d.png"}"#;
        assert_eq!(
            found(json),
            [
                (
                    r"https:\/\/media.s3.amazonaws.com\/a\/b.png".to_string(),
                    Slashes::Backslash
                ),
                (
                    r"https:\u002F\u002Fmedia.s3.amazonaws.com\u002Fc.png".to_string(),
                    Slashes::Unicode
                ),
                ("https://x.test/d.png".to_string(), Slashes::Plain),
            ]
        );
        assert_eq!(
            unescape(r"https:\/\/m.test\/a\/b.png", Slashes::Backslash),
            "https://m.test/a/b.png"
        );
        assert_eq!(
            escape("https://r2.test/a/b.png", Slashes::Unicode),
            r"https:\u002F\u002Fr2.test\u002Fa\u002Fb.png"
        );
        // Sentence punctuation and a glued scheme are not part of a URL.
        assert_eq!(
            found(r"see https:\/\/m.test\/a.png. And xhttps:\/\/no.test\/b"),
            [(r"https:\/\/m.test\/a.png".to_string(), Slashes::Backslash)]
        );
    }

    #[test]
    fn serialized_strings_are_pieces_and_lengths_are_recomputed_in_bytes() {
        let v = r#"a:2:{s:3:"url";s:24:"https://m.test/café.png";i:7;O:8:"stdClass":1:{s:1:"k";s:8:"s:1:"x";";}}"#;
        let Serialized::Valid(pieces) = serialized(v) else {
            panic!("not valid: {v}");
        };
        // Unchanged strings give back the same bytes.
        assert_eq!(rebuild::<()>(&pieces, |s| Ok(s.to_string())).unwrap(), v);
        let strings: Vec<&str> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Str(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert_eq!(
            strings,
            ["url", "https://m.test/café.png", "k", "s:1:\"x\";"]
        );
        let longer =
            rebuild::<()>(&pieces, |s| Ok(s.replace("m.test", "r2.example.test"))).unwrap();
        assert!(
            longer.contains(r#"s:33:"https://r2.example.test/café.png";"#),
            "{longer}"
        );
        assert!(matches!(serialized(&longer), Serialized::Valid(_)));
    }

    #[test]
    fn what_is_not_serialized_or_is_broken_is_told_apart() {
        for text in ["plain https://m.test/a", "", "a:b", "s:x:\"\"", "{\"a\":1}"] {
            assert!(matches!(serialized(text), Serialized::Not), "{text}");
        }
        for text in [
            r#"s:5:"abc";"#,
            r#"a:1:{s:1:"k";}"#,
            r#"a:1:{s:1:"k";s:1:"v";"#,
            r#"s:2:"é";"#.replace("2", "1").as_str(),
            r#"a:1:{i:0;s:3:"abc";}trailing"#,
        ] {
            assert!(matches!(serialized(text), Serialized::Broken), "{text}");
        }
    }

    /// A PHP value, to serialize as PHP does.
    #[derive(Debug, Clone)]
    enum Php {
        Str(String),
        Int(i64),
        Null,
        Array(Vec<(Php, Php)>),
    }

    fn php(v: &Php) -> String {
        match v {
            Php::Str(s) => format!("s:{}:\"{s}\";", s.len()),
            Php::Int(i) => format!("i:{i};"),
            Php::Null => "N;".into(),
            Php::Array(kv) => {
                let body: String = kv.iter().map(|(k, v)| php(k) + &php(v)).collect();
                format!("a:{}:{{{body}}}", kv.len())
            }
        }
    }

    fn strings_of(v: &Php, out: &mut Vec<String>) {
        match v {
            Php::Str(s) => out.push(s.clone()),
            Php::Array(kv) => kv.iter().for_each(|(k, v)| {
                strings_of(k, out);
                strings_of(v, out);
            }),
            _ => {}
        }
    }

    fn any_php() -> impl Strategy<Value = Php> {
        let text = prop_oneof![
            "[a-z0-9 \"{};:é]{0,12}",
            "https://media\\.s3\\.amazonaws\\.com/[a-z0-9é/]{1,12}\\.png",
        ];
        let leaf = prop_oneof![
            text.prop_map(Php::Str),
            any::<i64>().prop_map(Php::Int),
            Just(Php::Null)
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::vec((any::<u8>().prop_map(|i| Php::Int(i as i64)), inner), 0..4)
                .prop_map(Php::Array)
        })
    }

    proptest! {
        /// Any serialized value parses; rebuilt unchanged it is the same bytes; with its
        /// strings changed, each length is the new string's length in bytes.
        #[test]
        fn serialized_values_round_trip(value in any_php()) {
            let text = php(&value);
            let Serialized::Valid(pieces) = serialized(&text) else {
                if matches!(value, Php::Str(_) | Php::Array(_)) {
                    return Err(TestCaseError::fail(format!("not parsed: {text}")));
                }
                return Ok(());
            };
            prop_assert_eq!(rebuild::<()>(&pieces, |s| Ok(s.to_string())).unwrap(), text.clone());
            let mut before = Vec::new();
            strings_of(&value, &mut before);
            let grown = rebuild::<()>(&pieces, |s| Ok(s.replace("media.s3.amazonaws.com", "cdn.r2.example.test"))).unwrap();
            let Serialized::Valid(again) = serialized(&grown) else {
                return Err(TestCaseError::fail(format!("broken after the change: {grown}")));
            };
            let after: Vec<String> = again.iter().filter_map(|p| match p {
                Piece::Str(s) => Some(s.to_string()),
                _ => None,
            }).collect();
            let expected: Vec<String> = before.iter().map(|s| s.replace("media.s3.amazonaws.com", "cdn.r2.example.test")).collect();
            prop_assert_eq!(after, expected);
        }

        /// Text with no scheme in it has no span, escaped or not.
        #[test]
        fn text_without_a_scheme_has_no_span(text in "[^:]{0,64}") {
            prop_assert!(spans(&text).is_empty());
        }
    }
}
