//! Checkpoints as rows, and the checksum each row carries.
//!
//! A row's checksum is the CRC-64/XZ of its fingerprint followed by the canonical encoding of its
//! values ([`ossup::store::codec`]), the same bytes the file journal stores. A byte flipped inside a
//! row, which SQLite's own page checks cannot see, fails the checksum.

use rusqlite::types::ValueRef;
use rusqlite::{Row, Transaction, params};

use ossup::store::codec;
use ossup::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};

/// The checksum of an upload row (see [`codec::upload_row_checksum`]), as SQLite stores it.
pub(crate) fn upload_checksum(fingerprint: &str, checkpoint: &Checkpoint) -> i64 {
    codec::upload_row_checksum(fingerprint, checkpoint) as i64
}

/// The checksum of a part row (see [`codec::part_row_checksum`]), as SQLite stores it.
pub(crate) fn part_checksum(fingerprint: &str, part: &PartRecord) -> i64 {
    codec::part_row_checksum(fingerprint, part) as i64
}

/// Writes the upload row of `checkpoint` (not its parts), replacing any previous one.
pub(crate) fn put_upload(
    tx: &Transaction<'_>,
    fingerprint: &str,
    checkpoint: &Checkpoint,
) -> rusqlite::Result<()> {
    let identity = &checkpoint.identity;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO uploads (fingerprint, source, bucket, object_key, part_size,
             upload_id, source_size, source_modified, created_unix, options_digest, checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        fingerprint,
        identity.source,
        identity.bucket,
        identity.key,
        identity.part_size as i64,
        checkpoint.upload_id,
        checkpoint.source.size as i64,
        checkpoint
            .source
            .modified_nanos
            .map(|nanos| nanos.to_le_bytes().to_vec()),
        checkpoint.created_unix as i64,
        checkpoint.options_digest,
        upload_checksum(fingerprint, checkpoint),
    ])?;
    Ok(())
}

/// Writes one part row, replacing the part with the same number.
pub(crate) fn put_part(
    tx: &Transaction<'_>,
    fingerprint: &str,
    part: &PartRecord,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO parts (fingerprint, number, size, etag, md5, crc64, checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        fingerprint,
        part.number,
        part.size as i64,
        part.etag,
        part.md5.map(|md5| md5.to_vec()),
        part.crc64 as i64,
        part_checksum(fingerprint, part),
    ])?;
    Ok(())
}

/// The columns [`upload_from_row`] reads, in order.
pub(crate) const UPLOAD_COLUMNS: &str = "source, bucket, object_key, part_size, upload_id, \
     source_size, source_modified, created_unix, options_digest, checksum";

/// How many columns [`UPLOAD_COLUMNS`] names.
pub(crate) const UPLOAD_COLUMN_COUNT: usize = 10;

/// The columns [`part_from_row`] reads, in order.
pub(crate) const PART_COLUMNS: &str = "number, size, etag, md5, crc64, checksum";

/// Decodes an upload row (columns [`UPLOAD_COLUMNS`]) and checks it; the reason when it fails.
pub(crate) fn upload_from_row(fingerprint: &str, row: &Row<'_>) -> Result<Checkpoint, String> {
    let identity = UploadIdentity::new(
        text(row, 0, "source")?,
        text(row, 1, "bucket")?,
        text(row, 2, "object_key")?,
        integer(row, 3, "part_size")? as u64,
    );
    let modified_nanos =
        match row.get_ref(6).map_err(|e| e.to_string())? {
            ValueRef::Null => None,
            ValueRef::Blob(bytes) => Some(i128::from_le_bytes(bytes.try_into().map_err(|_| {
                format!("column source_modified holds {} bytes, not 16", bytes.len())
            })?)),
            other => {
                return Err(format!(
                    "column source_modified holds a {:?}, not a blob",
                    other.data_type()
                ));
            }
        };
    let checkpoint = Checkpoint::new(
        identity,
        text(row, 4, "upload_id")?,
        SourceStamp {
            size: integer(row, 5, "source_size")? as u64,
            modified_nanos,
        },
        integer(row, 7, "created_unix")? as u64,
        text(row, 8, "options_digest")?,
    );
    let stored = integer(row, 9, "checksum")?;
    if stored != upload_checksum(fingerprint, &checkpoint) {
        return Err("the upload row fails its checksum".into());
    }
    if checkpoint.identity.fingerprint() != fingerprint {
        return Err("the upload row's identity does not match its fingerprint".into());
    }
    Ok(checkpoint)
}

/// Decodes a part row (columns [`PART_COLUMNS`]) and checks it; the reason when it fails.
pub(crate) fn part_from_row(fingerprint: &str, row: &Row<'_>) -> Result<PartRecord, String> {
    let number = integer(row, 0, "number")?;
    let number = u32::try_from(number).map_err(|_| format!("part number {number} out of range"))?;
    let md5 = match row.get_ref(3).map_err(|e| e.to_string())? {
        ValueRef::Null => None,
        ValueRef::Blob(bytes) => Some(
            <[u8; 16]>::try_from(bytes)
                .map_err(|_| format!("part {number}'s md5 holds {} bytes, not 16", bytes.len()))?,
        ),
        other => {
            return Err(format!(
                "part {number}'s md5 holds a {:?}, not a blob",
                other.data_type()
            ));
        }
    };
    let part = PartRecord {
        number,
        size: integer(row, 1, "size")? as u64,
        etag: text(row, 2, "etag")?,
        md5,
        crc64: integer(row, 4, "crc64")? as u64,
    };
    if integer(row, 5, "checksum")? != part_checksum(fingerprint, &part) {
        return Err(format!("the row of part {number} fails its checksum"));
    }
    Ok(part)
}

fn text(row: &Row<'_>, index: usize, column: &str) -> Result<String, String> {
    match row.get_ref(index).map_err(|e| e.to_string())? {
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("column {column} is not valid UTF-8")),
        other => Err(format!(
            "column {column} holds a {:?}, not text",
            other.data_type()
        )),
    }
}

fn integer(row: &Row<'_>, index: usize, column: &str) -> Result<i64, String> {
    match row.get_ref(index).map_err(|e| e.to_string())? {
        ValueRef::Integer(value) => Ok(value),
        other => Err(format!(
            "column {column} holds a {:?}, not an integer",
            other.data_type()
        )),
    }
}
