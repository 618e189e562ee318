//! The database schema, its version, and the migration that brings a database up to it.
//!
//! The schema version lives in SQLite's `user_version` pragma and the database is marked as ossup's
//! with the `application_id` pragma, so a database of another program is refused rather than
//! written into. `docs/checkpoint-format.md` describes every table.

use rusqlite::{Connection, TransactionBehavior};

use ossup::store::Durability;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 4;

/// `PRAGMA application_id` of an ossup checkpoint database: "OSUP" in ASCII.
pub(crate) const APPLICATION_ID: i32 = 0x4F53_5550;

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`, inside one transaction.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema. u64 values are stored as INTEGER holding the same 64 bits (so
    // u64::MAX reads back as -1 in SQL); each row's `checksum` is the CRC-64/XZ of the row's canonical
    // encoding (see crate::rows).
    "
    CREATE TABLE uploads (
        fingerprint     TEXT PRIMARY KEY NOT NULL,
        source          TEXT NOT NULL,
        bucket          TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        part_size       INTEGER NOT NULL,
        upload_id       TEXT NOT NULL,
        source_size     INTEGER NOT NULL,
        source_modified BLOB,
        created_unix    INTEGER NOT NULL,
        options_digest  TEXT NOT NULL,
        checksum        INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE parts (
        fingerprint TEXT NOT NULL REFERENCES uploads (fingerprint) ON DELETE CASCADE,
        number      INTEGER NOT NULL,
        size        INTEGER NOT NULL,
        etag        TEXT NOT NULL,
        md5         BLOB,
        crc64       INTEGER NOT NULL,
        checksum    INTEGER NOT NULL,
        PRIMARY KEY (fingerprint, number)
    ) WITHOUT ROWID;

    CREATE TABLE leases (
        fingerprint     TEXT PRIMARY KEY NOT NULL,
        holder_pid      INTEGER NOT NULL,
        holder_started  INTEGER,
        holder_host     TEXT NOT NULL,
        token           TEXT NOT NULL,
        expires_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE set_aside_uploads (
        fingerprint, source, bucket, object_key, part_size, upload_id, source_size,
        source_modified, created_unix, options_digest, checksum,
        set_aside_unix INTEGER NOT NULL,
        reason         TEXT NOT NULL
    );

    CREATE TABLE set_aside_parts (
        fingerprint, number, size, etag, md5, crc64, checksum,
        set_aside_unix INTEGER NOT NULL
    );
    ",
    // 1 -> 2: what ossup knows of local files' content (ossup::store::DigestCache), so that a batch
    // does not read an unchanged file again. A hint, not a record: no checksum column.
    "
    CREATE TABLE file_digests (
        path           TEXT PRIMARY KEY NOT NULL,
        size           INTEGER NOT NULL,
        modified_nanos BLOB NOT NULL,
        inode          INTEGER NOT NULL,
        md5            BLOB,
        crc64          INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2 -> 3: cooperation (ossup::store::Cooperation). A claim row per part a worker is sending, and
    // one per upload for the worker that completes it, each with its lease's expiry in unix
    // milliseconds (the processes sharing a SQLite database share a host and its clock). A
    // released claim keeps its row with an expiry of 0.
    "
    CREATE TABLE claims (
        fingerprint     TEXT NOT NULL REFERENCES uploads (fingerprint) ON DELETE CASCADE,
        number          INTEGER NOT NULL,
        worker          TEXT NOT NULL,
        expires_unix_ms INTEGER NOT NULL,
        PRIMARY KEY (fingerprint, number)
    ) WITHOUT ROWID;

    CREATE TABLE completions (
        fingerprint     TEXT PRIMARY KEY NOT NULL REFERENCES uploads (fingerprint) ON DELETE CASCADE,
        worker          TEXT NOT NULL,
        expires_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 3 -> 4: file claims of cooperating batches (ossup::store::Cooperation::claim_file). A row per
    // object a worker claimed whole, with its lease (0 once released or finished) and what the last
    // worker that put the object recorded of it (NULL until one did). Not tied to an upload's
    // checkpoint: a file put whole has none.
    "
    CREATE TABLE file_claims (
        bucket          TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        worker          TEXT NOT NULL,
        expires_unix_ms INTEGER NOT NULL,
        finished_size   INTEGER,
        finished_etag   TEXT,
        finished_crc64  INTEGER,
        finished_by     TEXT,
        PRIMARY KEY (bucket, object_key)
    ) WITHOUT ROWID;
    ",
];

/// Why a database cannot be used as it is.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Damaged: what SQLite's check or reading found.
    Corrupt(String),
    /// A schema newer than this build reads.
    Unsupported(u32),
    /// Not an ossup checkpoint database at all.
    Foreign(String),
    /// SQLite failed; may itself be a corruption error.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Problem {
    fn from(err: rusqlite::Error) -> Self {
        Problem::Sqlite(err)
    }
}

/// The `synchronous` setting that gives `durability` to a commit in WAL mode.
pub(crate) fn synchronous_for(durability: Durability) -> &'static str {
    match durability {
        Durability::ProcessCrash => "NORMAL",
        _ => "FULL",
    }
}

/// Sets the connection up, checks the database's integrity and identity, and migrates it to
/// [`SCHEMA_VERSION`].
pub(crate) fn prepare(
    conn: &mut Connection,
    durability: Durability,
    busy_timeout: std::time::Duration,
) -> Result<(), Problem> {
    conn.busy_timeout(busy_timeout)?;
    // Read-only checks first: nothing is written to a database that is not ossup's. Reading the
    // header makes a file that is not a database at all fail here, as NOTADB.
    check_ownership(conn)?;
    let findings: Vec<String> = conn
        .prepare("PRAGMA quick_check(20)")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if findings != ["ok"] {
        return Err(Problem::Corrupt(format!(
            "SQLite's quick_check found: {}",
            findings.join("; ")
        )));
    }

    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "the checkpoint database could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", synchronous_for(durability))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(conn)
}

/// The database's schema version, once it is known to be ossup's (or empty, version 0).
fn check_ownership(conn: &Connection) -> Result<u32, Problem> {
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if application_id != APPLICATION_ID {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )?;
        if application_id != 0 || version != 0 || tables != 0 {
            return Err(Problem::Foreign(format!(
                "application_id {application_id:#x}, user_version {version}, {tables} tables; an ossup database has application_id {APPLICATION_ID:#x}"
            )));
        }
    }
    if version > SCHEMA_VERSION {
        return Err(Problem::Unsupported(version));
    }
    Ok(version)
}

fn migrate(conn: &mut Connection) -> Result<(), Problem> {
    // Immediate: two processes opening a new database at once migrate it once, one after the other.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Again inside the transaction: another process may have migrated meanwhile.
    let version = check_ownership(&tx)?;
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration)?;
        tracing::debug!(from, to = from + 1, "migrated the checkpoint database");
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_migration() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn a_new_database_is_migrated_once_and_marked_as_ossups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        for _ in 0..2 {
            let mut conn = Connection::open(&path).unwrap();
            prepare(
                &mut conn,
                Durability::PowerLoss,
                std::time::Duration::from_secs(1),
            )
            .unwrap();
            let version: u32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            let id: i32 = conn
                .query_row("PRAGMA application_id", [], |r| r.get(0))
                .unwrap();
            assert_eq!((version, id), (SCHEMA_VERSION, APPLICATION_ID));
        }
    }

    #[test]
    fn another_programs_database_is_foreign_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
            .unwrap();
        drop(conn);
        let mut conn = Connection::open(&path).unwrap();
        match prepare(
            &mut conn,
            Durability::PowerLoss,
            std::time::Duration::from_secs(1),
        ) {
            Err(Problem::Foreign(why)) => assert!(why.contains("1 tables"), "{why}"),
            other => panic!("{other:?}"),
        }
        let body: String = conn
            .query_row("SELECT body FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(body, "keep me");
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn a_newer_schema_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).unwrap();
        prepare(
            &mut conn,
            Durability::PowerLoss,
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let mut conn = Connection::open(&path).unwrap();
        match prepare(
            &mut conn,
            Durability::PowerLoss,
            std::time::Duration::from_secs(1),
        ) {
            Err(Problem::Unsupported(found)) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("{other:?}"),
        }
    }
}
