//! Reading the source: its stamp, and parts read and hashed (MD5 and CRC-64) in one pass.

use std::sync::Arc;

use ossup_proto::checksum::{Crc64, Md5};

use super::ChecksumMode;
use crate::buffer::{BufferPool, PartBuffer};
use crate::{Error, PartSpec, Source, SourceStamp};

/// How much of each part is read and hashed at a time: small enough to stay in the CPU cache between
/// the read, the MD5 and the CRC-64, so the three share one pass over memory.
const READ_CHUNK: usize = 256 << 10;

/// The checksums of one part's bytes, computed as they were read.
pub(crate) struct Hashed {
    /// The MD5, unless the upload is CRC-64-only.
    pub(crate) md5: Option<[u8; 16]>,
    /// The CRC-64/XZ.
    pub(crate) crc64: u64,
}

/// MD5 (unless CRC-64-only) and CRC-64, fed the same chunks.
struct Hasher {
    md5: Option<Md5>,
    crc: Crc64,
}

impl Hasher {
    fn new(mode: ChecksumMode) -> Self {
        Self {
            md5: (mode == ChecksumMode::Md5).then(Md5::new),
            crc: Crc64::new(),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5.update(chunk);
        }
        self.crc.update(chunk);
    }

    fn finish(self) -> Hashed {
        Hashed {
            md5: self.md5.map(Md5::finish),
            crc64: self.crc.finish(),
        }
    }
}

/// Reads `part` into `buf` and hashes it, a cache-sized chunk at a time.
fn read_and_hash(
    source: &dyn Source,
    part: &PartSpec,
    buf: &mut [u8],
    mode: ChecksumMode,
) -> std::io::Result<Hashed> {
    let mut hasher = Hasher::new(mode);
    let mut offset = part.offset;
    for chunk in buf.chunks_mut(READ_CHUNK) {
        source.read_exact_at(offset, chunk)?;
        hasher.update(chunk);
        offset += chunk.len() as u64;
    }
    Ok(hasher.finish())
}

/// Hashes `part`'s range of the source without keeping it: one pass through one cache-sized chunk.
fn hash_range(source: &dyn Source, part: &PartSpec, mode: ChecksumMode) -> std::io::Result<Hashed> {
    let mut hasher = Hasher::new(mode);
    let mut chunk = vec![0u8; part.size.min(READ_CHUNK as u64) as usize];
    let end = part.offset + part.size;
    let mut offset = part.offset;
    while offset < end {
        let len = (end - offset).min(chunk.len() as u64) as usize;
        source.read_exact_at(offset, &mut chunk[..len])?;
        hasher.update(&chunk[..len]);
        offset += len as u64;
    }
    Ok(hasher.finish())
}

/// The error of reading `part`'s range of the source.
fn read_error(part: &PartSpec, e: std::io::Error) -> Error {
    Error::source_io(
        format!(
            "cannot read bytes {}..{} of the source",
            part.offset,
            part.offset + part.size
        ),
        e,
    )
    .with_part(part.number)
}

/// Hashes `part`'s range of the source on a blocking thread (to judge a listed part the checkpoint
/// has no record of).
pub(crate) async fn hash_part(
    source: Arc<dyn Source>,
    part: PartSpec,
    mode: ChecksumMode,
) -> Result<Hashed, Error> {
    // The blocking thread carries the part's span, so what the source logs is told apart by part.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| hash_range(source.as_ref(), &part, mode)))
        .await
        .map_err(|e| Error::internal(format!("hashing part {} panicked: {e}", part.number)))?
        .map_err(|e| read_error(&part, e))
}

/// Reads and hashes `part` on a blocking thread, into a buffer from `pool`.
pub(super) async fn read_part(
    source: &Arc<dyn Source>,
    pool: &Arc<BufferPool>,
    part: PartSpec,
    mode: ChecksumMode,
) -> Result<(PartBuffer, Hashed), Error> {
    let len = usize::try_from(part.size)
        .map_err(|_| Error::config(format!("part size {} does not fit in memory", part.size)))?;
    let mut buffer = pool.acquire(len).await;
    let source = source.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let hashed = read_and_hash(source.as_ref(), &part, buffer.as_mut(), mode);
        (buffer, hashed)
    })
    .await
    .map_err(|e| Error::internal(format!("reading part {} panicked: {e}", part.number)))
    .and_then(|(buffer, hashed)| {
        let hashed = hashed.map_err(|e| read_error(&part, e))?;
        Ok((buffer, hashed))
    })
}

/// Hashes the bytes in `buffer` on a blocking thread (a part of a stream, read already).
pub(super) async fn hash_buffer(
    mut buffer: PartBuffer,
    mode: ChecksumMode,
) -> Result<(PartBuffer, Hashed), Error> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut hasher = Hasher::new(mode);
        for chunk in buffer.as_mut().chunks(READ_CHUNK) {
            hasher.update(chunk);
        }
        (buffer, hasher.finish())
    })
    .await
    .map_err(|e| Error::internal(format!("hashing a part of the stream panicked: {e}")))
}

/// The source's stamp, read on a blocking thread.
pub(crate) async fn stamp_of(source: &Arc<dyn Source>) -> Result<SourceStamp, Error> {
    let source = source.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| source.stamp()))
        .await
        .map_err(|e| Error::internal(format!("reading the source's stamp panicked: {e}")))?
        .map_err(|e| Error::source_io("cannot read the source's size and modification time", e))
}

/// Fails when the source no longer has `stamp` (it changed while being uploaded).
pub(super) async fn ensure_unchanged(
    source: &Arc<dyn Source>,
    stamp: SourceStamp,
) -> Result<(), Error> {
    let now = stamp_of(source).await?;
    if now != stamp {
        return Err(Error::source_changed(format!(
            "the source changed while it was being uploaded (size {} -> {}, modified {:?} -> {:?}); run the upload again to start over",
            stamp.size, now.size, stamp.modified_nanos, now.modified_nanos
        )));
    }
    Ok(())
}
