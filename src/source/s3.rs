//! AWS S3, or any S3-compatible store, as a source. Credentials come from the AWS default
//! chain (env, profile, SSO, web identity, instance metadata) — a client of its own, so
//! they never reach the R2 client. The listing is ListObjectsV2, paged lazily (only the
//! latest version of each key); metadata and stated digests come with each GET, so no
//! HEAD per object is needed. Archived objects without a finished restore are reported.

use std::sync::Arc;

use async_trait::async_trait;

use crate::paging::Entry;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use futures::stream::BoxStream;

use super::s3_digests::{self, parts_in, Stated};
use super::{ListItem, ObjectInfo, Opened, Problem, Source, SourceOptions};
use crate::error::StoreError;
use crate::object::{ByteRange, SourceDigests};
use crate::pacer::Pacer;
use crate::s3api::{
    body_stream, get_object, head_object, head_part, list_page, meta_from_parts, next_token,
    probe_bucket, unquote, with_our_policy, ListScope, Reader,
};

/// What a GET's or a HEAD's answer states of the object's bytes (the two SDK outputs
/// name these alike).
macro_rules! stated {
    ($out:expr) => {
        Stated {
            etag: $out.e_tag(),
            encrypted_etag: matches!(
                $out.server_side_encryption(),
                Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
            ) || $out.sse_customer_algorithm().is_some(),
            sha256: $out.checksum_sha256(),
            sha1: $out.checksum_sha1(),
            crc32: $out.checksum_crc32(),
            crc32c: $out.checksum_crc32_c(),
            crc64nvme: $out.checksum_crc64_nvme(),
        }
    };
}

pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
    pacer: Arc<Pacer>,
    page_size: i32,
    /// Folders under the prefix listed at the same time (1: one flat listing).
    list_concurrency: usize,
    /// Whether a credentials provider was found at all (checked in `check_access`).
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

/// The endpoint of an S3-compatible store: the flag, else the AWS variables.
fn endpoint(opts: &SourceOptions) -> Option<String> {
    opts.endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|e| !e.trim().is_empty())
}

