//! Blob files: the bytes of parts and objects, streamed to disk as they arrive and streamed back out.
//!
//! A request body is gathered in batches of about [`WRITE_BATCH`] bytes as it arrives; each batch (the
//! frames themselves, hyper's `Bytes`, never copied) goes two ways at once while the connection's
//! task receives the next one: to the MD5 thread ([`Md5Lanes`]), which hashes it together with the
//! batches of every other body being received, and to the blocking pool, which adds it to the
//! CRC-64 and writes it to a new blob file with one `write_vectored`. A body that fits in one
//! batch is hashed on the blocking pool with its write instead: the hand-off would cost a small
//! body more than its MD5. The task that reads the socket never hashes: MD5 costs about as much
//! CPU as everything else the mock does per byte, and done inline it would hold back the reading
//! of the socket (and so the client) for as long. One batch is hashed and written while one is
//! gathered, so a body costs at most two batches of memory, whatever its size. A blob nobody has
//! committed is removed when its [`ReceivedBlob`] is dropped; one a crash left behind is removed at
//! the next start, since no record names it.
//!
//! Readers pin the blobs they stream from ([`BlobPins`]); a blob released while pinned (its object was
//! overwritten or deleted) is removed when the last reader lets go.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use http_body::Body;
use http_body_util::BodyExt;
use ossup_proto::checksum::Crc64;
use tokio::task::{JoinHandle, spawn_blocking};

use super::md5_lanes::{Md5Body, Md5Lanes, Md5State, Pending};
use crate::config::Durability;
use crate::stats::Stats;

/// How many bytes a read of an object hands to the connection at a time (one blocking read each).
const READ_CHUNK: usize = 256 * 1024;

/// How many bytes of a body are gathered before they are written to the blob in one go.
const WRITE_BATCH: usize = 1024 * 1024;

/// At most this many frames per batch: `writev` takes at most 1024 buffers at once, and a batch of
/// many tiny frames would gain nothing by waiting for more.
const WRITE_BATCH_FRAMES: usize = 256;

/// A body fully written to a blob file and synced, not yet named by any record.
#[derive(Debug)]
pub(crate) struct ReceivedBlob {
    /// The blob's file name in the blobs directory.
    pub id: String,
    path: PathBuf,
    /// Bytes received.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// CRC-64/XZ of the bytes.
    pub crc64: u64,
    committed: bool,
}

impl ReceivedBlob {
    /// Marks the blob as named by a record: it is no longer removed on drop.
    pub(crate) fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for ReceivedBlob {
    fn drop(&mut self) {
        if !self.committed {
            // A batch write still in flight goes on into the unlinked file, which vanishes with it.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why a body could not be received.
#[derive(Debug)]
pub(crate) enum ReceiveError {
    /// The body is longer than `limit` bytes.
    TooLarge { limit: u64 },
    /// The client stopped sending before the body was complete (disconnect, short body).
    Incomplete(String),
    /// The blob could not be written.
    Io(io::Error),
}

/// Streams `body` into a new blob file `dir/id`, hashing as it goes (MD5 on `md5`'s thread), then
/// syncs it unless `durability` says not to.
///
/// Nothing is left on disk unless this returns `Ok` (and then only until the blob is dropped
/// uncommitted). Every frame counts toward `stats` and `limit` as it arrives: a body over the limit
/// fails at the frame that crosses it.
pub(crate) async fn receive<B>(
    dir: &Path,
    id: String,
    body: &mut B,
    limit: u64,
    stats: &Stats,
    durability: Durability,
    md5: &Md5Lanes,
) -> Result<ReceivedBlob, ReceiveError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    let path = dir.join(&id);
    let file = File::create_new(&path).map_err(ReceiveError::Io)?;
    let mut blob = ReceivedBlob {
        id,
        path,
        size: 0,
        md5: [0; 16],
        crc64: 0,
        committed: false,
    };
    // A body counts for the MD5 thread from its first full batch on: one that fits in a single
    // batch is hashed where it is written, and no round of the thread should wait for it.
    let mut lanes: Option<Md5Body> = None;
    let mut writer = BatchWriter::Idle(Box::new(Sink::new(file)), Md5State::new());
    let mut batch = Batch::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReceiveError::Incomplete(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        stats.add_received(data.len() as u64);
        blob.size += data.len() as u64;
        if blob.size > limit {
            return Err(ReceiveError::TooLarge { limit });
        }
        if data.is_empty() {
            continue;
        }
        batch.push(data);
        if batch.is_full() {
            let body = lanes.get_or_insert_with(|| md5.body());
            writer
                .write(batch.take(), body)
                .await
                .map_err(ReceiveError::Io)?;
        }
    }
    (blob.md5, blob.crc64) = writer
        .finish(batch.take(), durability, lanes.as_ref())
        .await
        .map_err(ReceiveError::Io)?;
    Ok(blob)
}

/// Frames of a body waiting to be written together.
#[derive(Debug, Default)]
struct Batch {
    frames: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push(frame);
    }

    fn is_full(&self) -> bool {
        self.bytes >= WRITE_BATCH || self.frames.len() >= WRITE_BATCH_FRAMES
    }

    fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        std::mem::take(&mut self.frames)
    }
}

/// A blob file being written and the CRC-64 of the bytes written to it so far: what a batch's task
/// on the blocking pool takes, and hands back with the outcome.
#[derive(Debug)]
struct Sink {
    file: File,
    crc: Crc64,
}

impl Sink {
    fn new(file: File) -> Self {
        Self {
            file,
            crc: Crc64::new(),
        }
    }

