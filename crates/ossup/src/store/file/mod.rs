//! [`FileStore`]: one append-only journal file per upload in a directory.
//!
//! `save` writes a journal whole and atomically (temp file, fsync, rename, fsync of the directory);
//! `record_part` appends one checksummed record per batch of concurrently finished parts and syncs
//! it before returning, so recording 10,000 parts costs 10,000 small appends, not 10,000 rewrites.
//! The byte layout is in [`journal`](super::journal) and `docs/checkpoint-format.md`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::group_commit::GroupCommit;
use super::{
    CheckpointStore, DigestCache, Durability, FileDigest, StoreError, StoreLock, create_private_dir,
};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};

mod digest_log;
mod disk;
mod journal_file;
mod listing;
mod lock_file;

use digest_log::DigestLog;
use disk::remove_stale_temp_files;
use journal_file::{Journal, JournalCore};
use listing::list_journals;
use lock_file::claim_lock_file;

/// Journals kept open at once; past this, idle ones are closed (and reopened when next used).
const MAX_OPEN_JOURNALS: usize = 64;
/// A journal is compacted when it holds more than twice as many part entries as live parts, and at
/// least this many.
const COMPACT_MIN_ENTRIES: u64 = 64;

/// Checkpoints as journal files in one directory, one per upload identity, named by
/// [`UploadIdentity::fingerprint`].
///
/// - [`save`](CheckpointStore::save) is atomic: a crash leaves the old journal or the new one.
/// - [`record_part`](CheckpointStore::record_part) appends a checksummed record and syncs it (with
///   [`Durability::PowerLoss`], the default) before returning; records finished at the same time share
///   one sync.
/// - [`load`](CheckpointStore::load) replays the journal. An unfinished last record (a crash during an
///   append that was never acknowledged) is dropped; any other damage, a foreign file or a future
///   format is reported, and a damaged journal is moved aside to `<name>.corrupt-<unix time>`.
/// - [`lock`](CheckpointStore::lock) takes an advisory lock on `<name>.lock`, released when the lock
///   drops or the process dies.
///
/// Cloning gives another handle sharing the same open journals.
///
/// ```
/// use ossup::{Checkpoint, CheckpointStore, FileStore, PartRecord, SourceStamp, UploadIdentity};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = FileStore::open(dir.path())?;
/// let id = UploadIdentity::new("/data/a.bin", "bucket", "a.bin", 8 << 20);
/// let stamp = SourceStamp { size: 20 << 20, modified_nanos: Some(1_700_000_000_000_000_000) };
/// store.save(&Checkpoint::new(id.clone(), "upload-1", stamp, 1_700_000_000, "")).await?;
/// let part = PartRecord { number: 1, size: 8 << 20, etag: "\"e\"".into(), md5: Some([0; 16]), crc64: 7 };
/// store.record_part(&id, &part).await?;
///
/// // Another run of the program finds it.
/// let again = FileStore::open(dir.path())?;
/// assert_eq!(again.load(&id).await?.unwrap().parts[&1], part);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    durability: Durability,
    journals: Mutex<HashMap<String, Arc<Journal>>>,
    open_journals: Arc<AtomicUsize>,
    digests: DigestLog,
}

