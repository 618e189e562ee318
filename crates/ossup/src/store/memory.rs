//! [`MemoryStore`]: checkpoints in this process's memory, for tests and for uploads that need no
//! resume across runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CheckpointStore, DigestCache, FileDigest, StoreError, StoreLock};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};

/// Checkpoints kept in memory, gone when the last handle drops.
///
/// Cloning gives another handle on the same checkpoints. [`lock`](CheckpointStore::lock) is
/// exclusive within the process: a second claim on an identity while the first is held gives
/// [`StoreError::InUse`].
///
/// ```
/// use ossup::{Checkpoint, CheckpointStore, MemoryStore, PartRecord, SourceStamp, UploadIdentity};
///
/// # #[tokio::main] async fn main() -> Result<(), ossup::StoreError> {
/// let store = MemoryStore::new();
/// let id = UploadIdentity::new("/data/a.bin", "bucket", "a.bin", 8 << 20);
/// let stamp = SourceStamp { size: 20 << 20, modified_nanos: None };
/// store.save(&Checkpoint::new(id.clone(), "upload-1", stamp, 0, "")).await?;
/// store
///     .record_part(&id, &PartRecord { number: 1, size: 8 << 20, etag: "\"e\"".into(), md5: None, crc64: 7 })
///     .await?;
/// assert_eq!(store.load(&id).await?.unwrap().parts.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    checkpoints: Mutex<BTreeMap<UploadIdentity, Checkpoint>>,
    held: Arc<Mutex<HashSet<UploadIdentity>>>,
    digests: Mutex<HashMap<String, FileDigest>>,
}

#[async_trait::async_trait]
impl DigestCache for MemoryStore {
    async fn digest(&self, path: &str) -> Result<Option<FileDigest>, StoreError> {
        Ok(self.digests().get(path).cloned())
    }

    async fn record_digest(&self, path: &str, digest: &FileDigest) -> Result<(), StoreError> {
        self.digests().insert(path.to_owned(), digest.clone());
        Ok(())
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn checkpoints(&self) -> MutexGuard<'_, BTreeMap<UploadIdentity, Checkpoint>> {
        // A panic elsewhere while holding the lock cannot leave a half-applied change: every
        // mutation below is a single map operation.
        self.inner
            .checkpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn digests(&self) -> MutexGuard<'_, HashMap<String, FileDigest>> {
        self.inner
            .digests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Releases an identity held through [`MemoryStore`]'s lock when dropped.
#[derive(Debug)]
struct HeldIdentity {
    held: Arc<Mutex<HashSet<UploadIdentity>>>,
    identity: UploadIdentity,
}

impl Drop for HeldIdentity {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.identity);
    }
}

#[async_trait::async_trait]
impl CheckpointStore for MemoryStore {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.checkpoints().get(identity).cloned())
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.checkpoints()
            .insert(checkpoint.identity.clone(), checkpoint.clone());
        Ok(())
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        match self.checkpoints().get_mut(identity) {
            Some(checkpoint) => {
                checkpoint.parts.insert(part.number, part.clone());
                Ok(())
            }
            None => Err(StoreError::NotFound(identity.to_string())),
        }
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        // One map lock for the batch: nothing else sees it half applied.
        match self.checkpoints().get_mut(identity) {
            Some(checkpoint) => {
                for part in parts {
                    checkpoint.parts.insert(part.number, part.clone());
                }
                Ok(())
            }
            None => Err(StoreError::NotFound(identity.to_string())),
        }
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        self.checkpoints().remove(identity);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        Ok(self.checkpoints().keys().cloned().collect())
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !held.insert(identity.clone()) {
            return Err(StoreError::InUse {
                identity: identity.to_string(),
                holder: format!(
                    "another task of this process (pid {}) holds it in the same memory store",
                    std::process::id()
                ),
            });
        }
        Ok(StoreLock::held_by(HeldIdentity {
            held: self.inner.held.clone(),
            identity: identity.clone(),
        }))
    }
}
