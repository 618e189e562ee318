//! A synchronous front to the engine, for programs without an async runtime: [`Uploader`] runs
//! each upload to the end on a small tokio runtime of its own and returns its outcome.
//!
//! Everything but the waiting is the async [`crate::Uploader`]'s: the same builder settings, the
//! same [`UploadRequest`], the same checkpoints, errors and resume. Progress sinks are called from
//! the runtime's threads; a [`CancellationToken`](crate::CancellationToken) cancelled from any
//! thread stops the upload as it stops an async one.
//!
//! Inside an async runtime use [`crate::Uploader`]: blocking a runtime's thread on an upload would
//! stall every other task scheduled there, so [`Uploader::upload`] refuses to.
//!
//! ```no_run
//! use ossup::blocking::Uploader;
//! use ossup::{Credentials, FileSource, UploadRequest};
//!
//! fn main() -> Result<(), ossup::Error> {
//!     let uploader = Uploader::builder()
//!         .endpoint("http://127.0.0.1:9000")?
//!         .credentials(Credentials::new("test-ak", "test-sk"))
//!         .region("cn-hangzhou")
//!         .build()?;
//!
//!     let outcome = uploader.upload(
//!         UploadRequest::new(FileSource::open("/data/big.iso")?, "bucket", "isos/big.iso")
//!             .part_size(8 << 20)
//!             .progress(|event: &ossup::ProgressEvent| eprintln!("{event:?}")),
//!     )?;
//!     println!("{} bytes sent, {} reused", outcome.bytes_sent, outcome.bytes_reused);
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use ossup_sign::{CredentialsProvider, Signer};

use crate::{
    CheckpointStore, ChecksumMode, Client, Error, PartScheduler, RetryConfig, Transport,
    UploadOutcome, UploadRequest,
};

/// The runtime's worker threads: the work is waiting on the network, and the schedulers bound how
/// many parts are in flight, so a couple of threads keep any number of them moving.
const WORKER_THREADS: usize = 2;

/// Uploads sources to OSS, resumably, blocking the calling thread until each upload ends. Built by
/// [`Uploader::builder`]; cloning is cheap, and the clones share one runtime, shut down when the
/// last of them is dropped.
///
/// ```no_run
/// use ossup::blocking::Uploader;
/// use ossup::{Credentials, FileSource, Parallel, UploadRequest};
///
/// fn main() -> Result<(), ossup::Error> {
///     let uploader = Uploader::builder()
///         .endpoint("http://127.0.0.1:9000")?
///         .credentials(Credentials::new("test-ak", "test-sk"))
///         .region("cn-hangzhou")
///         .scheduler(Parallel::new(4))
///         .build()?;
///
///     let outcome = uploader
///         .upload(UploadRequest::new(FileSource::open("backup.tar")?, "bucket", "backups/backup.tar"))?;
///     println!("{} bytes, CRC-64 {}", outcome.size, outcome.crc64);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Uploader {
    inner: crate::Uploader,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Uploader")
            .field("inner", &self.inner)
            .field("worker_threads", &WORKER_THREADS)
            .finish()
    }
}

impl Uploader {
    /// A builder, with every setting of [`crate::UploaderBuilder`].
    pub fn builder() -> UploaderBuilder {
        UploaderBuilder::default()
    }

    /// Uploads as `request` says, resuming an earlier run of the same upload, and blocks until the
    /// upload ends. Behaves as [`crate::Uploader::upload`] in every other way.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when called from inside an async
    /// runtime, where [`crate::Uploader`] is the one to use.
    pub fn upload(&self, request: UploadRequest) -> Result<UploadOutcome, Error> {
        refuse_inside_runtime("upload")?;
        let uploader = self.inner.clone();
        // Spawned rather than run on the calling thread, so that the whole upload (its progress
        // sink included) runs on the runtime's threads, as the documentation promises.
        let task = self
            .runtime
            .handle
            .spawn(async move { uploader.upload(request).await });
        match self.runtime.handle.block_on(task) {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(Error::internal(format!(
                "the upload's task on the blocking uploader's runtime ended without an outcome: {join}"
            ))),
        }
    }
}

