//! The rules and helpers every operation shares: limits, metadata, checksums sent,
//! Content-MD5, conditions, the one-write-per-second rate. Each names its source.

use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use crate::checksums::{self, Algorithm};
use crate::store::{nfc, Meta, Object, Store};

/// The five `x-amz-checksum-*` values a request (or a part listed in Complete) carries.
macro_rules! sent {
    ($i:expr) => {
        $crate::rules::sent_checksums([
            ($crate::checksums::Algorithm::Crc32, &$i.checksum_crc32),
            ($crate::checksums::Algorithm::Crc32c, &$i.checksum_crc32c),
            ($crate::checksums::Algorithm::Sha1, &$i.checksum_sha1),
            ($crate::checksums::Algorithm::Sha256, &$i.checksum_sha256),
            (
                $crate::checksums::Algorithm::Crc64nvme,
                &$i.checksum_crc64nvme,
            ),
        ])
    };
}
pub(crate) use sent;

/// A response with the five checksum fields of `c` (a `Checksum`) filled in.
macro_rules! stating {
    ($out:expr, $c:expr) => {{
        let c: s3s::dto::Checksum = $c;
        let mut out = $out;
        out.checksum_crc32 = c.checksum_crc32;
        out.checksum_crc32c = c.checksum_crc32c;
        out.checksum_sha1 = c.checksum_sha1;
        out.checksum_sha256 = c.checksum_sha256;
        out.checksum_crc64nvme = c.checksum_crc64nvme;
        out
    }};
}
pub(crate) use stating;

/// What every write (PutObject, CreateMultipartUpload) is checked for before its body:
/// headers R2 does not implement, the key, the metadata, the storage class. The key as
/// stored (NFC) and the class.
macro_rules! checked_write {
    ($i:expr) => {
        $crate::rules::check_write(
            $i.tagging.is_some(),
            // `x-amz-acl: private` (what every R2 bucket is) is taken; another canned
            // ACL is not (public report: humanmade/S3-Uploads#576, where R2 refused
            // the plugin's default ACL and accepted `private`; rclone sends `private`).
            $i.acl.as_ref().is_some_and(|a| a.as_str() != "private")
                || $i.grant_full_control.is_some()
                || $i.grant_read.is_some()
                || $i.grant_read_acp.is_some()
                || $i.grant_write_acp.is_some(),
            &$i.key,
            $i.metadata.as_ref(),
            $i.storage_class.as_ref().map(|c| c.as_str()),
        )
    };
}
pub(crate) use checked_write;

/// What R2 stores of a write's headers (PutObject, CreateMultipartUpload): see `meta_of`.
macro_rules! stored_meta {
    ($i:expr, $class:expr) => {
        $crate::rules::meta_of(
            $i.content_type.map(|c| c.to_string()),
            $i.cache_control,
            $i.content_disposition,
            $i.content_encoding,
            $i.content_language,
            $i.expires,
            $i.metadata,
            $class,
        )
    };
}
pub(crate) use stored_meta;

/// R2 `api/s3/api.mdx`: tagging, ACLs and grants not implemented (501); then the key,
/// metadata and storage-class rules below.
pub(crate) fn check_write(
    tagging: bool,
    acl_or_grants: bool,
    key: &str,
    metadata: Option<&Metadata>,
    class: Option<&str>,
) -> S3Result<(String, String)> {
    if tagging {
        return Err(not_implemented("x-amz-tagging"));
    }
    if acl_or_grants {
        return Err(not_implemented("ACL and grant headers"));
    }
    let key = check_key(key)?;
    check_metadata(metadata)?;
    Ok((key, storage_class(class)?))
}

/// R2 `platform/limits.mdx`: object keys up to 1,024 bytes.
pub(crate) const MAX_KEY: usize = 1024;
/// R2 `platform/limits.mdx`: custom metadata up to 8,192 bytes (names without
/// `x-amz-meta-`, plus values; miniflare counts it the same way).
pub(crate) const MAX_METADATA: usize = 8192;
/// R2 `objects/multipart-objects.mdx`, `platform/limits.mdx`: parts of 5 MiB to 5 GiB
/// (the last may be smaller), at most 10,000.
pub(crate) const MIN_PART: usize = 5 * 1024 * 1024;
pub(crate) const MAX_PART: usize = 5 * 1024 * 1024 * 1024;
pub(crate) const MAX_PARTS: i32 = 10_000;

