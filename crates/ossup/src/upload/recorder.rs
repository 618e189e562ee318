//! Checkpoint records off the critical path.
//!
//! Once the server has acknowledged a part, its buffer and its scheduler slot go to the next part at
//! once, and the part's record is committed by a task of its own. A durable store's flush costs
//! hundreds of microseconds, which a small part would otherwise wait for while holding its slot;
//! committed alongside the next parts, concurrent records share flushes
//! ([`GroupCommit`](crate::store::GroupCommit)).
//!
//! - Records are committed in batches: the first record of a batch waits up to [`LINGER`] for
//!   others (or until [`BATCH`] are waiting), then the batch goes to the store at once, where its
//!   records share one flush. At 100 KiB parts a 10,000-part upload acknowledges a part every few
//!   hundred microseconds, about as often as a flush completes; without the wait, nearly every
//!   record would pay a flush and the thread hand-offs around it for itself. Nothing waits on a
//!   record but the part's progress report, and a record lost to a crash only makes the next run
//!   check that part against ListParts and the source instead of trusting the checkpoint.
//! - At most [`RECORDS_IN_FLIGHT`] records are pending. A part whose record would exceed that waits
//!   for a free place, holding its scheduler slot but not its buffer, so a slow store slows the
//!   upload down instead of growing memory.
//! - [`Recorder::finish`] waits for every record: Complete is sent only once every record has
//!   settled. `PartDone` is reported when the part's record has settled, so `transferred` still only
//!   counts parts that are on the server and (unless the store failed) in the checkpoint.
//! - A failed record does not stop the upload. The part is on the server and the engine holds its
//!   ETag and checksums, so the object completes, verified, without the record; the checkpoint only
//!   serves a resume after a crash, and a resume reads an unrecorded part's range again and checks
//!   it against ListParts. Stopping would turn a full checkpoint disk into a failed upload for no
//!   gain in correctness. The loss of resumability is never silent: the first failure is a
//!   [`Notice::CheckpointRecordFailed`], and every one is logged.
//! - A checkpoint found damaged while recording ([`StoreError::Corrupt`]: the store set it aside) or
//!   gone ([`StoreError::NotFound`]) is saved again with every part known so far, reported as a
//!   [`Notice::CheckpointRebuilt`], and the upload goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tracing::{Instrument as _, Span};

use super::progress::Progress;
use crate::{Checkpoint, CheckpointStore, Notice, PartRecord, StoreError};

/// The most part records committing at once. Enough for a durable store's group commit to batch
/// many records per flush (64 in flight already bring a synced record to 10–20 µs per part), few
/// enough that a slow store holds back only a few kilobytes.
pub(super) const RECORDS_IN_FLIGHT: usize = 128;

/// How long the first record of a batch waits for others before the batch is committed.
const LINGER: Duration = Duration::from_millis(5);

/// A batch this large is committed without waiting out [`LINGER`].
const BATCH: usize = 32;

/// How many times one upload saves a lost checkpoint again before it treats further losses as
/// failed records: a store that loses every checkpoint it is given is not worth rewriting forever.
const MAX_REBUILDS: u32 = 3;

/// Commits part records concurrently with the transfer, and keeps every part known on the server.
pub(super) struct Recorder {
    shared: Arc<Shared>,
    places: Arc<Semaphore>,
    batch: Arc<Mutex<Batch>>,
    tasks: Mutex<JoinSet<()>>,
    /// The span of the phase that made the recorder, which the commit tasks carry.
    span: Span,
}

/// Records gathered for the next commit.
#[derive(Default)]
struct Batch {
    records: Vec<Pending>,
    /// Whether a task is waiting out [`LINGER`] to commit this batch.
    planned: bool,
}

/// A record waiting for its batch, holding its place among the records in flight.
struct Pending {
    record: PartRecord,
    snapshot: u64,
    place: OwnedSemaphorePermit,
}

