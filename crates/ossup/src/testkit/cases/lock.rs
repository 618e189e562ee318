//! Cases on claiming an upload: exclusive locks and racing claims.

use std::sync::Arc;

use super::must;
use crate::store::{CheckpointStore, StoreError};
use crate::testkit::{StoreFactory, sample};

/// A second claim on a held identity is [`StoreError::InUse`], from the same handle and from another
/// handle on the same storage; other identities stay free; dropping the lock frees it.
///
/// Not applicable to stores whose `lock` claims nothing ([`StoreLock::none`](crate::StoreLock::none)).
pub async fn lock_is_exclusive_and_released_on_drop(
    factory: &dyn StoreFactory,
) -> Result<(), String> {
    const CASE: &str = "lock_is_exclusive_and_released_on_drop";
    let store = factory.create().await;
    let identity = sample::identity("locked");
    let held = must(CASE, "first lock", store.lock(&identity).await);
    if held.holds_nothing() {
        return Err("the store's lock claims nothing".into());
    }
    match store.lock(&identity).await {
        Err(StoreError::InUse {
            identity: named,
            holder,
        }) => {
            assert!(
                !named.is_empty() && !holder.is_empty(),
                "contract case {CASE}: InUse should name the upload and its holder"
            );
        }
        other => panic!("contract case {CASE}: a second claim gave {other:?}, not InUse"),
    }
    let other = must(
        CASE,
        "lock of another identity",
        store.lock(&sample::identity("unrelated")).await,
    );
    if let Some(second_handle) = factory.reopen().await {
        match second_handle.lock(&identity).await {
            Err(StoreError::InUse { .. }) => {}
            other => panic!(
                "contract case {CASE}: a claim through a second handle on the same storage gave {other:?}, not InUse"
            ),
        }
    }
    drop(held);
    let again = must(CASE, "lock after release", store.lock(&identity).await);
    drop(again);
    drop(other);
    Ok(())
}

/// Two holders claiming one upload at the same moment, from two tasks (through two handles on the
/// same storage when the store reopens, else through one): exactly one gets the lock and the other
/// is refused with [`StoreError::InUse`], round after round. A lock that checks and then claims in
/// two steps lets both through.
///
/// Not applicable to stores whose `lock` claims nothing ([`StoreLock::none`](crate::StoreLock::none)).
pub async fn racing_claims_on_one_upload_admit_one_holder(
    factory: &dyn StoreFactory,
) -> Result<(), String> {
    const CASE: &str = "racing_claims_on_one_upload_admit_one_holder";
    const ROUNDS: u32 = 16;
    let store = factory.create().await;
    let rival = match factory.reopen().await {
        Some(second_handle) => second_handle,
        None => store.clone(),
    };
    for round in 0..ROUNDS {
        let identity = sample::identity(&format!("raced-{round}"));
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let claims = [store.clone(), rival.clone()].map(|holder| {
            let start = start.clone();
            let identity = identity.clone();
            tokio::spawn(async move {
                start.wait().await;
                holder.lock(&identity).await
            })
        });
        let mut outcomes = Vec::new();
        for claim in claims {
            outcomes.push(claim.await.unwrap_or_else(|err| {
                panic!("contract case {CASE}: a claiming task failed: {err}")
            }));
        }
        let held = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(lock) if !lock.holds_nothing()))
            .count();
        if held == 0
            && outcomes
                .iter()
                .all(|outcome| matches!(outcome, Ok(lock) if lock.holds_nothing()))
        {
            return Err("the store's lock claims nothing".into());
        }
        let refused = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(StoreError::InUse { .. })))
            .count();
        assert!(
            held == 1 && refused == 1,
            "contract case {CASE}: round {round}: two claims on one upload at once gave {outcomes:?}; \
             exactly one must hold the lock and the other be refused with InUse"
        );
    }
    Ok(())
}
