//! A digest of digests: what S3 states for an object uploaded in parts — the multipart
//! ETag (the MD5 of the parts' MD5s) and COMPOSITE checksums (SHA-256, SHA-1, CRC32,
//! CRC32C of the parts' checksums). Checking one needs the part boundaries; given them,
//! [`CompositeHasher`] computes it while the bytes stream by, whatever their chunking.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The algorithm each part was digested with (and the parts' digests, in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartAlgorithm {
    /// The multipart ETag: MD5 of the parts' binary MD5s.
    Md5,
    Sha256,
    Sha1,
    Crc32,
    Crc32c,
}

impl PartAlgorithm {
    pub fn name(&self) -> &'static str {
        match self {
            PartAlgorithm::Md5 => "multipart ETag (MD5 of the parts' MD5s)",
            PartAlgorithm::Sha256 => "composite SHA-256",
            PartAlgorithm::Sha1 => "composite SHA-1",
            PartAlgorithm::Crc32 => "composite CRC32",
            PartAlgorithm::Crc32c => "composite CRC32C",
        }
    }
}

/// A composite digest a source states, with the layout it was made over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    pub algorithm: PartAlgorithm,
    /// Each part's size, in order.
    pub part_sizes: Vec<u64>,
    /// The digest of the parts' digests, as raw bytes.
    pub stated: Vec<u8>,
}

#[derive(Clone)]
enum Running {
    Md5(Md5),
    Sha256(Sha256),
    Sha1(Sha1),
    Crc32(crc_fast::Digest),
    Crc32c(u32),
}

impl Running {
    fn new(algorithm: PartAlgorithm) -> Running {
        match algorithm {
            PartAlgorithm::Md5 => Running::Md5(Md5::new()),
            PartAlgorithm::Sha256 => Running::Sha256(Sha256::new()),
            PartAlgorithm::Sha1 => Running::Sha1(Sha1::new()),
            PartAlgorithm::Crc32 => {
                Running::Crc32(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc))
            }
            PartAlgorithm::Crc32c => Running::Crc32c(0),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Running::Md5(h) => h.update(bytes),
            Running::Sha256(h) => h.update(bytes),
            Running::Sha1(h) => h.update(bytes),
            Running::Crc32(d) => d.update(bytes),
            Running::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
        }
    }

    /// The digest as S3 concatenates it: raw bytes, CRCs big-endian.
    fn finish(self) -> Vec<u8> {
        match self {
            Running::Md5(h) => h.finalize().to_vec(),
            Running::Sha256(h) => h.finalize().to_vec(),
            Running::Sha1(h) => h.finalize().to_vec(),
            Running::Crc32(d) => (d.finalize() as u32).to_be_bytes().to_vec(),
            Running::Crc32c(c) => c.to_be_bytes().to_vec(),
        }
    }
}

/// A [`CompositeHasher`] written down at an upload's part boundary: where it is in the
/// source's part layout, its running part digest, and the digests of the source parts
/// finished since the previous part line (each line adds only those, so lines stay
/// small however many parts the source has).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompositeState {
    pub part: usize,
    pub left: u64,
    pub fed: bool,
    /// The running part digest's state (base64).
    pub running: String,
    /// Finished parts' digests, concatenated (base64).
    pub finished: String,
}

impl Running {
    fn state(&self) -> String {
        use sha2::digest::common::hazmat::SerializableState;
        match self {
            Running::Md5(h) => B64.encode(h.serialize()),
            Running::Sha256(h) => B64.encode(h.serialize()),
            Running::Sha1(h) => B64.encode(h.serialize()),
            Running::Crc32(d) => format!("{:x}", d.get_state()),
            Running::Crc32c(c) => format!("{c:x}"),
        }
    }

    fn restored(algorithm: PartAlgorithm, text: &str) -> Option<Running> {
        use sha2::digest::common::hazmat::{SerializableState, SerializedState};
        fn read<H: SerializableState>(text: &str) -> Option<H> {
            let bytes = B64.decode(text).ok()?;
            H::deserialize(&SerializedState::<H>::try_from(bytes.as_slice()).ok()?).ok()
        }
        Some(match algorithm {
            PartAlgorithm::Md5 => Running::Md5(read(text)?),
            PartAlgorithm::Sha256 => Running::Sha256(read(text)?),
            PartAlgorithm::Sha1 => Running::Sha1(read(text)?),
            PartAlgorithm::Crc32 => Running::Crc32(crc_fast::Digest::new_with_init_state(
                crc_fast::CrcAlgorithm::Crc32IsoHdlc,
                u64::from_str_radix(text, 16).ok()?,
            )),
            PartAlgorithm::Crc32c => Running::Crc32c(u32::from_str_radix(text, 16).ok()?),
        })
    }
}

/// Computes a composite digest over a stream cut at the stated part boundaries. Bytes
/// past the last boundary count as one more part, so they cannot match.
#[derive(Clone)]
pub struct CompositeHasher {
    algorithm: PartAlgorithm,
    sizes: Vec<u64>,
    /// The part being fed, and how many of its bytes are still to come.
    part: usize,
    left: u64,
    current: Running,
    fed: bool,
    /// The finished parts' digests, concatenated.
    digests: Vec<u8>,
}