    /// Adds the frames to the CRC-64, then writes them: read while they are fresh in the cache.
    fn take(&mut self, frames: &[Bytes]) -> io::Result<()> {
        for frame in frames {
            self.crc.update(frame);
        }
        write_frames(&mut self.file, frames)
    }
}

/// Hashes and writes batches of one body, one batch at a time, in order: its MD5 on the MD5 thread,
/// its CRC-64 and its write on the blocking pool, both at once.
#[derive(Debug)]
enum BatchWriter {
    /// No batch in flight: the file, the CRC-64 and the MD5 state are here.
    Idle(Box<Sink>, Md5State),
    /// A batch is being hashed and written; each side hands its part back with the outcome.
    Busy(JoinHandle<(Box<Sink>, io::Result<()>)>, Pending),
    /// A write failed: the error was returned, nothing more is written.
    Failed,
}

impl BatchWriter {
    /// Waits for the batch in flight, if any, and takes the sink and the MD5 state back.
    async fn settle(&mut self) -> io::Result<(Box<Sink>, Md5State)> {
        match std::mem::replace(self, BatchWriter::Failed) {
            BatchWriter::Idle(sink, md5) => Ok((sink, md5)),
            BatchWriter::Busy(task, md5) => {
                let (sink, written) = task.await.map_err(|e| {
                    io::Error::other(format!("writing the blob stopped short: {e}"))
                })?;
                written?;
                Ok((sink, md5.wait().await?))
            }
            BatchWriter::Failed => Err(io::Error::other(
                "an earlier write of this blob failed; nothing more is written to it",
            )),
        }
    }

    /// Starts hashing and writing `batch` once the previous batch is done; returns without waiting
    /// for it.
    async fn write(&mut self, batch: Vec<Bytes>, body: &Md5Body) -> io::Result<()> {
        self.start(batch, |md5, frames| body.hash(md5, frames))
            .await
    }

    /// Starts `batch` on its two ways: its MD5 by `hash`, its CRC-64 and write on the blocking pool.
    async fn start(
        &mut self,
        batch: Vec<Bytes>,
        hash: impl FnOnce(Md5State, Vec<Bytes>) -> Pending,
    ) -> io::Result<()> {
        let (mut sink, md5) = self.settle().await?;
        let md5 = hash(md5, batch.clone());
        *self = BatchWriter::Busy(
            spawn_blocking(move || {
                let written = sink.take(&batch);
                (sink, written)
            }),
            md5,
        );
        Ok(())
    }

