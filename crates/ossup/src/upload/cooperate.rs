//! Cooperation: several workers (processes, hosts) sending one multipart upload of one file
//! together, through a store that can [cooperate](crate::store::Cooperation).
//!
//! The phases stay those of one upload, with four differences:
//! - a worker that finds no checkpoint and the object already at the key with the source's bytes
//!   (the others completed it before it joined) ends with that object;
//! - resume runs under the store's lock as always (so the upload is created once: the first worker
//!   saves the checkpoint with the upload id, the others load it), but the lock is let go once the
//!   checkpoint is there, and a worker that finds it held waits its turn instead of failing;
//! - transfer hands the scheduler only the parts this worker [claimed](Claiming), a few at a time,
//!   renewing their leases while they are in flight; when nothing is left to claim it waits for the
//!   parts other workers hold to be recorded (or their leases to expire, and takes them over); the
//!   parts others sent come from the store's records;
//! - exactly one worker [completes](settle), and removes the checkpoint under the start lock again,
//!   so a worker starting at that moment finds either the checkpoint or the object, never a
//!   checkpoint that vanishes between its looks; the others wait for the checkpoint to go, check
//!   that the object is the one the parts make (size and CRC-64), and end with success.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ossup_proto::ErrorCode;
use ossup_proto::checksum::crc64_of_parts;

use super::complete::Completed;
use super::context::UploadContext;
use super::hash_part;
use super::resume::Resumed;
use super::{ChecksumMode, UploadMethod, UploadOutcome};
use crate::store::{Cooperation as _, CooperativeStore};
use crate::{
    CheckpointStore as _, Error, PartRecord, PartRunner, PartScheduler, PartSpec, ProgressEvent,
    StoreError, StoreLock, UploadIdentity,
};

/// How long a claim lasts unless renewed, unless the uploader says otherwise; renewed every third
/// of it.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease: renewals every third of it still leave the store a round trip's time.
pub(crate) const MIN_LEASE: Duration = Duration::from_millis(100);
/// How often a worker with nothing to claim looks again at what the others recorded (more often
/// under a lease shorter than four times this).
const POLL: Duration = Duration::from_millis(500);

/// How long a worker waits before it looks again at work others hold under `lease`.
pub(crate) fn poll_interval(lease: Duration) -> Duration {
    POLL.min(lease / 4)
}
/// How long a worker waits for another to finish starting (resuming) the upload.
const START_PATIENCE: Duration = Duration::from_secs(300);

/// What one upload's cooperation shares between its phases.
pub(super) struct Cooperating {
    store: Arc<dyn CooperativeStore>,
    worker: String,
    lease: Duration,
    /// Every part recorded, as last read from the store: what the others sent.
    recorded: Mutex<BTreeMap<u32, PartRecord>>,
}

impl std::fmt::Debug for Cooperating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cooperating")
            .field("store", &self.store)
            .field("worker", &self.worker)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Cooperating {
    pub(super) fn new(store: Arc<dyn CooperativeStore>, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            worker: crate::store::worker_name(),
            lease,
            recorded: Mutex::new(BTreeMap::new()),
        })
    }

    /// The scheduler of one upload's transfer: `inner`, handed the parts this worker claims.
    pub(super) fn scheduler(
        self: &Arc<Self>,
        inner: Arc<dyn PartScheduler>,
        identity: UploadIdentity,
    ) -> Arc<dyn PartScheduler> {
        Arc::new(Claiming {
            inner,
            shared: self.clone(),
            identity,
        })
    }

    /// The parts of the store's checkpoint, remembered; `None` once the checkpoint is gone.
    async fn refresh(&self, identity: &UploadIdentity) -> Result<Option<()>, Error> {
        match self.store.load(identity).await.map_err(Error::checkpoint)? {
            Some(checkpoint) => {
                *self.recorded.lock().expect("recorded parts") = checkpoint.parts;
                Ok(Some(()))
            }
            None => Ok(None),
        }
    }

    fn is_recorded(&self, number: u32) -> bool {
        self.recorded
            .lock()
            .expect("recorded parts")
            .contains_key(&number)
    }
}

/// Claims the upload's lock to start (resume) it, waiting while another worker holds it for the
/// same purpose; the caller drops it once the checkpoint is saved.
pub(super) async fn lock_to_start(ctx: &UploadContext) -> Result<StoreLock, Error> {
    if let Some(cooperating) = &ctx.cooperating {
        // A store that cannot cooperate says so here, before anything is started.
        cooperating
            .store
            .claim_parts(
                &ctx.identity,
                &cooperating.worker,
                &[],
                0,
                cooperating.lease,
            )
            .await
            .map_err(Error::checkpoint)?;
    }
    let poll = ctx
        .cooperating
        .as_ref()
        .map_or(POLL, |cooperating| poll_interval(cooperating.lease));
    let deadline = tokio::time::Instant::now() + START_PATIENCE;
    loop {
        match ctx.store.lock(&ctx.identity).await {
            Err(StoreError::InUse { holder, .. }) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%holder, "another worker is starting the upload; waiting");
                tokio::time::sleep(poll).await;
            }
            other => return other.map_err(Error::checkpoint),
        }
    }
}

