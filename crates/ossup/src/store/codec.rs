//! The canonical byte encoding of checkpoint data.
//!
//! The file journal's records are made of it, and stores that keep checkpoints in other shapes (the
//! SQLite store's rows) checksum their values over it, so every store means the same bytes by "this
//! checkpoint". The layout is specified in `docs/checkpoint-format.md`; all integers are little-endian.

use crate::checkpoint::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};

/// Appends the encoding of a checkpoint's fixed fields (everything but its parts) to `out`.
///
/// Order: identity (source, bucket, key as length-prefixed UTF-8, part size as u64), upload id,
/// source size (u64), source modification time (a presence byte, then an i128 when present),
/// creation time (u64), options digest.
///
/// ```
/// use ossup::{Checkpoint, SourceStamp, UploadIdentity};
/// let cp = Checkpoint::new(
///     UploadIdentity::new("/f", "b", "k", 1 << 20),
///     "upload-1",
///     SourceStamp { size: 5, modified_nanos: None },
///     1_700_000_000,
///     "digest",
/// );
/// let mut bytes = Vec::new();
/// ossup::store::codec::encode_checkpoint_fields(&cp, &mut bytes);
/// assert_eq!(&bytes[..6], &[2, 0, 0, 0, b'/', b'f']);
/// ```
pub fn encode_checkpoint_fields(checkpoint: &Checkpoint, out: &mut Vec<u8>) {
    let identity = &checkpoint.identity;
    put_str(out, &identity.source);
    put_str(out, &identity.bucket);
    put_str(out, &identity.key);
    out.extend_from_slice(&identity.part_size.to_le_bytes());
    put_str(out, &checkpoint.upload_id);
    out.extend_from_slice(&checkpoint.source.size.to_le_bytes());
    match checkpoint.source.modified_nanos {
        Some(nanos) => {
            out.push(1);
            out.extend_from_slice(&nanos.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&checkpoint.created_unix.to_le_bytes());
    put_str(out, &checkpoint.options_digest);
}

/// Appends the encoding of one part to `out`.
///
/// Order: number (u32), size (u64), ETag (length-prefixed UTF-8), MD5 (a presence byte, then 16
/// bytes when present), CRC-64 (u64).
///
/// ```
/// use ossup::PartRecord;
/// let part = PartRecord { number: 1, size: 2, etag: "e".into(), md5: None, crc64: 3 };
/// let mut bytes = Vec::new();
/// ossup::store::codec::encode_part(&part, &mut bytes);
/// assert_eq!(bytes.len(), 4 + 8 + (4 + 1) + 1 + 8);
/// ```
pub fn encode_part(part: &PartRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(&part.number.to_le_bytes());
    out.extend_from_slice(&part.size.to_le_bytes());
    put_str(out, &part.etag);
    match &part.md5 {
        Some(md5) => {
            out.push(1);
            out.extend_from_slice(md5);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&part.crc64.to_le_bytes());
}

/// The checksum a store that keeps checkpoints as rows (SQLite, PostgreSQL) stores beside an upload
/// row: the CRC-64/XZ of `fingerprint` followed by [`encode_checkpoint_fields`]. A byte changed
/// inside the row, which the database's own page checks cannot see, fails it.
///
/// ```
/// use ossup::{Checkpoint, SourceStamp, UploadIdentity};
/// use ossup::store::codec::upload_row_checksum;
/// let id = UploadIdentity::new("/f", "b", "k", 1 << 20);
/// let cp = Checkpoint::new(id.clone(), "u1", SourceStamp { size: 5, modified_nanos: None }, 1, "");
/// let mut other = cp.clone();
/// other.upload_id = "u2".into();
/// assert_ne!(upload_row_checksum(&id.fingerprint(), &cp), upload_row_checksum(&id.fingerprint(), &other));
/// ```
pub fn upload_row_checksum(fingerprint: &str, checkpoint: &Checkpoint) -> u64 {
    let mut bytes = fingerprint.as_bytes().to_vec();
    encode_checkpoint_fields(checkpoint, &mut bytes);
    ossup_proto::checksum::crc64(&bytes)
}

/// The checksum stored beside a part row: the CRC-64/XZ of `fingerprint` followed by
/// [`encode_part`].
///
/// ```
/// use ossup::PartRecord;
/// use ossup::store::codec::part_row_checksum;
/// let part = PartRecord { number: 1, size: 2, etag: "e".into(), md5: None, crc64: 3 };
/// assert_ne!(part_row_checksum("a", &part), part_row_checksum("b", &part));
/// ```
pub fn part_row_checksum(fingerprint: &str, part: &PartRecord) -> u64 {
    let mut bytes = fingerprint.as_bytes().to_vec();
    encode_part(part, &mut bytes);
    ossup_proto::checksum::crc64(&bytes)
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    // Strings longer than 4 GiB cannot occur in a checkpoint (keys, paths, ETags, ids); saturating
    // would make a silently wrong record, so such a value is a programming error.
    let len = u32::try_from(value.len()).expect("checkpoint string longer than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Why bytes did not decode: what was expected and at which offset of the decoded slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

/// A cursor over encoded bytes that never reads past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => Err(DecodeError(format!(
                "{what} at offset {} needs {n} bytes, only {} left",
                self.pos,
                self.bytes.len() - self.pos
            ))),
        }
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i128(&mut self, what: &str) -> Result<i128, DecodeError> {
        Ok(i128::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.u32(what)? as usize;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| DecodeError(format!("{what} at offset {at} is not UTF-8")))
    }

    fn flag(&mut self, what: &str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError(format!(
                "{what} presence byte at offset {at} is {other}, not 0 or 1"
            ))),
        }
    }

    /// Decodes what [`encode_checkpoint_fields`] wrote, as a checkpoint with no parts.
    pub(crate) fn checkpoint_fields(&mut self) -> Result<Checkpoint, DecodeError> {
        let source = self.string("identity source")?;
        let bucket = self.string("identity bucket")?;
        let key = self.string("identity key")?;
        let part_size = self.u64("identity part size")?;
        let upload_id = self.string("upload id")?;
        let size = self.u64("source size")?;
        let modified_nanos = if self.flag("source modification time")? {
            Some(self.i128("source modification time")?)
        } else {
            None
        };
        let created_unix = self.u64("creation time")?;
        let options_digest = self.string("options digest")?;
        Ok(Checkpoint::new(
            UploadIdentity::new(source, bucket, key, part_size),
            upload_id,
            SourceStamp {
                size,
                modified_nanos,
            },
            created_unix,
            options_digest,
        ))
    }

    /// Decodes what [`encode_part`] wrote.
    pub(crate) fn part(&mut self) -> Result<PartRecord, DecodeError> {
        let number = self.u32("part number")?;
        let size = self.u64("part size")?;
        let etag = self.string("part ETag")?;
        let md5 = if self.flag("part MD5")? {
            Some(self.array("part MD5")?)
        } else {
            None
        };
        let crc64 = self.u64("part CRC-64")?;
        Ok(PartRecord {
            number,
            size,
            etag,
            md5,
            crc64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extreme_checkpoint() -> Checkpoint {
        Checkpoint::new(
            UploadIdentity::new("/données/文件.bin", "bucket", "clé/🚀", u64::MAX),
            "0004B9894A22E5B1888A1E29F823XXXX",
            SourceStamp {
                size: u64::MAX,
                modified_nanos: Some(i128::MIN),
            },
            u64::MAX,
            "",
        )
    }

    #[test]
    fn checkpoint_fields_decode_to_what_was_encoded() {
        let cp = extreme_checkpoint();
        let mut bytes = Vec::new();
        encode_checkpoint_fields(&cp, &mut bytes);
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.checkpoint_fields().unwrap(), cp);
        assert!(reader.is_empty());
    }

    #[test]
    fn parts_with_and_without_md5_decode_to_what_was_encoded() {
        for md5 in [None, Some([0xAB; 16])] {
            let part = PartRecord {
                number: u32::MAX,
                size: u64::MAX,
                etag: "\"5B3C1A2E053D763E1B002CC607C5A0FE\"".into(),
                md5,
                crc64: u64::MAX,
            };
            let mut bytes = Vec::new();
            encode_part(&part, &mut bytes);
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.part().unwrap(), part);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn a_cut_short_encoding_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        encode_checkpoint_fields(&extreme_checkpoint(), &mut bytes);
        for cut in 0..bytes.len() {
            assert!(Reader::new(&bytes[..cut]).checkpoint_fields().is_err());
        }
    }

    #[test]
    fn a_presence_byte_other_than_zero_or_one_is_rejected() {
        let part = PartRecord {
            number: 1,
            size: 1,
            etag: String::new(),
            md5: None,
            crc64: 0,
        };
        let mut bytes = Vec::new();
        encode_part(&part, &mut bytes);
        bytes[4 + 8 + 4] = 2;
        let err = Reader::new(&bytes).part().unwrap_err();
        assert!(err.0.contains("presence byte"), "{err:?}");
    }
}
