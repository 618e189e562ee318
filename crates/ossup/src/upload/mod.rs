//! The upload engine: [`Uploader`], [`UploadRequest`] and [`UploadOutcome`].
//!
//! One upload runs as plan → reconcile → transfer → complete → clean up:
//! - plan: stamp the source, choose the part size, PutObject for small sources;
//! - reconcile: load the checkpoint, drop it if the source or options changed (aborting the old
//!   upload), list every part the server holds and keep only those whose checksums match the source;
//! - transfer: the [`PartScheduler`] sends the other parts through the [`PartRunner`] here;
//! - complete: CompleteMultipartUpload (with the upload callback, when one is asked for), checking
//!   the object's CRC-64 against the combination of the parts' (settling a lost answer with
//!   HeadObject);
//! - clean up: remove the checkpoint once the object is verified.

mod orphans;
mod recorder;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{StreamExt as _, TryStreamExt as _};
use ossup_proto::checksum::{Crc64, Md5, crc64_of_parts};
use ossup_proto::limits::MAX_PUT_OBJECT_SIZE;
use ossup_proto::xml::{CompletePart, ListedPart};
use ossup_sign::{CredentialsProvider, Signer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferPool, PartBuffer};
use crate::client::{ClientBuilder, PartBody};
use crate::plan::{DEFAULT_PART_SIZE, part_size_for, plan_parts};
use crate::reconcile::{Known, Verdict, judge};
use crate::retry::RetryObserver;
use crate::store::{MemoryStore, StoreError};
use crate::{
    Callback, CallbackResult, Checkpoint, CheckpointStore, Client, Error, Notice, ObjectOptions,
    Parallel, PartRecord, PartRunner, PartScheduler, PartSpec, ProgressEvent, ProgressSink,
    RetryConfig, Source, SourceStamp, Transport, UploadIdentity,
};
use orphans::Intent;
use recorder::{Lingering, Recorder};

/// How much of each part is read and hashed at a time: small enough to stay in the CPU cache between
/// the read, the MD5 and the CRC-64, so the three share one pass over memory.
const READ_CHUNK: usize = 256 << 10;

/// Which checksums protect the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// MD5 of every part, sent as `Content-MD5` and checked against the ETag, plus CRC-64 (the
    /// official SDKs' default).
    #[default]
    Md5,
    /// CRC-64 only: no `Content-MD5`; parts are checked by the CRC-64 the server returns, and on
    /// resume by ListParts' `HashCrc64ecma`. Saves the client one MD5 pass over the data.
    Crc64Only,
}

/// What to do with the multipart upload when the caller cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCancel {
    /// Keep the checkpoint and the parts on the server, so running the same upload again resumes.
    #[default]
    KeepCheckpoint,
    /// Abort the multipart upload (freeing its parts) and remove the checkpoint.
    AbortUpload,
}

/// How the object was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMethod {
    /// One PutObject request (small or empty source).
    PutObject,
    /// A multipart upload.
    Multipart,
}

/// Uploads sources to OSS, resumably. Built by [`Uploader::builder`]; cloning is cheap.
///
/// ```no_run
/// # async fn run(dir: std::path::PathBuf, path: std::path::PathBuf) -> Result<(), ossup::Error> {
/// use ossup::{FileSource, ObjectOptions, Parallel, UploadRequest, Uploader};
/// use ossup_sign::{Credentials, V4Signer};
/// # #[derive(Debug)] struct HyperTransport;
/// # impl HyperTransport { fn new() -> Self { HyperTransport } }
/// # #[async_trait::async_trait] impl ossup::Transport for HyperTransport {
/// #   async fn send(&self, _: http::Request<bytes::Bytes>) -> Result<http::Response<ossup::ResponseBody>, ossup::Error> { unimplemented!() } }
///
/// let uploader = Uploader::builder()
///     .endpoint("http://127.0.0.1:9000")?
///     .credentials(Credentials::new("test-ak", "test-sk"))
///     .signer(V4Signer::new("cn-hangzhou"))
///     .transport(HyperTransport::new())   // ossup_hyper::HyperTransport
///     .scheduler(Parallel::new(4))
///     .build()?;
///
/// let outcome = uploader
///     .upload(
///         UploadRequest::new(FileSource::open(&path)?, "bucket", "backups/big.tar")
///             .part_size(8 << 20)
///             .options(ObjectOptions::default().meta("origin", "nightly")),
///     )
///     .await?;
/// println!("{} bytes sent, {} reused, CRC-64 {}", outcome.bytes_sent, outcome.bytes_reused, outcome.crc64);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Uploader {
    client: Client,
    store: Arc<dyn CheckpointStore>,
    scheduler: Arc<dyn PartScheduler>,
    part_size: u64,
    multipart_threshold: Option<u64>,
    checksum_mode: ChecksumMode,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploader")
            .field("client", &self.client)
            .field("store", &self.store)
            .field("scheduler", &self.scheduler)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("checksum_mode", &self.checksum_mode)
            .finish()
    }
}

/// Builds an [`Uploader`]: the client's settings (endpoint, credentials, signer, transport, retry)
/// and the engine's (store, scheduler, part size, threshold, checksums).
#[derive(Debug, Default)]
pub struct UploaderBuilder {
    client: ClientBuilder,
    prebuilt: Option<Client>,
    store: Option<Arc<dyn CheckpointStore>>,
    scheduler: Option<Arc<dyn PartScheduler>>,
    part_size: Option<u64>,
    multipart_threshold: Option<u64>,
    checksum_mode: ChecksumMode,
}

impl UploaderBuilder {
    /// The OSS endpoint; see [`ClientBuilder::endpoint`].
    pub fn endpoint(mut self, endpoint: &str) -> Result<Self, Error> {
        self.client = self.client.endpoint(endpoint)?;
        Ok(self)
    }

    /// Forces the addressing style; see [`ClientBuilder::path_style`].
    pub fn path_style(mut self, path_style: bool) -> Self {
        self.client = self.client.path_style(path_style);
        self
    }

