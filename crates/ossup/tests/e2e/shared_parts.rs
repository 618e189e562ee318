//! Every pluggable part of the engine can be handed over as an `Arc` and kept by the caller: store,
//! scheduler, signer, credentials, transport and progress sink. The blanket impls forward every
//! method, so the engine gets the shared part's behaviour, its lock included.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use ossup::{
    BytesSource, CheckpointStore, Error, ErrorKind, FileStore, Parallel, PartRunner, PartScheduler,
    PartSpec, ProgressEvent, UploadIdentity, UploadRequest, Uploader,
};
use ossup::{Credentials, CredentialsError, CredentialsProvider, HyperTransport, V4Signer};
use ossup_test_support::fast_retry;

/// The mock's credentials, counting how often they are asked for.
#[derive(Debug, Default)]
struct CountedCredentials {
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl CredentialsProvider for CountedCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(Credentials::new("test-ak", "test-sk"))
    }
}

/// Two parts at once, counting the runs and the parts they were given.
#[derive(Debug, Default)]
struct CountedScheduler {
    runs: AtomicUsize,
    parts: AtomicUsize,
}

#[async_trait::async_trait]
impl PartScheduler for CountedScheduler {
    fn concurrency(&self) -> usize {
        2
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.parts.fetch_add(parts.len(), Ordering::SeqCst);
        Parallel::new(2).run(parts, runner).await
    }
}

#[tokio::test]
async fn an_uploader_built_from_shared_parts_uses_each_of_them() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let credentials = Arc::new(CountedCredentials::default());
    let scheduler = Arc::new(CountedScheduler::default());
    let events = Events::default();
    let sink = Arc::new(events.sink());
    let uploader = Uploader::builder()
        .endpoint(&server.endpoint())
        .unwrap()
        .credentials(credentials.clone())
        .signer(Arc::new(V4Signer::new("cn-hangzhou")))
        .transport(Arc::new(HyperTransport::new()))
        .retry(fast_retry())
        .part_size(PART)
        .store(store.clone())
        .scheduler(scheduler.clone())
        .build()
        .unwrap();
    let bytes = data(600_000, 51);
    let request =
        || UploadRequest::new(BytesSource::new(bytes.clone(), "shared"), BUCKET, "shared");

    // The lock goes through the `Arc` to the file store: held here, it keeps the upload off.
    let identity = UploadIdentity::new("shared", BUCKET, "shared", PART);
    let held = store.lock(&identity).await.unwrap();
    let err = uploader.upload(request()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Checkpoint, "{err}");
    assert!(format!("{err:?}").contains("InUse"), "{err:?}");
    drop(held);

    let outcome = uploader
        .upload(request().progress(sink.clone()))
        .await
        .unwrap();
    assert!(!outcome.resumed);
    assert_object_is(uploader.client(), "shared", &bytes).await;
    assert!(credentials.asked.load(Ordering::SeqCst) > 0);
    assert_eq!(scheduler.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        scheduler.parts.load(Ordering::SeqCst),
        600_000usize.div_ceil(PART as usize)
    );
    assert!(
        events
            .all()
            .iter()
            .any(|event| matches!(event, ProgressEvent::Completed { .. })),
        "{:?}",
        events.all()
    );
    // A completed upload's checkpoint is removed, through the `Arc`, from the store kept here.
    assert_eq!(store.list().await.unwrap(), Vec::new());
    server.shutdown().await;
}
