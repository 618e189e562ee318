//! [`DigestCache`] for [`SqliteStore`]: the `file_digests` table.
//!
//! Digests are hints (a lost one costs a read of the file), so they are committed without waiting
//! for the disk: `synchronous = NORMAL` for their transactions, which in WAL mode keeps the database
//! consistent after a power loss and skips the fsync that every part record pays.

use ossup::StoreError;
use ossup::store::{DigestCache, FileDigest, FileStat};
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;

#[async_trait::async_trait]
impl DigestCache for SqliteStore {
    async fn digest(&self, path: &str) -> Result<Option<FileDigest>, StoreError> {
        let path = path.to_owned();
        self.run(move |db| {
            db.with(|conn| {
                let row = conn
                    .query_row(
                        "SELECT size, modified_nanos, inode, md5, crc64 FROM file_digests WHERE path = ?1",
                        [&path],
                        |row| {
                            let size: i64 = row.get(0)?;
                            let modified: Vec<u8> = row.get(1)?;
                            let inode: i64 = row.get(2)?;
                            let md5: Option<Vec<u8>> = row.get(3)?;
                            let crc64: i64 = row.get(4)?;
                            Ok((size, modified, inode, md5, crc64))
                        },
                    )
                    .optional()?;
                Ok(row.and_then(|(size, modified, inode, md5, crc64)| {
                    // A row this code did not write (wrong widths) is as good as none.
                    let modified_nanos = i128::from_le_bytes(modified.try_into().ok()?);
                    let md5 = match md5 {
                        Some(bytes) => Some(<[u8; 16]>::try_from(bytes).ok()?),
                        None => None,
                    };
                    Some(FileDigest {
                        stat: FileStat {
                            size: size as u64,
                            modified_nanos,
                            inode: inode as u64,
                        },
                        md5,
                        crc64: crc64 as u64,
                    })
                }))
            })
        })
        .await
    }

    async fn record_digest(&self, path: &str, digest: &FileDigest) -> Result<(), StoreError> {
        let (path, digest) = (path.to_owned(), digest.clone());
        self.run(move |db| {
            db.with(|conn| {
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                let written = conn.execute(
                    "INSERT OR REPLACE INTO file_digests (path, size, modified_nanos, inode, md5, crc64)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        path,
                        digest.stat.size as i64,
                        digest.stat.modified_nanos.to_le_bytes().to_vec(),
                        digest.stat.inode as i64,
                        digest.md5.map(|m| m.to_vec()),
                        digest.crc64 as i64,
                    ],
                );
                let restored = conn.pragma_update(None, "synchronous", db.synchronous());
                written?;
                restored?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_survive_reopening_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let digest = |n: u64| FileDigest {
            stat: FileStat {
                size: n,
                modified_nanos: -(n as i128) << 70,
                inode: u64::MAX - n,
            },
            md5: n.is_multiple_of(2).then_some([n as u8; 16]),
            crc64: u64::MAX - 7 * n,
        };
        let store = SqliteStore::open(&path).await.unwrap();
        store.record_digest("/a", &digest(1)).await.unwrap();
        store.record_digest("/a", &digest(2)).await.unwrap();
        store.record_digest("/b", &digest(3)).await.unwrap();
        drop(store);

        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(again.digest("/a").await.unwrap(), Some(digest(2)));
        assert_eq!(again.digest("/b").await.unwrap(), Some(digest(3)));
        assert_eq!(again.digest("/c").await.unwrap(), None);
    }
}
