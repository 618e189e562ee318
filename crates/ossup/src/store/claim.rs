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

    /// Every live claim in the store, for a listing of who works on what.
    async fn claims(&self) -> Result<Vec<Claim>, StoreError>;
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

            async fn claims(&self) -> Result<Vec<Claim>, StoreError> {
                (**self).claims().await
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
        }
    };
}

cannot_cooperate_impl!(super::MemoryStore, "memory");
cannot_cooperate_impl!(super::FileStore, "file (checkpoint directory)");
