//! Cases on what outlives a store handle: reopening, and damage to what it stored.

use super::must;
use crate::store::{CheckpointStore, StoreError};
use crate::testkit::{Corruption, DamageScope, StoreFactory, sample};

/// A reopened store sees every saved checkpoint and recorded part, and nothing removed.
///
/// Not applicable to stores that cannot be reopened.
pub async fn reopened_store_sees_everything_recorded(
    factory: &dyn StoreFactory,
) -> Result<(), String> {
    const CASE: &str = "reopened_store_sees_everything_recorded";
    let store = factory.create().await;
    let mut kept = sample::extreme_checkpoint();
    must(CASE, "save", store.save(&kept).await);
    for part in sample::extreme_parts() {
        must(
            CASE,
            "record_part",
            store.record_part(&kept.identity, &part).await,
        );
        kept.parts.insert(part.number, part);
    }
    let removed = sample::plain_checkpoint("removed before reopen", 2);
    must(CASE, "save", store.save(&removed).await);
    must(CASE, "remove", store.remove(&removed.identity).await);
    drop(store);
    let Some(reopened) = factory.reopen().await else {
        return Err("the store cannot be reopened".into());
    };
    assert_eq!(
        must(
            CASE,
            "load after reopen",
            reopened.load(&kept.identity).await
        ),
        Some(kept.clone()),
        "contract case {CASE}"
    );
    assert_eq!(
        must(
            CASE,
            "load after reopen",
            reopened.load(&removed.identity).await
        ),
        None,
        "contract case {CASE}: a removed checkpoint came back"
    );
    assert_eq!(
        must(CASE, "list after reopen", reopened.list().await),
        vec![kept.identity.clone()]
    );
    // And it keeps working: records after the reopen land in the same checkpoint.
    let part = sample::part(77, 1);
    must(
        CASE,
        "record_part after reopen",
        reopened.record_part(&kept.identity, &part).await,
    );
    kept.parts.insert(part.number, part);
    drop(reopened);
    let again = factory
        .reopen()
        .await
        .expect("reopened once, reopens again");
    assert_eq!(
        must(
            CASE,
            "load after second reopen",
            again.load(&kept.identity).await
        ),
        Some(kept),
        "contract case {CASE}"
    );
    Ok(())
}

/// Damage of kind `how` is reported by `load`, never read as valid; a damaged checkpoint is set aside
/// so the next load is `None` and the store works on; a future-version one is reported and kept.
///
/// Not applicable when the factory cannot damage its store that way.
pub async fn corruption_is_detected_and_set_aside(
    factory: &dyn StoreFactory,
    how: Corruption,
) -> Result<(), String> {
    let case = format!("corrupt_{how:?}_is_detected_and_set_aside");
    let case = case.as_str();
    let store = factory.create().await;
    let mut victim = sample::plain_checkpoint("victim", 3);
    must(case, "save", store.save(&victim).await);
    for number in 4..=6 {
        let part = sample::part(number, 1);
        must(
            case,
            "record_part",
            store.record_part(&victim.identity, &part).await,
        );
        victim.parts.insert(number, part);
    }
    let mut bystander = sample::plain_checkpoint("bystander", 2);
    must(case, "save", store.save(&bystander).await);
    let part = sample::part(3, 2);
    must(
        case,
        "record_part",
        store.record_part(&bystander.identity, &part).await,
    );
    bystander.parts.insert(3, part);
    drop(store);

    let Some(scope) = factory.corrupt(&victim.identity, how).await else {
        return Err(format!("the factory cannot apply {how:?}"));
    };
    let store = factory
        .reopen()
        .await
        .unwrap_or_else(|| panic!("contract case {case}: a store that can be damaged must reopen"));

    if how == Corruption::FutureVersion {
        for attempt in ["first", "second"] {
            match store.load(&victim.identity).await {
                Err(StoreError::UnsupportedVersion {
                    found, supported, ..
                }) => assert!(
                    found > supported,
                    "contract case {case}: found version {found} is not newer than supported {supported}"
                ),
                other => panic!(
                    "contract case {case}: {attempt} load gave {other:?}, not UnsupportedVersion (which must stay in place)"
                ),
            }
        }
        return Ok(());
    }

    match store.load(&victim.identity).await {
        Err(StoreError::Corrupt {
            location, reason, ..
        }) => assert!(
            !location.is_empty() && !reason.is_empty(),
            "contract case {case}: Corrupt should say where and why"
        ),
        Ok(Some(loaded)) if loaded == victim => panic!(
            "contract case {case}: the damage went unnoticed; was the factory's damage of a kind the store cannot detect?"
        ),
        other => panic!("contract case {case}: load gave {other:?}, not Corrupt"),
    }
    assert_eq!(
        must(
            case,
            "load after set-aside",
            store.load(&victim.identity).await
        ),
        None,
        "contract case {case}: a damaged checkpoint must be set aside, so the next load finds none"
    );
    match (scope, store.load(&bystander.identity).await) {
        (_, Ok(Some(loaded))) => assert_eq!(
            loaded, bystander,
            "contract case {case}: another checkpoint loads differently after the damage"
        ),
        (DamageScope::Store, Ok(None) | Err(StoreError::Corrupt { .. })) => {}
        (DamageScope::Checkpoint, other) => {
            panic!("contract case {case}: damage to one checkpoint cost another: {other:?}")
        }
        (DamageScope::Store, Err(err)) => {
            panic!("contract case {case}: loading another checkpoint failed: {err}")
        }
    }
    // The store keeps working for the damaged identity.
    let mut fresh = sample::plain_checkpoint("victim", 1);
    fresh.upload_id = "after-the-damage".into();
    must(case, "save after damage", store.save(&fresh).await);
    let part = sample::part(2, 3);
    must(
        case,
        "record_part after damage",
        store.record_part(&fresh.identity, &part).await,
    );
    fresh.parts.insert(2, part);
    assert_eq!(
        must(case, "load after damage", store.load(&fresh.identity).await),
        Some(fresh),
        "contract case {case}"
    );
    Ok(())
}
