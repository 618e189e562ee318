//! The upload engine: [`Uploader`], [`UploadRequest`] and [`UploadOutcome`].
//!
//! [`Uploader::upload`] runs one upload as a short sequence of phases over one
//! `UploadContext` (`context.rs`), each phase in a file of its own:
//!
//! | phase | file | what it guarantees when it returns |
//! |---|---|---|
//! | plan | `plan.rs` | the request is valid; the source is stamped; the part size fits 10,000 parts; PutObject or multipart is chosen |
//! | put | `put.rs` | a small source is stored by one PutObject whose ETag (MD5) and CRC-64 match the bytes read |
//! | resume | `resume.rs` | the checkpoint names a live multipart upload and holds exactly the parts the server lists with the source's checksums; a stale upload is aborted, a gone one replaced (or found completed), orphans of an interrupted start are swept; without a checkpoint and asked to resume from the server, the newest open upload of the key whose parts fit the plan is adopted (`adopt.rs`), its parts verified the same way |
//! | transfer | `transfer.rs` | every part of the plan is on the server, acknowledged with the source's checksums, and recorded in the checkpoint |
//! | complete | `complete.rs` | the object's CRC-64 is that of the source's parts (settling a lost answer with HeadObject); the checkpoint is removed |
//!
//! A stream ([`UploadRequest::stream`]) runs the same phases cut to what a stream allows, in
//! `stream.rs`: its first part decides PutObject or parts, and on resume the parts the server
//! holds are judged against the arriving bytes.
//!
//! Around them: `builder.rs` builds the [`Uploader`], `request.rs` and `outcome.rs` hold what goes
//! in and comes out, `hashing.rs` reads and hashes the source, `progress.rs` reports events,
//! `recorder.rs` commits part records in batches, `reconcile.rs` judges listed parts, `orphans.rs`
//! sweeps uploads an interrupted start left open, `adopt.rs` finds an open upload of the key to
//! carry on when no checkpoint names one, and `cancel.rs` settles a cancellation.

mod adopt;
mod builder;
mod cancel;
mod complete;
mod context;
mod cooperate;
mod hashing;
#[cfg(test)]
mod observability;
mod orphans;
mod outcome;
mod plan;
mod progress;
mod put;
mod reconcile;
mod recorder;
mod request;
mod resume;
#[cfg(test)]
mod scripted;
mod stream;
mod transfer;

use std::fmt;
use std::sync::Arc;

use tracing::{Instrument as _, Span, field};

use crate::{CheckpointStore, Client, Error, PartScheduler, ProgressEvent};
use cancel::CancelState;
use complete::Completion;
use context::UploadContext;

pub use builder::UploaderBuilder;
pub(crate) use hashing::{hash_part, stamp_of};
pub use outcome::{UploadMethod, UploadOutcome};
pub use request::{ChecksumMode, OnCancel, UploadRequest};

