//! Cloudflare R2 through the S3 API. The client is built from `aws_sdk_s3::config::Builder`
//! directly — never from the shared AWS environment, whose credentials belong to the
//! source — with R2's static keys, region `auto`, path-style addressing, checksums only
//! when required (we send our own: SHA-256 with every single PUT; CRC64NVME, FULL_OBJECT,
//! for every multipart upload, its parts and its Complete), and retries left to the
//! [`Pacer`].

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};
use aws_sdk_s3::Client;
use futures::stream::BoxStream;

use super::{ListedPart, MultipartUpload, PutResult, Target, TargetObject};
use crate::checksum::b64;
use crate::error::{usage, StoreError};
use crate::object::{Body, ByteStream, Expect, MultipartChecksum, ObjectMeta};
use crate::pacer::Pacer;
use crate::s3api::{
    body_stream, copy_source, get_object, head_object, list_page, meta_from_parts, next_token,
    probe_bucket, send, send_upload, unquote, with_our_policy, ListScope, Reader,
};

mod multipart;

use multipart::{scheme_sent, R2Upload};

pub struct R2Target {
    client: Client,
    bucket: String,
    prefix: String,
    pacer: Arc<Pacer>,
}

/// R2's endpoint from the environment: `R2_ENDPOINT_URL`, else built from
/// `R2_ACCOUNT_ID` and the optional `R2_JURISDICTION` (`eu`, `fedramp`).
pub fn endpoint_from_env() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("R2_ENDPOINT_URL") {
        if !url.trim().is_empty() {
            return Ok(crate::s3api::endpoint_url(&url));
        }
    }
    let account = std::env::var("R2_ACCOUNT_ID").unwrap_or_default();
    if account.trim().is_empty() {
        return Err(usage(
            "no R2 endpoint: set R2_ACCOUNT_ID (your Cloudflare account id) or R2_ENDPOINT_URL",
        ));
    }
    let jurisdiction = match std::env::var("R2_JURISDICTION").unwrap_or_default().trim() {
        "" | "default" => "",
        "eu" => ".eu",
        "fedramp" => ".fedramp",
        other => {
            return Err(usage(format!(
                "R2_JURISDICTION={other:?} is not one of eu, fedramp (or unset for the default)"
            )))
        }
    };
    Ok(format!(
        "https://{}{jurisdiction}.r2.cloudflarestorage.com",
        account.trim()
    ))
}

impl R2Target {
    pub fn from_env(
        bucket: &str,
        prefix: &str,
        allow_http: bool,
        pacer: Arc<Pacer>,
    ) -> anyhow::Result<R2Target> {
        let endpoint = endpoint_from_env()?;
        crate::location::check_endpoint(&endpoint, allow_http)?;
        let key_id = std::env::var("R2_ACCESS_KEY_ID").unwrap_or_default();
        let secret = std::env::var("R2_SECRET_ACCESS_KEY").unwrap_or_default();
        if key_id.is_empty() || secret.is_empty() {
            return Err(anyhow::Error::new(StoreError::Fatal(
                "R2 credentials missing: set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY (an R2 API token with Object Read & Write on the bucket)".into(),
            )));
        }
        Ok(R2Target::new(
            &endpoint, key_id, secret, bucket, prefix, pacer,
        ))
    }

    /// A client for this endpoint and these keys (checked by the caller).
    pub fn new(
        endpoint: &str,
        key_id: String,
        secret: String,
        bucket: &str,
        prefix: &str,
        pacer: Arc<Pacer>,
    ) -> R2Target {
        let config = with_our_policy(aws_sdk_s3::config::Builder::new())
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("auto"))
            .endpoint_url(crate::s3api::endpoint_url(endpoint))
            .force_path_style(true)
            .credentials_provider(Credentials::new(key_id, secret, None, None, "r2-env"))
            .build();
        R2Target {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            pacer,
        }
    }
}

/// Sets the carried metadata on a PutObject or CreateMultipartUpload builder.
macro_rules! apply_meta {
    ($req:expr, $meta:expr) => {{
        let meta: &ObjectMeta = $meta;
        let mut req = $req
            .set_content_type(meta.content_type.clone())
            .set_cache_control(meta.cache_control.clone())
            .set_content_disposition(meta.content_disposition.clone())
            .set_content_encoding(meta.content_encoding.clone())
            .set_content_language(meta.content_language.clone())
            .set_storage_class(
                meta.storage_class
                    .as_deref()
                    .map(aws_sdk_s3::types::StorageClass::from),
            );
        if let Some(expires) = meta.expires.as_deref().and_then(|e| {
            aws_smithy_types::DateTime::from_str(e, aws_smithy_types::date_time::Format::HttpDate)
                .ok()
        }) {
            req = req.expires(expires);
        }
        for (k, v) in &meta.custom {
            req = req.metadata(k, v);
        }
        req
    }};
}

