//! The low-level OSS client the engine is built on: one method per API, each one request (retried by
//! the retry layer), with the integrity checks a single request can make.
//!
//! Use it directly to list or abort open uploads, inspect an object, or read it back.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use ossup_proto::xml::{
    CompleteMultipartUpload, CompleteMultipartUploadResult, CompletePart,
    InitiateMultipartUploadResult, ListMultipartUploadsResult, ListPartsResult, ListedPart,
    ListedUpload, from_xml, to_xml,
};
use ossup_proto::{Api, ErrorResponse, checksum, etag, headers, limits};
use ossup_sign::{CredentialsProvider, Signer, V4Signer};

use crate::ResponseBody;
use crate::callback::{Callback, CallbackResult};
use crate::error::ServiceError;
use crate::retry::{BodyCheck, ERROR_BODY_LIMIT, ReadBody, Retry, RetryConfig, RetryObserver};
use crate::signing::{Clock, OssResource, Signing};
use crate::{Endpoint, Error, ObjectOptions, Transport};

/// The most bytes of a success document (ListParts and the like) read into memory.
const DOCUMENT_LIMIT: usize = 16 << 20;
/// The most bytes of a callback server's reply read into memory (OSS passes on at most 3 MB).
const CALLBACK_REPLY_LIMIT: usize = 4 << 20;

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
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("signer", &self.signer)
            .field("transport", &self.transport)
            .field("retry", &self.retry)
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
    /// temporary ones) or any [`CredentialsProvider`].
    pub fn credentials(mut self, credentials: impl CredentialsProvider + 'static) -> Self {
        self.credentials = Some(Arc::new(credentials));
        self
    }

    /// The credentials, as a shared provider.
    pub fn credentials_provider(mut self, credentials: Arc<dyn CredentialsProvider>) -> Self {
        self.credentials = Some(credentials);
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
        let clock = Clock::new();
        let signed = Signing::new(transport, signer, credentials, clock.clone());
        let retried = Retry::new(signed, self.retry).with_clock(clock.clone());
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

/// The region of `oss-REGION[-internal].aliyuncs.com`.
fn region_of(authority: &str) -> Option<String> {
    let host = authority.split(':').next()?;
    let first = host.strip_suffix(".aliyuncs.com")?.split('.').next_back()?;
    let region = first.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    (!region.is_empty()).then(|| region.to_owned())
}

/// A part's bytes with the checksums to send and verify.
#[derive(Debug, Clone)]
pub struct PartBody {
    /// The bytes.
    pub data: Bytes,
    /// The MD5 of the bytes: sent as `Content-MD5` and checked against the returned ETag. `None` in
    /// CRC-64-only mode.
    pub md5: Option<[u8; 16]>,
    /// The CRC-64/XZ of the bytes, checked against `x-oss-hash-crc64ecma`.
    pub crc64: Option<u64>,
}

impl PartBody {
    /// A body with both checksums computed from `data`.
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            md5: Some(checksum::md5(&data)),
            crc64: Some(checksum::crc64(&data)),
            data,
        }
    }

    /// A body whose checksums the caller computed (or chose not to).
    pub fn with_checksums(data: Bytes, md5: Option<[u8; 16]>, crc64: Option<u64>) -> Self {
        Self { data, md5, crc64 }
    }
}

/// What UploadPart or PutObject answered, after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    /// The ETag, as the server sent it.
    pub etag: String,
    /// The server's CRC-64 of the bytes (`x-oss-hash-crc64ecma`), when it sent one.
    pub crc64: Option<u64>,
    /// The request id.
    pub request_id: String,
    /// What came of the upload callback, when one was sent.
    pub callback: Option<CallbackResult>,
}

/// What CompleteMultipartUpload answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    /// The object's ETag (`"HEX-N"`).
    pub etag: String,
    /// The object's CRC-64 (`x-oss-hash-crc64ecma`), when the server sent it.
    pub crc64: Option<u64>,
    /// The request id.
    pub request_id: String,
    /// What came of the upload callback, when one was sent.
    pub callback: Option<CallbackResult>,
}