/// What adding a record to the batch asks for.
enum Next {
    /// The batch is full: commit it now.
    Commit(Vec<Pending>),
    /// The batch has just begun: commit it after [`LINGER`].
    Linger,
    /// A commit of this batch is already planned.
    Nothing,
}

/// What the record tasks share.
struct Shared {
    store: Arc<dyn CheckpointStore>,
    /// The saved checkpoint without its parts: what a rebuild saves again, with the known parts.
    header: Checkpoint,
    progress: Arc<Progress>,
    known: Mutex<KnownParts>,
    /// Rebuilds, one at a time.
    rebuilds: tokio::sync::Mutex<Rebuilds>,
    /// Rebuild saves that succeeded, readable without waiting for a rebuild in progress.
    saves: AtomicU64,
    failure_reported: AtomicBool,
    notices: Mutex<Vec<Notice>>,
    /// The first damage a record found (`Corrupt`: where the checkpoint was and where the store moved
    /// it). Records racing it find the checkpoint merely gone (`NotFound`), and whichever of them
    /// rebuilds first must still say where the damaged one went.
    damage: Mutex<Option<LostCheckpoint>>,
    /// A rebuild after `NotFound` whose cause was not known yet; reported when the records settle.
    unexplained_rebuild: Mutex<Option<(LostCheckpoint, u32)>>,
}

/// Where a lost checkpoint was, why it was lost, and where it was set aside.
#[derive(Clone)]
struct LostCheckpoint {
    location: String,
    reason: String,
    set_aside_to: Option<String>,
}

/// The parts verified on the server: reused ones, and every acknowledged one, recorded or not.
struct KnownParts {
    parts: BTreeMap<u32, PartRecord>,
    /// Snapshots taken for rebuilds so far. A part inserted when this was `n` is in every snapshot
    /// numbered above `n`.
    snapshots: u64,
}

#[derive(Default)]
struct Rebuilds {
    /// The number of the latest snapshot that was saved, 0 for none.
    saved_snapshot: u64,
    count: u32,
}

/// What the records came to.
pub(super) struct Recorded {
    /// Every part verified on the server.
    pub(super) parts: BTreeMap<u32, PartRecord>,
    /// What went wrong with the checkpoint meanwhile, already reported as events.
    pub(super) notices: Vec<Notice>,
}

impl Recorder {
    /// Records into `checkpoint`, as saved in `store`; its parts are those verified on the server.
    pub(super) fn new(
        store: Arc<dyn CheckpointStore>,
        mut checkpoint: Checkpoint,
        progress: Arc<Progress>,
    ) -> Self {
        let verified = std::mem::take(&mut checkpoint.parts);
        let header = checkpoint;
        Self {
            shared: Arc::new(Shared {
                store,
                header,
                progress,
                known: Mutex::new(KnownParts {
                    parts: verified,
                    snapshots: 0,
                }),
                rebuilds: tokio::sync::Mutex::new(Rebuilds::default()),
                saves: AtomicU64::new(0),
                failure_reported: AtomicBool::new(false),
                notices: Mutex::new(Vec::new()),
                damage: Mutex::new(None),
                unexplained_rebuild: Mutex::new(None),
            }),
            places: Arc::new(Semaphore::new(RECORDS_IN_FLIGHT)),
            batch: Arc::new(Mutex::new(Batch::default())),
            tasks: Mutex::new(JoinSet::new()),
            span: Span::current(),
        }
    }

