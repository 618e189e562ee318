//! The contract suite every [`Transport`] passes (feature `testkit`), public so a transport crate
//! can prove it gives the engine what the engine relies on.
//!
//! Each case is an async function taking the transport; it starts its own HTTP/1.1 server on
//! 127.0.0.1 (a port the system picks, written here over plain TCP, so the suite shares no code with
//! any transport under test), sends through the transport and panics with the case's name and what
//! went wrong on the first violation. [`run_transport_contract`] runs them all. Every case is
//! bounded by [`CASE_TIMEOUT`], so a transport that hangs fails instead of stalling the test run.
//!
//! What the engine relies on, and the case that checks it:
//! - the request's method, URI (path and query as given, not re-encoded), headers and body arrive
//!   exactly: [`requests_arrive_exactly`];
//! - the response's status, headers and body come back exactly, and a HEAD answer's
//!   `Content-Length` is not waited for as a body: [`responses_come_back_exactly`];
//! - a large body streams: its first bytes are readable before the server has sent the rest, and
//!   it arrives whole in many chunks: [`large_bodies_stream_in_many_chunks`];
//! - an HTTP error status is a response, not an `Err`: [`error_statuses_are_responses`];
//! - a refused connection is a retryable [`ErrorKind::Network`] error:
//!   [`refused_connections_are_retryable_network_errors`];
//! - when [`Transport::reports_progress`] is true, the request's [`TransferProgress`] counts exactly
//!   the body's length: [`progress_counts_exactly_the_body`];
//! - a response body cut short (by `Content-Length` or chunked) is an error, never a short success:
//!   [`bodies_cut_short_are_errors`].
//!
//! ```no_run
//! # async fn check(transport: &dyn ossup_transport::Transport) {
//! let report = ossup_transport::testkit::run_transport_contract(transport).await;
//! assert!(report.not_applicable.is_empty(), "{report:?}");
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{ErrorKind, ResponseBody, TransferProgress, Transport};

/// How long one case may take before it fails as a hang.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`large_bodies_stream_in_many_chunks`] waits for the first bytes of a body whose rest
/// the server holds back.
const STREAM_WAIT: Duration = Duration::from_secs(5);

/// What [`run_transport_contract`] ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportContractReport {
    /// The cases that ran and passed.
    pub passed: Vec<&'static str>,
    /// The cases that do not apply to this transport, with the reason.
    pub not_applicable: Vec<(&'static str, &'static str)>,
}

/// Runs every case of the contract against `transport`; panics on the first violation.
pub async fn run_transport_contract(transport: &dyn Transport) -> TransportContractReport {
    let mut report = TransportContractReport::default();
    requests_arrive_exactly(transport).await;
    report.passed.push("requests_arrive_exactly");
    responses_come_back_exactly(transport).await;
    report.passed.push("responses_come_back_exactly");
    large_bodies_stream_in_many_chunks(transport).await;
    report.passed.push("large_bodies_stream_in_many_chunks");
    error_statuses_are_responses(transport).await;
    report.passed.push("error_statuses_are_responses");
    refused_connections_are_retryable_network_errors(transport).await;
    report
        .passed
        .push("refused_connections_are_retryable_network_errors");
    if transport.reports_progress() {
        progress_counts_exactly_the_body(transport).await;
        report.passed.push("progress_counts_exactly_the_body");
    } else {
        report.not_applicable.push((
            "progress_counts_exactly_the_body",
            "the transport does not report progress",
        ));
    }
    bodies_cut_short_are_errors(transport).await;
    report.passed.push("bodies_cut_short_are_errors");
    report
}

