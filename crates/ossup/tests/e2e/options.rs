//! Object options, part sizes and the PutObject threshold, end to end.

use crate::common::faults::Faulty;
use crate::common::*;
use ossup::Api;
use ossup::Credentials;
use ossup::{
    BytesSource, ErrorKind, FileSource, ObjectAcl, ObjectOptions, StorageClass, UploadMethod,
    UploadRequest,
};

#[tokio::test]
async fn object_options_reach_the_object() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let bytes = data(300_000, 50);
    std::fs::write(&path, &bytes).unwrap();
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .build()
        .unwrap();
    uploader
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "report").options(
                ObjectOptions::default()
                    .meta("Owner", "alice")
                    .acl(ObjectAcl::Private)
                    .storage_class(StorageClass::IA),
            ),
        )
        .await
        .unwrap();
    let head = uploader
        .client()
        .head_object(BUCKET, "report")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        head.metadata.get("owner").map(String::as_str),
        Some("alice")
    );
    let initiate = faulty
        .seen()
        .into_iter()
        .find(|s| s.api == Some(Api::InitiateMultipartUpload))
        .unwrap();
    assert_eq!(initiate.headers["x-oss-object-acl"], "private");
    assert_eq!(initiate.headers["x-oss-storage-class"], "IA");
    assert_object_is(uploader.client(), "report", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn forbid_overwrite_refuses_an_existing_object() {
    let server = mock().await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let first = data(300_000, 51);
    let options = ObjectOptions::default().forbid_overwrite(true);
    uploader
        .upload(
            UploadRequest::new(BytesSource::new(first.clone(), "a"), BUCKET, "kept")
                .options(options.clone()),
        )
        .await
        .unwrap();
    for len in [300_000, 1000] {
        let err = uploader
            .upload(
                UploadRequest::new(BytesSource::new(data(len, 52), "b"), BUCKET, "kept")
                    .options(options.clone()),
            )
            .await
            .unwrap_err();
        assert!(
            err.is_service_code(ossup::ErrorCode::FileAlreadyExists),
            "{err}"
        );
    }
    assert_object_is(uploader.client(), "kept", &first).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_sts_token_is_sent_and_signed_on_every_request() {
    let server = mock().await;
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .credentials(Credentials::new("test-ak", "test-sk").with_security_token("sts-token"))
        .build()
        .unwrap();
    let bytes = data(250_000, 53);
    uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "sts"),
            BUCKET,
            "sts",
        ))
        .await
        .unwrap();
    let seen = faulty.seen();
    assert!(seen.len() >= 5);
    assert!(
        seen.iter()
            .all(|s| s.headers["x-oss-security-token"] == "sts-token")
    );
    assert_object_is(uploader.client(), "sts", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_multipart_threshold_decides_between_put_object_and_parts() {
    let server = mock().await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let bytes = data(300_000, 54);
    let put = uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes.clone(), "t1"), BUCKET, "t1")
                .multipart_threshold(1 << 20),
        )
        .await
        .unwrap();
    assert_eq!(put.method, UploadMethod::PutObject);
    let small = data(5000, 55);
    let parts = uploader
        .upload(
            UploadRequest::new(BytesSource::new(small.clone(), "t2"), BUCKET, "t2")
                .multipart_threshold(0),
        )
        .await
        .unwrap();
    assert_eq!((parts.method, parts.parts), (UploadMethod::Multipart, 1));
    assert_object_is(uploader.client(), "t1", &bytes).await;
    assert_object_is(uploader.client(), "t2", &small).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_part_size_outside_the_oss_limits_is_refused_before_any_request() {
    let server = mock().await;
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .build()
        .unwrap();
    for bad in [1000, 6 << 30] {
        let err = uploader
            .upload(
                UploadRequest::new(BytesSource::new(data(300_000, 56), "p"), BUCKET, "p")
                    .part_size(bad),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("100 KiB to 5 GiB"), "{err}");
    }
    assert!(faulty.seen().is_empty());
    server.shutdown().await;
}
