//! The contract suite and the crash-safety check run on [`SqliteStore`], and what only a shared
//! database has: foreign databases, damaged rows, leases across processes.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ossup::store::Durability;
use ossup::testkit::crash::CrashTest;
use ossup::testkit::{Corruption, DamageScope, StoreFactory, run_store_contract, seeded_garbage};
use ossup::{CheckpointStore, StoreError, UploadIdentity};
use ossup_sqlite::{SqliteOptions, SqliteStore};
use ossup_test_support::records::{checkpoint, part};

const DB: &str = "checkpoints.db";

/// Makes each store in a temporary directory of its own; reopens and damages the latest.
struct Databases {
    durability: Durability,
    latest: Mutex<Option<tempfile::TempDir>>,
}

impl Databases {
    fn new(durability: Durability) -> Self {
        Self {
            durability,
            latest: Mutex::new(None),
        }
    }

    fn latest_db(&self) -> PathBuf {
        self.latest
            .lock()
            .unwrap()
            .as_ref()
            .expect("create() comes first")
            .path()
            .join(DB)
    }

    async fn open(&self, path: PathBuf) -> Arc<dyn CheckpointStore> {
        let options = SqliteOptions::default().durability(self.durability);
        Arc::new(SqliteStore::open_with(path, options).await.unwrap())
    }
}

/// Folds the WAL into the database file, so damage to the file is damage to what is stored.
fn checkpoint_wal(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// Where in the database file `needle` occurs.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| at)
        .collect()
}