/// The method, URI, headers and body of each request arrive at the server exactly as given: PUT
/// and POST with bodies (one of 1 MiB), GET, HEAD and DELETE without, on a path with
/// percent-encoded characters and a query the transport must pass on untouched.
pub async fn requests_arrive_exactly(transport: &dyn Transport) {
    const CASE: &str = "requests_arrive_exactly";
    bounded(CASE, async {
        let server = TestServer::start(|_| Reply::full(StatusCode::OK, Bytes::new())).await;
        let path_and_query = "/bucket/dir%2Fa%20b/%E4%B8%AD~x.bin?partNumber=3&uploadId=0A1B%2Bc";
        let cases = [
            (Method::PUT, seeded_bytes(1 << 20, 1)),
            (Method::POST, Bytes::from_static(b"<CompleteMultipartUpload/>")),
            (Method::GET, Bytes::new()),
            (Method::HEAD, Bytes::new()),
            (Method::DELETE, Bytes::new()),
        ];
        for (method, body) in cases {
            let request = Request::builder()
                .method(method.clone())
                .uri(format!("{}{path_and_query}", server.url()))
                .header("content-type", "application/octet-stream")
                .header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
                .header("x-oss-meta-origin", "contract")
                .header("x-oss-date", "20240102T030405Z")
                .header(
                    "authorization",
                    "OSS4-HMAC-SHA256 Credential=ak/20240102/cn-hangzhou/oss/aliyun_v4_request,Signature=00ff",
                )
                .body(body.clone())
                .expect("a valid request");
            let sent_headers = request.headers().clone();
            let response = send(CASE, transport, request).await;
            let status = response.status();
            read_body(CASE, response.into_body()).await;
            assert_eq!(status, StatusCode::OK, "{CASE}: {method} answered {status}");

            let received = server.take_requests();
            assert_eq!(
                received.len(),
                1,
                "{CASE}: the server got {} requests for one {method}",
                received.len()
            );
            let received = &received[0];
            assert_eq!(received.method, method.as_str(), "{CASE}: the method");
            assert_eq!(
                received.target, path_and_query,
                "{CASE}: the path and query of a {method} reached the server changed"
            );
            for (name, value) in &sent_headers {
                let got: Vec<_> = received.headers.get_all(name).iter().collect();
                assert_eq!(
                    got,
                    [value],
                    "{CASE}: header {name} of a {method} arrived as {got:?}"
                );
            }
            assert!(
                received.body == body,
                "{CASE}: the body of a {method} arrived as {} bytes, not the {} sent (or changed)",
                received.body.len(),
                body.len()
            );
        }
        server.stop();
    })
    .await;
}

/// The status, headers and body of a response come back exactly; a HEAD answer announcing a
/// `Content-Length` comes back with an empty body, at once.
pub async fn responses_come_back_exactly(transport: &dyn Transport) {
    const CASE: &str = "responses_come_back_exactly";
    bounded(CASE, async {
        let body = Bytes::from_static(b"<InitiateMultipartUploadResult/>");
        let reply_body = body.clone();
        let server = TestServer::start(move |request| {
            let mut reply = Reply::full(
                StatusCode::from_u16(206).expect("valid status"),
                reply_body.clone(),
            )
            .header("etag", "\"5B3C1A2E053D763E1B002CC607C5A0FE\"")
            .header("x-oss-hash-crc64ecma", "18446744073709551615")
            .header("x-oss-request-id", "5C3D9175B6FC201293AD4890");
            if request.method == "HEAD" {
                reply.head_only = true;
            }
            reply
        })
        .await;

        let get = Request::get(format!("{}/bucket/key", server.url()))
            .body(Bytes::new())
            .expect("a valid request");
        let response = send(CASE, transport, get).await;
        assert_eq!(response.status().as_u16(), 206, "{CASE}: the status");
        for (name, value) in [
            ("etag", "\"5B3C1A2E053D763E1B002CC607C5A0FE\""),
            ("x-oss-hash-crc64ecma", "18446744073709551615"),
            ("x-oss-request-id", "5C3D9175B6FC201293AD4890"),
        ] {
            assert_eq!(
                response.headers().get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{CASE}: response header {name}"
            );
        }
        let got = read_body(CASE, response.into_body()).await;
        assert!(got.0 == body, "{CASE}: the body came back as {:?}", got.0);

        let head = Request::head(format!("{}/bucket/key", server.url()))
            .body(Bytes::new())
            .expect("a valid request");
        let response = send(CASE, transport, head).await;
        assert_eq!(response.status().as_u16(), 206, "{CASE}: the HEAD status");
        assert_eq!(
            response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()),
            Some(body.len().to_string().as_str()),
            "{CASE}: a HEAD answer's Content-Length"
        );
        let got = read_body(CASE, response.into_body()).await;
        assert!(got.0.is_empty(), "{CASE}: a HEAD answer has no body");
        server.stop();
    })
    .await;
}

