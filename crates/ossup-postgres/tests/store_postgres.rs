//! The contract suite and the crash-safety checks run on [`PostgresStore`] against a real PostgreSQL
//! server (a throwaway cluster each test starts), and what only a shared server has: a server crash
//! that must lose nothing committed, another program's schema, locks across connections.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ossup::store::Durability;
use ossup::testkit::crash::{CrashTest, WRITER_DIR_ENV};
use ossup::testkit::{Corruption, DamageScope, StoreFactory, run_store_contract};
use ossup::{CheckpointStore, PartRecord, StoreError, UploadIdentity};
use ossup_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use ossup_test_support::postgres::{PG_DATABASE, PgCluster};
use ossup_test_support::records::{checkpoint, part};

/// Makes each store in a schema of its own on one cluster; reopens and damages the latest.
struct Schemas {
    cluster: PgCluster,
    durability: Durability,
    created: AtomicU32,
    latest: Mutex<String>,
}

impl Schemas {
    fn new(durability: Durability) -> Self {
        Self {
            cluster: PgCluster::start_fast(),
            durability,
            created: AtomicU32::new(0),
            latest: Mutex::new(String::new()),
        }
    }

    async fn open(&self, schema: &str) -> Arc<dyn CheckpointStore> {
        let options = PostgresOptions::default()
            .schema(schema)
            .durability(self.durability);
        Arc::new(
            PostgresStore::connect_with(&self.cluster.url(PG_DATABASE), options)
                .await
                .unwrap(),
        )
    }
}

#[async_trait::async_trait]
impl StoreFactory for Schemas {
    async fn create(&self) -> Arc<dyn CheckpointStore> {
        let schema = format!("s{}", self.created.fetch_add(1, Ordering::Relaxed));
        *self.latest.lock().unwrap() = schema.clone();
        self.open(&schema).await
    }

    async fn reopen(&self) -> Option<Arc<dyn CheckpointStore>> {
        let schema = self.latest.lock().unwrap().clone();
        Some(self.open(&schema).await)
    }

    async fn corrupt(&self, identity: &UploadIdentity, how: Corruption) -> Option<DamageScope> {
        let schema = self.latest.lock().unwrap().clone();
        let fingerprint = identity.fingerprint();
        let last_part = format!(
            "fingerprint = '{fingerprint}' AND number = \
             (SELECT max(number) FROM {schema}.parts WHERE fingerprint = '{fingerprint}')"
        );
        // Each is a change made behind the store's back, which only the row checksums can see
        // (PostgreSQL's own page checks guard its pages, not the values ossup wrote).
        let (sql, scope) = match how {
            Corruption::Truncated => (
                format!(
                    "UPDATE {schema}.parts SET etag = substr(etag, 1, length(etag) / 2) WHERE {last_part}"
                ),
                DamageScope::Checkpoint,
            ),
            Corruption::Garbage => (
                format!(
                    "UPDATE {schema}.uploads SET upload_id = '\\x00ff13676172626721'::bytea \
                     WHERE fingerprint = '{fingerprint}'"
                ),
                DamageScope::Checkpoint,
            ),
            Corruption::FlippedByte => (
                format!(
                    "UPDATE {schema}.parts SET etag = set_byte(etag, 1, get_byte(etag, 1) # 1) WHERE {last_part}"
                ),
                DamageScope::Checkpoint,
            ),
            Corruption::FutureVersion => (
                format!(
                    "UPDATE {schema}.schema_version SET version = {}",
                    SCHEMA_VERSION + 1
                ),
                DamageScope::Store,
            ),
            // Pages and files are the server's: it checks and recovers them, not the store.
            _ => return None,
        };
        self.cluster.psql(PG_DATABASE, &sql);
        Some(scope)
    }
}

