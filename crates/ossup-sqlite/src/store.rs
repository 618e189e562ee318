//! [`SqliteStore`]: the [`CheckpointStore`] over one SQLite database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use ossup::store::{Durability, GroupCommit, replicate_error};
use ossup::{Checkpoint, CheckpointStore, PartRecord, StoreError, StoreLock, UploadIdentity};

use crate::lease;
use crate::rows;
use crate::schema::{self, Problem, SCHEMA_VERSION};

/// Settings of a [`SqliteStore`].
///
/// ```
/// use std::time::Duration;
/// use ossup::store::Durability;
/// use ossup_sqlite::SqliteOptions;
///
/// let options = SqliteOptions::default()
///     .durability(Durability::ProcessCrash)
///     .lease_ttl(Duration::from_secs(60));
/// assert_eq!(options.lease_ttl, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How far `record_part` goes before returning: `PowerLoss` (the default) commits with
    /// `synchronous=FULL`, `ProcessCrash` with `synchronous=NORMAL`.
    pub durability: Durability,
    /// How long a lease outlives its last renewal; renewed every third of it. A holder on another
    /// host that stopped renewing is taken over after this long (on the same host, as soon as its
    /// process is gone). Default 30 s.
    pub lease_ttl: Duration,
    /// How long to wait for another process's write transaction before failing. Default 10 s.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            lease_ttl: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

impl SqliteOptions {
    /// Sets [`durability`](Self::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`lease_ttl`](Self::lease_ttl).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// Checkpoints of many uploads in one SQLite database (WAL mode), shareable by several processes.
///
/// - One row per upload and one per part: recording a part is one small transaction, and parts
///   finished at the same time share it ([`GroupCommit`]).
/// - Every SQLite call runs on tokio's blocking thread pool, never on an async worker thread.
/// - The database is checked (`PRAGMA quick_check`) when opened, and each row carries a checksum. A
///   damaged database is moved aside (with its `-wal` and `-shm` files) to `<file>.corrupt-<unix
///   time>` and a fresh one started; a damaged row is moved to the `set_aside_*` tables. Either way
///   the operation that found it gets [`StoreError::Corrupt`].
/// - A database from a newer schema gives [`StoreError::UnsupportedVersion`]; a database of another
///   program is refused and left alone.
/// - [`lock`](CheckpointStore::lock) takes a lease; see [`SqliteOptions::lease_ttl`].
///
/// Cloning gives another handle on the same connection.
///
/// ```
/// use ossup::{Checkpoint, CheckpointStore, PartRecord, SourceStamp, UploadIdentity};
/// use ossup_sqlite::SqliteStore;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("checkpoints.db")).await?;
/// let id = UploadIdentity::new("/data/a.bin", "bucket", "a.bin", 8 << 20);
/// let stamp = SourceStamp { size: 20 << 20, modified_nanos: None };
/// store.save(&Checkpoint::new(id.clone(), "upload-1", stamp, 1_700_000_000, "")).await?;
/// let part = PartRecord { number: 1, size: 8 << 20, etag: "\"e\"".into(), md5: None, crc64: 7 };
/// store.record_part(&id, &part).await?;
/// assert_eq!(store.load(&id).await?.unwrap().parts[&1], part);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
    records: GroupCommit<PendingPart>,
}

