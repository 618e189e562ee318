//! Many files in one run: [`Batch`], built by [`Uploader::batch`].
//!
//! A batch uploads a stream of [`BatchItem`]s (a file or any [`Source`], and its key) under one
//! budget: the uploader's [`PartScheduler::concurrency`](crate::PartScheduler::concurrency) `N` is
//! the number of parts in flight and in memory for the whole batch (a small file put whole counts as
//! one part), through one connection pool, however many files there are. A file put whole runs
//! through the scheduler as one part, so a scheduler that shares its limit between its runs (as
//! [`Adaptive`](crate::Adaptive) does) governs the whole batch: on a server that refuses past a
//! ceiling, the files together find it once. Each file goes through the
//! same phases as [`Uploader::upload`], so a batch killed half way resumes file by file: files
//! complete in the bucket are skipped by content (`skip.rs`), files in flight resume from their
//! checkpoints, the rest are sent. Results come back per file as they finish ([`BatchRun`] is a
//! stream of [`FileOutcome`]s) and in all ([`BatchSummary`]). The loop lives in `run.rs`.
//!
//! On an uploader with a [cooperative store](crate::UploaderBuilder::cooperative_store), the same
//! batch run by several workers shares the tree: each file put whole is claimed by one worker, the
//! others report it skipped ([`SkipReason::UploadedByAnotherWorker`]) once they find it there, and
//! multipart files share their parts.

mod outcome;
mod run;
mod skip;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::store::DigestCache;
use crate::{Error, ProgressEvent, Source, UploadRequest, Uploader};

pub use outcome::{BatchSummary, FileOutcome, FileStatus, SkipReason};
pub use run::BatchRun;

/// One file of a batch: what to read and the key to store it under.
///
/// ```
/// use ossup::{BatchItem, BytesSource};
/// let from_disk = BatchItem::file("/data/photos/a.jpg", "photos/a.jpg");
/// let in_memory = BatchItem::source(BytesSource::new(b"hello".to_vec(), "greeting"), "hello.txt");
/// assert_eq!(from_disk.key(), "photos/a.jpg");
/// assert_eq!(in_memory.key(), "hello.txt");
/// ```
#[derive(Debug)]
pub struct BatchItem {
    key: String,
    what: What,
}

enum What {
    /// Opened when its turn comes, so a tree of any size holds only the files in flight open.
    File(PathBuf),
    Source(Arc<dyn Source>),
    /// An item found unusable before upload (a name that is not UTF-8, say), reported as failed.
    Rejected(Option<PathBuf>, Error),
}

impl fmt::Debug for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::File(path) => f.debug_tuple("File").field(path).finish(),
            What::Source(source) => f.debug_tuple("Source").field(source).finish(),
            What::Rejected(path, error) => {
                f.debug_tuple("Rejected").field(path).field(error).finish()
            }
        }
    }
}

impl BatchItem {
    /// The file at `path`, uploaded to `key`. It is opened when its turn comes; its digests are
    /// remembered in the batch's [`DigestCache`] by canonical path.
    pub fn file(path: impl Into<PathBuf>, key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            what: What::File(path.into()),
        }
    }

    /// Any source, uploaded to `key`. When skipping is on and the object has the source's size, the
    /// source is read once to compare its digests (no cache: a source has no stat).
    pub fn source(source: impl Source + 'static, key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            what: What::Source(Arc::new(source)),
        }
    }

    /// An item that is known to fail (its name cannot be a key, say): it is reported as a failed
    /// file with `error`, so that a batch's results name every file it was given.
    pub fn rejected(path: Option<PathBuf>, key: impl Into<String>, error: Error) -> Self {
        Self {
            key: key.into(),
            what: What::Rejected(path, error),
        }
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn path(&self) -> Option<PathBuf> {
        match &self.what {
            What::File(path) => Some(path.clone()),
            What::Rejected(path, _) => path.clone(),
            What::Source(_) => None,
        }
    }
}

type Configure = Arc<dyn Fn(UploadRequest) -> UploadRequest + Send + Sync>;
type BatchProgress = Arc<dyn Fn(&str, &ProgressEvent) + Send + Sync>;

