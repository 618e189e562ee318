//! The property test: random sequences of operations give the answers of a plain in-memory model.
//!
//! Sequences come from proptest strategies and failing ones are shrunk to a minimal sequence, but the
//! loop is driven here rather than by `proptest!`, because every step awaits the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::{StoreFactory, sample};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};
use crate::store::{CheckpointStore, StoreError};

/// Uploads the operations draw from: few, so operations collide on them.
const UPLOADS: usize = 3;
/// Part numbers the operations draw from: few, so records replace each other.
const PART_NUMBERS: u32 = 6;
/// Shrinking steps before the smallest failing sequence found so far is reported.
const MAX_SHRINK_STEPS: u32 = 200;

#[derive(Debug, Clone)]
enum Op {
    Save {
        upload: usize,
        generation: u8,
        parts: Vec<(u32, u8)>,
    },
    Record {
        upload: usize,
        number: u32,
        variant: u8,
    },
    Remove {
        upload: usize,
    },
    Load {
        upload: usize,
    },
    List,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let upload = 0..UPLOADS;
    let number = 1..=PART_NUMBERS;
    prop_oneof![
        2 => (upload.clone(), any::<u8>(), proptest::collection::vec((number.clone(), any::<u8>()), 0..4))
            .prop_map(|(upload, generation, parts)| Op::Save { upload, generation, parts }),
        6 => (upload.clone(), number, any::<u8>())
            .prop_map(|(upload, number, variant)| Op::Record { upload, number, variant }),
        1 => upload.clone().prop_map(|upload| Op::Remove { upload }),
        3 => upload.prop_map(|upload| Op::Load { upload }),
        1 => Just(Op::List),
        1 => Just(Op::Reopen),
    ]
}

fn identity(upload: usize) -> UploadIdentity {
    sample::identity(&format!("model-{upload}"))
}

fn checkpoint(upload: usize, generation: u8, parts: &[(u32, u8)]) -> Checkpoint {
    let mut checkpoint = sample::plain_checkpoint(&format!("model-{upload}"), 0);
    checkpoint.upload_id = format!("upload-{upload}-generation-{generation}");
    checkpoint.created_unix = u64::from(generation);
    for &(number, variant) in parts {
        checkpoint
            .parts
            .insert(number, sample::part(number, variant));
    }
    checkpoint
}

/// Runs `ops` on a fresh store and on the model; the first disagreement, described.
async fn run(factory: &dyn StoreFactory, ops: &[Op]) -> Result<(), String> {
    let mut store: Arc<dyn CheckpointStore> = factory.create().await;
    let mut model: BTreeMap<UploadIdentity, Checkpoint> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| Err(format!("step {step} ({op:?}): {what}"));
        match op {
            Op::Save {
                upload,
                generation,
                parts,
            } => {
                let checkpoint = checkpoint(*upload, *generation, parts);
                if let Err(err) = store.save(&checkpoint).await {
                    return fail(format!("save failed: {err}"));
                }
                model.insert(checkpoint.identity.clone(), checkpoint);
            }
            Op::Record {
                upload,
                number,
                variant,
            } => {
                let identity = identity(*upload);
                let part: PartRecord = sample::part(*number, *variant);
                let result = store.record_part(&identity, &part).await;
                match (model.get_mut(&identity), result) {
                    (Some(checkpoint), Ok(())) => {
                        checkpoint.parts.insert(part.number, part);
                    }
                    (None, Err(StoreError::NotFound(_))) => {}
                    (expected, got) => {
                        return fail(format!(
                            "record_part gave {got:?}; the model has {}",
                            if expected.is_some() {
                                "a checkpoint, so Ok"
                            } else {
                                "no checkpoint, so NotFound"
                            }
                        ));
                    }
                }
            }
            Op::Remove { upload } => {
                let identity = identity(*upload);
                if let Err(err) = store.remove(&identity).await {
                    return fail(format!("remove failed: {err}"));
                }
                model.remove(&identity);
            }
            Op::Load { upload } => {
                let identity = identity(*upload);
                match store.load(&identity).await {
                    Ok(loaded) if loaded.as_ref() == model.get(&identity) => {}
                    got => {
                        return fail(format!(
                            "load gave {got:?}, the model {:?}",
                            model.get(&identity)
                        ));
                    }
                }
            }
            Op::List => match store.list().await {
                Ok(mut listed) => {
                    listed.sort();
                    let expected: Vec<UploadIdentity> = model.keys().cloned().collect();
                    if listed != expected {
                        return fail(format!("list gave {listed:?}, the model {expected:?}"));
                    }
                }
                Err(err) => return fail(format!("list failed: {err}")),
            },
            Op::Reopen => {
                // Drop the old handle first, as a restarted program would.
                drop(store);
                store = match factory.reopen().await {
                    Some(reopened) => reopened,
                    None => factory_reopen_unavailable(factory, &model).await?,
                };
            }
        }
    }
    for upload in 0..UPLOADS {
        let identity = identity(upload);
        match store.load(&identity).await {
            Ok(loaded) if loaded.as_ref() == model.get(&identity) => {}
            got => {
                return Err(format!(
                    "after all steps, load of upload {upload} gave {got:?}, the model {:?}",
                    model.get(&identity)
                ));
            }
        }
    }
    Ok(())
}

