//! The contract's cases, one public function each, and the helpers they share.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::CASE_TIMEOUT;
use super::server::{Reply, TestServer};
use crate::{ErrorKind, ResponseBody, TransferProgress, Transport};

/// How long [`large_bodies_stream_in_many_chunks`] waits for the first bytes of a body whose rest
/// the server holds back.
const STREAM_WAIT: Duration = Duration::from_secs(5);

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
