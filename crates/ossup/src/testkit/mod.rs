//! The contract suites every [`CheckpointStore`] and every
//! [`PartScheduler`](crate::PartScheduler) pass, public so a store or scheduler written outside this
//! crate can prove it behaves like the ones that ship.
//!
//! Implement [`StoreFactory`] for your store and call [`run_store_contract`] from a test: it runs
//! every case (round trips, idempotent, batched and concurrent recording, remove and list,
//! reopening, corruption, locking, racing claims, and a property test against a model) and panics
//! with the case's name and what went wrong on the first violation. Each case is also a public function of its own, in the
//! manner of arrow-rs object_store's `integration` module. [`crash`] checks that a writer killed
//! with SIGKILL leaves a consistent store. [`run_scheduler_contract`] does the same for a scheduler
//! (see [`scheduler`]).
//!
//! ```
//! use std::sync::Arc;
//! use ossup::testkit::{run_store_contract, StoreFactory};
//! use ossup::{CheckpointStore, MemoryStore};
//!
//! struct Memory;
//!
//! #[async_trait::async_trait]
//! impl StoreFactory for Memory {
//!     async fn create(&self) -> Arc<dyn CheckpointStore> {
//!         Arc::new(MemoryStore::new())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let report = run_store_contract(&Memory).await;
//! // A memory store cannot be reopened or damaged; everything else ran and passed.
//! assert!(report.not_applicable().all(|(case, _)| case.starts_with("reopen") || case.starts_with("corrupt")));
//! # }
//! ```
//!
//! `docs/checkpoint-stores.md` walks through a durable store's factory.

pub mod crash;
mod model;
mod sample;
pub mod scheduler;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};
use crate::store::{CheckpointStore, StoreError};

pub use model::matches_the_model;
pub use scheduler::run_scheduler_contract;

/// Makes the stores the contract suite runs against.
///
/// Only [`create`](Self::create) is required; a durable store also implements
/// [`reopen`](Self::reopen) and [`corrupt`](Self::corrupt), so the suite can check what survives a
/// restart and what damage is caught.
#[async_trait::async_trait]
pub trait StoreFactory: Send + Sync {
    /// A new, empty store that shares nothing with the stores made before it.
    async fn create(&self) -> Arc<dyn CheckpointStore>;

    /// Another handle on the storage of the store most recently made by [`create`](Self::create),
    /// opened as the next run of a program (or another process) would open it; `None` (the default)
    /// for stores that keep nothing beyond their handles.
    ///
    /// The suite may still hold other handles on that storage, except around
    /// [`corrupt`](Self::corrupt).
    async fn reopen(&self) -> Option<Arc<dyn CheckpointStore>> {
        None
    }

    /// Damages, as `how` says, what the most recently created store holds for `identity`. The suite
    /// has dropped every handle on the store first.
    ///
    /// Returns how far the damage reaches, or `None` (the default) when this store cannot be
    /// damaged that way; the case is then reported as not applicable. Damage must be of a kind the
    /// store promises to detect: not, for example, a cut inside the last record of a journal, which
    /// is what a crash leaves and reads as that record never written.
    async fn corrupt(&self, identity: &UploadIdentity, how: Corruption) -> Option<DamageScope> {
        let _ = (identity, how);
        None
    }
}

/// A way of damaging a stored checkpoint, for [`StoreFactory::corrupt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Corruption {
    /// The stored bytes cut short (a file truncated; a database missing its last pages).
    Truncated,
    /// Random bytes written over part of the stored bytes.
    Garbage,
    /// One byte of one stored part changed.
    FlippedByte,
    /// A block of storage (a database page, a disk block of a file) overwritten with random bytes.
    DamagedPage,
    /// Another program's file where the checkpoint should be.
    Foreign,
    /// A checkpoint that says it was written by a newer format version.
    FutureVersion,
}

