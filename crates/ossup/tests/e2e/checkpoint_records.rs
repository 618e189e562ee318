//! Checkpoint records off the critical path: parts keep flowing while their records commit,
//! Complete waits for every record, a checkpoint lost mid-upload is saved again, a store that cannot
//! record does not stop the upload, and a resume hashes unrecorded parts several at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use bytes::Bytes;
use ossup::HyperTransport;
use ossup::{Api, ErrorCode};
use ossup::{
    BytesSource, CheckpointStore, Error, ErrorKind, FileStore, MemoryStore, Notice, Parallel,
    PartRecord, ProgressEvent, ResponseBody, Source, SourceStamp, StoreError, StoreLock, Transport,
    UploadIdentity, UploadRequest,
};

/// What a [`Hooked`] store does instead of recording a part.
#[async_trait::async_trait]
trait OnRecord: Send + Sync + 'static {
    async fn record(
        &self,
        inner: &dyn CheckpointStore,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError>;
}

/// A store that passes everything to `inner`, except that recording goes through `hook`.
struct Hooked<H> {
    inner: Arc<dyn CheckpointStore>,
    hook: H,
}

impl<H> fmt::Debug for Hooked<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooked")
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait::async_trait]
impl<H: OnRecord> CheckpointStore for Hooked<H> {
    async fn load(
        &self,
        identity: &UploadIdentity,
    ) -> Result<Option<ossup::Checkpoint>, StoreError> {
        self.inner.load(identity).await
    }
    async fn save(&self, checkpoint: &ossup::Checkpoint) -> Result<(), StoreError> {
        self.inner.save(checkpoint).await
    }
    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        self.hook.record(self.inner.as_ref(), identity, part).await
    }
    /// A batch's records at once, as a store grouping them into one flush takes them.
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
    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        self.inner.lock(identity).await
    }
}

/// The hyper transport, noting which parts the checkpoint holds when Complete is sent.
#[derive(Debug, Clone)]
struct WatchComplete {
    inner: HyperTransport,
    store: Arc<dyn CheckpointStore>,
    identity: UploadIdentity,
    at_complete: Arc<Mutex<Vec<BTreeSet<u32>>>>,
}

impl WatchComplete {
    fn new(store: Arc<dyn CheckpointStore>, identity: UploadIdentity) -> Self {
        Self {
            inner: HyperTransport::new(),
            store,
            identity,
            at_complete: Arc::default(),
        }
    }

    /// The checkpoint's part numbers at each Complete sent.
    fn at_complete(&self) -> Vec<BTreeSet<u32>> {
        self.at_complete.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Transport for WatchComplete {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        if request.extensions().get::<Api>() == Some(&Api::CompleteMultipartUpload) {
            let checkpoint = self
                .store
                .load(&self.identity)
                .await
                .expect("the checkpoint loads at Complete")
                .expect("a checkpoint exists at Complete");
            self.at_complete
                .lock()
                .unwrap()
                .push(checkpoint.parts.keys().copied().collect());
        }
        self.inner.send(request).await
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }
}

fn all_parts(len: usize) -> BTreeSet<u32> {
    (1..=len.div_ceil(PART as usize) as u32).collect()
}

fn notices_of(events: &Events) -> Vec<Notice> {
    events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Notice { notice, .. } => Some(notice),
            _ => None,
        })
        .collect()
}

/// Holds every record until `at` records are waiting at once, then lets them all through.
struct Gate {
    at: usize,
    counts: Mutex<GateCounts>,
    open: tokio::sync::watch::Sender<bool>,
}

#[derive(Default, Clone, Copy)]
struct GateCounts {
    entered: usize,
    pending: usize,
    peak_pending: usize,
}

