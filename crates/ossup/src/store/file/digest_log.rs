//! The file store's [`DigestCache`]: one append-only JSON Lines file, `digests.jsonl`, read whole
//! when first used and rewritten compactly when most of its lines are superseded.
//!
//! A digest is a hint, not a record of what the server holds: a torn last line (a kill in the
//! middle of an append) or an unreadable file only costs a read of the files it named.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::disk::write_atomically;
use super::{io_error, lock};
use crate::store::{FileDigest, StoreError, private_file_options, restrict_to_owner};

/// The name of the digest file in the store's directory.
pub(super) const DIGEST_FILE: &str = "digests.jsonl";

/// Lines beyond the live entries (superseded or torn) tolerated before the file is compacted.
const SLACK_LINES: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Line {
    path: String,
    digest: FileDigest,
}

#[derive(Debug)]
struct Loaded {
    digests: HashMap<String, FileDigest>,
    file: File,
}

/// The digests of one store directory, loaded once per process on first use.
#[derive(Debug, Default)]
pub(super) struct DigestLog {
    loaded: OnceCell<Mutex<Loaded>>,
}

impl DigestLog {
    pub(super) async fn digest(
        &self,
        dir: &Path,
        path: &str,
    ) -> Result<Option<FileDigest>, StoreError> {
        let loaded = self.loaded(dir).await?;
        Ok(lock(loaded).digests.get(path).cloned())
    }

    pub(super) async fn record(
        &self,
        dir: &Path,
        path: &str,
        digest: &FileDigest,
    ) -> Result<(), StoreError> {
        let loaded = self.loaded(dir).await?;
        let mut line = serde_json::to_vec(&Line {
            path: path.to_owned(),
            digest: digest.clone(),
        })
        .map_err(|e| StoreError::Other(format!("cannot encode the digest of {path}: {e}")))?;
        line.push(b'\n');
        let mut loaded = lock(loaded);
        // One write per line, appended: a crash tears at most the last line.
        loaded
            .file
            .write_all(&line)
            .map_err(|e| io_error(&dir.join(DIGEST_FILE), e))?;
        loaded.digests.insert(path.to_owned(), digest.clone());
        Ok(())
    }

    async fn loaded(&self, dir: &Path) -> Result<&Mutex<Loaded>, StoreError> {
        self.loaded
            .get_or_try_init(|| async {
                let dir = dir.to_owned();
                tokio::task::spawn_blocking(move || load(&dir))
                    .await
                    .map_err(|e| {
                        StoreError::Other(format!("loading the digest file panicked: {e}"))
                    })?
                    .map(Mutex::new)
            })
            .await
    }
}

fn load(dir: &Path) -> Result<Loaded, StoreError> {
    let path = dir.join(DIGEST_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&path, e)),
    };
    let mut digests = HashMap::new();
    let mut lines = 0usize;
    for raw in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        lines += 1;
        match serde_json::from_slice::<Line>(raw) {
            Ok(line) => {
                digests.insert(line.path, line.digest);
            }
            Err(e) => {
                tracing::debug!(file = %path.display(), %e, "skipping an unreadable digest line")
            }
        }
    }
    let torn_tail = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let file = if torn_tail || lines > digests.len() + SLACK_LINES {
        compact(dir, &path, &digests)?
    } else {
        let file = private_file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        restrict_to_owner(&file, &path).map_err(|e| io_error(&path, e))?;
        file
    };
    Ok(Loaded { digests, file })
}

/// Rewrites the file with one line per live entry, atomically, and returns it open for appending.
fn compact(
    dir: &Path,
    path: &Path,
    digests: &HashMap<String, FileDigest>,
) -> Result<File, StoreError> {
    let mut bytes = Vec::with_capacity(digests.len() * 160);
    for (file, digest) in digests {
        let line = Line {
            path: file.clone(),
            digest: digest.clone(),
        };
        serde_json::to_writer(&mut bytes, &line)
            .map_err(|e| StoreError::Other(format!("cannot encode the digest of {file}: {e}")))?;
        bytes.push(b'\n');
    }
    write_atomically(dir, path, &bytes).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;
    use crate::store::FileStat;

    fn digest(n: u64) -> FileDigest {
        FileDigest {
            stat: FileStat {
                size: n,
                modified_nanos: 1_700_000_000_000_000_000 + n as i128,
                inode: n,
            },
            md5: Some([n as u8; 16]),
            crc64: n * 31,
        }
    }

    #[tokio::test]
    async fn digests_survive_a_new_process_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let log = DigestLog::default();
        log.record(dir.path(), "/a", &digest(1)).await.unwrap();
        log.record(dir.path(), "/a", &digest(2)).await.unwrap();
        log.record(dir.path(), "/b", &digest(3)).await.unwrap();

        let again = DigestLog::default();
        assert_eq!(
            again.digest(dir.path(), "/a").await.unwrap(),
            Some(digest(2))
        );
        assert_eq!(
            again.digest(dir.path(), "/b").await.unwrap(),
            Some(digest(3))
        );
        assert_eq!(again.digest(dir.path(), "/c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped_and_later_lines_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let log = DigestLog::default();
        log.record(dir.path(), "/a", &digest(1)).await.unwrap();
        let path = dir.path().join(DIGEST_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"path\":\"/b\",\"dig").unwrap();

        let again = DigestLog::default();
        assert_eq!(again.digest(dir.path(), "/b").await.unwrap(), None);
        again.record(dir.path(), "/c", &digest(4)).await.unwrap();

        let third = DigestLog::default();
        assert_eq!(
            third.digest(dir.path(), "/a").await.unwrap(),
            Some(digest(1))
        );
        assert_eq!(
            third.digest(dir.path(), "/c").await.unwrap(),
            Some(digest(4))
        );
    }

    #[tokio::test]
    async fn a_file_of_mostly_superseded_lines_is_compacted_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let log = DigestLog::default();
        for n in 0..(SLACK_LINES as u64 + 10) {
            log.record(dir.path(), "/same", &digest(n)).await.unwrap();
        }
        let again = DigestLog::default();
        assert_eq!(
            again.digest(dir.path(), "/same").await.unwrap(),
            Some(digest(SLACK_LINES as u64 + 9))
        );
        let text = fs::read_to_string(dir.path().join(DIGEST_FILE)).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
