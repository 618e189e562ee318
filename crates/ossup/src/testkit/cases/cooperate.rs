//! Cases on cooperation ([`Cooperation`]): claims with leases, taken over when they expire, one
//! completer per upload, and whole files of a batch claimed by one worker at a time. Run through [`run_cooperation_contract`](crate::testkit::run_cooperation_contract)
//! by a store that can cooperate.
//!
//! Leases here are counted by the store's clock (a database server's, the host's), so the expiry
//! cases sleep for real, a few hundred milliseconds each.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::must;
use crate::store::{Cooperation, FileClaim, FinishedFile, StoreError};
use crate::testkit::{CooperativeStoreFactory, sample};

/// A lease no case outlives.
const LONG: Duration = Duration::from_secs(600);
/// A lease the expiry cases wait out.
const SHORT: Duration = Duration::from_millis(400);

/// Claims skip recorded parts and parts another worker holds; a worker's own claims count again;
/// claiming for an upload without a saved checkpoint is `NotFound`.
pub async fn claims_skip_recorded_parts_and_other_workers_claims(
    factory: &dyn CooperativeStoreFactory,
) {
    const CASE: &str = "claims_skip_recorded_parts_and_other_workers_claims";
    let a = factory.create().await;
    let b = factory.reopen().await;
    let checkpoint = sample::plain_checkpoint("shared", 3);
    let id = &checkpoint.identity;
    match a.claim_parts(id, "a", &[1, 2], 1, LONG).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!(
            "contract case {CASE}: a claim without a saved checkpoint gave {other:?}, not NotFound"
        ),
    }
    must(CASE, "save", a.save(&checkpoint).await);
    let candidates: Vec<u32> = (1..=10).collect();
    let first = must(
        CASE,
        "claim by a",
        a.claim_parts(id, "a", &candidates, 4, LONG).await,
    );
    assert_eq!(
        first,
        [4, 5, 6, 7],
        "contract case {CASE}: worker a should get the four lowest parts neither recorded nor claimed"
    );
    let second = must(
        CASE,
        "claim by b",
        b.claim_parts(id, "b", &candidates, 100, LONG).await,
    );
    assert_eq!(
        second,
        [8, 9, 10],
        "contract case {CASE}: worker b should get exactly what a did not claim"
    );
    let again = must(
        CASE,
        "claim again by a",
        a.claim_parts(id, "a", &candidates, 100, LONG).await,
    );
    assert_eq!(
        again,
        [4, 5, 6, 7],
        "contract case {CASE}: a worker's own live claims count again, another's do not"
    );
    must(CASE, "record", a.record_part(id, &sample::part(4, 1)).await);
    let after_record = must(
        CASE,
        "claim after a record",
        a.claim_parts(id, "a", &candidates, 100, LONG).await,
    );
    assert_eq!(
        after_record,
        [5, 6, 7],
        "contract case {CASE}: a recorded part is never claimed"
    );
}

