//! [`ResponseBody`]: the streaming body of a response, whatever the transport.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::Error;

type BoxedBody = Pin<Box<dyn Body<Data = Bytes, Error = Error> + Send + 'static>>;

/// The body of a response: a stream of byte chunks, read once.
///
/// Transports wrap their own body type with [`ResponseBody::new`]; tests and layers that buffer a
/// body use [`ResponseBody::from_bytes`].
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    Full(Option<Bytes>),
    Stream(BoxedBody),
}

impl ResponseBody {
    /// A body streaming from any [`http_body::Body`] whose errors are already this crate's.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes, Error = Error> + Send + 'static,
    {
        Self {
            inner: Inner::Stream(Box::pin(body)),
        }
    }

    /// A body that is `bytes`.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
        }
    }

    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        match &mut self.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(Ok)),
            Inner::Stream(body) => loop {
                match body.as_mut().poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        // Trailers carry nothing OSS uses.
                        Err(_) => continue,
                    },
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }

    /// Reads the whole body, failing when it is longer than `limit` bytes.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, Error> {
        if let Inner::Full(bytes) = &mut self.inner {
            let bytes = bytes.take().unwrap_or_default();
            return if bytes.len() > limit {
                Err(too_long(limit))
            } else {
                Ok(bytes)
            };
        }
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            let total = buf.len() + first.as_ref().map_or(0, Bytes::len) + chunk.len();
            if total > limit {
                return Err(too_long(limit));
            }
            match first.take() {
                None if buf.is_empty() => first = Some(chunk),
                None => buf.extend_from_slice(&chunk),
                Some(f) => {
                    buf.extend_from_slice(&f);
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(first.unwrap_or_else(|| buf.freeze()))
    }

    /// Fails the body with a timeout error when no chunk arrives for `idle`.
    pub fn with_idle_timeout(self, idle: Duration) -> Self {
        match self.inner {
            Inner::Full(_) => self,
            Inner::Stream(body) => Self::new(IdleTimeout {
                body,
                idle,
                sleep: Box::pin(tokio::time::sleep(idle)),
                waiting: false,
            }),
        }
    }
}

fn too_long(limit: usize) -> Error {
    Error::network_permanent(format!(
        "response body is longer than the {limit} bytes expected"
    ))
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Full(b) => write!(
                f,
                "ResponseBody({} bytes)",
                b.as_ref().map_or(0, Bytes::len)
            ),
            Inner::Stream(_) => f.write_str("ResponseBody(stream)"),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.get_mut()
            .poll_chunk(cx)
            .map(|c| c.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream(body) => body.size_hint(),
        }
    }
}

/// A body that fails when its inner body yields nothing for `idle` while it is being read.
///
/// The clock runs only while the reader waits, so a reader that pauses between chunks is not
/// mistaken for a stalled server.
struct IdleTimeout {
    body: BoxedBody,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match this.body.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.sleep.as_mut().reset(Instant::now() + this.idle);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::timeout(format!(
                        "response body stalled: no data for {:?}",
                        this.idle
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn streaming(chunks: Vec<&'static [u8]>) -> ResponseBody {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Error>(Frame::data(Bytes::from_static(c)))),
        );
        ResponseBody::new(StreamBody::new(stream))
    }

    #[tokio::test]
    async fn collect_joins_chunks_and_enforces_the_limit() {
        let body = streaming(vec![b"ab", b"", b"cd", b"e"]);
        assert_eq!(body.collect(5).await.unwrap(), Bytes::from_static(b"abcde"));
        let body = streaming(vec![b"ab", b"cd"]);
        assert!(body.collect(3).await.is_err());
        assert_eq!(
            ResponseBody::from_bytes("xyz").collect(3).await.unwrap(),
            "xyz"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fails_a_stalled_body() {
        let stream = futures::stream::pending::<Result<Frame<Bytes>, Error>>();
        let body =
            ResponseBody::new(StreamBody::new(stream)).with_idle_timeout(Duration::from_secs(5));
        let err = body.collect(10).await.unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("stalled"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_pausing_between_chunks_is_not_a_stall() {
        let (tx, rx) = tokio::sync::mpsc::channel::<&'static [u8]>(1);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, Error>(Frame::data(Bytes::from_static(chunk))), rx))
        });
        let mut body =
            ResponseBody::new(StreamBody::new(stream)).with_idle_timeout(Duration::from_secs(5));
        tx.send(b"a").await.unwrap();
        assert_eq!(body.chunk().await.unwrap().unwrap(), "a");
        // The reader is busy elsewhere for a minute; then the server takes a second to send more.
        tokio::time::sleep(Duration::from_secs(60)).await;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send(b"b").await.unwrap();
        });
        assert_eq!(body.chunk().await.unwrap().unwrap(), "b");
        assert!(body.chunk().await.is_none());
    }
}
