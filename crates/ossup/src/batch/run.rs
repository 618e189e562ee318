//! The batch loop: pulls items while fewer than the limit are in flight, runs each through skip and
//! upload, and hands results to the [`BatchRun`] stream as they finish.
//!
//! With a cooperative store (the uploader's [`cooperative_store`](Uploader::cooperative_store)),
//! each file put whole is [claimed](crate::store::Cooperation::claim_file) before it is sent: a
//! file another worker holds is put aside and tried again a moment later (after the others' files
//! in hand), and a file another worker finished is judged by content against its record. Multipart
//! files are not claimed whole: their parts are shared, as for one upload (`upload/cooperate.rs`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt as _};
use ossup_proto::etag::md5_of_etag;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::outcome::{BatchSummary, FileOutcome, FileStatus};
use super::skip::{self, Listing, Local};
use super::{Batch, BatchItem, BatchProgress, Configure, SkipReason, What};
use crate::buffer::BufferPool;
use crate::store::{CooperativeStore, DigestCache, FileClaim, FileDigest, FileStat, FinishedFile};
use crate::{Error, FileSource, ProgressEvent, Source, UploadMethod, UploadRequest, Uploader};

/// Results held for a reader that is slower than the batch, before the batch waits for it.
const RESULT_BACKLOG: usize = 1024;

/// A running batch: a [`Stream`] of each file's [`FileOutcome`] as it finishes, counted into a
/// [`BatchSummary`]. Dropping it cancels the batch (checkpoints kept).
#[must_use = "a batch stops when its run is dropped"]
#[derive(Debug)]
pub struct BatchRun {
    results: mpsc::Receiver<FileOutcome>,
    driver: Option<JoinHandle<bool>>,
    summary: BatchSummary,
    _cancel_on_drop: DropGuard,
}

impl BatchRun {
    /// The counts of the results yielded so far.
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Waits for every remaining file (their results are counted, not returned) and returns the
    /// summary of the whole batch.
    pub async fn finish(mut self) -> BatchSummary {
        while self.next().await.is_some() {}
        if let Some(driver) = self.driver.take() {
            // A panicking file task is a bug; the batch counts as stopped early.
            self.summary.stopped_early |= driver.await.unwrap_or(true);
        }
        self.summary
    }
}

impl Stream for BatchRun {
    type Item = FileOutcome;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FileOutcome>> {
        let polled = self.results.poll_recv(cx);
        if let Poll::Ready(Some(outcome)) = &polled {
            let outcome: &FileOutcome = outcome;
            self.summary.add(outcome);
        }
        polled
    }
}

/// What every file of the batch shares.
struct Shared {
    uploader: Uploader,
    bucket: String,
    skip_unchanged: bool,
    listing: Option<Listing>,
    digest_cache: Option<Arc<dyn DigestCache>>,
    configure: Option<Configure>,
    progress: Option<BatchProgress>,
    pool: Arc<BufferPool>,
    cancel: CancellationToken,
    /// Set when the batch is shared with other workers.
    cooperating: Option<FileClaims>,
}

/// How this worker claims the files of a cooperating batch.
struct FileClaims {
    store: Arc<dyn CooperativeStore>,
    worker: String,
    lease: std::time::Duration,
}

/// What became of a file this time round.
enum Step {
    Done(FileOutcome),
    /// Another worker holds the file: to try again later.
    PutAside(BatchItem),
}

/// What [`upload_one`] ends with.
enum Handled {
    Status(FileStatus),
    PutAside(BatchItem),
}

pub(super) fn start<S>(batch: Batch, items: S) -> BatchRun
where
    S: Stream<Item = BatchItem> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(RESULT_BACKLOG);
    let cancel = batch.cancel.child_token();
    let guard = cancel.clone().drop_guard();
    let driver = tokio::spawn(drive(batch, cancel, Box::pin(items), tx));
    BatchRun {
        results: rx,
        driver: Some(driver),
        summary: BatchSummary::default(),
        _cancel_on_drop: guard,
    }
}