/// With no checkpoint for the upload, the object at the key when it already holds exactly the
/// source's bytes (its size, and the CRC-64 of the source read here): a worker that joins after the
/// others completed the upload ends with it rather than sending the file again. `None`: upload.
pub(super) async fn already_completed(ctx: &UploadContext) -> Result<Option<UploadOutcome>, Error> {
    if ctx
        .store
        .load(&ctx.identity)
        .await
        .map_err(Error::checkpoint)?
        .is_some()
    {
        return Ok(None);
    }
    let Some(head) = ctx.client.head_object(ctx.bucket(), ctx.key()).await? else {
        return Ok(None);
    };
    if head.size != ctx.plan.stamp.size || head.crc64.is_none() {
        return Ok(None);
    }
    let mut crcs = Vec::with_capacity(ctx.plan.parts.len());
    for part in &ctx.plan.parts {
        let hashed = hash_part(ctx.source().clone(), *part, ChecksumMode::Crc64Only).await?;
        crcs.push((hashed.crc64, part.size));
    }
    let crc64 = crc64_of_parts(crcs);
    if head.crc64 != Some(crc64) {
        return Ok(None);
    }
    tracing::info!("the object is already there, completed by another worker");
    let size = ctx.plan.stamp.size;
    ctx.progress.emit(ProgressEvent::Completed {
        etag: head.etag.clone(),
        crc64,
        bytes_sent: 0,
        bytes_reused: size,
    });
    let parts = ctx.plan.parts.len() as u32;
    Ok(Some(UploadOutcome {
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        size,
        etag: head.etag,
        crc64,
        method: UploadMethod::Multipart,
        upload_id: None,
        part_size: ctx.plan.part_size,
        parts,
        parts_sent: 0,
        parts_reused: parts,
        bytes_sent: 0,
        bytes_reused: size,
        resumed: true,
        notices: ctx.take_notices(),
        peak_part_buffers: ctx.pool.peak(),
        callback: None,
    }))
}

/// The upload the other workers are sending, joined as it is: its checkpoint, when it names an
/// upload of this very source with these options and other workers hold live claims on it. The
/// resume phase is not run then: its ListParts would see parts acknowledged but not yet recorded,
/// and its save would replace records and claims the others are writing meanwhile. Their records
/// were each checked against the server's answer when made. `None`: resume as one upload does.
pub(super) async fn join(ctx: &UploadContext) -> Result<Option<Resumed>, Error> {
    let Some(cooperating) = &ctx.cooperating else {
        return Ok(None);
    };
    let Some(checkpoint) = ctx
        .store
        .load(&ctx.identity)
        .await
        .map_err(Error::checkpoint)?
    else {
        return Ok(None);
    };
    if checkpoint.upload_id.is_empty()
        || checkpoint.source != ctx.plan.stamp
        || checkpoint.options_digest != ctx.options_digest
    {
        return Ok(None);
    }
    let fingerprint = ctx.identity.fingerprint();
    let others_active = cooperating
        .store
        .claims()
        .await
        .map_err(Error::checkpoint)?
        .iter()
        .any(|claim| claim.fingerprint == fingerprint && claim.worker != cooperating.worker);
    if !others_active {
        return Ok(None);
    }
    // Live claims do not mean the server still holds the upload: it may have been aborted, have
    // expired, or be lost with a completion that failed. Joining it then fails at its first
    // request, and so does every worker's next run while any claim on it lives, so no run ever
    // starts afresh. One page of its listing tells; when it is gone, the upload is resumed as one
    // upload does (which finds the object completed, or starts a fresh upload under the lock).
    match ctx
        .client
        .list_parts_page(ctx.bucket(), ctx.key(), &checkpoint.upload_id, 0, Some(1))
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => {
            tracing::info!(upload_id = %checkpoint.upload_id, "the upload the other workers were sending is gone; resuming");
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    tracing::info!(upload_id = %checkpoint.upload_id, "joining the upload other workers are sending");
    Ok(Some(Resumed {
        checkpoint,
        completed_etag: None,
        resumed: true,
    }))
}

/// Every part of the plan, as the server holds it: what this worker sent (`sent`) and what the
/// others recorded.
pub(super) async fn all_parts(
    ctx: &UploadContext,
    cooperating: &Cooperating,
    mut sent: BTreeMap<u32, PartRecord>,
) -> Result<BTreeMap<u32, PartRecord>, Error> {
    cooperating.refresh(&ctx.identity).await?;
    for (number, record) in cooperating.recorded.lock().expect("recorded parts").iter() {
        sent.entry(*number).or_insert_with(|| record.clone());
    }
    Ok(sent)
}

/// The completion: this worker completes when it wins the claim on it; otherwise it waits for
/// the winner to remove the checkpoint and checks the object. `None` means: complete it here.
pub(super) async fn settle(
    ctx: &UploadContext,
    cooperating: &Cooperating,
    parts: &BTreeMap<u32, PartRecord>,
) -> Result<Option<Completed>, Error> {
    loop {
        match cooperating
            .store
            .claim_completion(&ctx.identity, &cooperating.worker, cooperating.lease)
            .await
        {
            Ok(true) if parts.len() == ctx.plan.parts.len() => return Ok(None),
            Ok(true) => {
                return Err(Error::config(format!(
                    "this worker holds the completion of the upload, but only {} of its {} parts are recorded",
                    parts.len(),
                    ctx.plan.parts.len()
                )));
            }
            Ok(false) => tokio::time::sleep(poll_interval(cooperating.lease)).await,
            // The winner completed and removed the checkpoint.
            Err(StoreError::NotFound(_)) => return completed_elsewhere(ctx, parts).await.map(Some),
            Err(err) => return Err(Error::checkpoint(err)),
        }
    }
}

/// The object another worker completed: it must have the source's size and CRC-64. The CRC-64
/// comes from the parts' records, and, for parts whose records this worker never saw (the
/// checkpoint went with them), from the source itself.
async fn completed_elsewhere(
    ctx: &UploadContext,
    parts: &BTreeMap<u32, PartRecord>,
) -> Result<Completed, Error> {
    let mut crcs = Vec::with_capacity(ctx.plan.parts.len());
    for part in &ctx.plan.parts {
        let crc = match parts.get(&part.number) {
            Some(record) => record.crc64,
            None => {
                hash_part(ctx.source().clone(), *part, ChecksumMode::Crc64Only)
                    .await?
                    .crc64
            }
        };
        crcs.push((crc, part.size));
    }
    let crc64 = crc64_of_parts(crcs);
    let head = ctx.client.head_object(ctx.bucket(), ctx.key()).await?;
    match head {
        Some(head) if head.size == ctx.plan.stamp.size && head.crc64 == Some(crc64) => {
            tracing::info!("another worker completed the upload");
            Ok(Completed {
                etag: head.etag,
                crc64,
                callback: None,
            })
        }
        other => Err(Error::integrity(format!(
            "another worker removed the checkpoint, but the object at oss://{}/{} is not the one the parts make (size {}, CRC-64 {crc64:#x}; the server has {other:?}); run the upload again",
            ctx.bucket(),
            ctx.key(),
            ctx.plan.stamp.size
        ))),
    }
}

/// The scheduler of a cooperating upload's transfer: claims parts a few at a time, runs them
/// through the uploader's scheduler, renews their leases meanwhile, and ends once every part of
/// the plan is recorded, by this worker or another.
struct Claiming {
    inner: Arc<dyn PartScheduler>,
    shared: Arc<Cooperating>,
    identity: UploadIdentity,
}

impl std::fmt::Debug for Claiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claiming")
            .field("inner", &self.inner)
            .field("worker", &self.shared.worker)
            .finish()
    }
}

