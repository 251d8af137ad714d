//! `--include` / `--exclude` globs and the size and modification-time bounds. A glob's
//! `*` crosses `/`, as in `aws s3 sync`: `*.jpg` matches `a/b/c.jpg`.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::usage;
use crate::source::ObjectInfo;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub modified_after: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub modified_before: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub spec: FilterSpec,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn build(globs: &[String], what: &str) -> anyhow::Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| usage(format!("--{what} {g:?} is not a valid glob: {e} (quote it so the shell leaves it alone: '*.jpg', 'photos/**', '{{a,b}}/*')")))?);
    }
    Ok(Some(
        b.build().map_err(|e| usage(format!("--{what}: {e}")))?,
    ))
}

impl Filter {
    pub fn new(
        include: &[String],
        exclude: &[String],
        min_size: Option<u64>,
        max_size: Option<u64>,
        modified_after: Option<OffsetDateTime>,
        modified_before: Option<OffsetDateTime>,
    ) -> anyhow::Result<Filter> {
        if let (Some(lo), Some(hi)) = (min_size, max_size) {
            if lo > hi {
                return Err(usage(format!(
                    "min_size ({lo}) is larger than max_size ({hi}): nothing would match"
                )));
            }
        }
        Ok(Filter {
            include: build(include, "include")?,
            exclude: build(exclude, "exclude")?,
            spec: FilterSpec {
                include: include.to_vec(),
                exclude: exclude.to_vec(),
                min_size,
                max_size,
                modified_after,
                modified_before,
            },
        })
    }

    /// Whether a key (relative to the source prefix) passes the globs alone.
    pub fn key_matches(&self, key: &str) -> bool {
        if let Some(inc) = &self.include {
            if !inc.is_match(key) {
                return false;
            }
        }
        !self.exclude.as_ref().is_some_and(|exc| exc.is_match(key))
    }

    pub fn matches(&self, obj: &ObjectInfo) -> bool {
        let s = &self.spec;
        if !self.key_matches(&obj.key) {
            return false;
        }
        if s.min_size.is_some_and(|m| obj.size < m) || s.max_size.is_some_and(|m| obj.size > m) {
            return false;
        }
        if s.modified_after.is_some() || s.modified_before.is_some() {
            let Some(modified) = obj.modified else {
                return false;
            };
            if s.modified_after.is_some_and(|t| modified <= t)
                || s.modified_before.is_some_and(|t| modified >= t)
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn obj(key: &str, size: u64, modified: Option<OffsetDateTime>) -> ObjectInfo {
        let mut o = ObjectInfo::new(key, size);
        o.modified = modified;
        o
    }

    #[test]
    fn globs_include_then_exclude() {
        let f = Filter::new(
            &["*.jpg".into(), "docs/**".into()],
            &["**/thumbs/*".into()],
            None,
            None,
            None,
            None,
        )
        .unwrap();
        assert!(f.matches(&obj("a/b/c.jpg", 1, None)));
        assert!(f.matches(&obj("docs/x.txt", 1, None)));
        assert!(!f.matches(&obj("a/thumbs/c.jpg", 1, None)));
        assert!(!f.matches(&obj("a/b/c.png", 1, None)));
    }

    #[test]
    fn sizes_and_times_bound_inclusively_and_exclusively() {
        let f = Filter::new(
            &[],
            &[],
            Some(10),
            Some(20),
            Some(datetime!(2024-01-01 0:00 UTC)),
            Some(datetime!(2025-01-01 0:00 UTC)),
        )
        .unwrap();
        let t = Some(datetime!(2024-06-01 0:00 UTC));
        assert!(f.matches(&obj("a", 10, t)));
        assert!(f.matches(&obj("a", 20, t)));
        assert!(!f.matches(&obj("a", 9, t)));
        assert!(!f.matches(&obj("a", 21, t)));
        assert!(!f.matches(&obj("a", 15, Some(datetime!(2023-06-01 0:00 UTC)))));
        assert!(!f.matches(&obj("a", 15, None)));
    }

    #[test]
    fn bad_globs_and_bounds_are_refused() {
        assert!(Filter::new(&["a[".into()], &[], None, None, None, None).is_err());
        assert!(Filter::new(&[], &[], Some(5), Some(4), None, None).is_err());
    }
}
