//! A small signed HTTP client that can say anything on the wire.
//!
//! The upload engine's transport refuses to send malformed requests; conformance cases need to send
//! exactly those (a wrong `Content-MD5`, a garbage `Authorization`, a stale date, a part number of 0),
//! so this client signs with [`ossup_sign`] and then lets a case replace or drop any header, address the
//! bucket either way, encode the key either way, or write the path itself.
//!
//! ```
//! use ossup_conformance::client::{Addressing, Endpoint, KeyEncoding, Request};
//!
//! let endpoint = Endpoint::parse("http://127.0.0.1:9000").unwrap();
//! let request = Request::put(Some("bucket"), Some("dir/naïve key.txt"))
//!     .query("partNumber", "1")
//!     .query("uploadId", "U1");
//! let target = request.wire_target(&endpoint, "localhost:9000", Addressing::VirtualHosted, KeyEncoding::KeepSlash);
//! assert_eq!(target.host, "bucket.localhost:9000");
//! assert_eq!(target.path_and_query, "/dir/na%C3%AFve%20key.txt?partNumber=1&uploadId=U1");
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ossup_proto::headers::REQUEST_ID;
use ossup_sign::{Credentials, RequestParts, Signer, V1Signer, V4Signer, presign_v1, presign_v4};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters (`A-Za-z0-9-._~`) is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// As [`UNRESERVED`], keeping `/` as the path separator.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// How long one request may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be made or its answer not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint is not an `http://HOST[:PORT]` URL.
    #[error(
        "invalid endpoint {endpoint:?}: {reason}; give it as http://HOST[:PORT] (for OSS, e.g. http://oss-cn-hangzhou.aliyuncs.com)"
    )]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be signed.
    #[error("cannot sign {what}: {source}")]
    Sign {
        /// The request, as `METHOD path`.
        what: String,
        /// The signer's error.
        source: ossup_sign::SignError,
    },
    /// The request's URI or a header could not be built.
    #[error("cannot build {what}: {reason}")]
    Build {
        /// The request, as `METHOD path`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection failed or the server closed it without an answer.
    #[error("{what}: no response: {reason}")]
    Transport {
        /// The request, as `METHOD path`.
        what: String,
        /// The transport's error, with its sources.
        reason: String,
    },
    /// The server did not answer within the request timeout.
    #[error("{what}: no response within {0:?}", REQUEST_TIMEOUT)]
    Timeout {
        /// The request, as `METHOD path`.
        what: String,
    },
}

/// Where the server is: scheme, host and port of its service endpoint.
///
/// ```
/// let endpoint = ossup_conformance::client::Endpoint::parse("http://127.0.0.1:8080/").unwrap();
/// assert_eq!(endpoint.authority(), "127.0.0.1:8080");
/// assert!(ossup_conformance::client::Endpoint::parse("https://oss.example.com").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: Option<u16>,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/]`. Only plain HTTP is spoken; OSS serves its endpoints over HTTP too.
    pub fn parse(endpoint: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = endpoint.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "https is not supported by this suite; use the http:// form of the endpoint",
                ));
            }
            _ => return Err(invalid("the scheme must be http://")),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("the endpoint must not have a path or a query"));
        }
        let host = uri.host().ok_or_else(|| invalid("no host"))?.to_owned();
        Ok(Self {
            host,
            port: uri.port_u16(),
        })
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `HOST[:PORT]`, as a `Host` header and a URL authority write it.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The socket address to connect to, `HOST:PORT` with the HTTP default port filled in.
    pub fn socket_address(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(80))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

/// How the bucket is named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `http://ENDPOINT/BUCKET/KEY`, as the SDKs do for IP endpoints.
    PathStyle,
    /// `http://BUCKET.ENDPOINT/KEY`: the bucket is the first label of the `Host` header.
    VirtualHosted,
}

/// How the object key is written in the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// Every byte but `A-Za-z0-9-._~/` percent-encoded; `/` stays a path separator (the Go and Java SDKs).
    KeepSlash,
    /// `/` encoded as `%2F` as well (oss2).
    EncodeSlash,
}