/// What HeadObject says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// The size in bytes.
    pub size: u64,
    /// The ETag.
    pub etag: String,
    /// The CRC-64 (`x-oss-hash-crc64ecma`), when the server sent it.
    pub crc64: Option<u64>,
    /// The content type.
    pub content_type: Option<String>,
    /// `Normal`, `Multipart` or `Appendable`.
    pub object_type: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// User metadata (`x-oss-meta-*`), names without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// An object's body being read, with its head.
#[derive(Debug)]
pub struct ObjectBody {
    /// What the response headers say (for a range, `size` is the range's length).
    pub head: ObjectHead,
    /// The bytes, streaming.
    pub body: ResponseBody,
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

/// Builds the [`ServiceError`] of an error answer from its head and (when it had one) its document.
pub(crate) fn service_error(
    parts: &http::response::Parts,
    document: Option<ErrorResponse>,
) -> ServiceError {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = parts.status.as_u16();
    match document {
        Some(doc) => {
            let request_id = if doc.request_id.is_empty() {
                header(headers::REQUEST_ID).unwrap_or_default()
            } else {
                doc.request_id
            };
            let ec = doc.ec.or_else(|| header(headers::ERROR_EC));
            ServiceError::new(status, doc.code, doc.message, request_id, doc.host_id).with_ec(ec)
        }
        None => ServiceError::new(
            status,
            "",
            parts.status.canonical_reason().unwrap_or("error"),
            header(headers::REQUEST_ID).unwrap_or_default(),
            "",
        )
        .with_ec(header(headers::ERROR_EC)),
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn crc_header(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    match header_str(headers, headers::HASH_CRC64ECMA) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::malformed_response(format!(
                "{} header {text:?} is not a decimal u64",
                headers::HASH_CRC64ECMA
            ))
        }),
    }
}

fn parse_doc<T: serde::de::DeserializeOwned>(
    document: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::malformed_response(format!("{document} response is not UTF-8")))?;
    from_xml(document, text).map_err(|e| Error::malformed_response(e.to_string()))
}