/// Uploads many files to one bucket under one shared budget.
///
/// The uploader's [`PartScheduler::concurrency`](crate::PartScheduler::concurrency) `N` bounds the
/// parts in flight and in memory for the whole batch (a small file put whole counts as one part),
/// through one connection pool, however many files there are. Each file goes through the same
/// phases as [`Uploader::upload`], so a batch stopped half way resumes file by file: files the
/// bucket holds are skipped by content (same size, and the ETag is the file's MD5 or, for a
/// multipart object, its CRC-64 is the file's), files in flight resume from their checkpoints, the
/// rest are sent. One failed file never stops the others unless [`Batch::fail_fast`] says so.
///
/// ```no_run
/// # async fn run(uploader: ossup::Uploader, store: ossup::FileStore) -> Result<(), ossup::Error> {
/// use futures::StreamExt as _;
/// use ossup::{BatchItem, FileStatus};
///
/// let items = futures::stream::iter(vec![
///     BatchItem::file("/data/site/index.html", "site/index.html"),
///     BatchItem::file("/data/site/logo.png", "site/logo.png"),
/// ]);
/// let mut run = uploader
///     .batch("bucket")
///     .listing_prefix("site/")       // one listing decides what is already there
///     .digest_cache(store)           // unchanged files are not read again to learn their MD5
///     .run(items);
/// while let Some(file) = run.next().await {
///     match &file.status {
///         FileStatus::Failed(error) => eprintln!("{}: {error}", file.key),
///         status => println!("{}: {status:?}", file.key),
///     }
/// }
/// let summary = run.finish().await;
/// println!("{} uploaded, {} skipped, {} failed", summary.uploaded, summary.skipped, summary.failed);
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until `run`"]
pub struct Batch {
    uploader: Uploader,
    bucket: String,
    skip_unchanged: bool,
    listing_prefix: Option<String>,
    digest_cache: Option<Arc<dyn DigestCache>>,
    fail_fast: bool,
    cancel: CancellationToken,
    configure: Option<Configure>,
    progress: Option<BatchProgress>,
    files_in_flight: Option<usize>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("bucket", &self.bucket)
            .field("skip_unchanged", &self.skip_unchanged)
            .field("listing_prefix", &self.listing_prefix)
            .field("digest_cache", &self.digest_cache)
            .field("fail_fast", &self.fail_fast)
            .field("files_in_flight", &self.files_in_flight)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// A batch of uploads to `bucket` sharing this uploader's budget, client and store.
    pub fn batch(&self, bucket: impl Into<String>) -> Batch {
        Batch {
            uploader: self.clone(),
            bucket: bucket.into(),
            skip_unchanged: true,
            listing_prefix: None,
            digest_cache: None,
            fail_fast: false,
            cancel: CancellationToken::new(),
            configure: None,
            progress: None,
            files_in_flight: None,
        }
    }
}

impl Batch {
    /// Whether a file the bucket already holds (same size and content) is skipped; on by default.
    /// Off uploads every file (the CLI's `--force`).
    pub fn skip_unchanged(mut self, skip: bool) -> Self {
        self.skip_unchanged = skip;
        self
    }

    /// Lists the objects under `prefix` once, before the first file, and judges keys under it by
    /// that listing (a request per 1,000 keys) instead of a HeadObject per file. Keys outside the
    /// prefix, and every key when no prefix is given, are judged by a HeadObject.
    pub fn listing_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.listing_prefix = Some(prefix.into());
        self
    }

    /// Where file digests are remembered between runs (usually the uploader's checkpoint store), so
    /// that an unchanged file is not read again to learn whether the bucket holds it.
    pub fn digest_cache(mut self, cache: impl DigestCache + 'static) -> Self {
        self.digest_cache = Some(Arc::new(cache));
        self
    }

    /// Stops at the first failed file: files in flight are cancelled (their checkpoints kept) and no
    /// new file starts. Off by default: one failure never stops the others.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Cancels the batch when `token` is cancelled: no new file starts, files in flight stop as a
    /// cancelled [`Uploader::upload`] does (checkpoints kept, or as each request's
    /// [`OnCancel`](crate::OnCancel) says).
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Sets each file's request: part size, threshold, checksum mode, object options, on-cancel.
    /// The batch's own cancellation, progress and buffer budget replace the request's.
    ///
    /// ```no_run
    /// # fn f(uploader: ossup::Uploader) {
    /// use ossup::{ObjectOptions, StorageClass};
    /// let batch = uploader.batch("bucket").configure(|request| {
    ///     request.part_size(16 << 20).options(ObjectOptions::default().storage_class(StorageClass::Archive))
    /// });
    /// # }
    /// ```
    pub fn configure(
        mut self,
        configure: impl Fn(UploadRequest) -> UploadRequest + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(configure));
        self
    }

    /// Hears every file's [`ProgressEvent`]s, with the file's key.
    pub fn progress(
        mut self,
        progress: impl Fn(&str, &ProgressEvent) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// How many files may be between start and result at once; twice the scheduler's concurrency by
    /// default, so that opening, judging and finishing one file overlaps another's parts. Parts in
    /// flight stay bounded by the scheduler's concurrency whatever this is.
    pub fn files_in_flight(mut self, files: usize) -> Self {
        self.files_in_flight = Some(files.max(1));
        self
    }

    /// Starts the batch on the current Tokio runtime; the returned [`BatchRun`] yields each file's
    /// result as it finishes. Dropping it cancels the batch.
    pub fn run<S>(self, items: S) -> BatchRun
    where
        S: Stream<Item = BatchItem> + Send + 'static,
    {
        run::start(self, items)
    }
}