/// How a request is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Signature V1 (HMAC-SHA1).
    V1,
    /// Signature V4 (OSS4-HMAC-SHA256) for the client's region.
    V4,
    /// No signature at all: no `Authorization`, no date added.
    Unsigned,
    /// A V1 presigned URL (`OSSAccessKeyId`, `Expires`, `Signature` in the query) valid until this
    /// time.
    PresignedV1(SystemTime),
    /// A V4 presigned URL (`x-oss-credential`, `x-oss-date`, `x-oss-expires`, `x-oss-signature`)
    /// for the client's region, made when the request is signed and valid this long.
    PresignedV4(Duration),
}

/// One request, before signing: what to send and how.
///
/// Headers given with [`header`](Self::header) are signed; those given with
/// [`override_header`](Self::override_header) or [`remove_header`](Self::remove_header) are changed after
/// signing, so a case can send a request whose signature does not cover what it carries.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    bucket: Option<String>,
    key: Option<String>,
    query: Vec<(String, String)>,
    equals_for_empty_values: bool,
    headers: HeaderMap,
    body: Bytes,
    addressing: Option<Addressing>,
    key_encoding: Option<KeyEncoding>,
    auth: Option<Auth>,
    credentials: Option<Credentials>,
    signed_at: Option<SystemTime>,
    after_signing: Vec<(HeaderName, Option<HeaderValue>)>,
    raw_path_and_query: Option<String>,
}

/// Where a request goes on the wire: the `Host` header and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireTarget {
    /// The `Host` header.
    pub host: String,
    /// The origin-form request target, `/path?query`.
    pub path_and_query: String,
}

impl Request {
    /// A request with no query, headers or body.
    pub fn new(method: Method, bucket: Option<&str>, key: Option<&str>) -> Self {
        Self {
            method,
            bucket: bucket.map(str::to_owned),
            key: key.map(str::to_owned),
            query: Vec::new(),
            equals_for_empty_values: false,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            addressing: None,
            key_encoding: None,
            auth: None,
            credentials: None,
            signed_at: None,
            after_signing: Vec::new(),
            raw_path_and_query: None,
        }
    }

    /// A `GET`.
    pub fn get(bucket: Option<&str>, key: Option<&str>) -> Self {
        Self::new(Method::GET, bucket, key)
    }

    /// A `PUT`.
    pub fn put(bucket: Option<&str>, key: Option<&str>) -> Self {
        Self::new(Method::PUT, bucket, key)
    }

    /// A `POST`.
    pub fn post(bucket: Option<&str>, key: Option<&str>) -> Self {
        Self::new(Method::POST, bucket, key)
    }

    /// A `DELETE`.
    pub fn delete(bucket: Option<&str>, key: Option<&str>) -> Self {
        Self::new(Method::DELETE, bucket, key)
    }

    /// A `HEAD`.
    pub fn head(bucket: Option<&str>, key: Option<&str>) -> Self {
        Self::new(Method::HEAD, bucket, key)
    }

    /// Adds a query parameter (decoded; it is encoded on the wire). `""` makes a bare parameter.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Writes parameters with empty values as `name=` instead of bare `name`, as oss2 does (`?uploads=`).
    pub fn empty_values_with_equals(mut self) -> Self {
        self.equals_for_empty_values = true;
        self
    }

    /// Adds a header that the signature covers (when its kind is signed at all).
    ///
    /// # Panics
    /// When `name` or `value` cannot be an HTTP header: cases pass literals.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(header_name(name), header_value(value));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Addresses the bucket this way instead of the client's default.
    pub fn addressing(mut self, addressing: Addressing) -> Self {
        self.addressing = Some(addressing);
        self
    }

    /// Encodes the key this way instead of the client's default.
    pub fn key_encoding(mut self, encoding: KeyEncoding) -> Self {
        self.key_encoding = Some(encoding);
        self
    }

