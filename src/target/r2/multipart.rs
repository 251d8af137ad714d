//! One multipart upload to R2: its parts and its Complete, proven by the upload's one
//! checksum scheme (SPEC "Multipart checksums"): CRC64NVME FULL_OBJECT by default, or
//! Content-MD5 per part and the multipart ETag for a store that refuses it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::write_refused;
use crate::checksum::{b64, crc64nvme_b64};
use crate::error::StoreError;
use crate::object::{MultipartChecksum, Part};
use crate::pacer::Pacer;
use crate::s3api::{send, send_patiently, send_upload, unquote};
use crate::target::{ListedPart, MultipartUpload, PutResult};

/// How a multipart upload is created (SPEC "Multipart checksums"), as a refusal's
/// message says it.
pub(super) fn scheme_sent(checksum: MultipartChecksum) -> &'static str {
    match checksum {
        MultipartChecksum::Crc64nvme => {
            "x-amz-checksum-algorithm: CRC64NVME and x-amz-checksum-type: FULL_OBJECT"
        }
        MultipartChecksum::Md5 => "no checksum algorithm (--multipart-checksum md5)",
    }
}

/// How long CompleteMultipartUpload may stay silent while R2 assembles the object: ten
/// times what any other request may (`--io-timeout`), plus 10 s per GiB, at most 10
/// minutes — a Complete that hangs is retried, not waited on for the full ten minutes.
fn complete_patience(io_timeout: std::time::Duration, bytes: u64) -> std::time::Duration {
    let per_gib = std::time::Duration::from_secs(10).mul_f64(bytes as f64 / (1u64 << 30) as f64);
    (io_timeout * 10 + per_gib).min(std::time::Duration::from_secs(600))
}

pub(super) struct R2Upload {
    /// `If-Match` and `If-None-Match` for Complete: the write lands only on what it expects.
    pub(super) conditions: (Option<String>, Option<String>),
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) upload_id: String,
    pub(super) checksum: MultipartChecksum,
    /// Parts as they complete, in any order; sorted by number to complete the upload.
    pub(super) parts: std::sync::Mutex<Vec<CompletedPart>>,
    /// `--multipart-checksum md5`: each part's number and MD5, for the ETag Complete
    /// must answer.
    pub(super) md5s: std::sync::Mutex<Vec<(i32, [u8; 16])>>,
    /// Bytes of the parts uploaded: how long Complete may take grows with them.
    pub(super) bytes: std::sync::atomic::AtomicU64,
    pub(super) pacer: Arc<Pacer>,
}

#[async_trait]
impl MultipartUpload for R2Upload {
    fn id(&self) -> String {
        self.upload_id.clone()
    }

