//! A small signed OSS client for the mock's own tests: builds a request, signs it with ossup-sign,
//! sends it with hyper and hands back status, headers and body.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oss_mock::{MockConfig, MockServer};
use ossup_proto::ErrorResponse;
use ossup_sign::{Credentials, RequestParts, Signer, V1Signer, V4Signer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::{RngCore, SeedableRng};

/// The bucket every test server starts with.
pub(crate) const BUCKET: &str = "bucket";

/// Starts a server with [`BUCKET`].
pub(crate) async fn server() -> MockServer {
    MockServer::start(MockConfig::default().with_bucket(BUCKET))
        .await
        .expect("mock server starts")
}

/// `len` deterministic pseudo-random bytes.
pub(crate) fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Which signature the client writes.
#[derive(Debug, Clone)]
pub(crate) enum Signature {
    V1,
    V4(String),
}

/// A signed client for one server.
#[derive(Clone)]
pub(crate) struct Client {
    authority: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    credentials: Credentials,
    signature: Signature,
    clock_offset: i64,
}

/// A response, body read whole.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The OSS error document of the body.
    pub(crate) fn error(&self) -> ErrorResponse {
        ErrorResponse::from_xml(&self.text())
            .unwrap_or_else(|e| panic!("not an error document ({e}): {}", self.text()))
    }

    /// Asserts the status and the error code, and returns the document.
    pub(crate) fn expect_error(&self, status: u16, code: &str) -> ErrorResponse {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let err = self.error();
        assert_eq!(err.code, code, "body: {}", self.text());
        assert_eq!(
            Some(err.request_id.as_str()),
            self.header("x-oss-request-id"),
            "RequestId matches the header"
        );
        err
    }

    /// Asserts a 2xx status.
    pub(crate) fn ok(self) -> Self {
        assert!(
            self.status.is_success(),
            "status {}: {}",
            self.status,
            self.text()
        );
        self
    }
}

impl Client {
    /// A V1 client with the default test key.
    pub(crate) fn new(server: &MockServer) -> Self {
        Self::with_key(server, "test-ak", "test-sk")
    }

    /// A V1 client with this key.
    pub(crate) fn with_key(server: &MockServer, id: &str, secret: &str) -> Self {
        Self::at(&server.addr().to_string(), id, secret)
    }

    /// A V1 client for the server at `authority` (`HOST:PORT`).
    pub(crate) fn at(authority: &str, id: &str, secret: &str) -> Self {
        Self {
            authority: authority.to_owned(),
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            credentials: Credentials::new(id, secret),
            signature: Signature::V1,
            clock_offset: 0,
        }
    }

    /// Signs with V4 for `region` instead.
    pub(crate) fn v4(mut self, region: &str) -> Self {
        self.signature = Signature::V4(region.to_owned());
        self
    }

    /// Uses temporary credentials with this security token.
    pub(crate) fn with_token(mut self, token: &str) -> Self {
        self.credentials = self.credentials.clone().with_security_token(token);
        self
    }

    /// Signs as if the clock were `secs` seconds off.
    pub(crate) fn with_clock_offset(mut self, secs: i64) -> Self {
        self.clock_offset = secs;
        self
    }

    /// Starts a request on `key` of [`BUCKET`] (or the bucket itself when `key` is empty).
    pub(crate) fn req(&self, method: Method, key: &str) -> Request {
        self.req_in(method, BUCKET, key)
    }

    /// Starts a request on `key` of `bucket`.
    pub(crate) fn req_in(&self, method: Method, bucket: &str, key: &str) -> Request {
        Request {
            client: self.clone(),
            method,
            bucket: bucket.to_owned(),
            key: (!key.is_empty()).then(|| key.to_owned()),
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            sign: true,
            virtual_host: None,
            raw_path: None,
        }
    }

    // ----- conveniences -----

    /// Initiates an upload of `key` and returns its id.
    pub(crate) async fn initiate(&self, key: &str) -> String {
        let r = self
            .req(Method::POST, key)
            .query("uploads", "")
            .send()
            .await
            .ok();
        let doc: ossup_proto::xml::InitiateMultipartUploadResult =
            ossup_proto::xml::from_xml("InitiateMultipartUploadResult", &r.text()).unwrap();
        doc.upload_id
    }

    /// Uploads one part and returns the response.
    pub(crate) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        data: &[u8],
    ) -> Response {
        self.req(Method::PUT, key)
            .query("partNumber", &n.to_string())
            .query("uploadId", upload_id)
            .body(data.to_vec())
            .send()
            .await
    }

    /// Completes with the given `(number, etag)` parts.
    pub(crate) async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Response {
        self.req(Method::POST, key)
            .query("uploadId", upload_id)
            .body(complete_xml(parts))
            .send()
            .await
    }

    /// Lists parts with extra query parameters.
    pub(crate) async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        extra: &[(&str, &str)],
    ) -> ossup_proto::xml::ListPartsResult {
        let mut req = self.req(Method::GET, key).query("uploadId", upload_id);
        for (k, v) in extra {
            req = req.query(k, v);
        }
        let r = req.send().await.ok();
        ossup_proto::xml::from_xml("ListPartsResult", &r.text()).unwrap()
    }

    /// GETs an object's bytes.
    pub(crate) async fn get(&self, key: &str) -> Response {
        self.req(Method::GET, key).send().await
    }
}

