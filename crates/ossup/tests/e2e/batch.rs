//! Many files in one run: skip by content, the shared budget, failures that do not stop the
//! others, and a batch resumed after cancellation.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::tree::{TreeFile, items, write_tree};
use crate::common::*;
use futures::StreamExt as _;
use oss_mock::LinkShape;
use ossup::store::DigestCache;
use ossup::{
    Adaptive, Api, BatchItem, CancellationToken, CheckpointStore, CongestionSignal,
    CongestionWatch, FileStatus, FileStore, HyperTransport, Parallel, ProgressEvent, RetryConfig,
    SkipReason,
};

/// A tree of small files (put whole) and a few multipart ones, with their bytes.
fn tree(root: &Path, small: usize, large: usize) -> Vec<TreeFile> {
    let mut files = Vec::new();
    for i in 0..small {
        let bytes = data(1_000 + i * 37, i as u64);
        let relative = format!("small/{}/f{i}.txt", i % 3);
        files.push((root.join(&relative), relative, bytes));
    }
    for i in 0..large {
        let bytes = data(3 * PART as usize + 1_234 * (i + 1), 100 + i as u64);
        let relative = format!("large/l{i}.bin");
        files.push((root.join(&relative), relative, bytes));
    }
    write_tree(&files);
    files
}

fn requests(server: &oss_mock::MockServer, api: Api) -> u64 {
    server.stats().requests(api)
}

