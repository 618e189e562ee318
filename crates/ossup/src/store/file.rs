//! [`FileStore`]: one append-only journal file per upload in a directory.
//!
//! `save` writes a journal whole and atomically (temp file, fsync, rename, fsync of the directory);
//! `record_part` appends one checksummed record per batch of concurrently finished parts and syncs
//! it before returning, so recording 10,000 parts costs 10,000 small appends, not 10,000 rewrites.
//! The byte layout is in [`journal`](super::journal) and `docs/checkpoint-format.md`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use super::group_commit::{GroupCommit, replicate_error};
use super::journal::{self, Invalid};
use super::{CheckpointStore, Durability, StoreError, StoreLock};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};

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
}

/// One upload's journal: its file state, and the queue that batches its part records.
#[derive(Debug)]
struct Journal {
    core: Arc<JournalCore>,
    commits: GroupCommit<PartRecord>,
}

#[derive(Debug)]
struct JournalCore {
    identity: UploadIdentity,
    path: PathBuf,
    dir: PathBuf,
    durability: Durability,
    /// The open file, when there is one. Held across each file operation, so this process never
    /// interleaves two writes to one journal.
    io: Mutex<Option<OpenJournal>>,
    store: Weak<Inner>,
    open_journals: Arc<AtomicUsize>,
}

/// An open journal ready for appends, and what compaction needs to know about it.
#[derive(Debug)]
struct OpenJournal {
    file: File,
    /// Part entries in the file, replaced ones included.
    entries: u64,
    /// Distinct part numbers in the file.
    numbers: HashSet<u32>,
    /// The file's length after the last intact record, where a failed append is cut back to.
    len: u64,
    _counted: OpenCount,
}

/// Keeps [`Inner::open_journals`] equal to the number of open journal files.
#[derive(Debug)]
struct OpenCount(Arc<AtomicUsize>);