pub(crate) fn custom(code: &str, status: u16, msg: impl Into<String>) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.to_string().into()), msg.into());
    e.set_status_code(http::StatusCode::from_u16(status).expect("a status"));
    e
}

pub(crate) async fn collect(body: Option<StreamingBlob>) -> S3Result<Bytes> {
    let Some(body) = body else {
        return Ok(Bytes::new());
    };
    let chunks: Vec<Bytes> = body
        .try_collect()
        .await
        .map_err(|e| s3_error!(IncompleteBody, "the body could not be read: {e}"))?;
    Ok(Bytes::from(chunks.concat()))
}

/// R2 `platform/limits.mdx`, `api/error-codes.mdx` (10020: invalid object name).
pub(crate) fn check_key(key: &str) -> S3Result<String> {
    if key.len() > MAX_KEY {
        return Err(s3_error!(
            KeyTooLongError,
            "Your key is too long (R2 allows 1,024 bytes)"
        ));
    }
    Ok(nfc(key))
}

/// R2 `api/s3/api.mdx`: object tagging, ACLs and grants are not implemented.
pub(crate) fn not_implemented(what: &str) -> S3Error {
    s3_error!(NotImplemented, "{what} is not implemented by R2")
}

/// R2 `api/s3/api.mdx`, `buckets/storage-classes.mdx`: STANDARD and STANDARD_IA only.
pub(crate) fn storage_class(class: Option<&str>) -> S3Result<String> {
    match class.unwrap_or("STANDARD") {
        c @ ("STANDARD" | "STANDARD_IA") => Ok(c.to_string()),
        other => Err(s3_error!(
            InvalidStorageClass,
            "{other} is not a storage class of R2"
        )),
    }
}

/// R2 `platform/limits.mdx`: custom metadata at most 8,192 bytes (400, error 10012).
pub(crate) fn check_metadata(m: Option<&Metadata>) -> S3Result<()> {
    let bytes: usize = m.map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len()).sum());
    if bytes > MAX_METADATA {
        return Err(custom(
            "MetadataTooLarge",
            400,
            format!(
                "Your metadata headers exceed the maximum allowed metadata size ({bytes} > 8192)"
            ),
        ));
    }
    Ok(())
}

/// The `x-amz-checksum-*` values a request carries.
pub(crate) fn sent_checksums(
    values: [(Algorithm, &Option<String>); 5],
) -> Vec<(Algorithm, String)> {
    values
        .into_iter()
        .filter_map(|(a, v)| v.as_ref().map(|v| (a, v.clone())))
        .collect()
}

/// Content-MD5 is checked when sent: 400 BadDigest (R2 10037), a malformed one
/// InvalidDigest (10014) — `api/error-codes.mdx`.
pub(crate) fn check_md5(content_md5: Option<&str>, body: &[u8]) -> S3Result<()> {
    let Some(given) = content_md5 else {
        return Ok(());
    };
    let Some(raw) = checksums::from_b64(given).filter(|r| r.len() == 16) else {
        return Err(s3_error!(
            InvalidDigest,
            "The Content-MD5 you specified is not valid"
        ));
    };
    if hex::encode(raw) != checksums::md5_hex(body) {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received"
        ));
    }
    Ok(())
}

/// R2 `platform/limits.mdx`: one write per second to a key, else 429 (10058).
pub(crate) fn rate_limited(
    store: &Store,
    state: &mut crate::store::State,
    bucket: &str,
    key: &str,
) -> S3Result<()> {
    let now = Instant::now();
    let slot = (bucket.to_string(), key.to_string());
    if store.rules.one_write_per_second {
        if let Some(then) = state.last_write.get(&slot) {
            if now.duration_since(*then) < std::time::Duration::from_secs(1) {
                return Err(custom(
                    "TooManyRequests",
                    429,
                    "Reduce your concurrent request rate for the same object.",
                ));
            }
        }
    }
    state.last_write.insert(slot, now);
    Ok(())
}

