//! The contract suite run on [`MemoryStore`].

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::sync::Arc;

use ossup::testkit::{StoreFactory, run_store_contract};
use ossup::{CheckpointStore, MemoryStore};

struct Memory;

#[async_trait::async_trait]
impl StoreFactory for Memory {
    async fn create(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(MemoryStore::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_contract_suite() {
    let report = run_store_contract(&Memory).await;
    // A memory store keeps nothing past its handles: only reopening and damage do not apply.
    let not_applicable: Vec<&str> = report.not_applicable().map(|(case, _)| case).collect();
    assert!(
        not_applicable
            .iter()
            .all(|case| case.starts_with("reopened") || case.starts_with("corrupt_")),
        "{report}"
    );
    assert!(
        report
            .passed()
            .any(|case| case == "lock_is_exclusive_and_released_on_drop")
    );
    assert!(report.passed().any(|case| case == "matches_the_model"));
}

#[tokio::test]
async fn clones_of_a_memory_store_share_checkpoints_and_locks() {
    let store = MemoryStore::new();
    let clone = store.clone();
    let id = ossup::UploadIdentity::new("/a", "b", "k", 1 << 20);
    let stamp = ossup::SourceStamp {
        size: 1,
        modified_nanos: None,
    };
    store
        .save(&ossup::Checkpoint::new(id.clone(), "u", stamp, 0, ""))
        .await
        .unwrap();
    assert!(clone.load(&id).await.unwrap().is_some());
    let _held = store.lock(&id).await.unwrap();
    assert!(matches!(
        clone.lock(&id).await,
        Err(ossup::StoreError::InUse { .. })
    ));
}
