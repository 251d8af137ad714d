//! The S3 operations r2migrate uses, answered as R2 documents them. Each rule names its
//! source; `README.md` beside `src/` lists them all.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::checksums::{self, Algorithm, Kind};
use crate::store::{nfc, Meta, Object, Part, Store, Upload};

pub struct Strict {
    pub store: Arc<Store>,
}

/// R2 `platform/limits.mdx`: object keys up to 1,024 bytes.
const MAX_KEY: usize = 1024;
/// R2 `platform/limits.mdx`: custom metadata up to 8,192 bytes (names without
/// `x-amz-meta-`, plus values; miniflare counts it the same way).
const MAX_METADATA: usize = 8192;
/// R2 `objects/multipart-objects.mdx`, `platform/limits.mdx`: parts of 5 MiB to 5 GiB
/// (the last may be smaller), at most 10,000.
const MIN_PART: usize = 5 * 1024 * 1024;
const MAX_PART: usize = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: i32 = 10_000;

fn custom(code: &str, status: u16, msg: impl Into<String>) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.to_string().into()), msg.into());
    e.set_status_code(http::StatusCode::from_u16(status).expect("a status"));
    e
}

async fn collect(body: Option<StreamingBlob>) -> S3Result<Bytes> {
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
fn check_key(key: &str) -> S3Result<String> {
    if key.len() > MAX_KEY {
        return Err(s3_error!(
            KeyTooLongError,
            "Your key is too long (R2 allows 1,024 bytes)"
        ));
    }
    Ok(nfc(key))
}

/// R2 `api/s3/api.mdx`: object tagging, ACLs and grants are not implemented.
fn not_implemented(what: &str) -> S3Error {
    s3_error!(NotImplemented, "{what} is not implemented by R2")
}

/// R2 `api/s3/api.mdx`, `buckets/storage-classes.mdx`: STANDARD and STANDARD_IA only.
fn storage_class(class: Option<&str>) -> S3Result<String> {
    match class.unwrap_or("STANDARD") {
        c @ ("STANDARD" | "STANDARD_IA") => Ok(c.to_string()),
        other => Err(s3_error!(
            InvalidStorageClass,
            "{other} is not a storage class of R2"
        )),
    }
}

/// R2 `platform/limits.mdx`: custom metadata at most 8,192 bytes (400, error 10012).
fn check_metadata(m: Option<&Metadata>) -> S3Result<()> {
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
fn sent_checksums(values: [(Algorithm, &Option<String>); 5]) -> Vec<(Algorithm, String)> {
    values
        .into_iter()
        .filter_map(|(a, v)| v.as_ref().map(|v| (a, v.clone())))
        .collect()
}

/// Content-MD5 is checked when sent: 400 BadDigest (R2 10037), a malformed one
/// InvalidDigest (10014) — `api/error-codes.mdx`.
fn check_md5(content_md5: Option<&str>, body: &[u8]) -> S3Result<()> {
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
fn rate_limited(
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
fn check_conditions(
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

#[allow(clippy::too_many_arguments)] // one per header R2 stores
fn meta_of(
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

fn bucket_of<'a>(
    state: &'a mut crate::store::State,
    bucket: &str,
) -> S3Result<&'a mut std::collections::BTreeMap<String, Object>> {
    state
        .buckets
        .get_mut(bucket)
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
}

fn checksum_fields(o: &Object, enabled: bool) -> (Checksum, Option<ChecksumType>) {
    let mut c = Checksum::default();
    let Some((alg, kind, value)) = o.checksum.clone().filter(|_| enabled) else {
        return (c, None);
    };
    let v = Some(value);
    match alg {
        Algorithm::Crc32 => c.checksum_crc32 = v,
        Algorithm::Crc32c => c.checksum_crc32c = v,
        Algorithm::Sha1 => c.checksum_sha1 = v,
        Algorithm::Sha256 => c.checksum_sha256 = v,
        Algorithm::Crc64nvme => c.checksum_crc64nvme = v,
    }
    (c, Some(ChecksumType::from(kind.name().to_string())))
}

fn modified(o: &Object) -> Timestamp {
    Timestamp::from(o.modified)
}

#[async_trait::async_trait]
impl S3 for Strict {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let i = req.input;
        if i.tagging.is_some() {
            return Err(not_implemented("x-amz-tagging"));
        }
        if i.acl.is_some()
            || i.grant_full_control.is_some()
            || i.grant_read.is_some()
            || i.grant_read_acp.is_some()
            || i.grant_write_acp.is_some()
        {
            return Err(not_implemented("ACL and grant headers"));
        }
        let key = check_key(&i.key)?;
        check_metadata(i.metadata.as_ref())?;
        let class = storage_class(i.storage_class.as_ref().map(|c| c.as_str()))?;
        let body = collect(i.body).await?;
        // Checked before anything is stored: a refused PUT leaves nothing (R2 stores
        // nothing; s3s-fs keeps the body, which is why this server exists).
        check_md5(i.content_md5.as_deref(), &body)?;
        let sent = sent_checksums([
            (Algorithm::Crc32, &i.checksum_crc32),
            (Algorithm::Crc32c, &i.checksum_crc32c),
            (Algorithm::Sha1, &i.checksum_sha1),
            (Algorithm::Sha256, &i.checksum_sha256),
            (Algorithm::Crc64nvme, &i.checksum_crc64nvme),
        ]);
        if sent.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header"
            ));
        }
        for (alg, value) in &sent {
            if alg.b64(&body) != *value {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    alg.name()
                ));
            }
        }
        let checksum = sent
            .into_iter()
            .next()
            .map(|(a, v)| (a, Kind::FullObject, v));
        let etag = checksums::md5_hex(&body);
        let meta = meta_of(
            i.content_type.map(|c| c.to_string()),
            i.cache_control,
            i.content_disposition,
            i.content_encoding,
            i.content_language,
            i.expires,
            i.metadata,
            class,
        );
        let mut state = self.store.state.lock().expect("not poisoned");
        let objects = bucket_of(&mut state, &i.bucket)?;
        check_conditions(
            objects.get(&key),
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )?;
        rate_limited(&self.store, &mut state, &i.bucket, &key)?;
        let object = Object {
            key: i.key.clone(),
            body,
            etag: etag.clone(),
            meta,
            checksum: checksum.clone(),
            modified: std::time::SystemTime::now(),
        };
        bucket_of(&mut state, &i.bucket)?.insert(key, object.clone());
        let (c, kind) = checksum_fields(&object, true);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_type: kind,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        let key = nfc(&i.key);
        let state = self.store.state.lock().expect("not poisoned");
        let objects = state
            .buckets
            .get(&i.bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        let o = objects.get(&key).ok_or_else(|| s3_error!(NoSuchKey))?;
        let enabled = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let (c, kind) = checksum_fields(o, enabled);
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(o.body.len() as i64),
            e_tag: Some(ETag::Strong(o.etag.clone())),
            last_modified: Some(modified(o)),
            content_type: o.meta.content_type.as_ref().and_then(|t| t.parse().ok()),
            cache_control: o.meta.cache_control.clone(),
            content_disposition: o.meta.content_disposition.clone(),
            content_encoding: o.meta.content_encoding.clone(),
            content_language: o.meta.content_language.clone(),
            expires: o.meta.expires.clone(),
            metadata: Some(o.meta.custom.clone()),
            storage_class: Some(StorageClass::from(o.meta.storage_class.clone())),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_type: kind,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        let key = nfc(&i.key);
        let o = {
            let state = self.store.state.lock().expect("not poisoned");
            let objects = state
                .buckets
                .get(&i.bucket)
                .ok_or_else(|| s3_error!(NoSuchBucket))?;
            objects
                .get(&key)
                .cloned()
                .ok_or_else(|| s3_error!(NoSuchKey))?
        };
        if let Some(ETagCondition::ETag(t)) = &i.if_match {
            if t.value() != o.etag {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        let len = o.body.len() as u64;
        let (body, range) = match i.range {
            Some(r) => {
                let r = r.check(len).map_err(|_| s3_error!(InvalidRange))?;
                (
                    o.body.slice(r.start as usize..r.end as usize),
                    Some(format!(
                        "bytes {}-{}/{len}",
                        r.start,
                        r.end.saturating_sub(1)
                    )),
                )
            }
            None => (o.body.clone(), None),
        };
        let enabled = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && range.is_none();
        let (c, kind) = checksum_fields(&o, enabled);
        let size = body.len() as i64;
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(size),
            content_range: range,
            e_tag: Some(ETag::Strong(o.etag.clone())),
            last_modified: Some(modified(&o)),
            content_type: o.meta.content_type.as_ref().and_then(|t| t.parse().ok()),
            cache_control: o.meta.cache_control.clone(),
            content_disposition: o.meta.content_disposition.clone(),
            content_encoding: o.meta.content_encoding.clone(),
            content_language: o.meta.content_language.clone(),
            expires: o.meta.expires.clone(),
            metadata: Some(o.meta.custom.clone()),
            storage_class: Some(StorageClass::from(o.meta.storage_class.clone())),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_type: kind,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = req.input;
        let mut state = self.store.state.lock().expect("not poisoned");
        bucket_of(&mut state, &i.bucket)?.remove(&nfc(&i.key));
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        let CopySource::Bucket { bucket, key, .. } = &i.copy_source else {
            return Err(s3_error!(
                InvalidArgument,
                "copy from an access point is not supported"
            ));
        };
        let to = check_key(&i.key)?;
        let mut state = self.store.state.lock().expect("not poisoned");
        let from = state
            .buckets
            .get(bucket.as_ref())
            .ok_or_else(|| s3_error!(NoSuchBucket))?
            .get(&nfc(key))
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        rate_limited(&self.store, &mut state, &i.bucket, &to)?;
        let mut copy = from.clone();
        copy.key = i.key.clone();
        copy.modified = std::time::SystemTime::now();
        let etag = copy.etag.clone();
        bucket_of(&mut state, &i.bucket)?.insert(to, copy);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        // The Workers binding caps a page at 1,000; the S3 API's cap is not documented.
        let max = i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        // The token names the last entry returned: a key, or a whole folder.
        let token = i
            .continuation_token
            .as_deref()
            .and_then(checksums::from_b64)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let (after, folder_done) = match token.as_deref().and_then(|t| t.split_once(':')) {
            Some(("f", p)) => (p.to_string(), Some(p.to_string())),
            Some((_, k)) => (k.to_string(), None),
            None => (
                i.start_after.clone().map(|s| nfc(&s)).unwrap_or_default(),
                None,
            ),
        };
        let url = i
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let encode = |k: &str| if url { urlencode(k) } else { k.to_string() };
        let state = self.store.state.lock().expect("not poisoned");
        let objects = state
            .buckets
            .get(&i.bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        let nfc_prefix = nfc(&prefix);
        let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
        let mut contents = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        let mut truncated = false;
        let start = if after > nfc_prefix {
            after.clone()
        } else {
            nfc_prefix.clone()
        };
        for (k, o) in objects.range(start..) {
            if (!after.is_empty() && *k <= after)
                || folder_done
                    .as_ref()
                    .is_some_and(|f| k.starts_with(f.as_str()))
            {
                continue;
            }
            if !k.starts_with(&nfc_prefix) {
                break;
            }
            if prefixes.last().is_some_and(|p| k.starts_with(p.as_str())) {
                continue;
            }
            if contents.len() + prefixes.len() >= max {
                truncated = true;
                break;
            }
            let folder = delimiter.as_deref().and_then(|d| {
                k[nfc_prefix.len()..]
                    .find(d)
                    .map(|pos| k[..nfc_prefix.len() + pos + d.len()].to_string())
            });
            if let Some(p) = folder {
                last = Some(format!("f:{p}"));
                prefixes.push(p);
                continue;
            }
            contents.push(s3s::dto::Object {
                key: Some(encode(&o.key)),
                size: Some(o.body.len() as i64),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(modified(o)),
                storage_class: Some(ObjectStorageClass::from(o.meta.storage_class.clone())),
                ..Default::default()
            });
            last = Some(format!("k:{k}"));
        }
        let count = (contents.len() + prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: i.prefix.map(|p| encode(&p)),
            delimiter: i.delimiter.clone(),
            max_keys: Some(max as i32),
            key_count: Some(count),
            is_truncated: Some(truncated),
            continuation_token: i.continuation_token.clone(),
            next_continuation_token: if truncated {
                last.map(|l| base64_of(&l))
            } else {
                None
            },
            encoding_type: i.encoding_type.clone(),
            contents: Some(contents),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(encode(&p)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        if i.tagging.is_some() {
            return Err(not_implemented("x-amz-tagging"));
        }
        if i.acl.is_some()
            || i.grant_full_control.is_some()
            || i.grant_read.is_some()
            || i.grant_read_acp.is_some()
            || i.grant_write_acp.is_some()
        {
            return Err(not_implemented("ACL and grant headers"));
        }
        let key = check_key(&i.key)?;
        check_metadata(i.metadata.as_ref())?;
        let class = storage_class(i.storage_class.as_ref().map(|c| c.as_str()))?;
        let algorithm = match &i.checksum_algorithm {
            Some(a) => Some(Algorithm::parse(a.as_str()).ok_or_else(|| {
                s3_error!(InvalidRequest, "Unknown checksum algorithm {}", a.as_str())
            })?),
            None => None,
        };
        let kind = match &i.checksum_type {
            Some(t) => Some(Kind::parse(t.as_str()).ok_or_else(|| {
                s3_error!(InvalidRequest, "Unknown checksum type {}", t.as_str())
            })?),
            None => None,
        };
        // S3's model: a type needs an algorithm; the algorithm's default type is the one
        // R2's table allows. R2's table (api.mdx "Checksum Types"): CRC64NVME only
        // FULL_OBJECT, the others only COMPOSITE.
        let kind = match (algorithm, kind) {
            (None, Some(_)) => return Err(s3_error!(InvalidRequest, "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")),
            (Some(a), Some(k)) if a.r2_kind() != k => {
                return Err(s3_error!(InvalidRequest, "The {} checksum type cannot be used with the {} checksum algorithm.", k.name(), a.name()))
            }
            (Some(a), None) => Some(a.r2_kind()),
            (_, k) => k,
        };
        let meta = meta_of(
            i.content_type.map(|c| c.to_string()),
            i.cache_control,
            i.content_disposition,
            i.content_encoding,
            i.content_language,
            i.expires,
            i.metadata,
            class,
        );
        let mut state = self.store.state.lock().expect("not poisoned");
        bucket_of(&mut state, &i.bucket)?;
        state.next_upload += 1;
        let id = format!(
            "r2strict-{:016x}",
            state.next_upload.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        state.uploads.insert(
            id.clone(),
            Upload {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                algorithm,
                kind,
                meta,
                parts: Default::default(),
                initiated: std::time::SystemTime::now(),
            },
        );
        let _ = key;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm: algorithm.map(|a| ChecksumAlgorithm::from(a.name().to_string())),
            checksum_type: kind.map(|k| ChecksumType::from(k.name().to_string())),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        if !(1..=MAX_PARTS).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let algorithm = {
            let state = self.store.state.lock().expect("not poisoned");
            let up = state
                .uploads
                .get(&i.upload_id)
                .ok_or_else(|| s3_error!(NoSuchUpload))?;
            up.algorithm
        };
        let body = collect(i.body).await?;
        if body.len() > MAX_PART {
            return Err(s3_error!(EntityTooLarge, "A part may be at most 5 GiB"));
        }
        check_md5(i.content_md5.as_deref(), &body)?;
        let sent = sent_checksums([
            (Algorithm::Crc32, &i.checksum_crc32),
            (Algorithm::Crc32c, &i.checksum_crc32c),
            (Algorithm::Sha1, &i.checksum_sha1),
            (Algorithm::Sha256, &i.checksum_sha256),
            (Algorithm::Crc64nvme, &i.checksum_crc64nvme),
        ]);
        // S3's model: every part of an upload created with an algorithm carries that
        // algorithm's checksum, and no other.
        if let Some((other, _)) = sent.iter().find(|(a, _)| Some(*a) != algorithm) {
            return Err(s3_error!(InvalidRequest, "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}", algorithm.map_or("none", |a| a.name()), other.name()));
        }
        let digest = match algorithm {
            Some(a) => {
                let Some((_, value)) = sent.first() else {
                    return Err(s3_error!(InvalidRequest, "The upload was created with a {} checksum: each part must carry x-amz-checksum-{}", a.name(), a.name().to_lowercase()));
                };
                if a.b64(&body) != *value {
                    return Err(s3_error!(
                        BadDigest,
                        "The {} you specified did not match the calculated checksum.",
                        a.name()
                    ));
                }
                Some(a.digest(&body))
            }
            None => None,
        };
        let md5: [u8; 16] = hex::decode(checksums::md5_hex(&body))
            .expect("hex")
            .try_into()
            .expect("16 bytes");
        let etag = hex::encode(md5);
        let mut state = self.store.state.lock().expect("not poisoned");
        let up = state
            .uploads
            .get_mut(&i.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        // R2 api.mdx: the same part number uploaded again replaces the part.
        up.parts.insert(
            i.part_number,
            Part {
                body,
                md5,
                digest: digest.clone(),
            },
        );
        let mut out = UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        };
        if let (Some(a), Some(d)) = (algorithm, digest) {
            let v = Some(base64_raw(&d));
            match a {
                Algorithm::Crc32 => out.checksum_crc32 = v,
                Algorithm::Crc32c => out.checksum_crc32c = v,
                Algorithm::Sha1 => out.checksum_sha1 = v,
                Algorithm::Sha256 => out.checksum_sha256 = v,
                Algorithm::Crc64nvme => out.checksum_crc64nvme = v,
            }
        }
        Ok(S3Response::new(out))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let mut state = self.store.state.lock().expect("not poisoned");
        let up = state
            .uploads
            .get(&i.upload_id)
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        // S3's model (AWS "Checking object integrity"): Complete may name only the type
        // the upload was created with (else BadDigest), and a full-object value only of
        // its algorithm (else InvalidRequest).
        if let Some(t) = &i.checksum_type {
            let named = Kind::parse(t.as_str());
            if named != up.kind {
                return Err(s3_error!(
                    BadDigest,
                    "The upload was created with checksum type {}, not {}",
                    up.kind.map_or("none", |k| k.name()),
                    t.as_str()
                ));
            }
        }
        let whole = sent_checksums([
            (Algorithm::Crc32, &i.checksum_crc32),
            (Algorithm::Crc32c, &i.checksum_crc32c),
            (Algorithm::Sha1, &i.checksum_sha1),
            (Algorithm::Sha256, &i.checksum_sha256),
            (Algorithm::Crc64nvme, &i.checksum_crc64nvme),
        ]);
        if let Some((other, _)) = whole.iter().find(|(a, _)| Some(*a) != up.algorithm) {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created with checksum algorithm {}, not {}",
                up.algorithm.map_or("none", |a| a.name()),
                other.name()
            ));
        }
        let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if listed.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let mut parts = Vec::new();
        let mut previous = 0;
        for p in &listed {
            let n = p.part_number.unwrap_or(0);
            if n <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order"
                ));
            }
            previous = n;
            let stored = up
                .parts
                .get(&n)
                .ok_or_else(|| s3_error!(InvalidPart, "Part {n} was not uploaded"))?;
            if let Some(etag) = &p.e_tag {
                if etag.value() != hex::encode(stored.md5) {
                    return Err(s3_error!(InvalidPart, "Part {n}'s ETag does not match"));
                }
            }
            let part_value = [
                (Algorithm::Crc32, &p.checksum_crc32),
                (Algorithm::Crc32c, &p.checksum_crc32c),
                (Algorithm::Sha1, &p.checksum_sha1),
                (Algorithm::Sha256, &p.checksum_sha256),
                (Algorithm::Crc64nvme, &p.checksum_crc64nvme),
            ];
            for (a, v) in part_value {
                if let Some(v) = v {
                    let ok = Some(a) == up.algorithm
                        && stored.digest.as_ref().map(|d| base64_raw(d)) == Some(v.clone());
                    if !ok {
                        return Err(s3_error!(
                            InvalidPart,
                            "Part {n}'s {} checksum does not match the part uploaded",
                            a.name()
                        ));
                    }
                }
            }
            parts.push(stored.clone());
        }
        // R2 objects/multipart-objects.mdx, api/error-codes.mdx (10048, checked at
        // Complete since 2022-10-28): every part but the last the same size, the last no
        // larger; parts at least 5 MiB but the last.
        let sizes: Vec<usize> = parts.iter().map(|p| p.body.len()).collect();
        if let Some((_, init)) = sizes.split_last() {
            if init.iter().any(|s| *s < MIN_PART) {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
            let first = sizes[0];
            if init.iter().any(|s| *s != first) || sizes.last().is_some_and(|l| *l > first) {
                return Err(s3_error!(
                    InvalidPart,
                    "All non-trailing parts must have the same size."
                ));
            }
        }
        let body = Bytes::from(
            parts
                .iter()
                .map(|p| p.body.as_ref())
                .collect::<Vec<_>>()
                .concat(),
        );
        let checksum = match (up.algorithm, up.kind) {
            (Some(a), Some(Kind::FullObject)) => {
                let value = a.b64(&body);
                if let Some((_, sent)) = whole.first() {
                    if *sent != value {
                        return Err(s3_error!(BadDigest, "The {} you specified for the full object did not match the calculated checksum.", a.name()));
                    }
                }
                Some((a, Kind::FullObject, value))
            }
            (Some(a), _) => {
                let digests: Vec<Vec<u8>> = parts
                    .iter()
                    .map(|p| p.digest.clone().unwrap_or_default())
                    .collect();
                Some((a, Kind::Composite, checksums::composite(a, &digests)))
            }
            _ => None,
        };
        let key = nfc(&up.key);
        let objects = bucket_of(&mut state, &up.bucket)?;
        check_conditions(
            objects.get(&key),
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )?;
        rate_limited(&self.store, &mut state, &up.bucket, &key)?;
        let etag = checksums::multipart_etag(&parts.iter().map(|p| p.md5).collect::<Vec<_>>());
        let object = Object {
            key: up.key.clone(),
            body,
            etag: etag.clone(),
            meta: up.meta.clone(),
            checksum,
            modified: std::time::SystemTime::now(),
        };
        bucket_of(&mut state, &up.bucket)?.insert(key, object.clone());
        state.uploads.remove(&i.upload_id);
        let (c, kind) = checksum_fields(&object, true);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(up.bucket),
            key: Some(up.key),
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_type: kind,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        let mut state = self.store.state.lock().expect("not poisoned");
        // R2 api/error-codes.mdx 10024: an upload unknown (aborted, completed) → NoSuchUpload.
        state
            .uploads
            .remove(&i.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        let state = self.store.state.lock().expect("not poisoned");
        let prefix = i.prefix.clone().unwrap_or_default();
        let uploads = state
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == i.bucket && u.key.starts_with(&prefix))
            .map(|(id, u)| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(Timestamp::from(u.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            uploads: Some(uploads),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }
}

fn base64_raw(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_of(text: &str) -> String {
    base64_raw(text.as_bytes())
}

/// `encoding-type=url`: keys percent-encoded as S3 does (unreserved characters and `/`
/// kept).
fn urlencode(key: &str) -> String {
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