impl Corruption {
    /// Every kind of damage, in the order the suite applies them.
    pub const ALL: [Corruption; 6] = [
        Corruption::Truncated,
        Corruption::Garbage,
        Corruption::FlippedByte,
        Corruption::DamagedPage,
        Corruption::Foreign,
        Corruption::FutureVersion,
    ];
}

/// How far a [`Corruption`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageScope {
    /// Only the damaged identity's checkpoint (a journal file of its own): every other checkpoint
    /// must still load exactly.
    Checkpoint,
    /// The whole store (one database file): other checkpoints may be set aside with it, but none
    /// may load as anything other than what was saved.
    Store,
}

/// What happened to each case of a suite run. Failures do not appear here: they panic.
#[derive(Debug, Default, Clone)]
pub struct ContractReport {
    cases: Vec<(String, Outcome)>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Passed,
    NotApplicable(String),
}

impl ContractReport {
    /// The cases that ran and passed.
    pub fn passed(&self) -> impl Iterator<Item = &str> {
        self.cases
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Outcome::Passed => Some(name.as_str()),
                Outcome::NotApplicable(_) => None,
            })
    }

    /// The cases that did not apply to this store, each with the reason.
    pub fn not_applicable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.cases
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Outcome::NotApplicable(why) => Some((name.as_str(), why.as_str())),
                Outcome::Passed => None,
            })
    }

    /// Panics unless every case ran: what a durable, locking store's test asserts.
    pub fn assert_every_case_ran(&self) {
        let skipped: Vec<String> = self
            .not_applicable()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        assert!(
            skipped.is_empty(),
            "contract cases that did not run: {skipped:#?}"
        );
    }

    fn record(&mut self, name: impl Into<String>, outcome: Result<(), String>) {
        let outcome = match outcome {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::NotApplicable(why),
        };
        self.cases.push((name.into(), outcome));
    }
}

impl fmt::Display for ContractReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, outcome) in &self.cases {
            match outcome {
                Outcome::Passed => writeln!(f, "passed          {name}")?,
                Outcome::NotApplicable(why) => writeln!(f, "not applicable  {name} ({why})")?,
            }
        }
        Ok(())
    }
}

/// How hard the suite pushes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContractOptions {
    /// Random operation sequences checked against the model.
    pub model_cases: u32,
    /// Seed of every random choice, so a failure repeats.
    pub seed: u64,
    /// Tasks recording at once in the concurrency case.
    pub concurrent_tasks: u32,
    /// Parts each of those tasks records.
    pub parts_per_task: u32,
}

impl Default for ContractOptions {
    fn default() -> Self {
        Self {
            model_cases: 32,
            seed: 0x0055_AB1E_C0DE,
            concurrent_tasks: 64,
            parts_per_task: 50,
        }
    }
}

/// Runs every contract case against stores made by `factory`, with the default
/// [`ContractOptions`]. Panics, naming the case, on the first violation.
pub async fn run_store_contract(factory: &dyn StoreFactory) -> ContractReport {
    run_store_contract_with(factory, &ContractOptions::default()).await
}