    /// The credentials (static, STS, or any provider).
    pub fn credentials(mut self, credentials: impl CredentialsProvider + 'static) -> Self {
        self.client = self.client.credentials(credentials);
        self
    }

    /// The credentials, as a shared provider.
    pub fn credentials_provider(mut self, credentials: Arc<dyn CredentialsProvider>) -> Self {
        self.client = self.client.credentials_provider(credentials);
        self
    }

    /// The signer; V4 with the endpoint's region by default.
    pub fn signer(mut self, signer: impl Signer + 'static) -> Self {
        self.client = self.client.signer(signer);
        self
    }

    /// The transport (required unless [`client`](Self::client) is given).
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.client = self.client.transport(transport);
        self
    }

    /// Retries, backoff and timeouts.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.retry(retry);
        self
    }

    /// Uses an already built client instead of the settings above.
    pub fn client(mut self, client: Client) -> Self {
        self.prebuilt = Some(client);
        self
    }

    /// Where checkpoints live; a [`MemoryStore`] (no resume across processes) by default.
    pub fn store(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where checkpoints live, as a shared store.
    pub fn store_arc(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Which parts go when; [`Parallel::new(4)`](Parallel::new) by default.
    pub fn scheduler(mut self, scheduler: impl PartScheduler + 'static) -> Self {
        self.scheduler = Some(Arc::new(scheduler));
        self
    }

    /// Which parts go when, as a shared scheduler.
    pub fn scheduler_arc(mut self, scheduler: Arc<dyn PartScheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// The default part size of uploads (8 MiB unless set); see [`UploadRequest::part_size`].
    pub fn part_size(mut self, part_size: u64) -> Self {
        self.part_size = Some(part_size);
        self
    }

    /// The default multipart threshold; see [`UploadRequest::multipart_threshold`].
    pub fn multipart_threshold(mut self, threshold: u64) -> Self {
        self.multipart_threshold = Some(threshold);
        self
    }

    /// The default checksum mode ([`ChecksumMode::Md5`] unless set).
    pub fn checksum_mode(mut self, mode: ChecksumMode) -> Self {
        self.checksum_mode = mode;
        self
    }

    /// The uploader.
    pub fn build(self) -> Result<Uploader, Error> {
        let client = match self.prebuilt {
            Some(client) => client,
            None => self.client.build()?,
        };
        let part_size = self.part_size.unwrap_or(DEFAULT_PART_SIZE);
        part_size_for(0, part_size)?;
        if let Some(threshold) = self.multipart_threshold {
            check_threshold(threshold)?;
        }
        Ok(Uploader {
            client,
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn CheckpointStore>),
            scheduler: self
                .scheduler
                .unwrap_or_else(|| Arc::new(Parallel::new(4)) as Arc<dyn PartScheduler>),
            part_size,
            multipart_threshold: self.multipart_threshold,
            checksum_mode: self.checksum_mode,
        })
    }
}

fn check_threshold(threshold: u64) -> Result<(), Error> {
    if threshold > MAX_PUT_OBJECT_SIZE {
        return Err(Error::config(format!(
            "multipart threshold {threshold} is above the {MAX_PUT_OBJECT_SIZE} bytes a PutObject may carry"
        )));
    }
    Ok(())
}

/// One upload: what to send, where, and how.
pub struct UploadRequest {
    source: Arc<dyn Source>,
    bucket: String,
    key: String,
    part_size: Option<u64>,
    multipart_threshold: Option<u64>,
    checksum_mode: Option<ChecksumMode>,
    options: ObjectOptions,
    callback: Option<Callback>,
    progress: Option<Arc<dyn ProgressSink>>,
    cancel: CancellationToken,
    on_cancel: OnCancel,
}

impl fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRequest")
            .field("source", &self.source)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("checksum_mode", &self.checksum_mode)
            .field("options", &self.options)
            .field("callback", &self.callback)
            .field("on_cancel", &self.on_cancel)
            .finish_non_exhaustive()
    }
}

impl UploadRequest {
    /// Uploads `source` to `bucket`/`key`.
    pub fn new(
        source: impl Source + 'static,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self::from_arc(Arc::new(source), bucket, key)
    }