/// A 4 MiB body, sent by the server in 16 KiB pieces: its first bytes can be read while the server
/// holds the rest back (a transport that buffers whole bodies hangs here), and all of it arrives, in
/// many chunks, byte for byte.
pub async fn large_bodies_stream_in_many_chunks(transport: &dyn Transport) {
    const CASE: &str = "large_bodies_stream_in_many_chunks";
    bounded(CASE, async {
        let body = seeded_bytes(4 << 20, 2);
        let release = Arc::new(Notify::new());
        let reply_body = body.clone();
        let reply_release = release.clone();
        let server = TestServer::start(move |_| {
            let mut reply = Reply::full(StatusCode::OK, reply_body.clone());
            reply.piece = 16 * 1024;
            reply.hold_after_first_piece = Some(reply_release.clone());
            reply
        })
        .await;
        let request = Request::get(format!("{}/bucket/large", server.url()))
            .body(Bytes::new())
            .expect("a valid request");
        let response = tokio::time::timeout(STREAM_WAIT, send(CASE, transport, request))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{CASE}: no response while the server held back the rest of the body: the \
                     transport reads whole bodies before it answers"
                )
            });
        let mut response_body = response.into_body();
        let first = tokio::time::timeout(STREAM_WAIT, response_body.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{CASE}: no bytes of the body could be read while the server held back the \
                     rest: the transport does not stream response bodies"
                )
            })
            .unwrap_or_else(|| panic!("{CASE}: the body ended before its first byte"))
            .unwrap_or_else(|e| panic!("{CASE}: the body failed at its first chunk: {e}"));
        release.notify_one();
        let mut got = BytesMut::from(&first[..]);
        let (rest, chunks) = read_body(CASE, response_body).await;
        got.extend_from_slice(&rest);
        assert_eq!(
            got.len(),
            body.len(),
            "{CASE}: the body's length came back wrong"
        );
        assert!(got == body, "{CASE}: the body's bytes came back changed");
        assert!(
            chunks + 1 >= 4,
            "{CASE}: a 4 MiB body came back in {} chunks: it was buffered, not streamed",
            chunks + 1
        );
        server.stop();
    })
    .await;
}

/// 404, 409, 500 and 503 answers are responses with their status, headers and body, not errors:
/// the engine reads the OSS error document in them and decides itself what to retry.
pub async fn error_statuses_are_responses(transport: &dyn Transport) {
    const CASE: &str = "error_statuses_are_responses";
    bounded(CASE, async {
        let server = TestServer::start(|request| {
            let status: u16 = request
                .target
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
            Reply::full(
                StatusCode::from_u16(status).expect("valid status"),
                Bytes::from(format!("<Error><Code>{status}</Code></Error>")),
            )
            .header("x-oss-request-id", "ERROR-REQUEST")
        })
        .await;
        for status in [404u16, 409, 500, 503] {
            let request = Request::get(format!("{}/bucket/{status}", server.url()))
                .body(Bytes::new())
                .expect("a valid request");
            let response = transport.send(request).await.unwrap_or_else(|e| {
                panic!("{CASE}: an HTTP {status} answer came back as an error, not a response: {e}")
            });
            assert_eq!(response.status().as_u16(), status, "{CASE}: the status");
            assert_eq!(
                response
                    .headers()
                    .get("x-oss-request-id")
                    .and_then(|v| v.to_str().ok()),
                Some("ERROR-REQUEST"),
                "{CASE}: the headers of a {status}"
            );
            let (body, _) = read_body(CASE, response.into_body()).await;
            assert_eq!(
                body,
                format!("<Error><Code>{status}</Code></Error>").as_bytes(),
                "{CASE}: the body of a {status}"
            );
        }
        server.stop();
    })
    .await;
}