impl FileStore {
    /// A store keeping its journals in `dir`, created if missing.
    ///
    /// `dir` and any parent it creates are made owner-only (`0700`), and every file the store writes
    /// in it is `0600`, whatever the umask. A directory other users can write to is refused with
    /// [`StoreError::NotPrivate`], which says how to fix it (see
    /// [`check_private_dir`](crate::store::check_private_dir)).
    ///
    /// Opening reads no journal: each is validated when first loaded or recorded to. It does remove
    /// the temporary files that a process killed in the middle of a save left behind.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        let dir = std::path::absolute(dir).map_err(|source| io_error(dir, source))?;
        remove_stale_temp_files(&dir);
        Ok(Self::with_inner(dir, Durability::default()))
    }

    fn with_inner(dir: PathBuf, durability: Durability) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir,
                durability,
                journals: Mutex::new(HashMap::new()),
                open_journals: Arc::new(AtomicUsize::new(0)),
                digests: DigestLog::default(),
            }),
        }
    }

    /// The same directory with another [`Durability`] for part records (saves are always synced).
    ///
    /// ```
    /// # fn main() -> Result<(), ossup::StoreError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use ossup::{store::Durability, FileStore};
    /// let store = FileStore::open(dir.path())?.with_durability(Durability::ProcessCrash);
    /// assert_eq!(store.durability(), Durability::ProcessCrash);
    /// # Ok(()) }
    /// ```
    pub fn with_durability(self, durability: Durability) -> Self {
        Self::with_inner(self.inner.dir.clone(), durability)
    }

    /// The directory holding the journals.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// How far `record_part` goes before returning.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// The journal file of `identity` (which may not exist).
    pub fn journal_path(&self, identity: &UploadIdentity) -> PathBuf {
        self.inner.dir.join(identity.fingerprint())
    }

    /// The lock file of `identity` (which exists only while the upload is claimed).
    pub fn lock_path(&self, identity: &UploadIdentity) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}.lock", identity.fingerprint()))
    }

    fn journal(&self, identity: &UploadIdentity) -> Arc<Journal> {
        let fingerprint = identity.fingerprint();
        let mut journals = lock(&self.inner.journals);
        journals
            .entry(fingerprint)
            .or_insert_with_key(|fingerprint| {
                let core = Arc::new(JournalCore {
                    identity: identity.clone(),
                    path: self.inner.dir.join(fingerprint),
                    dir: self.inner.dir.clone(),
                    durability: self.inner.durability,
                    io: Mutex::new(None),
                    store: Arc::downgrade(&self.inner),
                    open_journals: self.inner.open_journals.clone(),
                });
                let committer = core.clone();
                Arc::new(Journal {
                    core,
                    commits: GroupCommit::new(move |batch| committer.append(batch)),
                })
            })
            .clone()
    }
}

impl Inner {
    /// Closes idle journals until at most half the limit stay open; `keep` is the caller's own.
    fn close_idle_journals(&self, keep: &Path) {
        if self.open_journals.load(Ordering::SeqCst) <= MAX_OPEN_JOURNALS {
            return;
        }
        let journals: Vec<Arc<Journal>> = lock(&self.journals).values().cloned().collect();
        for journal in journals {
            if self.open_journals.load(Ordering::SeqCst) <= MAX_OPEN_JOURNALS / 2 {
                break;
            }
            if journal.core.path == keep {
                continue;
            }
            // A journal busy with a write is not idle; skip it rather than wait.
            if let Ok(mut io) = journal.core.io.try_lock() {
                *io = None;
            }
        }
    }
}

#[async_trait::async_trait]
impl CheckpointStore for FileStore {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let journal = self.journal(identity);
        blocking(move || journal.core.load()).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let journal = self.journal(&checkpoint.identity);
        let checkpoint = checkpoint.clone();
        blocking(move || journal.core.save(&checkpoint)).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        let journal = self.journal(identity);
        journal.commits.submit(part.clone()).await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let journal = self.journal(identity);
        journal.commits.submit_all(parts.to_vec()).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        let journal = self.journal(identity);
        let result = blocking({
            let journal = journal.clone();
            move || journal.core.remove()
        })
        .await;
        lock(&self.inner.journals).remove(&identity.fingerprint());
        result
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        let dir = self.inner.dir.clone();
        blocking(move || list_journals(&dir)).await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        let path = self.lock_path(identity);
        let identity = identity.clone();
        blocking(move || claim_lock_file(&path, &identity)).await
    }
}

/// Digests live in `digests.jsonl` beside the journals (see `digest_log.rs`).
#[async_trait::async_trait]
impl DigestCache for FileStore {
    async fn digest(&self, path: &str) -> Result<Option<FileDigest>, StoreError> {
        self.inner.digests.digest(&self.inner.dir, path).await
    }

    async fn record_digest(&self, path: &str, digest: &FileDigest) -> Result<(), StoreError> {
        self.inner
            .digests
            .record(&self.inner.dir, path, digest)
            .await
    }
}