impl OpenCount {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FileStore {
    /// A store keeping its journals in `dir`, created if missing.
    ///
    /// Opening reads no journal: each is validated when first loaded or recorded to. It does remove
    /// the temporary files that a process killed in the middle of a save left behind.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
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

impl JournalCore {
    fn io(&self) -> MutexGuard<'_, Option<OpenJournal>> {
        lock(&self.io)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        let mut io = self.io();
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                *io = None;
                return Ok(None);
            }
            Err(err) => return Err(io_error(&self.path, err)),
        };
        match self.validate(&bytes) {
            Ok(replay) => {
                if let Some(reason) = &replay.torn_tail {
                    tracing::warn!(journal = %self.location(), "{reason}");
                }
                Ok(Some(replay.checkpoint))
            }
            Err(err) => {
                *io = None;
                Err(err)
            }
        }
    }

    /// Replays `bytes` as this identity's journal; damage is set aside and reported.
    fn validate(&self, bytes: &[u8]) -> Result<journal::Replay, StoreError> {
        let reason = match journal::replay(bytes) {
            Ok(replay) if replay.checkpoint.identity == self.identity => return Ok(replay),
            Ok(replay) => format!(
                "it holds the checkpoint of another upload ({}), not of {}",
                replay.checkpoint.identity, self.identity
            ),
            Err(Invalid::Unsupported(found)) => {
                return Err(StoreError::UnsupportedVersion {
                    location: self.location(),
                    found,
                    supported: journal::VERSION,
                });
            }
            Err(Invalid::Corrupt(reason)) => reason,
        };
        Err(self.set_aside(reason))
    }

    fn set_aside(&self, reason: String) -> StoreError {
        let location = self.location();
        match set_aside(&self.path, &self.dir) {
            Ok(to) => {
                let to = to.display().to_string();
                tracing::warn!(journal = %location, set_aside_to = %to, "corrupt checkpoint: {reason}");
                StoreError::Corrupt {
                    location,
                    reason,
                    set_aside_to: Some(to),
                }
            }
            Err(err) => StoreError::Corrupt {
                location,
                reason: format!("{reason}; moving it aside failed too: {err}"),
                set_aside_to: None,
            },
        }
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut io = self.io();
        *io = None;
        let bytes = journal::encode(checkpoint);
        let file = write_atomically(&self.dir, &self.path, &bytes)
            .map_err(|err| io_error(&self.path, err))?;
        *io = Some(OpenJournal {
            file,
            entries: checkpoint.parts.len() as u64,
            numbers: checkpoint.parts.keys().copied().collect(),
            len: bytes.len() as u64,
            _counted: OpenCount::new(&self.open_journals),
        });
        drop(io);
        if let Some(store) = self.store.upgrade() {
            store.close_idle_journals(&self.path);
        }
        Ok(())
    }

    fn remove(&self) -> Result<(), StoreError> {
        let mut io = self.io();
        *io = None;
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.dir).map_err(|err| io_error(&self.dir, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(&self.path, err)),
        }
    }

    /// Commits one batch of parts: one append, one sync. Every part of the batch gets the outcome.
    fn append(&self, batch: Vec<PartRecord>) -> Vec<Result<(), StoreError>> {
        let count = batch.len();
        match self.append_batch(&batch) {
            Ok(()) => (0..count).map(|_| Ok(())).collect(),
            Err(err) => {
                let mut results: Vec<_> = (1..count).map(|_| Err(replicate_error(&err))).collect();
                results.push(Err(err));
                results
            }
        }
    }

    fn append_batch(&self, batch: &[PartRecord]) -> Result<(), StoreError> {
        let bytes = journal::encode_appended(batch).map_err(|reason| {
            StoreError::Other(format!("cannot record in {}: {reason}", self.location()))
        })?;
        let mut io = self.io();
        self.ensure_open(&mut io)?;
        let open = io.as_mut().expect("ensure_open leaves the journal open");
        if let Err(err) = open.file.write_all(&bytes) {
            // Cut a partial append back off, so later appends do not follow garbage; if even that
            // fails, reopening replays the file and drops the unfinished record.
            if open.file.set_len(open.len).is_err() {
                *io = None;
            }
            return Err(io_error(&self.path, err));
        }
        if self.durability == Durability::PowerLoss
            && let Err(err) = open.file.sync_data()
        {
            // After a failed sync the kernel may have dropped the dirty pages; what is on disk is
            // unknown, so the next use replays the file.
            *io = None;
            return Err(io_error(&self.path, err));
        }
        open.len += bytes.len() as u64;
        open.entries += batch.len() as u64;
        open.numbers.extend(batch.iter().map(|part| part.number));
        if open.entries >= COMPACT_MIN_ENTRIES
            && open.entries > 2 * open.numbers.len() as u64
            && let Err(err) = self.compact(&mut io)
        {
            // The appended records are durable; a journal that stays long is only slower to load.
            tracing::warn!(journal = %self.location(), "compacting the checkpoint journal failed: {err}");
        }
        Ok(())
    }

    /// Makes `io` hold an open journal that is the file now at `path`, replaying it when (re)opened.
    fn ensure_open(&self, io: &mut Option<OpenJournal>) -> Result<(), StoreError> {
        if let Some(open) = io.as_ref() {
            match same_file(&open.file, &self.path) {
                Ok(true) => return Ok(()),
                // Replaced or removed behind this handle (another process's save or remove): appending
                // to the old file would lose the records, so reopen.
                Ok(false) => *io = None,
                Err(err) if err.kind() == io::ErrorKind::NotFound => *io = None,
                Err(err) => return Err(io_error(&self.path, err)),
            }
        }
        let mut file = match OpenOptions::new().read(true).append(true).open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(self.identity.to_string()));
            }
            Err(err) => return Err(io_error(&self.path, err)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|err| io_error(&self.path, err))?;
        let replay = self.validate(&bytes)?;
        if let Some(reason) = &replay.torn_tail {
            // Appending after the unfinished record would bury it in the middle, where it reads as
            // damage; cut it off first.
            tracing::warn!(journal = %self.location(), "dropping an unfinished record: {reason}");
            file.set_len(replay.valid_end)
                .and_then(|()| file.sync_data())
                .map_err(|err| io_error(&self.path, err))?;
        }
        *io = Some(OpenJournal {
            file,
            entries: replay.entries,
            numbers: replay.checkpoint.parts.keys().copied().collect(),
            len: replay.valid_end,
            _counted: OpenCount::new(&self.open_journals),
        });
        if let Some(store) = self.store.upgrade() {
            store.close_idle_journals(&self.path);
        }
        Ok(())
    }

    /// Rewrites the journal with only its live parts. Reads the file rather than trusting memory, so
    /// records appended by anyone else are kept.
    fn compact(&self, io: &mut Option<OpenJournal>) -> Result<(), StoreError> {
        let bytes = fs::read(&self.path).map_err(|err| io_error(&self.path, err))?;
        let replay = self.validate(&bytes)?;
        let checkpoint = replay.checkpoint;
        let bytes = journal::encode(&checkpoint);
        let file = write_atomically(&self.dir, &self.path, &bytes)
            .map_err(|err| io_error(&self.path, err))?;
        *io = Some(OpenJournal {
            file,
            entries: checkpoint.parts.len() as u64,
            numbers: checkpoint.parts.keys().copied().collect(),
            len: bytes.len() as u64,
            _counted: OpenCount::new(&self.open_journals),
        });
        Ok(())
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

fn list_journals(dir: &Path) -> Result<Vec<UploadIdentity>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|err| io_error(dir, err))?;
    let mut identities = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error(dir, err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        match read_journal_header(&path) {
            Ok(Some(checkpoint)) if checkpoint.identity.fingerprint() == name => {
                identities.push(checkpoint.identity);
            }
            Ok(None) => {}
            // A damaged journal is reported and set aside by `load` of its identity; listing only
            // says which uploads have a usable checkpoint.
            Ok(Some(_)) => {
                tracing::warn!(journal = %path.display(), "skipping a journal whose header names another upload")
            }
            Err(reason) => {
                tracing::warn!(journal = %path.display(), "skipping an unreadable journal: {reason}")
            }
        }
    }
    identities.sort();
    Ok(identities)
}

