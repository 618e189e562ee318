//! The low-level OSS client the engine is built on: one method per API, each one request (retried by
//! the retry layer), with the integrity checks a single request can make.
//!
//! Use it directly to list or abort open uploads, inspect an object, or read it back. The multipart
//! APIs are in `multipart`, the single-object ones in `object`; what reading a success document
//! takes is in `document`.

mod answers;
mod document;
mod listing;
mod multipart;
mod object;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use ossup_proto::Api;
use ossup_sign::{CredentialsProvider, Signer, V4Signer};
use tracing::Instrument;

use crate::retry::{Retry, RetryConfig, RetryObserver, RetryPolicy};
use crate::signing::{Clock, OssResource, Signing};
use crate::wire::{self, DOCUMENT_LIMIT, ReadBody};
use crate::{Endpoint, Error, ResponseBody, Transport};

pub use answers::{CompletedUpload, ObjectBody, ObjectHead, PartBody, StoredBody};
use document::{document_check, parse_doc};

/// A client of the OSS object and multipart APIs.
///
/// Requests go through the layers `Retry` → `Signing` → your [`Transport`]. Cloning is cheap.
///
/// ```no_run
/// # async fn run() -> Result<(), ossup::Error> {
/// use ossup::{Client, Credentials};
/// let client = Client::builder()
///     .endpoint("http://127.0.0.1:9000")?
///     .credentials(Credentials::new("test-ak", "test-sk"))
///     .region("cn-hangzhou")
///     .build()?;
/// for upload in client.list_multipart_uploads("bucket", None).await? {
///     client.abort_multipart_upload("bucket", &upload.key, &upload.upload_id).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    observer: Option<RetryObserver>,
}

struct Inner {
    endpoint: Endpoint,
    transport: Arc<dyn Transport>,
    clock: Clock,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

/// Builds a [`Client`].
#[derive(Default)]
pub struct ClientBuilder {
    endpoint: Option<Endpoint>,
    path_style: Option<bool>,
    credentials: Option<Arc<dyn CredentialsProvider>>,
    signer: Option<Arc<dyn Signer>>,
    transport: Option<Arc<dyn Transport>>,
    retry: RetryConfig,
    retry_policy: Option<Arc<dyn RetryPolicy>>,
    rate_limit: Option<crate::RateLimiter>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("signer", &self.signer)
            .field("transport", &self.transport)
            .field("retry", &self.retry)
            .field("retry_policy", &self.retry_policy)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The OSS endpoint, e.g. `http://oss-cn-hangzhou.aliyuncs.com` or `http://127.0.0.1:9000`.
    pub fn endpoint(mut self, endpoint: &str) -> Result<Self, Error> {
        self.endpoint = Some(Endpoint::parse(endpoint)?);
        Ok(self)
    }

    /// Forces path-style (`true`) or virtual-hosted (`false`) addressing; by default IP and
    /// `localhost` endpoints are path-style, others virtual-hosted.
    pub fn path_style(mut self, path_style: bool) -> Self {
        self.path_style = Some(path_style);
        self
    }

    /// The credentials: a [`Credentials`](ossup_sign::Credentials) (with an STS token for
    /// temporary ones) or any [`CredentialsProvider`]; an `Arc` of a provider shares it.
    pub fn credentials(mut self, credentials: impl CredentialsProvider + 'static) -> Self {
        self.credentials = Some(Arc::new(credentials));
        self
    }

