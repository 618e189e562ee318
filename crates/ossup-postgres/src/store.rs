//! [`PostgresStore`]: the [`CheckpointStore`] over one PostgreSQL schema, through a connection pool.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use ossup::store::Durability;
use ossup::{Checkpoint, CheckpointStore, PartRecord, StoreError, StoreLock, UploadIdentity};

use crate::lock;
use crate::password::{self, Target};
use crate::rows::{self, PART_COLUMNS, PartColumns, UPLOAD_COLUMNS, UploadValues};
use crate::schema::{self, Problem, SCHEMA_VERSION, quote_identifier};

/// Settings of a [`PostgresStore`].
///
/// ```
/// use ossup::store::Durability;
/// use ossup_postgres::PostgresOptions;
///
/// let options = PostgresOptions::default()
///     .schema("backups")
///     .durability(Durability::ProcessCrash)
///     .pool_size(8);
/// assert_eq!(options.schema, "backups");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// How far `record_part` goes before returning: `PowerLoss` (the default) commits with the
    /// server's `synchronous_commit` (on, unless the server was set otherwise): the record is in the
    /// server's write-ahead log on disk. `ProcessCrash` commits with `synchronous_commit = off`: the
    /// record survives this process being killed, not a crash of the database server within its
    /// `wal_writer_delay` (200 ms by default).
    pub durability: Durability,
    /// The PostgreSQL schema (namespace) holding the tables, created when missing. Default `ossup`.
    pub schema: String,
    /// Connections the pool keeps at most (each held lock takes one more of its own). Default 16.
    pub pool_size: usize,
    /// How long to wait for a connection to the server. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            schema: "ossup".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresOptions {
    /// Sets [`durability`](Self::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`schema`](Self::schema).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets [`pool_size`](Self::pool_size) (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// Checkpoints of many uploads, from many hosts, in one PostgreSQL database.
