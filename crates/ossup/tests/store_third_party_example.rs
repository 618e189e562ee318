//! The example of `docs/checkpoint-stores.md`, compiled and run: a store written outside ossup (one
//! JSON file per upload) proving itself with the contract suite.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ossup::testkit::{
    ContractOptions, Corruption, DamageScope, StoreFactory, run_store_contract_with,
};
use ossup::{Checkpoint, CheckpointStore, PartRecord, StoreError, StoreLock, UploadIdentity};

/// Each checkpoint as `<fingerprint>.json`, rewritten whole on every change. Simple, and fine for a
/// few hundred parts; the shipped `FileStore` appends instead.
#[derive(Debug)]
struct JsonDirStore {
    dir: PathBuf,
    /// Serialises read-modify-write of the files.
    writing: tokio::sync::Mutex<()>,
}

const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    format: u32,
    checkpoint: Checkpoint,
}

impl JsonDirStore {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn path(&self, identity: &UploadIdentity) -> PathBuf {
        self.dir.join(format!("{}.json", identity.fingerprint()))
    }

    fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            location: path.display().to_string(),
            source,
        }
    }

    async fn read(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let path = self.path(identity);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Self::io(&path, err)),
        };
        let reason = match serde_json::from_slice::<Stored>(&bytes) {
            Ok(stored) if stored.format > FORMAT => {
                return Err(StoreError::UnsupportedVersion {
                    location: path.display().to_string(),
                    found: stored.format,
                    supported: FORMAT,
                });
            }
            Ok(stored) if stored.checkpoint.identity == *identity => {
                return Ok(Some(stored.checkpoint));
            }
            Ok(_) => "it holds another upload's checkpoint".to_string(),
            Err(err) => err.to_string(),
        };
        // Never trust it again, never lose it: move it aside and say where.
        let aside = path.with_extension("json.corrupt");
        tokio::fs::rename(&path, &aside)
            .await
            .map_err(|err| Self::io(&path, err))?;
        Err(StoreError::Corrupt {
            location: path.display().to_string(),
            reason,
            set_aside_to: Some(aside.display().to_string()),
        })
    }

    async fn write(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let path = self.path(&checkpoint.identity);
        let temp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&Stored {
            format: FORMAT,
            checkpoint: checkpoint.clone(),
        })
        .map_err(|err| StoreError::Other(err.to_string()))?;
        tokio::fs::write(&temp, bytes)
            .await
            .map_err(|err| Self::io(&temp, err))?;
        let file = tokio::fs::File::open(&temp)
            .await
            .map_err(|err| Self::io(&temp, err))?;
        file.sync_all().await.map_err(|err| Self::io(&temp, err))?;
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(|err| Self::io(&path, err))
    }
}

#[async_trait::async_trait]
impl CheckpointStore for JsonDirStore {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let _writing = self.writing.lock().await;
        self.read(identity).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        self.write(checkpoint).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        let mut checkpoint = self
            .read(identity)
            .await?
            .ok_or_else(|| StoreError::NotFound(identity.to_string()))?;
        checkpoint.parts.insert(part.number, part.clone());
        self.write(&checkpoint).await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        // A batch costs one rewrite of the file, not one per part.
        let _writing = self.writing.lock().await;
        let mut checkpoint = self
            .read(identity)
            .await?
            .ok_or_else(|| StoreError::NotFound(identity.to_string()))?;
        for part in parts {
            checkpoint.parts.insert(part.number, part.clone());
        }
        self.write(&checkpoint).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        let path = self.path(identity);
        match tokio::fs::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Self::io(&path, err)),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        let _writing = self.writing.lock().await;
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|err| Self::io(&self.dir, err))?;
        let mut identities = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|err| Self::io(&self.dir, err))?
        {
            if entry.path().extension().is_some_and(|ext| ext == "json") {
                let bytes = tokio::fs::read(entry.path()).await.unwrap_or_default();
                if let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) {
                    identities.push(stored.checkpoint.identity);
                }
            }
        }
        Ok(identities)
    }

    async fn lock(&self, _identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        // Nothing here keeps a second process off a file; say so rather than pretend.
        Ok(StoreLock::none())
    }
}

/// Makes each store in a fresh temporary directory; reopens and damages the latest one.
#[derive(Default)]
struct JsonDirFactory {
    latest: Mutex<Option<tempfile::TempDir>>,
}

impl JsonDirFactory {
    fn dir(&self) -> PathBuf {
        self.latest
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .path()
            .to_path_buf()
    }
}

#[async_trait::async_trait]
impl StoreFactory for JsonDirFactory {
    async fn create(&self) -> Arc<dyn CheckpointStore> {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonDirStore::new(dir.path());
        *self.latest.lock().unwrap() = Some(dir);
        Arc::new(store)
    }

    async fn reopen(&self) -> Option<Arc<dyn CheckpointStore>> {
        Some(Arc::new(JsonDirStore::new(&self.dir())))
    }

    async fn corrupt(&self, identity: &UploadIdentity, how: Corruption) -> Option<DamageScope> {
        let path = JsonDirStore::new(&self.dir()).path(identity);
        let mut bytes = std::fs::read(&path).unwrap();
        match how {
            Corruption::Truncated => bytes.truncate(bytes.len() / 2),
            Corruption::Garbage => bytes[..8].copy_from_slice(b"\x00\xff\x13garbg"),
            Corruption::Foreign => bytes = b"<xml>not ours</xml>".to_vec(),
            Corruption::FutureVersion => {
                let mut stored: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                stored["format"] = (FORMAT + 1).into();
                bytes = serde_json::to_vec(&stored).unwrap();
            }
            // JSON has no checksum: a changed digit still parses, so this store does not promise to
            // detect a flipped byte, and says so.
            _ => return None,
        }
        std::fs::write(&path, bytes).unwrap();
        Some(DamageScope::Checkpoint)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_dir_store_passes_the_contract_suite() {
    // Every record rewrites the whole file here, so the concurrency case is kept small.
    let mut options = ContractOptions::default();
    options.concurrent_tasks = 8;
    options.parts_per_task = 10;
    let report = run_store_contract_with(&JsonDirFactory::default(), &options).await;
    println!("{report}");
    let skipped: Vec<&str> = report.not_applicable().map(|(case, _)| case).collect();
    assert_eq!(
        skipped,
        [
            "lock_is_exclusive_and_released_on_drop",
            "racing_claims_on_one_upload_admit_one_holder",
            "corrupt_FlippedByte_is_detected_and_set_aside",
            "corrupt_DamagedPage_is_detected_and_set_aside",
        ]
    );
}