/// What a store on a server cannot be damaged with: the server's pages and files are its own.
const NOT_APPLICABLE: [&str; 2] = [
    "corrupt_DamagedPage_is_detected_and_set_aside",
    "corrupt_Foreign_is_detected_and_set_aside",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_contract_suite() {
    let report = run_store_contract(&Schemas::new(Durability::PowerLoss)).await;
    println!("{report}");
    let skipped: Vec<&str> = report.not_applicable().map(|(case, _)| case).collect();
    assert_eq!(skipped, NOT_APPLICABLE, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_without_synchronous_commit_passes_the_contract_suite() {
    let report = run_store_contract(&Schemas::new(Durability::ProcessCrash)).await;
    let skipped: Vec<&str> = report.not_applicable().map(|(case, _)| case).collect();
    assert_eq!(skipped, NOT_APPLICABLE, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_every_acknowledged_part_across_sigkill() {
    // The writer processes this test starts reach the parent's cluster through a file in the
    // harness's directory; only the parent starts one (durable: fsync on).
    let cluster = std::env::var_os(WRITER_DIR_ENV)
        .is_none()
        .then(PgCluster::start);
    let url = cluster.as_ref().map(|cluster| cluster.url(PG_DATABASE));
    let cluster_ref = cluster.as_ref();
    CrashTest::new("postgres_store_keeps_every_acknowledged_part_across_sigkill")
        .run(|dir: PathBuf| {
            let url = url.clone();
            async move {
                let file = dir.join("postgres-url");
                let url = match url {
                    Some(url) => {
                        if let Some(cluster) = cluster_ref {
                            wait_for_other_sessions_to_end(cluster);
                        }
                        std::fs::write(&file, &url).unwrap();
                        url
                    }
                    None => std::fs::read_to_string(&file).unwrap(),
                };
                Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn CheckpointStore>
            }
        })
        .await;
    drop(cluster);
}

/// Waits until no other session is connected to the test database. A killed writer's statement
/// that had reached the server still runs, and commits, after the writer is gone (its backend ends
/// only once that statement is done); the round's check must read the store after it, as a restarted
/// uploader's next look would.
fn wait_for_other_sessions_to_end(cluster: &PgCluster) {
    let sql = "SELECT count(*) FROM pg_stat_activity \
               WHERE datname = current_database() AND backend_type = 'client backend' \
               AND pid <> pg_backend_pid()";
    for _ in 0..200 {
        if cluster.psql(PG_DATABASE, sql).trim() == "0" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("sessions of the killed writer were still connected after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_crash_loses_nothing_committed() {
    let cluster = PgCluster::start();
    let url = cluster.url(PG_DATABASE);
    let mut expected = checkpoint("survivor");
    {
        let store = PostgresStore::connect(&url).await.unwrap();
        store.save(&expected).await.unwrap();
        let parts: Vec<PartRecord> = (1..=200).map(part).collect();
        for batch in parts.chunks(32) {
            store.record_parts(&expected.identity, batch).await.unwrap();
        }
        store
            .record_part(&expected.identity, &part(201))
            .await
            .unwrap();
        expected.parts = (1..=201).map(|n| (n, part(n))).collect();
        // The server dies without a checkpoint of its own: what it acknowledged is in its WAL.
        cluster.crash();
    }
    cluster.restart();
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        store.load(&expected.identity).await.unwrap(),
        Some(expected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_schema_is_refused_and_left_as_it_was() {
    let cluster = PgCluster::start_fast();
    cluster.psql(
        PG_DATABASE,
        "CREATE SCHEMA app; CREATE TABLE app.notes (body text); INSERT INTO app.notes VALUES ('mine');",
    );
    let options = PostgresOptions::default().schema("app");
    let store = PostgresStore::connect_with(&cluster.url(PG_DATABASE), options)
        .await
        .unwrap();
    match store.list().await {
        Err(StoreError::Other(message)) => {
            assert!(
                message.contains("not an ossup checkpoint schema"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(store.save(&checkpoint("k")).await.is_err());
    assert_eq!(
        cluster.psql(
            PG_DATABASE,
            "SELECT string_agg(table_name, ',') FROM information_schema.tables WHERE table_schema = 'app'"
        ),
        "notes"
    );
    assert_eq!(
        cluster.psql(PG_DATABASE, "SELECT body FROM app.notes"),
        "mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_claim_names_the_holders_session_and_a_closed_session_frees_the_upload() {
    let cluster = PgCluster::start_fast();
    let url = cluster.url(PG_DATABASE);
    let first = PostgresStore::connect(&url).await.unwrap();
    let second = PostgresStore::connect(&url).await.unwrap();
    let id = checkpoint("locked").identity;
    let held = first.lock(&id).await.unwrap();
    match second.lock(&id).await {
        Err(StoreError::InUse { holder, .. }) => {
            assert!(
                holder.contains(&format!("ossup pid {}", std::process::id()))
                    && holder.contains("127.0.0.1"),
                "{holder}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The holder's session ends as a crashed holder's would: the server ends it.
    cluster.psql(
        PG_DATABASE,
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'",
    );
    let mut claimed = None;
    for _ in 0..50 {
        match second.lock(&id).await {
            Ok(lock) => {
                claimed = Some(lock);
                break;
            }
            Err(StoreError::InUse { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(claimed.is_some(), "a terminated session kept the lock");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_is_not_postgres_says_what_it_should_be() {
    let err = PostgresStore::connect("mysql://root@db/x")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("postgres://USER@HOST[:PORT]/DATABASE"),
        "{err}"
    );
}

/// Workers on several hosts sharing uploads through one server: each handle a pool of its own, as
/// each worker's would be.
struct SharedSchemas(Schemas);

#[async_trait::async_trait]
impl ossup::testkit::CooperativeStoreFactory for SharedSchemas {
    async fn create(&self) -> Arc<dyn ossup::store::CooperativeStore> {
        let schema = format!("c{}", self.0.created.fetch_add(1, Ordering::Relaxed));
        *self.0.latest.lock().unwrap() = schema.clone();
        self.0.open_cooperative(&schema).await
    }

    async fn reopen(&self) -> Arc<dyn ossup::store::CooperativeStore> {
        let schema = self.0.latest.lock().unwrap().clone();
        self.0.open_cooperative(&schema).await
    }
}

impl Schemas {
    async fn open_cooperative(&self, schema: &str) -> Arc<dyn ossup::store::CooperativeStore> {
        let options = PostgresOptions::default().schema(schema);
        Arc::new(
            PostgresStore::connect_with(&self.cluster.url(PG_DATABASE), options)
                .await
                .unwrap(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_cooperation_contract() {
    let factory = SharedSchemas(Schemas::new(Durability::PowerLoss));
    let report = ossup::testkit::run_cooperation_contract(&factory).await;
    report.assert_every_case_ran();
}
