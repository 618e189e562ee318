//! End-to-end uploads through the hyper transport against the in-process mock server.

use crate::common::*;
use ossup::{BytesSource, FileSource, Parallel, Sequential, UploadMethod, UploadRequest};

#[tokio::test]
async fn a_file_upload_in_parallel_parts_stores_the_exact_bytes() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(1_000_000, 1);
    let path = dir.path().join("source.bin");
    std::fs::write(&path, &bytes).unwrap();

    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let events = Events::default();
    let outcome = uploader
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "dir/source.bin")
                .progress(events.sink()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.method, UploadMethod::Multipart);
    assert_eq!(outcome.parts, 10);
    assert_eq!(outcome.bytes_sent, bytes.len() as u64);
    assert_object_is(uploader.client(), "dir/source.bin", &bytes).await;
    let transferred = events.transferred();
    assert_eq!(transferred.last(), Some(&(bytes.len() as u64)));
    assert!(transferred.windows(2).all(|w| w[0] <= w[1]));
    server.shutdown().await;
}

#[tokio::test]
async fn sequential_and_parallel_give_identical_objects() {
    let server = mock().await;
    let bytes = data(750_000, 2);
    let sequential = builder(&server.endpoint())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let parallel = builder(&server.endpoint())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    let a = sequential
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "seq"),
            BUCKET,
            "seq",
        ))
        .await
        .unwrap();
    let b = parallel
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "par"),
            BUCKET,
            "par",
        ))
        .await
        .unwrap();
    assert_eq!(a.crc64, b.crc64);
    assert_eq!(a.etag, b.etag);
    assert_object_is(sequential.client(), "seq", &bytes).await;
    assert_object_is(parallel.client(), "par", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn small_and_empty_sources_go_through_put_object() {
    let server = mock().await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    for (key, len) in [("empty", 0usize), ("small", 5000)] {
        let bytes = data(len, 3);
        let outcome = uploader
            .upload(UploadRequest::new(
                BytesSource::new(bytes.clone(), key),
                BUCKET,
                key,
            ))
            .await
            .unwrap();
        assert_eq!(outcome.method, UploadMethod::PutObject);
        assert_object_is(uploader.client(), key, &bytes).await;
    }
    server.shutdown().await;
}