    /// The signer; by default V4 with the region taken from an `oss-REGION.aliyuncs.com` endpoint.
    pub fn signer(mut self, signer: impl Signer + 'static) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// Signs with V4 for `region` (e.g. `"cn-hangzhou"`): a shorthand for
    /// `.signer(V4Signer::new(region))`, needed when the endpoint's name does not say the region
    /// (an IP address, a custom domain, a mock server). The last of `.region` and `.signer` wins.
    pub fn region(self, region: &str) -> Self {
        self.signer(V4Signer::new(region))
    }

    /// The transport that sends requests. With the default feature `hyper`, an
    /// [`HyperTransport`](crate::HyperTransport) with its default settings when not set; without
    /// it, required.
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Retries, backoff and timeouts; [`RetryConfig::default`] when not set.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Decides which failed attempts are sent again, and after how long, in place of the attempts
    /// and backoff of [`retry`](Self::retry) (whose timeouts still hold). Takes a policy or an
    /// `Arc` of one, to share it between clients.
    ///
    /// ```
    /// use ossup::retry::DefaultRetryPolicy;
    /// let shared = std::sync::Arc::new(DefaultRetryPolicy::from(&ossup::RetryConfig::default().max_attempts(3)));
    /// let builder = ossup::Client::builder().retry_policy(shared.clone());
    /// # let _ = builder;
    /// ```
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry_policy = Some(Arc::new(policy));
        self
    }

    /// Caps the bytes per second of every request body this client sends (every part, every file
    /// of a batch, every retry): clones of one [`RateLimiter`](crate::RateLimiter) share one cap,
    /// across clients too.
    ///
    /// ```
    /// use ossup::{Client, Credentials, RateLimiter};
    /// let client = Client::builder()
    ///     .endpoint("http://127.0.0.1:9000")?
    ///     .credentials(Credentials::new("ak", "sk"))
    ///     .region("cn-hangzhou")
    ///     .rate_limit(RateLimiter::new(20 << 20)) // 20 MiB/s on the wire
    ///     .build()?;
    /// # Ok::<(), ossup::Error>(())
    /// ```
    pub fn rate_limit(mut self, limiter: crate::RateLimiter) -> Self {
        self.rate_limit = Some(limiter);
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        let mut endpoint = self.endpoint.ok_or_else(|| {
            Error::config("no endpoint set; call .endpoint(\"http://oss-REGION.aliyuncs.com\")")
        })?;
        if let Some(path_style) = self.path_style {
            endpoint = endpoint.with_path_style(path_style);
        }
        let credentials = self.credentials.ok_or_else(|| {
            Error::config("no credentials set; call .credentials(Credentials::new(id, secret)) or Credentials::from_env()")
        })?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => crate::default_transport::default_transport()?,
        };
        let signer = match self.signer {
            Some(signer) => signer,
            None => {
                let region = region_of(endpoint.authority()).ok_or_else(|| {
                    Error::config(format!(
                        "cannot tell the region of endpoint {} for V4 signing; call .signer(V4Signer::new(\"cn-hangzhou\")) or .signer(V1Signer)",
                        endpoint.authority()
                    ))
                })?;
                Arc::new(V4Signer::new(region)) as Arc<dyn Signer>
            }
        };
        let transport: Arc<dyn Transport> = match self.rate_limit {
            Some(limiter) => Arc::new(crate::RateLimited::new(transport, limiter)),
            None => transport,
        };
        let clock = Clock::new();
        let signed = Signing::new(transport, signer, credentials, clock.clone());
        let mut retried = Retry::new(signed, self.retry).with_clock(clock.clone());
        if let Some(policy) = self.retry_policy {
            retried = retried.with_policy(policy);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                transport: Arc::new(retried),
                clock,
            }),
            observer: None,
        })
    }
}

/// How far a listing of every page may go before it is taken for a server that never ends it.
#[derive(Debug, Clone, Copy)]
struct ListCaps {
    /// The most entries gathered.
    entries: usize,
    /// The most pages asked for.
    pages: usize,
}

/// The region of `oss-REGION[-internal].aliyuncs.com`.
fn region_of(authority: &str) -> Option<String> {
    let host = authority.split(':').next()?;
    let first = host.strip_suffix(".aliyuncs.com")?.split('.').next_back()?;
    let region = first.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    (!region.is_empty()).then(|| region.to_owned())
}