    /// Uploads a shared source.
    pub fn from_arc(
        source: Arc<dyn Source>,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            source,
            bucket: bucket.into(),
            key: key.into(),
            part_size: None,
            multipart_threshold: None,
            checksum_mode: None,
            options: ObjectOptions::default(),
            callback: None,
            progress: None,
            cancel: CancellationToken::new(),
            on_cancel: OnCancel::default(),
        }
    }

    /// The part size: 100 KiB to 5 GiB, grown (doubled) when the source would need more than 10,000
    /// parts. Part of the upload's identity: a different part size is a different upload.
    pub fn part_size(mut self, part_size: u64) -> Self {
        self.part_size = Some(part_size);
        self
    }

    /// Sources of at most `threshold` bytes go in one PutObject (read whole into memory); larger
    /// ones in parts. Defaults to the part size. Empty sources always use PutObject.
    pub fn multipart_threshold(mut self, threshold: u64) -> Self {
        self.multipart_threshold = Some(threshold);
        self
    }

    /// The checksum mode of this upload.
    pub fn checksum_mode(mut self, mode: ChecksumMode) -> Self {
        self.checksum_mode = Some(mode);
        self
    }

    /// The object's options (content type, metadata, ACL, storage class, overwrite).
    pub fn options(mut self, options: ObjectOptions) -> Self {
        self.options = options;
        self
    }

    /// Asks OSS to call `callback` once the object is stored: sent with CompleteMultipartUpload, or
    /// with PutObject for a small source, including when the upload resumes an earlier run.
    ///
    /// The callback server's reply is the outcome's [`callback`](UploadOutcome::callback). When OSS
    /// stores the object but cannot deliver the callback (`203 CallbackFailed`) the upload ends with an
    /// [`ErrorKind::CallbackFailed`](crate::ErrorKind::CallbackFailed) error that carries the outcome
    /// ([`Error::outcome`]); it is never retried as a failed upload. The callback is not part of the
    /// upload's identity: a resumed run sends the callback of its own request.
    pub fn callback(mut self, callback: Callback) -> Self {
        self.callback = Some(callback);
        self
    }

    /// Where progress events go.
    pub fn progress(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// Cancels the upload when `token` is cancelled.
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// What cancelling does to the multipart upload.
    pub fn on_cancel(mut self, on_cancel: OnCancel) -> Self {
        self.on_cancel = on_cancel;
        self
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadOutcome {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The object's size.
    pub size: u64,
    /// The object's ETag.
    pub etag: String,
    /// The object's CRC-64/XZ, verified against the server's.
    pub crc64: u64,
    /// PutObject or multipart.
    pub method: UploadMethod,
    /// The multipart upload id.
    pub upload_id: Option<String>,
    /// The part size used (after growing to fit 10,000 parts).
    pub part_size: u64,
    /// The number of parts.
    pub parts: u32,
    /// Parts sent in this run.
    pub parts_sent: u32,
    /// Parts found on the server, verified, and not sent again.
    pub parts_reused: u32,
    /// Bytes sent in this run (each part counted once, retries not counted).
    pub bytes_sent: u64,
    /// Bytes reused from the server.
    pub bytes_reused: u64,
    /// Whether an earlier run's multipart upload was resumed.
    pub resumed: bool,
    /// Things worth knowing: a corrupt checkpoint set aside, a changed source, a vanished upload.
    pub notices: Vec<Notice>,
    /// The most part buffers alive at once (at most the scheduler's concurrency plus one).
    pub peak_part_buffers: usize,
    /// What came of the upload callback: the callback server's reply. `None` without a callback, and
    /// when an earlier run had completed the upload (its Complete, and callback, are not repeated).
    pub callback: Option<CallbackResult>,
}

impl UploadOutcome {
    /// The outcome, or the [`ErrorKind::CallbackFailed`](crate::ErrorKind::CallbackFailed) error
    /// carrying it when OSS stored the object but could not deliver the callback.
    fn into_result(self) -> Result<UploadOutcome, Error> {
        match &self.callback {
            Some(CallbackResult::Failed { error }) => {
                let error = error.clone();
                Err(Error::callback_failed(self, error))
            }
            _ => Ok(self),
        }
    }
}

impl Uploader {
    /// A builder.
    pub fn builder() -> UploaderBuilder {
        UploaderBuilder::default()
    }

    /// The client uploads go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The checkpoint store.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    /// Uploads as `request` says, resuming an earlier run of the same upload.
    ///
    /// On error the checkpoint is kept (unless the error is a cancellation with
    /// [`OnCancel::AbortUpload`]), so running the same request again resumes.
    ///
    /// ossup assumes it is the only writer of the key while an upload starts: once a fresh multipart
    /// upload is initiated, the other open uploads of exactly this key initiated since this upload
    /// (or an interrupted earlier run of it) meant to initiate are aborted, as uploads an Initiate
    /// whose answer was lost, or a run killed before saving its checkpoint, left open
    /// ([`Notice::OrphanAborted`]). Listing them needs `oss:ListMultipartUploads`; without it the
    /// upload goes on with a [`Notice::OrphanSweepFailed`].
    ///
    /// The future is `Send`: `tokio::spawn(async move { uploader.upload(request).await })` runs an
    /// upload as a task of its own.
    pub async fn upload(&self, request: UploadRequest) -> Result<UploadOutcome, Error> {
        let cancel = request.cancel.clone();
        let on_cancel = request.on_cancel;
        let bucket = request.bucket.clone();
        let key = request.key.clone();
        let started = Arc::new(Mutex::new(None::<(UploadIdentity, String)>));
        let lingering = Arc::new(Mutex::new(None::<Lingering>));
        let run = Run {
            uploader: self,
            request,
            started: started.clone(),
            lingering: lingering.clone(),
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {}
            result = run.run() => return result,
        }
        // Cancelled: the run (and every part in flight) has been dropped.
        let lingering = lingering.lock().expect("lingering lock").take();
        if let (OnCancel::KeepCheckpoint, Some(lingering)) = (on_cancel, lingering) {
            // Acknowledged parts whose records were waiting for their batch: the checkpoint kept
            // for the next run should hold them.
            lingering.commit().await;
        }
        let started = started.lock().expect("started lock").clone();
        let cancelled = |what: String| Err(Error::cancelled(what).with_object(&bucket, &key));
        match (on_cancel, started) {
            (OnCancel::AbortUpload, Some((identity, upload_id))) => {
                let aborted = self
                    .client
                    .abort_multipart_upload(&bucket, &key, &upload_id)
                    .await;
                if let Err(e) = &aborted
                    && !e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload)
                {
                    return Err(Error::cancelled(format!(
                        "upload cancelled, but aborting multipart upload {upload_id} failed; the checkpoint is kept"
                    ))
                    .with_object(&bucket, &key)
                    .with_source(aborted.unwrap_err()));
                }
                self.store
                    .remove(&identity)
                    .await
                    .map_err(Error::checkpoint)?;
                cancelled(format!(
                    "upload cancelled; multipart upload {upload_id} aborted and its checkpoint removed"
                ))
            }
            (OnCancel::AbortUpload, None) => cancelled("upload cancelled before it started".into()),
            (OnCancel::KeepCheckpoint, Some((_, upload_id))) => cancelled(format!(
                "upload cancelled; multipart upload {upload_id} and its checkpoint are kept: run the same upload again to resume"
            )),
            (OnCancel::KeepCheckpoint, None) => {
                cancelled("upload cancelled before any part was sent".into())
            }
        }
    }
}

/// Reports progress: one event at a time, transferred never decreasing.
struct Progress {
    sink: Option<Arc<dyn ProgressSink>>,
    transferred: Mutex<u64>,
}

impl Progress {
    fn emit(&self, event: ProgressEvent) {
        if let Some(sink) = &self.sink {
            sink.on_event(&event);
        }
    }

    fn start_at(&self, reused: u64) {
        *self.transferred.lock().expect("progress lock") = reused;
    }

    fn part_done(&self, number: u32, bytes: u64) {
        // The lock is held while emitting so events leave in the order of their totals.
        let mut transferred = self.transferred.lock().expect("progress lock");
        *transferred += bytes;
        if let Some(sink) = &self.sink {
            sink.on_event(&ProgressEvent::PartDone {
                number,
                bytes,
                transferred: *transferred,
            });
        }
    }

    fn notice(&self, notices: &mut Vec<Notice>, notice: Notice) {
        tracing::warn!(%notice);
        self.emit(ProgressEvent::Notice {
            message: notice.to_string(),
            notice: notice.clone(),
        });
        notices.push(notice);
    }

    fn observer(self: &Arc<Self>, part: Option<u32>) -> Option<RetryObserver> {
        let sink = self.sink.clone()?;
        Some(RetryObserver::new(move |n| {
            sink.on_event(&ProgressEvent::Retrying {
                part,
                api: n.api.map(|a| a.name().to_owned()),
                attempt: n.attempt,
                delay_ms: n.delay.as_millis() as u64,
                error: n.error.message(),
            });
        }))
    }
}

/// One run of one upload.
struct Run<'a> {
    uploader: &'a Uploader,
    request: UploadRequest,
    /// The identity and upload id once the multipart upload exists, for cancellation.
    started: Arc<Mutex<Option<(UploadIdentity, String)>>>,
    /// The records waiting for their batch commit while parts are sent, for cancellation.
    lingering: Arc<Mutex<Option<Lingering>>>,
}

