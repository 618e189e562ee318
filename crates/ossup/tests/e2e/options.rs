//! Object options, part sizes and the PutObject threshold, end to end.

use std::sync::{Arc, Mutex};

use crate::common::faults::Faulty;
use crate::common::*;
use bytes::Bytes;
use ossup::{Api, Credentials, HyperTransport};
use ossup::{
    BytesSource, DataEncryption, ErrorKind, FileSource, ObjectAcl, ObjectOptions, ResponseBody,
    ServerSideEncryption, StorageClass, Transport, UploadMethod, UploadRequest,
};

/// A transport that keeps the headers of the last HeadObject answer, which carry more than
/// [`ossup::ObjectHead`] reads.
#[derive(Debug, Clone, Default)]
struct HeadHeaders {
    inner: HyperTransport,
    last: Arc<Mutex<Option<http::HeaderMap>>>,
}

#[async_trait::async_trait]
impl Transport for HeadHeaders {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, ossup::Error> {
        let is_head = request.extensions().get::<Api>() == Some(&Api::HeadObject);
        let response = self.inner.send(request).await?;
        if is_head {
            *self.last.lock().unwrap() = Some(response.headers().clone());
        }
        Ok(response)
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }
}

/// Every option added after the first checkpoint format, set.
fn every_newer_option() -> ObjectOptions {
    ObjectOptions::default()
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"r.bin\"")
        .content_encoding("identity")
        .expires("Wed, 21 Oct 2026 07:28:00 GMT")
        .server_side_encryption(ServerSideEncryption::Kms)
        .sse_kms_key_id("key-1")
        .sse_data_encryption(DataEncryption::Sm4)
        .tag("team", "data eng")
        .tag("tier", "1")
        .header("x-oss-request-payer", "requester")
}

#[tokio::test]
async fn every_newer_option_reaches_the_object_by_multipart_and_by_put_object() {
    let server = mock().await;
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .build()
        .unwrap();
    let heads = HeadHeaders::default();
    let checker = ossup::Client::builder()
        .endpoint(&server.endpoint())
        .unwrap()
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(ossup_sign::V4Signer::new("cn-hangzhou"))
        .transport(heads.clone())
        .build()
        .unwrap();
    for (key, len, threshold, api) in [
        ("multi", 300_000, 0, Api::InitiateMultipartUpload),
        ("single", 5_000, 1 << 20, Api::PutObject),
    ] {
        let bytes = data(len, 57);
        uploader
            .upload(
                UploadRequest::new(BytesSource::new(bytes.clone(), key), BUCKET, key)
                    .multipart_threshold(threshold)
                    .options(every_newer_option()),
            )
            .await
            .unwrap();
        let sent = faulty
            .take_seen()
            .into_iter()
            .find(|s| s.api == Some(api))
            .unwrap();
        assert_eq!(
            sent.headers["x-oss-tagging"], "team=data%20eng&tier=1",
            "{key}"
        );
        assert_eq!(sent.headers["x-oss-request-payer"], "requester", "{key}");
        checker.head_object(BUCKET, key).await.unwrap().unwrap();
        let head = heads.last.lock().unwrap().take().unwrap();
        for (name, value) in [
            ("cache-control", "max-age=60"),
            ("content-disposition", "attachment; filename=\"r.bin\""),
            ("content-encoding", "identity"),
            ("expires", "Wed, 21 Oct 2026 07:28:00 GMT"),
            ("x-oss-server-side-encryption", "KMS"),
            ("x-oss-server-side-encryption-key-id", "key-1"),
            ("x-oss-server-side-data-encryption", "SM4"),
            ("x-oss-tagging-count", "2"),
        ] {
            assert_eq!(head[name], value, "{key}: {name}");
        }
        assert_object_is(uploader.client(), key, &bytes).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_newer_options_are_refused_before_any_request() {
    let server = mock().await;
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .build()
        .unwrap();
    for (options, says) in [
        (
            ObjectOptions::default().sse_kms_key_id("key-1"),
            "needs server-side encryption KMS",
        ),
        (
            ObjectOptions::default().header("x-oss-security-token", "t"),
            "Credentials::with_security_token",
        ),
        (
            (0..11).fold(ObjectOptions::default(), |o, i| o.tag(format!("k{i}"), "v")),
            "at most 10",
        ),
    ] {
        let err = uploader
            .upload(
                UploadRequest::new(BytesSource::new(data(1000, 58), "bad"), BUCKET, "bad")
                    .options(options),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(faulty.seen().is_empty());
    server.shutdown().await;
}

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
