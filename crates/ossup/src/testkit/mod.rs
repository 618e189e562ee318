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

mod cases;
pub mod crash;
mod model;
mod sample;
pub mod scheduler;

use std::fmt;
use std::sync::Arc;

use crate::checkpoint::UploadIdentity;
use crate::store::{CheckpointStore, CooperativeStore};

pub use cases::{
    a_finished_file_is_handed_to_the_next_claim, a_store_that_cannot_cooperate_says_so,
    claims_skip_recorded_parts_and_other_workers_claims, exactly_one_worker_claims_the_completion,
    expired_claims_are_taken_over_and_released_ones_are_free,
    expired_file_claims_are_taken_over_and_released_ones_are_free,
    live_file_claims_are_listed_by_bucket_and_prefix, racing_workers_never_claim_one_part_twice,
    racing_workers_never_hold_one_file_twice,
};
pub use cases::{
    concurrent_records_lose_nothing, corruption_is_detected_and_set_aside,
    lock_is_exclusive_and_released_on_drop, missing_checkpoints_load_as_none_and_remove_quietly,
    racing_claims_on_one_upload_admit_one_holder, recording_a_part_twice_is_the_same_as_once,
    recording_many_parts_at_once_is_the_same_as_one_by_one,
    recording_replaces_a_part_with_the_same_number,
    recording_without_a_saved_checkpoint_is_not_found, remove_and_list_track_saved_checkpoints,
    reopened_store_sees_everything_recorded, round_trips_every_field,
    saving_replaces_the_whole_checkpoint,
};
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

/// Makes the stores the cooperation cases run against: a store that can
/// [cooperate](crate::store::Cooperation), and other handles on its storage, as other workers
/// (processes, hosts) would open it.
#[async_trait::async_trait]
pub trait CooperativeStoreFactory: Send + Sync {
    /// A new, empty store that shares nothing with the stores made before it.
    async fn create(&self) -> Arc<dyn CooperativeStore>;

    /// Another handle on the storage of the store most recently made by [`create`](Self::create).
    async fn reopen(&self) -> Arc<dyn CooperativeStore>;
}

/// Runs every cooperation case (claims skip recorded and held parts, racing workers never share a
/// part, expired claims are taken over and released ones freed, one completer per upload; and for
/// whole files of a batch: racing workers never both hold a file, expired file claims are taken
/// over, a finished file's record is handed to the next claim, live file claims are listed) against stores made by `factory`. Panics, naming the case, on the first violation.
///
/// The expiry cases wait out leases of 400 ms in the store's own clock, so the suite takes a
/// few seconds.
pub async fn run_cooperation_contract(factory: &dyn CooperativeStoreFactory) -> ContractReport {
    let mut report = ContractReport::default();
    claims_skip_recorded_parts_and_other_workers_claims(factory).await;
    report.record(
        "claims_skip_recorded_parts_and_other_workers_claims",
        Ok(()),
    );
    racing_workers_never_claim_one_part_twice(factory).await;
    report.record("racing_workers_never_claim_one_part_twice", Ok(()));
    expired_claims_are_taken_over_and_released_ones_are_free(factory).await;
    report.record(
        "expired_claims_are_taken_over_and_released_ones_are_free",
        Ok(()),
    );
    exactly_one_worker_claims_the_completion(factory).await;
    report.record("exactly_one_worker_claims_the_completion", Ok(()));
    racing_workers_never_hold_one_file_twice(factory).await;
    report.record("racing_workers_never_hold_one_file_twice", Ok(()));
    expired_file_claims_are_taken_over_and_released_ones_are_free(factory).await;
    report.record(
        "expired_file_claims_are_taken_over_and_released_ones_are_free",
        Ok(()),
    );
    a_finished_file_is_handed_to_the_next_claim(factory).await;
    report.record("a_finished_file_is_handed_to_the_next_claim", Ok(()));
    live_file_claims_are_listed_by_bucket_and_prefix(factory).await;
    report.record("live_file_claims_are_listed_by_bucket_and_prefix", Ok(()));
    report
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
    use crate::checkpoint::{Checkpoint, PartRecord};
    use crate::store::StoreError;
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

    #[tokio::test]
    async fn the_memory_and_file_stores_say_they_cannot_cooperate() {
        a_store_that_cannot_cooperate_says_so(&MemoryStore::new()).await;
        let dir = tempfile::tempdir().unwrap();
        a_store_that_cannot_cooperate_says_so(&crate::FileStore::open(dir.path()).unwrap()).await;
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