/// What the transfer stage shares between part tasks.
struct Transfer {
    client: Client,
    source: Arc<dyn Source>,
    bucket: String,
    key: String,
    upload_id: String,
    mode: ChecksumMode,
    plan: BTreeMap<u32, PartSpec>,
    pool: Arc<BufferPool>,
    progress: Arc<Progress>,
    /// Commits each acknowledged part's record while the next parts are sent, and keeps every part
    /// verified on the server.
    recorder: Recorder,
    bytes_sent: AtomicU64,
}

/// What reconciling found.
enum Resumable {
    /// Nothing to resume: start a fresh upload. With the time (`created_unix`) of the intent a run
    /// saved before its Initiate and never replaced with an upload id: that run was interrupted, and
    /// the uploads it may have left open are looked for from then on.
    Fresh(Option<u64>),
    /// The checkpointed upload, holding the parts verified on the server (and only those).
    Parts(Checkpoint),
    /// This upload id already completed into the right object, with this ETag and these parts.
    Completed(String, (String, BTreeMap<u32, PartRecord>)),
}

/// The checksums of one part's bytes, computed as they were read.
struct Hashed {
    md5: Option<[u8; 16]>,
    crc64: u64,
}

/// MD5 (unless CRC-64-only) and CRC-64, fed the same chunks.
struct Hasher {
    md5: Option<Md5>,
    crc: Crc64,
}

impl Hasher {
    fn new(mode: ChecksumMode) -> Self {
        Self {
            md5: (mode == ChecksumMode::Md5).then(Md5::new),
            crc: Crc64::new(),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5.update(chunk);
        }
        self.crc.update(chunk);
    }

    fn finish(self) -> Hashed {
        Hashed {
            md5: self.md5.map(Md5::finish),
            crc64: self.crc.finish(),
        }
    }
}

/// Reads `part` into `buf` and hashes it, a cache-sized chunk at a time.
fn read_and_hash(
    source: &dyn Source,
    part: &PartSpec,
    buf: &mut [u8],
    mode: ChecksumMode,
) -> std::io::Result<Hashed> {
    let mut hasher = Hasher::new(mode);
    let mut offset = part.offset;
    for chunk in buf.chunks_mut(READ_CHUNK) {
        source.read_exact_at(offset, chunk)?;
        hasher.update(chunk);
        offset += chunk.len() as u64;
    }
    Ok(hasher.finish())
}

/// Hashes `part`'s range of the source without keeping it: one pass through one cache-sized chunk.
fn hash_range(source: &dyn Source, part: &PartSpec, mode: ChecksumMode) -> std::io::Result<Hashed> {
    let mut hasher = Hasher::new(mode);
    let mut chunk = vec![0u8; part.size.min(READ_CHUNK as u64) as usize];
    let end = part.offset + part.size;
    let mut offset = part.offset;
    while offset < end {
        let len = (end - offset).min(chunk.len() as u64) as usize;
        source.read_exact_at(offset, &mut chunk[..len])?;
        hasher.update(&chunk[..len]);
        offset += len as u64;
    }
    Ok(hasher.finish())
}

/// The error of reading `part`'s range of the source.
fn read_error(part: &PartSpec, e: std::io::Error) -> Error {
    Error::source_io(
        format!(
            "cannot read bytes {}..{} of the source",
            part.offset,
            part.offset + part.size
        ),
        e,
    )
    .with_part(part.number)
}

/// Hashes `part`'s range of the source on a blocking thread (to judge a listed part the checkpoint
/// has no record of).
async fn hash_part(
    source: Arc<dyn Source>,
    part: PartSpec,
    mode: ChecksumMode,
) -> Result<Hashed, Error> {
    tokio::task::spawn_blocking(move || hash_range(source.as_ref(), &part, mode))
        .await
        .map_err(|e| Error::internal(format!("hashing part {} panicked: {e}", part.number)))?
        .map_err(|e| read_error(&part, e))
}

/// Reads and hashes `part` on a blocking thread, into a buffer from `pool`.
async fn read_part(
    source: &Arc<dyn Source>,
    pool: &Arc<BufferPool>,
    part: PartSpec,
    mode: ChecksumMode,
) -> Result<(PartBuffer, Hashed), Error> {
    let len = usize::try_from(part.size)
        .map_err(|_| Error::config(format!("part size {} does not fit in memory", part.size)))?;
    let mut buffer = pool.acquire(len).await;
    let source = source.clone();
    tokio::task::spawn_blocking(move || {
        let hashed = read_and_hash(source.as_ref(), &part, buffer.as_mut(), mode);
        (buffer, hashed)
    })
    .await
    .map_err(|e| Error::internal(format!("reading part {} panicked: {e}", part.number)))
    .and_then(|(buffer, hashed)| {
        let hashed = hashed.map_err(|e| read_error(&part, e))?;
        Ok((buffer, hashed))
    })
}