    /// Hashes and writes the last batch (possibly empty) after the others and syncs the file if
    /// `durability` asks for it; returns the MD5 and CRC-64 of every byte, once all of it is done.
    /// `lanes` is the body's place on the MD5 thread, `None` if it sent no batch there.
    async fn finish(
        mut self,
        last: Vec<Bytes>,
        durability: Durability,
        lanes: Option<&Md5Body>,
    ) -> io::Result<([u8; 16], u64)> {
        let stopped = |e| io::Error::other(format!("writing the blob stopped short: {e}"));
        match lanes {
            Some(body) => {
                if !last.is_empty() {
                    self.start(last, |md5, frames| body.hash_last(md5, frames))
                        .await?;
                }
                let (sink, md5) = self.settle().await?;
                let crc = sink.crc.finish();
                if durability.fsyncs() {
                    spawn_blocking(move || sink.file.sync_all())
                        .await
                        .map_err(stopped)??;
                }
                Ok((md5.finalize(), crc))
            }
            // The whole body is this one batch: hashed where it is written (and synced), in one
            // hand-off to the blocking pool. A round of the MD5 thread would not wait for it
            // anyway, and a small body pays more for a hand-off to that thread than for its MD5.
            None => {
                let (mut sink, mut md5) = self.settle().await?;
                if last.is_empty() && !durability.fsyncs() {
                    return Ok((md5.finalize(), sink.crc.finish()));
                }
                spawn_blocking(move || {
                    for frame in &last {
                        md5.update(frame);
                    }
                    sink.take(&last)?;
                    if durability.fsyncs() {
                        sink.file.sync_all()?;
                    }
                    Ok((md5.finalize(), sink.crc.finish()))
                })
                .await
                .map_err(stopped)?
            }
        }
    }
}

/// Writes every byte of `frames`, in order, with as few system calls as the kernel allows.
fn write_frames(file: &mut File, frames: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the file system accepted no more bytes of the blob",
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Counts readers per blob and defers removing a blob until nobody reads it.
#[derive(Debug)]
pub(crate) struct PinTable {
    dir: PathBuf,
    state: Mutex<PinState>,
}

#[derive(Debug, Default)]
struct PinState {
    readers: HashMap<String, usize>,
    doomed: HashSet<String>,
}

impl PinTable {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            state: Mutex::new(PinState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins `blobs` until the returned guard is dropped.
    pub(crate) fn pin(self: &Arc<Self>, blobs: Vec<String>) -> BlobPins {
        let mut state = self.lock();
        for blob in &blobs {
            *state.readers.entry(blob.clone()).or_default() += 1;
        }
        BlobPins {
            table: Arc::clone(self),
            blobs,
        }
    }

    /// Removes blobs no record names any more: now, or when their last reader finishes.
    pub(crate) fn release(&self, blobs: impl IntoIterator<Item = String>) {
        let mut state = self.lock();
        for blob in blobs {
            if state.readers.contains_key(&blob) {
                state.doomed.insert(blob);
            } else {
                self.remove(&blob);
            }
        }
    }

    fn unpin(&self, blobs: &[String]) {
        let mut state = self.lock();
        for blob in blobs {
            let last = match state.readers.get_mut(blob) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => true,
                None => false,
            };
            if last {
                state.readers.remove(blob);
                if state.doomed.remove(blob) {
                    self.remove(blob);
                }
            }
        }
    }

    fn remove(&self, blob: &str) {
        if let Err(e) = std::fs::remove_file(self.dir.join(blob))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove blob {blob}: {e}; it is removed at the next start");
        }
    }
}

/// Keeps blobs on disk while a response streams from them.
#[derive(Debug)]
pub(crate) struct BlobPins {
    table: Arc<PinTable>,
    blobs: Vec<String>,
}

impl Drop for BlobPins {
    fn drop(&mut self) {
        self.table.unpin(&self.blobs);
    }
}

/// Streams `len` bytes starting at `start` of the concatenation of `segments` (blob path, size).
///
/// Each chunk is one read on the blocking pool, straight into the buffer handed to the connection.
pub(crate) fn read_range(
    segments: Vec<(PathBuf, u64)>,
    start: u64,
    len: u64,
    pins: BlobPins,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let cursor = RangeCursor {
        segments,
        index: 0,
        offset: start,
        remaining: len,
        file: None,
        _pins: pins,
    };
    futures::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor.filter(|c| c.remaining > 0)?;
        let read = spawn_blocking(move || {
            let chunk = cursor.next_chunk();
            (cursor, chunk)
        })
        .await;
        match read {
            Ok((cursor, Ok(chunk))) => Some((Ok(chunk), Some(cursor))),
            Ok((_, Err(e))) => {
                tracing::error!("reading an object failed: {e}");
                Some((Err(e), None))
            }
            Err(e) => {
                tracing::error!("reading an object stopped short: {e}");
                Some((Err(io::Error::other(e)), None))
            }
        }
    })
}