/// Uploads sources to OSS, resumably. Built by [`Uploader::builder`]; cloning is cheap.
///
/// ```no_run
/// # async fn run(dir: std::path::PathBuf, path: std::path::PathBuf) -> Result<(), ossup::Error> {
/// use ossup::{Credentials, FileSource, ObjectOptions, Parallel, UploadRequest, Uploader};
///
/// let uploader = Uploader::builder()
///     .endpoint("http://127.0.0.1:9000")?
///     .credentials(Credentials::new("test-ak", "test-sk"))
///     .region("cn-hangzhou")              // an IP endpoint does not name its region
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
    /// The same store, when the upload is shared with other workers.
    cooperative: Option<Arc<dyn crate::store::CooperativeStore>>,
    /// How long a cooperating worker's claims last unless renewed.
    lease: std::time::Duration,
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
            .field("cooperative", &self.cooperative.is_some())
            .field("lease", &self.lease)
            .field("scheduler", &self.scheduler)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("checksum_mode", &self.checksum_mode)
            .finish()
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

    /// The part scheduler; its concurrency is also the budget of a [`Batch`](crate::Batch).
    pub fn scheduler(&self) -> &Arc<dyn PartScheduler> {
        &self.scheduler
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
    /// ([`Notice::OrphanAborted`](crate::Notice::OrphanAborted)). Listing them needs
    /// `oss:ListMultipartUploads`; without it the upload goes on with a
    /// [`Notice::OrphanSweepFailed`](crate::Notice::OrphanSweepFailed).
    ///
    /// The future is `Send`: `tokio::spawn(async move { uploader.upload(request).await })` runs an
    /// upload as a task of its own.
    ///
    /// The upload runs in an `info` span `upload` (bucket, key, and once planned size, part size,
    /// part count, method and upload id), with a span per phase (`plan`, `resume`, `transfer`,
    /// `complete`, `put`) and a `debug` span `part` per part sent (number, offset, size, and the
    /// bytes sent once acknowledged), under which the client's request spans nest.
    pub async fn upload(&self, request: UploadRequest) -> Result<UploadOutcome, Error> {
        let span = tracing::info_span!(
            "upload",
            bucket = %request.bucket,
            key = %request.key,
            size = field::Empty,
            part_size = field::Empty,
            parts = field::Empty,
            method = field::Empty,
            upload_id = field::Empty,
        );
        async {
            let cancel = request.cancel.clone();
            let state = Arc::new(CancelState::new(&request));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                result = self.run(request, state.clone()) => return result,
            }
            // Cancelled: the run (and every part in flight) has been dropped.
            Err(state.settle(self).await)
        }
        .instrument(span)
        .await
    }

    /// Plans the upload, then puts it or runs it in parts; every error names the object.
    async fn run(
        &self,
        request: UploadRequest,
        cancel: Arc<CancelState>,
    ) -> Result<UploadOutcome, Error> {
        let bucket = request.bucket.clone();
        let key = request.key.clone();
        let in_context = |e: Error| e.with_object(&bucket, &key);
        let started = std::time::Instant::now();
        let ctx = plan::plan(self, request, cancel)
            .instrument(tracing::info_span!("plan"))
            .await
            .map_err(in_context)?;
        let method = match ctx.plan.method {
            UploadMethod::PutObject => "put_object",
            UploadMethod::Multipart => "multipart",
        };
        let upload = Span::current();
        upload.record("size", ctx.plan.stamp.size);
        upload.record("part_size", ctx.plan.part_size);
        upload.record("parts", ctx.plan.parts.len());
        upload.record("method", method);
        tracing::info!(
            size = ctx.plan.stamp.size,
            parts = ctx.plan.parts.len(),
            method,
            "upload starting"
        );
        let outcome = match (&ctx.request.stream, ctx.plan.method) {
            (Some(stream), _) => stream::upload(&ctx, &stream.clone()).await,
            (None, UploadMethod::PutObject) => {
                put::put(&ctx).instrument(tracing::info_span!("put")).await
            }
            (None, UploadMethod::Multipart) => multipart(&ctx).await,
        }
        .map_err(in_context)?;
        tracing::info!(
            bytes_sent = outcome.bytes_sent,
            bytes_reused = outcome.bytes_reused,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upload completed"
        );
        Ok(outcome)
    }
}

