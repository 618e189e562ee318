//! A checkpoint and its part records as the store tests write them: a 100 MiB source in 1 MiB
//! parts, every field filled, the same values on every call.

use ossup::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};

/// The checkpoint of an upload to `key` (no parts recorded yet).
pub fn checkpoint(key: &str) -> Checkpoint {
    Checkpoint::new(
        UploadIdentity::new("/src/big.iso", "bucket", key, 1 << 20),
        format!("upload-of-{key}"),
        SourceStamp {
            size: 100 << 20,
            modified_nanos: Some(1_700_000_000_000_000_000),
        },
        1_700_000_000,
        "opts",
    )
}

/// The record of part `number`, distinct in every field from any other number's.
pub fn part(number: u32) -> PartRecord {
    PartRecord {
        number,
        size: 1 << 20,
        etag: format!("\"etag-{number:030}\""),
        md5: Some([number as u8; 16]),
        crc64: u64::from(number) * 31,
    }
}
