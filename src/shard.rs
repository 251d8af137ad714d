//! `--shard K/N`: a stable split of the source keys across N machines (for example a
//! Kubernetes Indexed Job, whose completion index is K, from 0 to N-1). The hash is the
//! first 8 bytes of the key's SHA-256, so it never changes between versions or machines.

use serde::Serialize;

use crate::error::usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(text: &str) -> anyhow::Result<Shard> {
        let bad = || {
            usage(format!(
                "--shard {text:?}: use K/N with 0 <= K < N, e.g. 0/4"
            ))
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// `K/N`, or `auto/N` with K from `completion_index` (a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX`, which the caller reads).
    pub fn resolve(text: &str, completion_index: Option<&str>) -> anyhow::Result<Shard> {
        let Some(n) = text.trim().strip_prefix("auto/") else {
            return Shard::parse(text);
        };
        let Some(k) = completion_index.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(usage(format!(
                "--shard {text:?}: JOB_COMPLETION_INDEX is not set (a Kubernetes Indexed Job sets it in each pod); give K/N instead"
            )));
        };
        Shard::parse(&format!("{k}/{n}")).map_err(|_| {
            usage(format!(
                "--shard {text:?}: JOB_COMPLETION_INDEX={k:?} is not a shard of {n} (it must be 0 to N-1: set the Job's completions to N)"
            ))
        })
    }

    /// The default manifest of this shard, so N pods sharing a volume never share one.
    pub fn manifest_name(&self) -> String {
        format!(
            "r2migrate-manifest.shard-{}-of-{}.jsonl",
            self.index, self.count
        )
    }

    pub fn contains(&self, source_key: &str) -> bool {
        let digest = crate::checksum::sha256(source_key.as_bytes());
        let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        h % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_k_from_the_completion_index() {
        assert_eq!(
            Shard::resolve("auto/4", Some("3")).unwrap(),
            Shard { index: 3, count: 4 }
        );
        assert_eq!(
            Shard::resolve("1/4", Some("3")).unwrap(),
            Shard { index: 1, count: 4 }
        );
        for (text, env) in [
            ("auto/4", None),
            ("auto/4", Some("4")),
            ("auto/4", Some("x")),
            ("auto/0", Some("0")),
        ] {
            let err = Shard::resolve(text, env).unwrap_err().to_string();
            assert!(
                err.contains("JOB_COMPLETION_INDEX") || err.contains("K/N"),
                "{text} {env:?}: {err}"
            );
        }
        assert_eq!(
            Shard::resolve("auto/4", Some("2")).unwrap().manifest_name(),
            "r2migrate-manifest.shard-2-of-4.jsonl"
        );
    }

    #[test]
    fn shards_partition_the_keys() {
        let shards: Vec<Shard> = (0..4)
            .map(|k| Shard::parse(&format!("{k}/4")).unwrap())
            .collect();
        let mut sizes = [0usize; 4];
        for i in 0..4000 {
            let key = format!("photos/{i}.jpg");
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].contains(&key)).collect();
            assert_eq!(owners.len(), 1, "{key} in {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 800), "{sizes:?}");
    }

    #[test]
    fn bad_shards_are_refused() {
        for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::parse(" 2 / 3 ").unwrap(),
            Shard { index: 2, count: 3 }
        );
    }
}