#[async_trait::async_trait]
impl PartScheduler for Claiming {
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        let store = &self.shared.store;
        let worker = self.shared.worker.as_str();
        let lease = self.shared.lease;
        let mut left: BTreeMap<u32, PartSpec> = parts.into_iter().map(|p| (p.number, p)).collect();
        // Enough for every slot and the next round, few enough to leave work for the others.
        let batch = self.inner.concurrency().max(1) * 2;
        while !left.is_empty() {
            let candidates: Vec<u32> = left.keys().copied().collect();
            let claimed = match store
                .claim_parts(&self.identity, worker, &candidates, batch, lease)
                .await
            {
                Ok(claimed) => claimed,
                // Another worker completed the upload and removed its checkpoint.
                Err(StoreError::NotFound(_)) => return Ok(()),
                Err(err) => return Err(Error::checkpoint(err)),
            };
            if claimed.is_empty() {
                // The rest is in other workers' hands: wait for their records, or for their
                // leases to expire.
                if self.shared.refresh(&self.identity).await?.is_none() {
                    return Ok(());
                }
                left.retain(|number, _| !self.shared.is_recorded(*number));
                if !left.is_empty() {
                    tokio::time::sleep(poll_interval(lease)).await;
                }
                continue;
            }
            let specs: Vec<PartSpec> = claimed.iter().filter_map(|n| left.remove(n)).collect();
            tracing::debug!(worker, parts = ?claimed, "claimed parts");
            let renew = async {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store
                        .renew_parts(&self.identity, worker, &claimed, lease)
                        .await
                    {
                        Ok(lost) if !lost.is_empty() => tracing::warn!(
                            parts = ?lost,
                            "another worker took over parts whose lease expired; they may be sent twice"
                        ),
                        Ok(_) => {}
                        Err(err) => tracing::warn!("renewing the claims on parts failed: {err}"),
                    }
                }
            };
            let sent = tokio::select! {
                sent = self.inner.run(specs, runner) => sent,
                () = renew => Ok(()),
            };
            if let Err(err) = sent {
                // What this worker will not send is the others' to take at once, not after the
                // lease (a part it did send is recorded, and no longer claimable anyway).
                if let Err(release) = store.release_parts(&self.identity, worker, &claimed).await {
                    tracing::warn!("releasing the claims on parts failed: {release}");
                }
                return Err(err);
            }
        }
        Ok(())
    }
}
