//! The size and count limits of OSS multipart upload.

/// The lowest part number.
pub const MIN_PART_NUMBER: u32 = 1;
/// The highest part number, and so the most parts one upload can have.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// The smallest size of every part but the last, checked at Complete (`EntityTooSmall`).
pub const MIN_PART_SIZE: u64 = 100 * 1024;
/// The largest size of one part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The largest object a single PutObject may create.
pub const MAX_PUT_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one ListParts page returns, and its default.
pub const MAX_LIST_PARTS: u32 = 1000;
/// The most uploads one ListMultipartUploads page returns, and its default.
pub const MAX_LIST_UPLOADS: u32 = 1000;
/// How far a request's date may be from the server's clock, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 15 * 60;
/// The largest object key, in bytes.
pub const MAX_KEY_LEN: usize = 1023;
/// Most tags one object can have.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
