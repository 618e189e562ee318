//! Cooperation: several workers (processes, on one host or many) sharing one upload through the
//! store, each part claimed with a lease before it is sent.
//!
//! A store that can cooperate implements [`Cooperation`] beside [`CheckpointStore`]. The shape of a
//! cooperating upload:
//! - the first worker saves the checkpoint with the upload id (under the store's
//!   [`lock`](super::CheckpointStore::lock), held only while it starts the upload); the others load it;
//! - each worker [claims](Cooperation::claim_parts) parts that are neither recorded nor claimed by a
//!   live lease of another worker, sends them, records them, and [releases](Cooperation::release_parts)
//!   the claims; it [renews](Cooperation::renew_parts) its claims while they are in flight, and a
//!   claim whose lease expired (its worker died or was cut off) is taken over by the next claim;
//! - once every part is recorded, exactly one worker [claims the completion](Cooperation::claim_completion)
//!   and completes the multipart upload; the others see the checkpoint gone and the object there.
//!
//! In a batch, a file put whole is [claimed](Cooperation::claim_file) as a whole (its object:
//! bucket and key) before it is sent; a worker that finds it held by another's live lease puts it
//! aside and comes back later. The worker that puts it [records](Cooperation::finish_file) what
//! the object holds (size, ETag, CRC-64), and a worker that claims the file after that is handed
//! the record, to judge by content whether its file is that object (a record left by an older run
//! of an edited tree never skips a changed file).
//!
//! The file and memory stores cannot cooperate: they answer every method with
//! [`StoreError::CannotCooperate`], so asking is the way to find out.
//!
//! [`CheckpointStore`]: super::CheckpointStore

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use super::StoreError;
use crate::checkpoint::UploadIdentity;

/// The claims side of a store shared by cooperating workers: the first worker saves the checkpoint
/// with the upload id and the others load it; each claims parts with a lease before sending them,
/// renews the lease while they are in flight, and a claim whose lease expired is taken over; once
/// every part is recorded exactly one worker claims the completion. `docs/checkpoint-stores.md`
/// has the whole contract.
///
/// Workers are named by strings unique to each run of a worker ([`worker_name`] makes one); leases
/// are counted by the store's clock (the database server's for a server), so the workers' clocks
/// need not agree.
#[async_trait::async_trait]
pub trait Cooperation: Send + Sync + Debug {
    /// Claims for `worker`, until `lease` from now, up to `max` of `candidates` (part numbers of the
    /// saved checkpoint of `identity`) that have no recorded part and no live claim of another
    /// worker; a claim of `worker` itself is renewed and counted. Returns the part numbers claimed,
    /// in the order of `candidates`. Two workers claiming at once never get the same part.
    /// Without a saved checkpoint it is [`StoreError::NotFound`]. No candidates (or `max` 0) claim
    /// nothing and check nothing: `Ok` from a store that can cooperate, which makes it the way to
    /// ask whether one can.
    async fn claim_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        candidates: &[u32],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<u32>, StoreError>;

    /// Extends `worker`'s claims on `parts` to `lease` from now. Returns the parts among them that
    /// `worker` no longer holds (its lease expired and another worker took it over): the caller
    /// may finish sending them (a part sent twice costs bandwidth, never correctness) but should
    /// claim no more until its leases are renewed in time.
    async fn renew_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
        lease: Duration,
    ) -> Result<Vec<u32>, StoreError>;

    /// Drops `worker`'s claims on `parts`: recorded, or given up for another worker to take.
    async fn release_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
    ) -> Result<(), StoreError>;

    /// Claims the completion of the upload for `worker`, until `lease` from now: `true` for exactly
    /// one worker at a time (again for the same worker while it holds it, and for another once the
    /// holder's lease expired). The caller completes the multipart upload and then removes the
    /// checkpoint, which drops every claim with it.
    async fn claim_completion(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Every live claim on parts and completions in the store, for a listing of who works on what
    /// (file claims are keyed by object, not by upload: [`file_claims`](Self::file_claims) lists
    /// them).
    async fn claims(&self) -> Result<Vec<Claim>, StoreError>;

    /// The live claims on whole files of `bucket` whose keys start with `prefix` (every key for an
    /// empty one), by key: which worker is putting which object of a shared batch, and for how
    /// long its lease runs. Released, finished and expired claims are not listed.
    async fn file_claims(&self, bucket: &str, prefix: &str) -> Result<Vec<HeldFile>, StoreError>;

    /// Claims the whole object `key` of `bucket` for `worker`, until `lease` from now, unless
    /// another worker holds a live lease on it: then [`FileClaim::Held`], and nothing changes.
    /// Otherwise (no claim, an expired or released one, or `worker`'s own) it is
    /// [`FileClaim::Claimed`], with the record of the last worker that
    /// [finished](Self::finish_file) the object, if one did: the caller judges by content whether
    /// its file is already that object. Two workers claiming at once never both get it. Needs no
    /// saved checkpoint.
    async fn claim_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<FileClaim, StoreError>;

    /// Extends `worker`'s claim on the object to `lease` from now; `false` when `worker` no longer
    /// holds it (its lease expired and another worker took it over).
    async fn renew_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Drops `worker`'s claim on the object (given up: another worker may take it at once); the
    /// record of the last finish, if any, stays.
    async fn release_file(&self, bucket: &str, key: &str, worker: &str) -> Result<(), StoreError>;

    /// Records that `worker` put the object as `finished` says and drops its claim. The record
    /// replaces any earlier one of the object, and is written even when `worker`'s lease was taken
    /// over meanwhile (it describes what the server held when `worker` was done).
    async fn finish_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        finished: &FinishedFile,
    ) -> Result<(), StoreError>;
}