/// Workers claiming at the same moment, through two handles, and recording what they claim, never
/// get the same part, and between them get every part.
pub async fn racing_workers_never_claim_one_part_twice(factory: &dyn CooperativeStoreFactory) {
    const CASE: &str = "racing_workers_never_claim_one_part_twice";
    let first = factory.create().await;
    let second = factory.reopen().await;
    let checkpoint = sample::plain_checkpoint("raced", 0);
    must(CASE, "save", first.save(&checkpoint).await);
    let candidates: Arc<Vec<u32>> = Arc::new((1..=120).collect());
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let store = if w % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let id = checkpoint.identity.clone();
            let candidates = candidates.clone();
            tokio::spawn(async move {
                let name = format!("worker-{w}");
                let mut mine = Vec::new();
                loop {
                    let got = must(
                        CASE,
                        "claim",
                        store.claim_parts(&id, &name, &candidates, 3, LONG).await,
                    );
                    if got.is_empty() {
                        return mine;
                    }
                    // Sent and recorded, as a worker does with what it claims.
                    let records: Vec<_> = got.iter().map(|&n| sample::part(n, 0)).collect();
                    must(CASE, "record", store.record_parts(&id, &records).await);
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for worker in workers {
        for part in worker.await.expect("a claiming task panicked") {
            assert!(
                seen.insert(part),
                "contract case {CASE}: part {part} was claimed by two workers"
            );
        }
    }
    assert_eq!(
        seen.len(),
        candidates.len(),
        "contract case {CASE}: the workers together should claim every part"
    );
}

/// A claim whose lease expired is taken over by another worker, and its holder learns so when it
/// renews; a released claim is free at once.
pub async fn expired_claims_are_taken_over_and_released_ones_are_free(
    factory: &dyn CooperativeStoreFactory,
) {
    const CASE: &str = "expired_claims_are_taken_over_and_released_ones_are_free";
    let a = factory.create().await;
    let b = factory.reopen().await;
    let checkpoint = sample::plain_checkpoint("expiring", 0);
    let id = &checkpoint.identity;
    must(CASE, "save", a.save(&checkpoint).await);
    let held = must(
        CASE,
        "claim by a",
        a.claim_parts(id, "a", &[1, 2, 3], 3, SHORT).await,
    );
    assert_eq!(
        held,
        [1, 2, 3],
        "contract case {CASE}: a free upload's parts are all claimed"
    );
    let lost = must(
        CASE,
        "renewal in time",
        a.renew_parts(id, "a", &[1, 2], SHORT).await,
    );
    assert!(
        lost.is_empty(),
        "contract case {CASE}: a renewal in time lost {lost:?}"
    );
    assert_eq!(
        must(
            CASE,
            "claim by b while held",
            b.claim_parts(id, "b", &[1, 2, 3], 3, LONG).await
        ),
        Vec::<u32>::new(),
        "contract case {CASE}: live claims of another worker were taken"
    );
    must(CASE, "release", a.release_parts(id, "a", &[1]).await);
    assert_eq!(
        must(
            CASE,
            "claim of a released part",
            b.claim_parts(id, "b", &[1, 2, 3], 3, LONG).await
        ),
        [1],
        "contract case {CASE}: a released claim should be free at once, the others still held"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert_eq!(
        must(
            CASE,
            "claim after expiry",
            b.claim_parts(id, "b", &[1, 2, 3], 3, LONG).await
        ),
        [1, 2, 3],
        "contract case {CASE}: expired claims should be taken over"
    );
    let lost = must(
        CASE,
        "renewal too late",
        a.renew_parts(id, "a", &[2, 3], LONG).await,
    );
    assert_eq!(
        lost,
        [2, 3],
        "contract case {CASE}: a worker whose claims were taken over must learn it when renewing"
    );
    let listed = must(CASE, "claims", a.claims().await);
    let fingerprint = id.fingerprint();
    let mut parts: Vec<(Option<u32>, String)> = listed
        .into_iter()
        .filter(|claim| claim.fingerprint == fingerprint)
        .map(|claim| (claim.part, claim.worker))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            (Some(1), "b".into()),
            (Some(2), "b".into()),
            (Some(3), "b".into())
        ],
        "contract case {CASE}: the listing should show exactly the live claims and their workers"
    );
    must(CASE, "remove", a.remove(id).await);
    assert!(
        must(CASE, "claims after remove", a.claims().await)
            .iter()
            .all(|claim| claim.fingerprint != fingerprint),
        "contract case {CASE}: removing the checkpoint should drop its claims"
    );
}

/// Exactly one of two workers racing for the completion gets it, round after round; its holder
/// gets it again, and another worker only once the holder's lease expired.
pub async fn exactly_one_worker_claims_the_completion(factory: &dyn CooperativeStoreFactory) {
    const CASE: &str = "exactly_one_worker_claims_the_completion";
    let a = factory.create().await;
    let b = factory.reopen().await;
    match a
        .claim_completion(&sample::identity("unsaved"), "a", LONG)
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => panic!(
            "contract case {CASE}: completing an unsaved upload gave {other:?}, not NotFound"
        ),
    }
    for round in 0..16 {
        let checkpoint = sample::plain_checkpoint(&format!("completion-{round}"), 1);
        must(CASE, "save", a.save(&checkpoint).await);
        let (id_a, id_b) = (checkpoint.identity.clone(), checkpoint.identity.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let race_a = tokio::spawn(async move { a2.claim_completion(&id_a, "a", SHORT).await });
        let race_b = tokio::spawn(async move { b2.claim_completion(&id_b, "b", SHORT).await });
        let won_a = must(CASE, "claim by a", race_a.await.expect("task"));
        let won_b = must(CASE, "claim by b", race_b.await.expect("task"));
        assert!(
            won_a != won_b,
            "contract case {CASE}: round {round}: two workers racing for the completion gave {won_a} and {won_b}"
        );
        let (winner, loser) = if won_a { ("a", "b") } else { ("b", "a") };
        assert!(
            must(
                CASE,
                "claim again",
                a.claim_completion(&checkpoint.identity, winner, SHORT)
                    .await
            ),
            "contract case {CASE}: the completer should keep its claim"
        );
        if round == 0 {
            assert!(
                !must(
                    CASE,
                    "claim by the other",
                    b.claim_completion(&checkpoint.identity, loser, LONG).await
                ),
                "contract case {CASE}: a live completion claim was taken"
            );
            tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
            assert!(
                must(
                    CASE,
                    "claim after expiry",
                    b.claim_completion(&checkpoint.identity, loser, LONG).await
                ),
                "contract case {CASE}: an expired completion claim should be taken over"
            );
        }
    }
}

/// A store that cannot cooperate says so with [`StoreError::CannotCooperate`], for every method.
pub async fn a_store_that_cannot_cooperate_says_so(store: &dyn Cooperation) {
    const CASE: &str = "a_store_that_cannot_cooperate_says_so";
    let id = sample::identity("any");
    let answers = [
        store.claim_parts(&id, "w", &[1], 1, LONG).await.err(),
        store.renew_parts(&id, "w", &[1], LONG).await.err(),
        store.release_parts(&id, "w", &[1]).await.err(),
        store.claim_completion(&id, "w", LONG).await.err(),
        store.claims().await.err(),
        store.file_claims("b", "").await.err(),
        store.claim_file("b", "k", "w", LONG).await.err(),
        store.renew_file("b", "k", "w", LONG).await.err(),
        store.release_file("b", "k", "w").await.err(),
        store
            .finish_file("b", "k", "w", &FinishedFile::new(1, "\"e\"", 1, "w"))
            .await
            .err(),
    ];
    for answer in answers {
        match answer {
            Some(StoreError::CannotCooperate { store }) => assert!(!store.is_empty()),
            other => panic!("contract case {CASE}: gave {other:?}, not CannotCooperate"),
        }
    }
}

/// Workers racing for the same files, through two handles, never both hold one: for each file
/// exactly one claim wins, the others find it held.
pub async fn racing_workers_never_hold_one_file_twice(factory: &dyn CooperativeStoreFactory) {
    const CASE: &str = "racing_workers_never_hold_one_file_twice";
    let first = factory.create().await;
    let second = factory.reopen().await;
    let keys: Arc<Vec<String>> = Arc::new((0..24).map(|i| format!("tree/f{i}")).collect());
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let store = if w % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let keys = keys.clone();
            tokio::spawn(async move {
                let name = format!("worker-{w}");
                let mut mine = Vec::new();
                for key in keys.iter() {
                    match must(
                        CASE,
                        "claim",
                        store.claim_file("bkt", key, &name, LONG).await,
                    ) {
                        FileClaim::Claimed { finished } => {
                            assert_eq!(
                                finished, None,
                                "contract case {CASE}: a file nobody finished came with a record"
                            );
                            mine.push(key.clone());
                        }
                        FileClaim::Held { worker, .. } => assert_ne!(
                            worker, name,
                            "contract case {CASE}: a worker's own claim was reported as another's"
                        ),
                    }
                }
                mine
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for worker in workers {
        for key in worker.await.expect("a claiming task panicked") {
            assert!(
                seen.insert(key.clone()),
                "contract case {CASE}: file {key} was held by two workers"
            );
        }
    }
    assert_eq!(
        seen.len(),
        keys.len(),
        "contract case {CASE}: every file should be held by one worker"
    );
    // The same key in another bucket is another file.
    assert!(
        matches!(
            must(
                CASE,
                "claim in another bucket",
                first.claim_file("other", "tree/f0", "late", LONG).await
            ),
            FileClaim::Claimed { .. }
        ),
        "contract case {CASE}: a claim in one bucket held the same key of another"
    );
}

/// A file claim whose lease expired is taken over, and its holder learns so when it renews; a
/// released file is free at once; a worker's own claim is claimed again.
pub async fn expired_file_claims_are_taken_over_and_released_ones_are_free(
    factory: &dyn CooperativeStoreFactory,
) {
    const CASE: &str = "expired_file_claims_are_taken_over_and_released_ones_are_free";
    let a = factory.create().await;
    let b = factory.reopen().await;
    for key in ["kept", "dropped"] {
        assert!(
            matches!(
                must(
                    CASE,
                    "claim by a",
                    a.claim_file("bkt", key, "a", SHORT).await
                ),
                FileClaim::Claimed { finished: None }
            ),
            "contract case {CASE}: a free file should be claimed"
        );
    }
    assert!(
        matches!(
            must(
                CASE,
                "claim again by a",
                a.claim_file("bkt", "kept", "a", SHORT).await
            ),
            FileClaim::Claimed { .. }
        ),
        "contract case {CASE}: a worker's own claim should be claimed again"
    );
    assert!(
        must(
            CASE,
            "renewal in time",
            a.renew_file("bkt", "kept", "a", SHORT).await
        ),
        "contract case {CASE}: a renewal in time should keep the claim"
    );
    match must(
        CASE,
        "claim by b while held",
        b.claim_file("bkt", "kept", "b", LONG).await,
    ) {
        FileClaim::Held { worker, expires_in } => {
            assert_eq!(
                worker, "a",
                "contract case {CASE}: the holder should be named"
            );
            assert!(
                expires_in <= SHORT,
                "contract case {CASE}: a lease of {SHORT:?} has {expires_in:?} left"
            );
        }
        other => panic!("contract case {CASE}: a live claim of another worker gave {other:?}"),
    }
    must(CASE, "release", a.release_file("bkt", "dropped", "a").await);
    assert!(
        matches!(
            must(
                CASE,
                "claim of a released file",
                b.claim_file("bkt", "dropped", "b", LONG).await
            ),
            FileClaim::Claimed { finished: None }
        ),
        "contract case {CASE}: a released file should be free at once"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(
        matches!(
            must(
                CASE,
                "claim after expiry",
                b.claim_file("bkt", "kept", "b", LONG).await
            ),
            FileClaim::Claimed { .. }
        ),
        "contract case {CASE}: an expired file claim should be taken over"
    );
    assert!(
        !must(
            CASE,
            "renewal too late",
            a.renew_file("bkt", "kept", "a", LONG).await
        ),
        "contract case {CASE}: a worker whose file was taken over must learn it when renewing"
    );
    match must(
        CASE,
        "claim by a after the take-over",
        a.claim_file("bkt", "kept", "a", LONG).await,
    ) {
        FileClaim::Held { worker, .. } => assert_eq!(worker, "b"),
        other => panic!("contract case {CASE}: the new holder's live claim gave {other:?}"),
    }
}

/// What a worker records when it finishes a file is handed to the next claim of the file, by any
/// worker and through any handle, until another finish replaces it; finishing drops the finisher's
/// claim but not a claim another worker took over meanwhile.
pub async fn a_finished_file_is_handed_to_the_next_claim(factory: &dyn CooperativeStoreFactory) {
    const CASE: &str = "a_finished_file_is_handed_to_the_next_claim";
    let a = factory.create().await;
    let b = factory.reopen().await;
    // A key that is no valid UTF-8 in a database's text type (a NUL) and an ETag as the server gives it.
    let key = "tree/with\0nul and ünïcode";
    let first = FinishedFile::new(5, "\"5D41402ABC4B2A76B9719D911017C592\"", u64::MAX - 7, "a");
    must(
        CASE,
        "claim by a",
        a.claim_file("bkt", key, "a", LONG).await,
    );
    must(
        CASE,
        "finish by a",
        a.finish_file("bkt", key, "a", &first).await,
    );
    match must(
        CASE,
        "claim by b after the finish",
        b.claim_file("bkt", key, "b", SHORT).await,
    ) {
        FileClaim::Claimed { finished } => assert_eq!(
            finished.as_ref(),
            Some(&first),
            "contract case {CASE}: the next claim should be handed the finished record, every field"
        ),
        other => panic!("contract case {CASE}: a finished file's claim was not free: {other:?}"),
    }
    must(CASE, "release by b", b.release_file("bkt", key, "b").await);
    match must(
        CASE,
        "claim by c",
        a.claim_file("bkt", key, "c", SHORT).await,
    ) {
        FileClaim::Claimed { finished } => assert_eq!(
            finished.as_ref(),
            Some(&first),
            "contract case {CASE}: a release should keep the record"
        ),
        other => panic!("contract case {CASE}: a released file gave {other:?}"),
    }
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    // c's lease expired and d took the file over; c finishes late: its record replaces the first,
    // and d keeps its claim.
    must(
        CASE,
        "claim by d",
        b.claim_file("bkt", key, "d", LONG).await,
    );
    let second = FinishedFile::new(6, "\"0123456789ABCDEF0123456789ABCDEF-2\"", 42, "c");
    must(
        CASE,
        "late finish by c",
        a.finish_file("bkt", key, "c", &second).await,
    );
    match must(
        CASE,
        "claim by e",
        a.claim_file("bkt", key, "e", LONG).await,
    ) {
        FileClaim::Held { worker, .. } => assert_eq!(
            worker, "d",
            "contract case {CASE}: a late finish should not drop another worker's claim"
        ),
        other => panic!("contract case {CASE}: d's live claim gave {other:?}"),
    }
    must(
        CASE,
        "finish by d",
        b.finish_file("bkt", key, "d", &second).await,
    );
    match must(
        CASE,
        "claim by e after d",
        a.claim_file("bkt", key, "e", LONG).await,
    ) {
        FileClaim::Claimed { finished } => assert_eq!(
            finished.as_ref(),
            Some(&second),
            "contract case {CASE}: the newest finish should be the record"
        ),
        other => panic!("contract case {CASE}: a finished file's claim was not free: {other:?}"),
    }
}

/// The live file claims of a bucket are listed by key under a prefix, with their holders and
/// leases; released, finished and expired claims, other buckets and keys outside the prefix are
/// not.
pub async fn live_file_claims_are_listed_by_bucket_and_prefix(
    factory: &dyn CooperativeStoreFactory,
) {
    const CASE: &str = "live_file_claims_are_listed_by_bucket_and_prefix";
    let a = factory.create().await;
    let b = factory.reopen().await;
    for (store, bucket, key, worker, lease) in [
        (&a, "bkt", "site/b.css", "a", LONG),
        (&b, "bkt", "site/a.js", "b", LONG),
        (&a, "bkt", "site/released", "a", LONG),
        (&a, "bkt", "site/finished", "a", LONG),
        (&b, "bkt", "site/expiring", "b", SHORT),
        (&a, "bkt", "other/c.png", "a", LONG),
        (&b, "elsewhere", "site/a.js", "b", LONG),
    ] {
        assert!(
            matches!(
                must(
                    CASE,
                    "claim",
                    store.claim_file(bucket, key, worker, lease).await
                ),
                FileClaim::Claimed { .. }
            ),
            "contract case {CASE}: the free file {key} of {bucket} should be claimed"
        );
    }
    must(
        CASE,
        "release",
        a.release_file("bkt", "site/released", "a").await,
    );
    must(
        CASE,
        "finish",
        a.finish_file(
            "bkt",
            "site/finished",
            "a",
            &FinishedFile::new(3, "\"e\"", 7, "a"),
        )
        .await,
    );
    let listed = |held: Vec<crate::store::HeldFile>| -> Vec<(String, String)> {
        for file in &held {
            assert!(
                file.expires_in <= LONG,
                "contract case {CASE}: a lease of {LONG:?} has {:?} left",
                file.expires_in
            );
        }
        held.into_iter().map(|f| (f.key, f.worker)).collect()
    };
    let pair = |key: &str, worker: &str| (key.to_owned(), worker.to_owned());
    let site = listed(must(CASE, "list", b.file_claims("bkt", "site/").await));
    assert_eq!(
        site,
        [
            pair("site/a.js", "b"),
            pair("site/b.css", "a"),
            pair("site/expiring", "b")
        ],
        "contract case {CASE}: the live claims under site/ by key"
    );
    let everything = listed(must(CASE, "list all", a.file_claims("bkt", "").await));
    assert_eq!(
        everything.len(),
        4,
        "contract case {CASE}: an empty prefix lists every live claim of the bucket: {everything:?}"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    let after = listed(must(
        CASE,
        "list after expiry",
        a.file_claims("bkt", "site/").await,
    ));
    assert_eq!(
        after,
        [pair("site/a.js", "b"), pair("site/b.css", "a")],
        "contract case {CASE}: an expired claim is no longer listed"
    );
    assert!(
        must(
            CASE,
            "list a prefix nobody holds",
            a.file_claims("bkt", "site/a.jsx").await
        )
        .is_empty(),
        "contract case {CASE}: a prefix no key starts with lists nothing"
    );
}
