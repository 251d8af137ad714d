//! What a target can do: head, list, put (single or multipart), get, copy, delete. Two
//! targets exist: R2 through the S3 API, and a local directory for rehearsals. Keys here
//! are whole keys in the bucket (target prefix included).

pub mod dir;
pub mod r2;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::StoreError;
use crate::location::Location;
use crate::object::{Body, ByteStream, Expect, MultipartChecksum, ObjectMeta, Part};

/// An object as the target describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetObject {
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: Option<String>,
    /// SHA-256 as the S3 API reports it: base64 (with `-N` for a composite multipart
    /// object, which objects written by earlier versions of this tool may be).
    pub checksum_sha256: Option<String>,
    /// The full-object CRC64NVME the target reports (base64), where it keeps one: R2
    /// does for a multipart upload completed with one (every one this tool makes).
    pub checksum_crc64nvme: Option<String>,
    pub meta: ObjectMeta,
}

/// What the target said after accepting an object.
#[derive(Debug, Clone)]
pub struct PutResult {
    pub etag: Option<String>,
    /// The SHA-256 the target computed over what it stored, where its response says it
    /// (base64): proof enough that no HEAD is needed.
    pub checksum_sha256: Option<String>,
    /// The full-object CRC64NVME the target states for what it stored, if it does.
    pub checksum_crc64nvme: Option<String>,
}

/// A part an open multipart upload holds, as ListParts states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub number: i32,
    pub size: u64,
    pub etag: Option<String>,
    /// The part's CRC64NVME (base64), where the target states it.
    pub crc64nvme: Option<String>,
}

#[async_trait]
pub trait MultipartUpload: Send + Sync {
    /// The target's name for this upload, recorded in the manifest as it starts so a
    /// run killed mid-upload (kill -9) leaves nothing open after the next run.
    fn id(&self) -> String;
    /// Uploads part `number` (1-based), which the target checks against the part's
    /// checksum of the upload's scheme (its CRC64NVME, or its Content-MD5). Several parts
    /// of one upload may be in flight at once, in any order.
    /// Returns the part's ETag as the target answered it (ListParts lists the same).
    async fn upload_part(&self, number: i32, part: Part) -> Result<Option<String>, StoreError>;
    /// Assembles the parts; `crc64nvme` is the whole object's CRC64NVME (base64), which
    /// the target checks against what it assembled (the upload's FULL_OBJECT checksum).
    /// An upload checked by Content-MD5 sends none, and requires the answer's ETag to be
    /// the MD5 of the parts' MD5s.
    async fn complete(self: Box<Self>, crc64nvme: &str) -> Result<PutResult, StoreError>;
    /// Removes every part uploaded so far; nothing is left behind.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

#[async_trait]
pub trait Target: Send + Sync {
    /// The key prefix this target writes under (folder form, or empty).
    fn prefix(&self) -> &str;

    /// One cheap call that proves the bucket exists and the credentials work (exit 3 if not).
    async fn check_access(&self) -> Result<(), StoreError>;

    /// Every object under the prefix, lazily.
    fn list(&self) -> BoxStream<'_, Result<TargetObject, StoreError>>;

    async fn head(&self, key: &str) -> Result<Option<TargetObject>, StoreError>;

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError>;

    /// A single PUT, which the target checks against the body's SHA-256, written only if
    /// the key is as `expect` says ([`StoreError::Changed`] if not).
    async fn put_if(
        &self,
        key: &str,
        body: Body,
        meta: &ObjectMeta,
        expect: &Expect,
    ) -> Result<PutResult, StoreError>;

    /// An unconditional PUT.
    async fn put(&self, key: &str, body: Body, meta: &ObjectMeta) -> Result<PutResult, StoreError> {
        self.put_if(key, body, meta, &Expect::Anything).await
    }

    /// Starts a multipart upload proven by `checksum`'s scheme, from Create to Complete;
    /// Complete writes only if the key is as `expect` says.
    async fn start_multipart_if(
        &self,
        key: &str,
        meta: &ObjectMeta,
        checksum: MultipartChecksum,
        expect: &Expect,
    ) -> Result<Box<dyn MultipartUpload>, StoreError>;

    /// An unconditional multipart upload.
    async fn start_multipart(
        &self,
        key: &str,
        meta: &ObjectMeta,
        checksum: MultipartChecksum,
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        self.start_multipart_if(key, meta, checksum, &Expect::Anything)
            .await
    }

    /// The parts an upload an earlier, killed run left open holds, in part order; `None`
    /// when it is no longer open (completed, aborted, or expired).
    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<ListedPart>>, StoreError>;

    /// Goes on with an upload an earlier run left open (CRC64NVME scheme): `landed` are
    /// the parts kept from it, which Complete lists with the parts sent now.
    async fn resume_multipart(
        &self,
        key: &str,
        upload_id: &str,
        expect: &Expect,
        landed: &[ListedPart],
    ) -> Result<Box<dyn MultipartUpload>, StoreError>;

    /// Aborts an upload an earlier, killed run left open; one already completed or
    /// aborted (unknown to the target) is fine.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;

    /// Server-side copy within the bucket (backups before overwrite, restores in
    /// rollback), written only if `to` is as `expect` says ([`StoreError::Changed`] if
    /// not; R2 states it in `cf-copy-destination-if-*` headers).
    async fn copy_if(&self, from: &str, to: &str, expect: &Expect) -> Result<(), StoreError>;

    /// An unconditional server-side copy.
    async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.copy_if(from, to, &Expect::Anything).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Builds the target a location names; R2 credentials come from the environment only.
pub fn open(
    loc: &Location,
    allow_http: bool,
    pacer: std::sync::Arc<crate::pacer::Pacer>,
) -> anyhow::Result<Box<dyn Target>> {
    match loc {
        Location::R2 { bucket, prefix } => Ok(Box::new(r2::R2Target::from_env(
            bucket, prefix, allow_http, pacer,
        )?)),
        Location::Local { root } => Ok(Box::new(dir::DirTarget::new(root.clone()).paced(pacer))),
        other => Err(crate::error::usage(format!("{other} cannot be a target: write to r2://bucket/prefix, or to a local directory to rehearse"))),
    }
}
