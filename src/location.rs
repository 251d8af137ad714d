//! Source and target URLs: `s3://`, `gs://`, `file://` (or a plain path), `sqlite://`,
//! `r2://`. Parsing, the canonical form written to manifests, and the rule that plain
//! `http://` endpoints are for loopback addresses only.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{usage, UsageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, prefix: String },
    Gcs { bucket: String, prefix: String },
    Local { root: PathBuf },
    Sqlite { path: PathBuf },
    R2 { bucket: String, prefix: String },
}

/// Whether a URL is read from or written to: they accept different schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

impl Location {
    pub fn parse(text: &str, role: Role) -> anyhow::Result<Location> {
        let what = match role {
            Role::Source => "source",
            Role::Target => "target",
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(usage(format!("the {what} URL is empty: give s3://bucket/prefix, gs://bucket/prefix, r2://bucket/prefix, sqlite:///abs/app.db or a path")));
        }
        let loc =
            if let Some(rest) = text.strip_prefix("s3://") {
                let (bucket, prefix) = bucket_and_prefix(rest, text)?;
                Location::S3 { bucket, prefix }
            } else if let Some(rest) = text.strip_prefix("gs://") {
                let (bucket, prefix) = bucket_and_prefix(rest, text)?;
                Location::Gcs { bucket, prefix }
            } else if let Some(rest) = text.strip_prefix("r2://") {
                let (bucket, prefix) = bucket_and_prefix(rest, text)?;
                Location::R2 { bucket, prefix }
            } else if let Some(rest) = text.strip_prefix("sqlite://") {
                Location::Sqlite {
                    path: absolute(&decode_path(rest, text)?)?,
                }
            } else if let Some(rest) = text.strip_prefix("file://") {
                Location::Local {
                    root: absolute(&decode_path(rest, text)?)?,
                }
            } else if text.contains("://") {
                return Err(usage(format!(
                "unsupported {what} URL {text:?}: use s3://, gs://, file://, sqlite:// or a path{}",
                if role == Role::Target { " (targets: r2:// or file://)" } else { "" }
            )));
            } else {
                Location::Local {
                    root: absolute(Path::new(text))?,
                }
            };
        match (role, &loc) {
            (Role::Target, Location::R2 { .. } | Location::Local { .. }) => Ok(loc),
            (Role::Target, _) => Err(usage(format!(
                "the target must be r2://bucket/prefix or a local directory (file:///abs/dir), not {text:?}"
            ))),
            (Role::Source, Location::R2 { .. }) => Err(usage(format!(
                "{text:?} is an R2 URL; to read from R2 as a source, give it as s3://bucket with --source-endpoint"
            ))),
            (Role::Source, _) => Ok(loc),
        }
    }

    /// The form written to manifest headers: prefixes end in `/`, paths are absolute.
    pub fn canonical(&self) -> String {
        match self {
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Location::Gcs { bucket, prefix } => format!("gs://{bucket}/{prefix}"),
            Location::R2 { bucket, prefix } => format!("r2://{bucket}/{prefix}"),
            Location::Local { root } => format!("file://{}", encode_path(root)),
            Location::Sqlite { path } => format!("sqlite://{}", encode_path(path)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// `bucket/some/prefix` → ("bucket", "some/prefix/"). A prefix names a folder.
fn bucket_and_prefix(rest: &str, whole: &str) -> anyhow::Result<(String, String)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(usage(format!(
            "{whole:?} names no bucket: write it as scheme://bucket/prefix"
        )));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
        || bucket.len() < 3
        || bucket.len() > 63
    {
        return Err(usage(format!(
            "{bucket:?} in {whole:?} is not a valid bucket name (3-63 lowercase letters, digits, '-', '.')"
        )));
    }
    Ok((bucket.to_string(), folder_prefix(prefix)))
}

/// Normalises a key prefix to folder form: no leading `/`, one trailing `/`, or empty.
pub fn folder_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

fn decode_path(rest: &str, whole: &str) -> anyhow::Result<PathBuf> {
    // file:///abs/dir → "/abs/dir"; file://localhost/abs/dir is accepted too.
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return Err(usage(format!(
            "{whole:?}: a file:// or sqlite:// URL needs an absolute path (three slashes: file:///abs/dir)"
        )));
    }
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| {
            usage(format!(
                "{whole:?} is not valid UTF-8 after percent-decoding: fix its %xx escapes"
            ))
        })?;
    Ok(PathBuf::from(decoded.as_ref()))
}

fn encode_path(path: &Path) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'%')
        .add(b'#')
        .add(b'?');
    percent_encoding::utf8_percent_encode(&path.to_string_lossy(), SET).to_string()
}

/// An absolute, lexically normalised path (`.` and `..` resolved without touching disk).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| UsageError(format!("cannot read the current directory: {e}")))?
            .join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Plain `http://` endpoints are refused unless they point at this machine or the
/// user said `--allow-http`: credentials must not cross a network in clear text.
pub fn check_endpoint(endpoint: &str, allow_http: bool) -> anyhow::Result<()> {
    let parsed = url::Url::parse(endpoint).map_err(|e| {
        usage(format!(
            "endpoint {endpoint:?} is not a URL: {e}; give https://host[:port]"
        ))
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_http {
                Ok(())
            } else {
                Err(usage(format!(
                    "endpoint {endpoint:?} is plain http on a non-loopback host: use https, or pass --allow-http if you accept sending credentials unencrypted"
                )))
            }
        }
        other => Err(usage(format!(
            "endpoint {endpoint:?} has scheme {other:?}: use https:// (or http:// on loopback)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_folders() {
        let a = Location::parse("r2://media/photos", Role::Target).unwrap();
        let b = Location::parse("r2://media/photos/", Role::Target).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical(), "r2://media/photos/");
        assert_eq!(
            Location::parse("s3://media", Role::Source)
                .unwrap()
                .canonical(),
            "s3://media/"
        );
        assert_eq!(
            Location::parse("gs://media//a/b//", Role::Source).unwrap(),
            Location::Gcs {
                bucket: "media".into(),
                prefix: "a/b/".into()
            }
        );
    }

    #[test]
    fn plain_paths_become_absolute_file_urls() {
        let loc = Location::parse("some dir/../x", Role::Source).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            loc,
            Location::Local {
                root: cwd.join("x")
            }
        );
        let url = Location::parse("file:///tmp/a%20b", Role::Target).unwrap();
        assert_eq!(
            url,
            Location::Local {
                root: PathBuf::from("/tmp/a b")
            }
        );
        assert_eq!(url.canonical(), "file:///tmp/a%20b");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for (text, role) in [
            ("s3://", Role::Source),
            ("s3://Bad_Bucket!/x", Role::Source),
            ("ftp://host/x", Role::Source),
            ("s3://bucket/x", Role::Target),
            ("r2://bucket/x", Role::Source),
            ("file://relative/x", Role::Source),
        ] {
            let err = Location::parse(text, role).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{text}: {err}");
        }
    }

    #[test]
    fn http_only_on_loopback() {
        assert!(check_endpoint("http://127.0.0.1:9000", false).is_ok());
        assert!(check_endpoint("http://localhost:9000", false).is_ok());
        assert!(check_endpoint("http://[::1]:9000", false).is_ok());
        assert!(check_endpoint("https://example.invalid", false).is_ok());
        assert!(check_endpoint("http://10.0.0.5:9000", false).is_err());
        assert!(check_endpoint("http://10.0.0.5:9000", true).is_ok());
        assert!(check_endpoint("ftp://127.0.0.1", true).is_err());
    }
}
