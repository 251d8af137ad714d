//! The S3 operations r2migrate uses, answered as R2 documents them: objects here,
//! multipart uploads in `multipart.rs`, the shared rules in `rules.rs`. Each rule names
//! its source; `README.md` beside `src/` lists them all.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

use crate::checksums::{self, Kind};
use crate::multipart;
use crate::rules::*;
use crate::store::{nfc, Object, Store};

pub struct Strict {
    pub store: Arc<Store>,
}

#[async_trait::async_trait]
impl S3 for Strict {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let i = req.input;
        let (key, class) = checked_write!(i)?;
        let body = collect(i.body).await?;
        // Checked before anything is stored: a refused PUT leaves nothing (R2 stores
        // nothing; s3s-fs keeps the body, which is why this server exists).
        check_md5(i.content_md5.as_deref(), &body)?;
        let sent = sent!(i);
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
        let meta = stored_meta!(i, class);
        let mut state = self.store.state.lock().expect("not poisoned");
        crate::store::race(&mut state, &i.bucket, &key);
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
        Ok(S3Response::new(stating!(
            PutObjectOutput {
                e_tag: Some(ETag::Strong(etag)),
                checksum_type: kind,
                ..Default::default()
            },
            c
        )))
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
        Ok(S3Response::new(stating!(
            HeadObjectOutput {
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
                checksum_type: kind,
                ..Default::default()
            },
            c
        )))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let accepts_gzip = accepts_gzip(&req.headers);
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
        // An object stored with Content-Encoding: gzip is served decompressed to a
        // client that does not accept gzip, without the header (see `gunzipped`).
        let plain = gunzipped(&o, accepts_gzip, range.is_some());
        let content_encoding = o.meta.content_encoding.clone().filter(|_| plain.is_none());
        let transformed = plain.is_some();
        let body = plain.unwrap_or(body);
        let enabled = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && range.is_none()
            && !transformed;
        let (c, kind) = checksum_fields(&o, enabled);
        let size = body.len() as i64;
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        Ok(S3Response::new(stating!(
            GetObjectOutput {
                body: Some(StreamingBlob::wrap(stream)),
                content_length: Some(size),
                content_range: range,
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(modified(&o)),
                content_type: o.meta.content_type.as_ref().and_then(|t| t.parse().ok()),
                cache_control: o.meta.cache_control.clone(),
                content_disposition: o.meta.content_disposition.clone(),
                content_encoding,
                content_language: o.meta.content_language.clone(),
                expires: o.meta.expires.clone(),
                metadata: Some(o.meta.custom.clone()),
                storage_class: Some(StorageClass::from(o.meta.storage_class.clone())),
                checksum_type: kind,
                ..Default::default()
            },
            c
        )))
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
        let (if_match, if_none_match) = (
            destination_condition(&req.headers, "cf-copy-destination-if-match")?,
            destination_condition(&req.headers, "cf-copy-destination-if-none-match")?,
        );
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
        crate::store::race(&mut state, &i.bucket, &to);
        check_conditions(
            bucket_of(&mut state, &i.bucket)?.get(&to),
            if_match.as_ref(),
            if_none_match.as_ref(),
        )?;
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
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }
}