/// The answer to [`Cooperation::claim_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileClaim {
    /// The caller holds the file now.
    Claimed {
        /// What the last worker that put the object recorded (perhaps in an earlier run, of a file
        /// since changed): to judge by content, never to trust as it is.
        finished: Option<FinishedFile>,
    },
    /// Another worker holds a live lease on the file.
    Held {
        /// The worker holding it.
        worker: String,
        /// How long until its lease expires, unless renewed.
        expires_in: Duration,
    },
}

/// What a worker that put an object recorded of it, through [`Cooperation::finish_file`].
///
/// ```
/// let record = ossup::store::FinishedFile::new(5, "\"5D41402ABC4B2A76B9719D911017C592\"", 0x1234, "host/1/ab");
/// assert_eq!(record.size, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishedFile {
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag, as the server gave it (quoted).
    pub etag: String,
    /// The object's CRC-64 (`x-oss-hash-crc64ecma`).
    pub crc64: u64,
    /// The worker that put it.
    pub worker: String,
}

impl FinishedFile {
    /// A record of an object put by `worker`.
    pub fn new(size: u64, etag: impl Into<String>, crc64: u64, worker: impl Into<String>) -> Self {
        Self {
            size,
            etag: etag.into(),
            crc64,
            worker: worker.into(),
        }
    }
}

/// One live claim on a whole file, as [`Cooperation::file_claims`] lists it.
///
/// ```
/// use std::time::Duration;
/// let held = ossup::store::HeldFile::new("site/app.js", "web-1/812/0a1b2c3d", Duration::from_secs(28));
/// assert_eq!(held.key, "site/app.js");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldFile {
    /// The object's key.
    pub key: String,
    /// The worker holding it.
    pub worker: String,
    /// How long until the lease expires, unless renewed.
    pub expires_in: Duration,
}

impl HeldFile {
    /// A file claim, as a store reports it.
    pub fn new(key: impl Into<String>, worker: impl Into<String>, expires_in: Duration) -> Self {
        Self {
            key: key.into(),
            worker: worker.into(),
            expires_in,
        }
    }
}

/// A store several workers can share an upload through: a [`CheckpointStore`] that can also
/// [cooperate](Cooperation). Every type that is both is one, so an `Arc<dyn CooperativeStore>` is
/// what code that needs both holds (and it converts to an `Arc<dyn CheckpointStore>`).
///
/// [`CheckpointStore`]: super::CheckpointStore
pub trait CooperativeStore: super::CheckpointStore + Cooperation {}

impl<S: super::CheckpointStore + Cooperation + ?Sized> CooperativeStore for S {}

/// One live claim, as [`Cooperation::claims`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The upload's fingerprint ([`UploadIdentity::fingerprint`]).
    pub fingerprint: String,
    /// The part claimed, or `None` for the claim of the upload's completion.
    pub part: Option<u32>,
    /// The worker holding it.
    pub worker: String,
    /// How long until the lease expires, unless renewed.
    pub expires_in: Duration,
}

impl Claim {
    /// A claim, as a store reports it.
    pub fn new(
        fingerprint: impl Into<String>,
        part: Option<u32>,
        worker: impl Into<String>,
        expires_in: Duration,
    ) -> Self {
        Self {
            fingerprint: fingerprint.into(),
            part,
            worker: worker.into(),
            expires_in,
        }
    }
}

/// A worker name unique to this run of this process: host, process id, and a random suffix (a
/// restarted worker is a new worker, whose claims start fresh).
///
/// ```
/// let a = ossup::store::worker_name();
/// assert!(a.contains(&std::process::id().to_string()));
/// assert_ne!(a, ossup::store::worker_name());
/// ```
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The error of a store that cannot cooperate, naming it.
pub(crate) fn cannot_cooperate(store: &str) -> StoreError {
    StoreError::CannotCooperate {
        store: store.to_string(),
    }
}