/// Runs every contract case with the given options.
pub async fn run_store_contract_with(
    factory: &dyn StoreFactory,
    options: &ContractOptions,
) -> ContractReport {
    let mut report = ContractReport::default();
    round_trips_every_field(&*factory.create().await).await;
    report.record("round_trips_every_field", Ok(()));
    missing_checkpoints_load_as_none_and_remove_quietly(&*factory.create().await).await;
    report.record(
        "missing_checkpoints_load_as_none_and_remove_quietly",
        Ok(()),
    );
    recording_without_a_saved_checkpoint_is_not_found(&*factory.create().await).await;
    report.record("recording_without_a_saved_checkpoint_is_not_found", Ok(()));
    recording_a_part_twice_is_the_same_as_once(&*factory.create().await).await;
    report.record("recording_a_part_twice_is_the_same_as_once", Ok(()));
    recording_replaces_a_part_with_the_same_number(&*factory.create().await).await;
    report.record("recording_replaces_a_part_with_the_same_number", Ok(()));
    recording_many_parts_at_once_is_the_same_as_one_by_one(&*factory.create().await).await;
    report.record(
        "recording_many_parts_at_once_is_the_same_as_one_by_one",
        Ok(()),
    );
    saving_replaces_the_whole_checkpoint(&*factory.create().await).await;
    report.record("saving_replaces_the_whole_checkpoint", Ok(()));
    remove_and_list_track_saved_checkpoints(&*factory.create().await).await;
    report.record("remove_and_list_track_saved_checkpoints", Ok(()));
    concurrent_records_lose_nothing(
        factory.create().await,
        options.concurrent_tasks,
        options.parts_per_task,
    )
    .await;
    report.record("concurrent_records_lose_nothing", Ok(()));
    report.record(
        "lock_is_exclusive_and_released_on_drop",
        lock_is_exclusive_and_released_on_drop(factory).await,
    );
    report.record(
        "racing_claims_on_one_upload_admit_one_holder",
        racing_claims_on_one_upload_admit_one_holder(factory).await,
    );
    report.record(
        "reopened_store_sees_everything_recorded",
        reopened_store_sees_everything_recorded(factory).await,
    );
    for how in Corruption::ALL {
        report.record(
            format!("corrupt_{how:?}_is_detected_and_set_aside"),
            corruption_is_detected_and_set_aside(factory, how).await,
        );
    }
    matches_the_model(factory, options.model_cases, options.seed).await;
    report.record("matches_the_model", Ok(()));
    report
}

fn must<T>(case: &str, what: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|err| panic!("contract case {case}: {what} failed: {err}"))
}

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

/// Deterministic random numbers (SplitMix64) for seeded choices in the suite.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub(crate) fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let random = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&random[..chunk.len()]);
        }
    }
}

