//! Checkpoints as rows, and the checksum each row carries ([`ossup::store::codec`]'s row checksums,
//! the same the SQLite store keeps): a value changed behind the store's back fails it.

use ossup::store::codec::{part_row_checksum, upload_row_checksum};
use ossup::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};
use tokio_postgres::Row;

/// The columns [`upload_from_row`] reads, in order.
pub(crate) const UPLOAD_COLUMNS: &str = "source, bucket, object_key, part_size, upload_id, \
     source_size, source_modified, created_unix, options_digest, checksum, fingerprint";

/// The columns [`part_from_row`] reads, in order.
pub(crate) const PART_COLUMNS: &str = "number, size, etag, md5, crc64, checksum";

/// The values of an upload row, as the insert in `store.rs` binds them (`$1` the fingerprint).
pub(crate) struct UploadValues {
    pub(crate) fingerprint: String,
    pub(crate) source: Vec<u8>,
    pub(crate) bucket: Vec<u8>,
    pub(crate) object_key: Vec<u8>,
    pub(crate) part_size: i64,
    pub(crate) upload_id: Vec<u8>,
    pub(crate) source_size: i64,
    pub(crate) source_modified: Option<Vec<u8>>,
    pub(crate) created_unix: i64,
    pub(crate) options_digest: Vec<u8>,
    pub(crate) checksum: i64,
}

impl UploadValues {
    pub(crate) fn of(checkpoint: &Checkpoint) -> Self {
        let identity = &checkpoint.identity;
        let fingerprint = identity.fingerprint();
        Self {
            checksum: upload_row_checksum(&fingerprint, checkpoint) as i64,
            fingerprint,
            source: identity.source.as_bytes().to_vec(),
            bucket: identity.bucket.as_bytes().to_vec(),
            object_key: identity.key.as_bytes().to_vec(),
            part_size: identity.part_size as i64,
            upload_id: checkpoint.upload_id.as_bytes().to_vec(),
            source_size: checkpoint.source.size as i64,
            source_modified: checkpoint
                .source
                .modified_nanos
                .map(|nanos| nanos.to_le_bytes().to_vec()),
            created_unix: checkpoint.created_unix as i64,
            options_digest: checkpoint.options_digest.as_bytes().to_vec(),
        }
    }
}

/// Parts as column arrays, for one `INSERT … SELECT FROM unnest(…)` of a whole batch.
#[derive(Default)]
pub(crate) struct PartColumns {
    pub(crate) numbers: Vec<i32>,
    pub(crate) sizes: Vec<i64>,
    pub(crate) etags: Vec<Vec<u8>>,
    pub(crate) md5s: Vec<Option<Vec<u8>>>,
    pub(crate) crc64s: Vec<i64>,
    pub(crate) checksums: Vec<i64>,
}

impl PartColumns {
    /// The columns of `parts`; of two parts with one number the later wins, as recording them one
    /// after another would leave it (and one statement may not write a row twice).
    pub(crate) fn of<'a>(
        fingerprint: &str,
        parts: impl IntoIterator<Item = &'a PartRecord>,
    ) -> Self {
        let mut last: std::collections::BTreeMap<u32, &PartRecord> = Default::default();
        for part in parts {
            last.insert(part.number, part);
        }
        let mut columns = Self::default();
        for part in last.into_values() {
            columns.numbers.push(part.number as i32);
            columns.sizes.push(part.size as i64);
            columns.etags.push(part.etag.as_bytes().to_vec());
            columns.md5s.push(part.md5.map(|md5| md5.to_vec()));
            columns.crc64s.push(part.crc64 as i64);
            columns
                .checksums
                .push(part_row_checksum(fingerprint, part) as i64);
        }
        columns
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// Decodes an upload row (columns [`UPLOAD_COLUMNS`]) and checks it; the reason when it fails.
pub(crate) fn upload_from_row(row: &Row) -> Result<Checkpoint, String> {
    let fingerprint: String = get(row, 10, "fingerprint")?;
    let identity = UploadIdentity::new(
        text(row, 0, "source")?,
        text(row, 1, "bucket")?,
        text(row, 2, "object_key")?,
        get::<i64>(row, 3, "part_size")? as u64,
    );
    let modified_nanos = match get::<Option<Vec<u8>>>(row, 6, "source_modified")? {
        None => None,
        Some(bytes) => Some(i128::from_le_bytes(bytes.as_slice().try_into().map_err(
            |_| format!("column source_modified holds {} bytes, not 16", bytes.len()),
        )?)),
    };
    let checkpoint = Checkpoint::new(
        identity,
        text(row, 4, "upload_id")?,
        SourceStamp {
            size: get::<i64>(row, 5, "source_size")? as u64,
            modified_nanos,
        },
        get::<i64>(row, 7, "created_unix")? as u64,
        text(row, 8, "options_digest")?,
    );
    if get::<i64>(row, 9, "checksum")? != upload_row_checksum(&fingerprint, &checkpoint) as i64 {
        return Err("the upload row fails its checksum".into());
    }
    if checkpoint.identity.fingerprint() != fingerprint {
        return Err("the upload row's identity does not match its fingerprint".into());
    }
    Ok(checkpoint)
}

/// Decodes a part row (columns [`PART_COLUMNS`]) and checks it; the reason when it fails.
pub(crate) fn part_from_row(fingerprint: &str, row: &Row) -> Result<PartRecord, String> {
    let number: i32 = get(row, 0, "number")?;
    let number = u32::try_from(number).map_err(|_| format!("part number {number} out of range"))?;
    let md5 = match get::<Option<Vec<u8>>>(row, 3, "md5")? {
        None => None,
        Some(bytes) => Some(
            <[u8; 16]>::try_from(bytes.as_slice())
                .map_err(|_| format!("part {number}'s md5 holds {} bytes, not 16", bytes.len()))?,
        ),
    };
    let part = PartRecord {
        number,
        size: get::<i64>(row, 1, "size")? as u64,
        etag: text(row, 2, "etag")?,
        md5,
        crc64: get::<i64>(row, 4, "crc64")? as u64,
    };
    if get::<i64>(row, 5, "checksum")? != part_row_checksum(fingerprint, &part) as i64 {
        return Err(format!("the row of part {number} fails its checksum"));
    }
    Ok(part)
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    column: &str,
) -> Result<T, String> {
    row.try_get(index)
        .map_err(|err| format!("column {column}: {err}"))
}

fn text(row: &Row, index: usize, column: &str) -> Result<String, String> {
    String::from_utf8(get::<Vec<u8>>(row, index, column)?)
        .map_err(|_| format!("column {column} is not valid UTF-8"))
}