#[tokio::test]
async fn a_tree_is_uploaded_then_skipped_by_content_without_reading_unchanged_files() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tree(&dir.path().join("src"), 12, 2);
    let store = FileStore::open(dir.path().join("state")).unwrap();
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(3))
        .store(store.clone())
        .build()
        .unwrap();

    let summary = uploader
        .batch(BUCKET)
        .listing_prefix("t/")
        .digest_cache(store.clone())
        .run(futures::stream::iter(items(&files)))
        .finish()
        .await;
    assert_eq!(
        (summary.uploaded, summary.skipped, summary.failed),
        (14, 0, 0)
    );
    assert!(summary.all_succeeded());
    for (_, relative, bytes) in &files {
        assert_object_is(uploader.client(), &format!("t/{relative}"), bytes).await;
    }
    // What each upload learnt is remembered, so the next run need not read the files.
    for (path, _, _) in &files {
        let canonical = path.canonicalize().unwrap();
        let digest = store.digest(&canonical.to_string_lossy()).await.unwrap();
        assert!(digest.is_some(), "no digest for {}", path.display());
    }

    // Second run: one listing, a HEAD per multipart object (its ETag is no MD5), nothing sent.
    let (puts, parts, lists, heads) = (
        requests(&server, Api::PutObject),
        requests(&server, Api::UploadPart),
        requests(&server, Api::ListObjects),
        requests(&server, Api::HeadObject),
    );
    let mut run = uploader
        .batch(BUCKET)
        .listing_prefix("t/")
        .digest_cache(store.clone())
        .run(futures::stream::iter(items(&files)));
    let mut reasons = Vec::new();
    while let Some(file) = run.next().await {
        match file.status {
            FileStatus::Skipped { reason, .. } => reasons.push(reason),
            other => panic!("{} was not skipped: {other:?}", file.key),
        }
    }
    let summary = run.finish().await;
    assert_eq!(
        (summary.uploaded, summary.skipped, summary.bytes_sent),
        (0, 14, 0)
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == SkipReason::SameEtag)
            .count(),
        12
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == SkipReason::SameCrc64)
            .count(),
        2
    );
    assert_eq!(requests(&server, Api::PutObject), puts);
    assert_eq!(requests(&server, Api::UploadPart), parts);
    assert_eq!(requests(&server, Api::ListObjects), lists + 1);
    assert_eq!(requests(&server, Api::HeadObject), heads + 2);

    // The digest cache is trusted while size, time and inode hold: bytes changed in place with the
    // time put back are not even read (the quick check rsync makes too).
    let (path, _, bytes) = &files[0];
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut changed = bytes.clone();
    changed[0] ^= 0xff;
    std::fs::write(path, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    // An edit that moves the time is seen and sent.
    let (edited, relative, _) = &files[1];
    let new_bytes = data(5_000, 999);
    std::fs::write(edited, &new_bytes).unwrap();

    let mut run = uploader
        .batch(BUCKET)
        .listing_prefix("t/")
        .digest_cache(store.clone())
        .run(futures::stream::iter(items(&files)));
    let mut uploaded = Vec::new();
    while let Some(file) = run.next().await {
        if let FileStatus::Uploaded(_) = file.status {
            uploaded.push(file.key);
        }
    }
    assert_eq!(uploaded, [format!("t/{relative}")]);
    assert_object_is(uploader.client(), &format!("t/{relative}"), &new_bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_file_shares_one_budget_of_parts_in_flight() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tree(dir.path(), 6, 6);
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let in_flight = Arc::new(Mutex::new((0usize, 0usize)));
    let seen = in_flight.clone();

    let mut run = uploader
        .batch(BUCKET)
        .progress(move |_key: &str, event: &ProgressEvent| {
            if let ProgressEvent::Sending { parts, .. } = event {
                let mut seen = seen.lock().unwrap();
                seen.1 = seen.1.max(parts.len());
            }
        })
        .run(futures::stream::iter(items(&files)));
    let mut peak_buffers = 0;
    while let Some(file) = run.next().await {
        let FileStatus::Uploaded(outcome) = file.status else {
            panic!("{} failed", file.key)
        };
        peak_buffers = peak_buffers.max(outcome.peak_part_buffers);
    }
    assert!(run.finish().await.all_succeeded());
    // The pool is the batch's: its peak is of all files together.
    assert!(
        peak_buffers <= 2,
        "{peak_buffers} part buffers alive at once"
    );
    assert!(in_flight.lock().unwrap().1 <= 2);
    for (_, relative, bytes) in &files {
        assert_object_is(uploader.client(), &format!("t/{relative}"), bytes).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_adaptive_scheduler_finds_one_limit_for_the_whole_batch() {
    // A front end that refuses a seventh request at once, behind a link slow enough (64 KiB files
    // take 16 ms) that the files' requests overlap there.
    let shape = LinkShape {
        conn_bandwidth: Some(4 << 20),
        max_inflight: Some(6),
        ..LinkShape::default()
    };
    let server =
        ossup_test_support::mock_with(oss_mock::MockConfig::default().with_link(shape)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..60 {
        let relative = format!("small/f{i}.bin");
        files.push((
            dir.path().join(&relative),
            relative,
            data(64 << 10, 300 + i),
        ));
    }
    for i in 0..3 {
        let relative = format!("large/l{i}.bin");
        let bytes = data(3 * PART as usize + 4_321, 400 + i);
        files.push((dir.path().join(&relative), relative, bytes));
    }
    write_tree(&files);
    let congestion = CongestionSignal::new();
    let uploader = builder_with(
        &server.endpoint(),
        CongestionWatch::new(HyperTransport::new(), congestion.clone()),
    )
    .retry(
        RetryConfig::default()
            .max_attempts(10)
            .backoff(Duration::from_millis(10), Duration::from_millis(50)),
    )
    .scheduler(Adaptive::new(32).listening_to(congestion))
    .build()
    .unwrap();

    // The listing, as `ossup upload DIR --recursive` does: no HeadObject per file.
    let summary = uploader
        .batch(BUCKET)
        .listing_prefix("t/")
        .run(futures::stream::iter(items(&files)))
        .finish()
        .await;

    assert!(summary.all_succeeded(), "{summary:?}");
    // One limit for all: the start at 8 crosses the ceiling and the limit settles under it; what
    // else is refused is a part meeting a multipart file's InitiateMultipartUpload or Complete,
    // which take no place (9 to 13 in all). A limit per file, with the batch's 32 buffers, put
    // 32 files in flight at once: some 200 refusals, and files failed.
    let refused = server.stats().refused_by_ceiling();
    assert!(refused <= 24, "{refused} requests refused");
    for (_, relative, bytes) in &files {
        assert_object_is(uploader.client(), &format!("t/{relative}"), bytes).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_file_is_reported_and_the_others_go_on_unless_asked_to_stop() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tree(dir.path(), 5, 0);
    let uploader = builder(&server.endpoint()).build().unwrap();
    let mut list = items(&files);
    list.insert(
        2,
        BatchItem::file(dir.path().join("missing.txt"), "t/missing.txt"),
    );

    let mut run = uploader.batch(BUCKET).run(futures::stream::iter(list));
    let mut failed = Vec::new();
    while let Some(file) = run.next().await {
        if let Some(error) = file.error() {
            assert!(error.to_string().contains("missing.txt"), "{error}");
            assert_eq!(error.key(), Some("t/missing.txt"));
            failed.push(file.key.clone());
        }
    }
    let summary = run.finish().await;
    assert_eq!(failed, ["t/missing.txt"]);
    assert_eq!((summary.uploaded, summary.failed), (5, 1));
    assert_eq!(summary.failed_keys, ["t/missing.txt"]);
    assert!(!summary.all_succeeded());

    let mut list = vec![BatchItem::file(
        dir.path().join("missing.txt"),
        "t/missing.txt",
    )];
    list.extend(items(&files));
    let summary = uploader
        .batch(BUCKET)
        .skip_unchanged(false)
        .fail_fast(true)
        .files_in_flight(1)
        .run(futures::stream::iter(list))
        .finish()
        .await;
    assert_eq!((summary.uploaded, summary.failed), (0, 1));
    assert!(summary.stopped_early);
    server.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_batch_resumes_from_file_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("state")).unwrap();
    cancelled_batch_resumes(dir.path(), Arc::new(store)).await;
}

#[tokio::test]
async fn a_cancelled_batch_resumes_from_sqlite_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = ossup_sqlite::SqliteStore::open(dir.path().join("state.db"))
        .await
        .unwrap();
    cancelled_batch_resumes(dir.path(), Arc::new(store)).await;
}

/// Cancels a batch after three parts of its multipart files, runs it again with the same store
/// (as checkpoints and as the digest cache), and checks that no acknowledged part is sent again.
async fn cancelled_batch_resumes<S: CheckpointStore + DigestCache + 'static>(
    dir: &Path,
    store: Arc<S>,
) {
    let server = mock().await;
    let files = tree(&dir.join("src"), 4, 3);
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(2))
        .store(store.clone())
        .build()
        .unwrap();

    let cancel = CancellationToken::new();
    // Parts acknowledged, and their bytes (a file's last part is short).
    let parts_done = Arc::new(Mutex::new((0u32, 0u64)));
    let (stop, count) = (cancel.clone(), parts_done.clone());
    let summary = uploader
        .batch(BUCKET)
        .digest_cache(store.clone())
        .cancel(cancel.clone())
        .progress(move |key: &str, event: &ProgressEvent| {
            if key.contains("large")
                && let ProgressEvent::PartDone { bytes, .. } = event
            {
                let mut count = count.lock().unwrap();
                count.0 += 1;
                count.1 += bytes;
                if count.0 == 3 {
                    stop.cancel();
                }
            }
        })
        .run(futures::stream::iter(items(&files)))
        .finish()
        .await;
    assert!(summary.stopped_early);
    assert!(summary.uploaded < 7, "{summary:?}");
    assert!(
        !store.list().await.unwrap().is_empty(),
        "a checkpoint is kept"
    );

    let (parts, acknowledged) = *parts_done.lock().unwrap();
    let mut run = uploader
        .batch(BUCKET)
        .digest_cache(store.clone())
        .run(futures::stream::iter(items(&files)));
    let mut reused = 0;
    while let Some(file) = run.next().await {
        assert!(file.error().is_none(), "{}: {:?}", file.key, file.error());
        if let FileStatus::Uploaded(outcome) = &file.status {
            reused += outcome.bytes_reused;
        }
    }
    let summary = run.finish().await;
    assert!(summary.all_succeeded(), "{summary:?}");
    assert!(
        reused >= acknowledged,
        "reused {reused} bytes of the {acknowledged} in {parts} acknowledged parts"
    );
    assert!(store.list().await.unwrap().is_empty());
    for (_, relative, bytes) in &files {
        assert_object_is(uploader.client(), &format!("t/{relative}"), bytes).await;
    }
    server.shutdown().await;
}