/// One request the client sends.
struct Op<'a> {
    api: Api,
    method: Method,
    bucket: &'a str,
    key: Option<&'a str>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    part: Option<u32>,
    upload_id: Option<&'a str>,
    /// Makes reading the answer's body part of each attempt (see [`ReadBody`]).
    read_body: Option<ReadBody>,
}

impl<'a> Op<'a> {
    fn new(api: Api, method: Method, bucket: &'a str, key: Option<&'a str>) -> Self {
        Self {
            api,
            method,
            bucket,
            key,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            part: None,
            upload_id: None,
            read_body: None,
        }
    }

    fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    fn context(&self, err: Error) -> Error {
        let mut err = err.with_api(self.api);
        err = match self.key {
            Some(key) => err.with_object(self.bucket, key),
            None => err.with_bucket(self.bucket),
        };
        if let Some(part) = self.part {
            err = err.with_part(part);
        }
        if let Some(id) = self.upload_id {
            err = err.with_upload_id(id);
        }
        err
    }
}

impl Client {
    /// A builder; `endpoint`, `credentials` and `transport` are required.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The clock correction learned from the server, in milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.inner.clock.offset_ms()
    }

    /// A client whose requests report their retries to `observer`.
    pub fn with_retry_observer(&self, observer: RetryObserver) -> Client {
        Client {
            inner: self.inner.clone(),
            observer: Some(observer),
        }
    }

    /// Sends `op`; an error answer becomes an [`Error`] with the API, object and part named.
    async fn execute(&self, op: &Op<'_>) -> Result<http::Response<ResponseBody>, Error> {
        let url = self.inner.endpoint.object_url(op.bucket, op.key, &op.query);
        let mut request = http::Request::new(op.body.clone());
        *request.method_mut() = op.method.clone();
        *request.uri_mut() = url.parse().map_err(|e| {
            op.context(Error::config(format!("invalid request URL {url}")).with_source(e))
        })?;
        *request.headers_mut() = op.headers.clone();
        if matches!(op.method, Method::PUT | Method::POST) {
            request.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(op.body.len()),
            );
        }
        let extensions = request.extensions_mut();
        extensions.insert(OssResource {
            bucket: Some(op.bucket.to_owned()),
            key: op.key.map(str::to_owned),
            query: op.query.clone(),
        });
        extensions.insert(op.api);
        if let Some(read_body) = &op.read_body {
            extensions.insert(read_body.clone());
        }
        if let Some(observer) = &self.observer {
            extensions.insert(observer.clone());
        }
        // Only names go in the span: never a header, which may carry the signature or the token.
        let span = tracing::debug_span!(
            "oss_request",
            api = ?op.api,
            bucket = op.bucket,
            key = op.key,
            upload_id = op.upload_id,
            part = op.part,
        );
        async {
            let sent_at = std::time::Instant::now();
            let answer = self.inner.transport.send(request).await;
            let elapsed_ms = sent_at.elapsed().as_millis() as u64;
            let response = match answer {
                Ok(response) => {
                    tracing::debug!(
                        status = response.status().as_u16(),
                        request_id = wire::request_id(response.headers()),
                        elapsed_ms,
                        "answered"
                    );
                    response
                }
                Err(e) => {
                    tracing::debug!(elapsed_ms, error = %e, "failed");
                    return Err(op.context(e));
                }
            };
            if response.status().is_success() {
                return Ok(response);
            }
            let (answer, _) = wire::read_error_answer(response).await;
            Err(op.context(Error::service(answer.service)))
        }
        .instrument(span)
        .await
    }

    /// Sends `op` and parses its answer as the document `document` (also the name of its root
    /// element). The whole exchange is one attempt of the retry layer: an answer cut short, or a
    /// document without its end, is retried like a lost answer; a complete document that does not
    /// parse is an error at once.
    async fn execute_document<T: serde::de::DeserializeOwned + 'static>(
        &self,
        op: &mut Op<'_>,
        document: &'static str,
    ) -> Result<(HeaderMap, T), Error> {
        op.read_body = Some(ReadBody {
            limit: DOCUMENT_LIMIT,
            check: Some(document_check::<T>(document)),
        });
        let response = self.execute(op).await?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect(DOCUMENT_LIMIT)
            .await
            .map_err(|e| op.context(e))?;
        let doc = parse_doc(document, &body, wire::request_id(&parts.headers))
            .map_err(|e| op.context(e))?;
        Ok((parts.headers, doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credentials, ErrorKind, ObjectOptions, RetryConfig};
    use ossup_proto::{checksum, etag, headers};
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    /// One scripted answer: status, body, headers.
    type Answer = (u16, &'static str, Vec<(&'static str, String)>);

    /// Answers with a script, one answer per request, and keeps each request's headers.
    #[derive(Debug, Default)]
    struct Scripted {
        script: Mutex<VecDeque<Answer>>,
        seen: Mutex<Vec<HeaderMap>>,
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn send(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            self.seen.lock().unwrap().push(request.headers().clone());
            let (status, body, headers) = self.script.lock().unwrap().pop_front().expect("script");
            let mut response = http::Response::new(ResponseBody::from_bytes(body));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            Ok(response)
        }

        fn reports_progress(&self) -> bool {
            false
        }
    }

    fn client(script: Vec<Answer>, credentials: Credentials) -> (Client, Arc<Scripted>) {
        let transport = Arc::new(Scripted {
            script: Mutex::new(script.into()),
            seen: Mutex::default(),
        });
        let client = Client::builder()
            .endpoint("http://127.0.0.1:9")
            .unwrap()
            .credentials(credentials)
            .region("cn-hangzhou")
            .transport(transport.clone())
            .retry(
                RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(2)),
            )
            .build()
            .unwrap();
        (client, transport)
    }

    #[tokio::test]
    async fn a_success_answer_that_is_not_the_document_is_a_malformed_response_naming_the_request()
    {
        let (client, transport) = client(
            vec![(
                200,
                "<Other/>",
                vec![(headers::REQUEST_ID, "REQ-BAD".into())],
            )],
            Credentials::new("ak", "sk"),
        );
        let err = client
            .initiate_multipart_upload("b", "k", &ObjectOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
        assert_eq!(err.api(), Some(Api::InitiateMultipartUpload));
        assert_eq!(err.key(), Some("k"));
        assert!(err.to_string().contains("REQ-BAD"), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(transport.seen.lock().unwrap().len(), 1);
    }

    /// A sink for formatted tracing output.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn request_tracing_names_the_request_and_never_a_credential_or_signature() {
        const SECRET: &str = "SECRET-9f8e7d6c5b4a";
        const TOKEN: &str = "STS-TOKEN-0a1b2c3d4e5f";
        let data = Bytes::from_static(b"part three");
        let md5 = checksum::md5(&data);
        let stored = vec![
            ("etag", etag::part_etag(&md5)),
            (headers::HASH_CRC64ECMA, checksum::crc64(&data).to_string()),
            (headers::REQUEST_ID, "REQ-OK".to_owned()),
        ];
        let (client, transport) = client(
            vec![
                (
                    503,
                    "<Error><Code>ServiceUnavailable</Code><Message>busy</Message><RequestId>REQ-BUSY</RequestId><HostId>h</HostId></Error>",
                    vec![],
                ),
                (200, "", stored),
            ],
            Credentials::new("ak", SECRET).with_security_token(TOKEN),
        );
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        client
            .upload_part("b", "k", "UP-1", 3, PartBody::new(data))
            .await
            .unwrap();
        drop(guard);

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        for expected in [
            "oss_request",
            "UploadPart",
            "UP-1",
            "part=3",
            "attempt=1",
            "attempt=2",
            "status=503",
            "REQ-BUSY",
            "REQ-OK",
            "elapsed_ms",
            "retrying",
            "delay",
        ] {
            assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
        }
        let seen = transport.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let mut secrets = vec![SECRET.to_owned(), TOKEN.to_owned()];
        for request in seen.iter() {
            let authorization = request[http::header::AUTHORIZATION].to_str().unwrap();
            let signature = authorization.rsplit("Signature=").next().unwrap();
            assert!(signature.len() >= 32, "{authorization}");
            secrets.push(authorization.to_owned());
            secrets.push(signature.to_owned());
        }
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{secret:?} is in the log:\n{log}"
            );
        }
        assert!(!log.to_ascii_lowercase().contains("authorization"), "{log}");
        assert!(!log.contains("security-token"), "{log}");
    }

    /// A page body for the script, which holds `'static` text.
    fn leak(text: String) -> &'static str {
        Box::leak(text.into_boxed_str())
    }

    /// A ListObjects page of one object, `k{n}`, that says more follow.
    fn endless_objects_page(n: usize) -> Answer {
        let body = leak(format!(
            "<ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated><NextMarker>k{n:05}</NextMarker>\
             <Contents><Key>k{n:05}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"E\"</ETag>\
             <Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass></Contents></ListBucketResult>"
        ));
        (200, body, vec![])
    }

    /// A ListMultipartUploads page of one upload of `k{n}` that says more follow.
    fn endless_uploads_page(n: usize) -> Answer {
        let body = leak(format!(
            "<ListMultipartUploadsResult><Bucket>b</Bucket><NextKeyMarker>k{n:05}</NextKeyMarker>\
             <NextUploadIdMarker>U</NextUploadIdMarker><IsTruncated>true</IsTruncated>\
             <Upload><Key>k{n:05}</Key><UploadId>U</UploadId><Initiated>2024-01-01T00:00:00.000Z</Initiated></Upload>\
             </ListMultipartUploadsResult>"
        ));
        (200, body, vec![])
    }

    #[tokio::test]
    async fn a_listing_that_never_ends_stops_at_its_page_cap() {
        let caps = ListCaps {
            entries: 100,
            pages: 3,
        };
        let (listing, transport) = client(
            (1..=5).map(endless_objects_page).collect(),
            Credentials::new("ak", "sk"),
        );
        let err = listing
            .list_objects_within("b", "", caps)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
        assert_eq!(err.api(), Some(Api::ListObjects));
        assert!(err.to_string().contains("after 3 pages"), "{err}");
        assert_eq!(transport.seen.lock().unwrap().len(), 3);

        let (listing, transport) = client(
            (1..=5).map(endless_uploads_page).collect(),
            Credentials::new("ak", "sk"),
        );
        let err = listing
            .list_multipart_uploads_within("b", None, caps)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
        assert_eq!(err.api(), Some(Api::ListMultipartUploads));
        assert!(err.to_string().contains("after 3 pages"), "{err}");
        assert_eq!(transport.seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_listing_that_never_ends_stops_at_its_entry_cap() {
        let caps = ListCaps {
            entries: 2,
            pages: 100,
        };
        let (listing, transport) = client(
            (1..=5).map(endless_objects_page).collect(),
            Credentials::new("ak", "sk"),
        );
        let err = listing
            .list_objects_within("b", "", caps)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
        assert!(err.to_string().contains("more than 2 objects"), "{err}");
        assert_eq!(transport.seen.lock().unwrap().len(), 3);

        let (listing, _) = client(
            (1..=5).map(endless_uploads_page).collect(),
            Credentials::new("ak", "sk"),
        );
        let err = listing
            .list_multipart_uploads_within("b", None, caps)
            .await
            .unwrap_err();
        assert_eq!(err.api(), Some(Api::ListMultipartUploads));
        assert!(err.to_string().contains("more than 2 uploads"), "{err}");
    }

    #[test]
    fn region_is_read_from_oss_endpoints() {
        assert_eq!(
            region_of("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            region_of("bucket.oss-us-west-1-internal.aliyuncs.com:80").as_deref(),
            Some("us-west-1")
        );
        assert_eq!(region_of("127.0.0.1:9000"), None);
    }
}
