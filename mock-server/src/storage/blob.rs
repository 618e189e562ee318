//! Blob files: the bytes of parts and objects, streamed to disk as they arrive and streamed back out.
//!
//! A request body is written chunk by chunk to a new blob file while its MD5 and CRC-64 are computed in
//! the same pass, so no body is ever held in memory. A blob nobody has committed is removed when its
//! [`ReceivedBlob`] is dropped; one a crash left behind is removed at the next start, since no record
//! names it.
//!
//! Readers pin the blobs they stream from ([`BlobPins`]); a blob released while pinned (its object was
//! overwritten or deleted) is removed when the last reader lets go.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http_body::Body;
use http_body_util::BodyExt;
use ossup_proto::checksum::{Crc64, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::stats::Stats;

/// How many bytes a read of an object hands to the connection at a time.
const READ_CHUNK: usize = 64 * 1024;

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
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for ReceivedBlob {
    fn drop(&mut self) {
        if !self.committed {
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

/// Streams `body` into a new blob file `dir/id`, hashing as it goes, then syncs it.
///
/// Nothing is left on disk unless this returns `Ok` (and then only until the blob is dropped
/// uncommitted).
pub(crate) async fn receive<B>(
    dir: &Path,
    id: String,
    body: &mut B,
    limit: u64,
    stats: &Stats,
) -> Result<ReceivedBlob, ReceiveError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    let path = dir.join(&id);
    let std_file = std::fs::File::create_new(&path).map_err(ReceiveError::Io)?;
    let mut blob = ReceivedBlob {
        id,
        path,
        size: 0,
        md5: [0; 16],
        crc64: 0,
        committed: false,
    };
    let mut file = tokio::fs::File::from_std(std_file);
    file.set_max_buf_size(READ_CHUNK * 4);
    let mut md5 = Md5::new();
    let mut crc = Crc64::new();
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
        md5.update(&data);
        crc.update(&data);
        file.write_all(&data).await.map_err(ReceiveError::Io)?;
    }
    file.flush().await.map_err(ReceiveError::Io)?;
    file.sync_all().await.map_err(ReceiveError::Io)?;
    blob.md5 = md5.finish();
    blob.crc64 = crc.finish();
    Ok(blob)
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
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            state: Mutex::new(PinState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins `blobs` until the returned guard is dropped.
    pub fn pin(self: &Arc<Self>, blobs: Vec<String>) -> BlobPins {
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
    pub fn release(&self, blobs: impl IntoIterator<Item = String>) {
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
pub(crate) fn read_range(
    segments: Vec<(PathBuf, u64)>,
    start: u64,
    len: u64,
    pins: BlobPins,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    struct Cursor {
        segments: Vec<(PathBuf, u64)>,
        index: usize,
        offset: u64,
        remaining: u64,
        file: Option<tokio::fs::File>,
        _pins: BlobPins,
    }

    async fn next_chunk(c: &mut Cursor) -> io::Result<Bytes> {
        if c.file.is_none() {
            while c.index < c.segments.len() && c.offset >= c.segments[c.index].1 {
                c.offset -= c.segments[c.index].1;
                c.index += 1;
            }
            let Some((path, _)) = c.segments.get(c.index) else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object is shorter than its record says",
                ));
            };
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(SeekFrom::Start(c.offset)).await?;
            c.file = Some(file);
        }
        let segment_left = c.segments[c.index].1 - c.offset;
        let want = (READ_CHUNK as u64).min(c.remaining).min(segment_left) as usize;
        let mut buf = BytesMut::zeroed(want);
        if let Some(file) = c.file.as_mut() {
            file.read_exact(&mut buf).await?;
        }
        c.offset += want as u64;
        c.remaining -= want as u64;
        if c.offset == c.segments[c.index].1 {
            c.file = None;
            c.index += 1;
            c.offset = 0;
        }
        Ok(buf.freeze())
    }

    let cursor = Cursor {
        segments,
        index: 0,
        offset: start,
        remaining: len,
        file: None,
        _pins: pins,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        if c.remaining == 0 {
            return None;
        }
        match next_chunk(&mut c).await {
            Ok(bytes) => Some((Ok(bytes), c)),
            Err(e) => {
                tracing::error!("reading an object failed: {e}");
                c.remaining = 0;
                Some((Err(e), c))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::Full;

    #[tokio::test]
    async fn received_blob_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        let mut body = Full::new(Bytes::from_static(b"123456789"));
        let blob = receive(dir.path(), "a".into(), &mut body, 100, &stats)
            .await
            .unwrap();
        assert_eq!(blob.crc64, 0x995d_c9bb_df19_39fa);
        assert_eq!(blob.size, 9);
        drop(blob);
        assert!(!dir.path().join("a").exists());

        let mut body = Full::new(Bytes::from_static(b"x"));
        let blob = receive(dir.path(), "b".into(), &mut body, 100, &stats)
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
        let err = receive(dir.path(), "a".into(), &mut body, 5, &stats)
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
