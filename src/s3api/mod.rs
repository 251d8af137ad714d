//! S3-API helpers shared by the S3 source and the R2 target: classifying SDK errors into
//! retryable / per-object / fatal, mapping metadata, the paged listing and the streamed GET.
//! No secret is ever part of a message built here.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use std::future::Future;

use crate::error::StoreError;
use crate::object::ObjectMeta;
use crate::pacer::Pacer;

mod reads;
pub use reads::*;

/// Turns an SDK error into a [`StoreError`] of the right class. `what` names the call and
/// the object, so the message says what failed.
pub fn classify<E>(err: SdkError<E, HttpResponse>, what: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or("").to_string();
    let detail = err.message().unwrap_or("").to_string();
    match &err {
        SdkError::TimeoutError(_) => return StoreError::Transient(format!("{what}: timed out")),
        SdkError::DispatchFailure(_) => {
            return StoreError::Transient(format!(
                "{what}: could not reach the endpoint: {}",
                root_cause(&err)
            ))
        }
        SdkError::ResponseError(_) => {
            return StoreError::Transient(format!("{what}: broken response: {}", root_cause(&err)))
        }
        SdkError::ConstructionFailure(_) => {
            return StoreError::Object(format!(
                "{what}: request could not be built ({})",
                DisplayErrorContext(&err)
            ))
        }
        _ => {}
    }
    let words = if code.is_empty() && detail.is_empty() {
        // No S3 error in the answer: say what came back instead of an empty code.
        format!("{what}: {}", not_s3(err.raw_response()))
    } else if detail.is_empty() {
        format!("{what}: {code} (HTTP {})", status.unwrap_or(0))
    } else {
        format!("{what}: {code}: {detail} (HTTP {})", status.unwrap_or(0))
    };
    let request = operation_of::<E>();
    match (status, code.as_str()) {
        // Complete sends no object bytes, only the part list and the whole object's
        // checksum: a BadDigest there is the target disagreeing with the checksum scheme
        // or value, which sending it again (or the whole object again) cannot change.
        (_, "BadDigest") if request == "CompleteMultipartUpload" => {
            rejected(request, &code, status, words)
        }
        (_, "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "RequestTimeTooSkewed"
            // The body was corrupted on the way; we resend it from our verified buffer.
            | "BadDigest" | "XAmzContentSHA256Mismatch") => {
            StoreError::Transient(words)
        }
        (Some(408 | 429 | 499), _) => StoreError::Transient(words),
        // Reads are conditioned on the version listed: a 412 is a source that changed.
        (Some(412), _) if matches!(request, "GetObject" | "HeadObject") => StoreError::Object(format!(
            "{what}: changed at the source since it was listed (HTTP 412: its ETag is no longer the one listed); run again to copy the new version"
        )),
        (Some(s), _) if s >= 500 => StoreError::Transient(words),
        (_, "NoSuchBucket") => StoreError::Fatal(format!(
            "{words}: the bucket does not exist; create it first (r2migrate never creates buckets)"
        )),
        (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken") => {
            StoreError::Fatal(format!("{words}: credentials refused; check the access key id and secret"))
        }
        (Some(301), _) | (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => StoreError::Fatal(format!(
            "{words}: the bucket is in another region; set --source-region (or AWS_REGION) to its region"
        )),
        (Some(401 | 403), _) => StoreError::Refused(words),
        // A conditional write that did not hold: the key changed since it was looked at.
        (Some(412), _) if WRITES.contains(&request) => StoreError::Changed(words),
        (Some(400..=499), _) if WRITES.contains(&request) => rejected(request, &code, status, words),
        _ => StoreError::Object(words),
    }
}

/// The requests that write to a target: a refusal of one of them is a [`Rejection`],
/// counted for "a refusal that repeats" (a read refused is about that object alone).
///
/// [`Rejection`]: crate::error::Rejection
const WRITES: [&str; 5] = [
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "CopyObject",
];

fn rejected(request: &str, code: &str, status: Option<u16>, words: String) -> StoreError {
    StoreError::Rejected(Box::new(crate::error::Rejection {
        request: request.to_string(),
        code: code.to_string(),
        status: status.unwrap_or(0),
        words,
        sent: String::new(),
    }))
}

/// The S3 operation an SDK error type belongs to (`CompleteMultipartUploadError` →
/// `CompleteMultipartUpload`): the SDK names each operation's error type after it.
fn operation_of<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let name = full.rsplit("::").next().unwrap_or(full);
    name.strip_suffix("Error").unwrap_or(name)
}

/// An answer that is not the S3 API's (a web page, a gateway's error): its status,
/// content type and first bytes, so the operator sees what the endpoint really is.
fn not_s3(raw: Option<&HttpResponse>) -> String {
    let Some(raw) = raw else {
        return "no answer the S3 API would give".into();
    };
    let content_type = raw.headers().get("content-type").unwrap_or("none");
    let first: String = raw
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "the answer is not the S3 API's (HTTP {}, Content-Type: {content_type}, body starting {first:?}); \
         check that the endpoint URL is the store's S3 API, path included",
        raw.status().as_u16()
    )
}