#[async_trait::async_trait]
impl OnRecord for Gate {
    async fn record(
        &self,
        inner: &dyn CheckpointStore,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        {
            let mut counts = self.counts.lock().unwrap();
            counts.entered += 1;
            counts.pending += 1;
            counts.peak_pending = counts.peak_pending.max(counts.pending);
            if counts.entered >= self.at {
                self.open.send_replace(true);
            }
        }
        let mut open = self.open.subscribe();
        open.wait_for(|open| *open).await.expect("gate kept");
        let result = inner.record_part(identity, part).await;
        self.counts.lock().unwrap().pending -= 1;
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_keep_flowing_while_their_records_are_pending() {
    let server = mock().await;
    let bytes = data(10 * PART as usize, 60);
    let parts = all_parts(bytes.len());
    let gate = Arc::new(Hooked {
        inner: Arc::new(MemoryStore::new()),
        hook: Gate {
            at: parts.len(),
            counts: Mutex::default(),
            open: tokio::sync::watch::channel(false).0,
        },
    });
    let uploader = builder(&server.endpoint())
        .store(gate.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let events = Events::default();
    // No record finishes before all ten parts are acknowledged: an engine that kept a part's slot
    // until its record committed would never get past the second part.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        uploader.upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "flowing"),
                BUCKET,
                "flowing",
            )
            .progress(events.sink()),
        ),
    )
    .await
    .expect("parts were held back until their records committed")
    .unwrap();

    let counts = *gate.hook.counts.lock().unwrap();
    assert_eq!(counts.entered, parts.len());
    assert_eq!(
        counts.peak_pending,
        parts.len(),
        "every acknowledged part's record was pending at once, with 2 parts in flight at most"
    );
    assert!(
        outcome.peak_part_buffers <= 3,
        "{} part buffers for a concurrency of 2",
        outcome.peak_part_buffers
    );
    assert_eq!(outcome.parts_sent as usize, parts.len());
    let transferred = events.transferred();
    assert_eq!(transferred.len(), parts.len());
    assert!(
        transferred.windows(2).all(|w| w[0] < w[1]),
        "{transferred:?}"
    );
    assert_eq!(transferred.last(), Some(&(bytes.len() as u64)));
    assert_object_is(uploader.client(), "flowing", &bytes).await;
    server.shutdown().await;
}

/// Delays each record a little, more for some parts than for others.
struct Slow;

#[async_trait::async_trait]
impl OnRecord for Slow {
    async fn record(
        &self,
        inner: &dyn CheckpointStore,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        tokio::time::sleep(Duration::from_millis(10 + 15 * u64::from(part.number % 3))).await;
        inner.record_part(identity, part).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_is_sent_only_once_every_part_is_recorded() {
    let server = mock().await;
    let bytes = data(12 * PART as usize - 1000, 61);
    let store: Arc<dyn CheckpointStore> = Arc::new(Hooked {
        inner: Arc::new(MemoryStore::new()),
        hook: Slow,
    });
    let identity = UploadIdentity::new("complete-waits", BUCKET, "complete-waits", PART);
    let watch = WatchComplete::new(store.clone(), identity.clone());
    let uploader = builder_with(&server.endpoint(), watch.clone())
        .store(store.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let events = Events::default();
    let outcome = uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "complete-waits"),
                BUCKET,
                "complete-waits",
            )
            .progress(events.sink()),
        )
        .await
        .unwrap();

    assert_eq!(watch.at_complete(), vec![all_parts(bytes.len())]);
    assert!(outcome.notices.is_empty(), "{:?}", outcome.notices);
    assert_eq!(events.transferred().len(), 12);
    assert!(
        store.load(&identity).await.unwrap().is_none(),
        "the checkpoint is removed once the object is verified"
    );
    assert_object_is(uploader.client(), "complete-waits", &bytes).await;
    server.shutdown().await;
}

/// Replaces the journal with garbage (a new file, as another program would) just before part
/// `part` is recorded, once.
struct DamageJournal {
    part: u32,
    journal: PathBuf,
    done: AtomicBool,
}

