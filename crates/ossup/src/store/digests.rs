//! What ossup remembers of local files' content between runs: the [`DigestCache`] trait.
//!
//! Deciding that an object already holds a file's bytes takes the file's MD5 or CRC-64. Hashing a
//! tree of 100,000 unchanged files on every run would read all of it, so a store remembers each
//! file's digests next to the [`FileStat`] they were taken at (size, modification time, inode), and
//! the file is hashed again only when any of those changed.

use std::fmt::Debug;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// What a local file looked like when its digest was taken; a change to any field means the digest
/// no longer speaks for the file.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("a.txt"); std::fs::write(&path, b"abc")?;
/// use ossup::store::FileStat;
/// let stat = FileStat::of(&std::fs::metadata(&path)?);
/// assert_eq!(stat.size, 3);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 when the platform has none).
    pub modified_nanos: i128,
    /// The inode number (0 where the platform has none): a file replaced by another of the same
    /// size and time is still told apart.
    pub inode: u64,
}

impl FileStat {
    /// The stat of a file from its metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let modified_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            size: meta.len(),
            modified_nanos,
            inode,
        }
    }
}

/// The digests of a file's whole content, valid while the file's stat is [`FileDigest::stat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The file as it was when hashed.
    pub stat: FileStat,
    /// The MD5 of the whole file, when it was computed (an object put whole has it as its ETag).
    pub md5: Option<[u8; 16]>,
    /// The CRC-64/XZ of the whole file (OSS's `x-oss-hash-crc64ecma`).
    pub crc64: u64,
}

/// Remembers [`FileDigest`]s of local files by path, so that unchanged files are not read again to
/// learn whether the bucket already holds them.
///
/// A cache may forget (a lost entry only costs a read of the file) but must never return a digest
/// recorded for another path. [`MemoryStore`](crate::MemoryStore) and
/// [`FileStore`](crate::FileStore) implement it, as does `ossup_sqlite::SqliteStore`.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), ossup::StoreError> {
/// use ossup::store::{DigestCache, FileDigest, FileStat};
/// let store = ossup::MemoryStore::new();
/// let stat = FileStat { size: 3, modified_nanos: 1, inode: 7 };
/// let digest = FileDigest { stat, md5: None, crc64: 0x2cd8_094a_1a27_7627 };
/// store.record_digest("/data/a.txt", &digest).await?;
/// assert_eq!(store.digest("/data/a.txt").await?, Some(digest));
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait DigestCache: Send + Sync + Debug {
    /// The digest last recorded for `path`, whatever the file looks like now (the caller compares
    /// [`FileDigest::stat`] with the file's).
    async fn digest(&self, path: &str) -> Result<Option<FileDigest>, StoreError>;

    /// Records `digest` for `path`, replacing what was recorded before.
    async fn record_digest(&self, path: &str, digest: &FileDigest) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl<C: DigestCache + ?Sized> DigestCache for Arc<C> {
    async fn digest(&self, path: &str) -> Result<Option<FileDigest>, StoreError> {
        (**self).digest(path).await
    }

    async fn record_digest(&self, path: &str, digest: &FileDigest) -> Result<(), StoreError> {
        (**self).record_digest(path, digest).await
    }
}
