//! Cancellation and bounded memory.

use std::time::Duration;

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::Api;
use ossup::{
    BytesSource, CancellationToken, CheckpointStore, Error, ErrorKind, MemoryStore, OnCancel,
    Parallel, PartRunner, PartScheduler, PartSpec, ProgressEvent, Sequential, UploadIdentity,
    UploadRequest,
};

/// Claims a concurrency of 2 but starts every part at once.
#[derive(Debug)]
struct Greedy;

#[async_trait::async_trait]
impl PartScheduler for Greedy {
    fn concurrency(&self) -> usize {
        2
    }
    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        futures::future::try_join_all(parts.into_iter().map(|p| runner.run_part(p))).await?;
        Ok(())
    }
}

#[tokio::test]
async fn part_buffers_never_exceed_the_concurrency_plus_one() {
    let server = mock().await;
    let bytes = data(1_000_000, 40);
    let greedy = builder(&server.endpoint())
        .scheduler(Greedy)
        .build()
        .unwrap();
    let outcome = greedy
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "greedy"),
            BUCKET,
            "greedy",
        ))
        .await
        .unwrap();
    assert!(
        outcome.peak_part_buffers <= 3,
        "{} buffers",
        outcome.peak_part_buffers
    );
    assert_object_is(greedy.client(), "greedy", &bytes).await;

    let parallel = builder(&server.endpoint())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let outcome = parallel
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "par"),
            BUCKET,
            "par",
        ))
        .await
        .unwrap();
    assert!(
        outcome.peak_part_buffers <= 5,
        "{} buffers",
        outcome.peak_part_buffers
    );
    server.shutdown().await;
}

/// An upload whose third part never gets an answer, cancelled when the second part is done.
async fn cancelled_upload(
    endpoint: &str,
    store: &MemoryStore,
    bytes: &[u8],
    key: &str,
    on_cancel: OnCancel,
) -> Error {
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::Hang).skip(2));
    let uploader = builder_with(endpoint, faulty)
        .store(store.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let trigger = token.clone();
    let sink = move |e: &ProgressEvent| {
        if matches!(e, ProgressEvent::PartDone { number: 2, .. }) {
            trigger.cancel();
        }
    };
    let request = UploadRequest::new(
        BytesSource::new(bytes.to_vec(), key.to_owned()),
        BUCKET,
        key,
    )
    .progress(sink)
    .cancel(token)
    .on_cancel(on_cancel);
    // A part that never answers must not keep a cancelled upload running.
    tokio::time::timeout(Duration::from_secs(20), uploader.upload(request))
        .await
        .expect("cancellation stopped the part in flight")
        .unwrap_err()
}

#[tokio::test]
async fn cancelling_keeps_the_checkpoint_and_a_rerun_resumes() {
    let server = mock().await;
    let bytes = data(600_000, 41);
    let store = MemoryStore::new();
    let err = cancelled_upload(
        &server.endpoint(),
        &store,
        &bytes,
        "keep",
        OnCancel::KeepCheckpoint,
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(err.to_string().contains("resume"), "{err}");
    let identity = UploadIdentity::new("keep", BUCKET, "keep", PART);
    let checkpoint = store
        .load(&identity)
        .await
        .unwrap()
        .expect("checkpoint kept");
    assert_eq!(checkpoint.parts.len(), 2);

    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "keep"),
            BUCKET,
            "keep",
        ))
        .await
        .unwrap();
    assert!(outcome.resumed);
    assert_eq!(outcome.parts_reused, 2);
    assert_object_is(uploader.client(), "keep", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn cancelling_with_abort_removes_the_upload_and_the_checkpoint() {
    let server = mock().await;
    let bytes = data(600_000, 42);
    let store = MemoryStore::new();
    let err = cancelled_upload(
        &server.endpoint(),
        &store,
        &bytes,
        "abort",
        OnCancel::AbortUpload,
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(err.to_string().contains("aborted"), "{err}");
    let identity = UploadIdentity::new("abort", BUCKET, "abort", PART);
    assert!(store.load(&identity).await.unwrap().is_none());
    let client = client(&server.endpoint());
    assert!(
        client
            .list_multipart_uploads(BUCKET, Some("abort"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(client.head_object(BUCKET, "abort").await.unwrap().is_none());
    server.shutdown().await;
}