#[async_trait::async_trait]
impl PartRunner for Transfer {
    async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
        if self.plan.get(&part.number) != Some(&part) {
            return Err(Error::config(format!(
                "the scheduler asked for part {part:?}, which is not in the plan"
            ))
            .with_object(&self.bucket, &self.key));
        }
        let (mut buffer, hashed) = read_part(&self.source, &self.pool, part, self.mode)
            .await
            .map_err(|e| e.with_object(&self.bucket, &self.key))?;
        let bytes = buffer.freeze();
        let client = match self.progress.observer(Some(part.number)) {
            Some(observer) => self.client.with_retry_observer(observer),
            None => self.client.clone(),
        };
        let stored = client
            .upload_part(
                &self.bucket,
                &self.key,
                &self.upload_id,
                part.number,
                PartBody::with_checksums(bytes.clone(), hashed.md5, Some(hashed.crc64)),
            )
            .await;
        buffer.reclaim(bytes);
        drop(buffer);
        let stored = stored?;
        let record = PartRecord {
            number: part.number,
            size: part.size,
            etag: stored.etag,
            md5: hashed.md5,
            crc64: hashed.crc64,
        };
        self.bytes_sent.fetch_add(part.size, Ordering::Relaxed);
        // The slot goes to the next part now; the record commits alongside it (and PartDone is
        // reported once it has).
        self.recorder.record(record).await;
        Ok(())
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Run<'_> {
    async fn run(self) -> Result<UploadOutcome, Error> {
        let req = &self.request;
        let err_ctx = |e: Error| e.with_object(&req.bucket, &req.key);
        if req.bucket.is_empty() || req.key.is_empty() {
            return Err(err_ctx(Error::config("bucket and key must not be empty")));
        }
        req.options.validate().map_err(err_ctx)?;
        if let Some(callback) = &req.callback {
            callback.validate().map_err(err_ctx)?;
        }
        let source = req.source.clone();
        let stamp = stamp_of(&source).await.map_err(err_ctx)?;
        let mode = req.checksum_mode.unwrap_or(self.uploader.checksum_mode);
        let requested = req.part_size.unwrap_or(self.uploader.part_size);
        let part_size = part_size_for(stamp.size, requested).map_err(err_ctx)?;
        let threshold = req
            .multipart_threshold
            .or(self.uploader.multipart_threshold)
            .unwrap_or(part_size);
        check_threshold(threshold).map_err(err_ctx)?;
        let options = req
            .options
            .clone()
            .with_guessed_content_type(source.name_hint().as_deref());
        let progress = Arc::new(Progress {
            sink: req.progress.clone(),
            transferred: Mutex::new(0),
        });
        let client = match progress.observer(None) {
            Some(observer) => self.uploader.client.with_retry_observer(observer),
            None => self.uploader.client.clone(),
        };
        if stamp.size == 0 || stamp.size <= threshold {
            return self
                .put_object(&client, &progress, stamp, part_size, mode, &options)
                .await
                .map_err(err_ctx);
        }
        self.multipart(client, progress, stamp, part_size, mode, options)
            .await
            .map_err(err_ctx)
    }

    /// A small source in one PutObject, checked like a part.
    async fn put_object(
        &self,
        client: &Client,
        progress: &Progress,
        stamp: SourceStamp,
        part_size: u64,
        mode: ChecksumMode,
        options: &ObjectOptions,
    ) -> Result<UploadOutcome, Error> {
        let req = &self.request;
        progress.emit(ProgressEvent::Started {
            total: stamp.size,
            already_on_server: 0,
            parts: 0,
            part_size,
            upload_id: None,
        });
        let whole = PartSpec {
            number: 1,
            offset: 0,
            size: stamp.size,
        };
        let pool = BufferPool::new(1);
        let (mut buffer, hashed) = read_part(&req.source, &pool, whole, mode).await?;
        ensure_unchanged(&req.source, stamp).await?;
        let bytes = buffer.freeze();
        let body = PartBody::with_checksums(bytes, hashed.md5, Some(hashed.crc64));
        let stored = match &req.callback {
            Some(callback) => {
                client
                    .put_object_with_callback(&req.bucket, &req.key, body, options, callback)
                    .await?
            }
            None => {
                client
                    .put_object(&req.bucket, &req.key, body, options)
                    .await?
            }
        };
        progress.part_done(1, stamp.size);
        progress.emit(ProgressEvent::Completed {
            etag: stored.etag.clone(),
            crc64: hashed.crc64,
            bytes_sent: stamp.size,
            bytes_reused: 0,
        });
        UploadOutcome {
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            size: stamp.size,
            etag: stored.etag,
            crc64: hashed.crc64,
            method: UploadMethod::PutObject,
            upload_id: None,
            part_size,
            parts: 0,
            parts_sent: 0,
            parts_reused: 0,
            bytes_sent: stamp.size,
            bytes_reused: 0,
            resumed: false,
            notices: Vec::new(),
            peak_part_buffers: pool.peak(),
            callback: stored.callback,
        }
        .into_result()
    }

