//! The suite's own HTTP/1.1 server on a loopback port, written over plain TCP so it shares no code
//! with any transport under test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A request as the test server read it off the socket.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) method: String,
    /// The request target as sent: path and query, still percent-encoded.
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// How the test server answers one request.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: BTreeMap<&'static str, &'static str>,
    pub(super) body: Bytes,
    /// Send the headers (with the body's `Content-Length`) and no body, as for HEAD.
    pub(super) head_only: bool,
    /// Send the body with chunked transfer encoding instead of a `Content-Length`.
    pub(super) chunked: bool,
    /// The size of each write of the body.
    pub(super) piece: usize,
    /// Wait for this after the first piece before sending the rest.
    pub(super) hold_after_first_piece: Option<Arc<Notify>>,
    /// Close the connection after this many bytes of the body.
    pub(super) cut_after: Option<usize>,
}

impl Reply {
    pub(super) fn full(status: StatusCode, body: Bytes) -> Self {
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

    pub(super) fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, value);
        self
    }
}

type Answer = dyn Fn(&Received) -> Reply + Send + Sync;

/// An HTTP/1.1 server on a loopback port: one request per connection, answered as `answer` says,
/// the connection closed after each answer.
pub(super) struct TestServer {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
    accept: JoinHandle<()>,
}

impl TestServer {
    pub(super) async fn start(answer: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
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

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn take_requests(&self) -> Vec<Received> {
        std::mem::take(&mut *self.requests.lock().expect("request log"))
    }

    pub(super) fn stop(self) {
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
