//! Several cooperating batches on one tree, through a store that can cooperate (SQLite: processes on
//! one host; PostgreSQL: hosts): each small file put by one worker and skipped by the others as
//! uploaded by another worker, big files' parts shared, every object right; a worker killed half
//! way holds its files until its leases expire, then another takes them over; and what a worker
//! recorded of a file never skips a file edited since, nor one whose object is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::tree::{TreeFile, items, write_tree};
use crate::common::*;
use futures::StreamExt as _;
use oss_mock::{FaultAction, FaultRule, MockConfig, MockServer};
use ossup::store::CooperativeStore;
use ossup::{Api, FileOutcome, FileStatus, Parallel, SkipReason};
use ossup_postgres::PostgresStore;
use ossup_sqlite::SqliteStore;
use ossup_test_support::postgres::{PG_DATABASE, PgCluster};

/// Small files (put whole) and multipart ones, nested, with their bytes.
fn tree(root: &Path, small: usize, large: usize) -> Vec<TreeFile> {
    let mut files = Vec::new();
    for i in 0..small {
        let relative = format!("small/{}/f{i}.txt", i % 4);
        files.push((
            root.join(&relative),
            relative,
            data(500 + i * 53, 300 + i as u64),
        ));
    }
    for i in 0..large {
        let relative = format!("large/l{i}.bin");
        files.push((
            root.join(&relative),
            relative,
            data(4 * PART as usize + 777 * (i + 1), 900 + i as u64),
        ));
    }
    write_tree(&files);
    files
}

/// One worker's batch over the tree, through its own handle on the shared store; its outcomes.
async fn worker(
    server: &MockServer,
    store: Arc<dyn CooperativeStore>,
    lease: Duration,
    files: &[TreeFile],
) -> Vec<FileOutcome> {
    let uploader = builder(&server.endpoint())
        .cooperative_store(store)
        .scheduler(Parallel::new(2))
        .lease(lease)
        .build()
        .unwrap();
    uploader
        .batch(BUCKET)
        .listing_prefix("t/")
        .run(futures::stream::iter(items(files)))
        .collect()
        .await
}