    async fn multipart(
        &self,
        client: Client,
        progress: Arc<Progress>,
        stamp: SourceStamp,
        part_size: u64,
        mode: ChecksumMode,
        options: ObjectOptions,
    ) -> Result<UploadOutcome, Error> {
        let req = &self.request;
        let store = self.uploader.store.clone();
        let identity = UploadIdentity::new(
            req.source.identity(),
            req.bucket.clone(),
            req.key.clone(),
            part_size,
        );
        let _lock = store.lock(&identity).await.map_err(Error::checkpoint)?;
        tracing::debug!(%identity, "checkpoint lock held");
        let options_digest = options.digest();
        let plan = plan_parts(stamp.size, part_size);
        let concurrency = self.uploader.scheduler.concurrency();
        let pool = BufferPool::new(concurrency + 1);
        let mut notices = Vec::new();

        let resumed = self
            .find_resumable(
                &client,
                &identity,
                stamp,
                &options_digest,
                &plan,
                mode,
                concurrency,
                &progress,
                &mut notices,
            )
            .await?;
        let (checkpoint, completed_etag, was_resumed) = match resumed {
            Resumable::Parts(checkpoint) => (checkpoint, None, true),
            Resumable::Completed(upload_id, (etag, done)) => {
                // Nothing is left to send or record; the checkpoint stands for what completed.
                let mut checkpoint = Checkpoint::new(
                    identity.clone(),
                    upload_id,
                    stamp,
                    now_unix(),
                    options_digest.clone(),
                );
                checkpoint.parts = done;
                (checkpoint, Some(etag), true)
            }
            Resumable::Fresh(carried) => {
                let intent = match carried {
                    Some(created_unix) => Intent::carried_over(created_unix),
                    None => Intent::now(),
                };
                // The intent goes to the store before Initiate: a run stopped before the upload id
                // is saved leaves it behind, and the next run aborts what this one left open.
                let pending = Checkpoint::new(
                    identity.clone(),
                    String::new(),
                    stamp,
                    intent.unix(),
                    options_digest.clone(),
                );
                store.save(&pending).await.map_err(Error::checkpoint)?;
                let upload_id = client
                    .initiate_multipart_upload(&req.bucket, &req.key, &options)
                    .await?;
                *self.started.lock().expect("started lock") =
                    Some((identity.clone(), upload_id.clone()));
                // Swept before the upload id replaces the intent: a run stopped while sweeping
                // leaves the intent, and the next run sweeps again (this upload, still without a
                // part, included).
                self.sweep_orphans(&client, &upload_id, intent, &progress, &mut notices)
                    .await;
                let checkpoint = Checkpoint::new(
                    identity.clone(),
                    upload_id.clone(),
                    stamp,
                    now_unix(),
                    options_digest.clone(),
                );
                if let Err(e) = store.save(&checkpoint).await {
                    // Without a checkpoint nobody could resume or find this upload: drop it.
                    let _ = client
                        .abort_multipart_upload(&req.bucket, &req.key, &upload_id)
                        .await;
                    return Err(Error::checkpoint(e).with_upload_id(&upload_id));
                }
                (checkpoint, None, false)
            }
        };
        let upload_id = checkpoint.upload_id.clone();
        let done = &checkpoint.parts;
        *self.started.lock().expect("started lock") = Some((identity.clone(), upload_id.clone()));

        let reused_bytes: u64 = done.values().map(|r| r.size).sum();
        let parts_reused = done.len() as u32;
        progress.start_at(reused_bytes);
        progress.emit(ProgressEvent::Started {
            total: stamp.size,
            already_on_server: reused_bytes,
            parts: plan.len() as u32,
            part_size,
            upload_id: Some(upload_id.clone()),
        });

        let pending: Vec<PartSpec> = plan
            .iter()
            .filter(|p| !done.contains_key(&p.number))
            .copied()
            .collect();
        let transfer = Transfer {
            client: client.clone(),
            source: req.source.clone(),
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            upload_id: upload_id.clone(),
            mode,
            plan: plan.iter().map(|p| (p.number, *p)).collect(),
            pool: pool.clone(),
            progress: progress.clone(),
            recorder: Recorder::new(store.clone(), checkpoint, progress.clone()),
            bytes_sent: AtomicU64::new(0),
        };
        tracing::debug!(%upload_id, parts = plan.len(), reused = parts_reused, "sending parts");
        *self.lingering.lock().expect("lingering lock") = Some(transfer.recorder.lingering());
        let sent = self.uploader.scheduler.run(pending, &transfer).await;
        tracing::debug!(%upload_id, ok = sent.is_ok(), "parts sent; waiting for their records");
        // Every record settles before anything else happens: Complete goes out only once the
        // checkpoint holds every part it can, and a failed upload keeps every acknowledged part
        // recorded for the next run.
        let recorded = transfer.recorder.finish().await;
        notices.extend(recorded.notices);
        sent.map_err(|e| e.with_upload_id(&upload_id))?;

        let done = recorded.parts;
        tracing::debug!(%upload_id, recorded = done.len(), "records settled");
        let missing: Vec<u32> = plan
            .iter()
            .filter(|p| !done.contains_key(&p.number))
            .map(|p| p.number)
            .collect();
        if !missing.is_empty() {
            return Err(Error::config(format!(
                "the scheduler {:?} finished without sending parts {missing:?}",
                self.uploader.scheduler
            ))
            .with_upload_id(&upload_id));
        }
        ensure_unchanged(&req.source, stamp)
            .await
            .map_err(|e| e.with_upload_id(&upload_id))?;

        let complete_parts: Vec<CompletePart> = done
            .values()
            .map(|r| CompletePart {
                part_number: r.number,
                etag: r.etag.clone(),
            })
            .collect();
        let crc64 = crc64_of_parts(done.values().map(|r| (r.crc64, r.size)));
        tracing::debug!(%upload_id, parts = complete_parts.len(), "completing");
        let (etag, callback) = match completed_etag {
            Some(etag) => (etag, None),
            None => {
                self.complete(
                    &client,
                    &upload_id,
                    &complete_parts,
                    crc64,
                    stamp.size,
                    &options,
                    &progress,
                    &mut notices,
                )
                .await?
            }
        };
        store.remove(&identity).await.map_err(Error::checkpoint)?;

        let bytes_sent = transfer.bytes_sent.load(Ordering::Relaxed);
        progress.emit(ProgressEvent::Completed {
            etag: etag.clone(),
            crc64,
            bytes_sent,
            bytes_reused: reused_bytes,
        });
        UploadOutcome {
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            size: stamp.size,
            etag,
            crc64,
            method: UploadMethod::Multipart,
            upload_id: Some(upload_id),
            part_size,
            parts: plan.len() as u32,
            parts_sent: plan.len() as u32 - parts_reused,
            parts_reused,
            bytes_sent,
            bytes_reused: reused_bytes,
            resumed: was_resumed,
            notices,
            peak_part_buffers: pool.peak(),
            callback,
        }
        .into_result()
    }

