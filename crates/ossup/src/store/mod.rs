//! Where checkpoints live between runs: the [`CheckpointStore`] trait and the stores that ship.
//!
//! A store is keyed by [`UploadIdentity`]. Recording a part is the hot operation (once per part, from
//! many tasks at once), so it is its own method and must not rewrite the whole checkpoint.
//!
//! Shipped stores: [`MemoryStore`] (this process only), [`FileStore`] (a journal file per upload) and,
//! in the `ossup-sqlite` crate, `SqliteStore` (many uploads in one database). Every one of them passes
//! the contract suite of the `testkit` feature; `docs/checkpoint-stores.md` shows how to run it on a
//! store of your own, and [`GroupCommit`] helps a durable store make per-part records cheap. A store
//! that several workers can share one upload through also implements [`Cooperation`] (SQLite and
//! PostgreSQL do; the file and memory stores say they cannot).

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};

mod claim;
pub mod codec;
mod digests;
mod file;
mod group_commit;
pub(crate) mod journal;
mod memory;
mod private;

pub use claim::{
    Claim, Cooperation, CooperativeStore, FileClaim, FinishedFile, HeldFile, worker_name,
};
pub use digests::{DigestCache, FileDigest, FileStat};
pub use file::FileStore;
pub use group_commit::{GroupCommit, replicate_error};
pub use memory::MemoryStore;
pub use private::{
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, check_private_dir, create_private_dir,
    private_file_options, restrict_path_to_owner, restrict_to_owner,
};

/// A durable (or not) home for checkpoints.
///
/// Contract, checked by the `testkit` feature's suite:
/// - [`save`](Self::save) replaces the whole checkpoint of an identity atomically: a later
///   [`load`](Self::load) sees either the old or the new one, never a mix, even after a crash.
/// - [`record_part`](Self::record_part) adds or replaces one part of a saved checkpoint; once it
///   returns, the part survives a crash (for durable stores). Recording the same part twice is the same
///   as once. Calls from many tasks at once lose nothing. [`record_parts`](Self::record_parts) does
///   the same for several parts, in order.
/// - [`load`](Self::load) never returns data it cannot vouch for: a torn, corrupt, foreign or
///   future-version record gives [`StoreError::Corrupt`], and the store sets that record aside (so the
///   next load returns `Ok(None)`) and says in the error where it put it.
///   A record in a format *newer* than the store reads is the one exception to setting aside: it gives
///   [`StoreError::UnsupportedVersion`] and stays in place, since a newer build can still use it.
///   The unfinished last append that a crash can leave was never acknowledged: dropping it is not
///   corruption.
/// - [`lock`](Self::lock) claims an identity for the caller; a second claim while the first is held,
///   from this or another process, gives [`StoreError::InUse`]. A crashed holder does not keep it.
///   A store that cannot exclude returns [`StoreLock::none`] and so says it does not.
///
/// Every method is required, even those a store could build from others (`record_parts` from
/// `record_part`, `lock` from nothing): they carry behaviour the engine relies on (batched records,
/// exclusion), and a default would let a wrapper that forgot to forward them compile and quietly
/// lose it. `Arc<S>` and `Box<S>` are stores when `S` is.
///
/// How far "survives a crash" goes is the store's [`Durability`].
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync + Debug {
    /// The checkpoint of `identity`, or `None` when there is none.
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError>;

    /// Saves `checkpoint` whole, replacing any previous one of the same identity.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Records one acknowledged part of the saved checkpoint of `identity`.
    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError>;

    /// Records several acknowledged parts of the saved checkpoint of `identity`, as
    /// [`record_part`](Self::record_part) would one after another: once it returns `Ok`, each of them
    /// survives as a recorded part does. After an error, any of them may or may not be recorded.
    ///
    /// The engine records parts in batches through this method, so it has no default: a wrapper
    /// that forgot it would silently fall back to one record (and, for a durable store, one flush)
    /// per part, or record nothing at all. A store whose record costs a flush should commit a batch
    /// in one (the shipped durable stores do, with [`GroupCommit::submit_all`]); a store with no
    /// cheaper way may call [`record_part`](Self::record_part) for each part in order; a wrapper
    /// forwards to the store it wraps.
    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError>;

    /// Removes the checkpoint of `identity`; removing one that is not there is not an error.
    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError>;

    /// The identities that have a checkpoint.
    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError>;

    /// Claims `identity` until the returned lock drops, so two runs (tasks or processes) never
    /// send the same upload at once.
    ///
    /// A second claim on an identity while the first is held gives [`StoreError::InUse`] at once
    /// (it does not wait); claims on other identities are unaffected; a holder that crashed does
    /// not keep the claim. The engine claims the identity before it loads the checkpoint and holds
    /// the lock until the upload ends.
    ///
    /// This method has no default, so a wrapper cannot forget to forward it. A store that cannot
    /// exclude anyone (one private to a single task, say) returns [`StoreLock::none`], which
    /// says so explicitly: [`StoreLock::holds_nothing`] is then true, and the contract suite
    /// reports its lock case as not applicable instead of passing it.
    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError>;
}