/// A request to a loopback port nobody listens on fails with a retryable
/// [`ErrorKind::Network`] error, so the retry layer tries again.
pub async fn refused_connections_are_retryable_network_errors(transport: &dyn Transport) {
    const CASE: &str = "refused_connections_are_retryable_network_errors";
    bounded(CASE, async {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            listener.local_addr().expect("the port's address")
        };
        let request = Request::put(format!("http://{closed}/bucket/key"))
            .body(Bytes::from_static(b"data"))
            .expect("a valid request");
        match transport.send(request).await {
            Ok(response) => panic!(
                "{CASE}: a refused connection came back as a {} response",
                response.status()
            ),
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    ErrorKind::Network,
                    "{CASE}: a refused connection is a network error, not {e:?}"
                );
                assert!(
                    e.is_retryable(),
                    "{CASE}: a refused connection is retryable: {e:?}"
                );
            }
        }
    })
    .await;
}

/// The [`TransferProgress`] of a request with a 3 MiB body counts exactly 3 MiB once the response
/// is back; call it only for a transport whose [`Transport::reports_progress`] is true.
pub async fn progress_counts_exactly_the_body(transport: &dyn Transport) {
    const CASE: &str = "progress_counts_exactly_the_body";
    bounded(CASE, async {
        let server = TestServer::start(|_| Reply::full(StatusCode::OK, Bytes::new())).await;
        let body = seeded_bytes(3 << 20, 3);
        let progress = TransferProgress::new();
        let mut request = Request::put(format!("{}/bucket/progress", server.url()))
            .body(body.clone())
            .expect("a valid request");
        request.extensions_mut().insert(progress.clone());
        let response = send(CASE, transport, request).await;
        read_body(CASE, response.into_body()).await;
        assert_eq!(
            progress.sent(),
            body.len() as u64,
            "{CASE}: TransferProgress counted {} bytes of a {}-byte body",
            progress.sent(),
            body.len()
        );
        server.stop();
    })
    .await;
}

/// A response body that ends before its `Content-Length`, or a chunked one that ends without its
/// last chunk, is an error (from `send` or from reading the body), never a shorter body that reads
/// as complete.
pub async fn bodies_cut_short_are_errors(transport: &dyn Transport) {
    const CASE: &str = "bodies_cut_short_are_errors";
    bounded(CASE, async {
        let body = seeded_bytes(200_000, 4);
        let reply_body = body.clone();
        let server = TestServer::start(move |request| {
            let mut reply = Reply::full(StatusCode::OK, reply_body.clone());
            reply.cut_after = Some(reply_body.len() / 2);
            reply.chunked = request.target.ends_with("chunked");
            reply
        })
        .await;
        for framing in ["content-length", "chunked"] {
            let request = Request::get(format!("{}/bucket/{framing}", server.url()))
                .body(Bytes::new())
                .expect("a valid request");
            let Ok(response) = transport.send(request).await else {
                continue; // failing at once is as good as failing while reading
            };
            let mut response_body = response.into_body();
            let mut read = 0usize;
            let failed = loop {
                match response_body.chunk().await {
                    Some(Ok(chunk)) => read += chunk.len(),
                    Some(Err(_)) => break true,
                    None => break false,
                }
            };
            assert!(
                failed,
                "{CASE}: a {framing} body cut short after {read} of {} bytes read as complete",
                body.len()
            );
        }
        server.stop();
    })
    .await;
}

/// Runs `case`, failing it when it takes longer than [`CASE_TIMEOUT`].
async fn bounded(case: &str, future: impl Future<Output = ()>) {
    if tokio::time::timeout(CASE_TIMEOUT, future).await.is_err() {
        panic!("{case}: did not finish within {CASE_TIMEOUT:?}: the transport hangs");
    }
}

/// Sends `request`, failing the case on an error.
async fn send(
    case: &str,
    transport: &dyn Transport,
    request: Request<Bytes>,
) -> Response<ResponseBody> {
    let what = format!("{} {}", request.method(), request.uri());
    transport
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("{case}: {what} failed: {e}"))
}

/// Reads a whole body, failing the case on an error; returns it and how many chunks it came in.
async fn read_body(case: &str, mut body: ResponseBody) -> (Bytes, usize) {
    let mut bytes = BytesMut::new();
    let mut chunks = 0;
    while let Some(chunk) = body.chunk().await {
        let chunk = chunk.unwrap_or_else(|e| {
            panic!(
                "{case}: the response body failed after {} bytes: {e}",
                bytes.len()
            )
        });
        bytes.extend_from_slice(&chunk);
        chunks += 1;
    }
    (bytes.freeze(), chunks)
}