    /// Reconcile: the upload id and verified parts of an earlier run that can be resumed, or `None`
    /// for a fresh upload (after aborting a stale one and setting a bad checkpoint aside).
    #[allow(clippy::too_many_arguments)]
    async fn find_resumable(
        &self,
        client: &Client,
        identity: &UploadIdentity,
        stamp: SourceStamp,
        options_digest: &str,
        plan: &[PartSpec],
        mode: ChecksumMode,
        concurrency: usize,
        progress: &Progress,
        notices: &mut Vec<Notice>,
    ) -> Result<Resumable, Error> {
        let req = &self.request;
        let store = &self.uploader.store;
        let loaded = store.load(identity).await;
        tracing::debug!(
            found = matches!(&loaded, Ok(Some(_))),
            parts = loaded
                .as_ref()
                .ok()
                .and_then(|cp| cp.as_ref())
                .map(|cp| cp.parts.len()),
            "checkpoint loaded"
        );
        match loaded {
            Ok(None) => {}
            Ok(Some(cp)) if cp.upload_id.is_empty() && &cp.identity == identity => {
                // An intent without an upload id: the run that saved it stopped before saving the
                // upload its Initiate created (if it created one). Start fresh from its time.
                return Ok(Resumable::Fresh(Some(cp.created_unix)));
            }
            Ok(Some(cp)) if &cp.identity != identity => {
                progress.notice(
                    notices,
                    Notice::CheckpointCorrupt {
                        location: identity.to_string(),
                        reason: format!(
                            "the store returned the checkpoint of another upload ({})",
                            cp.identity
                        ),
                        set_aside_to: None,
                    },
                );
            }
            Ok(Some(cp)) => {
                let changed = if cp.source != stamp {
                    Some(Notice::SourceChanged {
                        upload_id: cp.upload_id.clone(),
                        aborted: false,
                    })
                } else if cp.options_digest != options_digest {
                    Some(Notice::OptionsChanged {
                        upload_id: cp.upload_id.clone(),
                        aborted: false,
                    })
                } else {
                    None
                };
                match changed {
                    Some(mut notice) => {
                        let aborted = match client
                            .abort_multipart_upload(&req.bucket, &req.key, &cp.upload_id)
                            .await
                        {
                            Ok(()) => true,
                            Err(e) if e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload) => {
                                false
                            }
                            Err(e) => return Err(e),
                        };
                        match &mut notice {
                            Notice::SourceChanged { aborted: a, .. }
                            | Notice::OptionsChanged { aborted: a, .. } => *a = aborted,
                            _ => {}
                        }
                        store.remove(identity).await.map_err(Error::checkpoint)?;
                        progress.notice(notices, notice);
                    }
                    None => match client
                        .list_parts(&req.bucket, &req.key, &cp.upload_id)
                        .await
                    {
                        Ok(listed) => {
                            let done = self
                                .reconcile(&cp, plan, &listed, mode, concurrency)
                                .await?;
                            let mut verified = cp;
                            if verified.parts != done {
                                // Rewrite the checkpoint to hold exactly what the server confirmed:
                                // without stale parts, with the parts whose records were lost.
                                verified.parts = done;
                                store.save(&verified).await.map_err(Error::checkpoint)?;
                            }
                            return Ok(Resumable::Parts(verified));
                        }
                        Err(e) if e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload) => {
                            if let Some(done) = self
                                .completed_earlier(client, &cp, plan, stamp.size)
                                .await?
                            {
                                store.remove(identity).await.map_err(Error::checkpoint)?;
                                progress.notice(
                                    notices,
                                    Notice::CompleteSettledByHead {
                                        upload_id: cp.upload_id.clone(),
                                    },
                                );
                                return Ok(Resumable::Completed(cp.upload_id.clone(), done));
                            }
                            store.remove(identity).await.map_err(Error::checkpoint)?;
                            progress.notice(
                                notices,
                                Notice::UploadGone {
                                    upload_id: cp.upload_id.clone(),
                                },
                            );
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
            Err(StoreError::Corrupt {
                location,
                reason,
                set_aside_to,
            }) => progress.notice(
                notices,
                Notice::CheckpointCorrupt {
                    location,
                    reason,
                    set_aside_to,
                },
            ),
            Err(e) => return Err(Error::checkpoint(e)),
        }
        Ok(Resumable::Fresh(None))
    }

    /// Aborts the uploads of the key that an interrupted start of this upload left open (see
    /// [`orphans`]), one notice each. A failure is a notice too, never the upload's: an STS policy may
    /// well not allow ListMultipartUploads.
    async fn sweep_orphans(
        &self,
        client: &Client,
        upload_id: &str,
        intent: Intent,
        progress: &Progress,
        notices: &mut Vec<Notice>,
    ) {
        let req = &self.request;
        let swept =
            orphans::sweep(client, &req.bucket, &req.key, upload_id, intent.elapsed()).await;
        let (aborted, failed) = match swept {
            Ok(swept) => (swept.aborted, swept.failed),
            Err(e) => (Vec::new(), Some(e)),
        };
        for orphan in aborted {
            progress.notice(notices, Notice::OrphanAborted { upload_id: orphan });
        }
        if let Some(e) = failed {
            progress.notice(
                notices,
                Notice::OrphanSweepFailed {
                    upload_id: upload_id.to_owned(),
                    error: e.to_string(),
                },
            );
        }
    }

    /// When an earlier run recorded every part and its upload is gone, it may have completed (its
    /// process died before the answer to Complete was recorded): the object with the source's size
    /// and combined CRC-64 says so. Returns the object's ETag and the recorded parts then.
    async fn completed_earlier(
        &self,
        client: &Client,
        cp: &Checkpoint,
        plan: &[PartSpec],
        size: u64,
    ) -> Result<Option<(String, BTreeMap<u32, PartRecord>)>, Error> {
        let all_recorded = plan
            .iter()
            .all(|p| cp.parts.get(&p.number).is_some_and(|r| r.size == p.size));
        if !all_recorded || cp.parts.len() != plan.len() {
            return Ok(None);
        }
        let crc = crc64_of_parts(cp.parts.values().map(|r| (r.crc64, r.size)));
        let req = &self.request;
        Ok(match client.head_object(&req.bucket, &req.key).await? {
            Some(head) if head.size == size && head.crc64 == Some(crc) => {
                Some((head.etag, cp.parts.clone()))
            }
            _ => None,
        })
    }

    /// The parts of the checkpointed upload that the server holds with the source's bytes.
    ///
    /// Listed parts the checkpoint has no record of (their acknowledgement was lost before it was
    /// recorded) are hashed from the source, `concurrency` at a time, each in one pass.
    async fn reconcile(
        &self,
        cp: &Checkpoint,
        plan: &[PartSpec],
        listed: &[ListedPart],
        mode: ChecksumMode,
        concurrency: usize,
    ) -> Result<BTreeMap<u32, PartRecord>, Error> {
        let req = &self.request;
        let by_number: BTreeMap<u32, &ListedPart> =
            listed.iter().map(|p| (p.part_number, p)).collect();
        let mut done = BTreeMap::new();
        let mut unknown = Vec::new();
        for spec in plan {
            let listed = by_number.get(&spec.number).copied();
            let known = Known::from_record(spec, cp.parts.get(&spec.number));
            match judge(spec, listed, known, mode) {
                Verdict::Done(record) => {
                    done.insert(spec.number, record);
                }
                Verdict::NeedSource => unknown.push(*spec),
                Verdict::Send => {}
            }
        }
        // The hashing futures own what they use (a clone of the source's Arc, the part): futures
        // borrowing into a buffered stream make the upload's future lose `Send` (a rustc limitation
        // with higher-ranked lifetimes), and then it could not be spawned.
        let source = req.source.clone();
        let hashed: Vec<(PartSpec, Hashed)> = futures::stream::iter(unknown)
            .map(move |spec| {
                let source = source.clone();
                async move {
                    let hashed = hash_part(source, spec, ChecksumMode::Md5).await?;
                    Ok::<_, Error>((spec, hashed))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        for (spec, hashed) in hashed {
            let listed = by_number.get(&spec.number).copied();
            let from_source = Known {
                md5: hashed.md5,
                crc64: Some(hashed.crc64),
            };
            if let Verdict::Done(record) = judge(&spec, listed, from_source, mode) {
                done.insert(spec.number, record);
            }
        }
        Ok(done)
    }

    /// CompleteMultipartUpload (with the request's callback) and the object CRC-64 check; returns
    /// the object's ETag and what came of the callback.
    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        client: &Client,
        upload_id: &str,
        parts: &[CompletePart],
        crc64: u64,
        size: u64,
        options: &ObjectOptions,
        progress: &Progress,
        notices: &mut Vec<Notice>,
    ) -> Result<(String, Option<CallbackResult>), Error> {
        let req = &self.request;
        let mismatch = |what: &str| {
            Error::integrity(format!(
                "{what}; the object at this key must not be trusted: run the upload again to replace it"
            ))
            .with_upload_id(upload_id)
        };
        let completed = match &req.callback {
            Some(callback) => {
                client
                    .complete_multipart_upload_with_callback(
                        &req.bucket,
                        &req.key,
                        upload_id,
                        parts,
                        options.forbid_overwrite,
                        callback,
                    )
                    .await
            }
            None => {
                client
                    .complete_multipart_upload(
                        &req.bucket,
                        &req.key,
                        upload_id,
                        parts,
                        options.forbid_overwrite,
                    )
                    .await
            }
        };
        match completed {
            Ok(done) => {
                let server_crc = match done.crc64 {
                    Some(crc) => Some(crc),
                    None => client
                        .head_object(&req.bucket, &req.key)
                        .await?
                        .and_then(|h| h.crc64),
                };
                match server_crc {
                    Some(crc) if crc == crc64 => Ok((done.etag, done.callback)),
                    Some(crc) => Err(mismatch(&format!(
                        "the completed object's CRC-64 {crc} is not {crc64}, the CRC-64 of the source's parts"
                    ))),
                    None => Err(mismatch(
                        "the server reported no CRC-64 for the completed object, so it cannot be verified",
                    )),
                }
            }
            Err(e) if e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload) => {
                // The upload is gone: completed by an attempt whose answer was lost, or aborted.
                match client.head_object(&req.bucket, &req.key).await? {
                    Some(head) if head.size == size && head.crc64 == Some(crc64) => {
                        progress.notice(
                            notices,
                            Notice::CompleteSettledByHead {
                                upload_id: upload_id.to_owned(),
                            },
                        );
                        // The answer to the Complete that stored it, and so the callback's, was lost.
                        Ok((head.etag, None))
                    }
                    head => Err(Error::integrity(format!(
                        "completing upload {upload_id} found no such upload, and the object is {}; run the upload again",
                        match head {
                            None => "absent".to_owned(),
                            Some(h) => format!("{} bytes with CRC-64 {:?}, not {size} bytes with CRC-64 {crc64}", h.size, h.crc64),
                        }
                    ))
                    .with_upload_id(upload_id)
                    .with_source(e)),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The source's stamp, read on a blocking thread.
async fn stamp_of(source: &Arc<dyn Source>) -> Result<SourceStamp, Error> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || source.stamp())
        .await
        .map_err(|e| Error::internal(format!("reading the source's stamp panicked: {e}")))?
        .map_err(|e| Error::source_io("cannot read the source's size and modification time", e))
}

/// Fails when the source no longer has `stamp` (it changed while being uploaded).
async fn ensure_unchanged(source: &Arc<dyn Source>, stamp: SourceStamp) -> Result<(), Error> {
    let now = stamp_of(source).await?;
    if now != stamp {
        return Err(Error::source_changed(format!(
            "the source changed while it was being uploaded (size {} -> {}, modified {:?} -> {:?}); run the upload again to start over",
            stamp.size, now.size, stamp.modified_nanos, now.modified_nanos
        )));
    }
    Ok(())
}
