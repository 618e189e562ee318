//! Hedging against the in-process `oss-mock`: a part whose request crawls (the mock throttles its
//! body to a trickle) is sent again on another connection, the copy that answers first is the
//! one recorded, and the object is the source's bytes.

use std::sync::Arc;
use std::time::Duration;

use oss_mock::{FaultAction, FaultRule};
use ossup::{Api, BytesSource, CheckpointStore, HedgePolicy, Hedged, Parallel, UploadRequest};

use crate::common::{BUCKET, PART, assert_object_is, builder, client, data, mock, shared_store};

/// Hedges after 300 ms: the test's parts take milliseconds on loopback.
fn eager() -> HedgePolicy {
    HedgePolicy::default().floor(Duration::from_millis(300))
}

#[tokio::test]
async fn a_crawling_part_is_hedged_and_the_first_answer_is_recorded() {
    let server = mock().await;
    // Part 6's first request is read at 2 KB/s: 50 s for its 100 KiB, far past any timeout here.
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::Throttle {
                bytes_per_sec: 2_000,
            })
            .api(Api::UploadPart)
            .part_number(6)
            .times(1),
        ])
        .unwrap();
    let bytes = data(8 * PART as usize + 123, 61);
    let store = shared_store();
    let hedged = Hedged::new(Parallel::new(3)).policy(eager());
    let stats = hedged.stats();

    let outcome = builder(&server.endpoint())
        .store(store.clone())
        .scheduler(hedged)
        .build()
        .unwrap()
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "hedged:v1"),
            BUCKET,
            "hedged.bin",
        ))
        .await
        .unwrap();

    assert_eq!((stats.hedged(), stats.won()), (1, 1));
    assert_eq!(outcome.parts_sent, 9);
    // The crawling request was cancelled unfinished: the server stored part 6 once, from the hedge.
    assert_eq!(server.stats().requests(Api::UploadPart), 10);
    assert_object_is(&client(&server.endpoint()), "hedged.bin", &bytes).await;
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_a_straggler_nothing_is_sent_twice() {
    let server = mock().await;
    let bytes = data(6 * PART as usize, 62);
    let hedged = Hedged::new(Parallel::new(2)).policy(eager());
    let stats = hedged.stats();

    builder(&server.endpoint())
        .store(Arc::new(ossup::MemoryStore::new()))
        .scheduler(hedged)
        .build()
        .unwrap()
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "steady:v1"),
            BUCKET,
            "steady.bin",
        ))
        .await
        .unwrap();

    assert_eq!(stats.hedged(), 0);
    assert_eq!(server.stats().requests(Api::UploadPart), 6);
    assert_object_is(&client(&server.endpoint()), "steady.bin", &bytes).await;
}