/// R2 `api/s3/extensions.mdx`, conditional operations: If-None-Match / If-Match on a
/// write → 412 PreconditionFailed.
pub(crate) fn check_conditions(
    existing: Option<&Object>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let failed = || {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    };
    if let Some(cond) = if_none_match {
        match (cond, existing) {
            (ETagCondition::Any, Some(_)) => return Err(failed()),
            (ETagCondition::ETag(t), Some(o)) if t.value() == o.etag => return Err(failed()),
            _ => {}
        }
    }
    if let Some(cond) = if_match {
        match (cond, existing) {
            (_, None) => return Err(failed()),
            (ETagCondition::ETag(t), Some(o)) if t.value() != o.etag => return Err(failed()),
            _ => {}
        }
    }
    Ok(())
}

/// R2's conditions on a copy's destination (conditional-operations page: CopyObject
/// takes `cf-copy-destination-if-match` / `-if-none-match`, not If-Match).
pub(crate) fn destination_condition(
    headers: &http::HeaderMap,
    name: &str,
) -> S3Result<Option<ETagCondition>> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    ETagCondition::parse_http_header(value.as_bytes())
        .map(Some)
        .map_err(|_| s3_error!(InvalidArgument, "{name} is not an ETag or *"))
}

#[allow(clippy::too_many_arguments)] // one per header R2 stores
pub(crate) fn meta_of(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
    storage_class: String,
) -> Meta {
    Meta {
        content_type,
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires,
        custom: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect(),
        storage_class,
    }
}

pub(crate) fn bucket_of<'a>(
    state: &'a mut crate::store::State,
    bucket: &str,
) -> S3Result<&'a mut std::collections::BTreeMap<String, Object>> {
    state
        .buckets
        .get_mut(bucket)
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
}

pub(crate) fn checksum_fields(o: &Object, enabled: bool) -> (Checksum, Option<ChecksumType>) {
    let Some((alg, kind, value)) = o.checksum.clone().filter(|_| enabled) else {
        return (Checksum::default(), None);
    };
    (
        checksum_of(alg, value),
        Some(ChecksumType::from(kind.name().to_string())),
    )
}

/// The response fields stating one checksum.
pub(crate) fn checksum_of(alg: Algorithm, value: String) -> Checksum {
    let mut c = Checksum::default();
    let v = Some(value);
    match alg {
        Algorithm::Crc32 => c.checksum_crc32 = v,
        Algorithm::Crc32c => c.checksum_crc32c = v,
        Algorithm::Sha1 => c.checksum_sha1 = v,
        Algorithm::Sha256 => c.checksum_sha256 = v,
        Algorithm::Crc64nvme => c.checksum_crc64nvme = v,
    }
    c
}

pub(crate) fn modified(o: &Object) -> Timestamp {
    Timestamp::from(o.modified)
}

pub(crate) fn base64_raw(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn base64_of(text: &str) -> String {
    base64_raw(text.as_bytes())
}

/// `encoding-type=url`: keys percent-encoded as S3 does (unreserved characters and `/`
/// kept).
pub(crate) fn urlencode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Whether a GET says `Accept-Encoding: gzip` (or `*`), with a non-zero q-value.
pub(crate) fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut fields = coding.split(';').map(str::trim);
            let name = fields.next().unwrap_or("").to_ascii_lowercase();
            let refused = fields.any(|f| f.replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !refused
        })
}

/// The bytes R2 serves for a whole-object GET of an object stored with
/// `Content-Encoding: gzip` to a client that does not accept gzip: decompressed. Not in
/// R2's S3 pages; shown by rclone#8137 (R2 gave rclone 1.68.1, which sent `Accept-Encoding:
/// identity`, the decompressed bytes, "sizes differ") and rclone's answer (send
/// `Accept-Encoding: gzip` "to download compressed files as-is", `backend/s3/s3.go`), and
/// by cloudflare-docs PR #8491 ("Transparent decompression"). A range is served as stored
/// (not known); a body that is not gzip is served as stored.
pub(crate) fn gunzipped(o: &Object, accepts_gzip: bool, ranged: bool) -> Option<Bytes> {
    let gzip = o
        .meta
        .content_encoding
        .as_deref()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if !gzip || accepts_gzip || ranged {
        return None;
    }
    let mut plain = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(o.body.as_ref());
    std::io::Read::read_to_end(&mut decoder, &mut plain).ok()?;
    Some(Bytes::from(plain))
}