fn io_error(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        location: path.display().to_string(),
        source,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs file I/O on the blocking pool, off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            Err(StoreError::Other(format!(
                "a checkpoint file operation panicked: {err}"
            )))
        })
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};

    use super::disk::temp_file_writer;
    use super::*;
    use crate::checkpoint::SourceStamp;
    use crate::store::journal;

    fn identity(key: &str) -> UploadIdentity {
        UploadIdentity::new("/src/a", "bucket", key, 1 << 20)
    }

    fn checkpoint(key: &str) -> Checkpoint {
        Checkpoint::new(
            identity(key),
            "upload",
            SourceStamp {
                size: 10 << 20,
                modified_nanos: Some(1),
            },
            1,
            "opts",
        )
    }

    fn part(number: u32, etag: &str) -> PartRecord {
        PartRecord {
            number,
            size: 1 << 20,
            etag: etag.into(),
            md5: None,
            crc64: u64::from(number),
        }
    }

    #[tokio::test]
    async fn rerecording_the_same_parts_compacts_the_journal_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path())
            .unwrap()
            .with_durability(Durability::ProcessCrash);
        let cp = checkpoint("k");
        store.save(&cp).await.unwrap();
        for round in 0..40 {
            for n in 1..=4 {
                store
                    .record_part(&cp.identity, &part(n, &format!("round-{round}")))
                    .await
                    .unwrap();
            }
        }
        let loaded = store.load(&cp.identity).await.unwrap().unwrap();
        assert_eq!(loaded.parts.len(), 4);
        assert_eq!(loaded.parts[&3].etag, "round-39");
        let bytes = fs::read(store.journal_path(&cp.identity)).unwrap();
        let replay = journal::replay(&bytes).unwrap();
        assert!(
            replay.entries < 2 * COMPACT_MIN_ENTRIES,
            "160 records of 4 parts left {} entries",
            replay.entries
        );
    }

    #[tokio::test]
    async fn a_record_after_another_handle_replaced_the_journal_lands_in_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStore::open(dir.path()).unwrap();
        let second = FileStore::open(dir.path()).unwrap();
        let cp = checkpoint("k");
        first.save(&cp).await.unwrap();
        first
            .record_part(&cp.identity, &part(1, "a"))
            .await
            .unwrap();
        // `second` stands for another process: its save replaces the file under `first`'s handle.
        let mut replaced = cp.clone();
        replaced.upload_id = "upload-2".into();
        second.save(&replaced).await.unwrap();
        first
            .record_part(&cp.identity, &part(2, "b"))
            .await
            .unwrap();
        let loaded = second.load(&cp.identity).await.unwrap().unwrap();
        assert_eq!(loaded.upload_id, "upload-2");
        assert_eq!(loaded.parts.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[tokio::test]
    async fn an_unfinished_last_record_is_cut_off_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let cp = checkpoint("k");
        store.save(&cp).await.unwrap();
        store
            .record_part(&cp.identity, &part(1, "a"))
            .await
            .unwrap();
        let path = store.journal_path(&cp.identity);
        let whole = fs::metadata(&path).unwrap().len();
        store
            .record_part(&cp.identity, &part(2, "b"))
            .await
            .unwrap();
        // What a crash in the middle of appending part 2 leaves.
        let torn = fs::metadata(&path).unwrap().len() - 5;
        drop(store);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(torn)
            .unwrap();

        let reopened = FileStore::open(dir.path()).unwrap();
        let loaded = reopened.load(&cp.identity).await.unwrap().unwrap();
        assert_eq!(loaded.parts.keys().copied().collect::<Vec<_>>(), vec![1]);
        reopened
            .record_part(&cp.identity, &part(3, "c"))
            .await
            .unwrap();
        assert!(fs::metadata(&path).unwrap().len() > whole);
        let again = FileStore::open(dir.path()).unwrap();
        let loaded = again.load(&cp.identity).await.unwrap().unwrap();
        assert_eq!(loaded.parts.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_journal_renamed_to_another_identity_is_corrupt_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let a = checkpoint("a");
        store.save(&a).await.unwrap();
        let b = identity("b");
        fs::copy(store.journal_path(&a.identity), store.journal_path(&b)).unwrap();
        match store.load(&b).await {
            Err(StoreError::Corrupt {
                reason,
                set_aside_to: Some(to),
                ..
            }) => {
                assert!(reason.contains("another upload"), "{reason}");
                assert!(Path::new(&to).exists());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.load(&b).await.unwrap(), None);
        assert_eq!(store.load(&a.identity).await.unwrap(), Some(a));
    }

    #[tokio::test]
    async fn open_journals_stay_bounded_across_many_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path())
            .unwrap()
            .with_durability(Durability::ProcessCrash);
        for i in 0..(MAX_OPEN_JOURNALS * 2) {
            let cp = checkpoint(&format!("k{i}"));
            store.save(&cp).await.unwrap();
            store
                .record_part(&cp.identity, &part(1, "a"))
                .await
                .unwrap();
        }
        assert!(store.inner.open_journals.load(Ordering::SeqCst) <= MAX_OPEN_JOURNALS);
        for i in 0..(MAX_OPEN_JOURNALS * 2) {
            let id = identity(&format!("k{i}"));
            assert_eq!(store.load(&id).await.unwrap().unwrap().parts.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_held_lock_names_its_holder_and_its_file_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let id = identity("k");
        let held = store.lock(&id).await.unwrap();
        match store.lock(&id).await {
            Err(StoreError::InUse { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(store.lock_path(&id).exists());
        drop(held);
        assert!(!store.lock_path(&id).exists());
        let _again = store.lock(&id).await.unwrap();
    }

    #[tokio::test]
    async fn listing_skips_stray_files_and_damaged_journals() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let a = checkpoint("a");
        let b = checkpoint("b");
        store.save(&a).await.unwrap();
        store.save(&b).await.unwrap();
        fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        fs::write(store.journal_path(&b.identity), "garbage").unwrap();
        assert_eq!(store.list().await.unwrap(), vec![a.identity]);
    }

    #[test]
    fn temp_files_of_dead_writers_are_removed_at_open_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Process ids above the kernel's pid_max (4194304 at most) are never alive.
        let dead = dir.path().join("ab12.tmp-4194999-0");
        let ours = dir
            .path()
            .join(format!("ab12.tmp-{}-7", std::process::id()));
        let unrelated = dir.path().join("notes.tmp-x");
        for path in [&dead, &ours, &unrelated] {
            std::fs::write(path, b"partial").unwrap();
        }
        FileStore::open(dir.path()).unwrap();
        assert!(!dead.exists(), "a dead writer's temp file must be removed");
        assert!(ours.exists(), "a live writer's temp file must be kept");
        assert!(
            unrelated.exists(),
            "files that are not journal temp files are not touched"
        );
    }

    #[cfg(unix)]
    #[test]
    fn every_file_and_directory_is_owner_only_whatever_the_umask() {
        use crate::store::private::{modes_below, under_umask_000};
        let name = "store::file::tests::every_file_and_directory_is_owner_only_whatever_the_umask";
        under_umask_000(name, || {
            let scratch = tempfile::tempdir().unwrap();
            let dir = scratch.path().join("state/ossup/checkpoints");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = FileStore::open(&dir).unwrap();
                let cp = checkpoint("k");
                store.save(&cp).await.unwrap();
                store
                    .record_part(&cp.identity, &part(1, "a"))
                    .await
                    .unwrap();
                let digest = FileDigest {
                    stat: crate::store::FileStat {
                        size: 1,
                        modified_nanos: 1,
                        inode: 1,
                    },
                    md5: None,
                    crc64: 1,
                };
                store.record_digest("/src/a", &digest).await.unwrap();
                let _held = store.lock(&cp.identity).await.unwrap();
                // A damaged journal set aside keeps its mode too.
                let other = checkpoint("other");
                store.save(&other).await.unwrap();
                fs::write(store.journal_path(&other.identity), b"garbage").unwrap();
                let _ = store.load(&other.identity).await;
                let found = modes_below(scratch.path());
                let names: Vec<String> = found
                    .iter()
                    .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
                    .collect();
                assert!(names.iter().any(|n| n.ends_with(".lock")), "{names:?}");
                assert!(names.iter().any(|n| n == "digests.jsonl"), "{names:?}");
                assert!(names.iter().any(|n| n.contains(".corrupt-")), "{names:?}");
                for (path, mode) in found {
                    let expected = if path.is_dir() { 0o700 } else { 0o600 };
                    assert_eq!(mode, expected, "{} is {mode:04o}", path.display());
                }
            });
        });
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_lock_file_planted_as_a_link_is_refused_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let precious = elsewhere.path().join("precious");
        fs::write(&precious, b"keep me").unwrap();

        let id = identity("by-symlink");
        std::os::unix::fs::symlink(&precious, store.lock_path(&id)).unwrap();
        let err = store.lock(&id).await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");

        let id = identity("by-hard-link");
        fs::hard_link(&precious, store.lock_path(&id)).unwrap();
        let err = store.lock(&id).await.unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");

        let id = identity("by-directory");
        fs::create_dir(store.lock_path(&id)).unwrap();
        let err = store.lock(&id).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Io { .. } | StoreError::Other(_)),
            "{err}"
        );

        assert_eq!(fs::read(&precious).unwrap(), b"keep me");
    }

    #[test]
    fn temp_file_names_yield_their_writer() {
        assert_eq!(temp_file_writer("0f3a.tmp-1234-5"), Some(1234));
        assert_eq!(temp_file_writer("0f3a.tmp-1234"), None);
        assert_eq!(temp_file_writer("0f3a.corrupt-1700000000"), None);
        assert_eq!(temp_file_writer("0f3a.tmp-x-5"), None);
    }
}
