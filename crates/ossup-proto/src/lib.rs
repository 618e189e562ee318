//! The wire protocol of Alibaba Cloud OSS multipart upload, in one place.
//!
//! Both sides of ossup speak through this crate: the upload engine builds requests and parses responses
//! with it, and the mock server parses requests and builds responses with it. It does no I/O.
//!
//! - [`api`]: which OSS API a request is, from its method, addressing and query.
//! - [`headers`]: header names.
//! - [`limits`]: part numbers, part sizes, listing page sizes.
//! - [`xml`]: the XML bodies of requests and responses (serde + quick-xml).
//! - [`error`]: OSS error codes, their HTTP statuses, and the `<Error>` document.
//! - [`checksum`]: CRC-64/XZ as OSS computes it (`x-oss-hash-crc64ecma`), with combine, and MD5.
//! - [`etag`]: part and multipart ETag formatting and comparison.
//! - [`tagging`]: object tags in the `x-oss-tagging` header, their encoding and limits.
//! - [`units`]: sizes and rates as people type them (`8MiB`, `20MiB/s`).
//!
//! ```
//! use ossup_proto::checksum::crc64;
//! assert_eq!(crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
//! ```

#![deny(missing_docs)]

pub mod api;
pub mod checksum;
pub mod error;
pub mod etag;
pub mod headers;
pub mod limits;
pub mod tagging;
pub mod units;
pub mod xml;

pub use api::Api;
pub use error::{ErrorCode, ErrorResponse};