/// The XML body of a Complete request.
pub(crate) fn complete_xml(parts: &[(u32, String)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

/// A request being built.
pub(crate) struct Request {
    client: Client,
    method: Method,
    bucket: String,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    sign: bool,
    virtual_host: Option<String>,
    raw_path: Option<String>,
}

impl Request {
    /// Adds a query parameter (`""` for a bare one).
    pub(crate) fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends without an Authorization header.
    pub(crate) fn unsigned(mut self) -> Self {
        self.sign = false;
        self
    }

    /// Addresses the bucket through `Host: BUCKET.DOMAIN:PORT`.
    pub(crate) fn virtual_hosted(mut self, domain: &str) -> Self {
        self.virtual_host = Some(domain.to_owned());
        self
    }

    /// Sends this exact path and query (already encoded) instead of those built from bucket, key
    /// and query; the signature still covers the parts given.
    pub(crate) fn raw_path(mut self, path: &str) -> Self {
        self.raw_path = Some(path.to_owned());
        self
    }

    /// The request as signed (headers included), without sending it.
    pub(crate) fn signed_parts(&self) -> RequestParts {
        let mut parts = RequestParts {
            method: self.method.clone(),
            bucket: Some(self.bucket.clone()),
            key: self.key.clone(),
            query: self.query.clone(),
            headers: HeaderMap::new(),
        };
        for (name, value) in &self.headers {
            parts.headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        if self.sign {
            let offset = self.client.clock_offset;
            let now = if offset >= 0 {
                SystemTime::now() + Duration::from_secs(offset as u64)
            } else {
                SystemTime::now() - Duration::from_secs((-offset) as u64)
            };
            match &self.client.signature {
                Signature::V1 => V1Signer
                    .sign(&mut parts, &self.client.credentials, now)
                    .unwrap(),
                Signature::V4(region) => V4Signer::new(region.clone())
                    .sign(&mut parts, &self.client.credentials, now)
                    .unwrap(),
            }
        }
        parts
    }

    /// Signs and sends; panics only on transport errors.
    pub(crate) async fn send(self) -> Response {
        self.try_send().await.expect("request reaches the mock")
    }

    /// Signs and sends.
    pub(crate) async fn try_send(self) -> Result<Response, hyper_util::client::legacy::Error> {
        let parts = self.signed_parts();
        let mut path = match &self.raw_path {
            Some(path) => path.clone(),
            None => {
                let key = self
                    .key
                    .as_deref()
                    .map(|k| utf8_percent_encode(k, PATH_SET).to_string())
                    .unwrap_or_default();
                if self.virtual_host.is_some() {
                    format!("/{key}")
                } else {
                    format!("/{}/{key}", self.bucket)
                }
            }
        };
        if self.raw_path.is_none() && !self.query.is_empty() {
            let q: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| {
                    let k = utf8_percent_encode(k, QUERY_SET);
                    if v.is_empty() {
                        k.to_string()
                    } else {
                        format!("{k}={}", utf8_percent_encode(v, QUERY_SET))
                    }
                })
                .collect();
            path.push('?');
            path.push_str(&q.join("&"));
        }
        let uri = format!("http://{}{path}", self.client.authority);
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(uri);
        for (name, value) in parts.headers.iter() {
            builder = builder.header(name, value);
        }
        if let Some(domain) = &self.virtual_host {
            let port = self.client.authority.rsplit(':').next().unwrap();
            builder = builder.header("host", format!("{}.{domain}:{port}", self.bucket));
        }
        let request = builder.body(Full::new(self.body.clone())).unwrap();
        let response = self.client.http.request(request).await?;
        let (head, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

/// How long [`eventually`] and [`MockProcess::wait_exit`] wait before the test fails.
pub(crate) const BOUND: Duration = Duration::from_secs(20);

/// Waits (bounded by [`BOUND`]) until `check` holds; `what` names it in the failure.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(
            start.elapsed() < BOUND,
            "{what}: not reached within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An `oss-mock` process started as scripts start it (`--listen 127.0.0.1:0`), and the endpoint
/// its first line printed; killed when dropped, so a failing test leaves no process behind.
pub(crate) struct MockProcess {
    pub child: Child,
    /// The endpoint from the first line, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl MockProcess {
    /// Starts `oss-mock --listen 127.0.0.1:0 ARGS`, its stderr going to `stderr`, and reads the
    /// listening line.
    pub(crate) fn spawn(args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oss-mock"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("oss-mock starts");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
            .read_line(&mut first)
            .expect("oss-mock prints its listening line");
        let endpoint = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line is {first:?}"))
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        Self { child, endpoint }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn authority(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// A V1 client with the default test key.
    pub(crate) fn client(&self) -> Client {
        Client::at(self.authority(), "test-ak", "test-sk")
    }

    /// Waits (bounded) for the process to exit on its own.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("oss-mock's status") {
                return status;
            }
            assert!(
                start.elapsed() < BOUND,
                "oss-mock did not exit within {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, then waits (bounded) for the process to be gone.
    pub(crate) fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL oss-mock");
        self.wait_exit();
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
