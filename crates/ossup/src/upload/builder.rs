//! Building an [`Uploader`]: the client's settings and the engine's defaults, checked once.

use std::sync::Arc;

use ossup_sign::{CredentialsProvider, Signer};

use super::plan::check_threshold;
use super::{ChecksumMode, Uploader};
use crate::client::ClientBuilder;
use crate::plan::{DEFAULT_PART_SIZE, part_size_for};
use crate::store::MemoryStore;
use crate::{CheckpointStore, Client, Error, Parallel, PartScheduler, RetryConfig, Transport};

/// The shortest lease [`UploaderBuilder::lease`] takes: a renewal every third of it must reach the
/// store in time.
const MIN_LEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds an [`Uploader`]: the client's settings (endpoint, credentials, signer, transport, retry)
/// and the engine's (store, scheduler, part size, threshold, checksums).
#[derive(Debug, Default)]
pub struct UploaderBuilder {
    client: ClientBuilder,
    prebuilt: Option<Client>,
    store: Option<Arc<dyn CheckpointStore>>,
    cooperative: Option<Arc<dyn crate::store::CooperativeStore>>,
    lease: Option<std::time::Duration>,
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

    /// The credentials (static, STS, or any provider; an `Arc` of one shares it).
    pub fn credentials(mut self, credentials: impl CredentialsProvider + 'static) -> Self {
        self.client = self.client.credentials(credentials);
        self
    }

    /// The signer; V4 with the endpoint's region by default.
    pub fn signer(mut self, signer: impl Signer + 'static) -> Self {
        self.client = self.client.signer(signer);
        self
    }

    /// Signs with V4 for `region` (e.g. `"cn-hangzhou"`); see [`ClientBuilder::region`].
    pub fn region(mut self, region: &str) -> Self {
        self.client = self.client.region(region);
        self
    }

    /// The transport; with the default feature `hyper`, an
    /// [`HyperTransport`](crate::HyperTransport) when not set (see [`ClientBuilder::transport`]).
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.client = self.client.transport(transport);
        self
    }

    /// Retries, backoff and timeouts.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.retry(retry);
        self
    }

    /// Caps the bytes per second on the wire of every part (and every file of a batch); see
    /// [`ClientBuilder::rate_limit`].
    pub fn rate_limit(mut self, limiter: crate::RateLimiter) -> Self {
        self.client = self.client.rate_limit(limiter);
        self
    }

    /// Uses an already built client instead of the settings above.
    pub fn client(mut self, client: Client) -> Self {
        self.prebuilt = Some(client);
        self
    }

    /// Where checkpoints live; a [`MemoryStore`] (no resume across processes) by default. An
    /// `Arc` of a store shares it.
    pub fn store(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Shares each file's multipart upload with the other workers (processes, hosts) that upload the
    /// same file to the same key through the same `store`: each part is claimed with a lease
    /// before it is sent, so no part goes twice while its sender lives, and exactly one worker
    /// completes the upload (the others check the object and succeed too). `store` becomes the
    /// checkpoint store as well. A stream is not shared; small files (one PutObject) are sent by
    /// every worker. See `docs/checkpoint-stores.md` for the cooperation contract.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let store = ossup_sqlite::SqliteStore::open(dir.path().join("shared.db")).await?;
    /// let uploader = ossup::Uploader::builder()
    ///     .endpoint("http://127.0.0.1:9000")?
    ///     .credentials(ossup::Credentials::new("test-ak", "test-sk"))
    ///     .region("cn-hangzhou")
    ///     .cooperative_store(store)
    ///     .build()?;
    /// # drop(uploader); Ok(()) }
    /// ```
    pub fn cooperative_store(
        mut self,
        store: impl crate::store::CooperativeStore + 'static,
    ) -> Self {
        let store = Arc::new(store);
        self.store = Some(store.clone());
        self.cooperative = Some(store);
        self
    }

    /// How long a cooperating worker's claim on a part lasts unless renewed (30 s unless set; the
    /// worker renews it every third of it while the part is in flight). A worker that dies holds
    /// its parts this long before another takes them over, so a shorter lease hands a dead
    /// worker's parts on sooner, at the price of more renewals and of takeovers of parts whose
    /// worker was only slow to renew (a part may then be sent twice). At least 1 s; used only with
    /// [`cooperative_store`](Self::cooperative_store).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let store = ossup_sqlite::SqliteStore::open(dir.path().join("shared.db")).await?;
    /// let uploader = ossup::Uploader::builder()
    ///     .endpoint("http://127.0.0.1:9000")?
    ///     .credentials(ossup::Credentials::new("test-ak", "test-sk"))
    ///     .region("cn-hangzhou")
    ///     .cooperative_store(store)
    ///     .lease(std::time::Duration::from_secs(5))
    ///     .build()?;
    /// # drop(uploader); Ok(()) }
    /// ```
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Which parts go when; [`Parallel::new(4)`](Parallel::new) by default. An `Arc` of a
    /// scheduler shares it.
    pub fn scheduler(mut self, scheduler: impl PartScheduler + 'static) -> Self {
        self.scheduler = Some(Arc::new(scheduler));
        self
    }

    /// The default part size of uploads (8 MiB unless set); see [`UploadRequest::part_size`](crate::UploadRequest::part_size).
    pub fn part_size(mut self, part_size: u64) -> Self {
        self.part_size = Some(part_size);
        self
    }

    /// The default multipart threshold; see [`UploadRequest::multipart_threshold`](crate::UploadRequest::multipart_threshold).
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
        let lease = self.lease.unwrap_or(super::cooperate::DEFAULT_LEASE);
        if lease < MIN_LEASE {
            return Err(Error::config(format!(
                "a lease of {lease:?} is too short to renew in time: give at least {MIN_LEASE:?}"
            )));
        }
        Ok(Uploader {
            client,
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn CheckpointStore>),
            cooperative: self.cooperative,
            lease,
            scheduler: self
                .scheduler
                .unwrap_or_else(|| Arc::new(Parallel::new(4)) as Arc<dyn PartScheduler>),
            part_size,
            multipart_threshold: self.multipart_threshold,
            checksum_mode: self.checksum_mode,
        })
    }
}