#[async_trait::async_trait]
impl StoreFactory for Databases {
    async fn create(&self) -> Arc<dyn CheckpointStore> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB);
        *self.latest.lock().unwrap() = Some(dir);
        self.open(path).await
    }

    async fn reopen(&self) -> Option<Arc<dyn CheckpointStore>> {
        Some(self.open(self.latest_db()).await)
    }

    async fn corrupt(&self, identity: &UploadIdentity, how: Corruption) -> Option<DamageScope> {
        let path = self.latest_db();
        checkpoint_wal(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let page_size = usize::try_from(page_size).unwrap();
        let etag: String = conn
            .query_row(
                "SELECT etag FROM parts WHERE fingerprint = ?1 ORDER BY number DESC LIMIT 1",
                [identity.fingerprint()],
                |r| r.get(0),
            )
            .unwrap();
        if how == Corruption::FutureVersion {
            conn.pragma_update(None, "user_version", ossup_sqlite::SCHEMA_VERSION + 1)
                .unwrap();
            return Some(DamageScope::Store);
        }
        drop(conn);
        let mut bytes = fs::read(&path).unwrap();
        let rows_at = find_all(&bytes, etag.as_bytes());
        assert!(
            !rows_at.is_empty(),
            "the part's ETag is in the database file"
        );
        let scope = match how {
            // The last pages gone: SQLite's page count in the header no longer matches the file.
            Corruption::Truncated => {
                bytes.truncate(2 * page_size);
                DamageScope::Store
            }
            // The 100-byte database header overwritten.
            Corruption::Garbage => {
                seeded_garbage(3, &mut bytes[..100]);
                DamageScope::Store
            }
            // One byte inside the part's row: only the row checksum can see it.
            Corruption::FlippedByte => {
                for at in rows_at {
                    bytes[at + 3] ^= 0x01;
                }
                DamageScope::Checkpoint
            }
            // The whole page holding the part's row overwritten.
            Corruption::DamagedPage => {
                let page = rows_at[0] / page_size;
                seeded_garbage(4, &mut bytes[page * page_size..(page + 1) * page_size]);
                DamageScope::Store
            }
            Corruption::Foreign => {
                bytes = br#"{"upload_id":"from another tool","parts":[]}"#.to_vec();
                DamageScope::Store
            }
            _ => return None,
        };
        fs::write(&path, bytes).unwrap();
        Some(scope)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_contract_suite() {
    let report = run_store_contract(&Databases::new(Durability::PowerLoss)).await;
    report.assert_every_case_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_without_full_sync_passes_the_contract_suite() {
    let report = run_store_contract(&Databases::new(Durability::ProcessCrash)).await;
    report.assert_every_case_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_every_acknowledged_part_across_sigkill() {
    CrashTest::new("sqlite_store_keeps_every_acknowledged_part_across_sigkill")
        .run(|dir: PathBuf| async move {
            Arc::new(SqliteStore::open(dir.join(DB)).await.unwrap()) as Arc<dyn CheckpointStore>
        })
        .await;
}

#[tokio::test]
async fn a_database_of_another_program_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let before = fs::read(&path).unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    match store.list().await {
        Err(StoreError::Other(message)) => {
            assert!(
                message.contains("not an ossup checkpoint database"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(store.save(&checkpoint("k")).await.is_err());
    drop(store);
    assert!(
        fs::read(&path).unwrap() == before,
        "the foreign database was modified"
    );
    assert!(
        fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("corrupt"))
    );
}

#[tokio::test]
async fn a_damaged_row_sets_aside_only_its_upload_and_keeps_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let store = SqliteStore::open(&path).await.unwrap();
    let (a, b) = (checkpoint("a"), checkpoint("b"));
    for cp in [&a, &b] {
        store.save(cp).await.unwrap();
        store.record_part(&cp.identity, &part(1)).await.unwrap();
    }
    // A change made behind the store's back, as a bit flip on disk would.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE parts SET size = size + 1 WHERE fingerprint = ?1",
        [a.identity.fingerprint()],
    )
    .unwrap();
    match store.load(&a.identity).await {
        Err(StoreError::Corrupt {
            reason,
            set_aside_to: Some(to),
            ..
        }) => {
            assert!(reason.contains("part 1"), "{reason}");
            assert!(to.contains("set_aside_parts"), "{to}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.load(&a.identity).await.unwrap(), None);
    assert!(store.load(&b.identity).await.unwrap().is_some());
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM set_aside_parts WHERE fingerprint = ?1",
            [a.identity.fingerprint()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_record_different_uploads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let (a, b) = (checkpoint("a"), checkpoint("b"));
    first.save(&a).await.unwrap();
    second.save(&b).await.unwrap();
    let writers = [
        (first.clone(), a.identity.clone()),
        (second.clone(), b.identity.clone()),
    ]
    .into_iter()
    .map(|(store, identity)| {
        tokio::spawn(async move {
            for n in 1..=200 {
                store.record_part(&identity, &part(n)).await.unwrap();
            }
        })
    })
    .collect::<Vec<_>>();
    for writer in writers {
        writer.await.unwrap();
    }
    for identity in [&a.identity, &b.identity] {
        assert_eq!(
            first.load(identity).await.unwrap().unwrap().parts.len(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_a_dead_process_is_taken_over_and_a_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let store = SqliteStore::open(&path).await.unwrap();
    let identity = checkpoint("leased").identity;
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let far_future = i64::MAX / 2;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plant = |pid: u32, host: &str| {
        conn.execute(
            "INSERT OR REPLACE INTO leases VALUES (?1, ?2, NULL, ?3, 'planted', ?4)",
            rusqlite::params![identity.fingerprint(), pid, host, far_future],
        )
        .unwrap();
    };

    // A process that ran and is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    plant(dead, &host);
    let held = store
        .lock(&identity)
        .await
        .expect("a dead holder's lease is taken over");
    drop(held);
    // Released for other processes by the time the drop returns.
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);

    // A live process on this host: the parent of this test process.
    plant(std::os::unix::process::parent_id(), &host);
    match store.lock(&identity).await {
        Err(StoreError::InUse { holder, .. }) => {
            assert!(
                holder.contains(&std::os::unix::process::parent_id().to_string()),
                "{holder}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Another host, lease unexpired: in use; once expired: taken over.
    plant(1, "a-host-far-away");
    assert!(matches!(
        store.lock(&identity).await,
        Err(StoreError::InUse { .. })
    ));
    conn.execute(
        "UPDATE leases SET expires_unix_ms = 0 WHERE fingerprint = ?1",
        [identity.fingerprint()],
    )
    .unwrap();
    let _held = store
        .lock(&identity)
        .await
        .expect("an expired lease is taken over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_renewed_past_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let options = SqliteOptions::default().lease_ttl(Duration::from_millis(300));
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    let identity = checkpoint("renewed").identity;
    let _held = store.lock(&identity).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let expiry = || -> i64 {
        conn.query_row(
            "SELECT expires_unix_ms FROM leases WHERE fingerprint = ?1",
            [identity.fingerprint()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let first = expiry();
    // Renewal happens every ttl/3; wait for it by polling rather than by timing.
    let mut renewed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if expiry() > first {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "the lease was never renewed");
}

#[tokio::test]
async fn a_damaged_database_is_moved_aside_with_its_wal_and_a_fresh_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let store = SqliteStore::open(&path).await.unwrap();
    store.save(&checkpoint("k")).await.unwrap();
    drop(store);
    let mut bytes = fs::read(&path).unwrap();
    seeded_garbage(9, &mut bytes[..100]);
    fs::write(&path, bytes).unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    let moved = match store.list().await {
        Err(StoreError::Corrupt {
            location,
            set_aside_to: Some(to),
            ..
        }) => {
            assert_eq!(location, path.display().to_string());
            PathBuf::from(to)
        }
        other => panic!("{other:?}"),
    };
    assert!(moved.exists());
    assert!(
        moved
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains(".corrupt-")
    );
    assert_eq!(store.list().await.unwrap(), Vec::new());
    store.save(&checkpoint("k")).await.unwrap();
    assert!(
        store
            .load(&checkpoint("k").identity)
            .await
            .unwrap()
            .is_some()
    );
}

/// The database, its -wal and -shm files are owner-only even under a umask of 000, and so is an
/// older database that was not, once it is opened again.
#[cfg(unix)]
#[test]
fn the_database_and_its_wal_files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // The umask is the whole process's, and the other tests here create files beside this one:
    // the test runs again, alone, in a child process that sets it.
    const CHILD: &str = "OSSUP_TEST_UNDER_UMASK_000";
    if std::env::var_os(CHILD).is_none() {
        let name = "the_database_and_its_wal_files_are_owner_only_whatever_the_umask";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("1 passed"),
            "the test did not run in the child: {text}"
        );
        return;
    }
    rustix::process::umask(rustix::fs::Mode::empty());
    // Under this umask the temporary directory itself is 0777: keep the database in a private one.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("private");
    ossup::store::create_private_dir(&dir).unwrap();
    let db = dir.join(DB);
    let mode = |suffix: &str| {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    let use_store = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = SqliteStore::open(&db).await.unwrap();
            let cp = checkpoint("k");
            store.save(&cp).await.unwrap();
            store.record_part(&cp.identity, &part(1)).await.unwrap();
            let _lease = store.lock(&cp.identity).await.unwrap();
            for suffix in ["", "-wal", "-shm"] {
                assert_eq!(mode(suffix), 0o600, "{DB}{suffix} is {:04o}", mode(suffix));
            }
        });
    };
    use_store();

    // An older database left readable by everyone is narrowed when next opened (SQLite gives the
    // -wal and -shm files it makes then the database's mode, so they are narrowed too).
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    assert_eq!(mode(""), 0o644);
    use_store();
}

/// A database in a directory everyone can write to is refused before anything is written there.
#[cfg(unix)]
#[tokio::test]
async fn a_database_in_a_directory_anyone_can_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir().unwrap();
    let open = scratch.path().join("shared");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let err = SqliteStore::open(open.join(DB)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotPrivate { .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 700"), "{err}");
    assert!(!open.join(DB).exists());
}

/// Processes on one host sharing uploads through one database file: each handle is a connection of
/// its own, as each process's would be.
#[derive(Default)]
struct SharedDatabases {
    latest: Mutex<Option<tempfile::TempDir>>,
}

#[async_trait::async_trait]
impl ossup::testkit::CooperativeStoreFactory for SharedDatabases {
    async fn create(&self) -> Arc<dyn ossup::store::CooperativeStore> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB);
        *self.latest.lock().unwrap() = Some(dir);
        Arc::new(SqliteStore::open(path).await.unwrap())
    }

    async fn reopen(&self) -> Arc<dyn ossup::store::CooperativeStore> {
        let path = self
            .latest
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .path()
            .join(DB);
        Arc::new(SqliteStore::open(path).await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_cooperation_contract() {
    let report = ossup::testkit::run_cooperation_contract(&SharedDatabases::default()).await;
    report.assert_every_case_ran();
}

/// Workers started together open one new database at once: each opens it (none is told the
/// database is locked while another creates and migrates it), and it is migrated once.
#[test]
fn stores_opening_one_new_database_at_once_all_open_it() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB);
        let start = Arc::new(std::sync::Barrier::new(8));
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    start.wait();
                    runtime.block_on(async {
                        let store = SqliteStore::open(&path).await?;
                        store.list().await.map(|_| ())
                    })
                })
            })
            .collect();
        for opener in openers {
            if let Err(e) = opener.join().unwrap() {
                panic!("round {round}: a store could not open the new database: {e}");
            }
        }
    }
}
