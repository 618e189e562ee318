//! Integrity: every part and the whole object are checked against the source; a server that
//! reports other checksums stops the upload instead of producing a wrong object.

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::{Api, ErrorCode};
use ossup::{
    BytesSource, CancellationToken, CheckpointStore, ChecksumMode, ErrorKind, MemoryStore, Notice,
    Sequential, UploadIdentity, UploadRequest,
};

fn source(bytes: &[u8], id: &str) -> BytesSource {
    BytesSource::new(bytes.to_vec(), id)
}

#[tokio::test]
async fn a_wrong_part_crc_from_the_server_is_caught() {
    let server = mock().await;
    let bytes = data(500_000, 20);
    let faulty = Faulty::new();
    faulty.rule(
        Rule::new(
            Api::UploadPart,
            Action::SetHeader("x-oss-hash-crc64ecma", "12345".into()),
        )
        .part(2),
    );
    let store = MemoryStore::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            source(&bytes, "bad-crc"),
            BUCKET,
            "bad-crc",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(err.part(), Some(2));
    assert!(err.to_string().contains("CRC-64"), "{err}");
    assert_eq!(faulty.count(Api::CompleteMultipartUpload), 0);
    let identity = UploadIdentity::new("bad-crc", BUCKET, "bad-crc", PART);
    assert!(
        store.load(&identity).await.unwrap().is_some(),
        "checkpoint kept"
    );
    assert!(
        uploader
            .client()
            .head_object(BUCKET, "bad-crc")
            .await
            .unwrap()
            .is_none()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_part_etag_from_the_server_is_caught() {
    let server = mock().await;
    let bytes = data(500_000, 21);
    let faulty = Faulty::new();
    faulty.rule(
        Rule::new(
            Api::UploadPart,
            Action::SetHeader("etag", "\"00000000000000000000000000000000\"".into()),
        )
        .part(4),
    );
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            source(&bytes, "bad-etag"),
            BUCKET,
            "bad-etag",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(err.part(), Some(4));
    assert!(err.to_string().contains("ETag"), "{err}");
    assert_eq!(faulty.count(Api::CompleteMultipartUpload), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_object_crc_at_complete_is_caught() {
    let server = mock().await;
    let bytes = data(500_000, 22);
    let faulty = Faulty::new();
    faulty.rule(Rule::new(
        Api::CompleteMultipartUpload,
        Action::SetHeader("x-oss-hash-crc64ecma", "1".into()),
    ));
    let store = MemoryStore::new();
    let uploader = builder_with(&server.endpoint(), faulty)
        .store(store.clone())
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            source(&bytes, "bad-object"),
            BUCKET,
            "bad-object",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("must not be trusted"), "{err}");
    let identity = UploadIdentity::new("bad-object", BUCKET, "bad-object", PART);
    assert!(
        store.load(&identity).await.unwrap().is_some(),
        "checkpoint kept for a rerun"
    );

    // Running again settles it: the upload is gone, and HeadObject shows the object the server
    // really stored matches the source (only the header was wrong).
    let outcome = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap()
        .upload(UploadRequest::new(
            source(&bytes, "bad-object"),
            BUCKET,
            "bad-object",
        ))
        .await
        .unwrap();
    assert!(matches!(
        outcome.notices[..],
        [Notice::CompleteSettledByHead { .. }]
    ));
    assert_eq!(outcome.bytes_sent, 0);
    assert_object_is(uploader.client(), "bad-object", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn crc64_only_mode_sends_no_content_md5_and_still_catches_a_wrong_crc() {
    let server = mock().await;
    let bytes = data(450_000, 23);
    let faulty = Faulty::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .checksum_mode(ChecksumMode::Crc64Only)
        .build()
        .unwrap();
    uploader
        .upload(UploadRequest::new(
            source(&bytes, "crc-only"),
            BUCKET,
            "crc-only",
        ))
        .await
        .unwrap();
    let parts: Vec<_> = faulty
        .seen()
        .into_iter()
        .filter(|s| s.api == Some(Api::UploadPart))
        .collect();
    assert_eq!(parts.len(), 5);
    assert!(parts.iter().all(|s| !s.content_md5));
    assert_object_is(uploader.client(), "crc-only", &bytes).await;

    faulty.rule(
        Rule::new(
            Api::UploadPart,
            Action::SetHeader("x-oss-hash-crc64ecma", "7".into()),
        )
        .part(1),
    );
    let err = uploader
        .upload(UploadRequest::new(
            source(&bytes, "crc-only-2"),
            BUCKET,
            "crc-only-2",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn crc64_only_mode_resumes_by_the_listed_crc() {
    let server = mock().await;
    let bytes = data(800_000, 24);
    let store = MemoryStore::new();
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(3));
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .scheduler(Sequential)
        .checksum_mode(ChecksumMode::Crc64Only)
        .build()
        .unwrap();
    uploader
        .upload(
            UploadRequest::new(source(&bytes, "crc-resume"), BUCKET, "crc-resume").cancel(crash),
        )
        .await
        .unwrap_err();
    let identity = UploadIdentity::new("crc-resume", BUCKET, "crc-resume", PART);
    let checkpoint = store.load(&identity).await.unwrap().unwrap();
    assert!(checkpoint.parts.values().all(|p| p.md5.is_none()));

    faulty.clear();
    faulty.take_seen();
    let outcome = uploader
        .upload(UploadRequest::new(
            source(&bytes, "crc-resume"),
            BUCKET,
            "crc-resume",
        ))
        .await
        .unwrap();
    // Parts 1-3 recorded, part 4 forwarded but unacknowledged: none is sent again.
    assert_eq!(outcome.parts_reused, 4);
    assert_eq!(faulty.parts_sent(), vec![5, 6, 7, 8]);
    assert_object_is(uploader.client(), "crc-resume", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_complete_answer_is_settled_by_head_object() {
    let server = mock().await;
    let bytes = data(400_000, 25);
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::CompleteMultipartUpload, Action::LoseAnswer).times(1));
    let store = MemoryStore::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = uploader
        .upload(UploadRequest::new(
            source(&bytes, "lost-complete"),
            BUCKET,
            "lost-complete",
        ))
        .await
        .unwrap();
    assert_eq!(faulty.count(Api::CompleteMultipartUpload), 2);
    assert!(matches!(
        outcome.notices[..],
        [Notice::CompleteSettledByHead { .. }]
    ));
    let identity = UploadIdentity::new("lost-complete", BUCKET, "lost-complete", PART);
    assert!(
        store.load(&identity).await.unwrap().is_none(),
        "checkpoint removed"
    );
    assert_object_is(uploader.client(), "lost-complete", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_vanished_upload_at_complete_without_a_matching_object_is_an_error() {
    let server = mock().await;
    let bytes = data(400_000, 26);
    let faulty = Faulty::new();
    faulty.rule(Rule::new(
        Api::CompleteMultipartUpload,
        Action::Answer(ErrorCode::NoSuchUpload),
    ));
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            source(&bytes, "vanished"),
            BUCKET,
            "vanished",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("absent"), "{err}");
    assert_eq!(faulty.count(Api::HeadObject), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_run_killed_while_completing_finds_the_object_complete_and_sends_nothing() {
    let server = mock().await;
    let bytes = data(400_000, 27);
    let store = MemoryStore::new();
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(
        Api::CompleteMultipartUpload,
        Action::ForwardThenCrash(crash.clone()),
    ));
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let source = || BytesSource::new(bytes.clone(), "killed-completing");
    let err = uploader
        .upload(UploadRequest::new(source(), BUCKET, "killed-completing").cancel(crash))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);

    faulty.clear();
    faulty.take_seen();
    let outcome = uploader
        .upload(UploadRequest::new(source(), BUCKET, "killed-completing"))
        .await
        .unwrap();
    assert_eq!(outcome.bytes_sent, 0);
    assert_eq!(outcome.bytes_reused, bytes.len() as u64);
    assert!(matches!(
        outcome.notices[..],
        [Notice::CompleteSettledByHead { .. }]
    ));
    assert_eq!(faulty.count(Api::UploadPart), 0);
    assert_eq!(faulty.count(Api::InitiateMultipartUpload), 0);
    let identity = UploadIdentity::new("killed-completing", BUCKET, "killed-completing", PART);
    assert!(store.load(&identity).await.unwrap().is_none());
    assert_object_is(uploader.client(), "killed-completing", &bytes).await;
    server.shutdown().await;
}
