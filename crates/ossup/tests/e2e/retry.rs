//! Retries end to end: transient answers are ridden out, permanent ones stop the upload at once.

use std::time::{Duration, SystemTime};

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::{Api, ErrorCode};
use ossup::{
    BytesSource, CheckpointStore, ErrorKind, MemoryStore, Parallel, ProgressEvent, Sequential,
    UploadIdentity, UploadRequest,
};

#[tokio::test]
async fn a_storm_of_transient_errors_is_ridden_out() {
    let server = mock().await;
    let bytes = data(500_000, 30);
    let faulty = Faulty::new();
    faulty.rule(
        Rule::new(
            Api::InitiateMultipartUpload,
            Action::Answer(ErrorCode::InternalError),
        )
        .times(1),
    );
    for part in 1..=5 {
        faulty.rule(
            Rule::new(
                Api::UploadPart,
                Action::Answer(ErrorCode::ServiceUnavailable),
            )
            .part(part)
            .times(2),
        );
    }
    faulty.rule(
        Rule::new(
            Api::CompleteMultipartUpload,
            Action::Answer(ErrorCode::TooManyRequests),
        )
        .times(1),
    );
    faulty.rule(
        Rule::new(
            Api::CompleteMultipartUpload,
            Action::Answer(ErrorCode::RequestTimeout),
        )
        .times(1),
    );
    let events = Events::default();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes.clone(), "storm"), BUCKET, "storm")
                .progress(events.sink()),
        )
        .await
        .unwrap();
    let retries: Vec<(Option<u32>, Option<String>)> = events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Retrying { part, api, .. } => Some((part, api)),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 1 + 10 + 2, "{retries:?}");
    assert_eq!(retries.iter().filter(|(p, _)| *p == Some(3)).count(), 2);
    assert_eq!(faulty.count(Api::UploadPart), 15);
    assert_object_is(uploader.client(), "storm", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_permanent_error_stops_the_upload_promptly_and_keeps_the_checkpoint() {
    let server = mock().await;
    let bytes = data(2_000_000, 31);
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::Answer(ErrorCode::AccessDenied)).part(3));
    let store = MemoryStore::new();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let source = || BytesSource::new(bytes.clone(), "denied");
    let err = uploader
        .upload(UploadRequest::new(source(), BUCKET, "denied"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(!err.is_retryable());
    let service = err.service_error().unwrap();
    assert_eq!(
        (service.status, service.code.as_str()),
        (403, "AccessDenied")
    );
    assert_eq!(service.request_id, "FAULT-REQUEST");
    assert_eq!(err.part(), Some(3));
    assert_eq!(err.key(), Some("denied"));
    assert!(
        err.to_string()
            .contains("UploadPart of oss://bucket/denied part 3"),
        "{err}"
    );
    assert_eq!(
        faulty.parts_sent().iter().filter(|n| **n == 3).count(),
        1,
        "a 403 was retried"
    );
    assert!(
        faulty.count(Api::UploadPart) <= 5,
        "the upload went on: {:?}",
        faulty.parts_sent()
    );
    assert_eq!(faulty.count(Api::CompleteMultipartUpload), 0);
    let identity = UploadIdentity::new("denied", BUCKET, "denied", PART);
    assert!(store.load(&identity).await.unwrap().is_some());

    faulty.clear();
    let outcome = uploader
        .upload(UploadRequest::new(source(), BUCKET, "denied"))
        .await
        .unwrap();
    assert!(outcome.resumed);
    assert_object_is(uploader.client(), "denied", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn request_time_too_skewed_corrects_the_clock_from_the_servers_date() {
    let server = mock().await;
    let bytes = data(300_000, 32);
    let faulty = Faulty::new();
    // A skew answer dated an hour ahead moves the clock an hour forward; the mock then answers
    // RequestTimeTooSkewed itself, with its true Date, and the clock comes back.
    faulty.rule(
        Rule::new(
            Api::InitiateMultipartUpload,
            Action::AnswerDated(
                ErrorCode::RequestTimeTooSkewed,
                SystemTime::now() + Duration::from_secs(3600),
            ),
        )
        .times(1),
    );
    let events = Events::default();
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes.clone(), "skew"), BUCKET, "skew")
                .progress(events.sink()),
        )
        .await
        .unwrap();
    assert_eq!(faulty.count(Api::InitiateMultipartUpload), 3);
    assert!(uploader.client().clock_offset_ms().abs() < 5_000);
    let skews = events
        .all()
        .iter()
        .filter(|e| matches!(e, ProgressEvent::Retrying { error, .. } if error.contains("RequestTimeTooSkewed")))
        .count();
    assert_eq!(skews, 2);
    assert_object_is(uploader.client(), "skew", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_with_a_retryable_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let uploader = builder(&endpoint).build().unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            BytesSource::new(data(300_000, 33), "down"),
            BUCKET,
            "down",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("InitiateMultipartUpload"), "{err}");
}
