//! Checkpoints and parts the contract cases store: deterministic, and reaching the edges of every
//! field's range.

use crate::checkpoint::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};

/// An identity for `tag`, with non-ASCII text in every string field.
pub(crate) fn identity(tag: &str) -> UploadIdentity {
    UploadIdentity::new(
        format!("/données/源/{tag}.bin"),
        "ossup-contract",
        format!("clé/键/{tag} 🚀"),
        100 * 1024,
    )
}

/// A checkpoint for `tag` with parts 1..=`parts`.
pub(crate) fn plain_checkpoint(tag: &str, parts: u32) -> Checkpoint {
    let mut checkpoint = Checkpoint::new(
        identity(tag),
        format!("0004B9894A22E5B1888A1E29F823{:04X}", parts),
        SourceStamp {
            size: 10 << 20,
            modified_nanos: Some(1_700_000_000_123_456_789),
        },
        1_700_000_000,
        "sha256:options",
    );
    for number in 1..=parts {
        checkpoint.parts.insert(number, part(number, 0));
    }
    checkpoint
}

/// A checkpoint whose every field sits at an edge: the largest integers, an absent modification time,
/// empty strings, multi-byte text.
pub(crate) fn extreme_checkpoint() -> Checkpoint {
    let mut checkpoint = Checkpoint::new(
        UploadIdentity::new("", "b", "ключ/\u{0}/末尾 ", u64::MAX),
        "",
        SourceStamp {
            size: u64::MAX,
            modified_nanos: None,
        },
        u64::MAX,
        "",
    );
    for part in extreme_parts() {
        checkpoint.parts.insert(part.number, part);
    }
    checkpoint.parts.remove(&10_000);
    checkpoint
}

/// Parts at the edges: first and last part numbers, MD5 absent and present, zero and maximal sizes
/// and CRCs, an empty and a long ETag.
pub(crate) fn extreme_parts() -> Vec<PartRecord> {
    vec![
        PartRecord {
            number: 1,
            size: 0,
            etag: String::new(),
            md5: None,
            crc64: 0,
        },
        PartRecord {
            number: 10_000,
            size: u64::MAX,
            etag: "\"5B3C1A2E053D763E1B002CC607C5A0FE\"".into(),
            md5: Some([0xFF; 16]),
            crc64: u64::MAX,
        },
        PartRecord {
            number: 5_000,
            size: 5 << 30,
            etag: "W/\"étag-ü-😀\"".repeat(40),
            md5: Some([0; 16]),
            crc64: 0x995D_C9BB_DF19_39FA,
        },
    ]
}

/// Part `number` in one of 256 variants: variants differ in every field but the number.
pub(crate) fn part(number: u32, variant: u8) -> PartRecord {
    let mix = u64::from(number) << 8 | u64::from(variant);
    PartRecord {
        number,
        size: 100 * 1024 + u64::from(variant),
        etag: format!("\"{:032X}\"", mix.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        md5: (!variant.is_multiple_of(3)).then(|| {
            let mut md5 = [variant; 16];
            md5[..4].copy_from_slice(&number.to_le_bytes());
            md5
        }),
        crc64: mix.wrapping_mul(0xBF58_476D_1CE4_E5B9),
    }
}