/// The retry layer's check of a `document` answer: it must parse; one that does not and lacks its
/// end (cut short on the way, though the connection closed cleanly) is worth asking for again.
fn document_check<T: serde::de::DeserializeOwned + 'static>(document: &'static str) -> BodyCheck {
    std::sync::Arc::new(move |body: &[u8]| {
        let err = match parse_doc::<T>(document, body) {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if is_cut_short(body) {
            Err(Error::malformed_response(format!(
                "the {document} answer was cut short after {} bytes ({})",
                body.len(),
                err.message()
            ))
            .set_retryable(true))
        } else {
            Err(err)
        }
    })
}

/// Whether an XML document lacks its end: its root element is neither closed (`</Root>` last) nor
/// empty (`<Root/>`). Every complete OSS document ends so; a body cut short almost never does.
fn is_cut_short(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        // Cut inside a multi-byte character, or not text at all; only the former ends mid-way.
        return std::str::from_utf8(&body[..body.len().saturating_sub(3)]).is_ok();
    };
    let text = text.trim_end();
    let mut rest = text;
    // The root element: the first tag that is not a declaration, comment or processing instruction.
    let root = loop {
        let Some(start) = rest.find('<') else {
            return true;
        };
        rest = &rest[start + 1..];
        if !(rest.starts_with('?') || rest.starts_with('!')) {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(rest.len());
            break &rest[..end];
        }
    };
    if root.is_empty() {
        return true;
    }
    let closed = text
        .strip_suffix('>')
        .and_then(|t| t.strip_suffix(root))
        .and_then(|t| t.trim_end().strip_suffix("</"))
        .is_some();
    let empty_root = {
        let after_name = &rest[root.len()..];
        after_name.find('>').is_some_and(|i| {
            after_name[..i].ends_with('/') && after_name[i + 1..].trim().is_empty()
        })
    };
    !(closed || empty_root)
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
        let sent_at = std::time::Instant::now();
        let answer = self.inner.transport.send(request).await;
        let elapsed_ms = sent_at.elapsed().as_millis() as u64;
        let response = match answer {
            Ok(response) => {
                tracing::debug!(api = ?op.api, bucket = op.bucket, key = op.key, part = op.part, status = response.status().as_u16(), elapsed_ms, "answered");
                response
            }
            Err(e) => {
                tracing::debug!(api = ?op.api, bucket = op.bucket, key = op.key, part = op.part, elapsed_ms, error = %e, "failed");
                return Err(op.context(e));
            }
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let body = body.collect(ERROR_BODY_LIMIT).await.unwrap_or_default();
        let document = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| ErrorResponse::from_xml(text).ok());
        Err(op.context(Error::service(service_error(&parts, document))))
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
        let doc = parse_doc(document, &body).map_err(|e| op.context(e))?;
        Ok((parts.headers, doc))
    }

    /// InitiateMultipartUpload: starts an upload of `key` with `options`; returns its upload id.
    pub async fn initiate_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &ObjectOptions,
    ) -> Result<String, Error> {
        let mut op = Op::new(
            Api::InitiateMultipartUpload,
            Method::POST,
            bucket,
            Some(key),
        )
        .query("uploads", "");
        options.apply(&mut op.headers).map_err(|e| op.context(e))?;
        let (_, doc) = self
            .execute_document::<InitiateMultipartUploadResult>(
                &mut op,
                "InitiateMultipartUploadResult",
            )
            .await?;
        if doc.upload_id.is_empty() {
            return Err(op.context(Error::malformed_response(
                "InitiateMultipartUploadResult has an empty UploadId",
            )));
        }
        Ok(doc.upload_id)
    }

    /// UploadPart: sends part `number`, then checks the answer against `body`'s checksums: the ETag
    /// against the MD5 (sent as `Content-MD5`), `x-oss-hash-crc64ecma` against the CRC-64.
    ///
    /// Without an MD5 the CRC-64 must be returned and match; a mismatch of either is an
    /// [`ErrorKind::Integrity`](crate::ErrorKind::Integrity) error.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: PartBody,
    ) -> Result<StoredBody, Error> {
        let mut op = Op::new(Api::UploadPart, Method::PUT, bucket, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id);
        op.part = Some(number);
        op.upload_id = Some(upload_id);
        if !(limits::MIN_PART_NUMBER..=limits::MAX_PART_NUMBER).contains(&number) {
            return Err(op.context(Error::config(format!(
                "part number {number} is outside 1..=10000"
            ))));
        }
        self.send_body(op, body, false).await
    }

    /// PutObject: uploads `body` as the whole object, with the same checks as
    /// [`upload_part`](Self::upload_part).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
    ) -> Result<StoredBody, Error> {
        self.put_object_inner(bucket, key, body, options, None)
            .await
    }

    /// PutObject with an upload callback: as [`put_object`](Self::put_object), and the answer's
    /// [`callback`](StoredBody::callback) says what came of the callback. A `203 CallbackFailed`
    /// answer is not an error here: the object is stored (and checked like any other), only the
    /// callback failed.
    pub async fn put_object_with_callback(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
        callback: &Callback,
    ) -> Result<StoredBody, Error> {
        self.put_object_inner(bucket, key, body, options, Some(callback))
            .await
    }

    async fn put_object_inner(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
        callback: Option<&Callback>,
    ) -> Result<StoredBody, Error> {
        let mut op = Op::new(Api::PutObject, Method::PUT, bucket, Some(key));
        options.apply(&mut op.headers).map_err(|e| op.context(e))?;
        if let Some(callback) = callback {
            add_callback(&mut op, callback)?;
        }
        self.send_body(op, body, callback.is_some()).await
    }

    async fn send_body(
        &self,
        mut op: Op<'_>,
        body: PartBody,
        with_callback: bool,
    ) -> Result<StoredBody, Error> {
        if let Some(md5) = &body.md5 {
            op.headers.insert(
                "content-md5",
                HeaderValue::from_str(&checksum::content_md5(md5))
                    .expect("base64 is a header value"),
            );
        }
        op.body = body.data;
        let response = self.execute(&op).await?;
        let headers = response.headers();
        let mut etag = header_str(headers, "etag").unwrap_or_default().to_owned();
        let mut crc64 = crc_header(headers).map_err(|e| op.context(e))?;
        let request_id = header_str(headers, headers::REQUEST_ID)
            .unwrap_or_default()
            .to_owned();
        let callback = if with_callback {
            let result = callback_result(response).await.map_err(|e| op.context(e))?;
            if etag.is_empty() {
                // A failed callback's answer need not carry the object's headers: ask for them.
                if let Some(head) = self
                    .head_object(op.bucket, op.key.unwrap_or_default())
                    .await?
                {
                    etag = head.etag;
                    crc64 = crc64.or(head.crc64);
                }
            }
            Some(result)
        } else {
            drop(response);
            None
        };
        let verified_md5 = match &body.md5 {
            Some(md5) => {
                if !etag::same(&etag, &etag::part_etag(md5)) {
                    return Err(op.context(Error::integrity(format!(
                        "the server's ETag {etag} is not the MD5 {} of the bytes sent (request {request_id})",
                        hex::encode_upper(md5)
                    ))));
                }
                true
            }
            None => false,
        };
        match (body.crc64, crc64) {
            (Some(expected), Some(got)) if expected != got => {
                return Err(op.context(Error::integrity(format!(
                    "the server's CRC-64 {got} is not the CRC-64 {expected} of the bytes sent (request {request_id})"
                ))));
            }
            (Some(_), None) if !verified_md5 => {
                return Err(op.context(Error::integrity(format!(
                    "the server returned no {} and no MD5 was sent, so the bytes stored cannot be verified (request {request_id})",
                    headers::HASH_CRC64ECMA
                ))));
            }
            _ => {}
        }
        Ok(StoredBody {
            etag,
            crc64,
            request_id,
            callback,
        })
    }

    /// One page of ListParts, starting after part `marker` (0 for the first page).
    pub async fn list_parts_page(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: Option<u32>,
    ) -> Result<ListPartsResult, Error> {
        let mut op =
            Op::new(Api::ListParts, Method::GET, bucket, Some(key)).query("uploadId", upload_id);
        if let Some(max) = max_parts {
            op = op.query("max-parts", max.min(limits::MAX_LIST_PARTS).to_string());
        }
        if marker > 0 {
            op = op.query("part-number-marker", marker.to_string());
        }
        op.upload_id = Some(upload_id);
        let (_, doc) = self.execute_document(&mut op, "ListPartsResult").await?;
        Ok(doc)
    }

    /// ListParts, every page: all the parts the server holds for the upload, ascending.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<ListedPart>, Error> {
        let mut parts: Vec<ListedPart> = Vec::new();
        let mut marker = 0;
        loop {
            let page = self
                .list_parts_page(bucket, key, upload_id, marker, None)
                .await?;
            parts.extend(page.parts);
            if !page.is_truncated {
                break;
            }
            let next = page.next_part_number_marker;
            if next <= marker {
                return Err(Error::malformed_response(format!(
                    "ListParts is truncated but its next marker {next} does not advance past {marker}"
                ))
                .with_api(Api::ListParts)
                .with_object(bucket, key)
                .with_upload_id(upload_id));
            }
            marker = next;
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// CompleteMultipartUpload with the given parts (ascending by number).
    ///
    /// `forbid_overwrite` sends `x-oss-forbid-overwrite: true`.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
    ) -> Result<CompletedUpload, Error> {
        self.complete_inner(bucket, key, upload_id, parts, forbid_overwrite, None)
            .await
    }

    /// CompleteMultipartUpload with an upload callback: the answer carries the callback server's
    /// reply instead of the result document, and [`callback`](CompletedUpload::callback) says what
    /// came of it. A `203 CallbackFailed` answer is not an error here: the upload is completed, only
    /// the callback failed.
    pub async fn complete_multipart_upload_with_callback(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
        callback: &Callback,
    ) -> Result<CompletedUpload, Error> {
        self.complete_inner(
            bucket,
            key,
            upload_id,
            parts,
            forbid_overwrite,
            Some(callback),
        )
        .await
    }

    async fn complete_inner(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
        callback: Option<&Callback>,
    ) -> Result<CompletedUpload, Error> {
        let mut op = Op::new(
            Api::CompleteMultipartUpload,
            Method::POST,
            bucket,
            Some(key),
        )
        .query("uploadId", upload_id);
        op.upload_id = Some(upload_id);
        op.body = Bytes::from(to_xml(&CompleteMultipartUpload {
            parts: parts.to_vec(),
        }));
        op.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if forbid_overwrite {
            op.headers
                .insert(headers::FORBID_OVERWRITE, HeaderValue::from_static("true"));
        }
        if let Some(callback) = callback {
            add_callback(&mut op, callback)?;
            // The callback server's reply, read within the attempt: one cut short is asked for again
            // (the retry then finds the upload completed, which the engine settles by HeadObject).
            op.read_body = Some(ReadBody {
                limit: CALLBACK_REPLY_LIMIT,
                check: None,
            });
            let response = self.execute(&op).await?;
            let headers = response.headers().clone();
            let result = callback_result(response).await.map_err(|e| op.context(e))?;
            let mut crc64 = crc_header(&headers).map_err(|e| op.context(e))?;
            let etag = match header_str(&headers, "etag") {
                Some(etag) => etag.to_owned(),
                None => {
                    // The answer is the callback's, not the result document: ask for the ETag.
                    let head = self.head_object(bucket, key).await?.ok_or_else(|| {
                        op.context(Error::malformed_response(
                            "Complete with a callback answered without an ETag, and the object is not there",
                        ))
                    })?;
                    crc64 = crc64.or(head.crc64);
                    head.etag
                }
            };
            return Ok(CompletedUpload {
                etag,
                crc64,
                request_id: header_str(&headers, headers::REQUEST_ID)
                    .unwrap_or_default()
                    .to_owned(),
                callback: Some(result),
            });
        }
        let (headers, doc) = self
            .execute_document::<CompleteMultipartUploadResult>(
                &mut op,
                "CompleteMultipartUploadResult",
            )
            .await?;
        let crc64 = crc_header(&headers).map_err(|e| op.context(e))?;
        let etag = header_str(&headers, "etag")
            .map(str::to_owned)
            .unwrap_or(doc.etag);
        Ok(CompletedUpload {
            etag,
            crc64,
            request_id: header_str(&headers, headers::REQUEST_ID)
                .unwrap_or_default()
                .to_owned(),
            callback: None,
        })
    }

    /// AbortMultipartUpload: drops the upload and its parts.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), Error> {
        let mut op = Op::new(Api::AbortMultipartUpload, Method::DELETE, bucket, Some(key))
            .query("uploadId", upload_id);
        op.upload_id = Some(upload_id);
        self.execute(&op).await?;
        Ok(())
    }

    /// ListMultipartUploads, every page: the open uploads of `bucket` (under `prefix`).
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<ListedUpload>, Error> {
        let mut uploads = Vec::new();
        let mut key_marker = String::new();
        let mut id_marker = String::new();
        loop {
            let mut op =
                Op::new(Api::ListMultipartUploads, Method::GET, bucket, None).query("uploads", "");
            if let Some(prefix) = prefix {
                op = op.query("prefix", prefix);
            }
            if !key_marker.is_empty() {
                op = op.query("key-marker", key_marker.clone());
            }
            if !id_marker.is_empty() {
                op = op.query("upload-id-marker", id_marker.clone());
            }
            let (_, page) = self
                .execute_document::<ListMultipartUploadsResult>(
                    &mut op,
                    "ListMultipartUploadsResult",
                )
                .await?;
            uploads.extend(page.uploads);
            if !page.is_truncated {
                break;
            }
            if page.next_key_marker == key_marker && page.next_upload_id_marker == id_marker {
                return Err(op.context(Error::malformed_response(
                    "ListMultipartUploads is truncated but its next markers do not advance",
                )));
            }
            key_marker = page.next_key_marker;
            id_marker = page.next_upload_id_marker;
        }
        Ok(uploads)
    }

    /// HeadObject: the object's size, ETag and CRC-64, or `None` when there is no such object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, Error> {
        let op = Op::new(Api::HeadObject, Method::HEAD, bucket, Some(key));
        match self.execute(&op).await {
            Ok(response) => object_head(response.headers(), None)
                .map(Some)
                .map_err(|e| op.context(e)),
            Err(e) if e.service_error().is_some_and(|s| s.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GetObject of the whole object or of `range` (byte offsets, end exclusive).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody, Error> {
        let mut op = Op::new(Api::GetObject, Method::GET, bucket, Some(key));
        if let Some(range) = &range {
            if range.start >= range.end {
                return Err(op.context(Error::config(format!(
                    "range {range:?} is empty; give start < end"
                ))));
            }
            let value = format!("bytes={}-{}", range.start, range.end - 1);
            op.headers.insert(
                http::header::RANGE,
                HeaderValue::from_str(&value).expect("digits are a header value"),
            );
        }
        let response = self.execute(&op).await?;
        let (parts, body) = response.into_parts();
        let head = object_head(&parts.headers, range).map_err(|e| op.context(e))?;
        Ok(ObjectBody { head, body })
    }

    /// DeleteObject.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let op = Op::new(Api::DeleteObject, Method::DELETE, bucket, Some(key));
        self.execute(&op).await?;
        Ok(())
    }
}