    async fn upload_part(&self, number: i32, part: Part) -> Result<Option<String>, StoreError> {
        let body = part.bytes;
        let what = format!("UploadPart {number} of r2://{}/{}", self.bucket, self.key);
        let crc = crc64nvme_b64(part.crc64nvme);
        let md5 = match (self.checksum, part.md5) {
            (MultipartChecksum::Md5, Some(md5)) => Some(md5),
            (MultipartChecksum::Md5, None) => crate::checksum::md5(&body).into(),
            (MultipartChecksum::Crc64nvme, _) => None,
        };
        let content_md5 = md5.map(|m| b64(&m));
        self.pacer.spend_bytes(body.len() as u64).await;
        let out = send_upload(&self.pacer, &what, &body, |sdk_body| {
            let req = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .part_number(number)
                .content_length(body.len() as i64);
            // Never Content-MD5 and another checksum together.
            let req = match &content_md5 {
                Some(m) => req.content_md5(m),
                None => req.checksum_crc64_nvme(&crc),
            };
            // Its CRC64NVME (or Content-MD5), which R2 checks, proves the part: no
            // second pass over it to sign the payload.
            req.body(sdk_body)
                .customize()
                .disable_payload_signing()
                .send()
        })
        .await
        .map_err(|e| {
            write_refused(e, &self.bucket).sent(|| {
                let header = match content_md5 {
                    Some(_) => "Content-MD5",
                    None => "x-amz-checksum-crc64nvme",
                };
                format!(
                    "{header} (the part's own) and Content-Length: {}, in an upload created \
                     with {}",
                    body.len(),
                    scheme_sent(self.checksum)
                )
            })
        })?;
        self.bytes
            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let etag = out.e_tag().map(str::to_string);
        let listed = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag.clone());
        // S3 expects each part's checksum in the list, of the upload's algorithm.
        let listed = match md5 {
            Some(m) => {
                self.md5s.lock().expect("not poisoned").push((number, m));
                listed
            }
            None => listed.checksum_crc64_nvme(crc),
        };
        self.parts
            .lock()
            .expect("not poisoned")
            .push(listed.build());
        Ok(unquote(etag.as_deref()))
    }

    async fn complete(self: Box<Self>, crc64nvme: &str) -> Result<PutResult, StoreError> {
        let what = format!("CompleteMultipartUpload r2://{}/{}", self.bucket, self.key);
        let mut parts = self.parts.lock().expect("not poisoned").clone();
        parts.sort_by_key(|p| p.part_number());
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let count = done.parts().len();
        let bytes = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        let patience = complete_patience(self.pacer.io_timeout(), bytes);
        let full_object = self.checksum == MultipartChecksum::Crc64nvme;
        let out = send_patiently(&self.pacer, &what, patience, || {
            let req = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .multipart_upload(done.clone())
                .set_if_match(self.conditions.0.clone())
                .set_if_none_match(self.conditions.1.clone());
            if full_object {
                // R2 checks the assembled object against it (its only FULL_OBJECT type).
                req.checksum_crc64_nvme(crc64nvme)
                    .checksum_type(ChecksumType::FullObject)
                    .send()
            } else {
                req.send()
            }
        })
        .await
        .map_err(|e| {
            write_refused(e, &self.bucket).sent(|| match full_object {
                true => format!(
                    "x-amz-checksum-type: FULL_OBJECT and x-amz-checksum-crc64nvme: {crc64nvme} \
                     (the whole object's), with {count} parts each listed with its \
                     ChecksumCRC64NVME, for an upload created with {}",
                    scheme_sent(self.checksum)
                ),
                false => format!(
                    "{count} parts, for an upload created with {}",
                    scheme_sent(self.checksum)
                ),
            })
        });
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let _ = self.abort().await;
                return Err(e);
            }
        };
        let etag = unquote(out.e_tag());
        if !full_object {
            // The proof of an upload checked by Content-MD5: the ETag of these parts.
            let mut md5s = self.md5s.lock().expect("not poisoned").clone();
            md5s.sort_by_key(|(n, _)| *n);
            let want =
                crate::checksum::multipart_etag(&md5s.iter().map(|(_, m)| *m).collect::<Vec<_>>());
            if etag.as_deref() != Some(want.as_str()) {
                // Not the bytes sent: take the object away again, as a failed check does.
                let removed = send(&self.pacer, &what, || {
                    self.client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(&self.key)
                        .send()
                })
                .await;
                let fate = match removed {
                    Ok(_) => "the object was removed",
                    Err(_) => "removing the object failed too: delete it by hand",
                };
                return Err(StoreError::Object(format!(
                    "{what}: the target answered ETag {etag:?}, not {want} (the MD5 of the parts' \
                     MD5s), so it does not hold the parts that were sent; {fate} — re-run to copy \
                     it again"
                )));
            }
        }
        Ok(PutResult {
            etag,
            checksum_sha256: out.checksum_sha256().map(str::to_string),
            checksum_crc64nvme: out.checksum_crc64_nvme().map(str::to_string),
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        let what = format!("AbortMultipartUpload r2://{}/{}", self.bucket, self.key);
        send(&self.pacer, &what, || {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .send()
        })
        .await
        .map_err(|e| write_refused(e, &self.bucket))?;
        Ok(())
    }
}

/// Every part an open upload holds (ListParts, a page at a time); `None` when the upload
/// is no longer open (NoSuchUpload, or a 404).
pub(super) async fn listed_parts(
    client: &Client,
    pacer: &Pacer,
    (bucket, key, upload_id): (&str, &str, &str),
) -> Result<Option<Vec<ListedPart>>, StoreError> {
    let what = format!("ListParts r2://{bucket}/{key} (upload {upload_id})");
    let mut parts = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = pacer
            .call(&what, || async {
                let sent = client
                    .list_parts()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .set_part_number_marker(marker.clone())
                    .send()
                    .await;
                match sent {
                    Ok(out) => Ok(Some(out)),
                    Err(e)
                        if e.code() == Some("NoSuchUpload")
                            || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(crate::s3api::classify(e, &what)),
                }
            })
            .await?;
        let Some(page) = page else {
            return Ok(None);
        };
        for p in page.parts() {
            parts.push(ListedPart {
                number: p.part_number().unwrap_or(0),
                size: p.size().unwrap_or(0).max(0) as u64,
                etag: unquote(p.e_tag()),
                crc64nvme: p.checksum_crc64_nvme().map(str::to_string),
            });
        }
        marker = page.next_part_number_marker().map(str::to_string);
        if page.is_truncated() != Some(true) || marker.is_none() {
            break;
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(Some(parts))
}

/// The entry Complete lists for a part kept from an earlier run.
pub(super) fn completed(part: &ListedPart) -> CompletedPart {
    CompletedPart::builder()
        .part_number(part.number)
        .set_e_tag(part.etag.as_ref().map(|e| format!("\"{e}\"")))
        .set_checksum_crc64_nvme(part.crc64nvme.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use super::complete_patience;
    use std::time::Duration;

    #[test]
    fn complete_waits_longer_for_larger_objects_within_ten_minutes() {
        let s = Duration::from_secs;
        assert_eq!(
            complete_patience(s(1), 11 << 20),
            s(10) + s(10).mul_f64(11.0 / 1024.0)
        );
        assert_eq!(complete_patience(s(60), 0), s(600));
        assert_eq!(complete_patience(s(5), 30 << 30), s(350));
        assert_eq!(complete_patience(s(5), 5 << 40), s(600));
    }
}
