//! Header names used by the OSS protocol, lowercase as `http::HeaderName` wants them.

/// The request id OSS puts on every response.
pub const REQUEST_ID: &str = "x-oss-request-id";
/// CRC-64/XZ of a part or object, as a decimal `u64`.
pub const HASH_CRC64ECMA: &str = "x-oss-hash-crc64ecma";
/// The STS security token of temporary credentials.
pub const SECURITY_TOKEN: &str = "x-oss-security-token";
/// The request time, used by V4 signing (and by some V1 clients instead of `Date`).
pub const OSS_DATE: &str = "x-oss-date";
/// The payload hash slot of V4 signing; ossup always sends `UNSIGNED-PAYLOAD`.
pub const CONTENT_SHA256: &str = "x-oss-content-sha256";
/// Complete a multipart upload with every uploaded part, in order; the body must be empty.
pub const COMPLETE_ALL: &str = "x-oss-complete-all";
/// Object ACL: `private`, `public-read`, `public-read-write` or `default`.
pub const OBJECT_ACL: &str = "x-oss-object-acl";
/// Storage class: `Standard`, `IA`, `Archive`, `ColdArchive`, `DeepColdArchive`.
pub const STORAGE_CLASS: &str = "x-oss-storage-class";
/// `true` refuses to overwrite an existing object with the same key.
pub const FORBID_OVERWRITE: &str = "x-oss-forbid-overwrite";
/// Base64 JSON describing the upload callback.
pub const CALLBACK: &str = "x-oss-callback";
/// Base64 JSON of the callback's custom `x:` variables.
pub const CALLBACK_VAR: &str = "x-oss-callback-var";
/// The prefix of user metadata headers.
pub const META_PREFIX: &str = "x-oss-meta-";
/// The prefix of every OSS-specific header.
pub const OSS_PREFIX: &str = "x-oss-";
/// The error code header newer OSS servers add to error responses.
pub const ERROR_EC: &str = "x-oss-ec";
/// The error document of an answer without a body (HEAD), base64-encoded.
pub const ERROR_DOCUMENT: &str = "x-oss-err";
/// The object a CopyObject or UploadPartCopy request copies from: `/bucket/key`.
pub const COPY_SOURCE: &str = "x-oss-copy-source";
/// The object type: `Normal`, `Multipart` or `Appendable`.
pub const OBJECT_TYPE: &str = "x-oss-object-type";
/// The server's notion of the current time on a RequestTimeTooSkewed answer.
pub const SERVER_TIME: &str = "x-oss-server-time";
/// The V4 payload marker ossup sends in [`CONTENT_SHA256`].
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Server-side encryption of an object: `AES256`, `KMS` or `SM4`.
pub const SERVER_SIDE_ENCRYPTION: &str = "x-oss-server-side-encryption";
/// The KMS key that encrypts an object; only with [`SERVER_SIDE_ENCRYPTION`] `KMS`.
pub const SSE_KMS_KEY_ID: &str = "x-oss-server-side-encryption-key-id";
/// The algorithm KMS encryption uses (`SM4`); only with [`SERVER_SIDE_ENCRYPTION`] `KMS`.
pub const SERVER_SIDE_DATA_ENCRYPTION: &str = "x-oss-server-side-data-encryption";
/// Object tags as a URL-encoded query string, `k1=v1&k2=v2`.
pub const TAGGING: &str = "x-oss-tagging";
/// How many tags an object has, on HeadObject and GetObject answers (the tags themselves are not).
pub const TAGGING_COUNT: &str = "x-oss-tagging-count";