/// The innermost cause's words ("Connection refused (os error 111)"), without the
/// layers of wrapper types the SDK's own Display adds.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.is_empty() {
        DisplayErrorContext(err).to_string()
    } else {
        text
    }
}

/// An endpoint URL as the SDK must be given it. A gateway or Cloudflare's local R2
/// serves the S3 API under a path (`http://host/cdn-cgi/local/r2/s3`); the SDK appends
/// the bucket to the endpoint's path as it is, so without a trailing slash the bucket
/// would be glued to the last segment (`…/s3dest/`). A bare host keeps no slash.
pub fn endpoint_url(given: &str) -> String {
    let url = given.trim();
    let bare = url.trim_end_matches('/');
    let after_scheme = bare.split_once("://").map_or(bare, |(_, rest)| rest);
    if after_scheme.contains('/') {
        format!("{bare}/")
    } else {
        bare.to_string()
    }
}

/// What every S3 client of ours is set to: checksums only where we send them (the SDK's
/// default CRC32 trailers and R2 disagree in places; we send SHA-256 ourselves), no SDK
/// retries (the pacer is the one retry rule), and a connect timeout. No read timeout: the
/// SDK's bounds the whole exchange, upload included, so it would cut a big part on a
/// slow link; the pacer's `--io-timeout` (see [`crate::stall`]) bounds silence instead.
pub fn with_our_policy(config: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
    config
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build(),
        )
}

/// One S3 API request through the pacer: paced, retried by its one rule, its error
/// classified and named by `what`. Every S3 call the source and the target make goes
/// through here (or [`send_unless_missing`]).
pub async fn send<T, E, Fut>(
    pacer: &Pacer,
    what: &str,
    request: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    send_patiently(pacer, what, std::time::Duration::ZERO, request).await
}

/// [`send`] for a request the server may answer after a long silence: allowed for
/// `patience`, or `--io-timeout` if longer (CompleteMultipartUpload: the server
/// assembles the object before it answers, and S3 can take minutes).
pub async fn send_patiently<T, E, Fut>(
    pacer: &Pacer,
    what: &str,
    patience: std::time::Duration,
    mut request: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    pacer
        .call_patiently(what, patience, || {
            let sent = request();
            async move { sent.await.map_err(|e| classify(e, what)) }
        })
        .await
}

/// [`send`] for a request that uploads `bytes`: each attempt gets a fresh body that
/// reports its progress, so a slow upload whose bytes keep moving is never cut by
/// `--io-timeout`, and a stalled one is.
pub async fn send_upload<T, E, Fut>(
    pacer: &Pacer,
    what: &str,
    bytes: &bytes::Bytes,
    mut request: impl FnMut(SdkBody) -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    pacer
        .call_watched(what, |activity| {
            let body = crate::stall::ProgressBody::new(bytes.clone(), activity);
            let sent = request(SdkBody::from_body_1_x(body));
            async move { sent.await.map_err(|e| classify(e, what)) }
        })
        .await
}

/// Metadata as S3 states it on HEAD/GET.
#[allow(clippy::too_many_arguments)]
pub fn meta_from_parts(
    content_type: Option<&str>,
    cache_control: Option<&str>,
    content_disposition: Option<&str>,
    content_encoding: Option<&str>,
    content_language: Option<&str>,
    expires: Option<&str>,
    custom: Option<&std::collections::HashMap<String, String>>,
) -> ObjectMeta {
    let own = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
    ObjectMeta {
        content_type: own(content_type),
        cache_control: own(cache_control),
        content_disposition: own(content_disposition),
        content_encoding: own(content_encoding),
        content_language: own(content_language),
        expires: own(expires),
        custom: crate::object::custom_metadata(custom),
        storage_class: None,
    }
}

/// `bucket/key` for CopySource, with the key percent-encoded as S3 requires.
pub fn copy_source(bucket: &str, key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, SET)
    )
}

/// One page of ListObjectsV2 under a prefix, paced and retried.
/// Where one ListObjectsV2 page starts and how it groups: the key prefix, `/` to roll
/// the folders under it up into common prefixes (or none), the page size.
pub struct ListScope<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub max_keys: Option<i32>,
}

pub async fn list_page(
    client: &aws_sdk_s3::Client,
    pacer: &crate::pacer::Pacer,
    bucket: &str,
    scope: &ListScope<'_>,
    token: Option<String>,
    what: &str,
) -> Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output, StoreError> {
    send(pacer, what, || {
        client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(scope.prefix)
            .set_delimiter(scope.delimiter.map(str::to_string))
            .set_max_keys(scope.max_keys)
            .set_continuation_token(token.clone())
            .send()
    })
    .await
}

/// The next page's token, when the page says there is one.
pub fn next_token(
    out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output,
) -> Option<String> {
    match (out.is_truncated(), out.next_continuation_token()) {
        (Some(true), Some(t)) => Some(t.to_string()),
        _ => None,
    }
}