/// For stores that cannot be reopened, a "reopen" keeps the same storage: rebuild a handle with the
/// model's content so the sequence goes on meaningfully.
async fn factory_reopen_unavailable(
    factory: &dyn StoreFactory,
    model: &BTreeMap<UploadIdentity, Checkpoint>,
) -> Result<Arc<dyn CheckpointStore>, String> {
    let store = factory.create().await;
    for checkpoint in model.values() {
        store
            .save(checkpoint)
            .await
            .map_err(|err| format!("refilling a fresh store failed: {err}"))?;
    }
    Ok(store)
}

/// Checks `cases` random operation sequences (save, record, remove, load, list, reopen) against a
/// model, each on a fresh store from `factory`; panics with the smallest failing sequence found.
///
/// The same `seed` gives the same sequences. The returned future is not `Send` (it holds proptest's
/// shrinking state across awaits): await it in the test itself rather than spawning it.
pub async fn matches_the_model(factory: &dyn StoreFactory, cases: u32, seed: u64) {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = proptest::collection::vec(op_strategy(), 1..40);
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .expect("operation sequences are always generated");
        let Err(first) = run(factory, &tree.current()).await else {
            continue;
        };
        let mut smallest = (tree.current(), first);
        let mut steps = 0;
        while steps < MAX_SHRINK_STEPS && tree.simplify() {
            steps += 1;
            match run(factory, &tree.current()).await {
                Err(why) => smallest = (tree.current(), why),
                Ok(()) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
        panic!(
            "contract case matches_the_model: case {case} of seed {seed:#x} disagrees with the model: {}\nsmallest failing sequence ({} operations): {:#?}",
            smallest.1,
            smallest.0.len(),
            smallest.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, StoreLock};

    struct Memory;

    #[async_trait::async_trait]
    impl StoreFactory for Memory {
        async fn create(&self) -> Arc<dyn CheckpointStore> {
            Arc::new(MemoryStore::new())
        }
    }

    /// A store that forgets every part numbered 5: the model test must catch it.
    #[derive(Debug, Default)]
    struct ForgetsPartFive(MemoryStore);

    #[async_trait::async_trait]
    impl CheckpointStore for ForgetsPartFive {
        async fn load(&self, id: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
            self.0.load(id).await
        }
        async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
            self.0.save(checkpoint).await
        }
        async fn record_part(
            &self,
            id: &UploadIdentity,
            part: &PartRecord,
        ) -> Result<(), StoreError> {
            if part.number == 5 {
                return match self.0.load(id).await? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound(id.to_string())),
                };
            }
            self.0.record_part(id, part).await
        }
        async fn record_parts(
            &self,
            id: &UploadIdentity,
            parts: &[PartRecord],
        ) -> Result<(), StoreError> {
            for part in parts {
                self.record_part(id, part).await?;
            }
            Ok(())
        }
        async fn remove(&self, id: &UploadIdentity) -> Result<(), StoreError> {
            self.0.remove(id).await
        }
        async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
            self.0.list().await
        }
        async fn lock(&self, id: &UploadIdentity) -> Result<StoreLock, StoreError> {
            self.0.lock(id).await
        }
    }

    struct Forgetful;

    #[async_trait::async_trait]
    impl StoreFactory for Forgetful {
        async fn create(&self) -> Arc<dyn CheckpointStore> {
            Arc::new(ForgetsPartFive::default())
        }
    }

    #[tokio::test]
    async fn the_memory_store_matches_the_model() {
        matches_the_model(&Memory, 64, 7).await;
    }

    #[test]
    fn a_store_that_drops_a_record_fails_with_a_shrunk_sequence() {
        // The model's future holds proptest's value tree across awaits and is not `Send`, so it runs
        // on a runtime of its own in a thread whose panic is the outcome.
        let outcome = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(matches_the_model(&Forgetful, 64, 7))
        })
        .join();
        let panic = outcome.expect_err("the forgetful store must fail the model test");
        let message = panic.downcast::<String>().map(|m| *m).unwrap_or_default();
        assert!(message.contains("disagrees with the model"), "{message}");
        // Shrinking gets it down to: save, record part 5, then a read (or the final check).
        let operations: usize = message
            .split("smallest failing sequence (")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the message gives the sequence length");
        assert!(operations <= 3, "{message}");
    }
}
