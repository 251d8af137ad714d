//! Property tests of `rewrite-urls`' embedded mode, one per shape a stored URL takes
//! (plain text ending a sentence, `?query` and `#fragment`, `srcset` lists, JSON with
//! `\/` and `\u002F`, PHP-serialized arrays and objects nested in each other, keys that
//! need percent-encoding): random values of each shape are rewritten to R2, and the
//! rewritten value rewritten back from R2 to the source is the original, byte for byte;
//! every URL is counted once (changed or listed); a second pass changes nothing; a value
//! with no URL of the source is never touched; serialized data an earlier tool broke is
//! left as it is. (The database keeps the original in the manifest for rollback; these
//! check that what is written is exactly the original with its URLs swapped.)

use std::collections::HashMap;

use proptest::prelude::*;
use r2migrate::rewrite::shapes::{serialized, Serialized};
use r2migrate::rewrite::urls::{render, SourceUrls};
use r2migrate::rewrite::{Mode, Rewriter};

const OLD: &str = "https://old-cdn.example.test/media/";
const NEW: &str = "https://pub-media.example.test/";

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A source key: segments with spaces, é, `#`, `%`, `+`, `=` (percent-encoded in URLs),
/// each ending in a letter or digit so no sentence punctuation is part of it.
fn any_key() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zé #%+=_.-]{0,6}[a-z0-9]", 1..4).prop_map(|s| s.join("/"))
}

/// What may follow a URL's path: nothing, a cache buster, a fragment, both.
fn any_tail() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "?ver=6.4", "#top", "?v=2&w=300#main"])
}

/// What ends a URL in text: a space, sentence punctuation, a quote, a tag, a newline.
fn any_end() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", ". ", "! ", ", ", "\"", "'", "<", ")", "\n"])
}

/// Text around URLs: no scheme can start in it.
fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>=\"',.!?\n(){}é-]{0,16}"
}

/// One piece of a stored value, as the URL of `key` appears in it.
#[derive(Debug, Clone)]
enum Shape {
    Text(&'static str, &'static str),
    Srcset,
    JsonSlash,
    JsonUnicode,
}

fn any_shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (any_tail(), any_end()).prop_map(|(t, e)| Shape::Text(t, e)),
        Just(Shape::Srcset),
        Just(Shape::JsonSlash),
        Just(Shape::JsonUnicode),
    ]
}

/// Writes the URL of `key` under `base` in `shape`; returns how many URLs it wrote.
fn write(out: &mut String, base: &str, key: &str, shape: &Shape) -> usize {
    let url = render(&format!("{base}{{key}}"), key);
    match shape {
        Shape::Text(tail, end) => {
            out.push_str(&format!("see {url}{tail}{end}"));
            1
        }
        Shape::Srcset => {
            out.push_str(&format!(
                "<img srcset=\"{url} 300w, {url} 1024w\" sizes=\"100vw\">"
            ));
            2
        }
        Shape::JsonSlash => {
            out.push_str(&format!(
                "<!-- wp:image {{\"url\":\"{}\"}} -->",
                url.replace('/', "\\/")
            ));
            1
        }
        Shape::JsonUnicode => {
            out.push_str(&format!("{{\"u\":\"{}\"}}", url.replace('/', "\\u002F")));
            1
        }
    }
}

/// A text value: filler and URLs of the source (`keys[i]`, migrated or not) in shapes.
#[derive(Debug, Clone)]
struct Text {
    pieces: Vec<(String, usize, Shape)>,
    tail: String,
}

fn any_text(keys: usize) -> impl Strategy<Value = Text> {
    (
        prop::collection::vec((filler(), 0..keys, any_shape()), 0..5),
        filler(),
    )
        .prop_map(|(pieces, tail)| Text { pieces, tail })
}

/// The text with its URLs under `base`, and how many URLs of migrated and of other keys.
fn render_text(t: &Text, base: &str, keys: &[(String, bool)]) -> (String, usize, usize) {
    let (mut out, mut migrated, mut not) = (String::new(), 0, 0);
    for (fill, k, shape) in &t.pieces {
        out.push_str(fill);
        let n = write(&mut out, base, &keys[*k].0, shape);
        if keys[*k].1 {
            migrated += n;
        } else {
            not += n;
        }
    }
    out.push_str(&t.tail);
    (out, migrated, not)
}

/// A PHP value whose strings are texts (serialize() as PHP writes it: lengths in bytes).
#[derive(Debug, Clone)]
enum Php {
    Str(Text),
    Int(i64),
    Array(Vec<Php>),
    Object(Vec<Php>),
}

fn any_php(keys: usize) -> impl Strategy<Value = Php> {
    let leaf = prop_oneof![
        3 => any_text(keys).prop_map(Php::Str),
        1 => any::<i32>().prop_map(|i| Php::Int(i64::from(i))),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Php::Array),
            prop::collection::vec(inner, 0..3).prop_map(Php::Object),
        ]
    })
}

fn php(v: &Php, base: &str, keys: &[(String, bool)], counts: &mut (usize, usize)) -> String {
    match v {
        Php::Str(t) => {
            let (s, m, n) = render_text(t, base, keys);
            counts.0 += m;
            counts.1 += n;
            format!("s:{}:\"{s}\";", s.len())
        }
        Php::Int(i) => format!("i:{i};"),
        Php::Array(items) | Php::Object(items) => {
            let object = matches!(v, Php::Object(_));
            let body: String = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    // An array's keys are integers here; an object's are property names.
                    let k = if object {
                        format!("s:{}:\"p{i}\";", format!("p{i}").len())
                    } else {
                        format!("i:{i};")
                    };
                    k + &php(item, base, keys, counts)
                })
                .collect();
            if object {
                format!("O:8:\"stdClass\":{}:{{{body}}}", items.len())
            } else {
                format!("a:{}:{{{body}}}", items.len())
            }
        }
    }
}