/// A multipart upload: resume, transfer, complete, under the checkpoint's lock.
async fn multipart(ctx: &UploadContext) -> Result<UploadOutcome, Error> {
    let lock = match ctx.cooperating {
        Some(_) => cooperate::lock_to_start(ctx).await?,
        None => ctx
            .store
            .lock(&ctx.identity)
            .await
            .map_err(Error::checkpoint)?,
    };
    tracing::debug!(identity = %ctx.identity, "checkpoint lock held");
    if ctx.cooperating.is_some()
        && let Some(outcome) = cooperate::already_completed(ctx).await?
    {
        return outcome.into_result();
    }
    let resumed = match cooperate::join(ctx).await? {
        Some(joined) => joined,
        None => {
            resume::resume(ctx)
                .instrument(tracing::info_span!("resume"))
                .await?
        }
    };
    // Cooperating workers exclude each other part by part from here on, not upload by upload.
    let _lock = match ctx.cooperating {
        Some(_) => {
            drop(lock);
            None
        }
        None => Some(lock),
    };
    let upload_id = resumed.checkpoint.upload_id.clone();
    Span::current().record("upload_id", upload_id.as_str());
    if resumed.resumed {
        let checkpoint = &resumed.checkpoint;
        tracing::info!(
            %upload_id,
            parts_reused = checkpoint.parts.len(),
            bytes_reused = checkpoint.parts.values().map(|r| r.size).sum::<u64>(),
            "resuming"
        );
    }
    let transferred = transfer::transfer(ctx, resumed.checkpoint)
        .instrument(tracing::info_span!("transfer", %upload_id))
        .await?;
    let elsewhere = match &ctx.cooperating {
        Some(cooperating) => cooperate::settle(ctx, cooperating, &transferred.parts).await?,
        None => None,
    };
    let completed = match elsewhere {
        Some(completed) => completed,
        None => {
            complete::complete(
                ctx,
                Completion {
                    upload_id: &upload_id,
                    size: ctx.plan.stamp.size,
                    parts: &transferred.parts,
                    completed_etag: resumed.completed_etag,
                },
            )
            .instrument(tracing::info_span!("complete", %upload_id))
            .await?
        }
    };
    ctx.progress.emit(ProgressEvent::Completed {
        etag: completed.etag.clone(),
        crc64: completed.crc64,
        bytes_sent: transferred.bytes_sent,
        bytes_reused: transferred.bytes_reused,
    });
    let parts = ctx.plan.parts.len() as u32;
    UploadOutcome {
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        size: ctx.plan.stamp.size,
        etag: completed.etag,
        crc64: completed.crc64,
        method: UploadMethod::Multipart,
        upload_id: Some(upload_id),
        part_size: ctx.plan.part_size,
        parts,
        parts_sent: parts - transferred.parts_reused,
        parts_reused: transferred.parts_reused,
        bytes_sent: transferred.bytes_sent,
        bytes_reused: transferred.bytes_reused,
        resumed: resumed.resumed,
        notices: ctx.take_notices(),
        peak_part_buffers: ctx.pool.peak(),
        callback: completed.callback,
    }
    .into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{PART, Reply, Scripted, data, part_of, request, uploader};
    use crate::{CancellationToken, ErrorKind, MemoryStore};
    use ossup_proto::checksum::crc64;

    #[tokio::test]
    async fn a_multipart_upload_goes_through_the_phases_in_order() {
        let data = data(PART as usize + 100, 21);
        let server = Scripted::new(vec![
            Reply::initiated("U1"),
            Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
            Reply::stored(part_of(&data, 1)),
            Reply::stored(part_of(&data, 2)),
            Reply::completed("\"E-2\"", crc64(&data)),
        ]);
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let request = request(&data).progress(move |event: &ProgressEvent| {
            sink.lock().unwrap().push(event.clone());
        });

        let uploader = uploader(&server, &store);
        // Spawned: the upload's future is `Send`.
        let outcome = tokio::spawn(async move { uploader.upload(request).await })
            .await
            .unwrap()
            .unwrap();

        assert_eq!(
            server.lines(),
            [
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key",
                "PUT /bucket/key?partNumber=1&uploadId=U1",
                "PUT /bucket/key?partNumber=2&uploadId=U1",
                "POST /bucket/key?uploadId=U1",
            ]
        );
        assert_eq!(outcome.method, UploadMethod::Multipart);
        assert_eq!(outcome.upload_id.as_deref(), Some("U1"));
        assert_eq!(
            (outcome.parts, outcome.parts_sent, outcome.parts_reused),
            (2, 2, 0)
        );
        assert_eq!(outcome.bytes_sent, data.len() as u64);
        assert_eq!(outcome.crc64, crc64(&data));
        assert!(!outcome.resumed);
        assert!(store.list().await.unwrap().is_empty());
        let events = events.lock().unwrap();
        assert!(
            matches!(
                events.first(),
                Some(ProgressEvent::Started { parts: 2, .. })
            ),
            "{events:?}"
        );
        assert!(
            matches!(events.last(), Some(ProgressEvent::Completed { .. })),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn an_upload_cancelled_before_it_starts_sends_nothing_and_says_so() {
        let server = Scripted::new(Vec::new());
        let store = Arc::new(MemoryStore::new());
        let token = CancellationToken::new();
        token.cancel();

        let err = uploader(&server, &store)
            .upload(request(&data(10, 1)).cancel(token))
            .await
            .unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert_eq!(
            err.to_string(),
            "the upload of oss://bucket/key was cancelled before any part was sent"
        );
        assert!(server.lines().is_empty());
    }

    #[tokio::test]
    async fn errors_of_every_phase_name_the_object() {
        let server = Scripted::new(vec![Reply::error(
            403,
            ossup_proto::ErrorCode::AccessDenied,
        )]);
        let store = Arc::new(MemoryStore::new());

        let err = uploader(&server, &store)
            .upload(request(&data(10, 1)))
            .await
            .unwrap_err();

        assert_eq!((err.bucket(), err.key()), (Some("bucket"), Some("key")));
        assert!(err.is_service_code(crate::ErrorCode::AccessDenied), "{err}");
    }
}
