//! Bounds on connections: how many may be open at once, what one more gets, and how long a client
//! may take to send a request head, leave a connection idle, or keep the server waiting for body
//! bytes, so that no client can hold a connection slot for ever (slowloris and its kin).
//!
//! hyper parses the requests; this module watches each connection from outside: [`Watched`] wraps
//! the socket and notes when bytes arrive, [`InFlight`] marks a request from the moment its head is
//! complete until its answer has been sent, [`RequestBody`](crate::body::RequestBody) notes when the
//! server waits for body bytes, and [`Activity::expired`] tells the connection's task when to close
//! it. The task checks a few times per timeout, so a connection is closed at most a quarter of the
//! timeout late.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use ossup_proto::{ErrorCode, ErrorResponse};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::response::{Body, http_date};

/// How long a refused connection is given to receive its `503` before it is closed.
const REFUSAL_TIME: Duration = Duration::from_secs(2);
/// The most request bytes read (and dropped) from a refused connection before it is closed: reading
/// them lets the close be a clean FIN instead of a reset that could destroy the `503` in flight.
const REFUSAL_DRAIN: usize = 64 * 1024;
/// Refusals in progress at once; past it a connection over the cap is closed without an answer, so
/// a flood of connections cannot pile up refusal tasks either.
pub(crate) const MAX_REFUSALS: usize = 64;

/// What one connection is doing, as far as its timeouts care.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct State {
    /// Requests whose head is complete and whose answer is not yet sent.
    in_flight: u32,
    /// When the head being received started: the connection's opening for the first request, the
    /// first byte of the head for later ones. `None` while no head is being received.
    head_started: Option<Instant>,
    /// When the connection last became idle (no request in flight).
    idle_since: Instant,
    /// Since when a request's handler has been waiting for body bytes that do not come.
    body_wait_since: Option<Instant>,
}

impl Activity {
    /// A connection accepted just now.
    pub(crate) fn new(header_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                // A new connection owes its first head at once: sending nothing is slow too.
                head_started: Some(now),
                idle_since: now,
                body_wait_since: None,
            }),
            header_timeout,
            idle_timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived on the socket.
    fn on_bytes(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }

    /// A request head is complete: the request is in flight until the guard is dropped (when its
    /// answer has been sent, or abandoned).
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_started = None;
        InFlight(Arc::clone(self))
    }

    /// The request's handler waits for body bytes (`true`), or got some or stopped waiting.
    pub(crate) fn body_waiting(&self, waiting: bool) {
        let mut state = self.lock();
        match (waiting, state.body_wait_since) {
            (true, None) => state.body_wait_since = Some(Instant::now()),
            (false, Some(_)) => state.body_wait_since = None,
            _ => {}
        }
    }

    /// Why the connection should be closed at `now`, if it should.
    pub(crate) fn expired(&self, now: Instant) -> Option<String> {
        let state = self.lock();
        let past = |since: Instant, limit: Duration| now.saturating_duration_since(since) >= limit;
        if state.in_flight > 0 {
            return state
                .body_wait_since
                .filter(|since| past(*since, self.idle_timeout))
                .map(|_| {
                    format!(
                        "no byte of the request body arrived for {:?} (--idle-timeout)",
                        self.idle_timeout
                    )
                });
        }
        match state.head_started {
            Some(since) if past(since, self.header_timeout) => Some(format!(
                "the request head was not complete within {:?} (--header-timeout)",
                self.header_timeout
            )),
            Some(_) => None,
            None if past(state.idle_since, self.idle_timeout) => Some(format!(
                "no request for {:?} (--idle-timeout)",
                self.idle_timeout
            )),
            None => None,
        }
    }

    /// How often the connection's task asks [`expired`](Self::expired).
    pub(crate) fn check_every(&self) -> Duration {
        (self.header_timeout.min(self.idle_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// A request in flight on its connection; dropping it makes the connection idle again.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_started = None;
            state.body_wait_since = None;
        }
    }
}

/// A response body that keeps its request in flight until hyper has sent it (and dropped it).
pub(crate) fn hold_until_sent(body: Body, in_flight: InFlight) -> Body {
    Held {
        inner: body,
        _in_flight: in_flight,
    }
    .boxed_unsync()
}

struct Held {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
pub(crate) struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    pub(crate) fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The whole answer a connection over the cap gets: `503 ServiceUnavailable` with an OSS error
/// document saying why, and `Connection: close`.
pub(crate) fn refusal(request_id: &str, host_id: &str, max_connections: usize) -> Vec<u8> {
    let mut document = ErrorResponse::new(ErrorCode::ServiceUnavailable, request_id, host_id);
    document.message = format!(
        "oss-mock has {max_connections} connections open, its limit (--max-connections); retry when one has closed."
    );
    let body = document.to_xml();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: AliyunOSS\r\nDate: {}\r\nx-oss-request-id: {request_id}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
        http_date(SystemTime::now()),
        body.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(body.as_bytes());
    answer
}

/// Sends `answer` on a connection the server will not serve, without reading its request, then
/// closes it; bounded by [`REFUSAL_TIME`].
pub(crate) async fn refuse(mut stream: TcpStream, answer: Vec<u8>) {
    let exchange = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        // Whatever the client sent is read and dropped, so the close does not reset the connection
        // before the client has read the answer.
        let mut sink = vec![0u8; 8192];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_owes_its_head_within_the_header_timeout() {
        let activity = Activity::new(Duration::from_secs(10), Duration::from_secs(60));
        let now = Instant::now();
        assert!(activity.expired(now).is_none());
        let why = activity.expired(now + Duration::from_secs(11)).unwrap();
        assert!(why.contains("--header-timeout"), "{why}");
    }

    #[test]
    fn an_idle_connection_has_the_idle_timeout_then_its_next_head_the_header_timeout() {
        let activity = Activity::new(Duration::from_secs(10), Duration::from_secs(60));
        drop(activity.request_started());
        let now = Instant::now();
        assert!(activity.expired(now + Duration::from_secs(30)).is_none());
        let why = activity.expired(now + Duration::from_secs(61)).unwrap();
        assert!(why.contains("--idle-timeout"), "{why}");
        activity.on_bytes();
        let why = activity
            .expired(Instant::now() + Duration::from_secs(11))
            .unwrap();
        assert!(why.contains("--header-timeout"), "{why}");
    }

    #[test]
    fn a_request_in_flight_expires_only_while_its_body_does_not_come() {
        let activity = Activity::new(Duration::from_secs(10), Duration::from_secs(60));
        let in_flight = activity.request_started();
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(activity.expired(later).is_none(), "a long handler is fine");
        activity.body_waiting(true);
        let why = activity.expired(later).unwrap();
        assert!(why.contains("request body"), "{why}");
        activity.body_waiting(false);
        assert!(activity.expired(later).is_none());
        drop(in_flight);
        assert!(activity.expired(Instant::now()).is_none());
    }

    #[test]
    fn the_refusal_is_a_complete_503_with_an_oss_error_document() {
        let answer = String::from_utf8(refusal("RID", "127.0.0.1:9000", 7)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let doc = ErrorResponse::from_xml(body).unwrap();
        assert_eq!(doc.code, "ServiceUnavailable");
        assert!(doc.message.contains("--max-connections"), "{}", doc.message);
    }
}
