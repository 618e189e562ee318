//! The request body as handlers see it: hyper's body, plus what the server needs to know afterwards
//! to answer cleanly when a handler did not read all of it.
//!
//! When a request fails before its body is read (a bad signature on an 8 MiB part, say), closing the
//! connection with unread bytes in the socket makes the kernel reset it, and the client sees a
//! connection error instead of the OSS error. So the rest of a modest body is read and discarded
//! before the response goes out; a large one, or one the client is still waiting for
//! `100 Continue` to send, gets `Connection: close` instead.
//!
//! The body is read no faster than the link allows (`link.rs`: the link's and the connection's
//! bandwidth) and than the request's own cap (a `throttle` or `straggle` fault, `x-oss-traffic-limit`):
//! after each chunk, reading pauses until the chunk is through the slowest of the
//! [`Pacer`](crate::traffic::Pacer)s that apply.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::conn::Activity;
use crate::link::{self, Link};
use crate::stats::Stats;
use crate::traffic::Pacer;

/// The most bytes read and discarded to deliver an error cleanly.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;
/// How long discarding may take before the connection is closed instead.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body that remembers whether it was read and whether it ended.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Incoming,
    polled: bool,
    ended: bool,
    expect_continue: bool,
    declared_len: Option<u64>,
    pace: Pace,
    /// The connection's activity, told when the handler waits for body bytes that do not come:
    /// a client that stops sending mid-body is closed after the idle timeout.
    activity: Option<Arc<Activity>>,
}

/// What paces the body: the request's own cap, the link and connection it came over, and the
/// pause owed for the last chunk read.
#[derive(Debug, Default)]
struct Pace {
    /// The request's own cap in bytes per second, and its pacer.
    own: Option<(u64, Pacer)>,
    link: Option<(Arc<Link>, Arc<link::Connection>)>,
    pause: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    /// When the `bytes` just read are through every pipe that paces them.
    fn reserve(&self, bytes: u64) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let own = self
            .own
            .as_ref()
            .map(|(rate, pacer)| pacer.reserve(bytes, *rate, now));
        let link = self
            .link
            .as_ref()
            .and_then(|(link, conn)| link.reserve(conn, bytes, now));
        own.max(link)
    }
}

impl RequestBody {
    /// Wraps hyper's body of a request with these headers, on a connection with this activity.
    pub(crate) fn new(
        inner: Incoming,
        headers: &HeaderMap,
        activity: Option<Arc<Activity>>,
    ) -> Self {
        Self {
            inner,
            polled: false,
            ended: false,
            expect_continue: headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
            declared_len: headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
            pace: Pace::default(),
            activity,
        }
    }

    /// Paces the body by `link` and the connection's side of it from now on.
    pub(crate) fn over(mut self, link: Arc<Link>, conn: Option<Arc<link::Connection>>) -> Self {
        self.pace.link = Some((link, conn.unwrap_or_default()));
        self
    }

    /// The connection the body comes over, when it is paced by a link.
    pub(crate) fn connection(&self) -> Option<&link::Connection> {
        self.pace.link.as_ref().map(|(_, conn)| conn.as_ref())
    }

    /// Reads the body at most `bytes_per_sec` fast from now on (the slowest cap wins: a throttle or
    /// straggle fault, the request's `x-oss-traffic-limit`, the link's bandwidths).
    pub(crate) fn throttle(&mut self, bytes_per_sec: u64) {
        let bytes_per_sec = match &self.pace.own {
            Some((set, _)) => (*set).min(bytes_per_sec),
            None => bytes_per_sec,
        };
        self.pace.own = Some((bytes_per_sec.max(1), Pacer::default()));
    }

    /// Reads and discards whatever the handler left unread. Returns whether the connection may be
    /// kept open for another request.
    pub(crate) async fn discard_rest(&mut self, stats: &Stats) -> bool {
        if self.ended || self.inner.is_end_stream() {
            return true;
        }
        if (self.expect_continue && !self.polled)
            || self.declared_len.is_some_and(|len| len > DISCARD_LIMIT)
        {
            return false;
        }
        let discard = async {
            let mut discarded = 0u64;
            while let Some(frame) = self.frame().await {
                let Ok(frame) = frame else { return false };
                if let Ok(data) = frame.into_data() {
                    discarded += data.len() as u64;
                    stats.add_received(data.len() as u64);
                    if discarded > DISCARD_LIMIT {
                        return false;
                    }
                }
            }
            true
        };
        tokio::time::timeout(DISCARD_TIMEOUT, discard)
            .await
            .unwrap_or(false)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(activity) = &self.activity {
            activity.body_waiting(false);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(pause) = this.pace.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pace.pause = None;
        }
        this.polled = true;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Only here does the server wait on the client; a throttle pause above is the server's own.
        if let Some(activity) = &this.activity {
            activity.body_waiting(polled.is_pending());
        }
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.ended = true;
        }
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(through) = this.pace.reserve(data.len() as u64)
        {
            this.pace.pause = Some(Box::pin(tokio::time::sleep_until(through)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
