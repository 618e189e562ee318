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
use std::sync::{Mutex, mpsc};

use tokio::io::AsyncRead;
use tokio::sync::oneshot;

use super::Source;
use crate::SourceStamp;

/// The reader of a stream, once taken.
pub(crate) enum StreamReader {
    /// Read on the runtime, into each part's buffer.
    Async(Pin<Box<dyn AsyncRead + Send>>),
    /// A blocking reader on a thread of its own, which reads into each part's buffer in place.
    Blocking(ReaderThread),
}

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
            reader: Mutex::new(Some(StreamReader::Async(Box::pin(reader)))),
        }
    }

    /// The bytes a blocking `reader` yields, read on a thread of its own straight into the part
    /// buffers (no copy, and nothing read ahead of a free buffer). For the blocking API, and for
    /// standard input.
    ///
    /// ```
    /// let stream = ossup::StreamSource::from_read(std::io::Cursor::new(vec![7u8; 1000]), "cursor");
    /// assert_eq!(ossup::Source::identity(&stream), "stream:cursor");
    /// ```
    pub fn from_read(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self {
            identity: format!("stream:{}", name.into()),
            name: None,
            reader: Mutex::new(Some(StreamReader::Blocking(ReaderThread::start(reader)))),
        }
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

/// Work for the reader thread: it is handed the reader.
type Job = Box<dyn FnOnce(&mut dyn Read) + Send>;

/// A blocking reader kept on a thread of its own, and a way to run work that reads from it there.
///
/// A plain thread, not the runtime's blocking pool: a read of standard input may block for as long
/// as the writer likes, and a runtime waits for its blocking tasks when it shuts down. The thread
/// ends once this handle is dropped and its last job is done (or, blocked in a read, with the
/// process).
pub(crate) struct ReaderThread {
    jobs: Result<mpsc::Sender<Job>, io::Error>,
}

impl ReaderThread {
    fn start(mut reader: impl Read + Send + 'static) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("ossup-stream-reader".into())
            .spawn(move || {
                for job in queue {
                    job(&mut reader);
                }
            });
        Self {
            jobs: spawned.map(|_| jobs),
        }
    }

    /// Runs `job` with the reader on the reader's thread and returns what it returned.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Read) -> T + Send + 'static,
    ) -> io::Result<T> {
        let jobs = self.jobs.as_ref().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start the thread that reads the stream: {e}"),
            )
        })?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |reader| {
            let _ = done.send(job(reader));
        });
        let gone = || io::Error::other("the thread that reads the stream ended");
        jobs.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blocking_reader_is_read_on_its_own_thread_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let stream = StreamSource::from_read(io::Cursor::new(data.clone()), "t");
        let Some(StreamReader::Blocking(thread)) = stream.take_reader() else {
            panic!("a Read is read on a thread of its own");
        };
        assert!(stream.take_reader().is_none(), "a stream is read once");
        let mut out = Vec::new();
        while let Some(chunk) = thread
            .run(|reader| {
                let mut chunk = vec![0u8; 1 << 20];
                let n = reader.read(&mut chunk).unwrap();
                let name = std::thread::current().name().map(str::to_owned);
                assert_eq!(name.as_deref(), Some("ossup-stream-reader"));
                (n > 0).then(|| chunk[..n].to_vec())
            })
            .await
            .unwrap()
        {
            out.extend(chunk);
        }
        assert_eq!(out, data);
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
