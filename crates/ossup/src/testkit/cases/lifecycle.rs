//! Cases on the life of a checkpoint: saving, loading, replacing, removing and listing.

use std::collections::BTreeSet;

use super::must;
use crate::checkpoint::{Checkpoint, UploadIdentity};
use crate::store::CheckpointStore;
use crate::testkit::sample;

/// Every field of a checkpoint and its parts comes back exactly: unicode, empty strings, extreme
/// integers, MD5 present and absent.
pub async fn round_trips_every_field(store: &dyn CheckpointStore) {
    const CASE: &str = "round_trips_every_field";
    for checkpoint in [
        sample::extreme_checkpoint(),
        sample::plain_checkpoint("plain", 0),
    ] {
        must(CASE, "save", store.save(&checkpoint).await);
        let loaded = must(CASE, "load", store.load(&checkpoint.identity).await);
        assert_eq!(
            loaded.as_ref(),
            Some(&checkpoint),
            "contract case {CASE}: a saved checkpoint loads differently"
        );
    }
    let mut checkpoint = sample::plain_checkpoint("recorded", 0);
    must(CASE, "save", store.save(&checkpoint).await);
    for part in sample::extreme_parts() {
        must(
            CASE,
            "record_part",
            store.record_part(&checkpoint.identity, &part).await,
        );
        checkpoint.parts.insert(part.number, part);
    }
    let loaded = must(CASE, "load", store.load(&checkpoint.identity).await);
    assert_eq!(
        loaded,
        Some(checkpoint),
        "contract case {CASE}: recorded parts load differently"
    );
}

/// Loading an identity never saved gives `None`; removing it is not an error; listing an empty store
/// gives nothing.
pub async fn missing_checkpoints_load_as_none_and_remove_quietly(store: &dyn CheckpointStore) {
    const CASE: &str = "missing_checkpoints_load_as_none_and_remove_quietly";
    let identity = sample::identity("never-saved");
    assert_eq!(must(CASE, "load", store.load(&identity).await), None);
    must(CASE, "remove", store.remove(&identity).await);
    assert_eq!(must(CASE, "list", store.list().await), Vec::new());
}

/// Saving replaces the whole checkpoint: parts recorded for the old one are gone.
pub async fn saving_replaces_the_whole_checkpoint(store: &dyn CheckpointStore) {
    const CASE: &str = "saving_replaces_the_whole_checkpoint";
    let old = sample::plain_checkpoint("resaved", 4);
    must(CASE, "save", store.save(&old).await);
    must(
        CASE,
        "record_part",
        store.record_part(&old.identity, &sample::part(7, 0)).await,
    );
    let mut new = sample::plain_checkpoint("resaved", 0);
    new.upload_id = "a-new-multipart-upload".into();
    new.parts.insert(1, sample::part(1, 5));
    must(CASE, "save", store.save(&new).await);
    assert_eq!(
        must(CASE, "load", store.load(&new.identity).await),
        Some(new.clone()),
        "contract case {CASE}: parts of the replaced checkpoint survived the save"
    );
    must(
        CASE,
        "record_part",
        store.record_part(&new.identity, &sample::part(2, 5)).await,
    );
    let loaded = must(CASE, "load", store.load(&new.identity).await)
        .unwrap_or_else(|| panic!("{CASE}: the checkpoint saved over the old one loads"));
    assert_eq!(loaded.parts.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
}

/// `list` names exactly the saved identities; `remove` removes one and touches no other.
pub async fn remove_and_list_track_saved_checkpoints(store: &dyn CheckpointStore) {
    const CASE: &str = "remove_and_list_track_saved_checkpoints";
    let checkpoints: Vec<Checkpoint> = (0..4)
        .map(|i| sample::plain_checkpoint(&format!("listed-{i}"), i))
        .collect();
    for checkpoint in &checkpoints {
        must(CASE, "save", store.save(checkpoint).await);
    }
    let expected: BTreeSet<UploadIdentity> =
        checkpoints.iter().map(|c| c.identity.clone()).collect();
    let listed: BTreeSet<UploadIdentity> =
        must(CASE, "list", store.list().await).into_iter().collect();
    assert_eq!(listed, expected, "contract case {CASE}: list after saves");

    must(CASE, "remove", store.remove(&checkpoints[1].identity).await);
    must(
        CASE,
        "remove again",
        store.remove(&checkpoints[1].identity).await,
    );
    assert_eq!(
        must(CASE, "load", store.load(&checkpoints[1].identity).await),
        None
    );
    for checkpoint in [&checkpoints[0], &checkpoints[2], &checkpoints[3]] {
        assert_eq!(
            must(CASE, "load", store.load(&checkpoint.identity).await).as_ref(),
            Some(checkpoint),
            "contract case {CASE}: removing one checkpoint changed another"
        );
    }
    let listed = must(CASE, "list", store.list().await);
    assert_eq!(listed.len(), 3, "contract case {CASE}: list after remove");
    assert!(!listed.contains(&checkpoints[1].identity));
}
