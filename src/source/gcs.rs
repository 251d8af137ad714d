//! Google Cloud Storage as a source, through the JSON API (`gcloud-storage`).
//! Production auth is Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
//! gcloud user credentials, the metadata server); an emulator is reached through
//! `STORAGE_EMULATOR_HOST` or `--source-endpoint`, anonymously. The listing is paged
//! lazily with an explicit page size. Every read asks for the stored bytes
//! (`Accept-Encoding: gzip`, and the HTTP client never decompresses), so objects kept
//! with `Content-Encoding: gzip` are copied byte-exact instead of being transcoded; their
//! `md5Hash` and `crc32c` are checked against the bytes read.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::paging::Entry;
use futures::stream::BoxStream;
use futures::StreamExt;
use gcloud_storage::client::{Client, ClientConfig};
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::Error as GcsError;

use super::{ListItem, ObjectInfo, Opened, Source, SourceOptions};
use crate::checksum::from_b64;
use crate::error::{usage, StoreError};
use crate::object::{ByteRange, ObjectMeta};
use crate::pacer::Pacer;

pub struct GcsSource {
    client: Client,
    bucket: String,
    prefix: String,
    pacer: Arc<Pacer>,
    page_size: i32,
    /// Folders under the prefix listed at the same time (1: one flat listing).
    list_concurrency: usize,
}

/// The emulator's address, as a URL.
fn emulator(opts: &SourceOptions) -> Option<String> {
    let raw = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("STORAGE_EMULATOR_HOST").ok())
        .filter(|e| !e.trim().is_empty())?;
    let raw = raw.trim().trim_end_matches('/').to_string();
    Some(if raw.contains("://") {
        raw
    } else {
        format!("http://{raw}")
    })
}

/// Classifies a GCS error; `what` names the call and the object.
pub fn classify(err: GcsError, what: &str) -> StoreError {
    match err {
        GcsError::Response(r) => {
            let words = format!("{what}: {} (HTTP {})", r.message, r.code);
            match r.code {
                408 | 429 | 500..=599 => StoreError::Transient(words),
                401 | 403 => StoreError::Refused(words),
                _ => StoreError::Object(words),
            }
        }
        // A reply GCS did not explain in JSON (a proxy, a load balancer) keeps its status.
        GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => {
            let status = e.status().map(|s| s.as_u16());
            match status {
                Some(408 | 429) | Some(500..=599) | None => {
                    StoreError::Transient(format!("{what}: could not reach the endpoint or read the reply: {e}"))
                }
                Some(code @ (401 | 403)) => StoreError::Refused(format!("{what}: HTTP {code}")),
                Some(code) => StoreError::Object(format!("{what}: HTTP {code}")),
            }
        }
        GcsError::HttpMiddleware(e) => StoreError::Transient(format!("{what}: {e}")),
        GcsError::TokenSource(e) => StoreError::Fatal(format!(
            "{what}: Google credentials could not produce a token ({e}); check GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`"
        )),
        other => StoreError::Object(format!("{what}: {other}")),
    }
}

/// Reads are conditioned on the generation listed.
fn changed_since_listed(words: &str) -> StoreError {
    StoreError::Object(format!(
        "{words}: changed at the source since it was listed (that generation is gone); run again to copy the new version"
    ))
}

