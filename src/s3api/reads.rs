//! Reads through the S3 API: HEAD of an object or of one part, GET of an object or a
//! range (conditioned on the version listed, asking for the stored bytes), and the body
//! as our chunk stream.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::ChecksumMode;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::{root_cause, send};
use crate::error::StoreError;
use crate::object::ByteStream;
use crate::pacer::Pacer;

/// HEAD of one key with checksum mode on (so a stored SHA-256 comes back); `None` when
/// the key is missing. The S3 source and the R2 target both ask this way.
pub async fn head_object(
    client: &aws_sdk_s3::Client,
    pacer: &Pacer,
    bucket: &str,
    key: &str,
    what: &str,
) -> Result<Option<HeadObjectOutput>, StoreError> {
    send(pacer, what, || async {
        let sent = client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match sent {
            Err(e) if is_not_found(&e) => Ok(None),
            other => other.map(Some),
        }
    })
    .await
}

/// HEAD of one part of a multipart object (`partNumber`): the part's size, and the number
/// of parts where the store states it. Not conditioned on the ETag (moto compares a
/// part's `If-Match` with the part's own ETag): the GET that follows is, so a layout
/// read from another version never reaches a check.
pub async fn head_part(
    client: &aws_sdk_s3::Client,
    pacer: &Pacer,
    (bucket, key): (&str, &str),
    part: i32,
    what: &str,
) -> Result<(u64, Option<i32>), StoreError> {
    let out = send(pacer, what, || {
        client
            .head_object()
            .bucket(bucket)
            .key(key)
            .part_number(part)
            .send()
    })
    .await?;
    let size = out.content_length().unwrap_or(0).max(0) as u64;
    Ok((size, out.parts_count()))
}

/// Who reads with [`get_object`], which decides what is asked for. Both ask for the
/// stored bytes with `Accept-Encoding: gzip`: R2 (and any store behind Cloudflare) serves
/// an object stored with `Content-Encoding: gzip` decompressed to a client that does not
/// accept gzip (rclone#8137; rclone sends the header for that reason), and a copy, and
/// verify, must carry and hash the bytes as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The S3 source: checksum mode on, so the stored checksums come back to check.
    Source,
    /// The R2 target, reading back what it holds; it re-hashes what it reads itself.
    Target,
}

/// GET of one key, or a byte range of it; with `if_match` (the ETag listed), only of that
/// version: a key written since answers 412, which [`classify`] calls a changed source.
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    pacer: &Pacer,
    (bucket, key): (&str, &str),
    range: Option<&crate::object::ByteRange>,
    (reader, if_match): (Reader, Option<&str>),
    what: &str,
) -> Result<GetObjectOutput, StoreError> {
    let if_match = if_match.map(|etag| format!("\"{}\"", etag.trim_matches('"')));
    let range = range.map(|r| format!("bytes={}-{}", r.start, r.end.saturating_sub(1)));
    let mode = (reader == Reader::Source).then_some(ChecksumMode::Enabled);
    send(pacer, what, || {
        client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_checksum_mode(mode.clone())
            .set_range(range.clone())
            .set_if_match(if_match.clone())
            .customize()
            .mutate_request(|req| {
                req.headers_mut().insert("accept-encoding", "gzip");
            })
            .send()
    })
    .await
}

/// True for a 404 on HEAD/GET of a key (not a missing bucket).
pub fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = err.raw_response().map(|r| r.status().as_u16());
    status == Some(404) && err.code() != Some("NoSuchBucket")
}

/// Strips the quotes S3 puts around ETags.
pub fn unquote(etag: Option<&str>) -> Option<String> {
    etag.map(|e| e.trim_matches('"').to_string())
}

/// Reads an SDK body as our chunk stream; no chunk for `io_timeout` fails it retryably.
pub fn body_stream(body: SdkBody, what: String, io_timeout: std::time::Duration) -> ByteStream {
    let named = what.clone();
    let stream = futures::stream::unfold(Some(body), move |state| {
        let what = named.clone();
        async move {
            let mut body = state?;
            match body.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                Some(Err(e)) => Some((Err(mid_body(&what, &e)), None)),
                None => None,
            }
        }
    });
    crate::stall::guard_stream(stream, what, io_timeout)
}

/// A body that failed while streaming: cut or stalled (worth reading again), or refused
/// by the SDK's own check of a whole-object checksum the source stated (checksum mode):
/// the bytes did not match the source's digest, said as our own check says it.
fn mid_body(what: &str, e: &(dyn std::error::Error + 'static)) -> StoreError {
    let cause = root_cause(e);
    if cause.to_ascii_lowercase().contains("checksum mismatch") {
        return StoreError::Digest(format!(
            "{what}: source bytes did not match the source's digest (its stated checksum: {cause}); the object was not uploaded — re-run to retry, and check the source if it repeats"
        ));
    }
    StoreError::Transient(format!("{what}: read failed mid-body: {cause}"))
}
