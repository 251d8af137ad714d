//! Cuts an object's byte stream into the exact sizes of its parts.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::StoreError;
use crate::limits::MIB;
use crate::object::ByteStream;

/// Cuts an object's byte stream into buffers of exact sizes. It remembers where the
/// stream ended and never polls it again after that (streams are fused too, but the
/// reader does not rely on it).
pub struct PartReader {
    stream: ByteStream,
    carry: Option<Bytes>,
    ended: bool,
}

impl PartReader {
    pub fn new(stream: ByteStream) -> PartReader {
        PartReader {
            stream,
            carry: None,
            ended: false,
        }
    }

    /// Exactly `want` bytes (fewer only at the stream's end), keeping any surplus of the
    /// last chunk for the next call.
    pub async fn read(&mut self, want: u64) -> Result<BytesMut, StoreError> {
        let mut buf = BytesMut::with_capacity(want.min(64 * MIB) as usize);
        while (buf.len() as u64) < want {
            let chunk = match self.carry.take() {
                Some(c) => c,
                None if self.ended => break,
                None => match self.stream.next().await {
                    Some(c) => c?,
                    None => {
                        self.ended = true;
                        break;
                    }
                },
            };
            let room = (want - buf.len() as u64) as usize;
            if chunk.len() > room {
                buf.extend_from_slice(&chunk[..room]);
                self.carry = Some(chunk.slice(room..));
            } else {
                buf.extend_from_slice(&chunk);
            }
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_exact_parts_across_chunk_boundaries() {
        let chunks: Vec<Result<Bytes, StoreError>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defgh")),
            Ok(Bytes::from_static(b"ij")),
        ];
        // An unfused `Unfold` panics if polled after its end, as the S3 body did.
        let stream: ByteStream = futures::stream::unfold(chunks.into_iter(), |mut it| async move {
            it.next().map(|c| (c, it))
        })
        .boxed();
        let mut reader = PartReader::new(stream);
        let a = reader.read(4).await.unwrap();
        let b = reader.read(4).await.unwrap();
        let c = reader.read(4).await.unwrap();
        let after_end = reader.read(1).await.unwrap();
        let again = reader.read(4).await.unwrap();
        assert_eq!(
            (&a[..], &b[..], &c[..], &after_end[..], &again[..]),
            (&b"abcd"[..], &b"efgh"[..], &b"ij"[..], &b""[..], &b""[..])
        );
    }
}
