//! CRC-64 as OSS computes it, and MD5, the two checksums of the multipart protocol.
//!
//! OSS's `x-oss-hash-crc64ecma` is CRC-64/XZ: the reflected ECMA-182 polynomial with init and xorout all
//! ones (check value of `"123456789"`: `0x995dc9bbdf1939fa`). Crates that name a "CRC-64/ECMA-182"
//! without reflection, or the NVMe CRC-64, compute something else; this module pins the right one.

use base64::prelude::*;
use crc_fast::CrcAlgorithm;
use md5::Digest as _;

const ALGORITHM: CrcAlgorithm = CrcAlgorithm::Crc64Xz;

/// The CRC-64/XZ of `data`.
///
/// ```
/// assert_eq!(ossup_proto::checksum::crc64(b""), 0);
/// assert_eq!(ossup_proto::checksum::crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
/// ```
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(ALGORITHM, data)
}

/// The CRC-64/XZ of `a ++ b`, from the CRC of `a`, the CRC of `b` and the length of `b`.
///
/// This is how a client checks the object CRC that Complete returns against the CRCs of its parts.
///
/// ```
/// use ossup_proto::checksum::{crc64, crc64_combine};
/// assert_eq!(crc64_combine(crc64(b"12345"), crc64(b"6789"), 4), crc64(b"123456789"));
/// ```
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    if len_b == 0 {
        return crc_a;
    }
    crc_fast::checksum_combine(ALGORITHM, crc_a, crc_b, len_b)
}

/// The CRC-64/XZ of a sequence of pieces, each given as `(crc, len)`, in order.
///
/// ```
/// use ossup_proto::checksum::{crc64, crc64_of_parts};
/// let parts = [(crc64(b"1234"), 4), (crc64(b""), 0), (crc64(b"56789"), 5)];
/// assert_eq!(crc64_of_parts(parts), crc64(b"123456789"));
/// ```
pub fn crc64_of_parts(parts: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    parts
        .into_iter()
        .fold(0, |acc, (crc, len)| crc64_combine(acc, crc, len))
}

/// An incremental CRC-64/XZ.
///
/// ```
/// let mut crc = ossup_proto::checksum::Crc64::new();
/// crc.update(b"1234");
/// crc.update(b"56789");
/// assert_eq!(crc.finish(), 0x995d_c9bb_df19_39fa);
/// ```
#[derive(Clone)]
pub struct Crc64(crc_fast::Digest);

impl Crc64 {
    /// A CRC over no bytes yet.
    pub fn new() -> Self {
        Self(crc_fast::Digest::new(ALGORITHM))
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The CRC of every byte fed so far.
    pub fn finish(&self) -> u64 {
        self.0.finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Crc64").field(&self.finish()).finish()
    }
}

/// The MD5 of `data`.
///
/// ```
/// assert_eq!(hex::encode(ossup_proto::checksum::md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
/// ```
pub fn md5(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// An incremental MD5.
///
/// ```
/// let mut md5 = ossup_proto::checksum::Md5::new();
/// md5.update(b"a");
/// md5.update(b"bc");
/// assert_eq!(md5.finish(), ossup_proto::checksum::md5(b"abc"));
/// ```
#[derive(Clone, Default)]
pub struct Md5(md5::Md5);

impl Md5 {
    /// An MD5 over no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The MD5 of every byte fed so far.
    pub fn finish(self) -> [u8; 16] {
        self.0.finalize().into()
    }
}

impl std::fmt::Debug for Md5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5")
    }
}

/// The value of a `Content-MD5` header: the base64 of the binary MD5.
///
/// ```
/// let md5 = ossup_proto::checksum::md5(b"");
/// assert_eq!(ossup_proto::checksum::content_md5(&md5), "1B2M2Y8AsgTpgAmY7PhCfg==");
/// ```
pub fn content_md5(md5: &[u8; 16]) -> String {
    BASE64_STANDARD.encode(md5)
}

/// Decodes a `Content-MD5` header value; `None` when it is not the base64 of 16 bytes.
///
/// ```
/// let md5 = ossup_proto::checksum::md5(b"x");
/// let header = ossup_proto::checksum::content_md5(&md5);
/// assert_eq!(ossup_proto::checksum::parse_content_md5(&header), Some(md5));
/// assert_eq!(ossup_proto::checksum::parse_content_md5("not base64"), None);
/// ```
pub fn parse_content_md5(value: &str) -> Option<[u8; 16]> {
    let bytes = BASE64_STANDARD.decode(value.trim()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc64_matches_the_xz_check_value() {
        assert_eq!(crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
    }

    proptest! {
        #[test]
        fn combine_of_a_split_equals_crc_of_the_whole(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096) {
            let cut = cut.min(data.len());
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(crc64_combine(crc64(a), crc64(b), b.len() as u64), crc64(&data));
        }
    }
}