#[async_trait::async_trait]
impl OnRecord for DamageJournal {
    async fn record(
        &self,
        inner: &dyn CheckpointStore,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        if part.number == self.part && !self.done.swap(true, Ordering::SeqCst) {
            let garbage = self.journal.with_extension("garbage");
            std::fs::write(&garbage, b"\x00\xffnot a journal at all\x13\x37").unwrap();
            std::fs::rename(&garbage, &self.journal).unwrap();
        }
        inner.record_part(identity, part).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_damaged_mid_upload_is_saved_again_and_the_upload_completes() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(10 * PART as usize, 62);
    let identity = UploadIdentity::new("damaged", BUCKET, "damaged", PART);
    let files = FileStore::open(dir.path()).unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(Hooked {
        inner: Arc::new(files.clone()),
        hook: DamageJournal {
            part: 5,
            journal: files.journal_path(&identity),
            done: AtomicBool::new(false),
        },
    });
    let watch = WatchComplete::new(Arc::new(files.clone()), identity.clone());
    let uploader = builder_with(&server.endpoint(), watch.clone())
        .store(store)
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    let events = Events::default();
    let outcome = uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "damaged"),
                BUCKET,
                "damaged",
            )
            .progress(events.sink()),
        )
        .await
        .unwrap();

    let rebuilt: Vec<&Notice> = outcome
        .notices
        .iter()
        .filter(|n| matches!(n, Notice::CheckpointRebuilt { .. }))
        .collect();
    assert_eq!(rebuilt.len(), 1, "{:?}", outcome.notices);
    assert_eq!(
        outcome.notices.len(),
        1,
        "no other notice: {:?}",
        outcome.notices
    );
    let Notice::CheckpointRebuilt {
        set_aside_to,
        parts,
        reason,
        ..
    } = rebuilt[0]
    else {
        unreachable!()
    };
    let set_aside_to = set_aside_to
        .as_ref()
        .expect("the damaged journal was moved");
    assert!(
        std::path::Path::new(set_aside_to).exists(),
        "{set_aside_to}"
    );
    assert!(*parts >= 1 && *parts <= 10, "{parts} parts");
    assert!(!reason.is_empty());
    assert_eq!(notices_of(&events), outcome.notices);
    // The saved-again checkpoint and the records after it hold every part by Complete.
    assert_eq!(watch.at_complete(), vec![all_parts(bytes.len())]);
    assert_eq!(events.transferred().len(), 10);
    assert_object_is(uploader.client(), "damaged", &bytes).await;
    server.shutdown().await;
}

/// Fails every record from part `from` on, as a full disk would.
struct FailFrom(u32);

#[async_trait::async_trait]
impl OnRecord for FailFrom {
    async fn record(
        &self,
        inner: &dyn CheckpointStore,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        if part.number >= self.0 {
            return Err(StoreError::Io {
                location: "/checkpoints/journal".into(),
                source: std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"),
            });
        }
        inner.record_part(identity, part).await
    }
}