impl CompositeHasher {
    pub fn new(c: &Composite) -> CompositeHasher {
        CompositeHasher {
            algorithm: c.algorithm,
            sizes: c.part_sizes.clone(),
            part: 0,
            left: c.part_sizes.first().copied().unwrap_or(u64::MAX),
            current: Running::new(c.algorithm),
            fed: false,
            digests: Vec::new(),
        }
    }

    pub fn update(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.left == 0 {
                self.close_part();
            }
            let take = (self.left.min(chunk.len() as u64)) as usize;
            self.current.update(&chunk[..take]);
            self.fed = true;
            self.left -= take as u64;
            chunk = &chunk[take..];
        }
    }

    fn close_part(&mut self) {
        let done = std::mem::replace(&mut self.current, Running::new(self.algorithm));
        self.digests.extend_from_slice(&done.finish());
        self.fed = false;
        self.part += 1;
        self.left = self.sizes.get(self.part).copied().unwrap_or(u64::MAX);
    }

    /// Bytes of finished parts' digests so far.
    pub fn finished_len(&self) -> usize {
        self.digests.len()
    }

    /// Its state, with the finished digests from byte `since` on.
    pub fn state(&self, since: usize) -> CompositeState {
        CompositeState {
            part: self.part,
            left: self.left,
            fed: self.fed,
            running: self.current.state(),
            finished: B64.encode(self.digests.get(since..).unwrap_or_default()),
        }
    }

    /// This (fresh) hasher's layout, gone on from `state` with every finished digest in
    /// `finished`; `None` if the state does not fit the layout.
    pub fn resumed(&self, state: &CompositeState, finished: Vec<u8>) -> Option<CompositeHasher> {
        if state.part > self.sizes.len() || finished.is_empty() && state.part > 0 {
            return None;
        }
        Some(CompositeHasher {
            algorithm: self.algorithm,
            sizes: self.sizes.clone(),
            part: state.part,
            left: state.left,
            current: Running::restored(self.algorithm, &state.running)?,
            fed: state.fed,
            digests: finished,
        })
    }

    /// The digest of the parts' digests.
    pub fn finish(mut self) -> Vec<u8> {
        if self.fed || self.left == 0 {
            self.close_part();
        }
        let mut whole = Running::new(self.algorithm);
        whole.update(&self.digests);
        whole.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composite_of(algorithm: PartAlgorithm, parts: &[&[u8]]) -> Vec<u8> {
        let mut cat = Vec::new();
        for p in parts {
            let mut r = Running::new(algorithm);
            r.update(p);
            cat.extend_from_slice(&r.finish());
        }
        let mut r = Running::new(algorithm);
        r.update(&cat);
        r.finish()
    }

    #[test]
    fn any_chunking_gives_the_digest_of_the_parts_digests() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sizes = [4096u64, 4096, 1808];
        let parts = [&bytes[..4096], &bytes[4096..8192], &bytes[8192..]];
        for algorithm in [
            PartAlgorithm::Md5,
            PartAlgorithm::Sha256,
            PartAlgorithm::Sha1,
            PartAlgorithm::Crc32,
            PartAlgorithm::Crc32c,
        ] {
            let want = composite_of(algorithm, &parts);
            for chunk in [1usize, 7, 4096, 5000, 10_000] {
                let c = Composite {
                    algorithm,
                    part_sizes: sizes.to_vec(),
                    stated: want.clone(),
                };
                let mut h = CompositeHasher::new(&c);
                for piece in bytes.chunks(chunk) {
                    h.update(piece);
                }
                assert_eq!(h.finish(), want, "{algorithm:?}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn the_multipart_etag_of_two_parts() {
        // An ETag as S3 states it: hex MD5 of the concatenated binary MD5s.
        let (a, b) = (b"first part".as_slice(), b"second".as_slice());
        let c = Composite {
            algorithm: PartAlgorithm::Md5,
            part_sizes: vec![a.len() as u64, b.len() as u64],
            stated: vec![],
        };
        let mut h = CompositeHasher::new(&c);
        h.update(&[a, b].concat());
        let mut cat = Md5::digest(a).to_vec();
        cat.extend_from_slice(&Md5::digest(b));
        assert_eq!(h.finish(), Md5::digest(&cat).to_vec());
    }

    #[test]
    fn bytes_past_the_layout_or_a_byte_moved_do_not_match() {
        let bytes = vec![5u8; 300];
        let c = Composite {
            algorithm: PartAlgorithm::Sha256,
            part_sizes: vec![100, 100, 100],
            stated: composite_of(
                PartAlgorithm::Sha256,
                &[&bytes[..100], &bytes[100..200], &bytes[200..]],
            ),
        };
        let mut more = CompositeHasher::new(&c);
        more.update(&bytes);
        more.update(b"x");
        assert_ne!(more.finish(), c.stated);
        let mut other = CompositeHasher::new(&Composite {
            part_sizes: vec![150, 150],
            ..c.clone()
        });
        other.update(&bytes);
        assert_ne!(other.finish(), c.stated, "another layout, another digest");
    }
}
