//! The contract suite and the crash-safety check run on [`FileStore`], with the damage a journal file
//! can suffer.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ossup::store::Durability;
use ossup::testkit::crash::CrashTest;
use ossup::testkit::{Corruption, DamageScope, StoreFactory, run_store_contract, seeded_garbage};
use ossup::{CheckpointStore, FileStore, UploadIdentity};

/// Makes each store in a temporary directory of its own; reopens and damages the latest.
struct Files {
    durability: Durability,
    latest: Mutex<Option<tempfile::TempDir>>,
}

impl Files {
    fn new(durability: Durability) -> Self {
        Self {
            durability,
            latest: Mutex::new(None),
        }
    }

    fn latest_dir(&self) -> PathBuf {
        self.latest
            .lock()
            .unwrap()
            .as_ref()
            .expect("create() comes first")
            .path()
            .to_path_buf()
    }
}

#[async_trait::async_trait]
impl StoreFactory for Files {
    async fn create(&self) -> Arc<dyn CheckpointStore> {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path())
            .unwrap()
            .with_durability(self.durability);
        *self.latest.lock().unwrap() = Some(dir);
        Arc::new(store)
    }

    async fn reopen(&self) -> Option<Arc<dyn CheckpointStore>> {
        let store = FileStore::open(self.latest_dir())
            .unwrap()
            .with_durability(self.durability);
        Some(Arc::new(store))
    }

    async fn corrupt(&self, identity: &UploadIdentity, how: Corruption) -> Option<DamageScope> {
        let store = FileStore::open(self.latest_dir()).unwrap();
        let path = store.journal_path(identity);
        let mut bytes = fs::read(&path).expect("the damaged journal exists");
        let len = bytes.len();
        match how {
            // Cut inside the saved header, which an atomic save never leaves half-written.
            Corruption::Truncated => bytes.truncate(40),
            Corruption::Garbage => seeded_garbage(1, &mut bytes[20..60]),
            // The middle of the journal is a saved or early appended record, never the last one.
            Corruption::FlippedByte => bytes[len / 2] ^= 0x10,
            Corruption::DamagedPage => seeded_garbage(2, &mut bytes[len / 4..len * 3 / 4]),
            Corruption::Foreign => {
                bytes = br#"{"upload_id":"from another tool","parts":[]}"#.to_vec();
            }
            Corruption::FutureVersion => bytes[8..12].copy_from_slice(&2u32.to_le_bytes()),
            _ => return None,
        }
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        Some(DamageScope::Checkpoint)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_passes_the_contract_suite() {
    let report = run_store_contract(&Files::new(Durability::PowerLoss)).await;
    report.assert_every_case_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_without_per_record_sync_passes_the_contract_suite() {
    let report = run_store_contract(&Files::new(Durability::ProcessCrash)).await;
    report.assert_every_case_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_keeps_every_acknowledged_part_across_sigkill() {
    CrashTest::new("file_store_keeps_every_acknowledged_part_across_sigkill")
        .run(|dir: PathBuf| async move {
            Arc::new(FileStore::open(dir).unwrap()) as Arc<dyn CheckpointStore>
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_without_per_record_sync_survives_sigkill_too() {
    CrashTest::new("file_store_without_per_record_sync_survives_sigkill_too")
        .seed(0x5EED_0002)
        .run(|dir: PathBuf| async move {
            let store = FileStore::open(dir)
                .unwrap()
                .with_durability(Durability::ProcessCrash);
            Arc::new(store) as Arc<dyn CheckpointStore>
        })
        .await;
}