/// Three workers over one tree of 36 small files and two multipart ones, each worker with its own
/// handle from `open`: every object right, each small file put once in all, each part sent once,
/// every worker's results name every file. Then one file edited (same size) and one object
/// deleted: the records of the first run skip neither.
async fn three_workers_share_a_tree<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn CooperativeStore>>,
{
    // Puts answered 40 ms late and parts 60 ms late: the workers' files in hand overlap.
    let server = ossup_test_support::mock_with(MockConfig::default().with_faults(vec![
        FaultRule::new(FaultAction::Delay { ms: 40 }).api(Api::PutObject),
        FaultRule::new(FaultAction::Delay { ms: 60 }).api(Api::UploadPart),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (36, 2);
    let files = tree(&dir.path().join("src"), small, large);
    let parts_in_all: u64 = files[small..]
        .iter()
        .map(|(_, _, bytes)| (bytes.len() as u64).div_ceil(PART))
        .sum();

    let lease = Duration::from_secs(30);
    let (a, b, c) = (open().await, open().await, open().await);
    let (ra, rb, rc) = tokio::join!(
        worker(&server, a, lease, &files),
        worker(&server, b, lease, &files),
        worker(&server, c, lease, &files)
    );
    let client = client(&server.endpoint());
    for (_, relative, bytes) in &files {
        assert_object_is(&client, &format!("t/{relative}"), bytes).await;
    }
    assert_eq!(
        server.stats().requests(Api::PutObject),
        small as u64,
        "each small file is put once by the three workers together"
    );
    assert_eq!(
        server.stats().requests(Api::UploadPart),
        parts_in_all,
        "each part of the multipart files is sent once"
    );
    let keys: BTreeSet<String> = files.iter().map(|(_, r, _)| format!("t/{r}")).collect();
    let mut uploaders: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_another = 0;
    for outcomes in [&ra, &rb, &rc] {
        let named: BTreeSet<String> = outcomes.iter().map(|o| o.key.clone()).collect();
        assert_eq!(named, keys, "a worker's results name every file once");
        assert_eq!(outcomes.len(), keys.len());
        for outcome in outcomes.iter() {
            match &outcome.status {
                FileStatus::Uploaded(done) if done.bytes_sent > 0 || done.parts_sent > 0 => {
                    *uploaders.entry(outcome.key.clone()).or_default() += 1;
                }
                FileStatus::Uploaded(_) => {}
                FileStatus::Skipped { reason, .. } => {
                    by_another += usize::from(*reason == SkipReason::UploadedByAnotherWorker);
                }
                other => panic!("{}: {other:?}", outcome.key),
            }
        }
    }
    for (_, relative, _) in &files[..small] {
        assert_eq!(
            uploaders.get(&format!("t/{relative}")),
            Some(&1),
            "t/{relative} is uploaded by exactly one worker"
        );
    }
    assert!(
        by_another > 0,
        "the other workers report files as uploaded by another worker"
    );

    // Second run, after an edit that keeps the size and a deleted object: the first run's records
    // match neither (the content changed; the object is gone), so exactly those two are put.
    let (edited, gone) = (&files[3], &files[7]);
    let mut changed = edited.2.clone();
    changed[0] ^= 0xff;
    std::fs::write(&edited.0, &changed).unwrap();
    client
        .delete_object(BUCKET, &format!("t/{}", gone.1))
        .await
        .unwrap();
    server.clear_faults();
    let puts = server.stats().requests(Api::PutObject);
    let (ra, rb) = tokio::join!(
        worker(&server, open().await, lease, &files),
        worker(&server, open().await, lease, &files)
    );
    assert_eq!(
        server.stats().requests(Api::PutObject),
        puts + 2,
        "the edited file and the deleted object's file are put again, once each"
    );
    assert_object_is(&client, &format!("t/{}", edited.1), &changed).await;
    assert_object_is(&client, &format!("t/{}", gone.1), &gone.2).await;
    for outcomes in [&ra, &rb] {
        assert_eq!(outcomes.len(), keys.len());
        assert!(outcomes.iter().all(|o| o.error().is_none()), "{outcomes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_tree_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    three_workers_share_a_tree(|| {
        let db = db.clone();
        async move { Arc::new(SqliteStore::open(&db).await.unwrap()) as Arc<dyn CooperativeStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_tree_through_postgres() {
    let cluster = PgCluster::start_fast();
    let url = cluster.url(PG_DATABASE);
    three_workers_share_a_tree(|| {
        let url = url.clone();
        async move {
            Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn CooperativeStore>
        }
    })
    .await;
    drop(cluster);
}

/// A worker killed while it holds files (its puts never answered, its runtime gone without a word
/// to the store) keeps them from the others until its leases expire; then another worker takes
/// them over and the whole tree is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_files_are_taken_over_once_its_leases_expire() {
    // The first two puts are never answered: the killed worker's.
    let server = ossup_test_support::mock_with(MockConfig::default().with_faults(vec![
        FaultRule::new(FaultAction::Stall)
            .api(Api::PutObject)
            .times(2),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = tree(&dir.path().join("src"), 12, 0);
    let db = dir.path().join("shared.db");
    let lease = Duration::from_secs(1);

    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(&db).await.unwrap();
    let uploader = builder(&server.endpoint())
        .cooperative_store(store)
        .scheduler(Parallel::new(2))
        .lease(lease)
        .build()
        .unwrap();
    let doomed_items = items(&files);
    doomed.spawn(async move {
        let run = uploader
            .batch(BUCKET)
            .run(futures::stream::iter(doomed_items));
        run.finish().await
    });
    let waited = tokio::time::Instant::now();
    while server.stalled_requests() < 2 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the doomed worker never sent its puts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed: its tasks are dropped where they stand, its claims left to expire.
    doomed.shutdown_background();

    let survivor = SqliteStore::open(&db).await.unwrap();
    let outcomes = worker(&server, Arc::new(survivor), lease, &files).await;
    assert_eq!(outcomes.len(), files.len());
    for outcome in &outcomes {
        assert!(
            matches!(outcome.status, FileStatus::Uploaded(_)),
            "{}: {:?}",
            outcome.key,
            outcome.status
        );
    }
    let client = client(&server.endpoint());
    for (_, relative, bytes) in &files {
        assert_object_is(&client, &format!("t/{relative}"), bytes).await;
    }
    assert_eq!(
        server.stats().requests(Api::PutObject),
        files.len() as u64 + 2,
        "the survivor put every file once, besides the killed worker's two unanswered puts"
    );
}