    /// Takes note of `record`, an acknowledged and verified part, and queues it for the next batch
    /// commit; returns once the record is queued (at once, unless [`RECORDS_IN_FLIGHT`] are pending).
    pub(super) async fn record(&self, record: PartRecord) {
        let snapshot = {
            let mut known = self.shared.known();
            known.parts.insert(record.number, record.clone());
            known.snapshots
        };
        let place = self
            .places
            .clone()
            .acquire_owned()
            .await
            .expect("the records' semaphore is never closed");
        let next = {
            let mut batch = self.batch.lock().expect("record batch lock");
            batch.records.push(Pending {
                record,
                snapshot,
                place,
            });
            if batch.records.len() >= BATCH {
                Next::Commit(batch.take())
            } else if !std::mem::replace(&mut batch.planned, true) {
                Next::Linger
            } else {
                Next::Nothing
            }
        };
        let shared = self.shared.clone();
        let mut tasks = self.tasks.lock().expect("record tasks lock");
        // Finished tasks are collected here, so a 10,000-part upload does not keep thousands of them.
        while let Some(finished) = tasks.try_join_next() {
            rethrow_panic(finished);
        }
        match next {
            // A batch holds several parts: its commit carries the phase's span, not a part's.
            Next::Commit(records) => {
                tasks.spawn(
                    async move { shared.commit_all(records).await }.instrument(self.span.clone()),
                );
            }
            Next::Linger => {
                let batch = self.batch.clone();
                tasks.spawn(
                    async move {
                        tokio::time::sleep(LINGER).await;
                        let records = batch.lock().expect("record batch lock").take();
                        shared.commit_all(records).await;
                    }
                    .instrument(self.span.clone()),
                );
            }
            Next::Nothing => {}
        }
    }

    /// A handle on the records waiting for their batch, to commit them should the upload be
    /// cancelled (which drops the recorder and its tasks).
    pub(super) fn lingering(&self) -> Lingering {
        Lingering {
            shared: self.shared.clone(),
            batch: self.batch.clone(),
        }
    }

    /// Waits until every record has settled; returns every part verified on the server and the
    /// notices reported meanwhile.
    ///
    /// Dropping the recorder instead (the upload was cancelled) stops the records still pending;
    /// a store may commit them all the same.
    pub(super) async fn finish(self) -> Recorded {
        // What still lingers is committed now; the task planned for it will find nothing left.
        let lingering = self.batch.lock().expect("record batch lock").take();
        self.shared.commit_all(lingering).await;
        let mut tasks = self.tasks.into_inner().expect("record tasks lock");
        while let Some(finished) = tasks.join_next().await {
            rethrow_panic(finished);
        }
        let unexplained = self
            .shared
            .unexplained_rebuild
            .lock()
            .expect("rebuild lock")
            .take();
        if let Some((fallback, parts)) = unexplained {
            let lost = self.shared.damage().unwrap_or(fallback);
            self.shared.rebuilt(lost, parts);
        }
        let parts = std::mem::take(&mut self.shared.known().parts);
        let notices = std::mem::take(&mut *self.shared.notices.lock().expect("notices lock"));
        Recorded { parts, notices }
    }
}

/// The records of a recorder still waiting for their batch.
pub(super) struct Lingering {
    shared: Arc<Shared>,
    batch: Arc<Mutex<Batch>>,
}

impl Lingering {
    /// Commits the records still waiting for their batch, and reports their parts done.
    pub(super) async fn commit(self) {
        let records = self.batch.lock().expect("record batch lock").take();
        self.shared.commit_all(records).await;
    }
}