impl S3Source {
    pub async fn new(
        bucket: &str,
        prefix: &str,
        opts: &SourceOptions,
        pacer: Arc<Pacer>,
    ) -> anyhow::Result<S3Source> {
        let endpoint = endpoint(opts);
        if let Some(ep) = &endpoint {
            crate::location::check_endpoint(ep, opts.allow_http)?;
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut config = with_our_policy(aws_sdk_s3::config::Builder::from(&shared));
        if let Some(ep) = &endpoint {
            config = config
                .endpoint_url(crate::s3api::endpoint_url(ep))
                .force_path_style(true);
        }
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        Ok(S3Source {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            pacer,
            page_size: 1000,
            list_concurrency: opts.list_concurrency.max(1),
            credentials: shared.credentials_provider(),
        })
    }

    /// Smaller pages, so tests cross page boundaries with few objects.
    pub fn with_page_size(mut self, n: i32) -> S3Source {
        self.page_size = n.clamp(1, 1000);
        self
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    /// The size of each part of a multipart object, from a HEAD per part (`partNumber`).
    /// None where the store does not say (no parts count in its answer) or the sizes do
    /// not add up to the object's.
    async fn part_layout(
        &self,
        obj: &ObjectInfo,
        full: &str,
        parts: usize,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        if parts == 1 {
            return Ok(Some(vec![obj.size]));
        }
        let head = |n: usize| {
            let what = format!("HEAD {} (part {n})", self.url(&obj.key));
            async move {
                let at = (self.bucket.as_str(), full);
                head_part(&self.client, &self.pacer, at, n as i32, &what).await
            }
        };
        let (first, count) = head(1).await?;
        if count != Some(parts as i32) {
            return Ok(None);
        }
        let mut sizes = vec![first];
        let rest: Vec<(u64, Option<i32>)> = futures::stream::iter(2..=parts)
            .map(head)
            .buffered(8)
            .try_collect()
            .await?;
        sizes.extend(rest.into_iter().map(|(size, _)| size));
        Ok((sizes.iter().sum::<u64>() == obj.size).then_some(sizes))
    }

    /// For GLACIER / DEEP_ARCHIVE objects: whether a restore has finished.
    async fn restored(&self, full_key: &str) -> Result<bool, StoreError> {
        let what = format!("HEAD s3://{}/{full_key}", self.bucket);
        let out = head_object(&self.client, &self.pacer, &self.bucket, full_key, &what)
            .await?
            .ok_or_else(|| StoreError::Object(format!("{what}: gone since it was listed (deleted at the source during the run); nothing to copy")))?;
        Ok(out
            .restore()
            .is_some_and(|r| r.contains("ongoing-request=\"false\"")))
    }

    /// One ListObjectsV2 page of the keys under `under`, grouped by `delimiter`.
    async fn raw_page(
        &self,
        under: &str,
        delimiter: Option<&str>,
        token: Option<String>,
    ) -> Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output, StoreError> {
        let what = format!("listing s3://{}/{under}", self.bucket);
        let scope = ListScope {
            prefix: under,
            delimiter,
            max_keys: Some(self.page_size),
        };
        list_page(
            &self.client,
            &self.pacer,
            &self.bucket,
            &scope,
            token,
            &what,
        )
        .await
    }

    /// One page of the keys under `under` (the source prefix, or one of its folders).
    async fn list_page(
        &self,
        under: &str,
        token: Option<String>,
    ) -> Result<crate::paging::Page<ListItem>, StoreError> {
        let out = self.raw_page(under, None, token).await?;
        let items = self.items_of(out.contents()).await?;
        Ok((items, next_token(&out)))
    }

    /// One page of the folder `under`'s own level: its objects and its subfolders
    /// (common prefixes), merged in key order.
    async fn level_page(
        &self,
        under: String,
        token: Option<String>,
    ) -> Result<crate::paging::Page<Entry<ListItem>>, StoreError> {
        let out = self.raw_page(&under, Some("/"), token).await?;
        let mut entries: Vec<(String, Result<Entry<ListItem>, StoreError>)> = Vec::new();
        for item in self.items_of(out.contents()).await? {
            let key = item
                .as_ref()
                .map(|i| i.key().to_string())
                .unwrap_or_default();
            entries.push((key, item.map(Entry::Item)));
        }
        for p in out.common_prefixes() {
            let full = p.prefix().unwrap_or_default();
            let rel = full.strip_prefix(self.prefix.as_str()).unwrap_or(full);
            entries.push((rel.to_string(), Ok(Entry::Folder(full.to_string()))));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = entries.into_iter().map(|(_, e)| e).collect();
        Ok((entries, next_token(&out)))
    }

    /// Listed objects as items: folder placeholders left out, archived ones reported.
    async fn items_of(
        &self,
        contents: &[aws_sdk_s3::types::Object],
    ) -> Result<Vec<Result<ListItem, StoreError>>, StoreError> {
        let mut items = Vec::with_capacity(contents.len());
        for o in contents {
            let full = o.key().unwrap_or_default();
            let rel = full.strip_prefix(self.prefix.as_str()).unwrap_or(full);
            let size = o.size().unwrap_or(0).max(0) as u64;
            // "Folder" placeholder objects (key ending in '/', no bytes) are not data.
            if rel.is_empty() || (rel.ends_with('/') && size == 0) {
                continue;
            }
            let class = o.storage_class().map(|c| c.as_str().to_string());
            if matches!(class.as_deref(), Some("GLACIER" | "DEEP_ARCHIVE")) {
                match self.restored(full).await {
                    Ok(true) => {}
                    Ok(false) => {
                        items.push(Ok(ListItem::Unreadable {
                            key: rel.to_string(),
                            problem: Problem::Archived,
                            reason: format!(
                                "archived in {}: restore it first (aws s3api restore-object), then re-run",
                                class.as_deref().unwrap_or("")
                            ),
                        }));
                        continue;
                    }
                    Err(e) if e.is_fatal() => return Err(e),
                    Err(e) => {
                        items.push(Ok(ListItem::Unreadable {
                            key: rel.to_string(),
                            problem: Problem::CannotRead,
                            reason: e.to_string(),
                        }));
                        continue;
                    }
                }
            }
            let mut info = ObjectInfo::new(rel, size);
            info.modified = o
                .last_modified()
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok());
            info.digests.etag = unquote(o.e_tag());
            // The ETag changes with every write; a store that lists none (some
            // S3-compatible ones) falls back to size and modification time.
            info.version = info.digests.etag.clone().or_else(|| {
                o.last_modified()
                    .map(|t| format!("{size}:{}", t.as_nanos()))
            });
            info.storage_class = Some(class.unwrap_or_else(|| "STANDARD".into()));
            items.push(Ok(ListItem::Object(info)));
        }
        Ok(items)
    }
}

#[async_trait]
impl Source for S3Source {
    /// With `list_concurrency` above 1, the prefix is walked by delimiter, that many
    /// folders at a time, the output still in key order; else one flat listing.
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>> {
        if self.list_concurrency <= 1 {
            return crate::paging::token_pages(move |token| self.list_page(&self.prefix, token));
        }
        let level = move |under, token| self.level_page(under, token);
        let buffer = 2 * self.page_size as usize;
        crate::paging::walk(self.prefix.clone(), level, self.list_concurrency, buffer)
    }

    async fn stated(&self, obj: &ObjectInfo) -> Result<SourceDigests, StoreError> {
        let full = format!("{}{}", self.prefix, obj.key);
        let what = format!("HEAD {}", self.url(&obj.key));
        let head = head_object(&self.client, &self.pacer, &self.bucket, &full, &what).await?;
        let listed = obj.digests.etag.as_deref();
        // The version listed (a store that lists no ETag is read unconditioned, as a
        // whole read of it is).
        let same = |h: &aws_sdk_s3::operation::head_object::HeadObjectOutput| {
            listed.is_none() || unquote(h.e_tag()).as_deref() == listed
        };
        let Some(head) = head.filter(same) else {
            return Err(StoreError::Object(format!(
                "{what}: changed at the source since it was listed (its ETag is no longer the one listed); run again to copy the new version"
            )));
        };
        let layout = match listed.and_then(parts_in) {
            Some(parts) => self.part_layout(obj, &full, parts).await?,
            None => None,
        };
        Ok(s3_digests::digests(&stated!(head), layout.as_deref()))
    }

    async fn open(&self, obj: &ObjectInfo, range: Option<ByteRange>) -> Result<Opened, StoreError> {
        let full = format!("{}{}", self.prefix, obj.key);
        let what = format!("GET {}", self.url(&obj.key));
        let at = (self.bucket.as_str(), full.as_str());
        // A multipart object's part sizes, to check what it states of its parts.
        let layout = match (&range, obj.digests.etag.as_deref().and_then(parts_in)) {
            (None, Some(parts)) => self.part_layout(obj, &full, parts).await?,
            _ => None,
        };
        let out = get_object(
            &self.client,
            &self.pacer,
            at,
            range.as_ref(),
            (Reader::Source, obj.digests.etag.as_deref()),
            &what,
        )
        .await?;
        let meta = meta_from_parts(
            out.content_type(),
            out.cache_control(),
            out.content_disposition(),
            out.content_encoding(),
            out.content_language(),
            out.expires_string(),
            out.metadata(),
        );
        let digests = if range.is_some() {
            SourceDigests::default()
        } else {
            s3_digests::digests(&stated!(out), layout.as_deref())
        };
        Ok(Opened {
            body: body_stream(out.body, what, self.pacer.io_timeout()),
            meta: Some(meta),
            digests: Some(digests),
        })
    }

    fn states_digests(&self) -> bool {
        true
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        let Some(provider) = &self.credentials else {
            return Err(StoreError::Fatal(
                "no AWS credentials found for the S3 source: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`".into(),
            ));
        };
        if let Err(e) = provider.provide_credentials().await {
            return Err(StoreError::Fatal(format!(
                "no AWS credentials found for the S3 source ({e}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`"
            )));
        }
        probe_bucket(
            &self.client,
            &self.pacer,
            &format!("s3://{}/{}", self.bucket, self.prefix),
            &self.bucket,
            &self.prefix,
            &format!(
                "the credentials need s3:ListBucket and s3:GetObject on bucket {:?}",
                self.bucket
            ),
            "check --source-endpoint / AWS_ENDPOINT_URL and the network",
        )
        .await
    }
}