macro_rules! forward_cooperation {
    ($wrapper:ty) => {
        /// Every method goes to the wrapped store.
        #[async_trait::async_trait]
        impl<C: Cooperation + ?Sized> Cooperation for $wrapper {
            async fn claim_parts(
                &self,
                identity: &UploadIdentity,
                worker: &str,
                candidates: &[u32],
                max: usize,
                lease: Duration,
            ) -> Result<Vec<u32>, StoreError> {
                (**self)
                    .claim_parts(identity, worker, candidates, max, lease)
                    .await
            }

            async fn renew_parts(
                &self,
                identity: &UploadIdentity,
                worker: &str,
                parts: &[u32],
                lease: Duration,
            ) -> Result<Vec<u32>, StoreError> {
                (**self).renew_parts(identity, worker, parts, lease).await
            }

            async fn release_parts(
                &self,
                identity: &UploadIdentity,
                worker: &str,
                parts: &[u32],
            ) -> Result<(), StoreError> {
                (**self).release_parts(identity, worker, parts).await
            }

            async fn claim_completion(
                &self,
                identity: &UploadIdentity,
                worker: &str,
                lease: Duration,
            ) -> Result<bool, StoreError> {
                (**self).claim_completion(identity, worker, lease).await
            }

            async fn file_claims(
                &self,
                bucket: &str,
                prefix: &str,
            ) -> Result<Vec<HeldFile>, StoreError> {
                (**self).file_claims(bucket, prefix).await
            }

            async fn claims(&self) -> Result<Vec<Claim>, StoreError> {
                (**self).claims().await
            }

            async fn claim_file(
                &self,
                bucket: &str,
                key: &str,
                worker: &str,
                lease: Duration,
            ) -> Result<FileClaim, StoreError> {
                (**self).claim_file(bucket, key, worker, lease).await
            }

            async fn renew_file(
                &self,
                bucket: &str,
                key: &str,
                worker: &str,
                lease: Duration,
            ) -> Result<bool, StoreError> {
                (**self).renew_file(bucket, key, worker, lease).await
            }

            async fn release_file(
                &self,
                bucket: &str,
                key: &str,
                worker: &str,
            ) -> Result<(), StoreError> {
                (**self).release_file(bucket, key, worker).await
            }

            async fn finish_file(
                &self,
                bucket: &str,
                key: &str,
                worker: &str,
                finished: &FinishedFile,
            ) -> Result<(), StoreError> {
                (**self).finish_file(bucket, key, worker, finished).await
            }
        }
    };
}

forward_cooperation!(Arc<C>);
forward_cooperation!(Box<C>);

/// A store that cannot cooperate answers every method with [`StoreError::CannotCooperate`].
macro_rules! cannot_cooperate_impl {
    ($store:ty, $name:literal) => {
        /// Cannot cooperate: every method is [`StoreError::CannotCooperate`].
        #[async_trait::async_trait]
        impl $crate::store::Cooperation for $store {
            async fn claim_parts(
                &self,
                _identity: &$crate::UploadIdentity,
                _worker: &str,
                _candidates: &[u32],
                _max: usize,
                _lease: std::time::Duration,
            ) -> Result<Vec<u32>, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn renew_parts(
                &self,
                _identity: &$crate::UploadIdentity,
                _worker: &str,
                _parts: &[u32],
                _lease: std::time::Duration,
            ) -> Result<Vec<u32>, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn release_parts(
                &self,
                _identity: &$crate::UploadIdentity,
                _worker: &str,
                _parts: &[u32],
            ) -> Result<(), $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn claim_completion(
                &self,
                _identity: &$crate::UploadIdentity,
                _worker: &str,
                _lease: std::time::Duration,
            ) -> Result<bool, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn claims(&self) -> Result<Vec<$crate::store::Claim>, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn file_claims(
                &self,
                _bucket: &str,
                _prefix: &str,
            ) -> Result<Vec<$crate::store::HeldFile>, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn claim_file(
                &self,
                _bucket: &str,
                _key: &str,
                _worker: &str,
                _lease: std::time::Duration,
            ) -> Result<$crate::store::FileClaim, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn renew_file(
                &self,
                _bucket: &str,
                _key: &str,
                _worker: &str,
                _lease: std::time::Duration,
            ) -> Result<bool, $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn release_file(
                &self,
                _bucket: &str,
                _key: &str,
                _worker: &str,
            ) -> Result<(), $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }

            async fn finish_file(
                &self,
                _bucket: &str,
                _key: &str,
                _worker: &str,
                _finished: &$crate::store::FinishedFile,
            ) -> Result<(), $crate::StoreError> {
                Err($crate::store::claim::cannot_cooperate($name))
            }
        }
    };
}

cannot_cooperate_impl!(super::MemoryStore, "memory");
cannot_cooperate_impl!(super::FileStore, "file (checkpoint directory)");
