//! The request body as handlers see it: hyper's body, plus what the server needs to know afterwards
//! to answer cleanly when a handler did not read all of it.
//!
//! When a request fails before its body is read (a bad signature on an 8 MiB part, say), closing the
//! connection with unread bytes in the socket makes the kernel reset it, and the client sees a
//! connection error instead of the OSS error. So the rest of a modest body is read and discarded
//! before the response goes out; a large one, or one the client is still waiting for
//! `100 Continue` to send, gets `Connection: close` instead.
//!
//! A `throttle` fault rule makes the body read slowly: after each chunk, reading pauses as long as
//! the chunk takes at the allowed rate.

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
use crate::stats::Stats;

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
    throttle: Option<Throttle>,
    /// The connection's activity, told when the handler waits for body bytes that do not come:
    /// a client that stops sending mid-body is closed after the idle timeout.
    activity: Option<Arc<Activity>>,
}

/// The allowed reading rate, and the pause owed for the last chunk read.
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: u64,
    pause: Option<Pin<Box<Sleep>>>,
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
            throttle: None,
            activity,
        }
    }

    /// Reads the body at most `bytes_per_sec` fast from now on (the slower of two caps wins: a
    /// throttle fault and the request's `x-oss-traffic-limit`).
    pub(crate) fn throttle(&mut self, bytes_per_sec: u64) {
        let bytes_per_sec = match &self.throttle {
            Some(set) => set.bytes_per_sec.min(bytes_per_sec),
            None => bytes_per_sec,
        };
        self.throttle = Some(Throttle {
            bytes_per_sec: bytes_per_sec.max(1),
            pause: None,
        });
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
        if let Some(pause) = this.throttle.as_mut().and_then(|t| t.pause.as_mut()) {
            ready!(pause.as_mut().poll(cx));
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
        if let (Some(throttle), Poll::Ready(Some(Ok(frame)))) = (&mut this.throttle, &polled) {
            throttle.pause = frame.data_ref().map(|data| {
                let secs = data.len() as f64 / throttle.bytes_per_sec as f64;
                Box::pin(tokio::time::sleep(Duration::from_secs_f64(secs)))
            });
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