/// The header of the journal at `path`, reading only as far as the header record; `None` when the
/// file disappeared meanwhile.
fn read_journal_header(path: &Path) -> Result<Option<Checkpoint>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    let mut first = Vec::with_capacity(16);
    file.take(16)
        .read_to_end(&mut first)
        .map_err(|err| err.to_string())?;
    let Some(extent) = journal::header_extent(&first) else {
        return Err("no valid header record".into());
    };
    let mut bytes = Vec::with_capacity(extent);
    File::open(path)
        .and_then(|file| file.take(extent as u64).read_to_end(&mut bytes))
        .map_err(|err| err.to_string())?;
    match journal::read_header(&bytes) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(Invalid::Unsupported(version)) => Err(format!(
            "format version {version} is newer than this ossup reads"
        )),
        Err(Invalid::Corrupt(reason)) => Err(reason),
    }
}

/// Holds the advisory lock on an upload's lock file; dropping it removes the file and unlocks.
#[derive(Debug)]
struct LockFile {
    file: File,
    path: PathBuf,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still locked, so a process that opened the old file before the removal sees,
        // once it gets the lock, that the path no longer names its file, and starts over.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn claim_lock_file(path: &Path, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|err| io_error(path, err))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    format!(
                        "another process, which has not yet written its pid to {}",
                        path.display()
                    )
                } else if holder.starts_with(&format!("pid {} ", std::process::id())) {
                    format!("{holder}, this very process")
                } else {
                    holder.to_string()
                };
                return Err(StoreError::InUse {
                    identity: identity.to_string(),
                    holder,
                });
            }
            Err(fs::TryLockError::Error(err)) => return Err(io_error(path, err)),
        }
        if !same_file(&file, path).unwrap_or(false) {
            // The previous holder removed the file between our open and our lock.
            continue;
        }
        let holder = format!("pid {} on {}\n", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|err| io_error(path, err))?;
        return Ok(StoreLock::held_by(LockFile {
            file,
            path: path.to_path_buf(),
        }));
    }
    Err(StoreError::Other(format!(
        "could not claim {} after {ATTEMPTS} attempts: the lock file keeps being replaced",
        path.display()
    )))
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into())
}

/// Removes `<name>.tmp-<pid>-<n>` files whose writer process is gone: a save killed before its rename
/// leaves one, and nothing else would ever remove it. A file whose process id is alive is kept (it may
/// be a save under way in another process), and so is everything when `/proc` cannot tell.
fn remove_stale_temp_files(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(writer) = name.to_str().and_then(temp_file_writer) else {
            continue;
        };
        if writer != std::process::id() && !Path::new(&format!("/proc/{writer}")).exists() {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(path = %entry.path().display(), "removed a checkpoint temp file left by a killed process")
                }
                Err(err) => {
                    tracing::warn!(path = %entry.path().display(), %err, "cannot remove a stale checkpoint temp file")
                }
            }
        }
    }
}

/// The process id in a temp file name written by [`write_atomically`], if `name` is one.
fn temp_file_writer(name: &str) -> Option<u32> {
    let (_, suffix) = name.rsplit_once(".tmp-")?;
    let (pid, sequence) = suffix.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one, and
/// returns the new file opened for appending.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<File> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("checkpoint");
    let temp = dir.join(format!(
        "{name}.tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&temp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    sync_dir(dir)?;
    Ok(file)
}

/// Moves a damaged file to `<name>.corrupt-<unix time>` (with a counter if that exists).
fn set_aside(path: &Path, dir: &Path) -> io::Result<PathBuf> {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("checkpoint");
    for n in 0..1000 {
        let target = if n == 0 {
            dir.join(format!("{name}.corrupt-{unix}"))
        } else {
            dir.join(format!("{name}.corrupt-{unix}-{n}"))
        };
        if target.exists() {
            continue;
        }
        fs::rename(path, &target)?;
        sync_dir(dir)?;
        return Ok(target);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a thousand set-aside copies already exist for this second",
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    let named = fs::metadata(path)?;
    Ok(open.dev() == named.dev() && open.ino() == named.ino())
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> io::Result<bool> {
    // Without inode numbers, trust the handle while the path exists.
    fs::metadata(path).map(|_| true)
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
    use super::*;
    use crate::checkpoint::SourceStamp;

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

    #[test]
    fn temp_file_names_yield_their_writer() {
        assert_eq!(temp_file_writer("0f3a.tmp-1234-5"), Some(1234));
        assert_eq!(temp_file_writer("0f3a.tmp-1234"), None);
        assert_eq!(temp_file_writer("0f3a.corrupt-1700000000"), None);
        assert_eq!(temp_file_writer("0f3a.tmp-x-5"), None);
    }
}
