//! Where checkpoints live between runs: the [`CheckpointStore`] trait and the stores that ship.
//!
//! A store is keyed by [`UploadIdentity`]. Recording a part is the hot operation (once per part, from
//! many tasks at once), so it is its own method and must not rewrite the whole checkpoint.

use std::any::Any;
use std::fmt::Debug;

use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};

/// A durable (or not) home for checkpoints.
///
/// Contract, checked by the `testkit` feature's suite:
/// - [`save`](Self::save) replaces the whole checkpoint of an identity atomically: a later
///   [`load`](Self::load) sees either the old or the new one, never a mix, even after a crash.
/// - [`record_part`](Self::record_part) adds or replaces one part of a saved checkpoint; once it
///   returns, the part survives a crash (for durable stores). Recording the same part twice is the same
///   as once. Calls from many tasks at once lose nothing.
/// - [`load`](Self::load) never returns data it cannot vouch for: a torn, corrupt, foreign or
///   future-version record gives [`StoreError::Corrupt`], and the store sets that record aside (so the
///   next load returns `Ok(None)`) and says in the error where it put it.
/// - [`lock`](Self::lock) claims an identity for the caller; a second claim while the first is held,
///   from this or another process, gives [`StoreError::InUse`]. A crashed holder does not keep it.
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

    /// Removes the checkpoint of `identity`; removing one that is not there is not an error.
    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError>;

    /// The identities that have a checkpoint.
    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError>;

    /// Claims `identity` until the returned lock drops. Stores that cannot be shared between
    /// processes may return [`StoreLock::none`].
    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        let _ = identity;
        Ok(StoreLock::none())
    }
}

/// A claim on an upload identity, released when dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] Option<Box<dyn Any + Send + Sync>>);

impl StoreLock {
    /// A lock that holds nothing (for stores private to one process).
    pub fn none() -> Self {
        Self(None)
    }

    /// A lock held by `guard` until it drops.
    pub fn held_by(guard: impl Any + Send + Sync) -> Self {
        Self(Some(Box::new(guard)))
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
