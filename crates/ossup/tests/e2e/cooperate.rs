//! Several workers sharing one upload through a store that can cooperate (one SQLite database, a
//! handle each, as processes on one host have): every part sent once, one Complete, every worker
//! ends with the object.

use std::sync::Arc;

use crate::common::*;
use oss_mock::{FaultAction, FaultRule, MockConfig};
use ossup::{Api, CheckpointStore, FileSource, FileStore, Parallel, UploadRequest};
use ossup_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_one_upload_and_send_each_part_once() {
    // Each part answered 100 ms late: one worker alone (two parts at a time) would need 2 s, so the
    // others, who start while the first holds the lock to create the upload, find parts left.
    let server = ossup_test_support::mock_with(MockConfig::default().with_faults(vec![
        FaultRule::new(FaultAction::Delay { ms: 100 }).api(Api::UploadPart),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(40 * PART as usize + 1234, 17);
    let file = dir.path().join("shared.bin");
    std::fs::write(&file, &bytes).unwrap();
    let db = dir.path().join("shared.db");

    let mut workers = Vec::new();
    for _ in 0..3 {
        let store = SqliteStore::open(&db).await.unwrap();
        let uploader = builder(&server.endpoint())
            .cooperative_store(store)
            .scheduler(Parallel::new(2))
            .build()
            .unwrap();
        let file = file.clone();
        workers.push(tokio::spawn(async move {
            uploader
                .upload(UploadRequest::new(
                    FileSource::open(&file).unwrap(),
                    BUCKET,
                    "shared.bin",
                ))
                .await
        }));
    }
    let mut sent = 0;
    let mut senders = 0;
    for worker in workers {
        let outcome = worker.await.unwrap().unwrap();
        assert_eq!(outcome.size, bytes.len() as u64);
        sent += outcome.bytes_sent;
        senders += usize::from(outcome.parts_sent > 0);
    }
    assert!(
        senders >= 2,
        "the parts were shared: {senders} worker(s) sent any"
    );
    assert_eq!(
        sent,
        bytes.len() as u64,
        "between them the workers sent each byte exactly once"
    );
    assert_object_is(&client(&server.endpoint()), "shared.bin", &bytes).await;
    let store = SqliteStore::open(&db).await.unwrap();
    assert!(
        store.list().await.unwrap().is_empty(),
        "the checkpoint is removed once the upload is complete"
    );
}

#[tokio::test]
async fn a_store_that_cannot_cooperate_refuses_before_anything_starts() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 * PART as usize, 18);
    let uploader = builder(&server.endpoint())
        .cooperative_store(Arc::new(FileStore::open(dir.path()).unwrap()))
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            ossup::BytesSource::new(bytes, "x"),
            BUCKET,
            "refused.bin",
        ))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        format!("{err:?}").contains("CannotCooperate"),
        "{message} / {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_starts_afresh_when_the_server_forgot_the_upload_whose_claims_still_live() {
    // The first Complete finds the upload gone (aborted, expired): the first worker fails with its
    // claim on the completion still live. The next worker must not join that upload (its
    // completion would fail the same way, run after run, while the claim lives), but see it gone
    // and start a fresh one.
    let server = ossup_test_support::mock_with(MockConfig::default().with_faults(vec![
        FaultRule::new(FaultAction::ExpireUpload)
            .api(Api::CompleteMultipartUpload)
            .times(1),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(5 * PART as usize + 77, 19);
    let file = dir.path().join("forgotten.bin");
    std::fs::write(&file, &bytes).unwrap();
    let db = dir.path().join("shared.db");
    let run = || async {
        let uploader = builder(&server.endpoint())
            .cooperative_store(SqliteStore::open(&db).await.unwrap())
            .build()
            .unwrap();
        uploader
            .upload(UploadRequest::new(
                FileSource::open(&file).unwrap(),
                BUCKET,
                "forgotten.bin",
            ))
            .await
    };
    let first = run().await;
    assert!(
        first.is_err(),
        "the first Complete finds no upload: {first:?}"
    );
    let second = run().await.expect("the next worker starts a fresh upload");
    assert_eq!(second.size, bytes.len() as u64);
    assert_object_is(&client(&server.endpoint()), "forgotten.bin", &bytes).await;
    assert!(
        SqliteStore::open(&db)
            .await
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty(),
        "no checkpoint is left"
    );
}