/// A part waiting for its batch's transaction.
#[derive(Debug)]
struct PendingPart {
    fingerprint: String,
    identity: String,
    part: PartRecord,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` with default [`SqliteOptions`].
    ///
    /// Fails only when the file cannot be opened at all. What the database holds is judged by the
    /// operations: a damaged, newer or foreign database is reported by the first one that uses it.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database at `path` with `options`.
    ///
    /// A database this creates is owner-only (`0600`, and so are the -wal and -shm files SQLite
    /// makes beside it), whatever the umask; an existing ossup database and its companions are
    /// narrowed to that. The directory holding it is checked as
    /// [`check_private_dir`](ossup::store::check_private_dir) says: one that other users can
    /// write to is refused with [`StoreError::NotPrivate`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = std::path::absolute(path.as_ref()).map_err(|source| StoreError::Io {
            location: path.as_ref().display().to_string(),
            source,
        })?;
        let db = tokio::task::spawn_blocking(move || Db::open(path, options))
            .await
            .unwrap_or_else(|err| {
                Err(StoreError::Other(format!("opening SQLite panicked: {err}")))
            })?;
        let db = Arc::new(db);
        let committer = db.clone();
        Ok(SqliteStore {
            db,
            records: GroupCommit::new(move |batch| committer.record_parts(batch)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .unwrap_or_else(|err| {
                Err(StoreError::Other(format!(
                    "a SQLite checkpoint operation panicked: {err}"
                )))
            })
    }
}

#[async_trait::async_trait]
impl CheckpointStore for SqliteStore {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let identity = identity.clone();
        self.run(move |db| db.load(&identity)).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let checkpoint = checkpoint.clone();
        self.run(move |db| {
            db.with(|conn| {
                let fingerprint = checkpoint.identity.fingerprint();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // A new checkpoint starts afresh: its parts, and the claims on the old one's.
                for table in ["parts", "claims", "completions"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE fingerprint = ?1"),
                        [&fingerprint],
                    )?;
                }
                rows::put_upload(&tx, &fingerprint, &checkpoint)?;
                for part in checkpoint.parts.values() {
                    rows::put_part(&tx, &fingerprint, part)?;
                }
                tx.commit()?;
                Ok(())
            })
        })
        .await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        self.records
            .submit(PendingPart {
                fingerprint: identity.fingerprint(),
                identity: identity.to_string(),
                part: part.clone(),
            })
            .await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let fingerprint = identity.fingerprint();
        let name = identity.to_string();
        self.records
            .submit_all(
                parts
                    .iter()
                    .map(|part| PendingPart {
                        fingerprint: fingerprint.clone(),
                        identity: name.clone(),
                        part: part.clone(),
                    })
                    .collect(),
            )
            .await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        let fingerprint = identity.fingerprint();
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute("DELETE FROM parts WHERE fingerprint = ?1", [&fingerprint])?;
                tx.execute("DELETE FROM uploads WHERE fingerprint = ?1", [&fingerprint])?;
                tx.commit()?;
                Ok(())
            })
        })
        .await
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        self.run(|db| {
            db.with(|conn| {
                let mut statement = conn.prepare(&format!(
                    "SELECT {}, fingerprint FROM uploads",
                    rows::UPLOAD_COLUMNS
                ))?;
                let mut found = statement.query([])?;
                let mut identities = Vec::new();
                while let Some(row) = found.next()? {
                    let fingerprint: String = row.get(rows::UPLOAD_COLUMN_COUNT)?;
                    match rows::upload_from_row(&fingerprint, row) {
                        Ok(checkpoint) => identities.push(checkpoint.identity),
                        // Reported and set aside by `load` of that upload.
                        Err(reason) => tracing::warn!(upload = %fingerprint, "skipping a damaged upload row: {reason}"),
                    }
                }
                identities.sort();
                Ok(identities)
            })
        })
        .await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        let lease = lease::claim(self.db.clone(), identity).await?;
        Ok(StoreLock::held_by(lease))
    }
}

/// Why an operation on the database failed, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// SQLite failed; corruption errors set the database aside.
    Sqlite(rusqlite::Error),
    /// A failure already in the store's terms.
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Failure::Sqlite(err)
    }
}

/// The database file and its one connection.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    options: SqliteOptions,
    /// `None` until (re)connected: after a damaged database was set aside, or when the database
    /// could not be used at open.
    conn: Mutex<Option<Connection>>,
}

impl Db {
    /// The `synchronous` setting part records commit with, as the durability asks.
    pub(crate) fn synchronous(&self) -> &'static str {
        schema::synchronous_for(self.options.durability)
    }

    fn open(path: PathBuf, options: SqliteOptions) -> Result<Db, StoreError> {
        // SQLite puts its -wal, -shm and -journal files beside the database, and another user who
        // can write to that directory could replace any of them.
        if let Some(dir) = path.parent().filter(|dir| dir.is_dir()) {
            ossup::store::check_private_dir(dir)?;
        }
        let db = Db {
            path,
            options,
            conn: Mutex::new(None),
        };
        match db.connect(false) {
            Ok(conn) => *db.lock_conn() = Some(conn),
            Err(StoreError::Io { location, source }) => {
                return Err(StoreError::Io { location, source });
            }
            // Damaged, newer or foreign: the first operation reports it (and sets damage aside).
            Err(_) => {}
        }
        Ok(db)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// The database's path as the in-process lease registry keys it.
    pub(crate) fn registry_path(&self) -> PathBuf {
        std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn lock_conn(&self) -> MutexGuard<'_, Option<Connection>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connect(&self, set_aside_damage: bool) -> Result<Connection, StoreError> {
        self.create_private()?;
        // SQLite answers "database is locked" without waiting in a few cases its busy handler does
        // not cover (a connection switching a new database to WAL while another migrates it, a
        // reader that would deadlock by waiting): processes opening one database at once try
        // again, within the same patience.
        let deadline = std::time::Instant::now() + self.options.busy_timeout;
        let problem = loop {
            let mut conn = Connection::open(&self.path).map_err(|err| self.sqlite_error(err))?;
            match schema::prepare(
                &mut conn,
                self.options.durability,
                self.options.busy_timeout,
            ) {
                Ok(()) => {
                    self.restrict_to_owner();
                    return Ok(conn);
                }
                Err(Problem::Sqlite(err))
                    if Self::is_busy(&err) && std::time::Instant::now() < deadline =>
                {
                    drop(conn);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(problem) => break problem,
            }
        };
        match problem {
            Problem::Corrupt(reason) => Err(self.damaged(reason, set_aside_damage)),
            Problem::Sqlite(err) if is_corruption(&err) => {
                Err(self.damaged(err.to_string(), set_aside_damage))
            }
            Problem::Sqlite(err) => Err(self.sqlite_error(err)),
            Problem::Unsupported(found) => Err(StoreError::UnsupportedVersion {
                location: self.location(),
                found,
                supported: SCHEMA_VERSION,
            }),
            Problem::Foreign(why) => Err(StoreError::Other(format!(
                "{} is not an ossup checkpoint database ({why}); it was left as it is: choose another file",
                self.location()
            ))),
        }
    }

    /// Whether SQLite gave up on a lock another connection holds.
    fn is_busy(err: &rusqlite::Error) -> bool {
        matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }

    /// Creates a missing database file owner-only (`0600`) before SQLite opens it: SQLite would
    /// create it `0644` less the umask, and gives its -wal and -shm files the database's mode.
    fn create_private(&self) -> Result<(), StoreError> {
        let created = ossup::store::private_file_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&self.path);
        match created {
            Ok(file) => ossup::store::restrict_to_owner(&file, &self.path).map_err(|source| {
                StoreError::Io {
                    location: self.location(),
                    source,
                }
            }),
            // An existing database is SQLite's to judge; its mode is narrowed once it is known to
            // be ossup's (`restrict_to_owner`).
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(StoreError::Io {
                location: self.location(),
                source,
            }),
        }
    }

    /// Narrows the database and its -wal, -shm and -journal files to their owner, once the
    /// database is known to be ossup's (a foreign one is left as it is): one made by an earlier
    /// version, or under a wide umask, may be readable by others. A file that cannot be changed
    /// (another user's) is reported, not fatal: the directory check already vouched for the place.
    ///
    /// By path, never through a file descriptor: closing any descriptor of a file drops every POSIX
    /// lock this process holds on it, SQLite's included. Without its lock on the -shm file, another
    /// process opening the database takes itself for the first, truncates the -shm file, and this
    /// process's mapping of it dies with SIGBUS.
    fn restrict_to_owner(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let path = PathBuf::from(name);
            let narrowed = match ossup::store::restrict_path_to_owner(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            if let Err(err) = narrowed {
                tracing::warn!(file = %path.display(), "the checkpoint database file may be readable by other users: {err}");
            }
        }
    }

    /// Runs `work` on the connection, connecting first when needed; a corruption error sets the
    /// database aside.
    pub(crate) fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock_conn();
        if conn.is_none() {
            *conn = Some(self.connect(true)?);
        }
        match work(conn.as_mut().expect("connected above")) {
            Ok(value) => Ok(value),
            Err(Failure::Store(err)) => Err(err),
            Err(Failure::Sqlite(err)) if is_corruption(&err) => {
                *conn = None;
                Err(self.damaged(err.to_string(), true))
            }
            Err(Failure::Sqlite(err)) => Err(self.sqlite_error(err)),
        }
    }

    fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let fingerprint = identity.fingerprint();
        self.with(|conn| {
            let tx = conn.transaction()?;
            let checkpoint = read_checkpoint(&tx, &fingerprint, identity)?;
            let checkpoint = match checkpoint {
                Ok(checkpoint) => checkpoint,
                Err(reason) => {
                    drop(tx);
                    return Err(Failure::Store(self.set_aside_upload(
                        conn,
                        &fingerprint,
                        reason,
                    )?));
                }
            };
            tx.commit()?;
            Ok(checkpoint)
        })
    }

    /// Moves a damaged upload's rows to the `set_aside_*` tables; the error to report.
    fn set_aside_upload(
        &self,
        conn: &mut Connection,
        fingerprint: &str,
        reason: String,
    ) -> Result<StoreError, Failure> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = unix_now() as i64;
        tx.execute(
            "INSERT INTO set_aside_uploads SELECT fingerprint, source, bucket, object_key, part_size,
                 upload_id, source_size, source_modified, created_unix, options_digest, checksum, ?2, ?3
             FROM uploads WHERE fingerprint = ?1",
            params![fingerprint, now, reason],
        )?;
        tx.execute(
            "INSERT INTO set_aside_parts SELECT fingerprint, number, size, etag, md5, crc64, checksum, ?2
             FROM parts WHERE fingerprint = ?1",
            params![fingerprint, now],
        )?;
        tx.execute("DELETE FROM parts WHERE fingerprint = ?1", [fingerprint])?;
        tx.execute("DELETE FROM uploads WHERE fingerprint = ?1", [fingerprint])?;
        tx.commit()?;
        let location = format!("{} (upload {fingerprint})", self.location());
        tracing::warn!(checkpoint = %location, "corrupt checkpoint rows set aside: {reason}");
        Ok(StoreError::Corrupt {
            location,
            reason,
            set_aside_to: Some(format!(
                "tables set_aside_uploads and set_aside_parts of {} (set_aside_unix = {now})",
                self.location()
            )),
        })
    }

    /// Commits a batch of parts in one transaction: each part of an unsaved upload is `NotFound`.
    fn record_parts(&self, batch: Vec<PendingPart>) -> Vec<Result<(), StoreError>> {
        let outcome = self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut saved: HashMap<&str, bool> = HashMap::new();
            let mut results = Vec::with_capacity(batch.len());
            for pending in &batch {
                let exists = match saved.get(pending.fingerprint.as_str()) {
                    Some(&exists) => exists,
                    None => {
                        let exists = tx
                            .prepare_cached("SELECT 1 FROM uploads WHERE fingerprint = ?1")?
                            .query_row([&pending.fingerprint], |_| Ok(()))
                            .optional()?
                            .is_some();
                        saved.insert(&pending.fingerprint, exists);
                        exists
                    }
                };
                if exists {
                    rows::put_part(&tx, &pending.fingerprint, &pending.part)?;
                    results.push(Ok(()));
                } else {
                    results.push(Err(StoreError::NotFound(pending.identity.clone())));
                }
            }
            tx.commit()?;
            Ok(results)
        });
        match outcome {
            Ok(results) => results,
            Err(err) => {
                let mut results: Vec<_> = (1..batch.len())
                    .map(|_| Err(replicate_error(&err)))
                    .collect();
                results.push(Err(err));
                results
            }
        }
    }

    /// Reports damage; when `set_aside` is true, first moves the database and its WAL files aside so
    /// the next connection starts a fresh one.
    fn damaged(&self, reason: String, set_aside: bool) -> StoreError {
        let location = self.location();
        if !set_aside {
            return StoreError::Corrupt {
                location,
                reason,
                set_aside_to: None,
            };
        }
        match self.move_aside() {
            Ok(to) => {
                let to = to.display().to_string();
                tracing::warn!(database = %location, set_aside_to = %to, "corrupt checkpoint database: {reason}");
                StoreError::Corrupt {
                    location,
                    reason,
                    set_aside_to: Some(to),
                }
            }
            Err(err) => StoreError::Corrupt {
                location,
                reason: format!("{reason}; moving it aside failed too: {err}"),
                set_aside_to: None,
            },
        }
    }

    fn move_aside(&self) -> std::io::Result<PathBuf> {
        let unix = unix_now();
        let mut target = PathBuf::from(format!("{}.corrupt-{unix}", self.path.display()));
        let mut n = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}.corrupt-{unix}-{n}", self.path.display()));
            n += 1;
        }
        std::fs::rename(&self.path, &target)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let companion = PathBuf::from(format!("{}{suffix}", self.path.display()));
            if companion.exists() {
                std::fs::rename(&companion, format!("{}{suffix}", target.display()))?;
            }
        }
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(target)
    }

    fn sqlite_error(&self, err: rusqlite::Error) -> StoreError {
        StoreError::Io {
            location: self.location(),
            source: std::io::Error::other(err),
        }
    }
}

/// The checkpoint of `fingerprint`: `Ok(Err(reason))` when its rows fail validation.
fn read_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    fingerprint: &str,
    identity: &UploadIdentity,
) -> rusqlite::Result<Result<Option<Checkpoint>, String>> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {} FROM uploads WHERE fingerprint = ?1",
        rows::UPLOAD_COLUMNS
    ))?;
    let mut found = statement.query([fingerprint])?;
    let Some(row) = found.next()? else {
        return Ok(Ok(None));
    };
    let mut checkpoint = match rows::upload_from_row(fingerprint, row) {
        Ok(checkpoint) if &checkpoint.identity == identity => checkpoint,
        Ok(checkpoint) => {
            return Ok(Err(format!(
                "the row holds the checkpoint of another upload ({})",
                checkpoint.identity
            )));
        }
        Err(reason) => return Ok(Err(reason)),
    };
    drop(found);
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {} FROM parts WHERE fingerprint = ?1 ORDER BY number",
        rows::PART_COLUMNS
    ))?;
    let mut found = statement.query([fingerprint])?;
    while let Some(row) = found.next()? {
        match rows::part_from_row(fingerprint, row) {
            Ok(part) => {
                checkpoint.parts.insert(part.number, part);
            }
            Err(reason) => return Ok(Err(reason)),
        }
    }
    Ok(Ok(Some(checkpoint)))
}

fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