fn status_of(err: &GcsError) -> Option<u16> {
    match err {
        GcsError::Response(r) => Some(r.code),
        GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// Metadata as GCS states it.
fn meta_of(o: &Object) -> ObjectMeta {
    let own = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    ObjectMeta {
        content_type: own(&o.content_type),
        cache_control: own(&o.cache_control),
        content_disposition: own(&o.content_disposition),
        content_encoding: own(&o.content_encoding),
        content_language: own(&o.content_language),
        expires: None,
        custom: crate::object::custom_metadata(o.metadata.as_ref()),
        storage_class: None,
    }
}

impl GcsSource {
    pub async fn new(
        bucket: &str,
        prefix: &str,
        opts: &SourceOptions,
        pacer: Arc<Pacer>,
    ) -> anyhow::Result<GcsSource> {
        let mut headers = reqwest::header::HeaderMap::new();
        // Ask for the stored form: no decompressive transcoding of gzip objects.
        headers.insert(
            reqwest::header::ACCEPT_ENCODING,
            reqwest::header::HeaderValue::from_static("gzip"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| usage(format!("cannot build the HTTP client for GCS: {e}")))?;
        let mut config = ClientConfig {
            http: Some(reqwest_middleware::ClientBuilder::new(http).build()),
            ..Default::default()
        };
        if let Some(endpoint) = emulator(opts) {
            crate::location::check_endpoint(&endpoint, opts.allow_http)?;
            config.storage_endpoint = endpoint;
            config = config.anonymous();
        } else {
            config = config.with_auth().await.map_err(|e| {
                anyhow::Error::new(StoreError::Fatal(format!(
                    "no usable Google credentials for gs://{bucket} ({e}): set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login`; for an emulator set STORAGE_EMULATOR_HOST"
                )))
            })?;
        }
        Ok(GcsSource {
            client: Client::new(config),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            pacer,
            page_size: 1000,
            list_concurrency: opts.list_concurrency.max(1),
        })
    }

    /// Smaller pages, so tests cross page boundaries with few objects.
    pub fn with_page_size(mut self, n: i32) -> GcsSource {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// One page of the objects under `under` (the source prefix, or one of its folders);
    /// with `folders`, the prefix's own level: its objects and its folders (prefixes).
    async fn page(
        &self,
        under: &str,
        folders: bool,
        token: Option<String>,
        max: i32,
    ) -> Result<Listed, StoreError> {
        let what = format!("listing gs://{}/{under}", self.bucket);
        let out = self
            .pacer
            .call(&what, || async {
                self.client
                    .list_objects(&ListObjectsRequest {
                        bucket: self.bucket.clone(),
                        prefix: (!under.is_empty()).then(|| under.to_string()),
                        delimiter: folders.then(|| "/".to_string()),
                        // The emulator returns everything when this is absent: always send it.
                        max_results: Some(max),
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| {
                        let status = status_of(&e);
                        match (status, classify(e, &what)) {
                            (Some(404), StoreError::Object(m)) => StoreError::Fatal(format!(
                                "{m}: bucket {:?} does not exist (or these credentials cannot see it)",
                                self.bucket
                            )),
                            (Some(401 | 403), StoreError::Refused(m)) => StoreError::Fatal(format!(
                                "{m}: permission denied; the credentials need storage.objects.list and storage.objects.get (roles/storage.objectViewer) on bucket {:?}",
                                self.bucket
                            )),
                            (_, other) => other,
                        }
                    })
            })
            .await?;
        Ok(Listed {
            objects: out.items.unwrap_or_default(),
            folders: out.prefixes.unwrap_or_default(),
            next: out.next_page_token,
        })
    }

    /// One page of the keys under `under`, as items.
    async fn items_page(
        &self,
        under: &str,
        token: Option<String>,
    ) -> Result<crate::paging::Page<ListItem>, StoreError> {
        let listed = self.page(under, false, token, self.page_size).await?;
        let items = listed
            .objects
            .iter()
            .filter_map(|o| self.info_of(o))
            .map(Ok)
            .collect();
        Ok((items, listed.next))
    }

    /// One page of the folder `under`'s own level, objects and subfolders merged in
    /// key order.
    async fn level_page(
        &self,
        under: String,
        token: Option<String>,
    ) -> Result<crate::paging::Page<Entry<ListItem>>, StoreError> {
        let listed = self.page(&under, true, token, self.page_size).await?;
        let mut entries: Vec<(String, Entry<ListItem>)> = Vec::new();
        for item in listed.objects.iter().filter_map(|o| self.info_of(o)) {
            entries.push((item.key().to_string(), Entry::Item(item)));
        }
        for full in listed.folders {
            let rel = full
                .strip_prefix(self.prefix.as_str())
                .unwrap_or(&full)
                .to_string();
            entries.push((rel, Entry::Folder(full)));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((
            entries.into_iter().map(|(_, e)| Ok(e)).collect(),
            listed.next,
        ))
    }

    fn info_of(&self, o: &Object) -> Option<ListItem> {
        let rel = o.name.strip_prefix(self.prefix.as_str()).unwrap_or(&o.name);
        let size = o.size.max(0) as u64;
        // "Folder" placeholders (name ending in '/', no bytes) are not data.
        if rel.is_empty() || (rel.ends_with('/') && size == 0) {
            return None;
        }
        let mut info = ObjectInfo::new(rel, size);
        info.modified = o.updated;
        info.meta = meta_of(o);
        info.storage_class = o.storage_class.clone();
        info.digests.etag = Some(o.etag.clone());
        info.version = (o.generation != 0).then(|| o.generation.to_string());
        // Composite objects have no md5Hash; crc32c is always there.
        info.digests.md5 = o
            .md5_hash
            .as_deref()
            .and_then(from_b64)
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok());
        info.digests.crc32c = o
            .crc32c
            .as_deref()
            .and_then(from_b64)
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_be_bytes);
        Some(ListItem::Object(info))
    }
}

/// A listing page: objects, folders (with a delimiter), the next page's token.
struct Listed {
    objects: Vec<Object>,
    folders: Vec<String>,
    next: Option<String>,
}

#[async_trait]
impl Source for GcsSource {
    /// With `list_concurrency` above 1, the prefix is walked by delimiter, that many
    /// folders at a time, the output still in key order; else one flat listing.
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>> {
        if self.list_concurrency <= 1 {
            return crate::paging::token_pages(move |token| self.items_page(&self.prefix, token));
        }
        let level = move |under, token| self.level_page(under, token);
        let buffer = 2 * self.page_size as usize;
        crate::paging::walk(self.prefix.clone(), level, self.list_concurrency, buffer)
    }

    async fn open(&self, obj: &ObjectInfo, range: Option<ByteRange>) -> Result<Opened, StoreError> {
        let full = format!("{}{}", self.prefix, obj.key);
        let what = format!("GET gs://{}/{full}", self.bucket);
        // Only the generation listed: once replaced it is gone (404) or, in a bucket that
        // keeps versions, still that generation — never the newer bytes under the old name.
        let generation = obj.version.as_deref().and_then(|g| g.parse().ok());
        let req = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: full.clone(),
            generation,
            ..Default::default()
        };
        let stream = self
            .pacer
            .call(&what, || async {
                let r = match &range {
                    Some(r) => Range(Some(r.start), Some(r.end.saturating_sub(1))),
                    None => Range::default(),
                };
                self.client
                    .download_streamed_object(&req, &r)
                    .await
                    .map_err(|e| match status_of(&e) {
                        Some(404 | 412) if generation.is_some() => changed_since_listed(&format!(
                            "{what} (generation {})",
                            obj.version.as_deref().unwrap_or("")
                        )),
                        _ => classify(e, &what),
                    })
            })
            .await?;
        let what2 = what.clone();
        let chunks = stream.map(move |chunk| chunk.map_err(|e| classify(e, &what2)));
        let body = crate::stall::guard_stream(chunks, what, self.pacer.io_timeout());
        Ok(Opened::body(body))
    }

    fn states_digests(&self) -> bool {
        true
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        match self.page(&self.prefix, false, None, 1).await {
            Ok(_) => Ok(()),
            Err(StoreError::Transient(m)) => Err(StoreError::Fatal(format!(
                "{m}; check STORAGE_EMULATOR_HOST / --source-endpoint and the network"
            ))),
            Err(StoreError::Object(m) | StoreError::Refused(m)) => Err(StoreError::Fatal(m)),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_storage::http::error::ErrorResponse;

    fn reply(code: u16) -> GcsError {
        GcsError::Response(ErrorResponse {
            code,
            errors: Vec::new(),
            message: "m".into(),
        })
    }

    #[test]
    fn throttling_and_server_errors_are_retried_others_are_not() {
        for code in [408, 429, 500, 503] {
            assert!(
                matches!(classify(reply(code), "GET x"), StoreError::Transient(_)),
                "{code}"
            );
        }
        for code in [400, 404] {
            assert!(
                matches!(classify(reply(code), "GET x"), StoreError::Object(_)),
                "{code}"
            );
        }
        // One object's permission, or credentials revoked: the copier looks again.
        for code in [401, 403] {
            assert!(
                matches!(classify(reply(code), "GET x"), StoreError::Refused(_)),
                "{code}"
            );
        }
        let e = classify(GcsError::TokenSource("expired".into()), "listing gs://b/");
        assert!(matches!(&e, StoreError::Fatal(m) if m.contains("GOOGLE_APPLICATION_CREDENTIALS")));
    }

    #[test]
    fn an_emulator_host_without_a_scheme_is_http() {
        let opts = |e: &str| SourceOptions {
            endpoint: Some(e.to_string()),
            ..Default::default()
        };
        assert_eq!(
            emulator(&opts("127.0.0.1:4443")).as_deref(),
            Some("http://127.0.0.1:4443")
        );
        assert_eq!(
            emulator(&opts("https://gcs.internal/")).as_deref(),
            Some("https://gcs.internal")
        );
    }
}