/// Every method goes to the shared store, so `Arc::new(store)` can be handed wherever a store is
/// wanted and keep being used through other clones.
#[async_trait::async_trait]
impl<S: CheckpointStore + ?Sized> CheckpointStore for Arc<S> {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        (**self).load(identity).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        (**self).save(checkpoint).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        (**self).record_part(identity, part).await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        (**self).record_parts(identity, parts).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        (**self).remove(identity).await
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        (**self).list().await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        (**self).lock(identity).await
    }
}

/// Every method goes to the boxed store, so a `Box<dyn CheckpointStore>` is a store too.
#[async_trait::async_trait]
impl<S: CheckpointStore + ?Sized> CheckpointStore for Box<S> {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        (**self).load(identity).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        (**self).save(checkpoint).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        (**self).record_part(identity, part).await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        (**self).record_parts(identity, parts).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        (**self).remove(identity).await
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        (**self).list().await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        (**self).lock(identity).await
    }
}

/// How far a store's acknowledgement of [`CheckpointStore::record_part`] goes.
///
/// Saves are always synced to stable storage, whatever the durability: they are rare and carry the
/// upload id, without which nothing can be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// The record is on stable storage before `record_part` returns (`fdatasync`; SQLite's
    /// `synchronous=FULL`): it survives the process being killed and the machine losing power.
    /// Records finished at the same time share one flush ([`GroupCommit`]).
    #[default]
    PowerLoss,
    /// The record is handed to the operating system before `record_part` returns: it survives the
    /// process being killed, not a power loss or kernel crash, and costs microseconds instead of a
    /// disk flush. A record lost that way costs a re-read of that part on resume (its MD5 is
    /// recomputed from the source and checked against the server's listing), never a wrong object.
    ProcessCrash,
}

/// A claim on an upload identity, released when dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] Option<Box<dyn Any + Send + Sync>>);

impl StoreLock {
    /// A lock that holds nothing: what a store that cannot keep other runs off an upload returns
    /// from [`CheckpointStore::lock`], saying so explicitly. The engine goes on without exclusion;
    /// the contract suite reports the store's lock case as not applicable.
    pub fn none() -> Self {
        Self(None)
    }

    /// A lock held by `guard` until it drops.
    pub fn held_by(guard: impl Any + Send + Sync) -> Self {
        Self(Some(Box::new(guard)))
    }

    /// Whether this is [`StoreLock::none`]: the store claimed nothing, so it does not keep other
    /// processes off the upload.
    ///
    /// ```
    /// assert!(ossup::StoreLock::none().holds_nothing());
    /// assert!(!ossup::StoreLock::held_by(()).holds_nothing());
    /// ```
    pub fn holds_nothing(&self) -> bool {
        self.0.is_none()
    }
}

/// Why a checkpoint store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored checkpoint failed validation; it was set aside and is not used.
    #[error("checkpoint at {location} is corrupt ({reason}); it was set aside{}", set_aside_to.as_ref().map(|p| format!(" to {p}")).unwrap_or_default())]
    Corrupt {
        /// Where the checkpoint was (a path, a database file and row).
        location: String,
        /// What is wrong with it.
        reason: String,
        /// Where it was moved, when it was moved.
        set_aside_to: Option<String>,
    },
    /// The checkpoint was written by a newer ossup, in a format this version cannot read.
    #[error(
        "checkpoint at {location} has format version {found}, newer than the {supported} this ossup reads; upgrade ossup or use another checkpoint location"
    )]
    UnsupportedVersion {
        /// Where the checkpoint is.
        location: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Another process (or task) holds this upload.
    #[error(
        "upload {identity} is in progress elsewhere ({holder}); wait for it to finish or stop it"
    )]
    InUse {
        /// The upload.
        identity: String,
        /// Who holds it, as far as the store knows (process id, host).
        holder: String,
    },
    /// The checkpoint directory is open to other users, who could remove, replace or plant
    /// checkpoints in it (see [`check_private_dir`]); nothing was written there.
    #[error("checkpoint directory {location} is not private: {problem}; {fix}")]
    NotPrivate {
        /// The directory.
        location: String,
        /// What is wrong with it: its owner or its mode.
        problem: String,
        /// How to fix it, e.g. `chmod 700 DIR`.
        fix: String,
    },
    /// Asked to share an upload between workers ([`Cooperation`]), a store that cannot.
    #[error(
        "the {store} checkpoint store cannot share an upload between workers (it lets one run at a time hold an upload); use a SQLite store for processes on one host, or a PostgreSQL store for several hosts"
    )]
    CannotCooperate {
        /// Which kind of store.
        store: String,
    },
    /// `record_part` for an identity with no saved checkpoint.
    #[error("no checkpoint saved for {0}; save one before recording parts")]
    NotFound(String),
    /// The store's medium failed.
    #[error("checkpoint store I/O failed at {location}: {source}")]
    Io {
        /// The path or database involved.
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of a store implementation.
    #[error("checkpoint store failed: {0}")]
    Other(String),
}
