//! The tables, their version, and the migrations that bring a database schema up to it.
//!
//! Everything lives in one PostgreSQL schema (`ossup` unless [`PostgresOptions::schema`] says
//! otherwise), beside a `schema_version` table naming the application and the version. A schema
//! holding tables of another program is refused and left alone; a version newer than this build
//! reads is [`StoreError::UnsupportedVersion`](ossup::StoreError). `docs/checkpoint-format.md`
//! describes every table.
//!
//! [`PostgresOptions::schema`]: crate::PostgresOptions::schema

use tokio_postgres::GenericClient;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 3;

/// What `schema_version.application` holds in an ossup schema.
const APPLICATION: &str = "ossup checkpoints";

/// `MIGRATIONS[n]` takes a schema from version `n` to `n + 1`, inside the migrating transaction.
/// `{schema}` stands for the quoted schema name.
///
/// Strings the user chose (paths, keys, ETags, ids) are `bytea` holding their UTF-8: PostgreSQL's
/// `text` cannot hold a NUL, which an object key may. u64 values are `bigint` holding the same 64
/// bits; each row's `checksum` is `ossup::store::codec`'s row checksum.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: checkpoints.
    "
    CREATE TABLE {schema}.uploads (
        fingerprint     text PRIMARY KEY,
        source          bytea NOT NULL,
        bucket          bytea NOT NULL,
        object_key      bytea NOT NULL,
        part_size       bigint NOT NULL,
        upload_id       bytea NOT NULL,
        source_size     bigint NOT NULL,
        source_modified bytea,
        created_unix    bigint NOT NULL,
        options_digest  bytea NOT NULL,
        checksum        bigint NOT NULL
    );
    CREATE TABLE {schema}.parts (
        fingerprint text NOT NULL REFERENCES {schema}.uploads (fingerprint) ON DELETE CASCADE,
        number      integer NOT NULL,
        size        bigint NOT NULL,
        etag        bytea NOT NULL,
        md5         bytea,
        crc64       bigint NOT NULL,
        checksum    bigint NOT NULL,
        PRIMARY KEY (fingerprint, number)
    );
    CREATE TABLE {schema}.set_aside_uploads (
        LIKE {schema}.uploads,
        set_aside_at timestamptz NOT NULL DEFAULT now(),
        reason       text NOT NULL
    );
    CREATE TABLE {schema}.set_aside_parts (
        LIKE {schema}.parts,
        set_aside_at timestamptz NOT NULL DEFAULT now()
    );
    ",
    // 1 -> 2: cooperation (ossup::store::Cooperation). A claim row per part of an upload that
    // workers share, locked with FOR UPDATE SKIP LOCKED while a worker takes it; a lease expires at
    // `expires_at` in the server's clock, and a released claim keeps its row, expired. One row per
    // upload names the worker that completes it.
    "
    CREATE TABLE {schema}.claims (
        fingerprint text NOT NULL REFERENCES {schema}.uploads (fingerprint) ON DELETE CASCADE,
        number      integer NOT NULL,
        worker      text NOT NULL,
        expires_at  timestamptz NOT NULL,
        PRIMARY KEY (fingerprint, number)
    );
    CREATE TABLE {schema}.completions (
        fingerprint text PRIMARY KEY REFERENCES {schema}.uploads (fingerprint) ON DELETE CASCADE,
        worker      text NOT NULL,
        expires_at  timestamptz NOT NULL
    );
    ",
    // 2 -> 3: file claims of cooperating batches (ossup::store::Cooperation::claim_file). A row per
    // object a worker claimed whole, locked with FOR UPDATE SKIP LOCKED while a worker takes it, with
    // its lease (expired once released or finished) and what the last worker that put the object
    // recorded of it (NULL until one did). Not tied to an upload: a file put whole has none.
    "
    CREATE TABLE {schema}.file_claims (
        bucket         bytea NOT NULL,
        object_key     bytea NOT NULL,
        worker         text NOT NULL,
        expires_at     timestamptz NOT NULL,
        finished_size  bigint,
        finished_etag  bytea,
        finished_crc64 bigint,
        finished_by    text,
        PRIMARY KEY (bucket, object_key)
    );
    ",
];

/// Why a schema cannot be used as it is.
#[derive(Debug)]
pub(crate) enum Problem {
    /// A schema version newer than this build reads.
    Unsupported(u32),
    /// Tables of another program.
    Foreign(String),
    /// PostgreSQL failed.
    Postgres(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Problem {
    fn from(err: tokio_postgres::Error) -> Self {
        Problem::Postgres(err)
    }
}

/// `name` quoted as an SQL identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the schema when missing and migrates it to [`SCHEMA_VERSION`], in one transaction that
/// concurrent migrators of the same schema take one after the other.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    schema: &str,
) -> Result<(), Problem> {
    let quoted = quote_identifier(schema);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ossup schema migration ' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .await?;
    let version = match current_version(&tx, schema).await? {
        Some(version) => version,
        None => {
            tx.batch_execute(&format!(
                "CREATE TABLE {quoted}.schema_version (
                     application text PRIMARY KEY,
                     version     integer NOT NULL
                 );"
            ))
            .await?;
            tx.execute(
                &format!("INSERT INTO {quoted}.schema_version VALUES ($1, 0)"),
                &[&APPLICATION],
            )
            .await?;
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(Problem::Unsupported(version));
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(&migration.replace("{schema}", &quoted))
            .await?;
        tracing::debug!(
            schema,
            from,
            to = from + 1,
            "migrated the checkpoint schema"
        );
    }
    if version < SCHEMA_VERSION {
        tx.execute(
            &format!("UPDATE {quoted}.schema_version SET version = $2 WHERE application = $1"),
            &[&APPLICATION, &(SCHEMA_VERSION as i32)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The schema's version; `None` for a schema that is empty (or new). Another program's tables
/// are [`Problem::Foreign`].
async fn current_version(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Option<u32>, Problem> {
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if tables.is_empty() {
        return Ok(None);
    }
    if !tables.iter().any(|t| t == "schema_version") {
        return Err(Problem::Foreign(format!(
            "schema {schema} holds tables ({}) but no schema_version table",
            tables.join(", ")
        )));
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT version FROM {}.schema_version WHERE application = $1",
                quote_identifier(schema)
            ),
            &[&APPLICATION],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(
            u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX),
        )),
        None => Err(Problem::Foreign(format!(
            "schema {schema}'s schema_version table names another application than {APPLICATION:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_migration() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn identifiers_are_quoted_with_their_quotes_doubled() {
        assert_eq!(quote_identifier("ossup"), "\"ossup\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