/// Proves a bucket exists and the credentials may list it, with one ListObjectsV2
/// (max-keys 1, delimiter "/": one level, which S3-compatible stores that walk the
/// whole tree for a flat listing answer at once) under the prefix — never a
/// bucket-level call, which bucket-scoped tokens may not make. Every failure is fatal (exit 3); `refused` says which permission is
/// needed and `unreachable` where the endpoint is configured.
pub async fn probe_bucket(
    client: &aws_sdk_s3::Client,
    pacer: &crate::pacer::Pacer,
    url: &str,
    bucket: &str,
    prefix: &str,
    refused: &str,
    unreachable: &str,
) -> Result<(), StoreError> {
    let what = format!("listing {url}");
    let result = pacer
        .call(&what, || async {
            client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .max_keys(1)
                .send()
                .await
                .map_err(|e| {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    match (status, classify(e, &what)) {
                        // A refusal here is about the whole bucket, not one object.
                        (Some(403), StoreError::Refused(m)) => {
                            StoreError::Fatal(format!("{m}: access refused; {refused}"))
                        }
                        (_, other) => other,
                    }
                })
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(StoreError::Transient(m)) => Err(StoreError::Fatal(format!("{m}; {unreachable}"))),
        Err(StoreError::Object(m)) => Err(StoreError::Fatal(format!("{m}; {unreachable}"))),
        Err(StoreError::Refused(m)) => Err(StoreError::Fatal(m)),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        let err =
            GetObjectError::generic(ErrorMetadata::builder().code(code).message("words").build());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn errors_are_classified_by_status_and_code() {
        let class = |status, code| classify(service_error(status, code), "GET s3://b/k");
        let kind = |e: StoreError| match e {
            StoreError::Transient(_) => "transient",
            StoreError::Object(_) => "object",
            StoreError::Fatal(_) => "fatal",
            StoreError::Refused(_) => "refused",
            _ => "other",
        };
        for (status, code, want) in [
            (403, "AccessDenied", "refused"), // one object, or revoked: the copier looks again
            (403, "InvalidAccessKeyId", "fatal"),
            (403, "SignatureDoesNotMatch", "fatal"),
            (404, "NoSuchBucket", "fatal"),
            (301, "PermanentRedirect", "fatal"),
            (503, "SlowDown", "transient"),
            (429, "TooManyRequests", "transient"),
            (500, "InternalError", "transient"),
            (400, "InvalidArgument", "object"), // a read: that object alone
            (400, "BadDigest", "transient"),    // a GET's body: read it again
        ] {
            assert_eq!(kind(class(status, code)), want, "{status} {code}");
        }
        assert!(class(301, "PermanentRedirect")
            .to_string()
            .contains("region"));
        assert!(class(403, "AccessDenied")
            .to_string()
            .contains("GET s3://b/k"));
    }

    #[test]
    fn a_refused_write_names_its_request_and_a_complete_bad_digest_is_not_resent() {
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
        use aws_sdk_s3::operation::put_object::PutObjectError;
        fn error<E>(
            status: u16,
            code: &str,
            generic: fn(ErrorMetadata) -> E,
        ) -> SdkError<E, HttpResponse> {
            let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
            SdkError::service_error(generic(ErrorMetadata::builder().code(code).build()), raw)
        }
        let complete = |code| {
            classify(
                error(400, code, CompleteMultipartUploadError::generic),
                "CompleteMultipartUpload r2://b/k",
            )
        };
        for code in ["BadDigest", "InvalidRequest", "InvalidPart"] {
            match complete(code) {
                StoreError::Rejected(r) => {
                    assert_eq!(
                        (r.request.as_str(), r.code.as_str(), r.status),
                        ("CompleteMultipartUpload", code, 400)
                    );
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let put =
            |status, code| classify(error(status, code, PutObjectError::generic), "PUT r2://b/k");
        assert!(
            matches!(put(400, "InvalidStorageClass"), StoreError::Rejected(r) if r.request == "PutObject")
        );
        // A PUT's body was corrupted on its way: sent again from our buffer.
        assert!(matches!(put(400, "BadDigest"), StoreError::Transient(_)));
        assert!(matches!(
            put(429, "TooManyRequests"),
            StoreError::Transient(_)
        ));
    }

    #[test]
    fn endpoints_with_a_path_end_in_one_slash() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_url(" https://h/cdn-cgi/local/r2/s3 "),
            "https://h/cdn-cgi/local/r2/s3/"
        );
        assert_eq!(endpoint_url("https://h/gw/s3//"), "https://h/gw/s3/");
    }

    #[test]
    fn a_missing_key_is_not_a_missing_bucket() {
        assert!(is_not_found(&service_error(404, "NoSuchKey")));
        assert!(!is_not_found(&service_error(404, "NoSuchBucket")));
    }

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(copy_source("b", "a b/c+d%.txt"), "b/a%20b/c%2Bd%25.txt");
    }
}