/// Source keys (with whether each is migrated), at least one of each.
fn any_keys() -> impl Strategy<Value = Vec<(String, bool)>> {
    prop::collection::vec(any_key(), 2..6).prop_map(|keys| {
        let mut keys: Vec<String> = keys;
        keys.sort();
        keys.dedup();
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i % 2 == 0 || keys.len() == 1))
            .collect()
    })
}

struct Both {
    forward: HashMap<String, String>,
}

impl Both {
    fn new(keys: &[(String, bool)]) -> Both {
        Both {
            forward: keys
                .iter()
                .filter(|(_, m)| *m)
                .map(|(k, _)| (k.clone(), k.clone()))
                .collect(),
        }
    }

    fn to_r2(&self) -> Rewriter<'_> {
        Rewriter {
            urls: SourceUrls::bases(&[OLD.to_string()]),
            migrated: &self.forward,
            mode: Mode::Embedded,
            to: format!("{NEW}{{key}}"),
        }
    }

    /// R2's URLs back to the source's: the inverse of `to_r2` for migrated keys.
    fn back(&self) -> Rewriter<'_> {
        Rewriter {
            urls: SourceUrls::bases(&[NEW.to_string()]),
            migrated: &self.forward,
            mode: Mode::Embedded,
            to: format!("{OLD}{{key}}"),
        }
    }
}

/// Rewrites `value`, checks the counts, the second pass and the way back; returns the
/// rewritten value.
fn round_trip(
    value: &str,
    keys: &[(String, bool)],
    migrated: usize,
    not: usize,
) -> Result<String, TestCaseError> {
    let both = Both::new(keys);
    let done = both.to_r2().rewrite(value).unwrap();
    prop_assert_eq!(done.changed.len(), migrated, "URLs changed in {}", value);
    prop_assert_eq!(done.not_migrated.len(), not, "URLs listed in {}", value);
    prop_assert!(!done.broken);
    let Some(new) = done.new else {
        prop_assert_eq!(migrated, 0, "nothing changed in {}", value);
        return Ok(value.to_string());
    };
    let again = both.to_r2().rewrite(&new).unwrap();
    prop_assert_eq!(again.new, None, "a second pass changed {}", new);
    let back = both.back().rewrite(&new).unwrap();
    prop_assert_eq!(
        back.new.as_deref(),
        Some(value),
        "the way back from {}",
        new
    );
    Ok(new)
}

proptest! {
    #![proptest_config(cases())]

    /// Text, HTML, srcset and JSON (both escapes), URLs with queries, fragments and
    /// sentence punctuation after them.
    #[test]
    fn text_values_round_trip(keys in any_keys(), text in any_text(6)) {
        let keys: Vec<_> = (0..6).map(|i| keys[i % keys.len()].clone()).collect();
        let (value, migrated, not) = render_text(&text, OLD, &keys);
        round_trip(&value, &keys, migrated, not)?;
    }

    /// PHP-serialized arrays and objects, nested, whose strings hold any of the above:
    /// every length is recomputed in bytes, and the result unserializes.
    #[test]
    fn serialized_values_round_trip(keys in any_keys(), value in any_php(6)) {
        let keys: Vec<_> = (0..6).map(|i| keys[i % keys.len()].clone()).collect();
        let mut counts = (0, 0);
        let text = php(&value, OLD, &keys, &mut counts);
        let new = round_trip(&text, &keys, counts.0, counts.1)?;
        if !matches!(value, Php::Int(_)) {
            prop_assert!(matches!(serialized(&new), Serialized::Valid(_)), "{}", new);
        }
    }

    /// A value with no URL of the source — other hosts, the R2 host, text — is never
    /// touched or counted.
    #[test]
    fn values_without_a_source_url_are_untouched(keys in any_keys(), text in any_text(6), ser in any_php(4)) {
        let keys: Vec<_> = (0..6).map(|i| keys[i % keys.len()].clone()).collect();
        let both = Both::new(&keys);
        let elsewhere = "https://elsewhere.example.test/media/";
        let (value, _, _) = render_text(&text, elsewhere, &keys);
        let done = both.to_r2().rewrite(&value).unwrap();
        prop_assert!(done.new.is_none() && done.changed.is_empty() && done.not_migrated.is_empty());
        let serial = php(&ser, elsewhere, &keys, &mut (0, 0));
        let done = both.to_r2().rewrite(&serial).unwrap();
        prop_assert!(done.new.is_none() && done.not_migrated.is_empty(), "{}", serial);
    }

    /// Serialized data whose length prefix an earlier tool broke: left as it is, its
    /// URLs of the source listed, never "repaired" by guesswork.
    #[test]
    fn broken_serialized_values_are_left_and_listed(keys in any_keys(), skew in 1usize..5) {
        let keys: Vec<_> = (0..6).map(|i| keys[i % keys.len()].clone()).collect();
        let url = render(&format!("{OLD}{{key}}"), &keys[0].0);
        let value = format!("a:1:{{s:3:\"url\";s:{}:\"{url}\";}}", url.len() + skew);
        let done = Both::new(&keys).to_r2().rewrite(&value).unwrap();
        prop_assert_eq!(done.new, None);
        prop_assert!(done.broken);
        prop_assert_eq!(done.not_migrated.len(), 1);
    }
}