/// Runs the batch; returns whether it stopped before every item had a result.
async fn drive(
    batch: Batch,
    cancel: CancellationToken,
    mut items: Pin<Box<dyn Stream<Item = BatchItem> + Send>>,
    results: mpsc::Sender<FileOutcome>,
) -> bool {
    let parts = batch.uploader.scheduler().concurrency().max(1);
    let limit = batch.files_in_flight.unwrap_or(2 * parts);
    let listing = match (&batch.listing_prefix, batch.skip_unchanged) {
        (Some(prefix), true) => {
            match Listing::of(batch.uploader.client(), &batch.bucket, prefix).await {
                Ok(listing) => {
                    tracing::info!(
                        prefix,
                        objects = listing.len(),
                        "listed the bucket to skip what it holds"
                    );
                    Some(listing)
                }
                Err(e) => {
                    tracing::warn!(prefix, %e, "cannot list the prefix; judging each file by HeadObject");
                    None
                }
            }
        }
        _ => None,
    };
    let cooperating = batch.uploader.cooperative_store().map(|store| FileClaims {
        store: store.clone(),
        worker: crate::store::worker_name(),
        lease: batch.uploader.lease(),
    });
    let retry_after = crate::upload::poll_interval(batch.uploader.lease());
    let shared = Arc::new(Shared {
        uploader: batch.uploader,
        bucket: batch.bucket,
        skip_unchanged: batch.skip_unchanged,
        listing,
        digest_cache: batch.digest_cache,
        configure: batch.configure,
        progress: batch.progress,
        pool: BufferPool::new(parts),
        cancel: cancel.clone(),
        cooperating,
    });
    let mut running = FuturesUnordered::new();
    // Files other workers held when their turn came, oldest first, with when to try again.
    let mut put_aside: VecDeque<(tokio::time::Instant, BatchItem)> = VecDeque::new();
    let mut exhausted = false;
    loop {
        let room = !cancel.is_cancelled() && running.len() < limit;
        if room
            && put_aside
                .front()
                .is_some_and(|(at, _)| *at <= tokio::time::Instant::now())
            && let Some((_, item)) = put_aside.pop_front()
        {
            running.push(one_file(shared.clone(), item));
            continue;
        }
        let can_pull = room && !exhausted;
        let next_retry = put_aside.front().map(|(at, _)| *at).filter(|_| room);
        if !can_pull && running.is_empty() && next_retry.is_none() {
            break;
        }
        tokio::select! {
            item = items.next(), if can_pull => match item {
                Some(item) => running.push(one_file(shared.clone(), item)),
                None => exhausted = true,
            },
            Some(step) = running.next(), if !running.is_empty() => match step {
                Step::Done(outcome) => {
                    if batch.fail_fast && matches!(outcome.status, FileStatus::Failed(_)) {
                        cancel.cancel();
                    }
                    if results.send(outcome).await.is_err() {
                        // Nobody reads the results any more: the run was dropped.
                        cancel.cancel();
                    }
                }
                Step::PutAside(item) => {
                    put_aside.push_back((tokio::time::Instant::now() + retry_after, item));
                }
            },
            () = tokio::time::sleep_until(next_retry.unwrap_or_else(tokio::time::Instant::now)),
                if next_retry.is_some() => {}
        }
    }
    cancel.is_cancelled()
}

async fn one_file(shared: Arc<Shared>, item: BatchItem) -> Step {
    let path = item.path();
    let key = item.key.clone();
    let status = match upload_one(&shared, item).await {
        Ok(Handled::Status(status)) => status,
        Ok(Handled::PutAside(item)) => return Step::PutAside(item),
        Err(error) => FileStatus::Failed(error.with_object(&shared.bucket, &key)),
    };
    Step::Done(FileOutcome { path, key, status })
}