#[tokio::test]
async fn a_store_that_cannot_record_does_not_stop_the_upload_and_says_so() {
    let server = mock().await;
    let bytes = data(8 * PART as usize + 7, 63);
    let uploader = builder(&server.endpoint())
        .store(Hooked {
            inner: Arc::new(MemoryStore::new()),
            hook: FailFrom(4),
        })
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let events = Events::default();
    let outcome = uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "no-space"),
                BUCKET,
                "no-space",
            )
            .progress(events.sink()),
        )
        .await
        .unwrap();

    // One notice for the first failure, not one per part.
    assert_eq!(outcome.notices.len(), 1, "{:?}", outcome.notices);
    match &outcome.notices[0] {
        Notice::CheckpointRecordFailed { part, error } => {
            assert!(*part >= 4, "part {part}");
            assert!(error.contains("no space left"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(notices_of(&events), outcome.notices);
    // Every part is reported, recorded or not.
    assert_eq!(events.transferred().len(), 9);
    assert_eq!(events.transferred().last(), Some(&(bytes.len() as u64)));
    assert_object_is(uploader.client(), "no-space", &bytes).await;
    server.shutdown().await;
}

/// A source that counts the bytes read of each part and how many reads run at once. The first read
/// waits (up to 10 s) for a second one to start, so reads that can overlap are seen to.
#[derive(Debug)]
struct CountingSource {
    inner: BytesSource,
    read: Mutex<BTreeMap<u64, u64>>,
    now: AtomicUsize,
    peak: AtomicUsize,
    met: (Mutex<bool>, Condvar),
    waited: AtomicBool,
}

impl CountingSource {
    fn new(inner: BytesSource) -> Self {
        Self {
            inner,
            read: Mutex::default(),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            met: (Mutex::new(false), Condvar::new()),
            waited: AtomicBool::new(false),
        }
    }
}

impl Source for CountingSource {
    fn identity(&self) -> String {
        self.inner.identity()
    }
    fn stamp(&self) -> std::io::Result<SourceStamp> {
        self.inner.stamp()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        {
            let (met, cond) = &self.met;
            let mut met = met.lock().unwrap();
            if now >= 2 {
                *met = true;
                cond.notify_all();
            } else if !*met && !self.waited.swap(true, Ordering::SeqCst) {
                let _ = cond
                    .wait_timeout_while(met, Duration::from_secs(10), |met| !*met)
                    .unwrap();
            }
        }
        let result = self.inner.read_exact_at(offset, buf);
        *self.read.lock().unwrap().entry(offset / PART).or_default() += buf.len() as u64;
        self.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_hashes_unrecorded_parts_once_each_a_few_at_a_time() {
    let server = mock().await;
    let bytes = data(9 * PART as usize + 500, 64);
    let store = Arc::new(MemoryStore::new());
    let identity = UploadIdentity::new("rehash", BUCKET, "rehash", PART);
    let source = || BytesSource::new(bytes.clone(), "rehash");

    // Every part reaches the server, then Complete is refused: the checkpoint stays.
    let faulty = Faulty::new();
    faulty.rule(Rule::new(
        Api::CompleteMultipartUpload,
        Action::Answer(ErrorCode::AccessDenied),
    ));
    let first = builder_with(&server.endpoint(), faulty)
        .store(store.clone())
        .build()
        .unwrap();
    let err = first
        .upload(UploadRequest::new(source(), BUCKET, "rehash"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service, "{err}");
    // As if every record had been lost: the checkpoint knows the upload, not its parts.
    let mut checkpoint = store.load(&identity).await.unwrap().expect("kept");
    assert_eq!(checkpoint.parts.len(), 10);
    checkpoint.parts.clear();
    store.save(&checkpoint).await.unwrap();

    let counting = Arc::new(CountingSource::new(source()));
    let watch = WatchComplete::new(store.clone(), identity.clone());
    let second = builder_with(&server.endpoint(), watch.clone())
        .store(store.clone())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    // Spawned, as a program running uploads side by side does: the upload's future must be `Send`
    // with resume hashing in it.
    let upload = {
        let second = second.clone();
        let request = UploadRequest::from_arc(counting.clone(), BUCKET, "rehash");
        tokio::spawn(async move { second.upload(request).await })
    };
    let outcome = upload.await.unwrap().unwrap();

    assert_eq!(outcome.parts_reused, 10);
    assert_eq!(outcome.bytes_sent, 0);
    let read = counting.read.lock().unwrap().clone();
    let expected: BTreeMap<u64, u64> = (0..10)
        .map(|i| (i, PART.min(bytes.len() as u64 - i * PART)))
        .collect();
    assert_eq!(read, expected, "each part read once, whole");
    let peak = counting.peak.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&peak),
        "{peak} parts hashed at once with a concurrency of 3"
    );
    // The verified parts were saved into the checkpoint before Complete.
    assert_eq!(watch.at_complete(), vec![all_parts(bytes.len())]);
    assert_object_is(second.client(), "rehash", &bytes).await;
    server.shutdown().await;
}