/// R2's conditional-write headers for what a write expects (`If-Match`, `If-None-Match`).
pub(super) fn conditions(expect: &Expect) -> (Option<String>, Option<String>) {
    match expect {
        Expect::Anything => (None, None),
        Expect::Absent => (None, Some("*".into())),
        Expect::Etag(etag) => (Some(format!("\"{}\"", etag.trim_matches('"'))), None),
    }
}

#[async_trait]
impl Target for R2Target {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        probe_bucket(
            &self.client,
            &self.pacer,
            &format!("r2://{}/{}", self.bucket, self.prefix),
            &self.bucket,
            &self.prefix,
            &format!(
                "the R2 API token needs Object Read & Write on bucket {:?}",
                self.bucket
            ),
            "check R2_ENDPOINT_URL / R2_ACCOUNT_ID and the network",
        )
        .await
    }

    fn list(&self) -> BoxStream<'_, Result<TargetObject, StoreError>> {
        let what = format!("listing r2://{}/{}", self.bucket, self.prefix);
        crate::paging::token_pages(move |token| {
            let what = what.clone();
            async move {
                let scope = ListScope {
                    prefix: &self.prefix,
                    delimiter: None,
                    max_keys: None,
                };
                let out = list_page(
                    &self.client,
                    &self.pacer,
                    &self.bucket,
                    &scope,
                    token,
                    &what,
                )
                .await?;
                let items = out
                    .contents()
                    .iter()
                    .map(|o| {
                        Ok(TargetObject {
                            key: o.key().unwrap_or_default().to_string(),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            etag: unquote(o.e_tag()),
                            ..Default::default()
                        })
                    })
                    .collect();
                let next = next_token(&out);
                Ok((items, next))
            }
        })
    }

    async fn head(&self, key: &str) -> Result<Option<TargetObject>, StoreError> {
        let what = format!("HEAD r2://{}/{key}", self.bucket);
        let head = head_object(&self.client, &self.pacer, &self.bucket, key, &what).await?;
        Ok(head.map(|h| TargetObject {
            key: key.to_string(),
            size: h.content_length().unwrap_or(0).max(0) as u64,
            etag: unquote(h.e_tag()),
            checksum_sha256: h.checksum_sha256().map(str::to_string),
            checksum_crc64nvme: h.checksum_crc64_nvme().map(str::to_string),
            meta: meta_from_parts(
                h.content_type(),
                h.cache_control(),
                h.content_disposition(),
                h.content_encoding(),
                h.content_language(),
                h.expires_string(),
                h.metadata(),
            ),
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let what = format!("GET r2://{}/{key}", self.bucket);
        let at = (self.bucket.as_str(), key);
        let out = get_object(
            &self.client,
            &self.pacer,
            at,
            None,
            (Reader::Target, None),
            &what,
        )
        .await?;
        Ok(body_stream(out.body, what, self.pacer.io_timeout()))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Body,
        meta: &ObjectMeta,
        expect: &Expect,
    ) -> Result<PutResult, StoreError> {
        let (body, sha256) = (body.bytes, body.sha256);
        let (if_match, if_none_match) = conditions(expect);
        let what = format!("PUT r2://{}/{key}", self.bucket);
        let checksum = b64(&sha256);
        self.pacer.spend_bytes(body.len() as u64).await;
        let out = send_upload(&self.pacer, &what, &body, |sdk_body| {
            let req = self.client.put_object().bucket(&self.bucket).key(key);
            apply_meta!(req, meta)
                .content_length(body.len() as i64)
                .checksum_sha256(&checksum)
                .set_if_match(if_match.clone())
                .set_if_none_match(if_none_match.clone())
                .body(sdk_body)
                // The body's SHA-256 rides in x-amz-checksum-sha256, which R2 checks:
                // hashing it again to sign it (x-amz-content-sha256) would cost a whole
                // second pass over every byte and prove nothing more.
                .customize()
                .disable_payload_signing()
                .send()
        })
        .await
        .map_err(|e| {
            write_refused(e, &self.bucket).sent(|| {
                format!(
                    "x-amz-checksum-sha256 (the body's SHA-256) and Content-Length: {}{}",
                    body.len(),
                    headers_sent(meta)
                )
            })
        })?;
        Ok(PutResult {
            etag: unquote(out.e_tag()),
            checksum_sha256: out.checksum_sha256().map(str::to_string),
            checksum_crc64nvme: out.checksum_crc64_nvme().map(str::to_string),
        })
    }

    async fn start_multipart_if(
        &self,
        key: &str,
        meta: &ObjectMeta,
        checksum: MultipartChecksum,
        expect: &Expect,
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let what = format!("CreateMultipartUpload r2://{}/{key}", self.bucket);
        let out = send(&self.pacer, &what, || {
            let req = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key);
            // One scheme from Create to Complete (SPEC "Multipart checksums"): R2
            // allows CRC64NVME only as FULL_OBJECT, and S3's model fixes the algorithm
            // and type here — a Complete naming another is refused.
            let req = match checksum {
                MultipartChecksum::Crc64nvme => req
                    .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                    .checksum_type(ChecksumType::FullObject),
                MultipartChecksum::Md5 => req,
            };
            apply_meta!(req, meta).send()
        })
        .await
        .map_err(|e| {
            write_refused(e, &self.bucket)
                .sent(|| format!("{}{}", scheme_sent(checksum), headers_sent(meta)))
        })?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| StoreError::Object(format!("{what}: the target returned no upload id; check that R2_ENDPOINT_URL is an R2 (S3-compatible) endpoint")))?
            .to_string();
        Ok(Box::new(R2Upload {
            conditions: conditions(expect),
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id,
            checksum,
            parts: std::sync::Mutex::new(Vec::new()),
            md5s: std::sync::Mutex::new(Vec::new()),
            bytes: std::sync::atomic::AtomicU64::new(0),
            pacer: self.pacer.clone(),
        }))
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<ListedPart>>, StoreError> {
        multipart::listed_parts(&self.client, &self.pacer, (&self.bucket, key, upload_id)).await
    }

    async fn resume_multipart(
        &self,
        key: &str,
        upload_id: &str,
        expect: &Expect,
        landed: &[ListedPart],
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        Ok(Box::new(R2Upload {
            conditions: conditions(expect),
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            checksum: MultipartChecksum::Crc64nvme,
            parts: std::sync::Mutex::new(landed.iter().map(multipart::completed).collect()),
            md5s: std::sync::Mutex::new(Vec::new()),
            bytes: std::sync::atomic::AtomicU64::new(landed.iter().map(|p| p.size).sum()),
            pacer: self.pacer.clone(),
        }))
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let what = format!(
            "AbortMultipartUpload r2://{}/{key} (upload {upload_id}, left open by a killed run)",
            self.bucket
        );
        let out = self
            .pacer
            .call(&what, || async {
                let sent = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await;
                match sent {
                    Ok(_) => Ok(()),
                    // Completed or aborted since: nothing is open.
                    Err(e)
                        if e.as_service_error().is_some_and(|s| s.is_no_such_upload())
                            || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(crate::s3api::classify(e, &what)),
                }
            })
            .await;
        match out {
            // Some S3 servers (s3s-fs) refuse an id they no longer know instead of saying
            // NoSuchUpload; a token truly revoked fails the run's next request anyway.
            Err(StoreError::Refused(m)) => {
                tracing::debug!("{m}: taken as no longer open");
                Ok(())
            }
            other => other,
        }
    }

    async fn copy_if(&self, from: &str, to: &str, expect: &Expect) -> Result<(), StoreError> {
        let what = format!("CopyObject r2://{}/{from} to {to}", self.bucket);
        let source = copy_source(&self.bucket, from);
        // R2 conditions a copy's destination in its own headers (conditional-operations
        // page); If-Match on CopyObject would be read as a condition on nothing we mean.
        let (if_match, if_none_match) = conditions(expect);
        send(&self.pacer, &what, || {
            let (if_match, if_none_match) = (if_match.clone(), if_none_match.clone());
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to)
                .copy_source(&source)
                .customize()
                .mutate_request(move |req| {
                    let headers = req.headers_mut();
                    if let Some(v) = &if_match {
                        headers.insert("cf-copy-destination-if-match", v.clone());
                    }
                    if let Some(v) = &if_none_match {
                        headers.insert("cf-copy-destination-if-none-match", v.clone());
                    }
                })
                .send()
        })
        .await
        .map_err(|e| write_refused(e, &self.bucket))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let what = format!("DELETE r2://{}/{key}", self.bucket);
        send(&self.pacer, &what, || {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
        })
        .await
        .map_err(|e| write_refused(e, &self.bucket))?;
        Ok(())
    }
}

