//! One upload's journal file: loading, atomic saves, batched appends and compaction.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::disk::{same_file, set_aside, sync_dir, write_atomically};
use super::{COMPACT_MIN_ENTRIES, Inner, io_error, lock};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};
use crate::store::group_commit::{GroupCommit, replicate_error};
use crate::store::journal::{self, Invalid};
use crate::store::{Durability, StoreError, private_file_options};

/// One upload's journal: its file state, and the queue that batches its part records.
#[derive(Debug)]
pub(super) struct Journal {
    pub(super) core: Arc<JournalCore>,
    pub(super) commits: GroupCommit<PartRecord>,
}

#[derive(Debug)]
pub(super) struct JournalCore {
    pub(super) identity: UploadIdentity,
    pub(super) path: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) durability: Durability,
    /// The open file, when there is one. Held across each file operation, so this process never
    /// interleaves two writes to one journal.
    pub(super) io: Mutex<Option<OpenJournal>>,
    pub(super) store: Weak<Inner>,
    pub(super) open_journals: Arc<AtomicUsize>,
}

/// An open journal ready for appends, and what compaction needs to know about it.
#[derive(Debug)]
pub(super) struct OpenJournal {
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

impl JournalCore {
    fn io(&self) -> MutexGuard<'_, Option<OpenJournal>> {
        lock(&self.io)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    pub(super) fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
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

    pub(super) fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
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

    pub(super) fn remove(&self) -> Result<(), StoreError> {
        let mut io = self.io();
        *io = None;
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.dir).map_err(|err| io_error(&self.dir, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(&self.path, err)),
        }
    }

    /// Commits one batch of parts: one append, one sync. Every part of the batch gets the outcome.
    pub(super) fn append(&self, batch: Vec<PartRecord>) -> Vec<Result<(), StoreError>> {
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
        // Not through a link: a journal is only ever a file this store wrote.
        let mut file = match private_file_options()
            .read(true)
            .append(true)
            .open(&self.path)
        {
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
