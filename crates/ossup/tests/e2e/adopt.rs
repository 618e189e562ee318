//! Resuming from the server: an upload whose checkpoint was lost is carried on by adopting its open
//! multipart upload (`UploadRequest::resume_from_server`), against the in-process `oss-mock`.

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::Api;
use ossup::{
    CancellationToken, ErrorKind, FileSource, FileStore, Notice, ProgressEvent, Sequential,
    UploadRequest,
};

#[tokio::test]
async fn an_upload_whose_checkpoint_was_wiped_is_carried_on_from_the_server() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wiped.bin");
    let bytes = data(1_000_000, 40); // 10 parts, the last short
    std::fs::write(&path, &bytes).unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let key = "wiped.bin";

    // The first run "crashes" once 4 parts were acknowledged; the 5th reaches the server, its
    // answer is lost.
    let crash = CancellationToken::new();
    let first = Faulty::new();
    first.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(4));
    let events = Events::default();
    let err = builder_with(&server.endpoint(), first)
        .store(FileStore::open(&checkpoints).unwrap())
        .scheduler(Sequential)
        .build()
        .unwrap()
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, key)
                .progress(events.sink())
                .cancel(crash),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    let acknowledged: Vec<u32> = events
        .all()
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::PartDone { number, .. } => Some(*number),
            _ => None,
        })
        .collect();
    // A part's PartDone follows its record's commit, which the crash may cut short: the events
    // show some of the four acknowledged parts, in order; the server holds all five.
    assert!(
        acknowledged.len() <= 4
            && acknowledged
                .iter()
                .copied()
                .eq(1..=acknowledged.len() as u32),
        "{acknowledged:?}"
    );
    let client = client(&server.endpoint());
    let open = client
        .list_multipart_uploads(BUCKET, Some(key))
        .await
        .unwrap();
    assert_eq!(open.len(), 1);

    // The checkpoint is lost.
    std::fs::remove_dir_all(&checkpoints).unwrap();

    let second = Faulty::new();
    let events = Events::default();
    let outcome = builder_with(&server.endpoint(), second.clone())
        .store(FileStore::open(&checkpoints).unwrap())
        .scheduler(Sequential)
        .build()
        .unwrap()
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, key)
                .progress(events.sink())
                .resume_from_server(true),
        )
        .await
        .unwrap();

    assert!(outcome.resumed);
    assert_eq!(
        outcome.upload_id.as_deref(),
        Some(open[0].upload_id.as_str())
    );
    // The acknowledged parts and the one whose answer was lost: none is sent again.
    assert_eq!(outcome.bytes_reused, 5 * PART);
    assert!(outcome.bytes_reused >= acknowledged.len() as u64 * PART);
    assert_eq!(outcome.bytes_sent, bytes.len() as u64 - 5 * PART);
    assert_eq!(second.parts_sent(), [6, 7, 8, 9, 10]);
    assert_eq!(second.count(Api::InitiateMultipartUpload), 0);
    assert_eq!(
        outcome.notices,
        [Notice::UploadAdopted {
            upload_id: open[0].upload_id.clone(),
            parts_listed: 5,
            parts_kept: 5,
            bytes_kept: 5 * PART,
        }]
    );
    assert!(events.all().iter().any(|e| matches!(
        e,
        ProgressEvent::Notice {
            notice: Notice::UploadAdopted { .. },
            ..
        }
    )));
    assert!(
        client
            .list_multipart_uploads(BUCKET, Some(key))
            .await
            .unwrap()
            .is_empty(),
        "an upload is left open"
    );
    assert_object_is(&client, key, &bytes).await;
    server.shutdown().await;
}
