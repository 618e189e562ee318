//! The future of `Uploader::upload` is `Send`, so an upload can run as a task of its own on a
//! multi-threaded runtime (`tokio::spawn(async move { uploader.upload(request).await })`).

use ossup::{BytesSource, Parallel, UploadMethod, UploadRequest, Uploader};

use crate::common::{BUCKET, PART, assert_object_is, builder, data, mock};

fn assert_send<T: Send>(_: T) {}

/// Compiles only while the upload future is `Send`; never run.
#[allow(dead_code)]
fn the_upload_future_is_send(uploader: Uploader, request: UploadRequest) {
    assert_send(async move { uploader.upload(request).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_runs_as_a_spawned_task_and_stores_the_exact_bytes() {
    let server = mock().await;
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    let bytes = data(5 * PART as usize + 321, 71);
    let request = UploadRequest::new(
        BytesSource::new(bytes.clone(), "spawned:v1"),
        BUCKET,
        "spawned.bin",
    );

    let task = tokio::spawn({
        let uploader = uploader.clone();
        async move { uploader.upload(request).await }
    });
    let outcome = task
        .await
        .expect("the upload task ran")
        .expect("upload succeeds");

    assert_eq!(outcome.method, UploadMethod::Multipart);
    assert_eq!(outcome.parts, 6);
    assert_eq!(outcome.size, bytes.len() as u64);
    assert_object_is(uploader.client(), "spawned.bin", &bytes).await;
}
