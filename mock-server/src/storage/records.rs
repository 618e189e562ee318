//! The records the store keeps on disk as JSON, one file per bucket, object, upload and part.
//!
//! Object keys appear only inside these records, never in a file name.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A bucket: `buckets/NAME/bucket.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    pub storage_class: String,
    pub acl: String,
}

/// What an object carries besides its bytes: set by PutObject or InitiateMultipartUpload.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ObjectAttrs {
    pub content_type: Option<String>,
    /// `Cache-Control`, `Content-Disposition`, `Content-Encoding`, `Content-Language`, `Expires`,
    /// as given, lowercase names.
    pub content_headers: Vec<(String, String)>,
    /// `x-oss-meta-*` headers, lowercase names with the prefix.
    pub user_meta: Vec<(String, String)>,
    pub acl: Option<String>,
    pub storage_class: String,
    /// `x-oss-server-side-encryption`: `AES256`, `KMS` or `SM4`. Records written before the
    /// encryption and tag fields existed read as unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<String>,
    /// `x-oss-server-side-encryption-key-id`, only with KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// `x-oss-server-side-data-encryption` (`SM4`), only with KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_data_encryption: Option<String>,
    /// The decoded `x-oss-tagging` tags, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// A run of bytes of an object, held by one blob file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Segment {
    pub blob: String,
    pub size: u64,
}

/// Whether an object came from one request or from a multipart upload.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum ObjectType {
    Normal,
    Multipart,
}

impl ObjectType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ObjectType::Normal => "Normal",
            ObjectType::Multipart => "Multipart",
        }
    }
}

/// An object: `buckets/NAME/objects/SHA256(KEY).json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub key: String,
    pub size: u64,
    /// Quoted, as sent in `ETag`.
    pub etag: String,
    pub crc64: u64,
    pub object_type: ObjectType,
    /// Unix seconds.
    pub last_modified: u64,
    pub attrs: ObjectAttrs,
    /// The object's bytes, in order: one blob for PutObject, the part blobs for a multipart object.
    pub segments: Vec<Segment>,
    /// The upload this object completed, so that recovery can finish a Complete cut short by a crash.
    #[serde(default)]
    pub completed_upload: Option<String>,
}

/// An open multipart upload: `buckets/NAME/uploads/ID/upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub upload_id: String,
    pub key: String,
    /// Unix seconds.
    pub initiated: u64,
    pub attrs: ObjectAttrs,
}

/// One uploaded part: `buckets/NAME/uploads/ID/parts/N.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub part_number: u32,
    pub blob: String,
    pub size: u64,
    /// Uppercase hex MD5 of the part.
    pub md5_hex: String,
    pub crc64: u64,
    /// Unix seconds.
    pub last_modified: u64,
}

impl PartRecord {
    /// The binary MD5, for the multipart ETag.
    pub(crate) fn md5(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // Records are written by this crate from a real digest; a damaged one yields zeros rather
        // than a panic, and the object ETag then differs visibly.
        let _ = hex::decode_to_slice(&self.md5_hex, &mut out);
        out
    }

    /// The part's ETag as OSS sends it.
    pub(crate) fn etag(&self) -> String {
        format!("\"{}\"", self.md5_hex)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A time stored as Unix seconds.
pub(crate) fn system_time(unix_secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attributes as stored before encryption and tags were kept.
    const OLD_ATTRS: &str = r#"{"content_type":"text/plain","content_headers":[["cache-control","no-cache"]],"user_meta":[["x-oss-meta-a","1"]],"acl":null,"storage_class":"IA"}"#;

    #[test]
    fn attributes_stored_before_encryption_and_tags_still_read_and_write_the_same() {
        let attrs: ObjectAttrs = serde_json::from_str(OLD_ATTRS).unwrap();
        assert_eq!(attrs.storage_class, "IA");
        assert_eq!(attrs.server_side_encryption, None);
        assert!(attrs.tags.is_empty());
        assert_eq!(serde_json::to_string(&attrs).unwrap(), OLD_ATTRS);
    }
}