/// The headers a write carried beside its checksum, for a message about a refusal:
/// the standard ones with their values, custom metadata by count and size only.
fn headers_sent(meta: &ObjectMeta) -> String {
    let mut out = String::new();
    let standard = [
        ("Content-Type", &meta.content_type),
        ("Cache-Control", &meta.cache_control),
        ("Content-Disposition", &meta.content_disposition),
        ("Content-Encoding", &meta.content_encoding),
        ("Content-Language", &meta.content_language),
        ("Expires", &meta.expires),
        ("x-amz-storage-class", &meta.storage_class),
    ];
    for (name, value) in standard {
        if let Some(v) = value {
            out.push_str(&format!(", {name}: {v}"));
        }
    }
    if !meta.custom.is_empty() {
        out.push_str(&format!(
            ", {} x-amz-meta-* headers ({} bytes)",
            meta.custom.len(),
            meta.custom
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
        ));
    }
    out
}

/// R2 API tokens are granted per bucket, never per object: a refused write means this
/// token cannot write to the bucket at all (revoked, rotated, or read-only), so the run
/// must stop rather than fail every object in turn.
fn write_refused(e: StoreError, bucket: &str) -> StoreError {
    match e {
        StoreError::Refused(m) => StoreError::Fatal(format!(
            "{m}: R2 refused a write, so the API token no longer has Object Read & Write on \
             bucket {bucket:?} (revoked, rotated or read-only). No new object was started and \
             everything finished is recorded; fix the token and run the same command again to \
             resume"
        )),
        other => other,
    }
}
