//! Multipart uploads as R2 documents them: S3's one-scheme-per-upload checksum model,
//! R2's checksum table, equal parts, part limits; ListParts and ListMultipartUploads.

use bytes::Bytes;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::api::Strict;
use crate::checksums::{self, Algorithm, Kind};
use crate::rules::*;
use crate::store::{nfc, Object, Part, Upload};

pub async fn create_multipart_upload(
    s: &Strict,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = req.input;
    // The key is checked now; the upload keeps the spelling sent (see `Upload`).
    let (_key, class) = checked_write!(i)?;
    let algorithm = match &i.checksum_algorithm {
        Some(a) => Some(Algorithm::parse(a.as_str()).ok_or_else(|| {
            s3_error!(InvalidRequest, "Unknown checksum algorithm {}", a.as_str())
        })?),
        None => None,
    };
    let kind = match &i.checksum_type {
        Some(t) => Some(
            Kind::parse(t.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "Unknown checksum type {}", t.as_str()))?,
        ),
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
    let meta = stored_meta!(i, class);
    let mut state = s.store.state.lock().expect("not poisoned");
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
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        checksum_algorithm: algorithm.map(|a| ChecksumAlgorithm::from(a.name().to_string())),
        checksum_type: kind.map(|k| ChecksumType::from(k.name().to_string())),
        ..Default::default()
    }))
}

pub async fn upload_part(
    s: &Strict,
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
        let state = s.store.state.lock().expect("not poisoned");
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
    let sent = sent!(i);
    // S3's model: every part of an upload created with an algorithm carries that
    // algorithm's checksum, and no other.
    if let Some((other, _)) = sent.iter().find(|(a, _)| Some(*a) != algorithm) {
        return Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            algorithm.map_or("none", |a| a.name()),
            other.name()
        ));
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
    let mut state = s.store.state.lock().expect("not poisoned");
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
            uploaded: std::time::SystemTime::now(),
        },
    );
    let mut out = UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    };
    if let (Some(a), Some(d)) = (algorithm, digest) {
        out = stating!(out, checksum_of(a, base64_raw(&d)));
    }
    Ok(S3Response::new(out))
}

pub async fn complete_multipart_upload(
    s: &Strict,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    let mut state = s.store.state.lock().expect("not poisoned");
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
    let whole = sent!(i);
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
        for (a, v) in sent!(p) {
            let ok =
                Some(a) == up.algorithm && stored.digest.as_ref().map(|d| base64_raw(d)) == Some(v);
            if !ok {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {n}'s {} checksum does not match the part uploaded",
                    a.name()
                ));
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
    crate::store::race(&mut state, &up.bucket, &key);
    let objects = bucket_of(&mut state, &up.bucket)?;
    check_conditions(
        objects.get(&key),
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
    )?;
    rate_limited(&s.store, &mut state, &up.bucket, &key)?;
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
    Ok(S3Response::new(stating!(
        CompleteMultipartUploadOutput {
            bucket: Some(up.bucket),
            key: Some(up.key),
            e_tag: Some(ETag::Strong(etag)),
            checksum_type: kind,
            ..Default::default()
        },
        c
    )))
}

pub async fn abort_multipart_upload(
    s: &Strict,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    let mut state = s.store.state.lock().expect("not poisoned");
    // R2 api/error-codes.mdx 10024: an upload unknown (aborted, completed) → NoSuchUpload.
    state
        .uploads
        .remove(&i.upload_id)
        .ok_or_else(|| s3_error!(NoSuchUpload))?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_multipart_uploads(
    s: &Strict,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let state = s.store.state.lock().expect("not poisoned");
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

/// ListParts (R2 `api/s3/api.mdx`: implemented): the parts uploaded so far, in order,
/// each with its ETag, size and the upload's checksum; pages of at most 1,000 (S3's
/// default and cap), continued from `part-number-marker`.
pub async fn list_parts(
    s: &Strict,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let state = s.store.state.lock().expect("not poisoned");
    let up = state
        .uploads
        .get(&i.upload_id)
        .filter(|u| u.bucket == i.bucket && nfc(&u.key) == nfc(&i.key))
        .ok_or_else(|| s3_error!(NoSuchUpload))?;
    let max = i.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
    let after = i.part_number_marker.unwrap_or(0);
    let mut rest = up.parts.range(after + 1..);
    let parts: Vec<s3s::dto::Part> = rest
        .by_ref()
        .take(max)
        .map(|(n, p)| {
            let c = match (up.algorithm, &p.digest) {
                (Some(a), Some(d)) => checksum_of(a, base64_raw(d)),
                _ => Checksum::default(),
            };
            stating!(
                s3s::dto::Part {
                    part_number: Some(*n),
                    e_tag: Some(ETag::Strong(hex::encode(p.md5))),
                    size: Some(p.body.len() as i64),
                    last_modified: Some(Timestamp::from(p.uploaded)),
                    ..Default::default()
                },
                c
            )
        })
        .collect();
    let truncated = rest.next().is_some();
    let next = parts.last().and_then(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(up.key.clone()),
        upload_id: Some(i.upload_id),
        checksum_algorithm: up
            .algorithm
            .map(|a| ChecksumAlgorithm::from(a.name().to_string())),
        checksum_type: up.kind.map(|k| ChecksumType::from(k.name().to_string())),
        max_parts: Some(max as i32),
        part_number_marker: Some(after),
        next_part_number_marker: next,
        is_truncated: Some(truncated),
        parts: Some(parts),
        storage_class: Some(StorageClass::from(up.meta.storage_class.clone())),
        ..Default::default()
    }))
}