/// Adds `x-oss-callback` (and `x-oss-callback-var`) to a request.
fn add_callback(op: &mut Op<'_>, callback: &Callback) -> Result<(), Error> {
    for (name, value) in callback.headers().map_err(|e| op.context(e))? {
        op.headers.insert(name, value);
    }
    Ok(())
}

/// What an answer to a request with a callback says of it: `203` is OSS's `CallbackFailed` (the
/// object stored, the callback not); any other success carries the callback server's reply.
async fn callback_result(response: http::Response<ResponseBody>) -> Result<CallbackResult, Error> {
    let (parts, body) = response.into_parts();
    if parts.status == http::StatusCode::NON_AUTHORITATIVE_INFORMATION {
        let body = body.collect(ERROR_BODY_LIMIT).await.unwrap_or_default();
        let document = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| ErrorResponse::from_xml(text).ok());
        return Ok(CallbackResult::Failed {
            error: service_error(&parts, document),
        });
    }
    let body = body.collect(CALLBACK_REPLY_LIMIT).await?;
    Ok(CallbackResult::Replied {
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn object_head(headers: &HeaderMap, range: Option<Range<u64>>) -> Result<ObjectHead, Error> {
    let size = match header_str(headers, "content-length") {
        Some(len) => len.trim().parse().map_err(|_| {
            Error::malformed_response(format!("Content-Length {len:?} is not a number"))
        })?,
        None => range.map(|r| r.end - r.start).unwrap_or(0),
    };
    let metadata = headers
        .iter()
        .filter_map(|(name, value)| {
            let meta = name.as_str().strip_prefix(headers::META_PREFIX)?;
            Some((meta.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Ok(ObjectHead {
        size,
        etag: header_str(headers, "etag").unwrap_or_default().to_owned(),
        crc64: crc_header(headers)?,
        content_type: header_str(headers, "content-type").map(str::to_owned),
        object_type: header_str(headers, headers::OBJECT_TYPE).map(str::to_owned),
        last_modified: header_str(headers, "last-modified").map(str::to_owned),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const INITIATED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>\n";

    #[test]
    fn a_document_is_cut_short_when_its_root_is_not_closed() {
        assert!(!is_cut_short(INITIATED.as_bytes()));
        assert!(!is_cut_short(b"<Empty/>"));
        assert!(!is_cut_short(b"<Other><A>1</A></Other>"));
        for len in 0..INITIATED.trim_end().len() {
            assert!(is_cut_short(&INITIATED.as_bytes()[..len]), "{len} bytes");
        }
    }

    #[test]
    fn the_document_check_retries_a_cut_document_but_not_an_unexpected_one() {
        let check =
            document_check::<InitiateMultipartUploadResult>("InitiateMultipartUploadResult");
        assert!(check(INITIATED.as_bytes()).is_ok());
        let cut = check(&INITIATED.as_bytes()[..INITIATED.len() - 20]).unwrap_err();
        assert!(cut.is_retryable(), "{cut}");
        assert!(cut.to_string().contains("cut short"), "{cut}");
        let other = check(b"<Other><A>1</A></Other>").unwrap_err();
        assert!(!other.is_retryable(), "{other}");
    }
}