/// `len` bytes of a xorshift generator seeded with `seed`: the same on every run, and unlike any
/// repeating pattern a transport could get right by accident.
fn seeded_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    Bytes::from(bytes)
}

/// A request as the test server read it off the socket.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    /// The request target as sent: path and query, still percent-encoded.
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

/// How the test server answers one request.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    headers: BTreeMap<&'static str, &'static str>,
    body: Bytes,
    /// Send the headers (with the body's `Content-Length`) and no body, as for HEAD.
    head_only: bool,
    /// Send the body with chunked transfer encoding instead of a `Content-Length`.
    chunked: bool,
    /// The size of each write of the body.
    piece: usize,
    /// Wait for this after the first piece before sending the rest.
    hold_after_first_piece: Option<Arc<Notify>>,
    /// Close the connection after this many bytes of the body.
    cut_after: Option<usize>,
}

impl Reply {
    fn full(status: StatusCode, body: Bytes) -> Self {
        Self {
            status,
            headers: BTreeMap::new(),
            body,
            head_only: false,
            chunked: false,
            piece: 64 * 1024,
            hold_after_first_piece: None,
            cut_after: None,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, value);
        self
    }
}

type Answer = dyn Fn(&Received) -> Reply + Send + Sync;

/// An HTTP/1.1 server on a loopback port: one request per connection, answered as `answer` says,
/// the connection closed after each answer.
struct TestServer {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
    accept: JoinHandle<()>,
}

impl TestServer {
    async fn start(answer: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the contract's test server binds a loopback port");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the test server's address")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let log = requests.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer.clone(), log.clone()));
            }
        });
        Self {
            url,
            requests,
            accept,
        }
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn take_requests(&self) -> Vec<Received> {
        std::mem::take(&mut *self.requests.lock().expect("request log"))
    }

    fn stop(self) {
        self.accept.abort();
    }
}

/// Reads one request off `stream`, logs it and answers it; a malformed request ends the connection
/// without an answer (the case that sent it then fails on the transport's error).
async fn serve(mut stream: TcpStream, answer: Arc<Answer>, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = answer(&request);
    log.lock().expect("request log").push(request);
    let _ = write_reply(&mut stream, reply).await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_owned();
    let mut rest = buf.split_off(head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        read_chunked(stream, &mut rest).await?
    } else {
        let len: usize = match headers.get("content-length") {
            Some(v) => v.to_str().ok()?.parse().ok()?,
            None => 0,
        };
        while rest.len() < len {
            if stream.read_buf(&mut rest).await.ok()? == 0 {
                return None;
            }
        }
        rest.split_to(len).freeze()
    };
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

/// Decodes a chunked request body, `buf` holding what was already read past the headers.
async fn read_chunked(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Bytes> {
    let mut body = BytesMut::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(buf, b"\r\n") {
                break at;
            }
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        };
        let size_field = std::str::from_utf8(&buf[..line_end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        let _ = buf.split_to(line_end + 2);
        while buf.len() < size + 2 {
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
        body.extend_from_slice(&buf.split_to(size + 2)[..size]);
        if size == 0 {
            // Trailers are not used; the empty line after the last chunk was just consumed.
            return Some(body.freeze());
        }
    }
}

async fn write_reply(stream: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\n",
        reply.status.as_u16(),
        reply.status.canonical_reason().unwrap_or("Status")
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    }
    stream.write_all(head.as_bytes()).await?;
    if reply.head_only {
        return stream.shutdown().await;
    }
    let end = reply.cut_after.unwrap_or(reply.body.len());
    let mut first = true;
    for piece in reply.body[..end].chunks(reply.piece.max(1)) {
        if reply.chunked {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            stream.write_all(piece).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all(piece).await?;
        }
        stream.flush().await?;
        if first {
            first = false;
            if let Some(release) = &reply.hold_after_first_piece {
                release.notified().await;
            }
        }
    }
    if reply.chunked && reply.cut_after.is_none() {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    stream.shutdown().await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
