//! The whole object's running digests at a part boundary, written down so a crashed
//! multipart upload can go on from its last recorded part without reading the bytes
//! before it again. SHA-256 and MD5 keep RustCrypto's own serialised state (the
//! chaining value, the block count and an empty buffer: parts are multiples of 64
//! bytes); a CRC's state is its register; a composite over the source's own parts keeps
//! its place in that layout and the part digests finished since the line before.

use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::checksum::{b64, from_b64, Hasher};
use crate::composite::{CompositeHasher, CompositeState};

/// The digests after `len` bytes, as a part line records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashState {
    /// Bytes hashed so far.
    pub len: u64,
    /// SHA-256's state (base64).
    pub sha256: String,
    /// MD5's state (base64), where the source states an MD5 to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// The CRC64NVME register (hex).
    pub crc64nvme: String,
    /// The CRC32C value so far, where the source states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
    /// The CRC32 register (hex), where the source states a full-object CRC32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    /// Where the source states a composite of its own parts (an S3 multipart ETag or
    /// COMPOSITE checksum): that hasher's state, with the source parts' digests finished
    /// since the previous part line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeState>,
}

impl Hasher {
    /// Bytes of the composite's finished part digests so far (0 without one): what
    /// [`Hasher::state`] leaves out of the next line.
    pub fn composite_len(&self) -> usize {
        self.composite
            .as_ref()
            .map_or(0, CompositeHasher::finished_len)
    }

    /// The state to go on from; a composite's finished digests from byte
    /// `composite_since` on (those earlier lines did not hold).
    pub fn state(&self, composite_since: usize) -> HashState {
        HashState {
            len: self.len,
            sha256: b64(&self.sha256.serialize()),
            md5: self.md5.as_ref().map(|m| b64(&m.serialize())),
            crc64nvme: format!("{:016x}", self.crc64nvme.get_state()),
            crc32c: self.crc32c,
            crc32: self.crc32.as_ref().map(|c| format!("{:x}", c.get_state())),
            composite: self.composite.as_ref().map(|c| c.state(composite_since)),
        }
    }

    /// A hasher that goes on from `state` (its composite's `finished` holding every
    /// finished part digest), computing at least what `fresh` (a new hasher for the same
    /// object) would; `None` if the recorded state lacks one of those or does not read
    /// back.
    pub fn resumed(fresh: &Hasher, state: &HashState) -> Option<Hasher> {
        if fresh.md5.is_some() && state.md5.is_none()
            || fresh.crc32c.is_some() && state.crc32c.is_none()
            || fresh.crc32.is_some() && state.crc32.is_none()
            || fresh.composite.is_some() != state.composite.is_some()
        {
            return None;
        }
        let composite = match (&fresh.composite, &state.composite) {
            (Some(c), Some(s)) => Some(c.resumed(s, from_b64(&s.finished)?)?),
            _ => None,
        };
        let crc = |alg, hex: &str| {
            u64::from_str_radix(hex, 16)
                .ok()
                .map(|v| crc_fast::Digest::new_with_init_state(alg, v))
        };
        Some(Hasher {
            sha256: restore(&state.sha256)?,
            md5: match &state.md5 {
                Some(m) => Some(restore(m)?),
                None => None,
            },
            crc32c: state.crc32c,
            crc32: match &state.crc32 {
                Some(c) => Some(crc(crc_fast::CrcAlgorithm::Crc32IsoHdlc, c)?),
                None => None,
            },
            composite,
            crc64nvme: crc(crc_fast::CrcAlgorithm::Crc64Nvme, &state.crc64nvme)?,
            len: state.len,
        })
    }
}

fn restore<H: SerializableState>(text: &str) -> Option<H> {
    let bytes = from_b64(text)?;
    let state = SerializedState::<H>::try_from(bytes.as_slice()).ok()?;
    H::deserialize(&state).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn going_on_from_a_recorded_state_gives_the_digests_of_the_whole() {
        let all = bytes(3 * 64 * 1024 + 17);
        let cut = 2 * 64 * 1024;
        let fresh = || Hasher::with(true, true).and_crc32();
        let mut whole = fresh();
        whole.update(&all);
        let mut first = fresh();
        first.update(&all[..cut]);
        let state = first.state(0);
        let line = serde_json::to_string(&state).unwrap();
        assert!(line.len() < 400, "a part line stays small: {line}");
        let read: HashState = serde_json::from_str(&line).unwrap();
        let mut rest = Hasher::resumed(&fresh(), &read).expect("reads back");
        rest.update(&all[cut..]);
        assert_eq!(rest.finish(), whole.finish());
    }

    #[test]
    fn a_composite_goes_on_from_the_digests_of_every_line_before() {
        use crate::composite::{Composite, PartAlgorithm};
        let all = bytes(5 * 1024);
        // The source's parts (1,000 bytes) do not line up with the upload's (1,024).
        let layout = Composite {
            algorithm: PartAlgorithm::Md5,
            part_sizes: vec![1000, 1000, 1000, 1000, 1000, 120],
            stated: vec![],
        };
        let fresh = || Hasher::with(true, false).and_composite(&layout);
        let mut whole = fresh();
        whole.update(&all);
        let mut h = fresh();
        let mut lines = Vec::new();
        for upload_part in all.chunks(1024).take(3) {
            let since = h.composite_len();
            h.update(upload_part);
            lines.push(h.state(since));
        }
        // Each line holds only the source parts finished while its part was hashed.
        assert!(lines.iter().all(|l| {
            let c = l.composite.as_ref().unwrap();
            from_b64(&c.finished).unwrap().len() <= 16
        }));
        let mut last = lines.last().unwrap().clone();
        let finished: Vec<u8> = lines
            .iter()
            .flat_map(|l| from_b64(&l.composite.as_ref().unwrap().finished).unwrap())
            .collect();
        last.composite.as_mut().unwrap().finished = b64(&finished);
        let mut rest = Hasher::resumed(&fresh(), &last).expect("reads back");
        rest.update(&all[3 * 1024..]);
        assert_eq!(rest.finish(), whole.finish());
    }

    #[test]
    fn a_state_without_the_digests_a_source_needs_is_not_used() {
        let mut h = Hasher::new();
        h.update(&bytes(128));
        let state = h.state(0);
        assert!(Hasher::resumed(&Hasher::with(true, false), &state).is_none());
        assert!(Hasher::resumed(&Hasher::new(), &state).is_some());
        let mut bad = state.clone();
        bad.sha256 = b64(b"not a state");
        assert!(Hasher::resumed(&Hasher::new(), &bad).is_none());
    }
}
