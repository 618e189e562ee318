//! What an upload remembers between runs: its identity, its multipart upload id, and the parts the
//! server acknowledged.
//!
//! These are plain data. How they are stored (a journal file, SQLite, memory) is a
//! [`CheckpointStore`](crate::CheckpointStore)'s business; the format each store writes is in
//! `docs/checkpoint-format.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What names one upload across runs: the source, the destination and the part size.
///
/// Running the same upload again finds its checkpoint by this identity; changing any field makes a
/// different upload.
///
/// ```
/// use ossup::UploadIdentity;
/// let id = UploadIdentity::new("/data/big.iso", "bucket", "isos/big.iso", 8 << 20);
/// assert_eq!(id.fingerprint().len(), 64);
/// assert_ne!(id.fingerprint(), UploadIdentity::new("/data/big.iso", "bucket", "isos/big.iso", 16 << 20).fingerprint());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UploadIdentity {
    /// The source's identity: for a file, its canonical absolute path; for other sources, what
    /// [`Source::identity`](crate) says.
    pub source: String,
    /// The destination bucket.
    pub bucket: String,
    /// The destination object key.
    pub key: String,
    /// The part size in bytes.
    pub part_size: u64,
}

impl UploadIdentity {
    /// An identity from its four fields.
    pub fn new(
        source: impl Into<String>,
        bucket: impl Into<String>,
        key: impl Into<String>,
        part_size: u64,
    ) -> Self {
        Self {
            source: source.into(),
            bucket: bucket.into(),
            key: key.into(),
            part_size,
        }
    }

    /// A stable 64-hex-digit digest of the identity, safe as a file name or a database key.
    ///
    /// Each field is length-prefixed before hashing, so no two identities share a fingerprint by
    /// concatenation.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for field in [
            self.source.as_bytes(),
            self.bucket.as_bytes(),
            self.key.as_bytes(),
        ] {
            hash.update((field.len() as u64).to_le_bytes());
            hash.update(field);
        }
        hash.update(self.part_size.to_le_bytes());
        hex::encode(hash.finalize())
    }
}

impl fmt::Display for UploadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> oss://{}/{} ({} byte parts)",
            self.source, self.bucket, self.key, self.part_size
        )
    }
}

/// What the source looked like when the upload started: a changed stamp means a changed source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceStamp {
    /// The source's size in bytes.
    pub size: u64,
    /// Its modification time in nanoseconds since the Unix epoch, when the source has one.
    pub modified_nanos: Option<i128>,
}

/// One part the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartRecord {
    /// The part number, 1..=10000.
    pub number: u32,
    /// The part's size in bytes.
    pub size: u64,
    /// The ETag the server returned, as it returned it.
    pub etag: String,
    /// The MD5 of the part's bytes; `None` in CRC-64-only mode.
    pub md5: Option<[u8; 16]>,
    /// The CRC-64/XZ of the part's bytes.
    pub crc64: u64,
}

/// Everything one upload remembers between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which upload this is.
    pub identity: UploadIdentity,
    /// The multipart upload id InitiateMultipartUpload returned. Empty in an *intent*: the
    /// checkpoint saved just before InitiateMultipartUpload, so that a run stopped before saving the
    /// id leaves a trace, and the next run aborts the upload it may have left open.
    pub upload_id: String,
    /// The source as it was when the upload started.
    pub source: SourceStamp,
    /// When the upload was initiated (for an intent, when it was meant to be), in seconds since the
    /// Unix epoch.
    pub created_unix: u64,
    /// A digest of the object options (content type, metadata, ACL, storage class, overwrite) the
    /// upload was initiated with, so a run with other options does not silently resume it. The upload
    /// callback is not among them: it goes with Complete, so each run sends its own.
    pub options_digest: String,
    /// The parts acknowledged so far, by number.
    pub parts: BTreeMap<u32, PartRecord>,
}

impl Checkpoint {
    /// A checkpoint with no parts yet.
    pub fn new(
        identity: UploadIdentity,
        upload_id: impl Into<String>,
        source: SourceStamp,
        created_unix: u64,
        options_digest: impl Into<String>,
    ) -> Self {
        Self {
            identity,
            upload_id: upload_id.into(),
            source,
            created_unix,
            options_digest: options_digest.into(),
            parts: BTreeMap::new(),
        }
    }
}