/// Fails when the calling thread is inside an async runtime, where blocking on the upload would
/// stall the runtime (and tokio would panic).
fn refuse_inside_runtime(what: &str) -> Result<(), Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::config(format!(
            "ossup::blocking::Uploader::{what} was called from inside an async runtime, where it would block the runtime's thread; use the async ossup::Uploader there"
        )));
    }
    Ok(())
}

/// The blocking uploader's runtime, shut down when the last clone of the uploader is dropped.
struct Runtime {
    handle: tokio::runtime::Handle,
    /// Taken out only by `drop`, which chooses how to shut it down.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    fn new() -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("ossup-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::config(format!(
                    "cannot start the blocking uploader's runtime ({WORKER_THREADS} worker threads): {e}; check the process's thread limits"
                ))
            })?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // Dropping a runtime waits for its threads, which tokio forbids inside another runtime
        // (an uploader dropped by an async task); there it is let go without waiting.
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
        } else {
            drop(runtime);
        }
    }
}

/// Builds a blocking [`Uploader`]: the settings of [`crate::UploaderBuilder`], each forwarded to it,
/// and a runtime of the uploader's own.
#[derive(Debug, Default)]
pub struct UploaderBuilder {
    inner: crate::UploaderBuilder,
}

impl From<crate::UploaderBuilder> for UploaderBuilder {
    /// A blocking builder with the settings `inner` already has.
    fn from(inner: crate::UploaderBuilder) -> Self {
        Self { inner }
    }
}

impl UploaderBuilder {
    /// As [`crate::UploaderBuilder::endpoint`].
    pub fn endpoint(self, endpoint: &str) -> Result<Self, Error> {
        self.inner.endpoint(endpoint).map(Self::from)
    }

    /// As [`crate::UploaderBuilder::path_style`].
    pub fn path_style(self, path_style: bool) -> Self {
        self.inner.path_style(path_style).into()
    }

    /// As [`crate::UploaderBuilder::credentials`].
    pub fn credentials(self, credentials: impl CredentialsProvider + 'static) -> Self {
        self.inner.credentials(credentials).into()
    }

    /// As [`crate::UploaderBuilder::signer`].
    pub fn signer(self, signer: impl Signer + 'static) -> Self {
        self.inner.signer(signer).into()
    }

    /// As [`crate::UploaderBuilder::region`].
    pub fn region(self, region: &str) -> Self {
        self.inner.region(region).into()
    }

    /// As [`crate::UploaderBuilder::transport`]. The transport runs on the uploader's runtime.
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        self.inner.transport(transport).into()
    }

    /// As [`crate::UploaderBuilder::retry`].
    pub fn retry(self, retry: RetryConfig) -> Self {
        self.inner.retry(retry).into()
    }

    /// As [`crate::UploaderBuilder::client`].
    pub fn client(self, client: Client) -> Self {
        self.inner.client(client).into()
    }

    /// As [`crate::UploaderBuilder::rate_limit`].
    pub fn rate_limit(self, limiter: crate::RateLimiter) -> Self {
        self.inner.rate_limit(limiter).into()
    }

    /// As [`crate::UploaderBuilder::store`].
    pub fn store(self, store: impl CheckpointStore + 'static) -> Self {
        self.inner.store(store).into()
    }

    /// As [`crate::UploaderBuilder::scheduler`].
    pub fn scheduler(self, scheduler: impl PartScheduler + 'static) -> Self {
        self.inner.scheduler(scheduler).into()
    }

    /// As [`crate::UploaderBuilder::part_size`].
    pub fn part_size(self, part_size: u64) -> Self {
        self.inner.part_size(part_size).into()
    }

    /// As [`crate::UploaderBuilder::multipart_threshold`].
    pub fn multipart_threshold(self, threshold: u64) -> Self {
        self.inner.multipart_threshold(threshold).into()
    }

    /// As [`crate::UploaderBuilder::checksum_mode`].
    pub fn checksum_mode(self, mode: ChecksumMode) -> Self {
        self.inner.checksum_mode(mode).into()
    }

    /// The uploader, with its runtime started.
    pub fn build(self) -> Result<Uploader, Error> {
        let runtime = Runtime::new()?;
        // Built inside the runtime, for transports that take the current runtime's handle when
        // they are made.
        let inner = {
            let _entered = runtime.handle.enter();
            self.inner.build()?
        };
        Ok(Uploader {
            inner,
            runtime: Arc::new(runtime),
        })
    }
}