///
/// - One row per upload and one per part: a batch of records is one `INSERT` of arrays in one
///   transaction, and the server's own group commit shares the flush of concurrent ones.
/// - Each row carries a checksum (the SQLite store's, over the same canonical bytes); a row that
///   fails it is moved to the `set_aside_*` tables and the load that found it gets
///   [`StoreError::Corrupt`].
/// - The schema is created and migrated by the store (`schema_version` table); a newer schema
///   gives [`StoreError::UnsupportedVersion`], another program's tables are refused and left alone.
/// - [`lock`](CheckpointStore::lock) holds a session-level advisory lock on a connection of its own:
///   a holder that crashed, or whose host was cut off, loses its session and with it the lock.
///
/// Cloning gives another handle on the same pool.
///
/// ```no_run
/// use ossup::CheckpointStore;
/// use ossup_postgres::PostgresStore;
///
/// # #[tokio::main] async fn main() -> Result<(), ossup::StoreError> {
/// // The password comes from PGPASSWORD or ~/.pgpass, as with psql.
/// let store = PostgresStore::connect("postgres://ossup@db.example/ossup").await?;
/// println!("{} uploads in flight", store.list().await?.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pool: Pool,
    /// The quoted schema name, ready to prefix a table.
    pub(crate) schema: String,
    schema_name: String,
    /// Where the store is, for messages: the URL without any password, and the schema.
    location: String,
    durability: Durability,
    /// Set once the schema is known to be at [`SCHEMA_VERSION`].
    migrated: tokio::sync::OnceCell<()>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER@HOST[:PORT]/DATABASE`, with libpq's
    /// query parameters such as `sslmode`) with default [`PostgresOptions`].
    ///
    /// The password, when the URL has none, comes from `PGPASSWORD`, else from the password file
    /// (`PGPASSFILE` or `~/.pgpass`, which must be `0600`), as libpq's tools take it. Fails when the
    /// URL cannot be read or the server cannot be reached; what the schema holds is judged by the
    /// operations, as with the SQLite store.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to `url` with `options`.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|err| {
            StoreError::Other(format!(
                "the checkpoint URL is not a PostgreSQL URL (postgres://USER@HOST[:PORT]/DATABASE): {err}"
            ))
        })?;
        complete_config(&mut config, &options)?;
        let location = format!(
            "{}, schema {}",
            describe(&config),
            quote_identifier(&options.schema)
        );
        let manager = Manager::from_config(
            config.clone(),
            crate::tls::connector(&config)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|err| {
                StoreError::Other(format!(
                    "building the connection pool of {location} failed: {err}"
                ))
            })?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                schema: quote_identifier(&options.schema),
                schema_name: options.schema.clone(),
                location,
                durability: options.durability,
                migrated: tokio::sync::OnceCell::new(),
            }),
        };
        // Reach the server now, so a wrong host or password is reported by `connect`.
        drop(store.inner.connection().await?);
        match store.inner.ready().await {
            Ok(()) => {}
            // A schema this build cannot use is reported by the operations.
            Err(err @ (StoreError::UnsupportedVersion { .. } | StoreError::Other(_))) => {
                tracing::warn!("{err}")
            }
            Err(err) => return Err(err),
        }
        Ok(store)
    }

    /// Where the store is: the server, database and user (never the password), and the schema.
    pub fn location(&self) -> &str {
        &self.inner.location
    }
}

/// The server and database of `config`, for messages: never its password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Fills in what libpq would: the user, the password, the socket directory, a timeout, and the
/// name this process shows in `pg_stat_activity` (which [`lock`](crate::lock) names holders by).
fn complete_config(
    config: &mut tokio_postgres::Config,
    options: &PostgresOptions,
) -> Result<(), StoreError> {
    if config.get_hosts().is_empty() {
        #[cfg(unix)]
        config.host_path("/var/run/postgresql");
        #[cfg(not(unix))]
        config.host("localhost");
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let user = config.get_user().unwrap_or("postgres").to_string();
        config.dbname(&user);
    }
    if config.get_password().is_none() {
        let target = Target {
            host: match config.get_hosts().first() {
                Some(Host::Tcp(host)) => host.clone(),
                // libpq matches a socket connection against `localhost`.
                _ => "localhost".into(),
            },
            port: config.get_ports().first().copied().unwrap_or(5432),
            database: config.get_dbname().unwrap_or_default().to_string(),
            user: config.get_user().unwrap_or_default().to_string(),
        };
        if let Some(password) = password::lookup(&target)? {
            config.password(password);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    config.application_name(crate::lock::holder_name());
    Ok(())
}

impl Inner {
    /// A pooled connection, the schema migrated.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.ready().await?;
        self.connection().await
    }

    /// A pooled connection, before any schema check.
    async fn connection(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|err| StoreError::Io {
            location: self.location.clone(),
            source: std::io::Error::other(format!(
                "no connection to the checkpoint database: {err}"
            )),
        })
    }

    /// Migrates the schema once per store; a failure is tried again by the next operation.
    async fn ready(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                let mut client = self.connection().await?;
                schema::migrate(&mut client, &self.schema_name)
                    .await
                    .map_err(|problem| match problem {
                        Problem::Unsupported(found) => StoreError::UnsupportedVersion {
                            location: self.location.clone(),
                            found,
                            supported: SCHEMA_VERSION,
                        },
                        Problem::Foreign(why) => StoreError::Other(format!(
                            "{} is not an ossup checkpoint schema ({why}); it was left as it is: choose another schema",
                            self.location
                        )),
                        Problem::Postgres(err) => self.error(err),
                    })
            })
            .await
            .map(|_| ())
    }

    /// `err` in the store's terms, saying where.
    pub(crate) fn error(&self, err: tokio_postgres::Error) -> StoreError {
        // The server's own words are in the source; "db error" alone says nothing.
        let source = match err.as_db_error() {
            Some(db) => std::io::Error::other(format!("{db} (SQLSTATE {})", db.code().code())),
            None => std::io::Error::other(err),
        };
        StoreError::Io {
            location: self.location.clone(),
            source,
        }
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn schema_name(&self) -> &str {
        &self.schema_name
    }

    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        let fingerprint = identity.fingerprint();
        let mut client = self.client().await?;
        let read = async {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let upload = tx
                .query_opt(
                    &format!(
                        "SELECT {UPLOAD_COLUMNS} FROM {}.uploads WHERE fingerprint = $1",
                        self.schema
                    ),
                    &[&fingerprint],
                )
                .await?;
            let parts = tx
                .query(
                    &format!(
                        "SELECT {PART_COLUMNS} FROM {}.parts WHERE fingerprint = $1 ORDER BY number",
                        self.schema
                    ),
                    &[&fingerprint],
                )
                .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((upload, parts))
        };
        let (upload, parts) = read.await.map_err(|err| self.error(err))?;
        let Some(upload) = upload else {
            return Ok(None);
        };
        let checked = rows::upload_from_row(&upload).and_then(|mut checkpoint| {
            if &checkpoint.identity != identity {
                return Err(format!(
                    "the row holds the checkpoint of another upload ({})",
                    checkpoint.identity
                ));
            }
            for row in &parts {
                let part = rows::part_from_row(&fingerprint, row)?;
                checkpoint.parts.insert(part.number, part);
            }
            Ok(checkpoint)
        });
        match checked {
            Ok(checkpoint) => Ok(Some(checkpoint)),
            Err(reason) => Err(self.set_aside(&mut client, &fingerprint, reason).await),
        }
    }

    /// Moves a damaged upload's rows to the `set_aside_*` tables; the error to report.
    async fn set_aside(
        &self,
        client: &mut Object,
        fingerprint: &str,
        reason: String,
    ) -> StoreError {
        let moved = async {
            let tx = client.transaction().await?;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.set_aside_parts SELECT *, now() FROM {s}.parts WHERE fingerprint = $1",
                    s = self.schema
                ),
                &[&fingerprint],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.set_aside_uploads SELECT *, now(), $2 FROM {s}.uploads WHERE fingerprint = $1",
                    s = self.schema
                ),
                &[&fingerprint, &reason],
            )
            .await?;
            tx.execute(
                &format!("DELETE FROM {}.uploads WHERE fingerprint = $1", self.schema),
                &[&fingerprint],
            )
            .await?;
            tx.commit().await
        };
        let location = format!("{} (upload {fingerprint})", self.location);
        match moved.await {
            Ok(()) => {
                tracing::warn!(checkpoint = %location, "corrupt checkpoint rows set aside: {reason}");
                StoreError::Corrupt {
                    location,
                    reason,
                    set_aside_to: Some(format!(
                        "tables {s}.set_aside_uploads and {s}.set_aside_parts",
                        s = self.schema
                    )),
                }
            }
            Err(err) => StoreError::Corrupt {
                location,
                reason: format!("{reason}; setting it aside failed too: {err}"),
                set_aside_to: None,
            },
        }
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let upload = UploadValues::of(checkpoint);
        let parts = PartColumns::of(&upload.fingerprint, checkpoint.parts.values());
        let mut client = self.client().await?;
        let write = async {
            let tx = client.transaction().await?;
            // A new checkpoint starts afresh: its parts, and the claims on the old one's.
            for table in ["parts", "claims", "completions"] {
                tx.execute(
                    &format!("DELETE FROM {}.{table} WHERE fingerprint = $1", self.schema),
                    &[&upload.fingerprint],
                )
                .await?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO {}.uploads (fingerprint, source, bucket, object_key, part_size,
                         upload_id, source_size, source_modified, created_unix, options_digest, checksum)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (fingerprint) DO UPDATE SET source = excluded.source,
                         bucket = excluded.bucket, object_key = excluded.object_key,
                         part_size = excluded.part_size, upload_id = excluded.upload_id,
                         source_size = excluded.source_size, source_modified = excluded.source_modified,
                         created_unix = excluded.created_unix, options_digest = excluded.options_digest,
                         checksum = excluded.checksum",
                    self.schema
                ),
                &[
                    &upload.fingerprint,
                    &upload.source,
                    &upload.bucket,
                    &upload.object_key,
                    &upload.part_size,
                    &upload.upload_id,
                    &upload.source_size,
                    &upload.source_modified,
                    &upload.created_unix,
                    &upload.options_digest,
                    &upload.checksum,
                ],
            )
            .await?;
            if !parts.is_empty() {
                insert_parts(&*tx, &self.schema, &upload.fingerprint, &parts).await?;
            }
            tx.commit().await
        };
        write.await.map_err(|err| self.error(err))
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let fingerprint = identity.fingerprint();
        let columns = PartColumns::of(&fingerprint, parts);
        let mut client = self.client().await?;
        let write = async {
            if self.durability == Durability::PowerLoss && !columns.is_empty() {
                // One statement is its own transaction: one round trip, committed as the server
                // commits (synchronous_commit, on unless the server says otherwise).
                insert_parts(&**client, &self.schema, &fingerprint, &columns).await?;
                return Ok(true);
            }
            let tx = client.transaction().await?;
            if self.durability == Durability::ProcessCrash {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .await?;
            }
            if columns.is_empty() {
                // Nothing to write, but recording into an unsaved checkpoint is still NotFound.
                let saved = tx
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM {}.uploads WHERE fingerprint = $1",
                            self.schema
                        ),
                        &[&fingerprint],
                    )
                    .await?;
                tx.commit().await?;
                return Ok::<_, tokio_postgres::Error>(saved.is_some());
            }
            insert_parts(&*tx, &self.schema, &fingerprint, &columns).await?;
            tx.commit().await?;
            Ok(true)
        };
        match write.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::NotFound(identity.to_string())),
            // The parts' upload row is not there: the checkpoint was never saved, or was removed.
            Err(err) if err.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(StoreError::NotFound(identity.to_string()))
            }
            Err(err) => Err(self.error(err)),
        }
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("DELETE FROM {}.uploads WHERE fingerprint = $1", self.schema),
                &[&identity.fingerprint()],
            )
            .await
            .map(|_| ())
            .map_err(|err| self.error(err))
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(
                &format!("SELECT {UPLOAD_COLUMNS} FROM {}.uploads", self.schema),
                &[],
            )
            .await
            .map_err(|err| self.error(err))?;
        let mut identities = Vec::with_capacity(found.len());
        for row in &found {
            match rows::upload_from_row(row) {
                Ok(checkpoint) => identities.push(checkpoint.identity),
                // Reported and set aside by `load` of that upload.
                Err(reason) => tracing::warn!("skipping a damaged upload row: {reason}"),
            }
        }
        identities.sort();
        Ok(identities)
    }
}

/// Inserts (or replaces, by number) the parts in `columns` in one statement.
async fn insert_parts(
    tx: &impl tokio_postgres::GenericClient,
    schema: &str,
    fingerprint: &str,
    columns: &PartColumns,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO {schema}.parts (fingerprint, number, size, etag, md5, crc64, checksum)
             SELECT $1, * FROM unnest($2::integer[], $3::bigint[], $4::bytea[], $5::bytea[],
                                      $6::bigint[], $7::bigint[])
             ON CONFLICT (fingerprint, number) DO UPDATE SET size = excluded.size,
                 etag = excluded.etag, md5 = excluded.md5, crc64 = excluded.crc64,
                 checksum = excluded.checksum"
        ),
        &[
            &fingerprint,
            &columns.numbers,
            &columns.sizes,
            &columns.etags,
            &columns.md5s,
            &columns.crc64s,
            &columns.checksums,
        ],
    )
    .await
}

#[async_trait::async_trait]
impl CheckpointStore for PostgresStore {
    async fn load(&self, identity: &UploadIdentity) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.load(identity).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.inner.save(checkpoint).await
    }

    async fn record_part(
        &self,
        identity: &UploadIdentity,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        self.inner
            .record_parts(identity, std::slice::from_ref(part))
            .await
    }

    async fn record_parts(
        &self,
        identity: &UploadIdentity,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        self.inner.record_parts(identity, parts).await
    }

    async fn remove(&self, identity: &UploadIdentity) -> Result<(), StoreError> {
        self.inner.remove(identity).await
    }

    async fn list(&self) -> Result<Vec<UploadIdentity>, StoreError> {
        self.inner.list().await
    }

    async fn lock(&self, identity: &UploadIdentity) -> Result<StoreLock, StoreError> {
        let held = lock::claim(&self.inner, identity).await?;
        Ok(StoreLock::held_by(held))
    }
}
