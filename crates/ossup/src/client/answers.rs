//! What the client's APIs take and answer: a part's bytes with their checksums, and what the server
//! said it stored.

use std::collections::BTreeMap;

use bytes::Bytes;
use ossup_proto::checksum;

use crate::ResponseBody;
use crate::callback::CallbackResult;

/// A part's bytes with the checksums to send and verify.
#[derive(Debug, Clone)]
pub struct PartBody {
    /// The bytes.
    pub data: Bytes,
    /// The MD5 of the bytes: sent as `Content-MD5` and checked against the returned ETag. `None` in
    /// CRC-64-only mode.
    pub md5: Option<[u8; 16]>,
    /// The CRC-64/XZ of the bytes, checked against `x-oss-hash-crc64ecma`.
    pub crc64: Option<u64>,
    /// The server-side cap on this request's speed, in bit/s (`x-oss-traffic-limit`, 819,200 to
    /// 838,860,800); see [`with_traffic_limit`](Self::with_traffic_limit).
    pub traffic_limit: Option<u64>,
}

impl PartBody {
    /// A body with both checksums computed from `data`.
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            md5: Some(checksum::md5(&data)),
            crc64: Some(checksum::crc64(&data)),
            data,
            traffic_limit: None,
        }
    }

    /// A body whose checksums the caller computed (or chose not to).
    pub fn with_checksums(data: Bytes, md5: Option<[u8; 16]>, crc64: Option<u64>) -> Self {
        Self {
            data,
            md5,
            crc64,
            traffic_limit: None,
        }
    }

    /// Asks OSS to take this body at most `bits_per_sec` fast (`x-oss-traffic-limit`), a cap the
    /// server enforces per request; OSS accepts 819,200 (100 KiB/s) to 838,860,800 (100 MiB/s).
    ///
    /// ```
    /// let body = ossup::PartBody::new(vec![0u8; 10]).with_traffic_limit(8 << 20);
    /// assert_eq!(body.traffic_limit, Some(8 << 20));
    /// ```
    pub fn with_traffic_limit(mut self, bits_per_sec: u64) -> Self {
        self.traffic_limit = Some(bits_per_sec);
        self
    }
}

/// What UploadPart or PutObject answered, after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    /// The ETag, as the server sent it.
    pub etag: String,
    /// The server's CRC-64 of the bytes (`x-oss-hash-crc64ecma`), when it sent one.
    pub crc64: Option<u64>,
    /// The request id.
    pub request_id: String,
    /// What came of the upload callback, when one was sent.
    pub callback: Option<CallbackResult>,
}

/// What CompleteMultipartUpload answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    /// The object's ETag (`"HEX-N"`).
    pub etag: String,
    /// The object's CRC-64 (`x-oss-hash-crc64ecma`), when the server sent it.
    pub crc64: Option<u64>,
    /// The request id.
    pub request_id: String,
    /// What came of the upload callback, when one was sent.
    pub callback: Option<CallbackResult>,
}

/// What HeadObject says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// The size in bytes.
    pub size: u64,
    /// The ETag.
    pub etag: String,
    /// The CRC-64 (`x-oss-hash-crc64ecma`), when the server sent it.
    pub crc64: Option<u64>,
    /// The content type.
    pub content_type: Option<String>,
    /// `Normal`, `Multipart` or `Appendable`.
    pub object_type: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// User metadata (`x-oss-meta-*`), names without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// An object's body being read, with its head.
#[derive(Debug)]
pub struct ObjectBody {
    /// What the response headers say (for a range, `size` is the range's length).
    pub head: ObjectHead,
    /// The bytes, streaming.
    pub body: ResponseBody,
}
