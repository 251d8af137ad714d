//! Base64 blobs as applications store them: standard or URL-safe alphabet, padded or
//! not, wrapped with line breaks or spaces, bare or as a `data:<mime>;base64,` URI.
//! Decoding is one row at a time. The text's form is recorded so a rollback can tell
//! exactly what was there.

use crate::source::Problem;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::{Deserialize, Serialize};

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// How the original text was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobForm {
    /// The `data:` URI's media type, when the text was a data URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_uri_type: Option<String>,
    pub url_safe: bool,
    pub padded: bool,
    pub wrapped: bool,
}

#[derive(Debug)]
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub form: BlobForm,
}

/// Why a stored value is not a blob: its kind, and in words fit for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotABlob {
    pub problem: Problem,
    pub reason: String,
}

fn empty(reason: &str) -> NotABlob {
    NotABlob {
        problem: Problem::Empty,
        reason: reason.into(),
    }
}

fn not_base64(reason: String) -> NotABlob {
    NotABlob {
        problem: Problem::NotBase64,
        reason,
    }
}

/// Decodes one stored value; the error says why.
pub fn decode(text: &[u8]) -> Result<Decoded, NotABlob> {
    let trimmed = trim_ascii(text);
    if trimmed.is_empty() {
        return Err(empty("empty: the data column holds no bytes"));
    }
    let (data_uri_type, payload) = match strip_data_uri(trimmed)? {
        Some((mime, rest)) => (Some(mime), rest),
        None => (None, trimmed),
    };
    let wrapped = payload.iter().any(|b| b.is_ascii_whitespace());
    let compact: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(empty("empty: the data URI holds no bytes"));
    }
    let url_safe = compact.iter().any(|&b| b == b'-' || b == b'_');
    let padded = compact.ends_with(b"=");
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    let bytes = engine
        .decode(&compact)
        .map_err(|e| not_base64(format!("not valid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(empty("empty: decodes to zero bytes"));
    }
    Ok(Decoded {
        bytes,
        form: BlobForm {
            data_uri_type,
            url_safe,
            padded,
            wrapped,
        },
    })
}

/// Whether a stored value that is not base64 is a reference rather than a blob: a URL
/// (`https://…`, `//cdn…`, any `scheme:` but `data:`) or a path (`/user.png`,
/// `./a.png`). Applications keep those in the same column as their blobs (and our
/// write-back leaves a URL there): they are not data to migrate, and are never touched.
pub fn is_reference(text: &[u8]) -> bool {
    let t = trim_ascii(text);
    let s = String::from_utf8_lossy(t);
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("data:") || t.is_empty() {
        return false;
    }
    let scheme = lower.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    scheme || s.starts_with('/') || s.starts_with("./") || s.starts_with("../")
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// `data:image/png;base64,AAAA` → ("image/png", "AAAA").
fn strip_data_uri(text: &[u8]) -> Result<Option<(String, &[u8])>, NotABlob> {
    if text.len() < 5 || !text[..5].eq_ignore_ascii_case(b"data:") {
        return Ok(None);
    }
    let comma = text
        .iter()
        .position(|&b| b == b',')
        .ok_or_else(|| not_base64("a data: URI without a comma".into()))?;
    let header = String::from_utf8_lossy(&text[5..comma]).to_string();
    let mut parts = header.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if !parts.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(not_base64(
            "a data: URI that is not base64 (no ;base64)".into(),
        ));
    }
    Ok(Some((mime, &text[comma + 1..])))
}

/// The content type an object gets, and the declared one when the bytes disagree: a
/// declared type (a `data:` URI's, or the content-type column's) stands unless the bytes'
/// magic number names a different kind of file — then the bytes win, as a browser would
/// sniff them, and the declared type is kept for the record.
pub fn content_type_of(declared: Option<String>, bytes: &[u8]) -> (Option<String>, Option<String>) {
    let magic = infer::get(bytes).map(|t| t.mime_type().to_string());
    match (declared, magic) {
        (Some(d), Some(m)) if ext_for(Some(&d)) != ext_for(Some(&m)) => (Some(m), Some(d)),
        (Some(d), _) => (Some(d), None),
        (None, m) => (m, None),
    }
}

/// The usual short extension for a content type (`bin` when unknown).
pub fn ext_for(content_type: Option<&str>) -> String {
    let Some(ct) = content_type else {
        return "bin".into();
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let known = match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/svg+xml" => "svg",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "image/bmp" => "bmp",
        "image/tiff" => "tif",
        "image/x-icon" | "image/vnd.microsoft.icon" => "ico",
        "application/pdf" => "pdf",
        "application/json" => "json",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        _ => "",
    };
    if !known.is_empty() {
        return known.into();
    }
    mime_guess::get_mime_extensions_str(&essence)
        .and_then(|exts| exts.first())
        .map(|e| e.to_string())
        .unwrap_or_else(|| "bin".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    const PNG: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xfb, 0xff,
    ];

    #[test]
    fn every_form_decodes_to_the_same_bytes() {
        let std_padded = general_purpose::STANDARD.encode(PNG);
        let url_bare = general_purpose::URL_SAFE_NO_PAD.encode(PNG);
        assert!(
            url_bare.contains('-') || url_bare.contains('_'),
            "the sample exercises the URL alphabet"
        );
        let wrapped = std_padded
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n ");
        let uri = format!("data:image/png;base64,{std_padded}");
        for text in [
            &std_padded,
            &url_bare,
            &wrapped,
            &uri,
            &format!("  {std_padded}\n"),
        ] {
            assert_eq!(decode(text.as_bytes()).unwrap().bytes, PNG, "{text}");
        }
        let d = decode(uri.as_bytes()).unwrap();
        assert_eq!(d.form.data_uri_type.as_deref(), Some("image/png"));
        assert!(decode(url_bare.as_bytes()).unwrap().form.url_safe);
        assert!(!decode(url_bare.as_bytes()).unwrap().form.padded);
        assert!(decode(wrapped.as_bytes()).unwrap().form.wrapped);
    }

    #[test]
    fn bad_rows_say_why() {
        let why = |text: &[u8]| decode(text).unwrap_err();
        for text in [&b""[..], b"   \n", b"data:image/png;base64,"] {
            assert_eq!(why(text).problem, Problem::Empty);
            assert!(why(text).reason.contains("empty"));
        }
        assert_eq!(why(b"not base64 at all!").problem, Problem::NotBase64);
        assert!(why(b"not base64 at all!")
            .reason
            .contains("not valid base64"));
        assert_eq!(why(b"data:text/plain,hello").problem, Problem::NotBase64);
        assert!(why(b"data:text/plain,hello").reason.contains("not base64"));
    }

    #[test]
    fn extensions_follow_the_content_type() {
        assert_eq!(ext_for(Some("image/jpeg")), "jpg");
        assert_eq!(ext_for(Some("image/png; charset=binary")), "png");
        assert_eq!(ext_for(Some("image/svg+xml")), "svg");
        assert_eq!(ext_for(Some("application/pdf")), "pdf");
        assert_eq!(ext_for(Some("application/x-unknown-thing")), "bin");
        assert_eq!(ext_for(None), "bin");
    }
}
