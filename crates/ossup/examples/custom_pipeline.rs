//! Composes the engine from parts of your own: a checkpoint store that audits every write on top of
//! the stock `FileStore`, and a scheduler that caps the upload's bandwidth, with the stock hyper
//! transport. It uploads a generated file to an in-process mock server and prints the outcome.
//!
//! Run with `cargo run -p ossup --example custom_pipeline`. To upload to another endpoint, set
//! `OSS_ENDPOINT` (and `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET`, `OSS_REGION`, `OSS_BUCKET`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use ossup::{
    Checkpoint, CheckpointStore, Error, FileSource, FileStore, PartRecord, PartRunner,
    PartScheduler, PartSpec, ProgressEvent, StoreError, StoreLock, UploadIdentity, UploadRequest,
    Uploader,
};
use ossup::{Credentials, V4Signer};

/// A store that counts and logs every write, then hands it to the store it wraps.
#[derive(Debug)]
struct AuditedStore<S> {
    inner: S,
    writes: AtomicU64,
}

#[async_trait::async_trait]
impl<S: CheckpointStore> CheckpointStore for AuditedStore<S> {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.load(identity).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "audit: save upload {} of {}",
            checkpoint.upload_id, checkpoint.identity
        );
        self.inner.save(checkpoint).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "audit: part {} ({} bytes, crc64 {})",
            part.number, part.size, part.crc64
        );
        self.inner.record_part(identity, part).await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        // The engine records parts in batches: forwarding the batch whole keeps the inner store's
        // one flush per batch, where calling `record_part` for each would cost one per part.
        self.writes.fetch_add(1, Ordering::Relaxed);
        let numbers: Vec<u32> = parts.iter().map(|part| part.number).collect();
        eprintln!("audit: parts {numbers:?}");
        self.inner.record_parts(identity, parts).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        eprintln!("audit: remove {identity}");
        self.inner.remove(identity).await
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        self.inner.list().await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        self.inner.lock(identity).await
    }
}

/// Up to `concurrency` parts at once, started no faster than `bytes_per_second` allows.
#[derive(Debug)]
struct RateLimited {
    concurrency: usize,
    bytes_per_second: u64,
    started: Mutex<Option<(Instant, u64)>>,
}

impl RateLimited {
    fn new(concurrency: usize, bytes_per_second: u64) -> Self {
        Self {
            concurrency,
            bytes_per_second,
            started: Mutex::new(None),
        }
    }

    /// Waits until starting `bytes` more keeps the average under the cap.
    async fn admit(&self, bytes: u64) {
        let wait = {
            let mut started = self
                .started
                .lock()
                .expect("the pacing lock is never poisoned");
            let (since, admitted) = started.get_or_insert((Instant::now(), 0));
            *admitted += bytes;
            let due = Duration::from_secs_f64(*admitted as f64 / self.bytes_per_second as f64);
            due.saturating_sub(since.elapsed())
        };
        tokio::time::sleep(wait).await;
    }
}

#[async_trait::async_trait]
impl PartScheduler for RateLimited {
    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        let mut pending = parts.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some(part) = pending.next() else { break };
                in_flight.push(async move {
                    self.admit(part.size).await;
                    runner.run_part(part).await
                });
            }
            match in_flight.next().await {
                Some(result) => result?,
                None => return Ok(()),
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (endpoint, bucket, _server) = match std::env::var("OSS_ENDPOINT") {
        Ok(endpoint) => (endpoint, std::env::var("OSS_BUCKET")?, None),
        Err(_) => {
            let server =
                oss_mock::MockServer::start(oss_mock::MockConfig::default().with_bucket("bucket"))
                    .await?;
            (server.endpoint(), "bucket".to_owned(), Some(server))
        }
    };
    let credentials =
        Credentials::from_env().unwrap_or_else(|_| Credentials::new("test-ak", "test-sk"));
    let region = std::env::var("OSS_REGION").unwrap_or_else(|_| "cn-hangzhou".to_owned());

    let path = dir.path().join("payload.bin");
    std::fs::write(
        &path,
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )?;

    let store = AuditedStore {
        inner: FileStore::open(dir.path().join("checkpoints"))?,
        writes: AtomicU64::new(0),
    };
    let uploader = Uploader::builder()
        .endpoint(&endpoint)?
        .credentials(credentials)
        .signer(V4Signer::new(region))
        .store(store)
        .scheduler(RateLimited::new(3, 20 << 20))
        .part_size(512 << 10)
        .build()?;

    let outcome = uploader
        .upload(
            UploadRequest::new(FileSource::open(&path)?, bucket, "examples/payload.bin").progress(
                |event: &ProgressEvent| {
                    println!(
                        "{}",
                        serde_json::to_string(event).expect("progress events serialize")
                    )
                },
            ),
        )
        .await?;
    println!(
        "uploaded {} bytes in {} parts, CRC-64 {}, ETag {}",
        outcome.size, outcome.parts, outcome.crc64, outcome.etag
    );
    Ok(())
}