async fn upload_one(shared: &Shared, item: BatchItem) -> Result<Handled, Error> {
    // What to try again with, should another worker hold the file.
    let again = match &item.what {
        What::File(path) => Some(What::File(path.clone())),
        What::Source(source) => Some(What::Source(source.clone())),
        What::Rejected(..) => None,
    };
    let (source, file): (Arc<dyn Source>, Option<(String, FileStat)>) = match item.what {
        What::Rejected(_, error) => return Err(error),
        What::Source(source) => (source, None),
        What::File(path) => open(path).await?,
    };
    let size = match &file {
        Some((_, stat)) => stat.size,
        None => crate::upload::stamp_of(&source).await?.size,
    };
    let local = Local {
        source: &source,
        size,
        file: file.as_ref().map(|(path, stat)| (path.as_str(), *stat)),
    };
    let client = shared.uploader.client();
    let cache = shared.digest_cache.as_ref();
    if shared.skip_unchanged {
        let listing = shared.listing.as_ref();
        if let Some(reason) =
            skip::already_there(client, &shared.bucket, &item.key, listing, cache, &local).await?
        {
            return Ok(Handled::Status(FileStatus::Skipped { size, reason }));
        }
    }
    let mut request =
        UploadRequest::from_arc(source.clone(), shared.bucket.clone(), item.key.clone());
    if let Some(configure) = &shared.configure {
        request = configure(request);
    }
    request = request
        .shared_pool(shared.pool.clone())
        .cancel(shared.cancel.child_token());
    if let Some(progress) = &shared.progress {
        let (progress, key) = (progress.clone(), item.key.clone());
        request = request.progress(move |event: &ProgressEvent| progress(&key, event));
    }
    // Multipart files share their parts instead (`upload/cooperate.rs`).
    let claims = match &shared.cooperating {
        Some(claims)
            if crate::upload::method_of(&shared.uploader, &request, size)?
                == UploadMethod::PutObject =>
        {
            claims
        }
        _ => return upload(shared, request, &file).await.map(Handled::Status),
    };
    let (bucket, key) = (shared.bucket.as_str(), item.key.as_str());
    let finished = match claims
        .store
        .claim_file(bucket, key, &claims.worker, claims.lease)
        .await
        .map_err(Error::checkpoint)?
    {
        FileClaim::Held { worker, expires_in } => {
            tracing::debug!(key, %worker, ?expires_in, "another worker holds the file; putting it aside");
            let what = again.expect("a rejected item returned before its claim");
            return Ok(Handled::PutAside(BatchItem {
                key: item.key,
                what,
            }));
        }
        FileClaim::Claimed { finished } => finished,
    };
    let claimed = async {
        if let Some(finished) = finished.as_ref().filter(|_| shared.skip_unchanged)
            && skip::is_the_finished_object(client, bucket, key, finished, cache, &local).await?
        {
            tracing::debug!(key, worker = %finished.worker, "another worker put the file");
            return Ok(FileStatus::Skipped {
                size,
                reason: SkipReason::UploadedByAnotherWorker,
            });
        }
        let renew = async {
            loop {
                tokio::time::sleep(claims.lease / 3).await;
                match claims
                    .store
                    .renew_file(bucket, key, &claims.worker, claims.lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        key,
                        "another worker took over the file after this worker's lease expired; it may be sent twice"
                    ),
                    Err(err) => tracing::warn!(key, "renewing the claim on the file failed: {err}"),
                }
            }
        };
        tokio::select! {
            status = upload(shared, request, &file) => status,
            () = renew => unreachable!("renewing never ends"),
        }
    };
    let status = claimed.await;
    let recorded = match &status {
        Ok(FileStatus::Uploaded(outcome)) => {
            let record = FinishedFile::new(
                outcome.size,
                outcome.etag.clone(),
                outcome.crc64,
                &claims.worker,
            );
            claims
                .store
                .finish_file(bucket, key, &claims.worker, &record)
                .await
        }
        // Skipped: the record stays as it is. Failed: another worker may try at once.
        _ => claims.store.release_file(bucket, key, &claims.worker).await,
    };
    if let Err(err) = recorded {
        tracing::warn!(
            key,
            "cannot record the file's fate in the shared store; other workers will take it over when its lease expires: {err}"
        );
    }
    status.map(Handled::Status)
}

/// Uploads the file as `request` says, and remembers what the upload learnt of it.
async fn upload(
    shared: &Shared,
    request: UploadRequest,
    file: &Option<(String, FileStat)>,
) -> Result<FileStatus, Error> {
    let outcome = shared.uploader.upload(request).await?;
    if let (Some(cache), Some((path, before))) = (&shared.digest_cache, file) {
        remember_uploaded(cache, path, *before, &outcome).await;
    }
    Ok(FileStatus::Uploaded(Box::new(outcome)))
}

/// Opens the file and takes its stat (canonical path as the cache key), off the runtime's threads.
async fn open(path: PathBuf) -> Result<(Arc<dyn Source>, Option<(String, FileStat)>), Error> {
    tokio::task::spawn_blocking(move || {
        let source = FileSource::open(&path)?;
        let meta = std::fs::metadata(source.path())
            .map_err(|e| Error::source_io(format!("cannot stat {}", path.display()), e))?;
        let canonical = source.path().to_string_lossy().into_owned();
        let source: Arc<dyn Source> = Arc::new(source);
        Ok((source, Some((canonical, FileStat::of(&meta)))))
    })
    .await
    .map_err(|e| Error::internal(format!("opening a file panicked: {e}")))?
}

/// Remembers what an upload learnt of the file (its CRC-64, and for an object put whole its MD5,
/// which is the ETag), when the file did not change while it was read.
async fn remember_uploaded(
    cache: &Arc<dyn DigestCache>,
    path: &str,
    before: FileStat,
    outcome: &crate::UploadOutcome,
) {
    let now = std::fs::metadata(path).map(|meta| FileStat::of(&meta));
    if now.ok() != Some(before) {
        return;
    }
    let md5 = match outcome.method {
        UploadMethod::PutObject => md5_of_etag(&outcome.etag),
        UploadMethod::Multipart => None,
    };
    let digest = FileDigest {
        stat: before,
        md5,
        crc64: outcome.crc64,
    };
    skip::remember(cache, path, &digest).await;
}
