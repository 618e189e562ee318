//! [`StreamSource`]: bytes of unknown length read once, in order (standard input, a pipe, any
//! `AsyncRead` or `Read`).
//!
//! A stream cannot be read by position, so it does not go through the positional phases: an upload
//! made with [`UploadRequest::stream`](crate::UploadRequest::stream) reads it part by part, holding
//! only the parts in flight, and on resume verifies the parts the server already holds against the
//! bytes as they arrive.

use std::fmt;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use super::Source;
use crate::SourceStamp;

/// How much a pumped [`Read`] hands over at a time.
const PUMP_CHUNK: usize = 1 << 20;

/// Chunks a pumped [`Read`] may read ahead of the upload: with [`PUMP_CHUNK`], 4 MiB, part of the
/// 32 MiB the memory bound allows beyond the parts in flight.
const PUMP_AHEAD: usize = 4;

/// The reader of a stream, once taken.
pub(crate) type StreamReader = Pin<Box<dyn AsyncRead + Send>>;

/// A stream of bytes whose length is not known in advance, read once from start to end.
///
/// Its identity (`stream:` and the name given here) names the upload across runs: run the same
/// stream again under the same name and key, and the parts the server already holds are verified
/// against the new bytes and not sent again.
///
/// ```
/// # async fn run(uploader: ossup::Uploader) -> Result<(), ossup::Error> {
/// use ossup::{StreamSource, UploadRequest};
///
/// let dump = tokio::io::repeat(b'x'); // any AsyncRead: a socket, a child's stdout, a decoder
/// let stream = StreamSource::new(tokio::io::AsyncReadExt::take(dump, 3 << 20), "nightly-dump");
/// let outcome = uploader
///     .upload(UploadRequest::stream(stream, "bucket", "dumps/nightly.sql"))
///     .await?;
/// assert_eq!(outcome.size, 3 << 20);
/// # Ok(()) }
/// ```
pub struct StreamSource {
    identity: String,
    name: Option<String>,
    reader: Mutex<Option<StreamReader>>,
}

impl fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSource")
            .field("identity", &self.identity)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl StreamSource {
    /// The bytes `reader` yields until its end, known across runs as `name`.
    pub fn new(reader: impl AsyncRead + Send + 'static, name: impl Into<String>) -> Self {
        Self {
            identity: format!("stream:{}", name.into()),
            name: None,
            reader: Mutex::new(Some(Box::pin(reader))),
        }
    }

    /// The bytes a blocking `reader` yields, read on a thread of its own a megabyte at a time (at
    /// most 4 MiB ahead of the upload). For the blocking API, and for standard input.
    ///
    /// ```
    /// let stream = ossup::StreamSource::from_read(std::io::Cursor::new(vec![7u8; 1000]), "cursor");
    /// assert_eq!(ossup::Source::identity(&stream), "stream:cursor");
    /// ```
    pub fn from_read(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self::new(pump(reader), name)
    }

    /// Standard input, known across runs as `stdin`.
    pub fn stdin() -> Self {
        Self::from_read(io::stdin(), "stdin")
    }

    /// Gives a file name for guessing the content type.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The reader, the first time it is asked for; a stream is read by one upload only.
    pub(crate) fn take_reader(&self) -> Option<StreamReader> {
        self.reader.lock().expect("stream reader lock").take()
    }
}

impl Source for StreamSource {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    /// A stream has no size or modification time ahead of its end: its stamp is always size 0, so
    /// it never tells a changed stream apart (the parts' bytes do, as they arrive).
    fn stamp(&self) -> io::Result<SourceStamp> {
        Ok(SourceStamp {
            size: 0,
            modified_nanos: None,
        })
    }

    fn read_exact_at(&self, offset: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} cannot be read at offset {offset}: a stream is read once, in order; upload it with UploadRequest::stream",
                self.identity
            ),
        ))
    }

    fn name_hint(&self) -> Option<String> {
        self.name.clone()
    }
}

/// Turns a blocking reader into an `AsyncRead`: a thread reads it a chunk at a time into a bounded
/// channel. The thread ends at the reader's end, at its first error (handed on), or when the
/// upload drops the stream.
fn pump(mut reader: impl Read + Send + 'static) -> impl AsyncRead + Send {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(PUMP_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("ossup-stream-reader".into())
        .spawn(move || {
            loop {
                let mut chunk = BytesMut::zeroed(PUMP_CHUNK);
                let mut filled = 0;
                // A pipe hands over at most its buffer (64 KiB) per read: fill a whole chunk so the
                // upload gets few large hand-overs.
                let outcome = loop {
                    match reader.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(true),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(false);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                chunk.truncate(filled);
                if filled > 0 && tx.blocking_send(Ok(chunk.freeze())).is_err() {
                    return;
                }
                match outcome {
                    Ok(false) => {}
                    Ok(true) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
    let failed = spawned.err();
    let chunks = futures::stream::poll_fn(move |cx| match &failed {
        Some(e) => std::task::Poll::Ready(Some(Err(io::Error::new(
            e.kind(),
            format!("cannot start the thread that reads the stream: {e}"),
        )))),
        None => rx.poll_recv(cx),
    });
    tokio_util::io::StreamReader::new(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn a_pumped_reader_yields_every_byte_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let stream = StreamSource::from_read(io::Cursor::new(data.clone()), "t");
        let mut reader = stream.take_reader().unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        assert!(stream.take_reader().is_none(), "a stream is read once");
    }

    #[tokio::test]
    async fn a_read_error_reaches_the_upload_after_the_bytes_before_it() {
        struct Dies(u8);
        impl Read for Dies {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "writer died"));
                }
                self.0 -= 1;
                buf[..10].fill(1);
                Ok(10)
            }
        }
        let mut reader = StreamSource::from_read(Dies(3), "t").take_reader().unwrap();
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(out.len(), 30);
    }

    #[test]
    fn a_stream_cannot_be_read_by_position() {
        let stream = StreamSource::new(tokio::io::empty(), "t");
        let err = stream.read_exact_at(0, &mut [0; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("UploadRequest::stream"), "{err}");
        assert_eq!(stream.stamp().unwrap().size, 0);
    }
}
