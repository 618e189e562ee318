//! Cases on recording finished parts: one by one, in batches, again, and from many tasks at once.

use std::sync::Arc;

use super::must;
use crate::checkpoint::PartRecord;
use crate::store::{CheckpointStore, StoreError};
use crate::testkit::sample;

/// `record_part` for an identity with no saved checkpoint is [`StoreError::NotFound`], and creates
/// nothing.
pub async fn recording_without_a_saved_checkpoint_is_not_found(store: &dyn CheckpointStore) {
    const CASE: &str = "recording_without_a_saved_checkpoint_is_not_found";
    let identity = sample::identity("unsaved");
    match store.record_part(&identity, &sample::part(1, 0)).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("contract case {CASE}: expected NotFound, got {other:?}"),
    }
    assert_eq!(must(CASE, "load", store.load(&identity).await), None);
    let saved = sample::plain_checkpoint("saved then removed", 1);
    must(CASE, "save", store.save(&saved).await);
    must(CASE, "remove", store.remove(&saved.identity).await);
    match store
        .record_part(&saved.identity, &sample::part(2, 0))
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => {
            panic!("contract case {CASE}: recording after remove: expected NotFound, got {other:?}")
        }
    }
    assert_eq!(must(CASE, "load", store.load(&saved.identity).await), None);
}

/// Recording the same part twice leaves the same checkpoint as recording it once.
pub async fn recording_a_part_twice_is_the_same_as_once(store: &dyn CheckpointStore) {
    const CASE: &str = "recording_a_part_twice_is_the_same_as_once";
    let mut checkpoint = sample::plain_checkpoint("twice", 2);
    must(CASE, "save", store.save(&checkpoint).await);
    let part = sample::part(3, 0);
    for _ in 0..2 {
        must(
            CASE,
            "record_part",
            store.record_part(&checkpoint.identity, &part).await,
        );
    }
    checkpoint.parts.insert(part.number, part);
    assert_eq!(
        must(CASE, "load", store.load(&checkpoint.identity).await),
        Some(checkpoint)
    );
}

/// `record_parts` records a batch as `record_part` would one after another: new parts added, a part
/// with a number already there replaced, a part given twice the same as once, an empty batch
/// nothing; for an identity with no saved checkpoint it is [`StoreError::NotFound`].
pub async fn recording_many_parts_at_once_is_the_same_as_one_by_one(store: &dyn CheckpointStore) {
    const CASE: &str = "recording_many_parts_at_once_is_the_same_as_one_by_one";
    let mut checkpoint = sample::plain_checkpoint("batch", 2);
    must(CASE, "save", store.save(&checkpoint).await);
    must(
        CASE,
        "record_parts of nothing",
        store.record_parts(&checkpoint.identity, &[]).await,
    );
    let batch: Vec<PartRecord> = vec![
        sample::part(5, 0),
        sample::part(2, 7),
        sample::part(3, 0),
        sample::part(5, 0),
        sample::part(10_000, 1),
    ];
    must(
        CASE,
        "record_parts",
        store.record_parts(&checkpoint.identity, &batch).await,
    );
    // The same records one by one, on a twin of the checkpoint.
    let twin = sample::plain_checkpoint("batch twin", 2);
    must(CASE, "save", store.save(&twin).await);
    for part in &batch {
        must(
            CASE,
            "record_part",
            store.record_part(&twin.identity, part).await,
        );
    }
    let one_by_one = must(CASE, "load", store.load(&twin.identity).await)
        .unwrap_or_else(|| panic!("contract case {CASE}: a saved checkpoint is gone"));
    for part in batch {
        checkpoint.parts.insert(part.number, part);
    }
    let batched = must(CASE, "load", store.load(&checkpoint.identity).await);
    assert_eq!(
        batched.as_ref().map(|loaded| &loaded.parts),
        Some(&one_by_one.parts),
        "contract case {CASE}: a batch of records loads differently from the same records one by one"
    );
    assert_eq!(
        batched,
        Some(checkpoint),
        "contract case {CASE}: a batch of records loads differently from what was saved and recorded"
    );
    let unsaved = sample::identity("batch-unsaved");
    match store.record_parts(&unsaved, &[sample::part(1, 0)]).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("contract case {CASE}: expected NotFound, got {other:?}"),
    }
    assert_eq!(must(CASE, "load", store.load(&unsaved).await), None);
}

/// Recording a part whose number is already there replaces it.
pub async fn recording_replaces_a_part_with_the_same_number(store: &dyn CheckpointStore) {
    const CASE: &str = "recording_replaces_a_part_with_the_same_number";
    let mut checkpoint = sample::plain_checkpoint("replace", 3);
    must(CASE, "save", store.save(&checkpoint).await);
    let replacement = sample::part(2, 9);
    assert_ne!(checkpoint.parts[&2], replacement);
    must(
        CASE,
        "record_part",
        store.record_part(&checkpoint.identity, &replacement).await,
    );
    checkpoint.parts.insert(2, replacement);
    assert_eq!(
        must(CASE, "load", store.load(&checkpoint.identity).await),
        Some(checkpoint)
    );
}

/// Many tasks recording parts of one checkpoint at once lose none of them.
pub async fn concurrent_records_lose_nothing(
    store: Arc<dyn CheckpointStore>,
    tasks: u32,
    parts_per_task: u32,
) {
    const CASE: &str = "concurrent_records_lose_nothing";
    let mut checkpoint = sample::plain_checkpoint("concurrent", 0);
    must(CASE, "save", store.save(&checkpoint).await);
    let other = sample::plain_checkpoint("concurrent-bystander", 0);
    must(CASE, "save", store.save(&other).await);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let identity = checkpoint.identity.clone();
        let other = other.identity.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..parts_per_task {
                let number = task * parts_per_task + i + 1;
                // Interleave a second upload, so per-identity queues are exercised side by side.
                let target = if i % 10 == 9 { &other } else { &identity };
                must(
                    CASE,
                    "record_part",
                    store
                        .record_part(target, &sample::part(number, task as u8))
                        .await,
                );
            }
        }));
    }
    for handle in handles {
        handle
            .await
            .unwrap_or_else(|err| panic!("contract case {CASE}: a recording task failed: {err}"));
    }
    let mut expected_other = other.clone();
    for task in 0..tasks {
        for i in 0..parts_per_task {
            let number = task * parts_per_task + i + 1;
            let part = sample::part(number, task as u8);
            if i % 10 == 9 {
                expected_other.parts.insert(number, part);
            } else {
                checkpoint.parts.insert(number, part);
            }
        }
    }
    let loaded = must(CASE, "load", store.load(&checkpoint.identity).await)
        .unwrap_or_else(|| panic!("{CASE}: the recorded checkpoint loads"));
    let missing: Vec<u32> = checkpoint
        .parts
        .keys()
        .filter(|n| !loaded.parts.contains_key(n))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "contract case {CASE}: {} of {} parts lost, e.g. {:?}",
        missing.len(),
        checkpoint.parts.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(loaded, checkpoint, "contract case {CASE}");
    assert_eq!(
        must(CASE, "load", store.load(&other.identity).await),
        Some(expected_other),
        "contract case {CASE}: the interleaved upload"
    );
}