/// A record task ends by itself; one that panicked (in a store) takes the upload with it, as the
/// panic would have without the task.
fn rethrow_panic(finished: Result<(), JoinError>) {
    if let Err(e) = finished
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Batch {
    /// The records gathered so far; the next record begins a new batch.
    fn take(&mut self) -> Vec<Pending> {
        self.planned = false;
        std::mem::take(&mut self.records)
    }
}

impl Shared {
    fn known(&self) -> MutexGuard<'_, KnownParts> {
        self.known.lock().expect("known parts lock")
    }

    /// Commits a batch of records in one call of the store (one flush for the shipped durable
    /// stores), rebuilding a lost checkpoint, then reports their parts done and frees their places.
    async fn commit_all(&self, batch: Vec<Pending>) {
        let Some(snapshot) = batch.iter().map(|pending| pending.snapshot).max() else {
            return;
        };
        let records: Vec<PartRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let saves_before = self.saves.load(Ordering::SeqCst);
        match self
            .store
            .record_parts(&self.header.identity, &records)
            .await
        {
            Ok(()) => {}
            Err(lost @ (StoreError::Corrupt { .. } | StoreError::NotFound(_))) => {
                self.note_damage(&lost);
                if let Err(error) = self.rebuild(&records, snapshot, saves_before, lost).await {
                    for record in &records {
                        self.failed(record.number, &error);
                    }
                }
            }
            Err(_) => {
                // Which of the batch's records failed is not known: record them one by one, so
                // that each record's outcome (and any notice) is its own.
                for pending in &batch {
                    self.commit_one(&pending.record, pending.snapshot).await;
                }
            }
        }
        for pending in batch {
            self.progress
                .part_done(pending.record.number, pending.record.size);
            drop(pending.place);
        }
    }

    /// Commits one record, rebuilding a lost checkpoint.
    async fn commit_one(&self, record: &PartRecord, snapshot: u64) {
        let saves_before = self.saves.load(Ordering::SeqCst);
        let identity = &self.header.identity;
        let result = match self.store.record_part(identity, record).await {
            Err(lost @ (StoreError::Corrupt { .. } | StoreError::NotFound(_))) => {
                self.note_damage(&lost);
                self.rebuild(std::slice::from_ref(record), snapshot, saves_before, lost)
                    .await
            }
            other => other,
        };
        if let Err(error) = result {
            self.failed(record.number, &error);
        }
    }

    /// Saves the checkpoint again with every known part, after recording `records` found it `lost`;
    /// `snapshot` is the snapshot count when the last of their parts became known, `saves_before`
    /// the saves when they were sent.
    async fn rebuild(
        &self,
        records: &[PartRecord],
        snapshot: u64,
        saves_before: u64,
        mut lost: StoreError,
    ) -> Result<(), StoreError> {
        let mut rebuilds = self.rebuilds.lock().await;
        if rebuilds.saved_snapshot > snapshot {
            // A checkpoint saved since these parts became known already holds them.
            return Ok(());
        }
        if self.saves.load(Ordering::SeqCst) != saves_before {
            // The checkpoint was saved again while these records were on their way, so the loss
            // they saw may be the one already repaired: record them in the new checkpoint.
            match self
                .store
                .record_parts(&self.header.identity, records)
                .await
            {
                Err(again @ (StoreError::Corrupt { .. } | StoreError::NotFound(_))) => lost = again,
                other => return other,
            }
        }
        if rebuilds.count >= MAX_REBUILDS {
            return Err(lost);
        }
        let (checkpoint, number) = {
            let mut known = self.known();
            known.snapshots += 1;
            let checkpoint = Checkpoint {
                parts: known.parts.clone(),
                ..self.header.clone()
            };
            (checkpoint, known.snapshots)
        };
        rebuilds.count += 1;
        self.store.save(&checkpoint).await?;
        rebuilds.saved_snapshot = number;
        self.saves.fetch_add(1, Ordering::SeqCst);
        let parts = checkpoint.parts.len() as u32;
        self.note_damage(&lost);
        match (self.damage(), lost) {
            (Some(damage), _) => self.rebuilt(damage, parts),
            (None, other) => {
                // Gone without a known cause yet: a record that found the damage may still be on its
                // way; report once every record has settled.
                let fallback = LostCheckpoint {
                    location: self.header.identity.to_string(),
                    reason: other.to_string(),
                    set_aside_to: None,
                };
                *self.unexplained_rebuild.lock().expect("rebuild lock") = Some((fallback, parts));
            }
        }
        Ok(())
    }

    /// Remembers the first `Corrupt` a record met.
    fn note_damage(&self, error: &StoreError) {
        if let StoreError::Corrupt {
            location,
            reason,
            set_aside_to,
        } = error
        {
            self.damage
                .lock()
                .expect("damage lock")
                .get_or_insert_with(|| LostCheckpoint {
                    location: location.clone(),
                    reason: reason.clone(),
                    set_aside_to: set_aside_to.clone(),
                });
        }
    }

    fn damage(&self) -> Option<LostCheckpoint> {
        self.damage.lock().expect("damage lock").clone()
    }

    fn rebuilt(&self, lost: LostCheckpoint, parts: u32) {
        self.notice(Notice::CheckpointRebuilt {
            location: lost.location,
            reason: lost.reason,
            set_aside_to: lost.set_aside_to,
            parts,
        });
    }

    fn failed(&self, part: u32, error: &StoreError) {
        if self.failure_reported.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                part,
                "recording the part in the checkpoint failed; the upload goes on: {error}"
            );
        } else {
            self.notice(Notice::CheckpointRecordFailed {
                part,
                error: error.to_string(),
            });
        }
    }

    fn notice(&self, notice: Notice) {
        let mut notices = self.notices.lock().expect("notices lock");
        self.progress.notice(&mut notices, notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SourceStamp, StoreLock, UploadIdentity};
    use futures::FutureExt as _;
    use std::sync::atomic::AtomicUsize;

    fn identity() -> UploadIdentity {
        UploadIdentity::new("source", "bucket", "key", 100 << 10)
    }

    fn part(number: u32) -> PartRecord {
        PartRecord {
            number,
            size: 100 << 10,
            etag: format!("\"etag-{number}\""),
            md5: None,
            crc64: u64::from(number),
        }
    }

    fn progress() -> Arc<Progress> {
        Arc::new(Progress::new(None))
    }

    async fn saved(store: &dyn CheckpointStore) -> Checkpoint {
        let checkpoint = Checkpoint::new(
            identity(),
            "upload",
            SourceStamp {
                size: 1,
                modified_nanos: None,
            },
            1,
            "",
        );
        store.save(&checkpoint).await.unwrap();
        checkpoint
    }

    /// A memory store that, when part `lose_at` is recorded, loses the checkpoint (as a store
    /// setting a damaged one aside does) and says so; counts saves and blocks records on request.
    #[derive(Debug, Default)]
    struct Losing {
        inner: MemoryStore,
        lose_at: u32,
        lost: AtomicBool,
        saves: AtomicUsize,
        hold: Option<Arc<Semaphore>>,
        held: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl CheckpointStore for Losing {
        async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
            self.inner.load(identity).await
        }
        async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
            self.saves.fetch_add(1, Ordering::SeqCst);
            self.inner.save(checkpoint).await
        }
        async fn record_part(
            &self,
            identity: &UploadIdentity,
            part: &PartRecord,
        ) -> Result<(), StoreError> {
            if let Some(hold) = &self.hold {
                self.held.fetch_add(1, Ordering::SeqCst);
                hold.acquire().await.expect("hold open").forget();
            }
            if part.number == self.lose_at && !self.lost.swap(true, Ordering::SeqCst) {
                self.inner.remove(identity).await?;
                return Err(StoreError::Corrupt {
                    location: "memory".into(),
                    reason: "damaged".into(),
                    set_aside_to: Some("elsewhere".into()),
                });
            }
            self.inner.record_part(identity, part).await
        }
        /// All of a batch at once, as a store grouping them into one flush takes them.
        async fn record_parts(
            &self,
            identity: &UploadIdentity,
            parts: &[PartRecord],
        ) -> Result<(), StoreError> {
            futures::future::join_all(parts.iter().map(|part| self.record_part(identity, part)))
                .await
                .into_iter()
                .collect()
        }
        async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
            self.inner.remove(identity).await
        }
        async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
            self.inner.list().await
        }
        async fn lock(&self, _: &UploadIdentity) -> Result<StoreLock, StoreError> {
            Ok(StoreLock::none())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_lost_under_many_records_is_saved_again_once_with_every_part() {
        let store = Arc::new(Losing {
            lose_at: 10,
            ..Default::default()
        });
        let checkpoint = saved(store.as_ref()).await;
        let saves_before = store.saves.load(Ordering::SeqCst);
        let recorder = Recorder::new(store.clone(), checkpoint, progress());
        futures::future::join_all((1..=200).map(|n| recorder.record(part(n)))).await;
        let recorded = recorder.finish().await;

        assert_eq!(store.saves.load(Ordering::SeqCst) - saves_before, 1);
        assert!(
            matches!(&recorded.notices[..], [Notice::CheckpointRebuilt { set_aside_to: Some(to), .. }] if to == "elsewhere"),
            "{:?}",
            recorded.notices
        );
        let stored = store.load(&identity()).await.unwrap().unwrap();
        assert_eq!(stored.parts.len(), 200);
        assert_eq!(stored.parts, recorded.parts);
    }

    #[tokio::test(start_paused = true)]
    async fn records_wait_for_their_batch_a_full_batch_goes_at_once_and_finish_commits_the_rest() {
        let store = Arc::new(MemoryStore::new());
        let checkpoint = saved(store.as_ref()).await;
        let recorder = Recorder::new(store.clone(), checkpoint, progress());
        let recorded_parts =
            || async { store.load(&identity()).await.unwrap().unwrap().parts.len() };

        for n in 1..=3 {
            recorder.record(part(n)).await;
        }
        tokio::task::yield_now().await;
        assert_eq!(
            recorded_parts().await,
            0,
            "a new batch waits for more records"
        );
        tokio::time::sleep(LINGER + Duration::from_millis(1)).await;
        assert_eq!(recorded_parts().await, 3);

        for n in 4..4 + BATCH as u32 {
            recorder.record(part(n)).await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            recorded_parts().await,
            3 + BATCH,
            "a full batch does not wait"
        );

        recorder.record(part(1000)).await;
        let recorded = recorder.finish().await;
        assert_eq!(
            recorded_parts().await,
            4 + BATCH,
            "finish commits what lingers"
        );
        assert_eq!(recorded.parts.len(), 4 + BATCH);
    }

    #[tokio::test]
    async fn cancelling_commits_the_records_still_waiting_for_their_batch() {
        let store = Arc::new(MemoryStore::new());
        let checkpoint = saved(store.as_ref()).await;
        let recorder = Recorder::new(store.clone(), checkpoint, progress());
        recorder.record(part(1)).await;
        recorder.record(part(2)).await;
        let lingering = recorder.lingering();
        // An upload cancelled mid-flight drops its recorder with the batch still waiting.
        drop(recorder);
        lingering.commit().await;
        let stored = store.load(&identity()).await.unwrap().unwrap();
        assert_eq!(stored.parts.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_of_records_is_pending() {
        let hold = Arc::new(Semaphore::new(0));
        let store = Arc::new(Losing {
            hold: Some(hold.clone()),
            ..Default::default()
        });
        let checkpoint = saved(store.as_ref()).await;
        let recorder = Recorder::new(store.clone(), checkpoint, progress());
        for n in 1..=RECORDS_IN_FLIGHT as u32 {
            recorder
                .record(part(n))
                .now_or_never()
                .expect("a record under the limit starts at once");
        }
        let mut next = Box::pin(recorder.record(part(RECORDS_IN_FLIGHT as u32 + 1)));
        assert!(
            (&mut next).now_or_never().is_none(),
            "a record over the limit waits"
        );
        // A batch settles as a whole: one held batch finishing frees the places the waiting record
        // needs.
        while store.held.load(Ordering::SeqCst) < RECORDS_IN_FLIGHT {
            tokio::task::yield_now().await;
        }
        hold.add_permits(BATCH);
        next.await;
        hold.add_permits(RECORDS_IN_FLIGHT);
        let recorded = recorder.finish().await;
        assert!(recorded.notices.is_empty(), "{:?}", recorded.notices);
        let stored = store.load(&identity()).await.unwrap().unwrap();
        assert_eq!(stored.parts.len(), RECORDS_IN_FLIGHT + 1);
    }
}
