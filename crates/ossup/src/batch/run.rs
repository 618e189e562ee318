//! The batch loop: pulls items while fewer than the limit are in flight, runs each through skip and
//! upload, and hands results to the [`BatchRun`] stream as they finish.

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
use super::{Batch, BatchItem, BatchProgress, Configure, What};
use crate::buffer::BufferPool;
use crate::store::{DigestCache, FileDigest, FileStat};
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
    });
    let mut running = FuturesUnordered::new();
    let mut exhausted = false;
    loop {
        let can_start = !exhausted && !cancel.is_cancelled() && running.len() < limit;
        if !can_start && running.is_empty() {
            break;
        }
        tokio::select! {
            item = items.next(), if can_start => match item {
                Some(item) => running.push(one_file(shared.clone(), item)),
                None => exhausted = true,
            },
            Some(outcome) = running.next(), if !running.is_empty() => {
                if batch.fail_fast && matches!(outcome.status, FileStatus::Failed(_)) {
                    cancel.cancel();
                }
                if results.send(outcome).await.is_err() {
                    // Nobody reads the results any more: the run was dropped.
                    cancel.cancel();
                }
            }
        }
    }
    cancel.is_cancelled()
}

async fn one_file(shared: Arc<Shared>, item: BatchItem) -> FileOutcome {
    let path = item.path();
    let key = item.key.clone();
    let status = match upload_one(&shared, item).await {
        Ok(status) => status,
        Err(error) => FileStatus::Failed(error.with_object(&shared.bucket, &key)),
    };
    FileOutcome { path, key, status }
}

async fn upload_one(shared: &Shared, item: BatchItem) -> Result<FileStatus, Error> {
    let (source, file): (Arc<dyn Source>, Option<(String, FileStat)>) = match item.what {
        What::Rejected(_, error) => return Err(error),
        What::Source(source) => (source, None),
        What::File(path) => open(path).await?,
    };
    let size = match &file {
        Some((_, stat)) => stat.size,
        None => crate::upload::stamp_of(&source).await?.size,
    };
    if shared.skip_unchanged {
        let local = Local {
            source: &source,
            size,
            file: file.as_ref().map(|(path, stat)| (path.as_str(), *stat)),
        };
        let client = shared.uploader.client();
        let cache = shared.digest_cache.as_ref();
        let listing = shared.listing.as_ref();
        if let Some(reason) =
            skip::already_there(client, &shared.bucket, &item.key, listing, cache, &local).await?
        {
            return Ok(FileStatus::Skipped { size, reason });
        }
    }
    let mut request = UploadRequest::from_arc(source, shared.bucket.clone(), item.key.clone());
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
    let outcome = shared.uploader.upload(request).await?;
    if let (Some(cache), Some((path, before))) = (&shared.digest_cache, &file) {
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