    /// Authenticates this way instead of the client's default.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Signs with these credentials instead of the client's.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Signs as of this time instead of now (a stale or future date).
    pub fn signed_at(mut self, time: SystemTime) -> Self {
        self.signed_at = Some(time);
        self
    }

    /// Sets a header after signing, replacing any value the signer or the case set.
    ///
    /// # Panics
    /// When `name` or `value` cannot be an HTTP header.
    pub fn override_header(mut self, name: &str, value: &str) -> Self {
        self.after_signing
            .push((header_name(name), Some(header_value(value))));
        self
    }

    /// Removes a header after signing.
    ///
    /// # Panics
    /// When `name` cannot be an HTTP header name.
    pub fn remove_header(mut self, name: &str) -> Self {
        self.after_signing.push((header_name(name), None));
        self
    }

    /// Sends this exact request target (`/path?query`, already encoded) instead of building it from the
    /// bucket, key and query. The signature still covers the logical bucket, key and query.
    pub fn raw_path_and_query(mut self, path_and_query: &str) -> Self {
        self.raw_path_and_query = Some(path_and_query.to_owned());
        self
    }

    /// What a signer signs of this request: method, bucket, key, query and headers.
    fn unsigned_parts(&self) -> RequestParts {
        let mut parts = RequestParts::new(
            self.method.clone(),
            self.bucket.as_deref(),
            self.key.as_deref(),
        );
        parts.query = self.query.clone();
        parts.headers = self.headers.clone();
        parts
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The bucket, when the request names one.
    pub fn bucket_name(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The key, when the request names one.
    pub fn key_name(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The `Host` header and request target of this request, given where the server is.
    ///
    /// `virtual_host_base` is the authority a bucket name is prepended to for virtual-hosted requests
    /// (`bucket.` + base).
    pub fn wire_target(
        &self,
        endpoint: &Endpoint,
        virtual_host_base: &str,
        addressing: Addressing,
        encoding: KeyEncoding,
    ) -> WireTarget {
        let key = self.key.as_deref().map(|k| encode_key(k, encoding));
        let (host, mut path) = match (addressing, self.bucket.as_deref()) {
            (_, None) => (
                endpoint.authority(),
                format!("/{}", key.unwrap_or_default()),
            ),
            (Addressing::PathStyle, Some(bucket)) => (
                endpoint.authority(),
                format!("/{bucket}/{}", key.unwrap_or_default()),
            ),
            (Addressing::VirtualHosted, Some(bucket)) => (
                format!("{bucket}.{virtual_host_base}"),
                format!("/{}", key.unwrap_or_default()),
            ),
        };
        if let Some(raw) = &self.raw_path_and_query {
            return WireTarget {
                host,
                path_and_query: raw.clone(),
            };
        }
        path.push_str(&encode_query(&self.query, self.equals_for_empty_values));
        WireTarget {
            host,
            path_and_query: path,
        }
    }

    /// `METHOD /bucket/key?query` for messages: the logical names, not the wire encoding.
    pub fn describe(&self) -> String {
        let mut out = format!("{} /", self.method);
        if let Some(bucket) = &self.bucket {
            out.push_str(bucket);
            out.push('/');
        }
        if let Some(key) = &self.key {
            out.push_str(key);
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(n, v)| {
                if v.is_empty() {
                    n.clone()
                } else {
                    format!("{n}={v}")
                }
            })
            .collect();
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes())
        .unwrap_or_else(|_| panic!("{name:?} is not a valid HTTP header name"))
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value)
        .unwrap_or_else(|_| panic!("{value:?} is not a valid HTTP header value"))
}

/// A key as it is written in a request path.
///
/// ```
/// use ossup_conformance::client::{encode_key, KeyEncoding};
/// assert_eq!(encode_key("a/b c", KeyEncoding::KeepSlash), "a/b%20c");
/// assert_eq!(encode_key("a/b c", KeyEncoding::EncodeSlash), "a%2Fb%20c");
/// assert_eq!(encode_key("a%2Fb", KeyEncoding::KeepSlash), "a%252Fb");
/// ```
pub fn encode_key(key: &str, encoding: KeyEncoding) -> String {
    let set = match encoding {
        KeyEncoding::KeepSlash => UNRESERVED_AND_SLASH,
        KeyEncoding::EncodeSlash => UNRESERVED,
    };
    utf8_percent_encode(key, set).to_string()
}

/// A query string with its leading `?`, or `""` for no parameters; names and values are encoded.
///
/// ```
/// use ossup_conformance::client::encode_query;
/// let query = vec![("uploads".to_owned(), String::new()), ("prefix".to_owned(), "a/b c".to_owned())];
/// assert_eq!(encode_query(&query, false), "?uploads&prefix=a%2Fb%20c");
/// assert_eq!(encode_query(&query, true), "?uploads=&prefix=a%2Fb%20c");
/// ```
pub fn encode_query(query: &[(String, String)], equals_for_empty_values: bool) -> String {
    let mut out = String::new();
    for (i, (name, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.extend(utf8_percent_encode(name, UNRESERVED));
        if !value.is_empty() || equals_for_empty_values {
            out.push('=');
            out.extend(utf8_percent_encode(value, UNRESERVED));
        }
    }
    out
}

/// A request signed and laid out for the wire: what [`Client::send`] sends, or what a case writes to a
/// socket itself with [`to_http1_bytes`](Self::to_http1_bytes).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `METHOD /bucket/key?query` for messages.
    pub what: String,
    /// The method.
    pub method: Method,
    /// Host header and request target.
    pub target: WireTarget,
    /// Every header to send, `Host` and `Content-Length` included, in order.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// What the signer saw, after signing (its headers are the signed ones).
    pub signed: Option<RequestParts>,
}

impl Prepared {
    /// The request as HTTP/1.1 bytes: request line, headers, blank line, body.
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(
            format!(
                "{} {} HTTP/1.1\r\n",
                self.method, self.target.path_and_query
            )
            .as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// An answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// `METHOD /bucket/key?query` of the request, for messages.
    pub what: String,
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-oss-request-id`, when present.
    pub fn request_id(&self) -> Option<&str> {
        self.header(REQUEST_ID)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The OSS error document of the body, when it is one.
    pub fn error(&self) -> Option<ossup_proto::ErrorResponse> {
        ossup_proto::ErrorResponse::from_xml(std::str::from_utf8(&self.body).ok()?).ok()
    }

    /// `METHOD /bucket/key -> STATUS [Code: message] (request id X)`, for messages.
    pub fn describe(&self) -> String {
        let mut out = format!("{} -> {}", self.what, self.status.as_u16());
        if let Some(err) = self.error() {
            out.push_str(&format!(" {}: {}", err.code, err.message));
        } else if !self.body.is_empty() && self.status.as_u16() >= 300 {
            let text = self.text();
            let shown: String = text.chars().take(200).collect();
            out.push_str(&format!(" body {shown:?}"));
        }
        match self.request_id() {
            Some(id) => out.push_str(&format!(" (request id {id})")),
            None => out.push_str(" (no x-oss-request-id)"),
        }
        out
    }
}

/// How a [`Client`] reaches and authenticates to the server, and its defaults for every request.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The service endpoint.
    pub endpoint: Endpoint,
    /// The authority a bucket name is prepended to for virtual-hosted requests (`bucket.` + this).
    pub virtual_host_base: String,
    /// The credentials requests are signed with.
    pub credentials: Credentials,
    /// The region V4 signatures are scoped to; V4 requests fail to build without it.
    pub region: Option<String>,
    /// The default addressing.
    pub addressing: Addressing,
    /// The default key encoding.
    pub key_encoding: KeyEncoding,
    /// The default authentication.
    pub auth: Auth,
}

impl ClientConfig {
    /// The region a V4 signature of `what` is scoped to, or the error saying it is missing.
    fn v4_region(&self, what: &str) -> Result<&str, ClientError> {
        self.region.as_deref().ok_or_else(|| ClientError::Build {
            what: what.to_owned(),
            reason: "a V4 signature needs a region (set OSS_REGION)".to_owned(),
        })
    }
}

/// A signed HTTP/1.1 client for one endpoint.
///
/// Each request uses a fresh connection, so a case that makes the server close a connection cannot
/// disturb the next one. Every response without `x-oss-request-id` is remembered; see
/// [`responses_without_request_id`](Self::responses_without_request_id).
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    config: Arc<ClientConfig>,
    missing_request_ids: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            http,
            config: Arc::new(config),
            missing_request_ids: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A client with the same configuration and its own record of responses without a request id.
    pub fn fresh(&self) -> Self {
        Self {
            http: self.http.clone(),
            config: self.config.clone(),
            missing_request_ids: Arc::default(),
        }
    }

    /// The responses (as `METHOD path -> STATUS`) that came without `x-oss-request-id`, since this client
    /// was made.
    pub fn responses_without_request_id(&self) -> Vec<String> {
        self.missing_request_ids
            .lock()
            .expect("request id record is never poisoned")
            .clone()
    }

    /// Signs and lays out `request` for the wire, without sending it.
    pub fn prepare(&self, request: &Request) -> Result<Prepared, ClientError> {
        let config = &self.config;
        let what = request.describe();
        let addressing = request.addressing.unwrap_or(config.addressing);
        let encoding = request.key_encoding.unwrap_or(config.key_encoding);
        let auth = request.auth.clone().unwrap_or_else(|| config.auth.clone());
        let credentials = request.credentials.as_ref().unwrap_or(&config.credentials);
        let now = request.signed_at.unwrap_or_else(SystemTime::now);
        // A presigned URL's signature is part of its query, and so of the target.
        let presigned;
        let request = match auth {
            Auth::PresignedV1(_) | Auth::PresignedV4(_) => {
                let mut parts = request.unsigned_parts();
                let signing = match auth {
                    Auth::PresignedV1(expires) => presign_v1(&mut parts, credentials, expires),
                    Auth::PresignedV4(valid) => presign_v4(
                        &mut parts,
                        credentials,
                        config.v4_region(&what)?,
                        now,
                        valid,
                    ),
                    Auth::V1 | Auth::V4 | Auth::Unsigned => unreachable!("matched above"),
                };
                signing.map_err(|source| ClientError::Sign {
                    what: what.clone(),
                    source,
                })?;
                let mut with_signature = request.clone();
                with_signature.query = parts.query;
                presigned = with_signature;
                &presigned
            }
            _ => request,
        };
        let target = request.wire_target(
            &config.endpoint,
            &config.virtual_host_base,
            addressing,
            encoding,
        );

        let mut parts = request.unsigned_parts();
        let signed = match auth {
            Auth::Unsigned | Auth::PresignedV1(_) | Auth::PresignedV4(_) => None,
            Auth::V1 => {
                V1Signer
                    .sign(&mut parts, credentials, now)
                    .map_err(|source| ClientError::Sign {
                        what: what.clone(),
                        source,
                    })?;
                Some(parts.clone())
            }
            Auth::V4 => {
                V4Signer::new(config.v4_region(&what)?)
                    .sign(&mut parts, credentials, now)
                    .map_err(|source| ClientError::Sign {
                        what: what.clone(),
                        source,
                    })?;
                Some(parts.clone())
            }
        };

        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_str(&target.host).map_err(|_| ClientError::Build {
                what: what.clone(),
                reason: format!("{:?} is not a valid Host header", target.host),
            })?,
        );
        for (name, value) in &parts.headers {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
        for (name, value) in &request.after_signing {
            match value {
                Some(value) => {
                    headers.insert(name.clone(), value.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        Ok(Prepared {
            what,
            method: request.method.clone(),
            target,
            headers,
            body: request.body.clone(),
            signed,
        })
    }

    /// Signs and sends `request`, and reads the whole answer.
    pub async fn send(&self, request: Request) -> Result<Response, ClientError> {
        let prepared = self.prepare(&request)?;
        self.send_prepared(prepared).await
    }

    /// Sends a request laid out by [`prepare`](Self::prepare).
    pub async fn send_prepared(&self, prepared: Prepared) -> Result<Response, ClientError> {
        let uri = format!(
            "http://{}{}",
            self.config.endpoint.authority(),
            prepared.target.path_and_query
        );
        let mut builder = http::Request::builder()
            .method(prepared.method.clone())
            .uri(&uri);
        for (name, value) in &prepared.headers {
            builder = builder.header(name, value);
        }
        let hyper_request = builder
            .body(Full::new(prepared.body.clone()))
            .map_err(|e| ClientError::Build {
                what: prepared.what.clone(),
                reason: format!("{uri}: {e}"),
            })?;
        let what = prepared.what.clone();
        let exchange = async {
            let response =
                self.http
                    .request(hyper_request)
                    .await
                    .map_err(|e| ClientError::Transport {
                        what: what.clone(),
                        reason: error_chain(&e),
                    })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Transport {
                    what: what.clone(),
                    reason: format!("reading the body: {}", error_chain(&e)),
                })?
                .to_bytes();
            Ok::<_, ClientError>(Response {
                what: what.clone(),
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout { what: what.clone() })??;
        if response.request_id().is_none() {
            self.missing_request_ids
                .lock()
                .expect("request id record is never poisoned")
                .push(format!("{} -> {}", response.what, response.status.as_u16()));
        }
        Ok(response)
    }

    /// Opens one HTTP/1.1 connection to the endpoint, for cases about what happens on a connection
    /// across several requests.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let address = self.config.endpoint.socket_address();
        let fail = |reason: String| ClientError::Transport {
            what: format!("connect to {address}"),
            reason,
        };
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            driver,
            client: self.clone(),
        })
    }
}

/// One kept-alive HTTP/1.1 connection; see [`Client::connect`].
#[derive(Debug)]
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    client: Client,
}

impl Connection {
    /// Signs and sends `request` on this connection, and reads the whole answer.
    pub async fn send(&mut self, request: Request) -> Result<Response, ClientError> {
        let prepared = self.client.prepare(&request)?;
        let what = prepared.what.clone();
        let mut builder = http::Request::builder()
            .method(prepared.method.clone())
            .uri(&prepared.target.path_and_query);
        for (name, value) in &prepared.headers {
            builder = builder.header(name, value);
        }
        let hyper_request = builder
            .body(Full::new(prepared.body.clone()))
            .map_err(|e| ClientError::Build {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| ClientError::Transport {
                    what: what.clone(),
                    reason: format!("connection not reusable: {}", error_chain(&e)),
                })?;
            let response = self.sender.send_request(hyper_request).await.map_err(|e| {
                ClientError::Transport {
                    what: what.clone(),
                    reason: error_chain(&e),
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Transport {
                    what: what.clone(),
                    reason: format!("reading the body: {}", error_chain(&e)),
                })?
                .to_bytes();
            Ok::<_, ClientError>(Response {
                what: what.clone(),
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout { what })?
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::parse("http://127.0.0.1:9000").unwrap()
    }

    fn target(request: &Request, addressing: Addressing, encoding: KeyEncoding) -> WireTarget {
        request.wire_target(&endpoint(), "localhost:9000", addressing, encoding)
    }

    #[test]
    fn path_style_puts_the_bucket_first_in_the_path() {
        let request = Request::put(Some("bkt"), Some("dir/obj.bin"));
        let wire = target(&request, Addressing::PathStyle, KeyEncoding::KeepSlash);
        assert_eq!(wire.host, "127.0.0.1:9000");
        assert_eq!(wire.path_and_query, "/bkt/dir/obj.bin");
    }

    #[test]
    fn virtual_hosted_style_puts_the_bucket_in_the_host() {
        let request = Request::put(Some("bkt"), Some("dir/obj.bin"));
        let wire = target(&request, Addressing::VirtualHosted, KeyEncoding::KeepSlash);
        assert_eq!(wire.host, "bkt.localhost:9000");
        assert_eq!(wire.path_and_query, "/dir/obj.bin");
    }

    #[test]
    fn bucket_level_requests_end_with_a_slash_in_both_styles() {
        let request = Request::get(Some("bkt"), None).query("uploads", "");
        assert_eq!(
            target(&request, Addressing::PathStyle, KeyEncoding::KeepSlash).path_and_query,
            "/bkt/?uploads"
        );
        assert_eq!(
            target(&request, Addressing::VirtualHosted, KeyEncoding::KeepSlash).path_and_query,
            "/?uploads"
        );
        let service = Request::get(None, None);
        let wire = target(&service, Addressing::VirtualHosted, KeyEncoding::KeepSlash);
        assert_eq!(
            (wire.host.as_str(), wire.path_and_query.as_str()),
            ("127.0.0.1:9000", "/")
        );
    }

    #[test]
    fn slash_is_encoded_only_when_asked() {
        assert_eq!(encode_key("a/b/c", KeyEncoding::KeepSlash), "a/b/c");
        assert_eq!(encode_key("a/b/c", KeyEncoding::EncodeSlash), "a%2Fb%2Fc");
    }

    #[test]
    fn a_literal_percent_2f_in_a_key_is_escaped_not_decoded() {
        assert_eq!(encode_key("x%2Fy", KeyEncoding::KeepSlash), "x%252Fy");
        assert_eq!(encode_key("x%2Fy", KeyEncoding::EncodeSlash), "x%252Fy");
    }

    #[test]
    fn unicode_keys_are_utf8_percent_encoded() {
        assert_eq!(
            encode_key("文件/ü ñ.txt", KeyEncoding::KeepSlash),
            "%E6%96%87%E4%BB%B6/%C3%BC%20%C3%B1.txt"
        );
    }

    #[test]
    fn dot_segments_and_reserved_characters_are_kept_as_key_bytes() {
        assert_eq!(
            encode_key("../../etc/passwd", KeyEncoding::KeepSlash),
            "../../etc/passwd"
        );
        assert_eq!(
            encode_key("../../etc/passwd", KeyEncoding::EncodeSlash),
            "..%2F..%2Fetc%2Fpasswd"
        );
        assert_eq!(
            encode_key("a?b#c&d=e+f", KeyEncoding::KeepSlash),
            "a%3Fb%23c%26d%3De%2Bf"
        );
    }

    #[test]
    fn query_values_are_fully_encoded_and_bare_names_stay_bare() {
        let request = Request::get(Some("b"), Some("k"))
            .query("uploadId", "id/with+plus")
            .query("uploads", "");
        assert_eq!(
            target(&request, Addressing::PathStyle, KeyEncoding::KeepSlash).path_and_query,
            "/b/k?uploadId=id%2Fwith%2Bplus&uploads"
        );
        let oss2 = request.clone().empty_values_with_equals();
        assert_eq!(
            target(&oss2, Addressing::PathStyle, KeyEncoding::KeepSlash).path_and_query,
            "/b/k?uploadId=id%2Fwith%2Bplus&uploads="
        );
    }

    #[test]
    fn raw_path_is_sent_as_given() {
        let request = Request::get(Some("b"), Some("k")).raw_path_and_query("/b/%zz?x");
        assert_eq!(
            target(&request, Addressing::PathStyle, KeyEncoding::KeepSlash).path_and_query,
            "/b/%zz?x"
        );
    }

    #[test]
    fn endpoints_must_be_plain_http_without_a_path() {
        assert_eq!(endpoint().authority(), "127.0.0.1:9000");
        assert_eq!(
            Endpoint::parse("http://oss-cn-hangzhou.aliyuncs.com")
                .unwrap()
                .socket_address(),
            "oss-cn-hangzhou.aliyuncs.com:80"
        );
        for bad in ["https://x", "ftp://x", "http://x/path", "not a url"] {
            let err = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn describe_names_the_logical_request() {
        let request = Request::post(Some("b"), Some("dir/k")).query("uploads", "");
        assert_eq!(request.describe(), "POST /b/dir/k?uploads");
    }
}