/// Fills `bytes` with random bytes from `seed`; for factories writing [`Corruption::Garbage`] or
/// [`Corruption::DamagedPage`] that repeats run to run.
pub fn seeded_garbage(seed: u64, bytes: &mut [u8]) {
    SplitMix::new(seed).fill(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, StoreLock};
    use futures::FutureExt as _;

    /// A memory store whose behaviour-bearing methods can be broken one at a time.
    #[derive(Debug, Default)]
    struct Broken {
        inner: MemoryStore,
        /// `lock` hands out a lock that claims to hold something but excludes nobody.
        lock_excludes_nobody: bool,
        /// `lock` says, with [`StoreLock::none`], that it claims nothing.
        lock_claims_nothing: bool,
        /// `record_parts` records only the first part of a batch.
        batch_keeps_only_the_first: bool,
    }

    #[async_trait::async_trait]
    impl CheckpointStore for Broken {
        async fn load(&self, id: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
            self.inner.load(id).await
        }
        async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
            self.inner.save(checkpoint).await
        }
        async fn record_part(
            &self,
            id: &UploadIdentity,
            part: &PartRecord,
        ) -> Result<(), StoreError> {
            self.inner.record_part(id, part).await
        }
        async fn record_parts(
            &self,
            id: &UploadIdentity,
            parts: &[PartRecord],
        ) -> Result<(), StoreError> {
            if self.batch_keeps_only_the_first {
                return self
                    .inner
                    .record_parts(id, &parts[..parts.len().min(1)])
                    .await;
            }
            self.inner.record_parts(id, parts).await
        }
        async fn remove(&self, id: &UploadIdentity) -> Result<(), StoreError> {
            self.inner.remove(id).await
        }
        async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
            self.inner.list().await
        }
        async fn lock(&self, id: &UploadIdentity) -> Result<StoreLock, StoreError> {
            if self.lock_excludes_nobody {
                return Ok(StoreLock::held_by(()));
            }
            if self.lock_claims_nothing {
                return Ok(StoreLock::none());
            }
            self.inner.lock(id).await
        }
    }

    /// Makes each store with the function it holds.
    struct BrokenFactory(fn() -> Broken);

    #[async_trait::async_trait]
    impl StoreFactory for BrokenFactory {
        async fn create(&self) -> Arc<dyn CheckpointStore> {
            Arc::new((self.0)())
        }
    }

    fn excludes_nobody() -> Broken {
        Broken {
            lock_excludes_nobody: true,
            ..Broken::default()
        }
    }

    /// The panic message of `case`, which must panic.
    async fn violation<T>(case: impl std::future::Future<Output = T>) -> String {
        let panic = std::panic::AssertUnwindSafe(case)
            .catch_unwind()
            .await
            .err()
            .expect("the broken store must fail the case");
        panic
            .downcast::<String>()
            .map(|message| *message)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_suite_catches_a_lock_that_excludes_nobody() {
        let factory = BrokenFactory(excludes_nobody);
        let message = violation(lock_is_exclusive_and_released_on_drop(&factory)).await;
        assert!(message.contains("a second claim gave Ok"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_catches_racing_claims_that_both_get_the_lock() {
        let factory = BrokenFactory(excludes_nobody);
        let message = violation(racing_claims_on_one_upload_admit_one_holder(&factory)).await;
        assert!(
            message.contains("two claims on one upload at once gave"),
            "{message}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_claims_on_a_memory_store_admit_one_holder() {
        let factory = BrokenFactory(Broken::default);
        assert_eq!(
            racing_claims_on_one_upload_admit_one_holder(&factory).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_lock_that_claims_nothing_is_not_applicable_rather_than_passed() {
        let factory = BrokenFactory(|| Broken {
            lock_claims_nothing: true,
            ..Broken::default()
        });
        let report = run_store_contract(&factory).await;
        let skipped: Vec<&str> = report.not_applicable().map(|(case, _)| case).collect();
        assert!(
            skipped.contains(&"lock_is_exclusive_and_released_on_drop")
                && skipped.contains(&"racing_claims_on_one_upload_admit_one_holder"),
            "{report}"
        );
    }

    #[tokio::test]
    async fn the_suite_catches_a_batch_that_loses_records() {
        let store = Broken {
            batch_keeps_only_the_first: true,
            ..Broken::default()
        };
        let message = violation(recording_many_parts_at_once_is_the_same_as_one_by_one(
            &store,
        ))
        .await;
        assert!(
            message
                .contains("a batch of records loads differently from the same records one by one"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_shared_or_boxed_store_passes_the_contract_suite() {
        struct Shared;

        #[async_trait::async_trait]
        impl StoreFactory for Shared {
            async fn create(&self) -> Arc<dyn CheckpointStore> {
                // An `Arc` of a store, itself behind the suite's `Arc<dyn CheckpointStore>`: every
                // method must reach the memory store, locks included.
                Arc::new(Arc::new(MemoryStore::new()))
            }
        }

        struct Boxed;

        #[async_trait::async_trait]
        impl StoreFactory for Boxed {
            async fn create(&self) -> Arc<dyn CheckpointStore> {
                let boxed: Box<dyn CheckpointStore> = Box::new(MemoryStore::new());
                Arc::new(boxed)
            }
        }

        for factory in [&Shared as &dyn StoreFactory, &Boxed] {
            let report = run_store_contract(factory).await;
            let passed: Vec<&str> = report.passed().collect();
            assert!(
                passed.contains(&"lock_is_exclusive_and_released_on_drop")
                    && passed.contains(&"racing_claims_on_one_upload_admit_one_holder"),
                "{report}"
            );
        }
    }

    #[test]
    fn seeded_garbage_repeats_for_a_seed_and_differs_across_seeds() {
        let (mut a, mut b, mut c) = ([0u8; 33], [0u8; 33], [0u8; 33]);
        seeded_garbage(1, &mut a);
        seeded_garbage(1, &mut b);
        seeded_garbage(2, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