/// Where a range read is: the segment, the offset in it, the bytes still to send.
struct RangeCursor {
    segments: Vec<(PathBuf, u64)>,
    index: usize,
    offset: u64,
    remaining: u64,
    file: Option<File>,
    _pins: BlobPins,
}

impl RangeCursor {
    /// Reads the next chunk (blocking): at most [`READ_CHUNK`] bytes, never across segments.
    fn next_chunk(&mut self) -> io::Result<Bytes> {
        while self.index < self.segments.len() && self.offset >= self.segments[self.index].1 {
            self.offset -= self.segments[self.index].1;
            self.index += 1;
        }
        let Some((path, size)) = self.segments.get(self.index) else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "object is shorter than its record says",
            ));
        };
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(self.offset))?;
                self.file.insert(file)
            }
        };
        let want = (READ_CHUNK as u64)
            .min(self.remaining)
            .min(size - self.offset) as usize;
        // `read_to_end` fills the spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(want);
        Read::by_ref(file).take(want as u64).read_to_end(&mut buf)?;
        if buf.len() < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {} holds fewer bytes than its record says",
                    path.display()
                ),
            ));
        }
        self.offset += want as u64;
        self.remaining -= want as u64;
        if self.offset == *size {
            self.file = None;
            self.index += 1;
            self.offset = 0;
        }
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;
    use http_body::Frame;
    use http_body_util::{Full, StreamBody};
    use ossup_proto::checksum::{crc64, md5};
    use rand::{Rng, RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A body that yields `frames` in order (an `Err` is a client gone mid-body) and counts how many
    /// the receiver pulled.
    fn framed_body(
        frames: Vec<Result<Bytes, String>>,
        pulled: Arc<AtomicUsize>,
    ) -> impl Body<Data = Bytes, Error = String> + Unpin {
        StreamBody::new(futures::stream::iter(frames.into_iter().map(move |f| {
            pulled.fetch_add(1, Ordering::SeqCst);
            f.map(Frame::data)
        })))
    }

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
        data
    }

    /// `data` cut into frames of `frame` bytes (the last one shorter).
    fn frames_of(data: &[u8], frame: usize) -> Vec<Result<Bytes, String>> {
        data.chunks(frame)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    async fn receive_frames(
        dir: &Path,
        frames: Vec<Result<Bytes, String>>,
        limit: u64,
        stats: &Stats,
        durability: Durability,
    ) -> Result<ReceivedBlob, ReceiveError> {
        let mut body = framed_body(frames, Arc::new(AtomicUsize::new(0)));
        let md5 = Md5Lanes::start().unwrap();
        receive(
            dir,
            "blob".into(),
            &mut body,
            limit,
            stats,
            durability,
            &md5,
        )
        .await
    }

    fn assert_stored(dir: &Path, blob: &ReceivedBlob, data: &[u8]) {
        assert_eq!(blob.size, data.len() as u64);
        assert_eq!(blob.md5, md5(data));
        assert_eq!(blob.crc64, crc64(data));
        assert!(std::fs::read(dir.join(&blob.id)).unwrap() == data);
    }

    #[tokio::test]
    async fn bodies_of_exactly_n_batches_and_one_byte_more_store_every_byte() {
        let frame = 64 * 1024;
        for (seed, len) in [
            (1, WRITE_BATCH),
            (2, 3 * WRITE_BATCH),
            (3, 3 * WRITE_BATCH + 1),
            (4, WRITE_BATCH - 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let stats = Stats::default();
            let data = random_bytes(seed, len);
            let blob = receive_frames(
                dir.path(),
                frames_of(&data, frame),
                u64::MAX,
                &stats,
                Durability::PowerLoss,
            )
            .await
            .unwrap();
            assert_stored(dir.path(), &blob, &data);
            assert_eq!(stats.bytes_received(), len as u64, "{len} bytes");
        }
    }

    #[tokio::test]
    async fn frames_of_any_size_and_empty_ones_are_stored_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let data = random_bytes(8, 2 * WRITE_BATCH + 12_345);
        let mut frames = Vec::new();
        let mut at = 0;
        while at < data.len() {
            // Mostly tiny frames, so batches fill by frame count, with some large ones between.
            let len = match rng.gen_range(0..200) {
                0..10 => 0,
                10 => rng.gen_range(100_000..300_000),
                _ => rng.gen_range(1..2_000),
            }
            .min(data.len() - at);
            frames.push(Ok(Bytes::copy_from_slice(&data[at..at + len])));
            at += len;
        }
        assert!(
            frames.len() > 3 * WRITE_BATCH_FRAMES,
            "{} frames",
            frames.len()
        );
        for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
            let dir = tempfile::tempdir().unwrap();
            let blob = receive_frames(
                dir.path(),
                frames.clone(),
                data.len() as u64,
                &Stats::default(),
                durability,
            )
            .await
            .unwrap();
            assert_stored(dir.path(), &blob, &data);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_received_at_once_share_the_md5_thread_and_each_gets_its_own_digests() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        let md5 = Md5Lanes::start().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let bodies: Vec<(Vec<u8>, usize)> = (0..12)
            .map(|n| {
                let len = rng.gen_range(0..3 * WRITE_BATCH);
                (random_bytes(100 + n, len), rng.gen_range(1..70_000))
            })
            .collect();
        let received =
            futures::future::join_all(bodies.iter().enumerate().map(|(n, (data, frame))| {
                let mut body = framed_body(frames_of(data, *frame), Arc::new(AtomicUsize::new(0)));
                let (dir, stats, md5) = (dir.path(), &stats, &md5);
                async move {
                    let durability = Durability::ProcessCrash;
                    receive(
                        dir,
                        format!("b{n}"),
                        &mut body,
                        u64::MAX,
                        stats,
                        durability,
                        md5,
                    )
                    .await
                }
            }))
            .await;
        for (blob, (data, _)) in received.into_iter().zip(&bodies) {
            assert_stored(dir.path(), &blob.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn an_empty_body_is_an_empty_blob_with_or_without_fsync() {
        for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
            let dir = tempfile::tempdir().unwrap();
            let blob = receive_frames(dir.path(), Vec::new(), 0, &Stats::default(), durability)
                .await
                .unwrap();
            assert_stored(dir.path(), &blob, b"");
        }
    }

    #[tokio::test]
    async fn a_body_crossing_the_limit_mid_batch_stops_at_that_frame_and_leaves_nothing() {
        let frame = 64 * 1024;
        let data = random_bytes(9, 3 * WRITE_BATCH);
        // One whole batch is written, then the limit falls inside the fourth frame of the next.
        let limit = (WRITE_BATCH + 3 * frame + 10) as u64;
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut body = framed_body(frames_of(&data, frame), Arc::clone(&pulled));
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        let err = receive(
            dir.path(),
            "blob".into(),
            &mut body,
            limit,
            &stats,
            Durability::PowerLoss,
            &Md5Lanes::start().unwrap(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge { limit: l } if l == limit));
        let crossing = WRITE_BATCH / frame + 4;
        assert_eq!(pulled.load(Ordering::SeqCst), crossing);
        assert_eq!(stats.bytes_received(), (crossing * frame) as u64);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_body_cut_off_after_several_batches_is_incomplete_and_leaves_nothing() {
        let data = random_bytes(10, 2 * WRITE_BATCH + 5_000);
        let mut frames = frames_of(&data, 50_000);
        frames.push(Err("connection reset".to_owned()));
        frames.push(Ok(Bytes::from_static(b"never read")));
        let dir = tempfile::tempdir().unwrap();
        let err = receive_frames(
            dir.path(),
            frames,
            u64::MAX,
            &Stats::default(),
            Durability::ProcessCrash,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReceiveError::Incomplete(ref m) if m == "connection reset"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_blob_that_cannot_be_created_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blob"), b"taken").unwrap();
        let err = receive_frames(
            dir.path(),
            frames_of(b"data", 2),
            100,
            &Stats::default(),
            Durability::PowerLoss,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReceiveError::Io(ref e) if e.kind() == io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read(dir.path().join("blob")).unwrap(), b"taken");
    }

    #[tokio::test]
    async fn received_blob_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        let mut body = Full::new(Bytes::from_static(b"123456789"));
        let blob = receive(
            dir.path(),
            "a".into(),
            &mut body,
            100,
            &stats,
            Durability::PowerLoss,
            &Md5Lanes::start().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(blob.crc64, 0x995d_c9bb_df19_39fa);
        assert_eq!(blob.size, 9);
        drop(blob);
        assert!(!dir.path().join("a").exists());

        let mut body = Full::new(Bytes::from_static(b"x"));
        let blob = receive(
            dir.path(),
            "b".into(),
            &mut body,
            100,
            &stats,
            Durability::PowerLoss,
            &Md5Lanes::start().unwrap(),
        )
        .await
        .unwrap();
        blob.commit();
        assert!(dir.path().join("b").exists());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        let mut body = Full::new(Bytes::from_static(b"0123456789"));
        let err = receive(
            dir.path(),
            "a".into(),
            &mut body,
            5,
            &stats,
            Durability::PowerLoss,
            &Md5Lanes::start().unwrap(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge { limit: 5 }));
        assert!(!dir.path().join("a").exists());
    }

    #[tokio::test]
    async fn ranges_span_segments_and_skip_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(PinTable::new(dir.path().to_owned()));
        let mut segments = Vec::new();
        for (name, data) in [("a", "hello "), ("e", ""), ("b", "big "), ("c", "world")] {
            std::fs::write(dir.path().join(name), data).unwrap();
            segments.push((dir.path().join(name), data.len() as u64));
        }
        let pins = table.pin(vec!["a".into(), "b".into(), "c".into()]);
        let chunks: Vec<_> = read_range(segments, 4, 9, pins).collect().await;
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(bytes, b"o big wor");
    }

    #[tokio::test]
    async fn long_ranges_read_in_chunks_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(PinTable::new(dir.path().to_owned()));
        let sizes = [READ_CHUNK * 2 + 17, 0, 10, READ_CHUNK - 1, READ_CHUNK * 3];
        let mut segments = Vec::new();
        let mut whole = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let data = random_bytes(20 + i as u64, size);
            let path = dir.path().join(format!("s{i}"));
            std::fs::write(&path, &data).unwrap();
            segments.push((path, size as u64));
            whole.extend_from_slice(&data);
        }
        let total = whole.len();
        for (start, len) in [
            (0, total),
            (READ_CHUNK + 5, total - READ_CHUNK - 5),
            (READ_CHUNK * 2 + 10, 40),
            (total - 1, 1),
        ] {
            let pins = table.pin(Vec::new());
            let chunks: Vec<Bytes> = read_range(segments.clone(), start as u64, len as u64, pins)
                .map(|c| c.unwrap())
                .collect()
                .await;
            assert!(
                chunks
                    .iter()
                    .all(|c| !c.is_empty() && c.len() <= READ_CHUNK)
            );
            let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
            assert!(bytes == whole[start..start + len], "range {start}+{len}");
        }
    }

    #[tokio::test]
    async fn a_blob_shorter_than_its_record_ends_the_read_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(PinTable::new(dir.path().to_owned()));
        let path = dir.path().join("short");
        std::fs::write(&path, random_bytes(30, 1000)).unwrap();
        let items: Vec<io::Result<Bytes>> =
            read_range(vec![(path, 5000)], 0, 5000, table.pin(Vec::new()))
                .collect()
                .await;
        assert_eq!(items.len(), 1);
        let err = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("short"), "{err}");
    }

    #[test]
    fn a_released_blob_outlives_its_readers_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"data").unwrap();
        let table = Arc::new(PinTable::new(dir.path().to_owned()));
        let pins = table.pin(vec!["x".into()]);
        table.release(["x".to_owned()]);
        assert!(dir.path().join("x").exists());
        drop(pins);
        assert!(!dir.path().join("x").exists());
    }
}
